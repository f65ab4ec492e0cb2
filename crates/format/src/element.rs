//! Branch and leaf pages: element arrays and the key/value bytes they point at
//! (Go: `branchPageElement`, `leafPageElement`, bb136 `page.go`).
//!
//! Element `i` sits at `16 + 16*i`; its `pos` is measured from the element itself, not from
//! the page. A [`NodeView`] works the same over a page in the file and over an inline
//! bucket's page image inside a value.

use super::bytes::{put_u32, put_u64, slice, u32_at, u64_at};
use super::page::{
    BRANCH_PAGE_FLAG, COUNT_OFFSET, FLAGS_OFFSET, LEAF_PAGE_FLAG, PAGE_HEADER_SIZE, PageHeader,
    PageKind,
};
use super::{DamageKind, Field, FormatError, PageId};

/// `leafPageElementSize` and `branchPageElementSize` (page.go).
pub const LEAF_ELEMENT_SIZE: usize = 16;
pub const BRANCH_ELEMENT_SIZE: usize = 16;
/// Leaf element flag marking a sub-bucket (`bucketLeafFlag`, bucket.go).
pub const BUCKET_LEAF_FLAG: u32 = 0x01;
/// `minKeysPerPage` (page.go): bbolt never splits below two keys a page.
pub const MIN_KEYS_PER_PAGE: usize = 2;

/// Field offsets of `leafPageElement` (page.go): `flags, pos, ksize, vsize uint32`.
const LEAF_FLAGS: usize = 0;
const LEAF_POS: usize = 4;
const LEAF_KSIZE: usize = 8;
const LEAF_VSIZE: usize = 12;
/// Field offsets of `branchPageElement` (page.go): `pos, ksize uint32; pgid pgid`.
const BRANCH_POS: usize = 0;
const BRANCH_KSIZE: usize = 4;
const BRANCH_CHILD: usize = 8;
/// The elements' fields, in order, relative to the element.
pub const LEAF_ELEMENT_FIELDS: [Field; 4] = [
    Field {
        name: "flags",
        offset: LEAF_FLAGS,
        width: 4,
    },
    Field {
        name: "pos",
        offset: LEAF_POS,
        width: 4,
    },
    Field {
        name: "ksize",
        offset: LEAF_KSIZE,
        width: 4,
    },
    Field {
        name: "vsize",
        offset: LEAF_VSIZE,
        width: 4,
    },
];
pub const BRANCH_ELEMENT_FIELDS: [Field; 3] = [
    Field {
        name: "pos",
        offset: BRANCH_POS,
        width: 4,
    },
    Field {
        name: "ksize",
        offset: BRANCH_KSIZE,
        width: 4,
    },
    Field {
        name: "child",
        offset: BRANCH_CHILD,
        width: 8,
    },
];

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

impl LeafElementRaw {
    /// The element stored at `page[at..at + 16]`.
    #[inline]
    pub fn parse(page: &[u8], at: usize) -> Result<LeafElementRaw, FormatError> {
        let f = |o: usize| {
            u32_at(page, at + o)
                .ok_or_else(|| FormatError::new(DamageKind::Bounds, at, "element cut short"))
        };
        Ok(LeafElementRaw {
            flags: f(LEAF_FLAGS)?,
            pos: f(LEAF_POS)?,
            ksize: f(LEAF_KSIZE)?,
            vsize: f(LEAF_VSIZE)?,
        })
    }

    /// Store the element at `page[at..at + 16]`.
    pub fn write(&self, page: &mut [u8], at: usize) {
        put_u32(page, at + LEAF_FLAGS, self.flags);
        put_u32(page, at + LEAF_POS, self.pos);
        put_u32(page, at + LEAF_KSIZE, self.ksize);
        put_u32(page, at + LEAF_VSIZE, self.vsize);
    }
}

impl BranchElementRaw {
    /// The element stored at `page[at..at + 16]`.
    #[inline]
    pub fn parse(page: &[u8], at: usize) -> Result<BranchElementRaw, FormatError> {
        let short = || FormatError::new(DamageKind::Bounds, at, "element cut short");
        Ok(BranchElementRaw {
            pos: u32_at(page, at + BRANCH_POS).ok_or_else(short)?,
            ksize: u32_at(page, at + BRANCH_KSIZE).ok_or_else(short)?,
            child: u64_at(page, at + BRANCH_CHILD).ok_or_else(short)?,
        })
    }

    /// Store the element at `page[at..at + 16]`.
    pub fn write(&self, page: &mut [u8], at: usize) {
        put_u32(page, at + BRANCH_POS, self.pos);
        put_u32(page, at + BRANCH_KSIZE, self.ksize);
        put_u64(page, at + BRANCH_CHILD, self.child);
    }
}

/// A leaf entry: a key and its value (or a sub-bucket when `flags & BUCKET_LEAF_FLAG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafElement<'a> {
    pub flags: u32,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl LeafElement<'_> {
    #[inline]
    pub fn is_bucket(&self) -> bool {
        self.flags & BUCKET_LEAF_FLAG != 0
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
    #[inline]
    pub fn new(data: &'a [u8]) -> Result<NodeView<'a>, FormatError> {
        let header = PageHeader::parse(data)?;
        match header.kind() {
            PageKind::Branch | PageKind::Leaf => {}
            other => {
                return Err(FormatError::new(
                    DamageKind::PageType,
                    FLAGS_OFFSET,
                    format!("expected a branch or leaf page, found {other}"),
                ));
            }
        }
        let need = PAGE_HEADER_SIZE + usize::from(header.count) * LEAF_ELEMENT_SIZE;
        if need > data.len() {
            return Err(FormatError::new(
                DamageKind::Bounds,
                COUNT_OFFSET,
                format!(
                    "element count {} needs {need} bytes, page has {}",
                    header.count,
                    data.len()
                ),
            ));
        }
        Ok(NodeView { header, data })
    }

    #[inline]
    pub fn is_leaf(&self) -> bool {
        self.header.kind() == PageKind::Leaf
    }

    #[inline]
    pub fn count(&self) -> usize {
        usize::from(self.header.count)
    }

    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }

    /// Offset of element `i` inside the page.
    #[inline]
    pub fn element_offset(i: usize) -> usize {
        PAGE_HEADER_SIZE + i * LEAF_ELEMENT_SIZE
    }

    #[inline]
    fn check_index(&self, i: usize) -> Result<usize, FormatError> {
        if i >= self.count() {
            return Err(FormatError::new(
                DamageKind::Bounds,
                COUNT_OFFSET,
                format!("element {i} beyond count {}", self.count()),
            ));
        }
        Ok(Self::element_offset(i))
    }

    /// Bytes in use as Go's `Bucket.Stats` counts them (bucket.go: `LeafInuse`,
    /// `BranchInuse`): the header, all element headers but the last, and the end of the
    /// last element's data (`pos + ksize (+ vsize)`, measured from that element). Go indexes
    /// element `count-1` unconditionally (a `uint16` underflow on an empty branch page,
    /// which bbolt never writes); an empty page counts only its header here.
    pub fn used_bytes(&self) -> u64 {
        let count = self.count();
        let mut used = PAGE_HEADER_SIZE as u64;
        if count == 0 {
            return used;
        }
        // `new` checked that the element array fits, so these reads succeed.
        if self.is_leaf() {
            used += (LEAF_ELEMENT_SIZE * (count - 1)) as u64;
            if let Ok(e) = self.leaf_raw(count - 1) {
                used += u64::from(e.pos.wrapping_add(e.ksize).wrapping_add(e.vsize));
            }
        } else {
            used += (BRANCH_ELEMENT_SIZE * (count - 1)) as u64;
            if let Ok(e) = self.branch_raw(count - 1) {
                used += u64::from(e.pos.wrapping_add(e.ksize));
            }
        }
        used
    }

    #[inline]
    pub fn leaf_raw(&self, i: usize) -> Result<LeafElementRaw, FormatError> {
        LeafElementRaw::parse(self.data, self.check_index(i)?)
    }

    #[inline]
    pub fn branch_raw(&self, i: usize) -> Result<BranchElementRaw, FormatError> {
        BranchElementRaw::parse(self.data, self.check_index(i)?)
    }

    #[inline]
    pub fn leaf(&self, i: usize) -> Result<LeafElement<'a>, FormatError> {
        if !self.is_leaf() {
            return Err(FormatError::new(
                DamageKind::PageType,
                FLAGS_OFFSET,
                "leaf element read from a branch page",
            ));
        }
        let raw = self.leaf_raw(i)?;
        let at = Self::element_offset(i);
        let start = at + raw.pos as usize;
        let (ks, vs) = (raw.ksize as usize, raw.vsize as usize);
        let kv = slice(self.data, start, ks.saturating_add(vs)).ok_or_else(|| {
            FormatError::new(
                DamageKind::Bounds,
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

    #[inline]
    pub fn branch(&self, i: usize) -> Result<BranchElement<'a>, FormatError> {
        if self.is_leaf() {
            return Err(FormatError::new(
                DamageKind::PageType,
                FLAGS_OFFSET,
                "branch element read from a leaf page",
            ));
        }
        let raw = self.branch_raw(i)?;
        let at = Self::element_offset(i);
        let start = at + raw.pos as usize;
        let key = slice(self.data, start, raw.ksize as usize).ok_or_else(|| {
            FormatError::new(
                DamageKind::Bounds,
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

fn count16(n: usize) -> u16 {
    // `node.write` panics at >= 0xFFFF elements; the builders split long before that.
    assert!(n < 0xFFFF, "{n} elements in one page");
    n as u16
}

/// Bytes a leaf node of these elements takes (`node.size`, node.go): header, elements, data.
pub fn leaf_node_size<'e>(elements: impl IntoIterator<Item = LeafElement<'e>>) -> usize {
    PAGE_HEADER_SIZE
        + elements
            .into_iter()
            .map(|e| LEAF_ELEMENT_SIZE + e.key.len() + e.value.len())
            .sum::<usize>()
}

/// Encode a leaf page (`node.write`, node.go) into `page`, which holds the whole logical
/// page and is zeroed past the data: the header (id, overflow), the elements, then each
/// element's key and value, with `pos` measured from the element. Also an inline bucket's
/// page image (id 0, overflow 0).
pub fn write_leaf_node<'e>(
    page: &mut [u8],
    id: PageId,
    overflow: u32,
    elements: impl ExactSizeIterator<Item = LeafElement<'e>>,
) {
    let count = count16(elements.len());
    PageHeader {
        id,
        flags: LEAF_PAGE_FLAG,
        count,
        overflow,
    }
    .write(page);
    let mut data = PAGE_HEADER_SIZE + usize::from(count) * LEAF_ELEMENT_SIZE;
    for (i, e) in elements.enumerate() {
        let at = NodeView::element_offset(i);
        LeafElementRaw {
            flags: e.flags,
            pos: (data - at) as u32,
            ksize: e.key.len() as u32,
            vsize: e.value.len() as u32,
        }
        .write(page, at);
        page[data..data + e.key.len()].copy_from_slice(e.key);
        data += e.key.len();
        page[data..data + e.value.len()].copy_from_slice(e.value);
        data += e.value.len();
    }
}

/// Encode a branch page (`node.write`, node.go): header, elements, then each child's key.
pub fn write_branch_node<'e>(
    page: &mut [u8],
    id: PageId,
    overflow: u32,
    elements: impl ExactSizeIterator<Item = BranchElement<'e>>,
) {
    let count = count16(elements.len());
    PageHeader {
        id,
        flags: BRANCH_PAGE_FLAG,
        count,
        overflow,
    }
    .write(page);
    let mut data = PAGE_HEADER_SIZE + usize::from(count) * BRANCH_ELEMENT_SIZE;
    for (i, e) in elements.enumerate() {
        let at = NodeView::element_offset(i);
        BranchElementRaw {
            pos: (data - at) as u32,
            ksize: e.key.len() as u32,
            child: e.child,
        }
        .write(page, at);
        page[data..data + e.key.len()].copy_from_slice(e.key);
        data += e.key.len();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::page::BRANCH_PAGE_FLAG;

    /// A leaf page image laid out as Go's `node.write` does.
    pub fn leaf_page(id: u64, entries: &[(u32, &[u8], &[u8])], size: usize) -> Vec<u8> {
        let mut p = vec![0u8; size];
        let elements = entries
            .iter()
            .map(|&(flags, key, value)| LeafElement { flags, key, value });
        write_leaf_node(&mut p, id, 0, elements);
        p
    }

    #[test]
    fn branch_nodes_read_back() {
        let keys: [&[u8]; 2] = [b"a", b"mm"];
        let mut p = vec![0u8; 128];
        let elements = keys
            .iter()
            .zip([5u64, 9])
            .map(|(key, child)| BranchElement { key, child });
        write_branch_node(&mut p, 4, 0, elements);
        let n = NodeView::new(&p).unwrap();
        assert_eq!((n.header.id, n.is_leaf(), n.count()), (4, false, 2));
        assert_eq!(
            n.branch(1).unwrap(),
            BranchElement {
                key: b"mm",
                child: 9
            }
        );
        let raw = n.branch_raw(0).unwrap();
        let mut again = [0u8; 16];
        raw.write(&mut again, 0);
        assert_eq!(&again, &p[16..32]);
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
