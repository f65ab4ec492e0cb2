//! Page images and the sequential page sink. Layouts are those of Go's `node.write`
//! (bb136 `node.go`), `freelist.write` and `meta.write` (bb136 `freelist.go`, `db.go`).

use std::io::Write;

use crate::format::PageId;
use crate::format::element::{
    BRANCH_ELEMENT_SIZE, BranchElement, LEAF_ELEMENT_SIZE, LeafElement, write_branch_node,
    write_leaf_node,
};
use crate::format::freelist::write_freelist;
pub use crate::format::meta::MetaFields;
use crate::format::meta::write_meta_page;

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

    /// The element as the format encodes it.
    pub fn element(&self) -> LeafElement<'_> {
        LeafElement {
            flags: self.flags,
            key: self.key,
            value: &self.value,
        }
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
#[cfg(test)]
pub fn leaf_size(items: &[LeafItem<'_>]) -> usize {
    crate::format::element::leaf_node_size(items.iter().map(LeafItem::element))
}

/// Write a leaf page image (`id`, `overflow`) into `buf`, which is `(overflow+1)*page_size`
/// long and zeroed past the data. Also used for inline bucket pages (id 0, overflow 0).
pub fn write_leaf(buf: &mut [u8], id: PageId, overflow: u32, items: &[LeafItem<'_>]) {
    write_leaf_node(buf, id, overflow, items.iter().map(LeafItem::element));
}

pub fn write_branch(buf: &mut [u8], id: PageId, overflow: u32, items: &[BranchItem<&[u8]>]) {
    let elements = items.iter().map(|it| BranchElement {
        key: it.key,
        child: it.child,
    });
    write_branch_node(buf, id, overflow, elements);
}

/// An empty freelist page (`count = 0`): the copy has no free pages.
pub fn write_empty_freelist(buf: &mut [u8], id: PageId) {
    write_freelist(buf, id, &[]);
}

/// A meta page image at page `id` (0 or 1), checksum included (`meta.write`, db.go).
pub fn meta_page(id: PageId, m: &MetaFields) -> Vec<u8> {
    let mut b = vec![0u8; m.page_size as usize];
    write_meta_page(&mut b, id, m);
    b
}

/// How many bytes of page images [`PageSink`] gathers before one `write` to its output:
/// half a core's L2 cache, so the buffer is zeroed, filled and copied into the page cache
/// without going out to memory in between (8 MiB took 8-12% longer for a 457 MB copy,
/// BENCHMARKS.md; a `write` per 512 KiB costs nothing next to that).
pub const SINK_BUFFER: usize = 512 << 10;

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
            flags: 0,
            root: crate::format::bucket::BucketHeader {
                root: 3,
                sequence: 0,
            },
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
