//! The tree walk on two cores: a helper thread walks half of the largest bucket's children
//! while the walk does everything else, and the two are joined only when the result is
//! exactly the one-thread walk's.
//!
//! A sound file's walk reports no problem, so only its pages matter, not the order of its
//! events: the join is exact when neither thread reports a problem, no page is reached by
//! both, the helper's part holds no nested bucket (buckets are numbered in walk order), and
//! the two budgets together stay within the one-thread walk's. Anything else (a damaged
//! file) is walked again on one thread, so its problems come in the usual order.

use crate::format::PageId;
use crate::format::bucket::BucketHeader;

use super::db::Db;
use super::walk::{Bounds, BucketInfo, Delegated, Visitor, Walker, walk};

/// Files below this are walked on one thread: a thread costs more than their walk.
pub const SPLIT_MIN_BYTES: u64 = 16 << 20;

/// How [`walk_split`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Walked on one thread (nothing to split): `v` saw the whole walk.
    Whole,
    /// `v` saw the whole walk except the helper's part, which `helper` saw, and `v`'s
    /// `gap` marks where that part lies. `helper` first sees the bucket it walks in, as
    /// a `bucket` with a placeholder index (`usize::MAX`, also its `page` and `entry` calls');
    /// its real index is `bucket`. No problem was found anywhere.
    Joined { bucket: usize },
    /// Not joinable: what `v` and `helper` saw is to be discarded and the tree walked again
    /// with [`walk`].
    Redo,
}

/// The branch page whose children `from..` go to the helper, and its bucket.
#[derive(Debug, Clone, Copy)]
struct Plan<'a> {
    page: PageId,
    from: usize,
    name: &'a [u8],
    header: BucketHeader,
}

/// The walk of [`walk`], half of the largest bucket's children on a second thread (files of
/// [`SPLIT_MIN_BYTES`] and more, unless `always`).
pub fn walk_split<'a, V: Visitor<'a>, H: Visitor<'a> + Send>(
    db: &'a Db,
    premarked: &[PageId],
    v: &mut V,
    helper: &mut H,
    always: bool,
) -> Split {
    let plan = (always || db.file_size() >= SPLIT_MIN_BYTES)
        .then(|| plan(db))
        .flatten();
    let Some(plan) = plan else {
        walk(db, premarked, v);
        return Split::Whole;
    };
    std::thread::scope(|s| {
        let h = s.spawn(|| helper_walk(db, premarked, plan, helper));
        let mut w = Walker::new(db, premarked, v);
        w.delegated = Some(Delegated {
            page: plan.page,
            from: plan.from,
            bucket: None,
        });
        w.whole_tree();
        let h = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        let (Some(h), Some(bucket)) = (h, w.delegated.and_then(|d| d.bucket)) else {
            return Split::Redo;
        };
        let overlap = h
            .seen
            .iter()
            .zip(&w.seen)
            .enumerate()
            .any(|(p, (&mine, &theirs))| mine && theirs && !premarked.contains(&(p as u64)));
        if w.problems > 0 || overlap || w.budget.left() < h.spent {
            return Split::Redo;
        }
        Split::Joined { bucket }
    })
}

/// What the helper's walk leaves for the join, when it found nothing that forbids one.
struct HelperDone {
    seen: Vec<bool>,
    spent: u64,
}

fn helper_walk<'a, H: Visitor<'a>>(
    db: &'a Db,
    premarked: &[PageId],
    plan: Plan<'a>,
    helper: &mut H,
) -> Option<HelperDone> {
    let node = db.node(plan.page).ok()?;
    let mut w = Walker::new(db, premarked, helper);
    let start = w.budget.left();
    // As the one-thread walk has them at the bucket's root page: the root bucket's root
    // page and this one are the two tree levels above, and the bucket nests once.
    w.levels = 2;
    w.next_bucket = 0;
    let b = BucketInfo {
        index: usize::MAX,
        parent: Some(0),
        path: vec![plan.name],
        header: plan.header,
        inline_len: None,
    };
    w.v.bucket(&b);
    for i in plan.from..node.count() {
        let e = node.branch(i).ok()?;
        w.child(&b, &node, i, &e, 0, Bounds { lo: None, hi: None }, 1);
        if w.problems > 0 || w.stopped {
            return None;
        }
    }
    // A nested bucket would have taken a number.
    if w.next_bucket != 0 {
        return None;
    }
    Some(HelperDone {
        spent: start - w.budget.left(),
        seen: std::mem::take(&mut w.seen),
    })
}

/// Half of the largest paged bucket below the root: the one whose root branch page has the
/// deepest tree, then the most children. Only a root bucket whose root page is a leaf
/// qualifies (the helper starts at known tree levels).
fn plan(db: &Db) -> Option<Plan<'_>> {
    let root = db.node(db.meta().root.root).ok()?;
    if !root.is_leaf() {
        return None;
    }
    let mut best: Option<((usize, usize), Plan<'_>)> = None;
    for i in 0..root.count() {
        let Ok(e) = root.leaf(i) else { continue };
        let Ok(header) = BucketHeader::parse(e.value) else {
            continue;
        };
        if !e.is_bucket() || header.is_inline() || header.root < 2 || header.root >= db.hwm() {
            continue;
        }
        let Some(weight) = weight(db, header.root) else {
            continue;
        };
        if best.as_ref().is_none_or(|(w, _)| weight > *w) {
            let count = weight.1;
            best = Some((
                weight,
                Plan {
                    page: header.root,
                    from: count / 2,
                    name: e.key,
                    header,
                },
            ));
        }
    }
    best.map(|(_, p)| p)
}

/// (depth along the first children, children) of a branch page with two or more.
fn weight(db: &Db, page: PageId) -> Option<(usize, usize)> {
    let node = db.node(page).ok()?;
    if node.is_leaf() || node.count() < 2 {
        return None;
    }
    let mut depth = 1;
    let mut at = node;
    while !at.is_leaf() && depth < 8 {
        at = db.node(at.branch(0).ok()?.child).ok()?;
        depth += 1;
    }
    Some((depth, node.count()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(rel: &str) -> Db {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/");
        Db::from_bytes(std::fs::read(format!("{root}{rel}")).unwrap()).unwrap()
    }

    #[test]
    fn a_sound_etcd_file_is_joined() {
        let db = open("etcd/db");
        let pre = [0, 1, db.meta().freelist];
        let got = walk_split(&db, &pre, &mut (), &mut (), true);
        assert!(matches!(got, Split::Joined { .. }), "{got:?}");
        // Below the size threshold, one thread.
        assert_eq!(walk_split(&db, &pre, &mut (), &mut (), false), Split::Whole);
    }

    #[test]
    fn nested_buckets_in_the_helpers_half_are_walked_again() {
        let db = open("bbolt/nested.db");
        let pre = [0, 1, db.meta().freelist];
        let got = walk_split(&db, &pre, &mut (), &mut (), true);
        assert_ne!(got, Split::Whole);
    }
}
