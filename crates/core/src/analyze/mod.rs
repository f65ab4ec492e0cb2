//! `boltpack analyze`: per-bucket statistics (equal to Go bbolt's `Bucket.Stats()`) and
//! file-level figures (page use, free runs, fill, the defragmented size from the writer's planner).
//!
//! # JSON (`boltpack analyze --json`)
//!
//! The field names below are stable; new fields may be added.
//!
//! - `file`: [`frag::FileFigures`]: `file_size`, `page_size`, `hwm`, `used_size`,
//!   `past_hwm_bytes`; `live`, `free`, `unreachable` as `{pages, bytes}`; `free_runs`
//!   `{count, largest, largest_at, histogram: [{min_len, max_len, runs, pages}]}`;
//!   `free_by_tenth: [{first_page, end_page, free: {pages, bytes}, past_hwm: {pages,
//!   bytes}}]`; `leaf_fill_pct`, `branch_fill_pct` (percent or null); `defrag_estimate
//!   {method, exact, pages, bytes, saving_bytes}`.
//! - `total`: Go's `Bucket.Stats()` of the root bucket: the whole tree.
//! - `buckets`: every bucket except the root, depth-first in key order (Go's order), each
//!   [`BucketReport`]: `path_hex`, `name`, `nesting`, `inline`, `go` (Go's `Bucket.Stats()`
//!   with Go's field names, sub-buckets aggregated in), `own` (same fields, this bucket's
//!   pages only), `leaf_fill_pct`, `branch_fill_pct` (of `own`).
//! - `problems`: how many problems the walks met; when not 0, run `boltpack check`.
//! - `etcd` (only for etcd files, which have the `key` and `meta` buckets):
//!   [`etcd::EtcdAnalysis`]: `current_revision`, `compacted_revision`,
//!   `finished_compact_rev`, `scheduled_compact_rev`, `interrupted_compaction`,
//!   `first_key_revision`, `last_key_revision`, `consistent_index`, `term`,
//!   `storage_version`, `alarms [{member_id, alarm}]`, `members`, `members_removed`,
//!   `leases`; `keys {entries, distinct_keys, live_keys, tombstones, historical_revisions,
//!   entry_bytes, latest_bytes, history_bytes, live_value_bytes}`; `revisions_per_key {p50,
//!   p90, p99, max, mean}`; `top_keys_by_revisions`, `top_keys_by_bytes` `[{key, revisions,
//!   bytes, live}]`; `prefixes {grouping, groups: [{prefix, keys, live_keys, revisions,
//!   latest_bytes, history_bytes}]}`; `revision_histogram [{first, last, entries,
//!   tombstones, bytes}]`; `capacity {tombstone_at_rev, fill_percent, quota_bytes,
//!   file_size, headroom_bytes, bytes_per_revision, quota_reached_at_revision,
//!   headroom_after_compaction_bytes, quota_reached_after_compaction_at_revision, curve:
//!   [{revision, remaining_entries, remaining_bytes}], candidates: [{revision,
//!   remaining_entries, remaining_bytes, removed_entries, removed_bytes,
//!   remaining_file_size, saving_bytes, headroom_bytes, compacts}], note}`. Bytes are entry
//!   bytes (revision key + `KeyValue`) except `file_size`, `remaining_file_size` and the
//!   headroom figures, which are file bytes.

pub mod etcd;
mod frag;
mod stats;

use serde::Serialize;

use crate::format::text::{hex, text_or_hex};
use crate::reader::Db;
use crate::reader::PageMap;

use frag::FileFigures;
use stats::{BucketFigures, BucketStats, Stats, bucket_stats_and_map, bucket_stats_and_map_split};

pub use frag::{Amount, DefragEstimate, FreeRuns, RunBin};
pub use stats::bucket_stats;

/// One bucket in the report.
#[derive(Debug, Clone, Serialize)]
pub struct BucketReport {
    /// Names from the top, lowercase hex: exact.
    pub path_hex: Vec<String>,
    /// Names joined with `/`, printable text as is, otherwise `0x` + hex: for people.
    pub name: String,
    /// 1 for a top-level bucket.
    pub nesting: usize,
    pub inline: bool,
    /// Go's `Bucket.Stats()`: own figures plus all sub-buckets'.
    pub go: BucketStats,
    /// This bucket's own figures (its pages, or its inline image).
    pub own: BucketStats,
    /// `own.LeafInuse / own.LeafAlloc` in percent.
    pub leaf_fill_pct: Option<f64>,
    /// `own.BranchInuse / own.BranchAlloc` in percent.
    pub branch_fill_pct: Option<f64>,
}

impl BucketReport {
    fn new(b: &BucketFigures<'_>) -> BucketReport {
        BucketReport {
            path_hex: b.path.iter().map(|p| hex(p)).collect(),
            name: b
                .path
                .iter()
                .map(|p| text_or_hex(p))
                .collect::<Vec<_>>()
                .join("/"),
            nesting: b.path.len(),
            inline: b.is_inline(),
            go: b.go,
            own: b.own,
            leaf_fill_pct: b.own.leaf_fill_pct(),
            branch_fill_pct: b.own.branch_fill_pct(),
        }
    }
}

/// Everything `boltpack analyze` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub file: FileFigures,
    /// Go's `Bucket.Stats()` of the root bucket (the whole tree).
    pub total: BucketStats,
    pub buckets: Vec<BucketReport>,
    /// Problems met while walking; figures may be off when not 0 (see `boltpack check`).
    pub problems: usize,
    /// The etcd MVCC part, for etcd files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd: Option<etcd::EtcdAnalysis>,
}

impl Analysis {
    /// The bbolt figures only (no etcd section).
    pub fn gather(db: &Db) -> Analysis {
        let map = PageMap::build(db);
        let stats = bucket_stats(db);
        Analysis::from_parts(db, &map, &stats)
    }

    /// The bbolt figures, plus the etcd section for etcd files, usually from one walk:
    /// the page map's, split on two cores, with the bucket statistics and the etcd pass
    /// watching it (each page read once). A file that walk cannot answer for (a problem
    /// anywhere, a `key` bucket entry the pass refuses) goes to [`Analysis::gather_apart`].
    /// For an etcd file, the defragmented size comes from the etcd pass's `key` bucket
    /// layout (exact, as the capacity candidates), which saves the planner a walk of the
    /// whole file.
    pub fn gather_with(db: &Db, opts: &etcd::EtcdOptions) -> crate::error::Result<Analysis> {
        let in_walk = etcd::EtcdAnalysis::gather_in_walk(db, opts, |main, helper| {
            bucket_stats_and_map_split(db, main, helper, opts.split_always)
        })?;
        match in_walk {
            Some(((stats, map), (etcd, defrag))) => {
                Ok(Self::joined(db, &map, &stats, Some(etcd), defrag))
            }
            None => Self::gather_apart(db, opts),
        }
    }

    /// [`Analysis::gather_with`] by two walks on two threads: the page map's with the
    /// bucket statistics, and the etcd pass's cursors (which say what is wrong in a `key`
    /// bucket the one-walk pass refused). Public for the tests and fuzzing, which hold
    /// the two equal.
    #[doc(hidden)]
    pub fn gather_apart(db: &Db, opts: &etcd::EtcdOptions) -> crate::error::Result<Analysis> {
        // Both walks release the map as they go (see `ResidentBudget`), so the resident set
        // stays near the heap instead of growing to the file's size. Each release also
        // drops the other thread's mappings; on this kernel (large page-cache folios, one
        // fault maps many pages) the refaults cost nothing measurable (BENCHMARKS.md).
        let (stats, map, e) = std::thread::scope(|s| {
            let e = s.spawn(|| etcd::EtcdAnalysis::gather_parts(db, opts));
            let (stats, map) = bucket_stats_and_map(db);
            let e = e.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            (stats, map, e)
        });
        let (etcd, defrag) = match e? {
            Some((a, d)) => (Some(a), d),
            None => (None, None),
        };
        Ok(Self::joined(db, &map, &stats, etcd, defrag))
    }

    fn joined(
        db: &Db,
        map: &PageMap,
        stats: &Stats<'_>,
        etcd: Option<etcd::EtcdAnalysis>,
        defrag: Option<crate::writer::CompactSummary>,
    ) -> Analysis {
        let defrag = defrag.map(|summary| frag::exact_defrag(db, &summary));
        let mut a = Analysis::assemble(db, map, stats, defrag);
        a.etcd = etcd;
        a
    }

    pub fn from_parts(db: &Db, map: &PageMap, stats: &Stats<'_>) -> Analysis {
        Analysis::assemble(db, map, stats, None)
    }

    /// `defrag`: the defragmented size when already known; otherwise the planner runs.
    fn assemble(
        db: &Db,
        map: &PageMap,
        stats: &Stats<'_>,
        defrag: Option<frag::DefragEstimate>,
    ) -> Analysis {
        let defrag = defrag.unwrap_or_else(|| frag::defrag_estimate(db, stats));
        Analysis {
            file: FileFigures::gather(db, map, stats, defrag),
            total: stats.root().go,
            buckets: stats.listed().iter().map(BucketReport::new).collect(),
            // The page map's walk is the stats walk plus the freelist checks.
            problems: map.problems.len(),
            etcd: None,
        }
    }
}
