//! The meta page (pages 0 and 1): Go `type meta`, bb136 `db.go`.

use super::PageId;
use super::bucket::BucketHeader;
use super::bytes::{put_u32, put_u64, u32_at, u64_at};
use super::page::{META_PAGE_FLAG, PAGE_HEADER_SIZE, PageHeader};

/// `magic` (db.go).
pub const MAGIC: u32 = 0xED0C_DAED;
/// Data file format `version` (db.go).
pub const VERSION: u32 = 2;
/// `meta.freelist` when no freelist is persisted (`pgidNoFreelist`, db.go; NoFreelistSync).
pub const PGID_NO_FREELIST: PageId = u64::MAX;
/// The meta struct starts right after the page header and is 64 bytes long.
pub const META_OFFSET: usize = PAGE_HEADER_SIZE;
pub const META_SIZE: usize = 64;
/// Field offsets inside `type meta` (db.go): `magic, version, pageSize, flags uint32;
/// root bucket (root pgid, sequence uint64); freelist, pgid pgid; txid txid; checksum`.
const MAGIC_AT: usize = 0;
const VERSION_AT: usize = 4;
const PAGE_SIZE_AT: usize = 8;
const FLAGS_AT: usize = 12;
const ROOT_AT: usize = 16;
const FREELIST_AT: usize = 32;
const PGID_AT: usize = 40;
const TXID_AT: usize = 48;
/// The checksum covers the meta struct up to its `checksum` field (`meta.sum64`, db.go).
const CHECKSUM_OFFSET: usize = 56;
/// Smallest and largest page sizes we accept. bbolt does not bound the page size, but a page
/// must hold the 80-byte meta, and >= 1.3.7 probes meta 1 only at 1 KiB .. 16 MiB.
pub const MIN_PAGE_SIZE: u32 = 1024;
pub const MAX_PAGE_SIZE: u32 = 1 << 24;

/// FNV-1a 64 (Go `hash/fnv.New64a`), the meta checksum.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// What a writer puts into a meta page; the magic, version and checksum follow from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaFields {
    pub page_size: u32,
    pub flags: u32,
    pub root: BucketHeader,
    pub freelist: PageId,
    pub pgid: PageId,
    pub txid: u64,
}

/// Encode meta page `id` (0 or 1) into `page` (at least [`META_OFFSET`] + [`META_SIZE`]
/// bytes, zeroed): `meta.write` and `meta.sum64` (db.go). The checksum is FNV-1a over the
/// meta struct before its `checksum` field.
pub fn write_meta_page(page: &mut [u8], id: PageId, m: &MetaFields) {
    PageHeader {
        id,
        flags: META_PAGE_FLAG,
        count: 0,
        overflow: 0,
    }
    .write(page);
    let meta = &mut page[META_OFFSET..META_OFFSET + META_SIZE];
    put_u32(meta, MAGIC_AT, MAGIC);
    put_u32(meta, VERSION_AT, VERSION);
    put_u32(meta, PAGE_SIZE_AT, m.page_size);
    put_u32(meta, FLAGS_AT, m.flags);
    m.root.write(&mut meta[ROOT_AT..]);
    put_u64(meta, FREELIST_AT, m.freelist);
    put_u64(meta, PGID_AT, m.pgid);
    put_u64(meta, TXID_AT, m.txid);
    let sum = fnv1a64(&meta[..CHECKSUM_OFFSET]);
    put_u64(meta, CHECKSUM_OFFSET, sum);
}

/// Recompute the checksum of the meta page at `page[0..]` after its fields were changed
/// in place (tests and damage builders: a meta that is wrong yet checksums right).
pub fn reseal_meta_page(page: &mut [u8]) {
    let meta = &mut page[META_OFFSET..META_OFFSET + META_SIZE];
    let sum = fnv1a64(&meta[..CHECKSUM_OFFSET]);
    put_u64(meta, CHECKSUM_OFFSET, sum);
}

/// A meta field by name, for tests and damage builders that change one field in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaField {
    Magic,
    Version,
    PageSize,
    Flags,
    Root,
    Freelist,
    Pgid,
    Txid,
    Checksum,
}

impl MetaField {
    /// The field's offset from the start of the meta page.
    pub const fn offset(self) -> usize {
        META_OFFSET
            + match self {
                MetaField::Magic => MAGIC_AT,
                MetaField::Version => VERSION_AT,
                MetaField::PageSize => PAGE_SIZE_AT,
                MetaField::Flags => FLAGS_AT,
                MetaField::Root => ROOT_AT,
                MetaField::Freelist => FREELIST_AT,
                MetaField::Pgid => PGID_AT,
                MetaField::Txid => TXID_AT,
                MetaField::Checksum => CHECKSUM_OFFSET,
            }
    }

    /// The field's width in bytes.
    pub const fn width(self) -> usize {
        match self {
            MetaField::Magic | MetaField::Version | MetaField::PageSize | MetaField::Flags => 4,
            _ => 8,
        }
    }
}

/// A decoded meta page. Small and `Copy`: read once at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub header: PageHeader,
    pub magic: u32,
    pub version: u32,
    pub page_size: u32,
    pub flags: u32,
    /// The root bucket: `root.root` is the page of the top-level tree.
    pub root: BucketHeader,
    /// Freelist page id, or [`PGID_NO_FREELIST`].
    pub freelist: PageId,
    /// High-water mark: one past the highest page id in use.
    pub pgid: PageId,
    pub txid: u64,
    pub checksum: u64,
    /// FNV-1a of bytes [16, 72) as found on disk.
    pub computed_checksum: u64,
}

/// Why a meta page is not usable, in `meta.validate`'s order (db.go) plus our own sanity checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("file too short to hold this meta page")]
    Truncated,
    #[error("bad magic {0:#010x} (want 0xed0cdaed): not a bbolt file, or a damaged meta page")]
    BadMagic(u32),
    #[error("unsupported version {0} (want 2)")]
    BadVersion(u32),
    #[error("checksum mismatch: stored {stored:#018x}, computed {computed:#018x}")]
    BadChecksum { stored: u64, computed: u64 },
    #[error("page size {0} out of range (1024 ..= 16 MiB)")]
    BadPageSize(u32),
    #[error("page header flags {0:#06x} are not the meta flag 0x04")]
    NotMetaPage(u16),
    #[error("page size {found} differs from meta 0's {expected}")]
    PageSizeMismatch { found: u32, expected: u32 },
    #[error("not found at any page size bbolt allows")]
    NotFound,
}

impl Meta {
    /// Decode the meta page starting at `b[0]` (its page header first).
    pub fn parse(b: &[u8]) -> Result<Meta, MetaError> {
        let header = PageHeader::parse(b).map_err(|_| MetaError::Truncated)?;
        let m = |off: usize| u32_at(b, META_OFFSET + off).ok_or(MetaError::Truncated);
        let q = |off: usize| u64_at(b, META_OFFSET + off).ok_or(MetaError::Truncated);
        let body = b
            .get(META_OFFSET..META_OFFSET + CHECKSUM_OFFSET)
            .ok_or(MetaError::Truncated)?;
        let root =
            BucketHeader::parse(&b[META_OFFSET + ROOT_AT..]).map_err(|_| MetaError::Truncated)?;
        Ok(Meta {
            header,
            magic: m(MAGIC_AT)?,
            version: m(VERSION_AT)?,
            page_size: m(PAGE_SIZE_AT)?,
            flags: m(FLAGS_AT)?,
            root,
            freelist: q(FREELIST_AT)?,
            pgid: q(PGID_AT)?,
            txid: q(TXID_AT)?,
            checksum: q(CHECKSUM_OFFSET)?,
            computed_checksum: fnv1a64(body),
        })
    }

    /// `meta.validate` of bb136: magic, then version, then checksum. Like bb136 a stored
    /// checksum of 0 passes (see [`Meta::checksum_is_zero`]); we also reject page sizes we
    /// cannot address and pages whose header is not a meta page.
    pub fn validate(&self) -> Result<(), MetaError> {
        if self.magic != MAGIC {
            return Err(MetaError::BadMagic(self.magic));
        }
        if self.version != VERSION {
            return Err(MetaError::BadVersion(self.version));
        }
        if self.checksum != 0 && self.checksum != self.computed_checksum {
            return Err(MetaError::BadChecksum {
                stored: self.checksum,
                computed: self.computed_checksum,
            });
        }
        if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(MetaError::BadPageSize(self.page_size));
        }
        if self.header.flags != META_PAGE_FLAG {
            return Err(MetaError::NotMetaPage(self.header.flags));
        }
        Ok(())
    }

    /// bb136 accepts a zero checksum; bbolt >= 1.3.7 rejects it.
    pub fn checksum_is_zero(&self) -> bool {
        self.checksum == 0
    }

    pub fn has_freelist_page(&self) -> bool {
        self.freelist != PGID_NO_FREELIST
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A meta page image as `meta.write` lays it out.
    pub fn meta_bytes(
        id: u64,
        page_size: u32,
        root: u64,
        freelist: u64,
        pgid: u64,
        txid: u64,
    ) -> Vec<u8> {
        let mut b = vec![0u8; page_size as usize];
        let fields = MetaFields {
            page_size,
            flags: 0,
            root: BucketHeader { root, sequence: 0 },
            freelist,
            pgid,
            txid,
        };
        write_meta_page(&mut b, id, &fields);
        b
    }

    #[test]
    fn written_fields_sit_where_go_puts_them() {
        let b = meta_bytes(1, 4096, 3, 2, 4, 9);
        // Offsets of bb136's meta struct, counted by hand from db.go.
        assert_eq!(&b[16..20], &MAGIC.to_le_bytes());
        assert_eq!(&b[32..40], &3u64.to_le_bytes());
        assert_eq!(&b[64..72], &9u64.to_le_bytes());
        assert_eq!(MetaField::Checksum.offset(), 72);
        let m = Meta::parse(&b).unwrap();
        assert_eq!(m.checksum, m.computed_checksum);
    }

    #[test]
    fn fnv_matches_go() {
        // Go: fnv.New64a().Sum64() of "" and of "a".
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn validates_in_bbolt_order() {
        let b = meta_bytes(0, 4096, 3, 2, 4, 0);
        let m = Meta::parse(&b).unwrap();
        assert_eq!(m.validate(), Ok(()));
        assert_eq!((m.root.root, m.freelist, m.pgid), (3, 2, 4));

        let mut bad = b.clone();
        bad[64] = 9; // txid changed, checksum stale
        assert!(matches!(
            Meta::parse(&bad).unwrap().validate(),
            Err(MetaError::BadChecksum { .. })
        ));
        bad[20] = 3;
        assert_eq!(
            Meta::parse(&bad).unwrap().validate(),
            Err(MetaError::BadVersion(3))
        );
        bad[16] = 0;
        assert!(matches!(
            Meta::parse(&bad).unwrap().validate(),
            Err(MetaError::BadMagic(_))
        ));
        assert_eq!(Meta::parse(&b[..40]), Err(MetaError::Truncated));
    }

    #[test]
    fn zero_checksum_passes_like_bb136() {
        let mut b = meta_bytes(0, 4096, 3, 2, 4, 5);
        b[72..80].fill(0);
        let m = Meta::parse(&b).unwrap();
        assert!(m.validate().is_ok() && m.checksum_is_zero());
    }
}
