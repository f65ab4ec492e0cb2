//! Building one B+tree bottom-up from entries in key order.
//!
//! Leaves fill up to `page_size * fill_percent`; a full leaf goes out at the next page id
//! and hands `(first key, page id)` to the branch level above, which fills and goes out the
//! same way. `finish` flushes the levels bottom-up; the last page out is the root. Memory is
//! one pending page per level (plus borrowed keys), whatever the tree's size.

use std::io::Write;

use crate::format::PageId;
use crate::format::element::MIN_KEYS_PER_PAGE;
use crate::format::page::PAGE_HEADER_SIZE;

use super::pages::{BranchItem, LeafItem, PageSink, write_branch, write_leaf};

/// `node.write` panics at 0xFFFF elements (bb136 node.go); stay below.
const MAX_ELEMENTS: usize = 0xFFFE;

struct Level<'a> {
    items: Vec<BranchItem<'a>>,
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
fn starts_new_node(cur: usize, s: usize, threshold: usize, page_size: usize) -> bool {
    if cur + s <= threshold {
        return false;
    }
    let joined = pages(cur + s, page_size);
    let apart = pages(cur, page_size) + pages(PAGE_HEADER_SIZE + s, page_size);
    joined >= apart || joined > MAX_JOINED_PAGES
}

/// Upper bound on a node built by joining oversized elements.
const MAX_JOINED_PAGES: usize = 64;

pub struct TreeBuilder<'a> {
    threshold: usize,
    page_size: usize,
    leaf: Vec<LeafItem<'a>>,
    leaf_size: usize,
    levels: Vec<Level<'a>>,
}

impl<'a> TreeBuilder<'a> {
    /// `threshold` = page_size * fill percent: a page is full when the next element would
    /// take it past this (a lone element larger than a page gets overflow pages).
    pub fn new(threshold: usize, page_size: usize) -> TreeBuilder<'a> {
        TreeBuilder {
            threshold,
            page_size,
            leaf: Vec::new(),
            leaf_size: PAGE_HEADER_SIZE,
            levels: Vec::new(),
        }
    }

    pub fn push<W: Write>(
        &mut self,
        sink: &mut PageSink<W>,
        item: LeafItem<'a>,
    ) -> std::io::Result<()> {
        let s = item.size();
        if !self.leaf.is_empty()
            && (starts_new_node(self.leaf_size, s, self.threshold, self.page_size)
                || self.leaf.len() >= MAX_ELEMENTS)
        {
            self.flush_leaf(sink)?;
        }
        self.leaf_size += s;
        self.leaf.push(item);
        Ok(())
    }

    fn flush_leaf<W: Write>(&mut self, sink: &mut PageSink<W>) -> std::io::Result<()> {
        let first = self.leaf[0].key;
        let items = &self.leaf;
        let id = sink.emit(self.leaf_size, |buf, id, ov| write_leaf(buf, id, ov, items))?;
        self.leaf.clear();
        self.leaf_size = PAGE_HEADER_SIZE;
        self.push_branch(
            sink,
            0,
            BranchItem {
                key: first,
                child: id,
            },
        )
    }

    fn push_branch<W: Write>(
        &mut self,
        sink: &mut PageSink<W>,
        level: usize,
        item: BranchItem<'a>,
    ) -> std::io::Result<()> {
        if level == self.levels.len() {
            self.levels.push(Level {
                items: Vec::new(),
                size: PAGE_HEADER_SIZE,
            });
        }
        let s = item.size();
        let l = &self.levels[level];
        // A branch page keeps at least `minKeysPerPage` (2) children even when that makes
        // it overflow: each level then at least halves, so the tree always converges.
        if l.items.len() >= MIN_KEYS_PER_PAGE
            && (starts_new_node(l.size, s, self.threshold, self.page_size)
                || l.items.len() >= MAX_ELEMENTS)
        {
            self.flush_branch(sink, level)?;
        }
        let l = &mut self.levels[level];
        l.size += s;
        l.items.push(item);
        Ok(())
    }

    fn flush_branch<W: Write>(
        &mut self,
        sink: &mut PageSink<W>,
        level: usize,
    ) -> std::io::Result<()> {
        let l = &mut self.levels[level];
        let first = l.items[0].key;
        let items = &l.items;
        let id = sink.emit(l.size, |buf, id, ov| write_branch(buf, id, ov, items))?;
        l.items.clear();
        l.size = PAGE_HEADER_SIZE;
        self.push_branch(
            sink,
            level + 1,
            BranchItem {
                key: first,
                child: id,
            },
        )
    }

    /// Flush everything; returns the root page id. An empty tree is one empty leaf.
    pub fn finish<W: Write>(mut self, sink: &mut PageSink<W>) -> std::io::Result<PageId> {
        if self.levels.is_empty() {
            let items = &self.leaf;
            return sink.emit(self.leaf_size, |buf, id, ov| write_leaf(buf, id, ov, items));
        }
        if !self.leaf.is_empty() {
            self.flush_leaf(sink)?;
        }
        let mut level = 0;
        loop {
            if level + 1 == self.levels.len() {
                let l = &self.levels[level];
                if l.items.len() == 1 {
                    return Ok(l.items[0].child);
                }
                let items = &l.items;
                return sink.emit(l.size, |buf, id, ov| write_branch(buf, id, ov, items));
            }
            if !self.levels[level].items.is_empty() {
                self.flush_branch(sink, level)?;
            }
            level += 1;
        }
    }
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
        let mut hdr = broot.to_le_bytes().to_vec();
        hdr.extend_from_slice(&0u64.to_le_bytes());
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
        let body = sink.into_inner();
        let m = super::super::pages::MetaFields {
            page_size: ps,
            root,
            root_sequence: 0,
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
