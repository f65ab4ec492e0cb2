//! Branch and leaf pages: element arrays and the key/value bytes they point at
//! (Go: `branchPageElement`, `leafPageElement`, bb136 `page.go`).
//!
//! Element `i` sits at `16 + 16*i`; its `pos` is measured from the element itself, not from
//! the page. A [`NodeView`] works the same over a page in the file and over an inline
//! bucket's page image inside a value.

use super::bytes::{slice, u32_at, u64_at};
use super::page::{PAGE_HEADER_SIZE, PageHeader, PageKind};
use super::{FormatError, PageId};

/// `leafPageElementSize` and `branchPageElementSize` (page.go).
pub const LEAF_ELEMENT_SIZE: usize = 16;
pub const BRANCH_ELEMENT_SIZE: usize = 16;
/// `minKeysPerPage` (page.go): bbolt never splits below two keys a page.
pub const MIN_KEYS_PER_PAGE: usize = 2;

/// The raw fields of a leaf element, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafElementRaw {
    pub flags: u32,
    pub pos: u32,
    pub ksize: u32,
    pub vsize: u32,
}

/// The raw fields of a branch element, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BranchElementRaw {
    pub pos: u32,
    pub ksize: u32,
    pub child: PageId,
}

/// A leaf entry: a key and its value (or a sub-bucket when `flags & BUCKET_LEAF_FLAG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafElement<'a> {
    pub flags: u32,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl LeafElement<'_> {
    pub fn is_bucket(&self) -> bool {
        self.flags & super::bucket::BUCKET_LEAF_FLAG != 0
    }
}

/// A branch entry: the first key of a child (at split time) and the child's page id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BranchElement<'a> {
    pub key: &'a [u8],
    pub child: PageId,
}

/// A branch or leaf page, borrowed. `data` spans the whole logical page (overflow included),
/// or the inline page image of an inline bucket.
#[derive(Debug, Clone, Copy)]
pub struct NodeView<'a> {
    pub header: PageHeader,
    data: &'a [u8],
}

impl<'a> NodeView<'a> {
    /// Checks the header type and that the element array fits; elements are checked on access.
    pub fn new(data: &'a [u8]) -> Result<NodeView<'a>, FormatError> {
        let header = PageHeader::parse(data)?;
        match header.kind() {
            PageKind::Branch | PageKind::Leaf => {}
            other => {
                return Err(FormatError::new(
                    8,
                    format!("expected a branch or leaf page, found {other}"),
                ));
            }
        }
        let need = PAGE_HEADER_SIZE + usize::from(header.count) * LEAF_ELEMENT_SIZE;
        if need > data.len() {
            return Err(FormatError::new(
                10,
                format!(
                    "element count {} needs {need} bytes, page has {}",
                    header.count,
                    data.len()
                ),
            ));
        }
        Ok(NodeView { header, data })
    }

    pub fn is_leaf(&self) -> bool {
        self.header.kind() == PageKind::Leaf
    }

    pub fn count(&self) -> usize {
        usize::from(self.header.count)
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }

    /// Offset of element `i` inside the page.
    pub fn element_offset(i: usize) -> usize {
        PAGE_HEADER_SIZE + i * LEAF_ELEMENT_SIZE
    }

    fn check_index(&self, i: usize) -> Result<usize, FormatError> {
        if i >= self.count() {
            return Err(FormatError::new(
                10,
                format!("element {i} beyond count {}", self.count()),
            ));
        }
        Ok(Self::element_offset(i))
    }

    pub fn leaf_raw(&self, i: usize) -> Result<LeafElementRaw, FormatError> {
        let at = self.check_index(i)?;
        let f = |o: usize| {
            u32_at(self.data, at + o).ok_or_else(|| FormatError::new(at, "element cut short"))
        };
        Ok(LeafElementRaw {
            flags: f(0)?,
            pos: f(4)?,
            ksize: f(8)?,
            vsize: f(12)?,
        })
    }

    pub fn branch_raw(&self, i: usize) -> Result<BranchElementRaw, FormatError> {
        let at = self.check_index(i)?;
        let short = || FormatError::new(at, "element cut short");
        Ok(BranchElementRaw {
            pos: u32_at(self.data, at).ok_or_else(short)?,
            ksize: u32_at(self.data, at + 4).ok_or_else(short)?,
            child: u64_at(self.data, at + 8).ok_or_else(short)?,
        })
    }

    pub fn leaf(&self, i: usize) -> Result<LeafElement<'a>, FormatError> {
        if !self.is_leaf() {
            return Err(FormatError::new(8, "leaf element read from a branch page"));
        }
        let raw = self.leaf_raw(i)?;
        let at = Self::element_offset(i);
        let start = at + raw.pos as usize;
        let (ks, vs) = (raw.ksize as usize, raw.vsize as usize);
        let kv = slice(self.data, start, ks.saturating_add(vs)).ok_or_else(|| {
            FormatError::new(
                at,
                format!(
                    "leaf element {i}: key+value [{start}, +{ks}+{vs}) runs past the page end {}",
                    self.data.len()
                ),
            )
        })?;
        Ok(LeafElement {
            flags: raw.flags,
            key: &kv[..ks],
            value: &kv[ks..],
        })
    }

    pub fn branch(&self, i: usize) -> Result<BranchElement<'a>, FormatError> {
        if self.is_leaf() {
            return Err(FormatError::new(8, "branch element read from a leaf page"));
        }
        let raw = self.branch_raw(i)?;
        let at = Self::element_offset(i);
        let start = at + raw.pos as usize;
        let key = slice(self.data, start, raw.ksize as usize).ok_or_else(|| {
            FormatError::new(
                at,
                format!(
                    "branch element {i}: key [{start}, +{}) runs past the page end {}",
                    raw.ksize,
                    self.data.len()
                ),
            )
        })?;
        Ok(BranchElement {
            key,
            child: raw.child,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::format::page::{BRANCH_PAGE_FLAG, LEAF_PAGE_FLAG};

    /// A leaf page image laid out as Go's `node.write` does.
    pub fn leaf_page(id: u64, entries: &[(u32, &[u8], &[u8])], size: usize) -> Vec<u8> {
        let mut p = vec![0u8; size];
        p[0..8].copy_from_slice(&id.to_le_bytes());
        p[8..10].copy_from_slice(&LEAF_PAGE_FLAG.to_le_bytes());
        p[10..12].copy_from_slice(&(entries.len() as u16).to_le_bytes());
        let mut data = PAGE_HEADER_SIZE + entries.len() * 16;
        for (i, (flags, k, v)) in entries.iter().enumerate() {
            let at = PAGE_HEADER_SIZE + i * 16;
            p[at..at + 4].copy_from_slice(&flags.to_le_bytes());
            p[at + 4..at + 8].copy_from_slice(&((data - at) as u32).to_le_bytes());
            p[at + 8..at + 12].copy_from_slice(&(k.len() as u32).to_le_bytes());
            p[at + 12..at + 16].copy_from_slice(&(v.len() as u32).to_le_bytes());
            p[data..data + k.len()].copy_from_slice(k);
            data += k.len();
            p[data..data + v.len()].copy_from_slice(v);
            data += v.len();
        }
        p
    }

    #[test]
    fn reads_leaf_elements() {
        let p = leaf_page(3, &[(0, b"a", b"xyz"), (1, b"bb", b"")], 128);
        let n = NodeView::new(&p).unwrap();
        assert!(n.is_leaf());
        let e = n.leaf(0).unwrap();
        assert_eq!(
            (e.key, e.value, e.is_bucket()),
            (&b"a"[..], &b"xyz"[..], false)
        );
        assert!(n.leaf(1).unwrap().is_bucket());
        assert!(n.leaf(2).is_err());
        assert!(n.branch(0).is_err());
    }

    #[test]
    fn rejects_out_of_page_elements() {
        let mut p = leaf_page(3, &[(0, b"a", b"xyz")], 64);
        p[28..32].copy_from_slice(&u32::MAX.to_le_bytes()); // vsize
        assert!(NodeView::new(&p).unwrap().leaf(0).is_err());
        p[10..12].copy_from_slice(&100u16.to_le_bytes()); // count
        assert!(NodeView::new(&p).is_err());
        p[8..10].copy_from_slice(&BRANCH_PAGE_FLAG.to_le_bytes());
        p[10..12].copy_from_slice(&1u16.to_le_bytes());
        p[20..24].copy_from_slice(&1000u32.to_le_bytes()); // branch ksize
        assert!(NodeView::new(&p).unwrap().branch(0).is_err());
    }
}
