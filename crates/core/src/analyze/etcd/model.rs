//! The etcd section of `analyze --json`: the report's types. Field names are stable.

use serde::Serialize;

pub use crate::etcd::Alarm;

/// `etcd` in `boltpack analyze --json`. Field names are stable.
#[derive(Debug, Clone, Serialize)]
pub struct EtcdAnalysis {
    /// etcd's `currentRev` after a restart on this file (docs/format.md B6).
    pub current_revision: i64,
    /// etcd's `compactMainRev`: what it reports and enforces as compacted (-1: never).
    pub compacted_revision: i64,
    /// `meta/finishedCompactRev` (main), absent when never compacted.
    pub finished_compact_rev: Option<i64>,
    /// `meta/scheduledCompactRev` (main).
    pub scheduled_compact_rev: Option<i64>,
    /// `scheduledCompactRev` when it differs from `finishedCompactRev`: a compaction that
    /// was interrupted (etcd resumes it at start when it can).
    pub interrupted_compaction: Option<i64>,
    /// `main` of the first and last `key` bucket entries.
    pub first_key_revision: Option<i64>,
    pub last_key_revision: Option<i64>,
    pub consistent_index: Option<u64>,
    /// Raft term (etcd >= 3.5).
    pub term: Option<u64>,
    pub storage_version: Option<String>,
    /// The `alarm` bucket: active alarms (NOSPACE, CORRUPT).
    pub alarms: Vec<Alarm>,
    /// Entries of `members`, `members_removed` and `lease`.
    pub members: u64,
    pub members_removed: u64,
    pub leases: u64,
    pub keys: KeyFigures,
    pub revisions_per_key: Distribution,
    pub top_keys_by_revisions: Vec<TopKey>,
    pub top_keys_by_bytes: Vec<TopKey>,
    pub prefixes: Prefixes,
    /// Keys by the kind of Kubernetes object their newest value holds, largest first.
    pub kinds: Vec<KindRow>,
    pub revision_histogram: Vec<RevisionBand>,
    pub capacity: Capacity,
}

/// Counts over the `key` bucket. Bytes are those of the entries: the revision key (17
/// or 18 bytes) plus the `KeyValue` value.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct KeyFigures {
    /// Entries (revisions, tombstones included).
    pub entries: u64,
    /// Distinct user keys.
    pub distinct_keys: u64,
    /// Keys whose newest entry is a put (what `etcdctl get "" --prefix` counts).
    pub live_keys: u64,
    /// Entries that are tombstones (deletes).
    pub tombstones: u64,
    /// Entries that are not their key's newest: history a compaction can remove.
    pub historical_revisions: u64,
    pub entry_bytes: u64,
    /// Bytes of each key's newest entry.
    pub latest_bytes: u64,
    /// Bytes of the older entries.
    pub history_bytes: u64,
    /// User value bytes (`KeyValue.value`) of the live keys.
    pub live_value_bytes: u64,
}

/// Revisions per distinct key (nearest-rank percentiles).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Distribution {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TopKey {
    /// Printable text as is, otherwise `0x` + hex.
    pub key: String,
    pub revisions: u64,
    /// Bytes of all its entries.
    pub bytes: u64,
    pub live: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Prefixes {
    /// How keys were grouped.
    pub grouping: String,
    /// Largest first (latest + history bytes).
    pub groups: Vec<PrefixRow>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PrefixRow {
    /// A key prefix (`/registry/pods/`, `/registry/pods/default/` by namespace) for
    /// Kubernetes objects, otherwise the first segments of the key.
    pub prefix: String,
    pub keys: u64,
    pub live_keys: u64,
    pub revisions: u64,
    /// Bytes of each key's newest entry.
    pub latest_bytes: u64,
    /// Bytes of the older entries.
    pub history_bytes: u64,
}

/// The keys whose newest value (the last put) holds one kind of object.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct KindRow {
    /// `v1`, `apps/v1`, ...; for encrypted values the provider; empty for other values.
    pub api_version: String,
    pub kind: String,
    /// `protobuf`, `json`, `encrypted` or `other` (not a Kubernetes object).
    pub encoding: String,
    pub keys: u64,
    pub live_keys: u64,
    pub latest_bytes: u64,
    pub history_bytes: u64,
}

/// Entries whose main revision is in `first..=last`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RevisionBand {
    pub first: i64,
    pub last: i64,
    pub entries: u64,
    pub tombstones: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Capacity {
    /// `keep` or `drop`: the rule for a tombstone exactly at R.
    pub tombstone_at_rev: String,
    /// The planner's fill (`compact`'s default 1.0; etcd's own defrag uses 0.9).
    #[serde(rename = "fill_fraction")]
    pub fill_percent: f64,
    pub quota_bytes: u64,
    #[serde(rename = "file_size_bytes")]
    pub file_size: u64,
    /// `quota_bytes - file_size` (negative: over the quota).
    pub headroom_bytes: i64,
    /// Entry bytes per revision over the uncompacted range (compacted, current].
    pub bytes_per_revision: f64,
    /// The revision at which the file would reach the quota at that rate, without
    /// compaction (entry bytes only: page overhead makes it come sooner).
    pub quota_reached_at_revision: Option<i64>,
    /// The same after compacting at the current revision and defragmenting.
    pub headroom_after_compaction_bytes: i64,
    pub quota_reached_after_compaction_at_revision: Option<i64>,
    /// What remains after compacting at each revision (the threshold histogram; exact at
    /// every point).
    pub curve: Vec<CurvePoint>,
    /// The revisions sized by the writer's planner.
    pub candidates: Vec<Candidate>,
    pub note: String,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct CurvePoint {
    pub revision: i64,
    pub remaining_entries: u64,
    pub remaining_bytes: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Candidate {
    pub revision: i64,
    pub remaining_entries: u64,
    pub remaining_bytes: u64,
    pub removed_entries: u64,
    pub removed_bytes: u64,
    /// Exact size of `compact --revision R` output (same as `compact --dry-run`).
    #[serde(rename = "remaining_file_size_bytes")]
    pub remaining_file_size: u64,
    /// `file_size - remaining_file_size`.
    pub saving_bytes: i64,
    /// `quota_bytes - remaining_file_size`.
    pub headroom_bytes: i64,
    /// False when R is at or below the compacted revision: only a defrag.
    pub compacts: bool,
}
