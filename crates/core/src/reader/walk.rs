//! A depth-first walk over every bucket (nested and inline) and every page of the tree, that
//! reports what is wrong and goes on. `check`, the page map and statistics are built on it.
//!
//! Nothing here trusts the file: page ids are checked against the high-water mark and the
//! file, each physical page may be reached once (a second reach is reported and not
//! descended, which also stops cycles), nesting is bounded, and a [`Budget`] bounds the
//! elements, keys and values met (inline buckets are not pages: ones that share values could
//! otherwise multiply the work); when it runs out the walk reports it and stops.

use crate::error::{DamageKind, Error};
use crate::format::PageId;
use crate::format::bucket::BucketHeader;
use crate::format::element::{BranchElement, LeafElement};
use crate::format::page::PageKind;

use super::db::{Db, ResidentBudget};
use super::limits::{Budget, MAX_TREE_DEPTH};
pub use super::limits::{MAX_BUCKET_DEPTH, MAX_WALK_LEVELS};
use super::node::Node;

/// Something wrong in the file, located by page and byte offset.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The page the problem is on.
    pub page: PageId,
    /// Where in the file, in bytes from its start.
    #[serde(rename = "byte_offset")]
    pub offset: u64,
    /// What kind of damage (`bounds`, `page_type`, `key_order`, `shape`, `reach`, `meta`,
    /// `freelist`, `etcd`): for scripts to match on; `what` says the details.
    pub kind: DamageKind,
    /// The problem in words.
    pub what: String,
}

impl From<Error> for Problem {
    fn from(e: Error) -> Problem {
        match e {
            Error::Corrupt {
                page,
                offset,
                kind,
                what,
            } => Problem {
                page,
                offset,
                kind,
                what,
            },
            other => Problem {
                page: 0,
                offset: 0,
                kind: other.damage_kind().unwrap_or(DamageKind::Bounds),
                what: other.to_string(),
            },
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "page {} (byte offset {}): {}",
            self.page, self.offset, self.what
        )
    }
}

/// A bucket as the walk meets it.
#[derive(Debug, Clone)]
pub struct BucketInfo<'a> {
    /// Index in walk order; the root bucket is 0.
    pub index: usize,
    pub parent: Option<usize>,
    /// Names from the top; empty for the root bucket.
    pub path: Vec<&'a [u8]>,
    pub header: BucketHeader,
    /// Size of the bucket value for an inline bucket (header + page image).
    pub inline_len: Option<usize>,
}

/// Callbacks of [`walk`]. Every method has an empty default.
pub trait Visitor<'a> {
    fn bucket(&mut self, _b: &BucketInfo<'a>) {}
    /// A branch or leaf page of bucket `bucket`, at `depth` (0 = the bucket's root page).
    fn page(&mut self, _bucket: usize, _node: &Node<'a>, _depth: usize, _span: u64) {}
    fn entry(&mut self, _bucket: usize, _node: &Node<'a>, _e: &LeafElement<'a>) {}
    fn problem(&mut self, _p: Problem) {}
    /// Whether [`Visitor::entry`] reads the entries' values (not only their keys): the walk
    /// then asks for the memory of each leaf's next entry before handing over this one.
    fn reads_values(&self) -> bool {
        false
    }
    /// Where a split walk ([`super::split`]) leaves the helper's part: the helper's events
    /// come here in the one-thread walk's order.
    fn gap(&mut self) {}
}

/// Watches nothing.
impl Visitor<'_> for () {}

/// Two visitors on one walk (one pass over the pages instead of two).
pub struct Tee<'x, A, B>(pub &'x mut A, pub &'x mut B);

impl<'a, A: Visitor<'a>, B: Visitor<'a>> Visitor<'a> for Tee<'_, A, B> {
    fn bucket(&mut self, b: &BucketInfo<'a>) {
        self.0.bucket(b);
        self.1.bucket(b);
    }

    fn page(&mut self, bucket: usize, node: &Node<'a>, depth: usize, span: u64) {
        self.0.page(bucket, node, depth, span);
        self.1.page(bucket, node, depth, span);
    }

    fn entry(&mut self, bucket: usize, node: &Node<'a>, e: &LeafElement<'a>) {
        self.0.entry(bucket, node, e);
        self.1.entry(bucket, node, e);
    }

    fn problem(&mut self, p: Problem) {
        self.0.problem(p.clone());
        self.1.problem(p);
    }

    fn reads_values(&self) -> bool {
        self.0.reads_values() || self.1.reads_values()
    }

    fn gap(&mut self) {
        self.0.gap();
        self.1.gap();
    }
}

/// Walk the whole tree from the active meta's root. `premarked` pages (metas, the freelist)
/// count as already reached, so a bucket page overlapping them is reported.
pub fn walk<'a>(db: &'a Db, premarked: &[PageId], v: &mut impl Visitor<'a>) {
    let mut w = Walker::new(db, premarked, v);
    w.whole_tree();
}

impl<'a, 'v, V: Visitor<'a>> Walker<'a, 'v, V> {
    pub(super) fn new(db: &'a Db, premarked: &[PageId], v: &'v mut V) -> Self {
        let n = db.addressable_pages() as usize;
        let mut seen = vec![false; n];
        for &p in premarked {
            if let Some(s) = seen.get_mut(p as usize) {
                *s = true;
            }
        }
        Walker {
            db,
            seen,
            next_bucket: 0,
            levels: 0,
            budget: Budget::for_db(db),
            resident: ResidentBudget::new(db),
            stopped: false,
            problems: 0,
            delegated: None,
            v,
        }
    }

    pub(super) fn whole_tree(&mut self) {
        let db = self.db;
        let root = BucketInfo {
            index: 0,
            parent: None,
            path: Vec::new(),
            header: db.meta().root,
            inline_len: None,
        };
        self.next_bucket = 1;
        self.v.bucket(&root);
        let at = db.metas()[db.active_index()].offset + 32;
        self.paged_bucket(&root, at, 0);
    }
}

pub(super) struct Walker<'a, 'v, V> {
    pub(super) db: &'a Db,
    pub(super) seen: Vec<bool>,
    pub(super) next_bucket: usize,
    pub(super) levels: usize,
    pub(super) budget: Budget,
    pub(super) resident: ResidentBudget,
    /// The budget ran out: the walk unwinds without reading more.
    pub(super) stopped: bool,
    /// Problems reported so far.
    pub(super) problems: usize,
    /// Children this walk leaves to a helper ([`super::split`]).
    pub(super) delegated: Option<Delegated>,
    pub(super) v: &'v mut V,
}

/// The children `from..` of the branch page `page`, which a helper walks.
#[derive(Debug, Clone, Copy)]
pub(super) struct Delegated {
    pub page: PageId,
    pub from: usize,
    /// The bucket (walk order) the page belongs to, once the walk met it.
    pub bucket: Option<usize>,
}

/// An element of a node, read once.
enum Element<'a> {
    Leaf(LeafElement<'a>),
    Branch(BranchElement<'a>),
}

/// Key bounds a subtree must respect: `lo <= key < hi`.
#[derive(Clone, Copy)]
pub(super) struct Bounds<'a> {
    pub(super) lo: Option<&'a [u8]>,
    pub(super) hi: Option<&'a [u8]>,
}

impl<'a, V: Visitor<'a>> Walker<'a, '_, V> {
    fn problem(&mut self, kind: DamageKind, page: PageId, offset: u64, what: impl Into<String>) {
        self.report(Problem {
            page,
            offset,
            kind,
            what: what.into(),
        });
    }

    fn report(&mut self, p: Problem) {
        self.problems += 1;
        self.v.problem(p);
    }

    fn paged_bucket(&mut self, b: &BucketInfo<'a>, value_offset: u64, nesting: usize) {
        let root = b.header.root;
        if root < 2 {
            self.problem(
                DamageKind::Bounds,
                self.db.page_at(value_offset),
                value_offset,
                format!(
                    "bucket {} has root page {root}, a meta page",
                    show_path(&b.path)
                ),
            );
            return;
        }
        let hwm = self.db.hwm();
        if root >= hwm {
            self.problem(
                DamageKind::Bounds,
                self.db.page_at(value_offset),
                value_offset,
                format!(
                    "bucket {} has root page {root}, beyond the high-water mark {hwm}",
                    show_path(&b.path)
                ),
            );
            return;
        }
        self.tree(b, root, 0, Bounds { lo: None, hi: None }, nesting);
    }

    /// Mark `span` physical pages from `id` reached; false when any already was.
    fn mark(&mut self, id: PageId, span: u64) -> bool {
        let mut fresh = true;
        for p in id..id.saturating_add(span) {
            match self.seen.get_mut(p as usize) {
                Some(s) if *s => {
                    fresh = false;
                    let off = self.db.page_offset(p).unwrap_or(u64::MAX);
                    self.problem(
                        DamageKind::Shape,
                        p,
                        off,
                        "multiple references: page reached twice (shared child, overlap or cycle)",
                    );
                }
                Some(s) => *s = true,
                None => {}
            }
        }
        fresh
    }

    fn tree(
        &mut self,
        b: &BucketInfo<'a>,
        id: PageId,
        depth: usize,
        bounds: Bounds<'a>,
        nesting: usize,
    ) {
        let db = self.db;
        if self.stopped {
            return;
        }
        if depth > MAX_TREE_DEPTH || self.levels >= MAX_WALK_LEVELS {
            let off = db.page_offset(id).unwrap_or(u64::MAX);
            self.problem(
                DamageKind::Shape,
                id,
                off,
                "tree too deep (more than 64 levels in a bucket, or 512 in all)",
            );
            return;
        }
        self.levels += 1;
        self.tree_page(b, id, depth, bounds, nesting);
        self.levels -= 1;
    }

    fn tree_page(
        &mut self,
        b: &BucketInfo<'a>,
        id: PageId,
        depth: usize,
        bounds: Bounds<'a>,
        nesting: usize,
    ) {
        let db = self.db;
        let page = match db.page(id) {
            Ok(p) => p,
            Err(e) => return self.report(e.into()),
        };
        self.resident.read(db, page.data.len() as u64);
        if !self.mark(id, page.header.span()) {
            return;
        }
        if !matches!(page.kind(), PageKind::Branch | PageKind::Leaf) {
            let off = db.page_offset(id).unwrap_or(0) + 8;
            self.problem(
                DamageKind::PageType,
                id,
                off,
                format!(
                    "invalid type: {} page inside bucket {}",
                    page.kind(),
                    show_path(&b.path)
                ),
            );
            return;
        }
        let node = match Node::new(db, page.data, false) {
            Ok(n) => n,
            Err(e) => return self.report(e.into()),
        };
        self.v.page(b.index, &node, depth, page.header.span());
        self.node(b, &node, depth, bounds, nesting);
    }

    /// Elements of a node: key order and bounds, then children / entries.
    fn node(
        &mut self,
        b: &BucketInfo<'a>,
        node: &Node<'a>,
        depth: usize,
        bounds: Bounds<'a>,
        nesting: usize,
    ) {
        if node.count() == 0 && !node.is_leaf() {
            self.problem(
                DamageKind::Shape,
                node.page,
                node.base + 10,
                "branch page with no elements",
            );
        }
        let mut prev: Option<&'a [u8]> = None;
        let ahead = node.is_leaf() && self.v.reads_values();
        for i in 0..node.count() {
            if self.stopped {
                return;
            }
            if ahead
                && i + 1 < node.count()
                && let Ok(next) = node.leaf(i + 1)
            {
                self.db.prefetch_from(next.key);
            }
            // Each element is read once; a bad one is reported and skipped.
            let read = if node.is_leaf() {
                node.leaf(i).map(Element::Leaf)
            } else {
                node.branch(i).map(Element::Branch)
            };
            let el = match read {
                Ok(el) => el,
                Err(e) => {
                    self.report(e.into());
                    continue;
                }
            };
            let (key, vlen) = match &el {
                Element::Leaf(e) => (e.key, e.value.len()),
                Element::Branch(e) => (e.key, 0),
            };
            let at = node.element_offset(i);
            if !self.budget.spend(key.len().saturating_add(vlen)) {
                self.problem(
                    DamageKind::Shape,
                    node.page,
                    at,
                    format!("{}; the walk stops here", Budget::exhausted()),
                );
                self.stopped = true;
                return;
            }
            self.key_order(node.page, at, i, key, prev, bounds);
            prev = Some(key);
            match el {
                Element::Leaf(e) => {
                    self.v.entry(b.index, node, &e);
                    if e.is_bucket() {
                        self.sub_bucket(b, node, &e, nesting + 1);
                    }
                }
                Element::Branch(e) => {
                    if let Some(d) = self.delegated.as_mut()
                        && !node.inline
                        && node.page == d.page
                        && i >= d.from
                    {
                        if d.bucket.is_none() {
                            d.bucket = Some(b.index);
                            self.v.gap();
                        }
                        continue;
                    }
                    self.child(b, node, i, &e, depth, bounds, nesting);
                }
            }
        }
    }

    /// Descend into the child of branch element `i` (`e`, whose key is the child's lower
    /// bound; the next element's key, or the node's own bound, is its upper one).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn child(
        &mut self,
        b: &BucketInfo<'a>,
        node: &Node<'a>,
        i: usize,
        e: &BranchElement<'a>,
        depth: usize,
        bounds: Bounds<'a>,
        nesting: usize,
    ) {
        let at = node.element_offset(i);
        let child = e.child;
        let hi = if i + 1 < node.count() {
            node.branch(i + 1).ok().map(|e| e.key).or(bounds.hi)
        } else {
            bounds.hi
        };
        if child < 2 {
            self.problem(
                DamageKind::Bounds,
                node.page,
                at + 8,
                format!("branch element {i} points at meta page {child}"),
            );
            return;
        }
        // Located at the element: there is nothing to see at the page it names.
        let hwm = self.db.hwm();
        if child >= hwm {
            self.problem(
                DamageKind::Bounds,
                node.page,
                at + 8,
                format!(
                    "branch element {i} points at page {child}, beyond the high-water mark {hwm}"
                ),
            );
            return;
        }
        let lo = Some(e.key);
        self.tree(b, child, depth + 1, Bounds { lo, hi }, nesting);
    }

    fn key_order(
        &mut self,
        page: PageId,
        at: u64,
        i: usize,
        key: &[u8],
        prev: Option<&[u8]>,
        bounds: Bounds<'_>,
    ) {
        if key.is_empty() {
            self.problem(
                DamageKind::KeyOrder,
                page,
                at,
                format!("element {i} has an empty key"),
            );
        }
        if let Some(p) = prev
            && key_cmp(key, p).is_le()
        {
            self.problem(
                DamageKind::KeyOrder,
                page,
                at,
                format!(
                    "key[{i}]={} needs to be > than previous element {}",
                    hexs(key),
                    hexs(p)
                ),
            );
        }
        if let Some(lo) = bounds.lo
            && key_cmp(key, lo).is_lt()
        {
            self.problem(
                DamageKind::KeyOrder,
                page,
                at,
                format!(
                    "key[{i}]={} is below the key {} of the parent branch",
                    hexs(key),
                    hexs(lo)
                ),
            );
        }
        if let Some(hi) = bounds.hi
            && key_cmp(key, hi).is_ge()
        {
            self.problem(
                DamageKind::KeyOrder,
                page,
                at,
                format!(
                    "key[{i}]={} needs to be < than key of the next element in ancestor {}",
                    hexs(key),
                    hexs(hi)
                ),
            );
        }
    }

    fn sub_bucket(
        &mut self,
        parent: &BucketInfo<'a>,
        node: &Node<'a>,
        e: &LeafElement<'a>,
        nesting: usize,
    ) {
        let db = self.db;
        let at = db.offset_of(e.value);
        if nesting > MAX_BUCKET_DEPTH {
            self.problem(
                DamageKind::Shape,
                node.page,
                at,
                format!("buckets nested deeper than {MAX_BUCKET_DEPTH}"),
            );
            return;
        }
        let header = match BucketHeader::parse(e.value) {
            Ok(h) => h,
            Err(err) => return self.problem(err.kind, node.page, at, err.what),
        };
        if node.inline {
            self.problem(
                DamageKind::Shape,
                node.page,
                at,
                "inline bucket holds a sub-bucket (bbolt never writes this)",
            );
        }
        let mut path = parent.path.clone();
        path.push(e.key);
        let info = BucketInfo {
            index: self.next_bucket,
            parent: Some(parent.index),
            path,
            header,
            inline_len: header.is_inline().then_some(e.value.len()),
        };
        self.next_bucket += 1;
        self.v.bucket(&info);
        if header.is_inline() {
            match super::cursor::Bucket::open(db, e.value) {
                Err(err) => self.report(err.into()),
                Ok(_) => {
                    let inl = Node::new(db, crate::format::bucket::inline_page(e.value), true)
                        .expect("checked by Bucket::open");
                    self.node(&info, &inl, 0, Bounds { lo: None, hi: None }, nesting);
                }
            }
        } else {
            if e.value.len() != crate::format::bucket::BUCKET_HEADER_SIZE {
                self.problem(
                    DamageKind::Bounds,
                    node.page,
                    at,
                    format!(
                        "bucket value of a paged bucket is {} bytes, not 16",
                        e.value.len()
                    ),
                );
            }
            self.paged_bucket(&info, at, nesting);
        }
    }
}

/// Hex of a key, cut to 64 bytes for messages.
pub fn hexs(b: &[u8]) -> String {
    crate::format::text::hex_cut(b, 64)
}

/// A bucket path for messages: names as text where printable, hex otherwise. Names are cut
/// to 64 bytes and a path deeper than 8 to its first 3 and last 4 names, so that messages
/// stay small (a hostile file can nest 128 buckets that share one huge name).
pub fn show_path(path: &[&[u8]]) -> String {
    if path.is_empty() {
        return "<root>".into();
    }
    let name = |p: &&[u8]| {
        if p.len() > 64 {
            format!(
                "{}…({} bytes)",
                crate::format::text::text_or_hex(&p[..64]),
                p.len()
            )
        } else {
            crate::format::text::text_or_hex(p)
        }
    };
    if path.len() <= 8 {
        return path.iter().map(name).collect::<Vec<_>>().join("/");
    }
    let mut parts: Vec<String> = path[..3].iter().map(name).collect();
    parts.push(format!("…({} more)", path.len() - 7));
    parts.extend(path[path.len() - 4..].iter().map(name));
    parts.join("/")
}

/// Byte-wise order of two keys (as `<[u8]>::cmp`), eight bytes at a time and inline: a
/// call into `memcmp` for each of the three comparisons per element was a tenth of a walk
/// (etcd's revision keys are 17 bytes; neighbours in one txn share their first eight).
/// Long keys go to `memcmp`, which is faster on them.
#[inline]
pub(crate) fn key_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    const INLINE_BYTES: usize = 32;
    let n = a.len().min(b.len());
    if n > INLINE_BYTES {
        return a.cmp(b);
    }
    let (mut x, mut y) = (a, b);
    while let (Some((p, xs)), Some((q, ys))) =
        (x.split_first_chunk::<8>(), y.split_first_chunk::<8>())
    {
        let (p, q) = (u64::from_be_bytes(*p), u64::from_be_bytes(*q));
        if p != q {
            return p.cmp(&q);
        }
        (x, y) = (xs, ys);
    }
    for (p, q) in x.iter().zip(y) {
        if p != q {
            return p.cmp(q);
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::key_cmp;

    #[test]
    fn key_cmp_is_byte_order() {
        let long = [7u8; 40];
        let mut longer = [7u8; 41];
        longer[40] = 0;
        let keys: Vec<&[u8]> = vec![
            b"",
            b"a",
            b"abcdefg",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefgi",
            b"\0\0\0\0\0\0\0\x01_\0\0\0\0\0\0\0\x01",
            b"\0\0\0\0\0\0\0\x01_\0\0\0\0\0\0\0\x02",
            b"\0\0\0\0\0\0\0\x02",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\x01",
            &long,
            &longer,
        ];
        for a in &keys {
            for b in &keys {
                assert_eq!(key_cmp(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }
}
