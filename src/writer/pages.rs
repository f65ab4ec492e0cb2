//! Page images and the sequential page sink. Layouts are those of Go's `node.write`
//! (bb136 `node.go`), `freelist.write` and `meta.write` (bb136 `freelist.go`, `db.go`).

use std::io::Write;

use crate::format::PageId;
use crate::format::element::{BRANCH_ELEMENT_SIZE, LEAF_ELEMENT_SIZE};
use crate::format::meta::{MAGIC, META_OFFSET, VERSION, fnv1a64};
use crate::format::page::{
    BRANCH_PAGE_FLAG, FREELIST_PAGE_FLAG, LEAF_PAGE_FLAG, META_PAGE_FLAG, PAGE_HEADER_SIZE,
};

/// A leaf element waiting to be written: borrowed from the source where possible.
#[derive(Debug, Clone)]
pub struct LeafItem<'a> {
    pub flags: u32,
    pub key: &'a [u8],
    pub value: std::borrow::Cow<'a, [u8]>,
}

impl LeafItem<'_> {
    /// Bytes this element adds to a node (`leafPageElementSize + len(key) + len(value)`).
    pub fn size(&self) -> usize {
        LEAF_ELEMENT_SIZE + self.key.len() + self.value.len()
    }
}

/// A branch element waiting to be written: a child's first key (`&[u8]`; its length when
/// only counting pages) and page id.
#[derive(Debug, Clone, Copy)]
pub struct BranchItem<K> {
    pub key: K,
    pub child: PageId,
}

impl BranchItem<&[u8]> {
    pub fn size(&self) -> usize {
        BRANCH_ELEMENT_SIZE + self.key.len()
    }
}

/// Node size as Go computes it (`node.size`): header plus elements plus data.
pub fn leaf_size(items: &[LeafItem<'_>]) -> usize {
    PAGE_HEADER_SIZE + items.iter().map(LeafItem::size).sum::<usize>()
}

fn header(buf: &mut [u8], id: PageId, flags: u16, count: u16, overflow: u32) {
    buf[0..8].copy_from_slice(&id.to_le_bytes());
    buf[8..10].copy_from_slice(&flags.to_le_bytes());
    buf[10..12].copy_from_slice(&count.to_le_bytes());
    buf[12..16].copy_from_slice(&overflow.to_le_bytes());
}

fn count16(n: usize) -> u16 {
    // `node.write` panics at >= 0xFFFF elements; the builders split long before that.
    assert!(n < 0xFFFF, "{n} elements in one page");
    n as u16
}

/// Write a leaf page image (`id`, `overflow`) into `buf`, which is `(overflow+1)*page_size`
/// long and zeroed past the data. Also used for inline bucket pages (id 0, overflow 0).
pub fn write_leaf(buf: &mut [u8], id: PageId, overflow: u32, items: &[LeafItem<'_>]) {
    header(buf, id, LEAF_PAGE_FLAG, count16(items.len()), overflow);
    let mut data = PAGE_HEADER_SIZE + items.len() * LEAF_ELEMENT_SIZE;
    for (i, it) in items.iter().enumerate() {
        let at = PAGE_HEADER_SIZE + i * LEAF_ELEMENT_SIZE;
        buf[at..at + 4].copy_from_slice(&it.flags.to_le_bytes());
        buf[at + 4..at + 8].copy_from_slice(&((data - at) as u32).to_le_bytes());
        buf[at + 8..at + 12].copy_from_slice(&(it.key.len() as u32).to_le_bytes());
        buf[at + 12..at + 16].copy_from_slice(&(it.value.len() as u32).to_le_bytes());
        buf[data..data + it.key.len()].copy_from_slice(it.key);
        data += it.key.len();
        buf[data..data + it.value.len()].copy_from_slice(&it.value);
        data += it.value.len();
    }
}

pub fn write_branch(buf: &mut [u8], id: PageId, overflow: u32, items: &[BranchItem<&[u8]>]) {
    header(buf, id, BRANCH_PAGE_FLAG, count16(items.len()), overflow);
    let mut data = PAGE_HEADER_SIZE + items.len() * BRANCH_ELEMENT_SIZE;
    for (i, it) in items.iter().enumerate() {
        let at = PAGE_HEADER_SIZE + i * BRANCH_ELEMENT_SIZE;
        buf[at..at + 4].copy_from_slice(&((data - at) as u32).to_le_bytes());
        buf[at + 4..at + 8].copy_from_slice(&(it.key.len() as u32).to_le_bytes());
        buf[at + 8..at + 16].copy_from_slice(&it.child.to_le_bytes());
        buf[data..data + it.key.len()].copy_from_slice(it.key);
        data += it.key.len();
    }
}

/// An empty freelist page (`count = 0`): the copy has no free pages.
pub fn write_empty_freelist(buf: &mut [u8], id: PageId) {
    header(buf, id, FREELIST_PAGE_FLAG, 0, 0);
}

/// The fields a meta page carries.
#[derive(Debug, Clone, Copy)]
pub struct MetaFields {
    pub page_size: u32,
    pub root: PageId,
    pub root_sequence: u64,
    pub freelist: PageId,
    pub pgid: PageId,
    pub txid: u64,
}

/// A meta page image at page `id` (0 or 1), checksum included (`meta.write`, db.go).
pub fn meta_page(id: PageId, m: &MetaFields) -> Vec<u8> {
    let mut b = vec![0u8; m.page_size as usize];
    header(&mut b, id, META_PAGE_FLAG, 0, 0);
    let o = META_OFFSET;
    b[o..o + 4].copy_from_slice(&MAGIC.to_le_bytes());
    b[o + 4..o + 8].copy_from_slice(&VERSION.to_le_bytes());
    b[o + 8..o + 12].copy_from_slice(&m.page_size.to_le_bytes());
    b[o + 16..o + 24].copy_from_slice(&m.root.to_le_bytes());
    b[o + 24..o + 32].copy_from_slice(&m.root_sequence.to_le_bytes());
    b[o + 32..o + 40].copy_from_slice(&m.freelist.to_le_bytes());
    b[o + 40..o + 48].copy_from_slice(&m.pgid.to_le_bytes());
    b[o + 48..o + 56].copy_from_slice(&m.txid.to_le_bytes());
    let sum = fnv1a64(&b[o..o + 56]);
    b[o + 56..o + 64].copy_from_slice(&sum.to_le_bytes());
    b
}

/// How many bytes of page images [`PageSink`] gathers before one `write` to its output.
pub const SINK_BUFFER: usize = 8 << 20;

/// Pages go out in id order. Their images are built in place in one buffer, which goes to
/// `out` in one `write` when full: no copy between building and writing.
pub struct PageSink<W: Write> {
    out: W,
    page_size: usize,
    next: PageId,
    buf: Vec<u8>,
    /// Bytes of page images made so far (allocated, when planning).
    pub written: u64,
    /// Allocate page ids only: no images are built or written (exact sizes, at the cost
    /// of walking the source).
    pub plan_only: bool,
}

impl<W: Write> PageSink<W> {
    /// Starts at page 2: the caller writes the two meta pages (placeholders first).
    pub fn new(out: W, page_size: u32, first: PageId) -> PageSink<W> {
        PageSink {
            out,
            page_size: page_size as usize,
            next: first,
            buf: Vec::new(),
            written: 0,
            plan_only: false,
        }
    }

    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The next page id to be allocated (the high-water mark so far).
    pub fn next_id(&self) -> PageId {
        self.next
    }

    /// Allocate `ceil(size / page_size)` pages, let `fill` write the image, send it out.
    pub fn emit(
        &mut self,
        size: usize,
        fill: impl FnOnce(&mut [u8], PageId, u32),
    ) -> std::io::Result<PageId> {
        let span = size.div_ceil(self.page_size).max(1);
        let len = span * self.page_size;
        let id = self.next;
        if !self.plan_only {
            if self.buf.len() + len > SINK_BUFFER && !self.buf.is_empty() {
                self.out.write_all(&self.buf)?;
                self.buf.clear();
            }
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(SINK_BUFFER.max(len));
            }
            let at = self.buf.len();
            self.buf.resize(at + len, 0);
            fill(&mut self.buf[at..], id, (span - 1) as u32);
        }
        self.next += span as u64;
        self.written += len as u64;
        Ok(id)
    }

    /// Plan only: allocate `n` pages laid out elsewhere; returns the last (a tree's root
    /// goes out last).
    pub fn skip(&mut self, n: u64) -> PageId {
        debug_assert!(self.plan_only && n > 0);
        self.next += n;
        self.written += n * self.page_size as u64;
        self.next - 1
    }

    /// Write out what is still buffered; returns the output.
    pub fn finish(mut self) -> std::io::Result<W> {
        if !self.buf.is_empty() {
            self.out.write_all(&self.buf)?;
        }
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::element::NodeView;
    use crate::format::meta::Meta;
    use std::borrow::Cow;

    #[test]
    fn leaf_image_reads_back() {
        let items = [
            LeafItem {
                flags: 0,
                key: b"a",
                value: Cow::Borrowed(b"xyz"),
            },
            LeafItem {
                flags: 1,
                key: b"bb",
                value: Cow::Owned(vec![]),
            },
        ];
        let mut buf = vec![0u8; 4096];
        write_leaf(&mut buf, 9, 0, &items);
        let n = NodeView::new(&buf).unwrap();
        assert_eq!(n.header.id, 9);
        assert_eq!(n.leaf(0).unwrap().value, b"xyz");
        assert!(n.leaf(1).unwrap().is_bucket());
        assert_eq!(leaf_size(&items), 16 + 16 + 4 + 16 + 2);
    }

    #[test]
    fn meta_validates() {
        let m = MetaFields {
            page_size: 4096,
            root: 3,
            root_sequence: 0,
            freelist: u64::MAX,
            pgid: 4,
            txid: 5,
        };
        let b = meta_page(1, &m);
        let parsed = Meta::parse(&b).unwrap();
        assert!(parsed.validate().is_ok());
        assert_eq!((parsed.header.id, parsed.txid, parsed.pgid), (1, 5, 4));
    }
}
