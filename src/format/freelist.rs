//! The freelist page: a sorted array of free page ids (bb136 `freelist.go: read/write`).

use super::bytes::u64_at;
use super::page::{PAGE_HEADER_SIZE, PageHeader};
use super::{FormatError, PageId};

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
                FormatError::new(PAGE_HEADER_SIZE, "freelist count word is cut short")
            })?;
            (n, PAGE_HEADER_SIZE + 8)
        } else {
            (u64::from(header.count), PAGE_HEADER_SIZE)
        };
        let room = (page.len().saturating_sub(ids_offset) / 8) as u64;
        if count > room {
            return Err(FormatError::new(
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

#[cfg(test)]
mod tests {
    use super::*;

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
