//! The library's one error type. Messages name no command-line flag: the binary adds what
//! to pass (`src/main.rs`, `hint`). Variants that come from the file name the page and the byte
//! offset, so an operator can look at the damage with `boltpack page` or `xxd`.

use std::path::PathBuf;

pub use crate::format::DamageKind;
use crate::format::meta::MetaError;
use crate::format::{FormatError, PageId};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: the file is locked by another process (a running etcd or bbolt holds an exclusive \
         lock, and its pages change under a reader). Stop it first, or work on a copy",
        path.display()
    )]
    Locked { path: PathBuf },
    /// A file boltpack would replace (an output, a member's db) is held for writing by a
    /// running process. No flag overrides this. Exit 4, like [`Error::Locked`].
    #[error(
        "{}: the file is locked by another process (a running etcd or bbolt holds it open for \
         writing, and would go on using the file it opened). Stop it first; boltpack never \
         replaces a file in use, whatever the flags",
        path.display()
    )]
    LockedTarget { path: PathBuf },
    /// The source ends in a `snapshot save` SHA-256 trailer that does not match its bytes.
    #[error(
        "{}: its `snapshot save` SHA-256 trailer does not match the file (it was damaged or \
         changed after it was saved; `boltpack snapshot status` shows both hashes)",
        path.display()
    )]
    BadTrailer { path: PathBuf },
    #[error(
        "file is {size} bytes: too small for a bbolt file (two meta pages of at least 1024 bytes)"
    )]
    TooSmall { size: u64 },
    #[error("no valid meta page: meta 0: {meta0}; meta 1: {meta1}")]
    NoValidMeta { meta0: MetaError, meta1: MetaError },
    #[error("page {page} (byte offset {offset}): {what}")]
    Corrupt {
        page: PageId,
        offset: u64,
        kind: DamageKind,
        what: String,
    },
    /// Writing an output the library does not know the path of failed: a copy's pages
    /// (`compact_file` turns this into [`Error::Io`] naming its temp file) or a dump's
    /// lines (standard output, for the binary).
    #[error("cannot write the output: {0}")]
    Write(std::io::Error),
    /// An output that exists, which the caller did not ask to replace.
    #[error("{} already exists", path.display())]
    Exists { path: PathBuf },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Usage(String),
    /// An etcd revision the file cannot answer for: above the current revision (or, for
    /// reads, compacted). The same exit code as `hashkv`'s refusal (1).
    #[error("{0}")]
    Revision(String),
    /// The copy read back differs from what was meant to be written; nothing was renamed
    /// into place. Exit 1, like other damage.
    #[error("verification of the copy failed, nothing was written: {0}")]
    Verify(String),
}

impl Error {
    pub fn corrupt(kind: DamageKind, page: PageId, offset: u64, what: impl Into<String>) -> Error {
        Error::Corrupt {
            page,
            offset,
            kind,
            what: what.into(),
        }
    }

    /// A format error inside the page at `page` whose bytes start at file offset `base`.
    pub fn from_format(page: PageId, base: u64, e: FormatError) -> Error {
        Error::corrupt(e.kind, page, base + e.offset as u64, e.what)
    }

    /// The kind of damage, for an error that is damage.
    pub fn damage_kind(&self) -> Option<DamageKind> {
        match self {
            Error::Corrupt { kind, .. } => Some(*kind),
            Error::NoValidMeta { .. } => Some(DamageKind::Meta),
            Error::TooSmall { .. } => Some(DamageKind::Bounds),
            _ => None,
        }
    }

    /// True for damage found in the file (as opposed to I/O, locks or usage).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::Corrupt { .. } | Error::NoValidMeta { .. } | Error::TooSmall { .. }
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
