//! Byte layouts of a bbolt file, decoded as zero-copy views over `&[u8]` and encoded into
//! page images (docs/format.md, part A).
//!
//! No I/O and no allocation here: every view borrows the bytes it reads, and every read is
//! bounds-checked so that a hostile file yields a [`FormatError`] rather than a panic.
//! Layouts mirror Go bbolt 1.3.6 (`page.go`, `db.go`, `bucket.go`, `freelist.go`); the file
//! format is unchanged up to bbolt 1.5. All integers are little-endian (bbolt overlays native
//! structs, and every supported platform for etcd data is little-endian).

#![forbid(unsafe_code)]

pub mod bucket;
pub mod bytes;
pub mod element;
pub mod freelist;
pub mod meta;
pub mod page;
pub mod text;

use std::borrow::Cow;

/// A page id: page `n` starts at byte `n * page_size` (Go: `pgid`, `page.go`).
pub type PageId = u64;

/// One fixed-width field of an on-disk record: its name, byte offset in the record, and
/// width. The tables of them (`page::HEADER_FIELDS`, `element::LEAF_ELEMENT_FIELDS`, ...)
/// let tests and damage builders name a field instead of repeating its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub offset: usize,
    pub width: usize,
}

/// What kind of damage a file has, for callers and tests to match on; the message says the
/// details. Shared by the format's errors, the reader's and the checks' problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DamageKind {
    /// Something runs past its page, its value or the file: counts, sizes, offsets,
    /// a truncated file, a page id beyond the high-water mark.
    Bounds,
    /// A page whose header is not what its place demands: its id, or its type flags.
    PageType,
    /// Keys out of order or outside their parent's range, empty keys, a plain key in the
    /// root bucket.
    KeyOrder,
    /// The tree's shape: pages reached twice, cycles, trees or buckets nested too deep,
    /// more work than the file holds, inline buckets holding buckets.
    Shape,
    /// Page use that disagrees with the freelist: unreachable pages not freed, reachable
    /// pages freed.
    Reach,
    /// A meta page.
    Meta,
    /// The freelist page or its entries.
    Freelist,
    /// An etcd record that does not decode: a revision key, an `mvccpb.KeyValue`, a `meta`
    /// value.
    Etcd,
}

/// A malformed structure inside one page or value: `offset` is relative to the start of the
/// bytes the view was made from; the reader turns it into a file offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    pub kind: DamageKind,
    pub offset: usize,
    pub what: Cow<'static, str>,
}

impl FormatError {
    pub fn new(kind: DamageKind, offset: usize, what: impl Into<Cow<'static, str>>) -> Self {
        FormatError {
            kind,
            offset,
            what: what.into(),
        }
    }
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at +{})", self.what, self.offset)
    }
}
