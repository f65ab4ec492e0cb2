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

/// A malformed structure inside one page or value: `offset` is relative to the start of the
/// bytes the view was made from; the reader turns it into a file offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    pub offset: usize,
    pub what: Cow<'static, str>,
}

impl FormatError {
    pub fn new(offset: usize, what: impl Into<Cow<'static, str>>) -> Self {
        FormatError {
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
