//! The etcd MVCC part of `boltpack analyze`: revisions and compaction state, key and
//! revision counts, per-prefix tables, a revision histogram, and capacity planning.
//!
//! **One pass over the `key` bucket.** Every entry is decoded without copying
//! ([`KeyValue`]); per distinct user key the pass keeps one small [`KeyAcc`] keyed by a
//! borrowed slice of the map. Everything per revision goes into fixed-size histograms, so
//! memory grows with distinct keys, never with the file or the number of revisions.
//!
//! **Capacity curve in one pass.** Every entry `e` has a threshold `d(e)`: the smallest
//! compaction revision R that removes it under etcd's rule (docs/format.md B5, the rule of
//! [`CompactionPlan::keeps`]):
//! - a put is removed once a newer revision of the same key is <= R: `d` = the main of the
//!   key's next entry, or never for the key's newest entry;
//! - a tombstone at `t` goes for R > t when a tombstone at R is kept (the default,
//!   etcd >= 3.4.34 / 3.5.16 / 3.6): `d = t + 1`; for R >= t under the older rule: `d = t`.
//!
//! A histogram of entries and bytes by `d`, with band edges at the curve's revisions,
//! answers "what remains after compacting at R" exactly for every edge at once.
//!
//! **File sizes of the candidates, from the same pass.** The pass also keeps, per entry,
//! its key and value lengths and the first candidate that removes it (12 bytes an entry).
//! The writer's tree builder counts the pages of each candidate's `key` bucket from those
//! lengths alone ([`tree_pages`]), and the writer's planner lays out the rest of the file
//! around it ([`plan_copy`] with [`Presized`]): exactly what `boltpack compact --dry-run
//! --revision R` prints, without walking the file again per candidate. A `key` bucket
//! small enough to be inline goes through the full planner ([`planned_size`]).

use crate::error::Result;
use crate::etcd::Rules;
use crate::etcd::TombstoneAtRev;
use crate::etcd::decode_entry;
use crate::etcd::{EtcdMeta, Revisions, key_bucket};
use crate::reader::Db;
use crate::writer::CompactSummary;

mod capacity;
mod diff;
mod kinds;
mod model;
mod pass;
mod tables;
#[cfg(test)]
mod tests;
mod walk_pass;

use capacity::*;
pub use capacity::{ThresholdHistogram, planned_size};
pub use diff::{Diff, DiffError, DiffFigures, DiffGroup, DiffOptions, DiffSide, Growth, diff};
pub use kinds::{ENCRYPTED_PREFIX, Encoding, ObjectKind, PROTOBUF_MAGIC, object_kind};
pub use model::*;
use pass::*;
use tables::*;
pub use tables::{K8S_PREFIXES, group_of};
pub(crate) use walk_pass::KeyWatch;
use walk_pass::walked_pass;

/// etcd's default backend quota (`--quota-backend-bytes` 0 means 2 GiB).
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;

/// Progress of the pass over the `key` bucket: revisions read so far out of the total
/// (both counted from the first revision). Called every 4096 entries, and once at the end.
pub type PassProgress = std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>;

/// How to analyze an etcd file.
#[derive(Clone)]
pub struct EtcdOptions {
    /// Non-Kubernetes keys are grouped by their first N `/`-separated segments.
    pub prefix_depth: usize,
    /// Kubernetes objects are grouped by resource and namespace.
    pub by_namespace: bool,
    /// Where Kubernetes objects are (kube-apiserver's `--etcd-prefix`, with a trailing
    /// `/`): [`K8S_PREFIXES`] by default.
    pub k8s_prefixes: Vec<String>,
    /// etcd's backend quota, for the headroom figures.
    pub quota_bytes: u64,
    /// A tombstone exactly at the compaction revision: kept (default) or dropped.
    pub rule: TombstoneAtRev,
    /// How many keys the top lists show.
    pub top: usize,
    /// How many candidate revisions get the exact file size of their compacted copy.
    pub candidates: usize,
    /// Points of the capacity curve (band edges of the threshold histogram).
    pub curve_points: usize,
    /// Bands of the revision histogram.
    pub histogram_bands: usize,
    /// Which release derives the current and compacted revisions (default 3.4.23, as
    /// `compact` does).
    pub rules: Rules,
    /// Told how far the pass over the `key` bucket is (the binary draws a bar from it).
    pub progress: Option<PassProgress>,
    /// Read the `key` bucket in two parts on two threads whatever the file's size (tests:
    /// the answer must not depend on it); by default only files of 16 MiB and more.
    pub split_always: bool,
}

impl std::fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("prefix_depth", &self.prefix_depth)
            .field("by_namespace", &self.by_namespace)
            .field("k8s_prefixes", &self.k8s_prefixes)
            .field("quota_bytes", &self.quota_bytes)
            .field("rule", &self.rule)
            .field("top", &self.top)
            .field("rules", &self.rules)
            .field("progress", &self.progress.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            prefix_depth: 1,
            by_namespace: false,
            k8s_prefixes: K8S_PREFIXES.iter().map(|p| p.to_string()).collect(),
            quota_bytes: DEFAULT_QUOTA_BYTES,
            rule: TombstoneAtRev::Keep,
            top: 10,
            candidates: 8,
            curve_points: 200,
            histogram_bands: 50,
            rules: Rules::ETCD_3_4_23,
            progress: None,
            split_always: false,
        }
    }
}

fn count_entries(db: &Db, name: &[u8]) -> Result<u64> {
    Ok(crate::etcd::bucket_len(db, name)?.unwrap_or(0))
}

impl EtcdAnalysis {
    /// Analyze an etcd file; `Ok(None)` when it has no `key` and `meta` buckets.
    pub fn gather(db: &Db, opts: &EtcdOptions) -> Result<Option<EtcdAnalysis>> {
        Ok(Self::gather_parts(db, opts)?.map(|(a, _)| a))
    }

    /// [`gather`](Self::gather), plus the plan of a defragmented copy (`compact --dry-run`)
    /// when the pass's layout gives it.
    pub fn gather_parts(db: &Db, opts: &EtcdOptions) -> Result<Option<Gathered>> {
        let Some(scope) = Scope::read(db, opts)? else {
            return Ok(None);
        };
        let pass = key_pass(db, &scope.pass_ctx(opts))?;
        Self::from_pass(db, opts, scope, pass).map(Some)
    }

    /// [`gather_parts`](Self::gather_parts) with the `key` bucket pass inside `walk`, a walk
    /// of the whole file (the page map's, split on two cores) that the two watchers it is
    /// given watch. `None` when the file is no etcd file, or `walk` or a watcher failed
    /// (`walk` answered `None`, or the `key` bucket holds what the pass refuses): then
    /// nothing is known and the caller walks again, the cursors' pass saying what is wrong.
    pub(crate) fn gather_in_walk<'a, W>(
        db: &'a Db,
        opts: &EtcdOptions,
        walk: impl for<'c> FnOnce(&mut KeyWatch<'a, 'c>, &mut KeyWatch<'a, 'c>) -> Option<W>,
    ) -> Result<Option<(W, Gathered)>> {
        let Some(scope) = Scope::read(db, opts)? else {
            return Ok(None);
        };
        let walked = {
            let ctx = scope.pass_ctx(opts);
            let (mut main, mut helper) = (
                KeyWatch::new(db, &ctx, false),
                KeyWatch::new(db, &ctx, true),
            );
            walk(&mut main, &mut helper).and_then(|w| Some((w, walked_pass(&ctx, main, helper)?)))
        };
        let Some((w, pass)) = walked else {
            return Ok(None);
        };
        Ok(Some((w, Self::from_pass(db, opts, scope, pass)?)))
    }

    /// The analysis from the pass over the `key` bucket: the candidates' file sizes and
    /// the defragmented copy's plan (on both cores), the per-key tables.
    fn from_pass(db: &Db, opts: &EtcdOptions, scope: Scope, pass: Pass) -> Result<Gathered> {
        let compacted = scope.revs.compacted;
        let candidates = &scope.candidates;
        // The file sizes (the tree builder over the layout: one job per compacting
        // candidate, and the defragmented copy) on the other core while the tables are made
        // here; this core then takes what jobs are left. A candidate that does not compact
        // (at or below the compacted revision) keeps every entry and sets no `meta` keys:
        // its copy is the defragmented one, not planned again.
        let plain = candidates.first_compacting;
        let jobs = candidates.revisions.len() - plain + 1;
        let next = std::sync::atomic::AtomicUsize::new(0);
        let size_jobs = || -> Result<Vec<(usize, Sized)>> {
            let mut done = Vec::new();
            loop {
                let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if j >= jobs {
                    return Ok(done);
                }
                let sized = match j.checked_sub(1) {
                    None => Sized::Defrag(layout_plan(db, &pass, None, None)?),
                    Some(c) => Sized::Candidate(candidate_size(
                        db,
                        &pass,
                        candidates,
                        plain + c,
                        compacted,
                        opts.rule,
                    )?),
                };
                done.push((j, sized));
            }
        };
        std::thread::scope(|s| {
            let theirs = s.spawn(size_jobs);
            let tables = Self::tables(db, &pass, opts);
            let mine = size_jobs();
            let theirs = theirs
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            let mut all = mine?;
            all.extend(theirs?);
            all.sort_unstable_by_key(|(j, _)| *j);
            let (mut sizes, mut defrag) = (Vec::new(), None);
            for (_, sized) in all {
                match sized {
                    Sized::Defrag(d) => defrag = d,
                    Sized::Candidate(size) => sizes.push(size),
                }
            }
            let plain_sizes = (0..plain).map(|c| match &defrag {
                Some(d) => Ok(d.dst_size),
                // The layout cannot tell: each goes its own way, as a compacting one would.
                None => candidate_size(db, &pass, candidates, c, compacted, opts.rule),
            });
            let sizes = plain_sizes
                .chain(sizes.into_iter().map(Ok))
                .collect::<Result<Vec<u64>>>()?;
            let analysis = Self::finish(db, opts, &scope, &pass, tables, &sizes)?;
            Ok((analysis, defrag))
        })
    }
}

/// The analysis, and the plan of a defragmented copy when the pass's layout gives it.
pub type Gathered = (EtcdAnalysis, Option<CompactSummary>);

/// One sizing job's answer: the defragmented copy's plan, or a candidate's file size.
enum Sized {
    Defrag(Option<CompactSummary>),
    Candidate(u64),
}

/// What the analysis is about, fixed before the pass: the file's revisions and the
/// compaction candidates.
pub(crate) struct Scope {
    meta: EtcdMeta,
    revs: Revisions,
    first_key: Option<i64>,
    /// The lowest candidate (the compacted revision, or just below the first entry).
    lo: i64,
    candidates: Candidates,
    /// The main revisions the `key` bucket's entries span (its first and last entries').
    first: i64,
    last: i64,
    /// The band edges of the thresholds' histogram.
    edges: Vec<i64>,
}

impl Scope {
    /// `None` for a file without etcd's `key` and `meta` buckets.
    fn read(db: &Db, opts: &EtcdOptions) -> Result<Option<Scope>> {
        if !crate::etcd::is_etcd(db) {
            return Ok(None);
        }
        let (meta, revs): (EtcdMeta, Revisions) = Revisions::read(db, &opts.rules)?;
        let current = revs.current;
        let compacted = revs.compacted;
        let first_key = match key_bucket(db)?.iter().next() {
            Some(e) => Some(decode_entry(db, e?.key, &[], false).map(|(r, _)| r.main)?),
            None => None,
        };
        let first = first_key.unwrap_or(current);
        let last = revs.last_key.unwrap_or(current).max(first);
        // Candidates run from the compacted revision (or just below the first entry) up.
        let lo = if compacted > 0 {
            compacted.min(current)
        } else {
            (first - 1).clamp(0, current)
        };
        let candidates = Candidates::new(
            spread(lo, current, opts.candidates.clamp(1, MAX_CANDIDATES)),
            compacted,
        );
        let mut edges = spread(lo, current, opts.curve_points.max(2));
        edges.extend(&candidates.revisions);
        edges.sort_unstable();
        edges.dedup();
        Ok(Some(Scope {
            meta,
            revs,
            first_key,
            lo,
            candidates,
            first,
            last,
            edges,
        }))
    }

    fn pass_ctx<'c>(&'c self, opts: &'c EtcdOptions) -> PassCtx<'c> {
        PassCtx::new(
            self.first,
            self.last,
            self.edges.clone(),
            self.lo,
            &self.candidates,
            opts,
        )
    }
}

/// The active alarms of the `alarm` bucket.
fn alarms(db: &Db) -> Result<Vec<crate::etcd::Alarm>> {
    Ok(crate::etcd::alarm_entries(db)?
        .into_iter()
        .map(|(_, a)| a)
        .collect())
}

impl EtcdAnalysis {
    /// The report from the pass, its tables and the candidates' file sizes.
    fn finish(
        db: &Db,
        opts: &EtcdOptions,
        scope: &Scope,
        pass: &Pass,
        tables: Tables,
        sizes: &[u64],
    ) -> Result<EtcdAnalysis> {
        let (meta, revs) = (&scope.meta, &scope.revs);
        let capacity = capacity_of(db, opts, scope.lo, revs, &scope.candidates, pass, sizes);
        Ok(EtcdAnalysis {
            current_revision: revs.current,
            compacted_revision: revs.compacted,
            finished_compact_rev: meta.finished_compact_rev,
            scheduled_compact_rev: meta.scheduled_compact_rev,
            interrupted_compaction: meta
                .scheduled_compact_rev
                .filter(|&s| Some(s) != meta.finished_compact_rev),
            first_key_revision: scope.first_key,
            last_key_revision: revs.last_key,
            consistent_index: meta.consistent_index,
            term: meta.term,
            storage_version: meta.storage_version.clone(),
            alarms: alarms(db)?,
            members: count_entries(db, b"members")?,
            members_removed: count_entries(db, b"members_removed")?,
            leases: count_entries(db, b"lease")?,
            keys: pass.figures.clone(),
            revisions_per_key: tables.revisions_per_key,
            top_keys_by_revisions: tables.top_keys_by_revisions,
            top_keys_by_bytes: tables.top_keys_by_bytes,
            prefixes: tables.prefixes,
            kinds: tables.kinds,
            revision_histogram: pass.bands.clone(),
            capacity,
        })
    }
}
