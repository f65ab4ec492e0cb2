//! The meta page (pages 0 and 1): Go `type meta`, bb136 `db.go`.

use super::PageId;
use super::bucket::BucketHeader;
use super::bytes::{u32_at, u64_at};
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
        Ok(Meta {
            header,
            magic: m(0)?,
            version: m(4)?,
            page_size: m(8)?,
            flags: m(12)?,
            root: BucketHeader {
                root: q(16)?,
                sequence: q(24)?,
            },
            freelist: q(32)?,
            pgid: q(40)?,
            txid: q(48)?,
            checksum: q(56)?,
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
        b[0..8].copy_from_slice(&id.to_le_bytes());
        b[8..10].copy_from_slice(&META_PAGE_FLAG.to_le_bytes());
        b[16..20].copy_from_slice(&MAGIC.to_le_bytes());
        b[20..24].copy_from_slice(&VERSION.to_le_bytes());
        b[24..28].copy_from_slice(&page_size.to_le_bytes());
        b[32..40].copy_from_slice(&root.to_le_bytes());
        b[48..56].copy_from_slice(&freelist.to_le_bytes());
        b[56..64].copy_from_slice(&pgid.to_le_bytes());
        b[64..72].copy_from_slice(&txid.to_le_bytes());
        let sum = fnv1a64(&b[16..72]);
        b[72..80].copy_from_slice(&sum.to_le_bytes());
        b
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
