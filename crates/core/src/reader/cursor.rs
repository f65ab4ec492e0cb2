//! Buckets and cursors: in-order iteration handing out `&[u8]` keys and values borrowed from
//! the map (Go: `Bucket`, `Cursor`, bb136 `bucket.go`, `cursor.go`).

use crate::error::{DamageKind, Error, Result};
use crate::format::PageId;
use crate::format::bucket::{BucketHeader, inline_page};
use crate::format::element::LeafElement;

use super::db::{Db, ResidentBudget};
use super::node::Node;

pub use super::limits::{Budget, MAX_TREE_DEPTH};

/// A leaf entry: a key/value pair, or a sub-bucket (then `value` is its bucket value).
pub type Entry<'a> = LeafElement<'a>;

#[derive(Debug, Clone, Copy)]
enum Root<'a> {
    Page(PageId),
    Inline(Node<'a>),
}

/// What is wrong with a plain key in the root bucket, where bbolt stores only buckets. One
/// wording for `check`, `snapshot status` and the writer, which all refuse it.
pub fn plain_key_in_root(key: &[u8]) -> String {
    format!(
        "the root bucket holds a plain key {} (bbolt only stores buckets there)",
        crate::format::text::hex_cut(key, 32)
    )
}

/// A bucket: the root bucket of the file or a (nested, possibly inline) sub-bucket.
#[derive(Clone, Copy)]
pub struct Bucket<'a> {
    db: &'a Db,
    header: BucketHeader,
    root: Root<'a>,
}

impl<'a> Bucket<'a> {
    /// The top-level bucket from the active meta.
    pub fn root_of(db: &'a Db) -> Bucket<'a> {
        let header = db.meta().root;
        Bucket {
            db,
            header,
            root: Root::Page(header.root),
        }
    }

    /// An empty (inline) bucket: what the copy holds for a bucket salvage creates anew.
    /// Its node has no elements, so nothing is ever located through its bytes (which are
    /// not the file's).
    pub fn empty(db: &'a Db) -> Bucket<'a> {
        /// A leaf page header with no elements.
        static EMPTY_LEAF: [u8; crate::format::page::PAGE_HEADER_SIZE] = {
            let mut p = [0u8; crate::format::page::PAGE_HEADER_SIZE];
            p[crate::format::page::FLAGS_OFFSET] = crate::format::page::LEAF_PAGE_FLAG as u8;
            p
        };
        let node = Node::new(db, &EMPTY_LEAF, true).expect("an empty leaf parses");
        Bucket {
            db,
            header: BucketHeader {
                root: 0,
                sequence: 0,
            },
            root: Root::Inline(node),
        }
    }

    /// A top-level bucket whose tree starts at page `root` (salvage: a copy of the root
    /// bucket's page found elsewhere in the file).
    pub fn at_page(db: &'a Db, root: PageId) -> Bucket<'a> {
        let header = BucketHeader { root, sequence: 0 };
        Bucket {
            db,
            header,
            root: Root::Page(root),
        }
    }

    /// The sub-bucket whose bucket value (leaf entry with the bucket flag) is `value`.
    pub fn open(db: &'a Db, value: &'a [u8]) -> Result<Bucket<'a>> {
        let at = db.offset_of(value);
        let header = crate::format::bucket::BucketHeader::parse(value)
            .map_err(|e| Error::corrupt(e.kind, db.page_at(at), at, e.what))?;
        let root = if header.is_inline() {
            let node = Node::new(db, inline_page(value), true)?;
            if !node.is_leaf() {
                return Err(node.err(crate::format::FormatError::new(
                    DamageKind::PageType,
                    crate::format::page::FLAGS_OFFSET,
                    "inline bucket page is not a leaf",
                )));
            }
            Root::Inline(node)
        } else {
            if header.root < 2 || header.root >= db.hwm() {
                return Err(Error::corrupt(
                    DamageKind::Bounds,
                    db.page_at(at),
                    at,
                    format!(
                        "bucket root points at page {}, outside [2, high-water mark {})",
                        header.root,
                        db.hwm()
                    ),
                ));
            }
            Root::Page(header.root)
        };
        Ok(Bucket { db, header, root })
    }

    pub fn db(&self) -> &'a Db {
        self.db
    }

    pub fn header(&self) -> BucketHeader {
        self.header
    }

    pub fn sequence(&self) -> u64 {
        self.header.sequence
    }

    pub fn is_inline(&self) -> bool {
        matches!(self.root, Root::Inline(_))
    }

    /// The root page id (0 for an inline bucket).
    pub fn root_page(&self) -> PageId {
        self.header.root
    }

    pub fn iter(&self) -> Cursor<'a> {
        Cursor {
            db: self.db,
            root: Some(self.root),
            stack: Vec::new(),
            budget: Budget::for_db(self.db),
            resident: ResidentBudget::new(self.db),
            lost: None,
            exhausted: false,
            root_part: None,
        }
    }

    /// The root branch node, when the bucket's root is a branch page (a part of it can
    /// then be iterated on its own: [`Bucket::iter_root_part`]).
    pub fn root_branch(&self) -> Result<Option<Node<'a>>> {
        match self.root {
            Root::Inline(_) => Ok(None),
            Root::Page(id) => {
                let node = self.db.node(id)?;
                Ok((!node.is_leaf()).then_some(node))
            }
        }
    }

    /// In-order iteration over the subtrees of the root node's elements `[from, to)`
    /// only. Parts side by side iterate the whole bucket between them, exactly once.
    pub fn iter_root_part(&self, from: usize, to: usize) -> Cursor<'a> {
        Cursor {
            root_part: Some((from, to)),
            ..self.iter()
        }
    }

    /// Iteration from the entry a cursor stood at ([`Cursor::resume_point`]), that entry
    /// first, to the end of the bucket (whatever part the first cursor covered).
    pub fn iter_resumed(&self, at: &Resume<'a>) -> Cursor<'a> {
        Cursor {
            root: None,
            stack: at.stack.clone(),
            ..self.iter()
        }
    }

    /// In-order iteration that steps over what it cannot read (a page out of bounds, of
    /// the wrong type, with elements outside it, ...), recording each such part with the
    /// key range it covered; [`Cursor::take_lost`] hands them out. It still stops (with an
    /// error) when the work budget runs out: that is a hostile shape, not damage.
    pub fn iter_salvaging(&self) -> Cursor<'a> {
        Cursor {
            lost: Some(Vec::new()),
            ..self.iter()
        }
    }

    /// In-order iteration from the first entry whose key is >= `key`.
    pub fn iter_from(&self, key: &[u8]) -> Result<Cursor<'a>> {
        let mut c = self.iter();
        c.seek(key)?;
        Ok(c)
    }

    /// The entry stored under `key`, by descending the tree (branch: greatest key <= `key`).
    pub fn get_entry(&self, key: &[u8]) -> Result<Option<Entry<'a>>> {
        let mut node = match self.root {
            Root::Inline(n) => n,
            Root::Page(id) => self.db.node(id)?,
        };
        for _ in 0..=MAX_TREE_DEPTH {
            if node.is_leaf() {
                for i in 0..node.count() {
                    let e = node.leaf(i)?;
                    if e.key == key {
                        return Ok(Some(e));
                    }
                }
                return Ok(None);
            }
            let mut child = None;
            for i in 0..node.count() {
                let e = node.branch(i)?;
                if i > 0 && e.key > key {
                    break;
                }
                child = Some(e.child);
            }
            let Some(child) = child else { return Ok(None) };
            node = self.db.node(child)?;
        }
        Err(Error::corrupt(
            DamageKind::Shape,
            node.page,
            node.base,
            "tree deeper than 64 levels: a cycle?",
        ))
    }

    /// The value under `key`, if it is a plain key (not a bucket).
    pub fn get(&self, key: &[u8]) -> Result<Option<&'a [u8]>> {
        Ok(self
            .get_entry(key)?
            .filter(|e| !e.is_bucket())
            .map(|e| e.value))
    }

    /// The sub-bucket named `name`.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'a>>> {
        match self.get_entry(name)? {
            Some(e) if e.is_bucket() => Bucket::open(self.db, e.value).map(Some),
            _ => Ok(None),
        }
    }

    /// The bucket at `path` below this one.
    pub fn bucket_path<P: AsRef<[u8]>>(&self, path: &[P]) -> Result<Option<Bucket<'a>>> {
        let mut b = *self;
        for name in path {
            match b.bucket(name.as_ref())? {
                Some(next) => b = next,
                None => return Ok(None),
            }
        }
        Ok(Some(b))
    }
}

/// How many sibling pages ahead a walk asks for (each a memory access that would
/// otherwise wait in turn).
pub const PREFETCH_AHEAD: usize = 4;

/// In-order iteration over one bucket's entries (not descending into sub-buckets). After
/// an error it yields nothing more. Bounded by a [`Budget`]: a tree whose pages are shared
/// yields an error instead of taking exponential time.
pub struct Cursor<'a> {
    db: &'a Db,
    root: Option<Root<'a>>,
    stack: Vec<(Node<'a>, usize)>,
    budget: Budget,
    resident: ResidentBudget,
    /// A salvaging cursor ([`Bucket::iter_salvaging`]) records what it cannot read here
    /// and goes on with the next sibling; a plain one stops at the first error.
    lost: Option<Vec<Lost>>,
    /// The work budget ran out: that ends even a salvaging cursor.
    exhausted: bool,
    /// Only the root node's elements `[from, to)` (a part of the bucket, for a pass split
    /// over threads: [`Bucket::iter_root_part`]).
    root_part: Option<(usize, usize)>,
}

/// Where a cursor stood: the path from the root to an entry, which a later cursor resumes
/// from ([`Cursor::resume_point`], [`Bucket::iter_resumed`]) without walking the entries
/// before it again.
#[derive(Clone)]
pub struct Resume<'a> {
    stack: Vec<(Node<'a>, usize)>,
}

/// A part of a bucket a salvaging cursor could not read: the damage, and the key range the
/// part covered as far as its parents' separator keys say (`from` inclusive, `to`
/// exclusive; `None`: the bucket's start or end).
#[derive(Debug)]
pub struct Lost {
    pub damage: Error,
    pub from: Option<Vec<u8>>,
    pub to: Option<Vec<u8>>,
}

impl<'a> Cursor<'a> {
    /// Where the entry returned last sits: its page and the file offset of its element.
    pub fn position(&self) -> Option<(PageId, u64)> {
        let (node, idx) = self.stack.last()?;
        Some((node.page, node.element_offset(idx.checked_sub(1)?)))
    }

    /// Where the entry returned last stands, for [`Bucket::iter_resumed`] to start from it.
    /// `None` before the first entry or after the end.
    pub fn resume_point(&self) -> Option<Resume<'a>> {
        let mut stack = self.stack.clone();
        let top = stack.last_mut()?;
        top.1 = top.1.checked_sub(1)?;
        Some(Resume { stack })
    }

    /// Position on the first entry >= `key` (a fresh cursor only): at each branch, the
    /// child whose range holds `key`; in the leaf, the first key not below it.
    fn seek(&mut self, key: &[u8]) -> Result<()> {
        match self.root.take() {
            Some(Root::Inline(n)) => self.stack.push((n, 0)),
            Some(Root::Page(id)) => self.push(id)?,
            None => return Ok(()),
        }
        while let Some(&(node, _)) = self.stack.last() {
            if node.is_leaf() {
                let mut i = 0;
                while i < node.count() && node.leaf(i)?.key < key {
                    i += 1;
                }
                if let Some(top) = self.stack.last_mut() {
                    top.1 = i;
                }
                return Ok(());
            }
            let mut c = 0;
            while c + 1 < node.count() && node.branch(c + 1)?.key <= key {
                c += 1;
            }
            if let Some(top) = self.stack.last_mut() {
                top.1 = c + 1;
            }
            let child = self.child(node, c)?;
            self.push(child)?;
        }
        Ok(())
    }

    /// The child that branch element `i` names, checked to be a page a tree can hold.
    fn child(&self, node: Node<'a>, i: usize) -> Result<PageId> {
        let child = node.branch(i)?.child;
        // Located at the element: there is nothing to see at the page it names.
        let hwm = self.db.hwm();
        if child < 2 || child >= hwm {
            return Err(Error::corrupt(
                DamageKind::Bounds,
                node.page,
                node.element_offset(i) + 8,
                format!(
                    "branch element {i} points at page {child}, outside [2, high-water mark {hwm})"
                ),
            ));
        }
        Ok(child)
    }

    fn push(&mut self, id: PageId) -> Result<()> {
        if self.stack.len() >= MAX_TREE_DEPTH
            || self.stack.iter().any(|(n, _)| !n.inline && n.page == id)
        {
            return Err(Error::corrupt(
                DamageKind::Shape,
                id,
                self.db.page_offset(id).unwrap_or(u64::MAX),
                "page is its own ancestor (a cycle in the tree)",
            ));
        }
        let node = self.db.node(id)?;
        self.resident.read(self.db, node.view.bytes().len() as u64);
        self.stack.push((node, 0));
        Ok(())
    }

    /// The parts a salvaging cursor could not read so far (empty for a plain cursor).
    pub fn take_lost(&mut self) -> Vec<Lost> {
        self.lost.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The exclusive upper key bound of the subtree being entered: the next separator key
    /// up the stack (the top frame's index is already past the child).
    fn upper_bound(&self) -> Option<Vec<u8>> {
        self.stack.iter().rev().find_map(|(node, idx)| {
            (!node.is_leaf() && *idx < node.count())
                .then(|| node.branch(*idx).ok().map(|b| b.key.to_vec()))
                .flatten()
        })
    }

    /// Record `damage` over `[from, the upper bound)` (a salvaging cursor).
    fn salvage(&mut self, damage: Error, from: Option<Vec<u8>>) {
        let to = self.upper_bound();
        if let Some(lost) = self.lost.as_mut() {
            lost.push(Lost { damage, from, to });
        }
    }

    fn step(&mut self) -> Result<Option<Entry<'a>>> {
        loop {
            match self.step_once() {
                Err(e @ Error::Corrupt { .. }) if self.lost.is_some() && !self.exhausted => {
                    let from = self.drop_damaged();
                    self.salvage(e, from);
                }
                other => return other,
            }
        }
    }

    /// After damage met at the top of the stack: drop what cannot be read and say where
    /// the lost range starts. A child that cannot be entered is skipped (its parent goes on
    /// with the next one); a node whose elements cannot be read is dropped whole.
    fn drop_damaged(&mut self) -> Option<Vec<u8>> {
        let (node, idx) = *self.stack.last()?;
        if !node.is_leaf()
            && let Ok(b) = node.branch(idx.saturating_sub(1))
        {
            return Some(b.key.to_vec()); // the child behind element idx-1
        }
        let from = if node.is_leaf() && idx >= 2 {
            // Just after the last entry read: the smallest key above it.
            node.leaf(idx - 2).ok().map(|e| [e.key, &[0]].concat())
        } else {
            None
        };
        self.stack.pop();
        from.or_else(|| {
            let (parent, pidx) = *self.stack.last()?;
            parent
                .branch(pidx.checked_sub(1)?)
                .ok()
                .map(|b| b.key.to_vec())
        })
    }

    fn step_once(&mut self) -> Result<Option<Entry<'a>>> {
        if let Some(root) = self.root.take() {
            match root {
                Root::Inline(n) => self.stack.push((n, 0)),
                Root::Page(id) => self.push(id)?,
            }
            if let (Some((from, _)), Some(bottom)) = (self.root_part, self.stack.first_mut()) {
                bottom.1 = from;
            }
        }
        let part_end = self.root_part.map(|(_, to)| to);
        loop {
            let depth = self.stack.len();
            let Some((node, idx)) = self.stack.last_mut() else {
                break;
            };
            let (node, i) = (*node, *idx);
            let end = match part_end {
                Some(to) if depth == 1 => to.min(node.count()),
                _ => node.count(),
            };
            if i >= end {
                self.stack.pop();
                continue;
            }
            *idx += 1;
            let spent = if node.is_leaf() {
                let e = node.leaf(i)?;
                // The caller reads this key and value next; the next entry's sit further
                // into the page, in lines not loaded yet.
                // (Bounds checked first: an out-of-range read builds an error message.)
                if i + 1 < node.count()
                    && let Ok(next) = node.leaf(i + 1)
                {
                    self.db.prefetch_from(next.key);
                }
                if self.budget.spend(e.key.len().saturating_add(e.value.len())) {
                    return Ok(Some(e));
                }
                false
            } else {
                self.budget.spend(node.branch(i)?.key.len())
            };
            if !spent {
                self.exhausted = true;
                return Err(Error::corrupt(
                    DamageKind::Shape,
                    node.page,
                    node.element_offset(i),
                    Budget::exhausted(),
                ));
            }
            let child = self.child(node, i)?;
            // Children are read in order: ask for the memory of one a few ahead now.
            if i + PREFETCH_AHEAD < node.count()
                && let Ok(next) = node.branch(i + PREFETCH_AHEAD)
            {
                self.db.prefetch_page(next.child);
            }
            self.push(child)?;
        }
        Ok(None)
    }
}

impl<'a> Iterator for Cursor<'a> {
    type Item = Result<Entry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.stack.clear();
                self.root = None;
                Some(Err(e))
            }
        }
    }
}

/// Depth-first, in key order: every entry of `bucket` and of its sub-buckets. `f` gets the
/// path of the bucket holding the entry, the entry, and for a sub-bucket entry the opened
/// sub-bucket (visited right after). Stops at the first error. One [`Budget`] covers the
/// whole visit, so buckets that share pages or values cannot multiply the work.
pub fn visit_all<'a, F>(bucket: Bucket<'a>, path: &mut Vec<&'a [u8]>, f: &mut F) -> Result<()>
where
    F: FnMut(&[&'a [u8]], &Entry<'a>, Option<&Bucket<'a>>) -> Result<()>,
{
    let mut budget = Budget::for_db(bucket.db);
    visit_bucket(bucket, path, f, &mut budget)
}

fn visit_bucket<'a, F>(
    bucket: Bucket<'a>,
    path: &mut Vec<&'a [u8]>,
    f: &mut F,
    budget: &mut Budget,
) -> Result<()>
where
    F: FnMut(&[&'a [u8]], &Entry<'a>, Option<&Bucket<'a>>) -> Result<()>,
{
    let mut cursor = bucket.iter();
    cursor.budget = *budget;
    while let Some(e) = cursor.next() {
        let e = e?;
        if e.is_bucket() {
            if path.len() >= super::limits::MAX_BUCKET_DEPTH {
                let at = bucket.db.offset_of(e.value);
                return Err(Error::corrupt(
                    DamageKind::Shape,
                    bucket.db.page_at(at),
                    at,
                    "buckets nested too deep",
                ));
            }
            let sub = Bucket::open(bucket.db, e.value)?;
            f(path, &e, Some(&sub))?;
            path.push(e.key);
            *budget = cursor.budget;
            let r = visit_bucket(sub, path, f, budget);
            cursor.budget = *budget;
            path.pop();
            r?;
        } else {
            f(path, &e, None)?;
        }
    }
    *budget = cursor.budget;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OpenOptions;

    fn fixture(path: &str) -> Db {
        let p = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join(path);
        Db::open(&p, OpenOptions { lock: false }).unwrap()
    }

    /// Parts of the root's elements side by side iterate the bucket once; a cursor resumed
    /// where another stood yields the rest from that entry on.
    #[test]
    fn root_parts_and_resume_points_cover_the_bucket_exactly() {
        let mut split_seen = false;
        for (file, bucket) in [
            ("testdata/bbolt/flat.db", &b"flat"[..]),
            ("testdata/bbolt/bigvalues.db", b"keys"),
            ("testdata/etcd/db", b"key"),
            ("testdata/etcd/db", b"meta"),
        ] {
            let db = fixture(file);
            let b = Bucket::root_of(&db).bucket(bucket).unwrap().unwrap();
            let keys =
                |c: Cursor<'_>| -> Vec<Vec<u8>> { c.map(|e| e.unwrap().key.to_vec()).collect() };
            let all = keys(b.iter());
            // (A leaf root is one part: the copy's split needs a branch.)
            let n = b.root_branch().unwrap().map_or(0, |r| r.count());
            split_seen |= n > 1;
            for at in (0..=n).filter(|_| n > 0) {
                let mut parts = keys(b.iter_root_part(0, at));
                parts.extend(keys(b.iter_root_part(at, n)));
                assert_eq!(parts, all, "{file} {bucket:?} split at {at}");
            }
            for skip in [0, 1, all.len() / 2, all.len().saturating_sub(1)] {
                let mut c = b.iter();
                c.by_ref().take(skip + 1).for_each(drop);
                let Some(at) = c.resume_point() else {
                    continue;
                };
                assert_eq!(
                    keys(b.iter_resumed(&at)),
                    all[skip..],
                    "{file} {bucket:?} {skip}"
                );
            }
        }
        assert!(split_seen, "no fixture has a branch root");
    }

    /// `iter_from(k)` yields exactly the entries of `iter()` whose key is >= k: for every
    /// key, and for probes between, before and after them.
    #[test]
    fn iter_from_is_the_suffix_of_iter() {
        for (file, bucket) in [
            ("testdata/bbolt/flat.db", &b"flat"[..]),
            ("testdata/bbolt/bigvalues.db", b"bigkeys"),
            ("testdata/bbolt/bigvalues.db", b"keys"),
            ("testdata/etcd/db", b"key"),
            ("testdata/etcd/db", b"meta"),
        ] {
            let db = fixture(file);
            let b = Bucket::root_of(&db).bucket(bucket).unwrap().unwrap();
            let all: Vec<Vec<u8>> = b.iter().map(|e| e.unwrap().key.to_vec()).collect();
            let mut probes: Vec<Vec<u8>> = vec![vec![], vec![0xff; 40]];
            for k in all.iter().step_by(7) {
                probes.push(k.clone());
                let mut above = k.clone();
                above.push(0);
                probes.push(above);
                probes.push(k[..k.len() - 1].to_vec());
            }
            for p in &probes {
                let want: Vec<&Vec<u8>> = all
                    .iter()
                    .filter(|k| k.as_slice() >= p.as_slice())
                    .collect();
                let got: Vec<Vec<u8>> = b
                    .iter_from(p)
                    .unwrap()
                    .map(|e| e.unwrap().key.to_vec())
                    .collect();
                assert_eq!(got.len(), want.len(), "{file} {bucket:?} from {p:?}");
                assert!(got.iter().zip(&want).all(|(g, w)| g == *w));
            }
        }
    }
}
