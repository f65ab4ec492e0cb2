//! Per-bucket statistics equal to Go bbolt 1.3.6's `Bucket.Stats()` (bb136 `bucket.go`,
//! `func (b *Bucket) Stats`), for every bucket, nested ones too, in ONE walk of the tree.
//!
//! Go computes each bucket's figures by walking its pages (`forEachPage`) and then, for every
//! sub-bucket element met on its *leaf pages*, recursively calling `Stats()` on the sub-bucket
//! and adding the result in (`subStats.Add(...)`, `s.Add(subStats)`). We get the same numbers
//! from a single [`walk`]: each bucket's own figures are collected as the walk meets its
//! pages, then folded into the parents, children first. Memory is proportional to the
//! number of buckets, not pages; keys and values stay borrowed from the map.
//!
//! Rules mirrored from Go (bucket.go, `Stats`):
//! - `used` of a leaf page is `pageHeaderSize + leafPageElementSize*(count-1) +
//!   last.pos + last.ksize + last.vsize` (the end of the last element's key/value, not a sum
//!   of sizes), and `pageHeaderSize` alone for an empty page; branch pages likewise without
//!   `vsize`. The `pos + ksize + vsize` sum is a `uint32` sum in Go (wraps).
//! - `KeyN` counts the leaf page's `count`: sub-bucket elements are keys too.
//! - An inline bucket (`root == 0`) has no pages: its leaf image adds to `KeyN` and
//!   `InlineBucketInuse` only, with `Depth` 1 (`forEachPage` calls `fn(b.page, 0)`).
//! - Sub-buckets are collected only from the leaf pages of a *paged* bucket (`if b.root == 0
//!   {...} else {... subStats.Add(b.openBucket(e.value()).Stats()) }`): a sub-bucket inside
//!   an inline bucket (which bbolt never writes) is not added to its parent.
//! - `BranchAlloc`/`LeafAlloc` are `(PageN + OverflowN) * pageSize`.
//! - `Depth` is the bucket's own tree depth plus the largest aggregated `Depth` among its
//!   sub-buckets (`s.Depth += subStats.Depth`); `Add` takes the max of `Depth`.
//! - `BucketN` counts the bucket itself and every sub-bucket; `InlineBucketN` the inline ones.

use serde::Serialize;

use crate::format::bucket::{BucketHeader, inline_page};
use crate::format::element::NodeView;
use crate::reader::Db;
use crate::reader::Node;
use crate::reader::PageMap;
use crate::reader::{BucketInfo, Problem, Split, Tee, Visitor, walk};

/// Go's `BucketStats` (bb136 `bucket.go`), with Go's field names in JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BucketStats {
    /// Logical branch pages.
    pub branch_page_n: u64,
    /// Extra physical pages of branch pages.
    pub branch_overflow_n: u64,
    /// Logical leaf pages.
    pub leaf_page_n: u64,
    /// Extra physical pages of leaf pages.
    pub leaf_overflow_n: u64,
    /// Leaf elements: keys and sub-bucket entries.
    pub key_n: u64,
    /// Tree levels (see the module doc for how nested buckets add up).
    pub depth: u64,
    /// Bytes of the branch pages (`(BranchPageN + BranchOverflowN) * pageSize`).
    pub branch_alloc: u64,
    /// Bytes used in branch pages.
    pub branch_inuse: u64,
    /// Bytes of the leaf pages.
    pub leaf_alloc: u64,
    /// Bytes used in leaf pages.
    pub leaf_inuse: u64,
    /// Buckets: this one and all sub-buckets.
    pub bucket_n: u64,
    /// Inline buckets among them.
    pub inline_bucket_n: u64,
    /// Bytes used by the inline buckets' page images.
    pub inline_bucket_inuse: u64,
}

impl BucketStats {
    /// Go's `BucketStats.Add`: sums, except `Depth`, which is the maximum.
    pub fn add(&mut self, o: &BucketStats) {
        self.branch_page_n += o.branch_page_n;
        self.branch_overflow_n += o.branch_overflow_n;
        self.leaf_page_n += o.leaf_page_n;
        self.leaf_overflow_n += o.leaf_overflow_n;
        self.key_n += o.key_n;
        self.depth = self.depth.max(o.depth);
        self.branch_alloc += o.branch_alloc;
        self.branch_inuse += o.branch_inuse;
        self.leaf_alloc += o.leaf_alloc;
        self.leaf_inuse += o.leaf_inuse;
        self.bucket_n += o.bucket_n;
        self.inline_bucket_n += o.inline_bucket_n;
        self.inline_bucket_inuse += o.inline_bucket_inuse;
    }

    /// Add one page (or an inline bucket's page image) as the `forEachPage` callback of
    /// `Stats` does. `depth` is 0 for the bucket's root page.
    fn add_page(&mut self, view: &NodeView<'_>, inline: bool, depth: usize) {
        let count = view.count();
        if view.is_leaf() {
            self.key_n += count as u64;
            let used = view.used_bytes();
            if inline {
                self.inline_bucket_inuse += used;
            } else {
                self.leaf_page_n += 1;
                self.leaf_inuse += used;
                self.leaf_overflow_n += u64::from(view.header.overflow);
            }
        } else {
            self.branch_page_n += 1;
            self.branch_inuse += view.used_bytes();
            self.branch_overflow_n += u64::from(view.header.overflow);
        }
        self.depth = self.depth.max(depth as u64 + 1);
    }

    /// Leaf bytes used over allocated, in percent; `None` without leaf pages.
    pub fn leaf_fill_pct(&self) -> Option<f64> {
        pct(self.leaf_inuse, self.leaf_alloc)
    }

    /// Branch bytes used over allocated, in percent; `None` without branch pages.
    pub fn branch_fill_pct(&self) -> Option<f64> {
        pct(self.branch_inuse, self.branch_alloc)
    }
}

/// `part / whole` in percent, rounded to 0.01; `None` when `whole` is 0.
pub fn pct(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 * 10000.0 / whole as f64).round() / 100.0)
}

/// One bucket's figures.
#[derive(Debug, Clone)]
pub struct BucketFigures<'a> {
    /// Names from the top, borrowed from the file; empty for the root bucket.
    pub path: Vec<&'a [u8]>,
    /// Index of the parent in [`Stats::buckets`] (walk order).
    pub parent: Option<usize>,
    pub header: BucketHeader,
    /// The bucket's own figures: its pages (or inline image) only, `BucketN` 1.
    pub own: BucketStats,
    /// Go's `Bucket.Stats()`: own figures with all sub-buckets aggregated in.
    pub go: BucketStats,
}

impl BucketFigures<'_> {
    pub fn is_inline(&self) -> bool {
        self.header.is_inline()
    }
}

/// Statistics of every bucket, in walk order (depth-first, key order: `boltpeer stats`
/// order). Index 0 is the root bucket, which Go's per-bucket listing leaves out; its `go`
/// figures are the totals of the whole tree.
#[derive(Debug, Clone)]
pub struct Stats<'a> {
    pub page_size: u32,
    pub buckets: Vec<BucketFigures<'a>>,
    /// Problems the walk met; with any, figures may differ from what Go reports (or Go may
    /// panic). `boltpack check` explains them.
    pub problems: Vec<Problem>,
}

impl<'a> Stats<'a> {
    /// The root bucket: its `go` figures cover the whole tree.
    pub fn root(&self) -> &BucketFigures<'a> {
        &self.buckets[0]
    }

    /// The buckets Go lists (all but the root).
    pub fn listed(&self) -> &[BucketFigures<'a>] {
        &self.buckets[1..]
    }
}

struct Collector<'a> {
    page_size: u64,
    buckets: Vec<BucketFigures<'a>>,
    /// Whether each bucket's figures go into its parent's (`false` below an inline bucket).
    into_parent: Vec<bool>,
    /// The value of the last sub-bucket element met: the inline page image of the bucket
    /// announced next, when it is inline (`entry` precedes `bucket` in the walk).
    last_bucket_value: Option<&'a [u8]>,
    problems: Vec<Problem>,
}

impl<'a> Visitor<'a> for Collector<'a> {
    fn bucket(&mut self, b: &BucketInfo<'a>) {
        let mut own = BucketStats {
            bucket_n: 1,
            ..Default::default()
        };
        if b.header.is_inline() {
            own.inline_bucket_n = 1;
            match self.last_bucket_value.take().map(inline_page) {
                Some(img) => match NodeView::new(img) {
                    Ok(view) => own.add_page(&view, true, 0),
                    // Reported by the walk (Bucket::open); Go would read garbage here.
                    Err(_) => own.depth = 1,
                },
                None => own.depth = 1,
            }
        }
        let into_parent = b
            .parent
            .and_then(|p| self.buckets.get(p))
            .is_some_and(|p| !p.is_inline());
        // The walk numbers buckets 0, 1, 2, ... in the order it announces them.
        debug_assert_eq!(b.index, self.buckets.len());
        self.buckets.push(BucketFigures {
            path: b.path.clone(),
            parent: b.parent,
            header: b.header,
            own,
            go: BucketStats::default(),
        });
        self.into_parent.push(into_parent);
    }

    fn page(&mut self, bucket: usize, node: &Node<'a>, depth: usize, _span: u64) {
        if let Some(b) = self.buckets.get_mut(bucket) {
            b.own.add_page(&node.view, false, depth);
        }
    }

    fn entry(
        &mut self,
        _bucket: usize,
        _node: &Node<'a>,
        e: &crate::format::element::LeafElement<'a>,
    ) {
        if e.is_bucket() {
            self.last_bucket_value = Some(e.value);
        }
    }

    fn problem(&mut self, p: Problem) {
        self.problems.push(p);
    }
}

/// Every bucket's own and Go-aggregated statistics, from one walk of the tree.
pub fn bucket_stats(db: &Db) -> Stats<'_> {
    let mut c = Collector::new(db);
    walk(db, &premarked(db), &mut c);
    c.finish(db)
}

/// [`bucket_stats`] and the [`PageMap`], from one walk when the file is sound enough for
/// both to start from the same reached pages.
pub fn bucket_stats_and_map(db: &Db) -> (Stats<'_>, PageMap) {
    let mut c = Collector::new(db);
    let map = PageMap::build_with(db, &mut c, &premarked(db));
    (c.finish(db), map)
}

/// [`bucket_stats_and_map`] from one walk on two threads ([`PageMap::split_watched`]),
/// `also` and `also_helper` watching the main thread's part and the helper's. `None` when
/// the walk could not be split and joined exactly, or the stats and the map would not
/// start from the same reached pages: then what the watchers saw is not the walk's, and
/// the caller walks again its own way.
pub fn bucket_stats_and_map_split<'a, A: Visitor<'a>, AH: Visitor<'a> + Send>(
    db: &'a Db,
    also: &mut A,
    also_helper: &mut AH,
    always: bool,
) -> Option<(Stats<'a>, PageMap)> {
    let mut c = Collector::new(db);
    let mut h = HelperStats::default();
    let (map, split) = PageMap::split_watched_from(
        db,
        &mut Tee(&mut c, also),
        &mut Tee(&mut h, also_helper),
        &premarked(db),
        always,
    )?;
    match split {
        Split::Whole => {}
        // The helper walked part of one bucket's pages: they are that bucket's own.
        Split::Joined { bucket } => c.buckets.get_mut(bucket)?.own.add(&h.own),
        Split::Redo => return None,
    }
    Some((c.finish(db), map))
}

/// The statistics of the pages a split walk's helper reads (part of one bucket's tree:
/// [`Split::Joined`]; a nested bucket there makes the walk [`Split::Redo`]).
#[derive(Default)]
struct HelperStats {
    own: BucketStats,
}

impl<'a> Visitor<'a> for HelperStats {
    fn page(&mut self, _bucket: usize, node: &Node<'a>, depth: usize, _span: u64) {
        self.own.add_page(&node.view, false, depth);
    }
}

impl<'a> Collector<'a> {
    fn new(db: &Db) -> Collector<'a> {
        Collector {
            page_size: u64::from(db.page_size()),
            buckets: Vec::new(),
            into_parent: Vec::new(),
            last_bucket_value: None,
            problems: Vec::new(),
        }
    }

    fn finish(self, db: &Db) -> Stats<'a> {
        let Collector {
            page_size,
            mut buckets,
            into_parent,
            problems,
            ..
        } = self;
        for b in &mut buckets {
            let s = &mut b.own;
            s.branch_alloc = (s.branch_page_n + s.branch_overflow_n) * page_size;
            s.leaf_alloc = (s.leaf_page_n + s.leaf_overflow_n) * page_size;
        }
        aggregate(&mut buckets, &into_parent);
        Stats {
            page_size: db.page_size(),
            buckets,
            problems,
        }
    }
}

/// Fold children into parents as Go's recursion does: walk order puts every child after its
/// parent, so going backwards finishes all children of a bucket before the bucket itself.
fn aggregate(buckets: &mut [BucketFigures<'_>], into_parent: &[bool]) {
    let mut sub = vec![BucketStats::default(); buckets.len()];
    for i in (0..buckets.len()).rev() {
        let mut s = buckets[i].own;
        s.depth += sub[i].depth;
        s.add(&sub[i]);
        buckets[i].go = s;
        if let Some(p) = buckets[i].parent
            && into_parent[i]
            && p < i
        {
            sub[p].add(&s);
        }
    }
}

/// Pages the walk must not enter as bucket pages: the metas and the freelist (with its
/// overflow), as the page map does.
fn premarked(db: &Db) -> Vec<u64> {
    let mut v = vec![0, 1];
    let meta = db.meta();
    if meta.has_freelist_page()
        && meta.freelist >= 2
        && let Ok(p) = db.page(meta.freelist)
    {
        v.extend(meta.freelist..meta.freelist + p.header.span());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_uses_go_field_names_in_go_order() {
        let v = serde_json::to_string(&BucketStats::default()).unwrap();
        assert_eq!(
            v,
            "{\"BranchPageN\":0,\"BranchOverflowN\":0,\"LeafPageN\":0,\"LeafOverflowN\":0,\
             \"KeyN\":0,\"Depth\":0,\"BranchAlloc\":0,\"BranchInuse\":0,\"LeafAlloc\":0,\
             \"LeafInuse\":0,\"BucketN\":0,\"InlineBucketN\":0,\"InlineBucketInuse\":0}"
        );
    }

    #[test]
    fn add_sums_and_takes_max_depth() {
        let mut a = BucketStats {
            key_n: 2,
            depth: 3,
            bucket_n: 1,
            ..Default::default()
        };
        a.add(&BucketStats {
            key_n: 5,
            depth: 2,
            bucket_n: 4,
            ..Default::default()
        });
        assert_eq!((a.key_n, a.depth, a.bucket_n), (7, 3, 5));
    }

    fn fig(parent: Option<usize>, root: u64, own: BucketStats) -> BucketFigures<'static> {
        BucketFigures {
            path: Vec::new(),
            parent,
            header: BucketHeader { root, sequence: 0 },
            own,
            go: BucketStats::default(),
        }
    }

    #[test]
    fn aggregation_sums_depth_along_the_deepest_chain() {
        let own = |depth, key_n| BucketStats {
            depth,
            key_n,
            bucket_n: 1,
            ..Default::default()
        };
        // root(0) -> a(1) -> b(2) -> c(3, inline); root -> d(4) with depth 3 alone.
        let mut b = vec![
            fig(None, 3, own(1, 2)),
            fig(Some(0), 4, own(2, 10)),
            fig(Some(1), 5, own(1, 1)),
            fig(Some(2), 0, own(1, 4)),
            fig(Some(0), 6, own(3, 1)),
        ];
        aggregate(&mut b, &[false, true, true, true, true]);
        assert_eq!(b[3].go.depth, 1);
        assert_eq!(b[2].go.depth, 2);
        assert_eq!(b[1].go.depth, 4);
        assert_eq!(b[1].go.key_n, 15);
        assert_eq!(b[1].go.bucket_n, 3);
        assert_eq!(b[0].go.depth, 1 + 4);
        assert_eq!(b[0].go.bucket_n, 5);
    }

    #[test]
    fn children_of_inline_buckets_are_not_aggregated() {
        let own = BucketStats {
            depth: 1,
            key_n: 1,
            bucket_n: 1,
            ..Default::default()
        };
        let mut b = vec![
            fig(None, 3, own),
            fig(Some(0), 0, own),
            fig(Some(1), 0, own),
        ];
        aggregate(&mut b, &[false, true, false]);
        assert_eq!(b[1].go.bucket_n, 1);
        assert_eq!(b[0].go.bucket_n, 2);
    }

    #[test]
    fn used_is_the_end_of_the_last_element() {
        use crate::format::element::{LeafElement, write_leaf_node};
        let leaf_page = |id, entries: &[(u32, &[u8], &[u8])], size| {
            let mut p = vec![0u8; size];
            let elements =
                entries
                    .iter()
                    .map(|&(flags, key, value)| LeafElement { flags, key, value });
            write_leaf_node(&mut p, id, 0, elements);
            p
        };
        let p = leaf_page(3, &[(0, b"a", b"xy"), (0, b"bc", b"")], 4096);
        let v = NodeView::new(&p).unwrap();
        // 16 header + 2*16 elements + 3 + 2 bytes of keys and values.
        assert_eq!(v.used_bytes(), 16 + 32 + 5);
        let empty = leaf_page(3, &[], 4096);
        assert_eq!(NodeView::new(&empty).unwrap().used_bytes(), 16);
        let mut s = BucketStats::default();
        s.add_page(&v, true, 0);
        assert_eq!(
            (s.key_n, s.inline_bucket_inuse, s.leaf_page_n, s.depth),
            (2, 53, 0, 1)
        );
    }

    #[test]
    fn fill_percent() {
        assert_eq!(pct(1, 3), Some(33.33));
        assert_eq!(pct(0, 0), None);
    }
}
