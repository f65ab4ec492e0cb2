//! Building one B+tree bottom-up from entries in key order.
//!
//! Leaves fill up to `page_size * fill_percent`; a full leaf goes out at the next page id
//! and hands `(first key, page id)` to the branch level above, which fills and goes out the
//! same way. `finish` flushes the levels bottom-up; the last page out is the root. Memory is
//! one pending page per level (plus borrowed keys), whatever the tree's size.
//!
//! The decisions depend on element sizes only, so the same builder either writes page
//! images ([`PageSink`]) or only counts pages ([`PageCounter`]): `analyze` sizes a
//! compacted `key` bucket from entry sizes with exactly the layout `compact` writes.

use std::io::Write;

use crate::format::PageId;
use crate::format::element::{BRANCH_ELEMENT_SIZE, LEAF_ELEMENT_SIZE, MIN_KEYS_PER_PAGE};
use crate::format::page::PAGE_HEADER_SIZE;

use super::pages::{BranchItem, LeafItem, PageSink, write_branch, write_leaf};

/// `node.write` panics at 0xFFFF elements (bb136 node.go); stay below.
const MAX_ELEMENTS: usize = 0xFFFE;

/// Where a builder's nodes go.
pub trait Nodes<'a> {
    /// A leaf element.
    type Leaf;
    /// What a branch element keeps of its child's first key.
    type Key: Copy;
    /// Bytes the element adds to a leaf node.
    fn leaf_size(item: &Self::Leaf) -> usize;
    fn leaf_key(item: &Self::Leaf) -> Self::Key;
    fn key_len(key: Self::Key) -> usize;
    fn page_size(&self) -> usize;
    /// Put out a leaf node of `size` bytes; returns its first page id.
    fn leaf(&mut self, size: usize, items: &[Self::Leaf]) -> std::io::Result<PageId>;
    fn branch(&mut self, size: usize, items: &[BranchItem<Self::Key>]) -> std::io::Result<PageId>;
}

impl<'a, W: Write> Nodes<'a> for PageSink<W> {
    type Leaf = LeafItem<'a>;
    type Key = &'a [u8];

    fn leaf_size(item: &LeafItem<'a>) -> usize {
        item.size()
    }

    fn leaf_key(item: &LeafItem<'a>) -> &'a [u8] {
        item.key
    }

    fn key_len(key: &'a [u8]) -> usize {
        key.len()
    }

    fn page_size(&self) -> usize {
        PageSink::page_size(self)
    }

    fn leaf(&mut self, size: usize, items: &[LeafItem<'a>]) -> std::io::Result<PageId> {
        self.emit(size, |buf, id, ov| write_leaf(buf, id, ov, items))
    }

    fn branch(&mut self, size: usize, items: &[BranchItem<&'a [u8]>]) -> std::io::Result<PageId> {
        self.emit(size, |buf, id, ov| write_branch(buf, id, ov, items))
    }
}

/// A leaf element known by its lengths only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementLen {
    pub key: u32,
    pub value: u32,
}

/// Counts the pages a tree takes; page ids are counted from 0.
#[derive(Debug, Clone)]
pub struct PageCounter {
    page_size: usize,
    pub pages: u64,
}

impl PageCounter {
    pub fn new(page_size: usize) -> PageCounter {
        PageCounter {
            page_size,
            pages: 0,
        }
    }

    fn take(&mut self, size: usize) -> PageId {
        let id = self.pages;
        self.pages += pages(size, self.page_size) as u64;
        id
    }
}

impl Nodes<'_> for PageCounter {
    type Leaf = ElementLen;
    type Key = u32;

    fn leaf_size(item: &ElementLen) -> usize {
        LEAF_ELEMENT_SIZE + item.key as usize + item.value as usize
    }

    fn leaf_key(item: &ElementLen) -> u32 {
        item.key
    }

    fn key_len(key: u32) -> usize {
        key as usize
    }

    fn page_size(&self) -> usize {
        self.page_size
    }

    fn leaf(&mut self, size: usize, _: &[ElementLen]) -> std::io::Result<PageId> {
        Ok(self.take(size))
    }

    fn branch(&mut self, size: usize, _: &[BranchItem<u32>]) -> std::io::Result<PageId> {
        Ok(self.take(size))
    }
}

struct Level<K> {
    items: Vec<BranchItem<K>>,
    size: usize,
}

/// Pages a node of `size` bytes occupies.
fn pages(size: usize, page_size: usize) -> usize {
    size.div_ceil(page_size).max(1)
}

/// Should an element of `s` bytes start a new node rather than join one of `cur` bytes?
/// Normally when it would pass the fill threshold. But once a node overflows anyway (large
/// keys or values), joining wins when the two together need strictly fewer pages than
/// apart: overflow tails are otherwise wasted. Nodes stay under `MAX_JOINED_PAGES`.
///
/// At fill 1.0 (the default) a node also takes the next element when closing it now would
/// leave more than an eighth of its last page empty, up to `MAX_PACKED_PAGES`: values of a
/// few KiB (Kubernetes objects) otherwise take a page each and leave a third of it empty.
/// A bbolt node may span pages with any number of elements (it overflows); small elements
/// never get here, since a full page then has less than an eighth left.
fn starts_new_node(cur: usize, s: usize, threshold: usize, page_size: usize) -> bool {
    if cur + s <= threshold {
        return false;
    }
    let joined = pages(cur + s, page_size);
    let apart = pages(cur, page_size) + pages(PAGE_HEADER_SIZE + s, page_size);
    if joined < apart && joined <= MAX_JOINED_PAGES {
        return false;
    }
    let left_empty = pages(cur, page_size) * page_size - cur;
    let packs = threshold >= page_size && left_empty > page_size / 8 && joined <= MAX_PACKED_PAGES;
    !packs
}

/// Upper bound on a node built by joining oversized elements.
const MAX_JOINED_PAGES: usize = 64;

/// Upper bound on a node that takes elements to fill its last page (32 KiB at 4 KiB pages:
/// a later write to it by bbolt copies no more than that).
const MAX_PACKED_PAGES: usize = 8;

pub struct TreeBuilder<'a, N: Nodes<'a>> {
    threshold: usize,
    page_size: usize,
    leaf: Vec<N::Leaf>,
    leaf_size: usize,
    levels: Vec<Level<N::Key>>,
}

impl<'a, N: Nodes<'a>> TreeBuilder<'a, N> {
    /// `threshold` = page_size * fill percent: a page is full when the next element would
    /// take it past this (a lone element larger than a page gets overflow pages).
    pub fn new(threshold: usize, page_size: usize) -> TreeBuilder<'a, N> {
        TreeBuilder {
            threshold,
            page_size,
            leaf: Vec::new(),
            leaf_size: PAGE_HEADER_SIZE,
            levels: Vec::new(),
        }
    }

    pub fn push(&mut self, nodes: &mut N, item: N::Leaf) -> std::io::Result<()> {
        let s = N::leaf_size(&item);
        if !self.leaf.is_empty()
            && (starts_new_node(self.leaf_size, s, self.threshold, self.page_size)
                || self.leaf.len() >= MAX_ELEMENTS)
        {
            self.flush_leaf(nodes)?;
        }
        self.leaf_size += s;
        self.leaf.push(item);
        Ok(())
    }

    fn flush_leaf(&mut self, nodes: &mut N) -> std::io::Result<()> {
        let first = N::leaf_key(&self.leaf[0]);
        let id = nodes.leaf(self.leaf_size, &self.leaf)?;
        self.leaf.clear();
        self.leaf_size = PAGE_HEADER_SIZE;
        self.push_branch(
            nodes,
            0,
            BranchItem {
                key: first,
                child: id,
            },
        )
    }

    fn push_branch(
        &mut self,
        nodes: &mut N,
        level: usize,
        item: BranchItem<N::Key>,
    ) -> std::io::Result<()> {
        if level == self.levels.len() {
            self.levels.push(Level {
                items: Vec::new(),
                size: PAGE_HEADER_SIZE,
            });
        }
        let s = BRANCH_ELEMENT_SIZE + N::key_len(item.key);
        let l = &self.levels[level];
        // A branch page keeps at least `minKeysPerPage` (2) children even when that makes
        // it overflow: each level then at least halves, so the tree always converges.
        if l.items.len() >= MIN_KEYS_PER_PAGE
            && (starts_new_node(l.size, s, self.threshold, self.page_size)
                || l.items.len() >= MAX_ELEMENTS)
        {
            self.flush_branch(nodes, level)?;
        }
        let l = &mut self.levels[level];
        l.size += s;
        l.items.push(item);
        Ok(())
    }

    fn flush_branch(&mut self, nodes: &mut N, level: usize) -> std::io::Result<()> {
        let l = &mut self.levels[level];
        let first = l.items[0].key;
        let id = nodes.branch(l.size, &l.items)?;
        l.items.clear();
        l.size = PAGE_HEADER_SIZE;
        self.push_branch(
            nodes,
            level + 1,
            BranchItem {
                key: first,
                child: id,
            },
        )
    }

    /// Flush everything; returns the root page id. An empty tree is one empty leaf.
    pub fn finish(mut self, nodes: &mut N) -> std::io::Result<PageId> {
        if self.levels.is_empty() {
            return nodes.leaf(self.leaf_size, &self.leaf);
        }
        if !self.leaf.is_empty() {
            self.flush_leaf(nodes)?;
        }
        let mut level = 0;
        loop {
            if level + 1 == self.levels.len() {
                let l = &self.levels[level];
                if l.items.len() == 1 {
                    return Ok(l.items[0].child);
                }
                return nodes.branch(l.size, &l.items);
            }
            if !self.levels[level].items.is_empty() {
                self.flush_branch(nodes, level)?;
            }
            level += 1;
        }
    }
}

/// The pages of a tree of these elements (in key order) at fill `threshold`: what
/// [`TreeBuilder`] into a [`PageSink`] takes for the same elements.
pub fn tree_pages(
    threshold: usize,
    page_size: usize,
    items: impl IntoIterator<Item = ElementLen>,
) -> u64 {
    let mut counter = PageCounter::new(page_size);
    let mut tree = TreeBuilder::new(threshold, page_size);
    for it in items {
        // Counting cannot fail.
        let _ = tree.push(&mut counter, it);
    }
    let _ = tree.finish(&mut counter);
    counter.pages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::{Bucket, Db};
    use std::borrow::Cow;

    /// Build a db whose root bucket holds one bucket "b" with `n` keys, read it back.
    fn roundtrip(n: usize, vlen: usize) {
        let ps = 4096u32;
        let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("key-{i:08}").into_bytes()).collect();
        let value = vec![7u8; vlen];
        let mut sink = PageSink::new(Vec::new(), ps, 2);
        let mut t = TreeBuilder::new(ps as usize, ps as usize);
        for k in &keys {
            t.push(
                &mut sink,
                LeafItem {
                    flags: 0,
                    key: k,
                    value: Cow::Borrowed(&value),
                },
            )
            .unwrap();
        }
        let broot = t.finish(&mut sink).unwrap();
        let hdr = crate::format::bucket::BucketHeader {
            root: broot,
            sequence: 0,
        }
        .to_bytes()
        .to_vec();
        let mut r = TreeBuilder::new(ps as usize, ps as usize);
        r.push(
            &mut sink,
            LeafItem {
                flags: 1,
                key: b"b",
                value: Cow::Owned(hdr),
            },
        )
        .unwrap();
        let root = r.finish(&mut sink).unwrap();
        let pgid = sink.next_id();
        let body = sink.finish().unwrap();
        let m = super::super::pages::MetaFields {
            page_size: ps,
            flags: 0,
            root: crate::format::bucket::BucketHeader { root, sequence: 0 },
            freelist: u64::MAX,
            pgid,
            txid: 1,
        };
        let mut file = super::super::pages::meta_page(0, &m);
        file.extend(super::super::pages::meta_page(
            1,
            &super::super::pages::MetaFields { txid: 0, ..m },
        ));
        file.extend(body);
        let db = Db::from_bytes(file).unwrap();
        assert!(
            crate::check::check(&db).is_empty(),
            "{:?}",
            crate::check::check(&db)
        );
        let b = Bucket::root_of(&db).bucket(b"b").unwrap().unwrap();
        let got: Vec<Vec<u8>> = b.iter().map(|e| e.unwrap().key.to_vec()).collect();
        assert_eq!(got, keys);
    }

    #[test]
    fn builds_valid_trees() {
        roundtrip(0, 0);
        roundtrip(1, 10);
        roundtrip(3, 5000); // overflow leaves
        roundtrip(20_000, 20); // three levels
        roundtrip(300, 100);
    }

    /// The page counter takes exactly the pages the writer writes, for small, overflowing
    /// and mixed elements, large keys, and any fill.
    #[test]
    fn counting_equals_writing() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let big = vec![1u8; 3 * 16384];
        for case in 0..40 {
            let ps = [4096usize, 1024, 16384][case % 3];
            let fill = [1.0, 0.9, 0.5, 0.1][case % 4];
            let threshold = (ps as f64 * fill) as usize;
            let n = next(3000) as usize;
            let keys: Vec<Vec<u8>> = (0..n)
                .map(|i| {
                    let extra = if next(50) == 0 {
                        next(2 * ps as u64)
                    } else {
                        next(40)
                    };
                    let mut k = format!("{i:08}").into_bytes();
                    k.resize(8 + extra as usize, b'k');
                    k
                })
                .collect();
            let vlens: Vec<usize> = (0..n)
                .map(|_| match next(10) {
                    0 => next(3 * ps as u64),
                    1..=3 => 0,
                    _ => next(300),
                } as usize)
                .collect();
            let mut sink = PageSink::new(Vec::new(), ps as u32, 0);
            let mut t = TreeBuilder::new(threshold, ps);
            for (k, &v) in keys.iter().zip(&vlens) {
                let value = Cow::Borrowed(&big[..v]);
                t.push(
                    &mut sink,
                    LeafItem {
                        flags: 0,
                        key: k,
                        value,
                    },
                )
                .unwrap();
            }
            t.finish(&mut sink).unwrap();
            let counted = tree_pages(
                threshold,
                ps,
                keys.iter().zip(&vlens).map(|(k, &v)| ElementLen {
                    key: k.len() as u32,
                    value: v as u32,
                }),
            );
            assert_eq!(
                counted,
                sink.next_id(),
                "case {case}: {n} elements, page {ps}"
            );
        }
    }

    /// At fill 1.0 values of a few KiB share multi-page nodes instead of a page each; at a
    /// lower fill, and for small values, nodes stay one page.
    #[test]
    fn few_kib_values_pack_at_full_fill_only() {
        let elems = |n: usize, v: u32| (0..n).map(move |_| ElementLen { key: 17, value: v });
        // 64 elements of 2733 bytes: a page each is 64 leaves + a root (65). Packed, 11 go in
        // 8 pages (a 12th would make 9): 6 nodes, 47 pages, + the root.
        assert_eq!(tree_pages(4096, 4096, elems(64, 2700)), 48);
        // At fill 0.9 no packing: a page each.
        assert_eq!(tree_pages(3686, 4096, elems(64, 2700)), 65);
        // 133-byte elements: 30 fill a page with 90 bytes left (< 1/8), so 334 one-page
        // leaves, 3 branch pages of up to 123 children, and a root: 338.
        assert_eq!(tree_pages(4096, 4096, elems(10_000, 100)), 338);
    }

    #[test]
    fn branch_keys_larger_than_a_page_converge() {
        let ps = 4096usize;
        let keys: Vec<Vec<u8>> = (0..9u8).map(|i| vec![i; 5001]).collect();
        let mut sink = PageSink::new(Vec::new(), ps as u32, 2);
        let mut t = TreeBuilder::new(ps, ps);
        for k in &keys {
            t.push(
                &mut sink,
                LeafItem {
                    flags: 0,
                    key: k,
                    value: Cow::Borrowed(b""),
                },
            )
            .unwrap();
        }
        t.finish(&mut sink).unwrap();
        assert!(sink.next_id() < 60, "{} pages", sink.next_id());
    }
}
