//! The 16-byte page header and page types (Go: `type page`, bb136 `page.go`).

use super::bytes::{put_u16, put_u32, put_u64, u16_at, u32_at, u64_at};
use super::{DamageKind, Field, FormatError, PageId};

/// Size of the header at the start of every logical page (`pageHeaderSize`, page.go).
pub const PAGE_HEADER_SIZE: usize = 16;
/// Field offsets of `type page` (page.go): `id pgid; flags uint16; count uint16;
/// overflow uint32`, then the elements (`ptr`).
pub const ID_OFFSET: usize = 0;
pub const FLAGS_OFFSET: usize = 8;
pub const COUNT_OFFSET: usize = 10;
pub const OVERFLOW_OFFSET: usize = 12;
/// The header's fields, in order.
pub const HEADER_FIELDS: [Field; 4] = [
    Field {
        name: "id",
        offset: ID_OFFSET,
        width: 8,
    },
    Field {
        name: "flags",
        offset: FLAGS_OFFSET,
        width: 2,
    },
    Field {
        name: "count",
        offset: COUNT_OFFSET,
        width: 2,
    },
    Field {
        name: "overflow",
        offset: OVERFLOW_OFFSET,
        width: 4,
    },
];

/// Page type flags (page.go). A page holds exactly one of them (bbolt >= 1.3.7 asserts it).
pub const BRANCH_PAGE_FLAG: u16 = 0x01;
pub const LEAF_PAGE_FLAG: u16 = 0x02;
pub const META_PAGE_FLAG: u16 = 0x04;
pub const FREELIST_PAGE_FLAG: u16 = 0x10;

/// What a page's `flags` field says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PageKind {
    Branch,
    Leaf,
    Meta,
    Freelist,
    /// Not exactly one known flag: corrupt (or a zeroed page).
    Unknown(u16),
}

impl PageKind {
    #[inline]
    pub fn from_flags(flags: u16) -> PageKind {
        match flags {
            BRANCH_PAGE_FLAG => PageKind::Branch,
            LEAF_PAGE_FLAG => PageKind::Leaf,
            META_PAGE_FLAG => PageKind::Meta,
            FREELIST_PAGE_FLAG => PageKind::Freelist,
            other => PageKind::Unknown(other),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PageKind::Branch => "branch",
            PageKind::Leaf => "leaf",
            PageKind::Meta => "meta",
            PageKind::Freelist => "freelist",
            PageKind::Unknown(_) => "unknown",
        }
    }
}

impl std::fmt::Display for PageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageKind::Unknown(flags) => write!(f, "unknown(flags {flags:#06x})"),
            k => f.write_str(k.name()),
        }
    }
}

/// A decoded page header. Copy-sized: 16 bytes read out of the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    /// The id the page claims; must equal its position.
    pub id: PageId,
    pub flags: u16,
    /// Branch/leaf: element count. Freelist: id count or the 0xFFFF escape.
    pub count: u16,
    /// Extra contiguous physical pages belonging to this logical page.
    pub overflow: u32,
}

impl PageHeader {
    #[inline]
    pub fn parse(b: &[u8]) -> Result<PageHeader, FormatError> {
        let short = || FormatError::new(DamageKind::Bounds, 0, "page header is cut short");
        Ok(PageHeader {
            id: u64_at(b, ID_OFFSET).ok_or_else(short)?,
            flags: u16_at(b, FLAGS_OFFSET).ok_or_else(short)?,
            count: u16_at(b, COUNT_OFFSET).ok_or_else(short)?,
            overflow: u32_at(b, OVERFLOW_OFFSET).ok_or_else(short)?,
        })
    }

    /// Store the header at `b[0..16]`.
    pub fn write(&self, b: &mut [u8]) {
        put_u64(b, ID_OFFSET, self.id);
        put_u16(b, FLAGS_OFFSET, self.flags);
        put_u16(b, COUNT_OFFSET, self.count);
        put_u32(b, OVERFLOW_OFFSET, self.overflow);
    }

    #[inline]
    pub fn kind(&self) -> PageKind {
        PageKind::from_flags(self.flags)
    }

    /// Physical pages this logical page spans.
    #[inline]
    pub fn span(&self) -> u64 {
        u64::from(self.overflow) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header() {
        let mut b = [0u8; 16];
        b[0] = 7;
        b[8] = 2;
        b[10] = 3;
        b[12] = 1;
        let h = PageHeader::parse(&b).unwrap();
        let mut again = [0u8; 16];
        h.write(&mut again);
        assert_eq!(again, b, "write is parse's inverse");
        assert_eq!(
            (h.id, h.kind(), h.count, h.span()),
            (7, PageKind::Leaf, 3, 2)
        );
        assert!(PageHeader::parse(&b[..15]).is_err());
        assert_eq!(PageKind::from_flags(0x03), PageKind::Unknown(3));
    }
}
