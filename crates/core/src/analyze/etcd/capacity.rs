//! Capacity planning: the candidates, entries and bytes by compaction threshold, and the
//! exact file size of each candidate's compacted copy (the writer's tree builder and
//! planner, as `compact --dry-run`).

use std::collections::BTreeMap;

use crate::error::Result;
use crate::etcd::META_BUCKET;
use crate::etcd::{CompactionPlan, TombstoneAtRev};
use crate::format::element::LEAF_ELEMENT_SIZE;
use crate::format::page::PAGE_HEADER_SIZE;
use crate::reader::Db;
use crate::writer::tree_pages;
use crate::writer::{CompactOptions, CompactSummary};
use crate::writer::{Presized, Transform, inline_max, plan_copy};

use super::*;
use crate::etcd::Revisions;
use crate::etcd::compacts_at as compacts;

/// The compaction candidates, ascending, and which of them compact (above the compacted
/// revision; the others are a plain defrag).
pub(super) struct Candidates {
    pub(super) revisions: Vec<i64>,
    /// Index of the first candidate that compacts.
    pub(super) first_compacting: usize,
}

/// At most this many candidates: an entry's [`gone_at`](Candidates::gone_at) is kept in
/// 16 bits (the pass keeps one per entry of the `key` bucket).
pub(super) const MAX_CANDIDATES: usize = 4096;

impl Candidates {
    /// The candidates `revisions` (at most [`MAX_CANDIDATES`] are kept).
    pub(super) fn new(mut revisions: Vec<i64>, compacted: i64) -> Candidates {
        revisions.truncate(MAX_CANDIDATES);
        let first_compacting = revisions.partition_point(|&r| !compacts(r, compacted));
        Candidates {
            revisions,
            first_compacting,
        }
    }

    /// The first candidate that removes an entry of threshold `d` (`R >= d` and compacting).
    pub(super) fn gone_at(&self, d: Option<i64>) -> u16 {
        let n = self.revisions.len();
        let i = match d {
            None => n,
            Some(d) => self.revisions.partition_point(|&r| r < d),
        };
        i.max(self.first_compacting).min(n) as u16
    }
}

/// Entries and bytes by compaction threshold, with band edges at `edges` (ascending).
/// Band 0: `d <= edges[0]`; band j: `edges[j-1] < d <= edges[j]`; the last band: above
/// the last edge, or never.
#[derive(Debug, Clone)]
pub struct ThresholdHistogram {
    pub edges: Vec<i64>,
    pub(super) entries: Vec<u64>,
    pub(super) bytes: Vec<u64>,
}

impl ThresholdHistogram {
    pub fn new(edges: Vec<i64>) -> ThresholdHistogram {
        let n = edges.len() + 1;
        ThresholdHistogram {
            edges,
            entries: vec![0; n],
            bytes: vec![0; n],
        }
    }

    /// Add `other`'s counts (same edges) to these.
    pub(super) fn absorb(&mut self, other: &ThresholdHistogram) {
        for (a, b) in self.entries.iter_mut().zip(&other.entries) {
            *a += b;
        }
        for (a, b) in self.bytes.iter_mut().zip(&other.bytes) {
            *a += b;
        }
    }

    /// An entry removed from compaction revision `d` on (`None`: never).
    pub fn add(&mut self, d: Option<i64>, bytes: u64) {
        let i = match d {
            None => self.edges.len(),
            Some(d) => self.edges.partition_point(|&e| e < d),
        };
        self.entries[i] += 1;
        self.bytes[i] += bytes;
    }

    /// Entries and bytes with `d > edges[i]`: what stays after compacting at `edges[i]`.
    pub fn curve(&self) -> Vec<CurvePoint> {
        let mut out = Vec::with_capacity(self.edges.len());
        let (mut e, mut b) = (0, 0);
        for i in (0..self.edges.len()).rev() {
            e += self.entries[i + 1];
            b += self.bytes[i + 1];
            out.push(CurvePoint {
                revision: self.edges[i],
                remaining_entries: e,
                remaining_bytes: b,
            });
        }
        out.reverse();
        out
    }
}

/// The threshold of an entry at `main` whose key's next entry is at `next`.
pub(super) fn threshold(
    main: i64,
    tombstone: bool,
    next: Option<i64>,
    rule: TombstoneAtRev,
) -> Option<i64> {
    if tombstone {
        Some(match rule {
            TombstoneAtRev::Keep => main + 1,
            TombstoneAtRev::Drop => main,
        })
    } else {
        next
    }
}

/// `n` revisions spread evenly over `lo..=hi`, both included.
pub(super) fn spread(lo: i64, hi: i64, n: usize) -> Vec<i64> {
    if hi <= lo || n < 2 {
        return vec![hi];
    }
    let span = (hi - lo) as f64;
    let mut v: Vec<i64> = (0..n)
        .map(|i| lo + (span * i as f64 / (n - 1) as f64).round() as i64)
        .collect();
    v.dedup();
    v
}

/// The file size of `compact --revision r` (with `--dry-run`), as `compact_path` decides
/// it: a plan only above the compacted revision. A full pass over the file.
pub fn planned_size(db: &Db, r: i64, compacted: i64, rule: TombstoneAtRev) -> Result<u64> {
    let plan = if compacts(r, compacted) {
        Some(CompactionPlan::build(db, r, rule)?)
    } else {
        None
    };
    let mut t = Transform::default();
    if let Some(p) = &plan {
        t.set.insert(
            META_BUCKET.to_vec(),
            p.meta_entries().into_iter().collect::<BTreeMap<_, _>>(),
        );
    }
    t.plan = plan.as_ref();
    Ok(plan_copy(db, &CompactOptions::default(), &t)?.dst_size)
}

/// The plan of `compact` (`--dry-run`'s summary) from the pass's entry layout: entries
/// gone at candidate `c` are left out (`None`: a defrag, all kept), and the `meta` keys of
/// a compaction at `compact_at` are set. `None` when the `key` bucket would be inline, or
/// the pass found it out of order (the full planner then decides, or refuses the file).
pub(super) fn layout_plan(
    db: &Db,
    pass: &Pass,
    c: Option<usize>,
    compact_at: Option<i64>,
) -> Result<Option<CompactSummary>> {
    let opts = CompactOptions::default();
    let page_size = db.page_size();
    if !pass.ordered {
        return Ok(None);
    }
    // One pass over the layout: the pages, and the leaf image size for the inline rule.
    let (mut keys, mut image) = (0u64, PAGE_HEADER_SIZE);
    let kept = pass
        .layout
        .iter()
        .filter(|e| c.is_none_or(|c| e.gone_at as usize > c))
        .map(|e| e.len())
        .inspect(|l| {
            keys += 1;
            image += LEAF_ELEMENT_SIZE + l.key as usize + l.value as usize;
        });
    let pages = tree_pages(opts.fill_threshold(page_size), page_size as usize, kept);
    if image <= inline_max(page_size) {
        return Ok(None);
    }
    let mut t = Transform {
        presized_key_bucket: Some(Presized {
            pages,
            keys,
            dropped: pass.layout.len() as u64 - keys,
        }),
        ..Transform::default()
    };
    if let Some(r) = compact_at {
        t.set.insert(
            META_BUCKET.to_vec(),
            CompactionPlan::meta_entries_at(r).into_iter().collect(),
        );
    }
    Ok(Some(plan_copy(db, &opts, &t)?))
}

/// The file size of `compact --revision` at candidate `c`: [`layout_plan`], or when that
/// cannot tell, [`planned_size`]'s full pass.
pub(super) fn candidate_size(
    db: &Db,
    pass: &Pass,
    candidates: &Candidates,
    c: usize,
    compacted: i64,
    rule: TombstoneAtRev,
) -> Result<u64> {
    let r = candidates.revisions[c];
    let at = compacts(r, compacted).then_some(r);
    match layout_plan(db, pass, Some(c), at)? {
        Some(plan) => Ok(plan.dst_size),
        None => planned_size(db, r, compacted, rule),
    }
}

pub(super) fn quota_revision(current: i64, headroom: i64, rate: f64) -> Option<i64> {
    (rate > 0.0 && headroom > 0).then(|| current + (headroom as f64 / rate).floor() as i64)
}

/// The capacity section: the curve, the candidates with their exact file sizes
/// (`sizes`, one per candidate), the quota's headroom now and after compaction.
pub(super) fn capacity_of(
    db: &Db,
    opts: &EtcdOptions,
    lo: i64,
    revs: &Revisions,
    candidates: &Candidates,
    pass: &Pass,
    sizes: &[u64],
) -> Capacity {
    let (current, compacted) = (revs.current, revs.compacted);
    let curve = pass.thresholds.curve();
    let at = |r: i64| {
        curve
            .iter()
            .find(|p| p.revision == r)
            .copied()
            .unwrap_or_default()
    };
    let file_size = db.file_size();
    let quota = opts.quota_bytes as i64;
    let headroom = quota - file_size as i64;
    let mut cands = Vec::new();
    for (&r, &size) in candidates.revisions.iter().zip(sizes) {
        let p = at(r);
        cands.push(Candidate {
            revision: r,
            remaining_entries: p.remaining_entries,
            remaining_bytes: p.remaining_bytes,
            removed_entries: pass.figures.entries - p.remaining_entries,
            removed_bytes: pass.figures.entry_bytes - p.remaining_bytes,
            remaining_file_size: size,
            saving_bytes: file_size as i64 - size as i64,
            headroom_bytes: quota - size as i64,
            compacts: compacts(r, compacted),
        });
    }
    let span = current - lo;
    let rate = if span > 0 {
        pass.recent_bytes as f64 / span as f64
    } else {
        0.0
    };
    let after = cands.last().map_or(file_size, |c| c.remaining_file_size);
    let headroom_after = quota - after as i64;
    Capacity {
        tombstone_at_rev: match opts.rule {
            TombstoneAtRev::Keep => "keep".into(),
            TombstoneAtRev::Drop => "drop".into(),
        },
        fill_percent: CompactOptions::default().fill_percent,
        quota_bytes: opts.quota_bytes,
        file_size,
        headroom_bytes: headroom,
        bytes_per_revision: rate,
        quota_reached_at_revision: quota_revision(current, headroom, rate),
        headroom_after_compaction_bytes: headroom_after,
        quota_reached_after_compaction_at_revision: quota_revision(current, headroom_after, rate),
        curve,
        note: format!(
            "entries and bytes come from one pass (a histogram by the revision that removes \
             each entry); the file sizes of the {} candidates are exact: the writer's layout \
             of each compacted copy, what `boltpack compact --dry-run --revision R` prints \
             (fill 1.0; etcd's own defrag fills 0.9)",
            cands.len()
        ),
        candidates: cands,
    }
}
