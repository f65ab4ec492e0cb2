//! The freelist page: a sorted array of free page ids (bb136 `freelist.go: read/write`).

use super::bytes::{put_u64, u64_at};
use super::page::{FREELIST_PAGE_FLAG, PAGE_HEADER_SIZE, PageHeader};
use super::{DamageKind, FormatError, PageId};

/// `count` value meaning "the real count is the first u64 of the data" (freelist.go `read`).
pub const FREELIST_COUNT_ESCAPE: u16 = 0xFFFF;

/// The ids stored in a freelist page, borrowed from the page bytes.
#[derive(Debug, Clone, Copy)]
pub struct FreelistView<'a> {
    ids: &'a [u8],
    /// Offset of the first id inside the page (16, or 24 with the escape).
    pub ids_offset: usize,
}

impl<'a> FreelistView<'a> {
    /// `page` covers the whole logical page (header and overflow).
    pub fn parse(header: &PageHeader, page: &'a [u8]) -> Result<FreelistView<'a>, FormatError> {
        let (count, ids_offset) = if header.count == FREELIST_COUNT_ESCAPE {
            let n = u64_at(page, PAGE_HEADER_SIZE).ok_or_else(|| {
                FormatError::new(
                    DamageKind::Freelist,
                    PAGE_HEADER_SIZE,
                    "freelist count word is cut short",
                )
            })?;
            (n, PAGE_HEADER_SIZE + 8)
        } else {
            (u64::from(header.count), PAGE_HEADER_SIZE)
        };
        let room = (page.len().saturating_sub(ids_offset) / 8) as u64;
        if count > room {
            return Err(FormatError::new(
                DamageKind::Freelist,
                ids_offset,
                format!("freelist count {count} needs more room than the page's {room} slots"),
            ));
        }
        let end = ids_offset + count as usize * 8;
        Ok(FreelistView {
            ids: &page[ids_offset..end],
            ids_offset,
        })
    }

    pub fn len(&self) -> usize {
        self.ids.len() / 8
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = PageId> + 'a {
        self.ids
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")))
    }
}

/// Bytes a freelist page of `n` ids takes (`freelist.size`, freelist.go): with `n` at or
/// above the escape, one more u64 holds the count.
pub fn freelist_size(n: usize) -> usize {
    let escape = usize::from(n >= usize::from(FREELIST_COUNT_ESCAPE));
    PAGE_HEADER_SIZE + 8 * (n + escape)
}

/// Encode a freelist page (`freelist.write`, freelist.go) of the sorted `ids` into `page`
/// (at least [`freelist_size`] bytes, zeroed): `count` in the header, or the 0xFFFF escape
/// and the real count in the first u64.
pub fn write_freelist(page: &mut [u8], id: PageId, ids: &[PageId]) {
    let escaped = ids.len() >= usize::from(FREELIST_COUNT_ESCAPE);
    PageHeader {
        id,
        flags: FREELIST_PAGE_FLAG,
        count: if escaped {
            FREELIST_COUNT_ESCAPE
        } else {
            ids.len() as u16
        },
        overflow: 0,
    }
    .write(page);
    let mut at = PAGE_HEADER_SIZE;
    if escaped {
        put_u64(page, at, ids.len() as u64);
        at += 8;
    }
    for &pid in ids {
        put_u64(page, at, pid);
        at += 8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_freelists_read_back() {
        for n in [0usize, 3, 0xFFFE, 0xFFFF, 70000] {
            let ids: Vec<PageId> = (2..2 + n as u64).collect();
            let mut p = vec![0u8; freelist_size(n)];
            write_freelist(&mut p, 5, &ids);
            let h = PageHeader::parse(&p).unwrap();
            assert_eq!((h.id, h.flags), (5, FREELIST_PAGE_FLAG));
            let f = FreelistView::parse(&h, &p).unwrap();
            assert!(f.ids().eq(ids.iter().copied()), "{n} ids");
        }
    }

    #[test]
    fn count_escape() {
        let mut p = vec![0u8; 64];
        p[8] = 0x10;
        p[10..12].copy_from_slice(&0xFFFFu16.to_le_bytes());
        p[16..24].copy_from_slice(&2u64.to_le_bytes());
        p[24..32].copy_from_slice(&5u64.to_le_bytes());
        p[32..40].copy_from_slice(&9u64.to_le_bytes());
        let h = PageHeader::parse(&p).unwrap();
        let f = FreelistView::parse(&h, &p).unwrap();
        assert_eq!(f.ids().collect::<Vec<_>>(), vec![5, 9]);
        p[16..24].copy_from_slice(&1000u64.to_le_bytes());
        assert!(FreelistView::parse(&h, &p).is_err());
    }
}
