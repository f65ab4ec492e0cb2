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

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::error::Result;
use crate::etcd::compaction::{CompactionPlan, TombstoneAtRev};
use crate::etcd::keyindex::{decode_entry, decode_entry_through_value};
use crate::etcd::keymap::{self, KeyMap};
use crate::etcd::meta::{EtcdMeta, Revisions, key_bucket};
use crate::etcd::{META_BUCKET, Rules};
use crate::format::element::LEAF_ELEMENT_SIZE;
use crate::format::page::PAGE_HEADER_SIZE;
use crate::format::text::text_or_hex;
use crate::reader::{Bucket, Db};
use crate::writer::compact::{Presized, Transform, inline_max, plan_copy};
use crate::writer::tree::{ElementLen, tree_pages};
use crate::writer::{CompactOptions, CompactSummary};

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
    /// Kubernetes keys (`/registry/...`) are grouped by resource and namespace.
    pub by_namespace: bool,
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
}

impl std::fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("prefix_depth", &self.prefix_depth)
            .field("by_namespace", &self.by_namespace)
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
            quota_bytes: DEFAULT_QUOTA_BYTES,
            rule: TombstoneAtRev::Keep,
            top: 10,
            candidates: 8,
            curve_points: 200,
            histogram_bands: 50,
            rules: Rules::ETCD_3_4_23,
            progress: None,
        }
    }
}

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
    pub revision_histogram: Vec<RevisionBand>,
    pub capacity: Capacity,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Alarm {
    /// Member id, lowercase hex as etcdctl prints it.
    pub member_id: String,
    /// `NONE`, `NOSPACE`, `CORRUPT`, or the number.
    pub alarm: String,
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
    /// `registry:<resource>` (or `registry:<resource>/<namespace>`) for Kubernetes keys,
    /// otherwise the first segments of the key.
    pub prefix: String,
    pub keys: u64,
    pub live_keys: u64,
    pub revisions: u64,
    /// Bytes of each key's newest entry.
    pub latest_bytes: u64,
    /// Bytes of the older entries.
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
    pub fill_percent: f64,
    pub quota_bytes: u64,
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
    pub remaining_file_size: u64,
    /// `file_size - remaining_file_size`.
    pub saving_bytes: i64,
    /// `quota_bytes - remaining_file_size`.
    pub headroom_bytes: i64,
    /// False when R is at or below the compacted revision: only a defrag.
    pub compacts: bool,
}

/// What the pass keeps per distinct user key.
#[derive(Debug, Clone, Copy, Default)]
struct KeyAcc {
    revisions: u64,
    bytes: u64,
    /// The newest entry so far.
    last_main: i64,
    last_bytes: u64,
    last_tombstone: bool,
    last_value_len: u64,
    /// Index of the newest entry in [`Pass::layout`].
    last_index: usize,
}

/// A `key` bucket entry as the candidates' layout needs it.
#[derive(Debug, Clone, Copy)]
struct EntryLayout {
    len: ElementLen,
    /// The first candidate (index) whose compaction removes the entry; the number of
    /// candidates when none does.
    gone_at: u32,
}

/// The compaction candidates, ascending, and which of them compact (above the compacted
/// revision; the others are a plain defrag).
struct Candidates {
    revisions: Vec<i64>,
    /// Index of the first candidate that compacts.
    first_compacting: usize,
}

impl Candidates {
    fn new(revisions: Vec<i64>, compacted: i64) -> Candidates {
        let first_compacting = revisions.partition_point(|&r| !compacts(r, compacted));
        Candidates {
            revisions,
            first_compacting,
        }
    }

    /// The first candidate that removes an entry of threshold `d` (`R >= d` and compacting).
    fn gone_at(&self, d: Option<i64>) -> u32 {
        let n = self.revisions.len();
        let i = match d {
            None => n,
            Some(d) => self.revisions.partition_point(|&r| r < d),
        };
        i.max(self.first_compacting).min(n) as u32
    }
}

use crate::etcd::compaction::compacts_at as compacts;

/// Entries and bytes by compaction threshold, with band edges at `edges` (ascending).
/// Band 0: `d <= edges[0]`; band j: `edges[j-1] < d <= edges[j]`; the last band: above
/// the last edge, or never.
#[derive(Debug, Clone)]
pub struct ThresholdHistogram {
    pub edges: Vec<i64>,
    entries: Vec<u64>,
    bytes: Vec<u64>,
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
fn threshold(main: i64, tombstone: bool, next: Option<i64>, rule: TombstoneAtRev) -> Option<i64> {
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
fn spread(lo: i64, hi: i64, n: usize) -> Vec<i64> {
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

/// The group of a user key. Kubernetes keys `/registry/<resource>/...` (with an API group
/// segment, `/registry/<group.with.dots>/<resource>/...`) go by resource, and by
/// namespace when `by_namespace` and the key has a namespace segment (namespaced objects
/// are `<resource>/<namespace>/<name>`; cluster-scoped ones `<resource>/<name>`). Others go
/// by their first `depth` segments, `/` kept, with a trailing `/` when the key goes on.
pub fn group_of(key: &[u8], depth: usize, by_namespace: bool) -> String {
    if let Some(rest) = key.strip_prefix(b"/registry/") {
        let segs: Vec<&[u8]> = rest.split(|&b| b == b'/').collect();
        let (resource, after) = if segs.len() > 2 && segs[0].contains(&b'.') {
            (
                format!("{}/{}", text_or_hex(segs[0]), text_or_hex(segs[1])),
                &segs[2..],
            )
        } else {
            (text_or_hex(segs[0]), &segs[1..])
        };
        if by_namespace && after.len() >= 2 {
            return format!("registry:{resource}/{}", text_or_hex(after[0]));
        }
        return format!("registry:{resource}");
    }
    let depth = depth.max(1);
    let mut end = key.len();
    let mut seen = 0;
    for (i, &b) in key.iter().enumerate() {
        // A leading `/` does not end a segment.
        if b == b'/' && i > 0 {
            seen += 1;
            if seen == depth {
                end = i + 1;
                break;
            }
        }
    }
    text_or_hex(&key[..end])
}

fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// `etcdserverpb.AlarmMember` {memberID = 1, alarm = 2}, the `alarm` bucket's keys.
pub fn decode_alarm(b: &[u8]) -> Alarm {
    let (mut id, mut kind, mut at) = (0u64, 0u64, 0usize);
    while at < b.len() {
        let Some(tag) = varint(b, &mut at) else { break };
        if tag & 7 != 0 {
            break;
        }
        let Some(v) = varint(b, &mut at) else { break };
        match tag >> 3 {
            1 => id = v,
            2 => kind = v,
            _ => {}
        }
    }
    Alarm {
        member_id: format!("{id:x}"),
        alarm: match kind {
            0 => "NONE".into(),
            1 => "NOSPACE".into(),
            2 => "CORRUPT".into(),
            n => n.to_string(),
        },
    }
}

fn count_entries(db: &Db, name: &[u8]) -> Result<u64> {
    let mut n = 0;
    if let Some(b) = Bucket::root_of(db).bucket(name)? {
        for e in b.iter() {
            e?;
            n += 1;
        }
    }
    Ok(n)
}

/// Nearest-rank percentile of sorted `v`.
fn percentile(v: &[u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// The result of the one pass, before capacity planning.
struct Pass {
    keys: KeyMap<KeyAcc>,
    /// The `key` bucket's entries came in strictly ascending order, as the writer needs
    /// them (otherwise `compact` refuses the file and the layout figures are not used).
    ordered: bool,
    /// Every entry, in bucket order.
    layout: Vec<EntryLayout>,
    figures: KeyFigures,
    bands: Vec<RevisionBand>,
    thresholds: ThresholdHistogram,
    /// Entry bytes with main above the rate's base revision.
    recent_bytes: u64,
}

fn key_pass(
    db: &Db,
    first: i64,
    last: i64,
    edges: Vec<i64>,
    rate_base: i64,
    candidates: &Candidates,
    opts: &EtcdOptions,
) -> Result<Pass> {
    let nbands = opts.histogram_bands.max(1) as i64;
    let width = ((last - first + 1).max(1) + nbands - 1) / nbands;
    let mut bands: Vec<RevisionBand> = Vec::new();
    let mut b0 = first;
    while b0 <= last {
        bands.push(RevisionBand {
            first: b0,
            last: (b0 + width - 1).min(last),
            ..Default::default()
        });
        b0 += width;
    }
    let mut p = Pass {
        keys: KeyMap::default(),
        ordered: true,
        layout: Vec::new(),
        figures: KeyFigures::default(),
        bands,
        thresholds: ThresholdHistogram::new(edges),
        recent_bytes: 0,
    };
    let total = (last - first).max(0) as u64;
    let mut prev_key: Option<&[u8]> = None;
    for e in key_bucket(db)?.iter() {
        let e = e?;
        let (rev, kv) = decode_entry_through_value(db, e.key, e.value, e.is_bucket())?;
        if prev_key.is_some_and(|k| e.key <= k) {
            p.ordered = false;
        }
        prev_key = Some(e.key);
        let bytes = (e.key.len() + e.value.len()) as u64;
        let f = &mut p.figures;
        f.entries += 1;
        f.entry_bytes += bytes;
        f.tombstones += u64::from(rev.tombstone);
        if rev.main > rate_base {
            p.recent_bytes += bytes;
        }
        if let Some(band) = p
            .bands
            .get_mut(((rev.main - first).max(0) / width) as usize)
        {
            band.entries += 1;
            band.bytes += bytes;
            band.tombstones += u64::from(rev.tombstone);
        }
        let acc = keymap::entry(&mut p.keys, kv.key);
        if acc.revisions > 0 && !acc.last_tombstone {
            // The previous put of this key goes once this revision is <= R.
            p.thresholds.add(Some(rev.main), acc.last_bytes);
            p.layout[acc.last_index].gone_at = candidates.gone_at(Some(rev.main));
        }
        let d = threshold(rev.main, rev.tombstone, None, opts.rule);
        if rev.tombstone {
            p.thresholds.add(d, bytes);
        }
        acc.last_index = p.layout.len();
        p.layout.push(EntryLayout {
            len: ElementLen {
                key: e.key.len() as u32,
                value: e.value.len() as u32,
            },
            // A put's threshold is its key's next revision: set when that comes.
            gone_at: candidates.gone_at(d),
        });
        acc.revisions += 1;
        acc.bytes += bytes;
        acc.last_main = rev.main;
        acc.last_bytes = bytes;
        acc.last_tombstone = rev.tombstone;
        acc.last_value_len = kv.value.len() as u64;
        if let Some(progress) = &opts.progress
            && f.entries.is_multiple_of(4096)
        {
            progress((rev.main - first).max(0) as u64, total);
        }
    }
    if let Some(progress) = &opts.progress {
        progress(total, total);
    }
    let f = &mut p.figures;
    f.distinct_keys = p.keys.len() as u64;
    for acc in p.keys.values() {
        if !acc.last_tombstone {
            // The newest put stays at every R.
            p.thresholds.add(None, acc.last_bytes);
            f.live_keys += 1;
            f.live_value_bytes += acc.last_value_len;
        }
        f.latest_bytes += acc.last_bytes;
    }
    f.historical_revisions = f.entries - f.distinct_keys;
    f.history_bytes = f.entry_bytes - f.latest_bytes;
    Ok(p)
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
fn layout_plan(
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
        .map(|e| e.len)
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
fn candidate_size(
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

fn quota_revision(current: i64, headroom: i64, rate: f64) -> Option<i64> {
    (rate > 0.0 && headroom > 0).then(|| current + (headroom as f64 / rate).floor() as i64)
}

impl EtcdAnalysis {
    /// Analyze an etcd file; `Ok(None)` when it has no `key` and `meta` buckets.
    pub fn gather(db: &Db, opts: &EtcdOptions) -> Result<Option<EtcdAnalysis>> {
        Ok(Self::gather_parts(db, opts)?.map(|(a, _)| a))
    }

    /// [`gather`](Self::gather), plus the plan of a defragmented copy (`compact --dry-run`)
    /// when the pass's layout gives it.
    pub fn gather_parts(
        db: &Db,
        opts: &EtcdOptions,
    ) -> Result<Option<(EtcdAnalysis, Option<CompactSummary>)>> {
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
        let candidates = Candidates::new(spread(lo, current, opts.candidates.max(1)), compacted);
        let mut edges = spread(lo, current, opts.curve_points.max(2));
        edges.extend(&candidates.revisions);
        edges.sort_unstable();
        edges.dedup();
        let pass = key_pass(db, first, last, edges, lo, &candidates, opts)?;
        // The file sizes (the tree builder over the layout, per candidate) on the other
        // core while the tables are made here.
        let sizing = |pass: &Pass| -> Result<(Vec<u64>, Option<CompactSummary>)> {
            let sizes = (0..candidates.revisions.len())
                .map(|c| candidate_size(db, pass, &candidates, c, compacted, opts.rule))
                .collect::<Result<Vec<u64>>>()?;
            Ok((sizes, layout_plan(db, pass, None, None)?))
        };
        std::thread::scope(|s| {
            let sized = s.spawn(|| sizing(&pass));
            let tables = Self::tables(&pass, opts);
            let sized = sized
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            Self::finish(
                db,
                opts,
                meta,
                revs,
                first_key,
                lo,
                &candidates,
                &pass,
                tables,
                sized?,
            )
        })
        .map(Some)
    }
}

/// The per-key tables of the analysis.
struct Tables {
    revisions_per_key: Distribution,
    top_keys_by_revisions: Vec<TopKey>,
    top_keys_by_bytes: Vec<TopKey>,
    prefixes: Prefixes,
}

impl EtcdAnalysis {
    fn tables(pass: &Pass, opts: &EtcdOptions) -> Tables {
        let mut counts: Vec<u64> = pass.keys.values().map(|a| a.revisions).collect();
        counts.sort_unstable();
        let n = counts.len();
        let revisions_per_key = Distribution {
            p50: percentile(&counts, 0.50),
            p90: percentile(&counts, 0.90),
            p99: percentile(&counts, 0.99),
            max: counts.last().copied().unwrap_or(0),
            mean: if n == 0 {
                0.0
            } else {
                pass.figures.entries as f64 / n as f64
            },
        };
        let top = |by: &dyn Fn(&KeyAcc) -> u64| -> Vec<TopKey> {
            let mut v: Vec<(&Box<[u8]>, &KeyAcc)> = pass.keys.iter().collect();
            v.sort_unstable_by(|a, b| by(b.1).cmp(&by(a.1)).then(a.0.cmp(b.0)));
            v.into_iter()
                .take(opts.top)
                .map(|(k, a)| TopKey {
                    key: text_or_hex(k),
                    revisions: a.revisions,
                    bytes: a.bytes,
                    live: !a.last_tombstone,
                })
                .collect()
        };
        let top_keys_by_revisions = top(&|a| a.revisions);
        let top_keys_by_bytes = top(&|a| a.bytes);
        let mut groups: HashMap<String, PrefixRow> = HashMap::new();
        for (k, a) in &pass.keys {
            let g = group_of(k, opts.prefix_depth, opts.by_namespace);
            let row = groups.entry(g).or_default();
            row.keys += 1;
            row.live_keys += u64::from(!a.last_tombstone);
            row.revisions += a.revisions;
            row.latest_bytes += a.last_bytes;
            row.history_bytes += a.bytes - a.last_bytes;
        }
        let mut groups: Vec<PrefixRow> = groups
            .into_iter()
            .map(|(prefix, r)| PrefixRow { prefix, ..r })
            .collect();
        groups.sort_unstable_by(|a, b| {
            (b.latest_bytes + b.history_bytes)
                .cmp(&(a.latest_bytes + a.history_bytes))
                .then_with(|| a.prefix.cmp(&b.prefix))
        });
        let prefixes = Prefixes {
            grouping: format!(
                "Kubernetes keys (/registry/...) by resource{}; other keys by their first {} \
                 path segment(s)",
                if opts.by_namespace {
                    " and namespace"
                } else {
                    ""
                },
                opts.prefix_depth.max(1)
            ),
            groups,
        };
        Tables {
            revisions_per_key,
            top_keys_by_revisions,
            top_keys_by_bytes,
            prefixes,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        db: &Db,
        opts: &EtcdOptions,
        meta: EtcdMeta,
        revs: Revisions,
        first_key: Option<i64>,
        lo: i64,
        candidates: &Candidates,
        pass: &Pass,
        tables: Tables,
        (sizes, defrag): (Vec<u64>, Option<CompactSummary>),
    ) -> Result<(EtcdAnalysis, Option<CompactSummary>)> {
        let (current, compacted) = (revs.current, revs.compacted);
        // Capacity.
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
        for (&r, &size) in candidates.revisions.iter().zip(&sizes) {
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
        let capacity = Capacity {
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
            quota_reached_after_compaction_at_revision: quota_revision(
                current,
                headroom_after,
                rate,
            ),
            curve,
            note: format!(
                "entries and bytes come from one pass (a histogram by the revision that removes \
                 each entry); the file sizes of the {} candidates are exact: the writer's layout \
                 of each compacted copy, what `boltpack compact --dry-run --revision R` prints \
                 (fill 1.0; etcd's own defrag fills 0.9)",
                cands.len()
            ),
            candidates: cands,
        };

        let alarms = match Bucket::root_of(db).bucket(b"alarm")? {
            Some(b) => {
                let mut v = Vec::new();
                for e in b.iter() {
                    v.push(decode_alarm(e?.key));
                }
                v
            }
            None => Vec::new(),
        };
        let analysis = EtcdAnalysis {
            current_revision: current,
            compacted_revision: compacted,
            finished_compact_rev: meta.finished_compact_rev,
            scheduled_compact_rev: meta.scheduled_compact_rev,
            interrupted_compaction: meta
                .scheduled_compact_rev
                .filter(|&s| Some(s) != meta.finished_compact_rev),
            first_key_revision: first_key,
            last_key_revision: revs.last_key,
            consistent_index: meta.consistent_index,
            term: meta.term,
            storage_version: meta.storage_version.clone(),
            alarms,
            members: count_entries(db, b"members")?,
            members_removed: count_entries(db, b"members_removed")?,
            leases: count_entries(db, b"lease")?,
            keys: pass.figures.clone(),
            revisions_per_key: tables.revisions_per_key,
            top_keys_by_revisions: tables.top_keys_by_revisions,
            top_keys_by_bytes: tables.top_keys_by_bytes,
            prefixes: tables.prefixes,
            revision_histogram: pass.bands.clone(),
            capacity,
        };
        Ok((analysis, defrag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OpenOptions;

    fn fixture() -> Db {
        let p = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("testdata/etcd/db");
        Db::open(&p, OpenOptions { lock: false }).unwrap()
    }

    #[test]
    fn groups() {
        assert_eq!(
            group_of(b"/registry/pods/default/p1", 1, false),
            "registry:pods"
        );
        assert_eq!(
            group_of(b"/registry/pods/default/p1", 1, true),
            "registry:pods/default"
        );
        assert_eq!(
            group_of(b"/registry/masterleases/127.0.0.1", 1, true),
            "registry:masterleases"
        );
        assert_eq!(
            group_of(b"/registry/apiregistration.k8s.io/apiservices/v1.", 1, true),
            "registry:apiregistration.k8s.io/apiservices"
        );
        assert_eq!(group_of(b"foo", 1, false), "foo");
        assert_eq!(group_of(b"a/b/c", 1, false), "a/");
        assert_eq!(group_of(b"a/b/c", 2, false), "a/b/");
        assert_eq!(group_of(b"/x/y/z", 1, false), "/x/");
        assert_eq!(group_of(b"/x/y/z", 5, false), "/x/y/z");
    }

    #[test]
    fn alarms_and_thresholds() {
        // memberID 0x1234, NOSPACE
        let a = decode_alarm(&[0x08, 0xb4, 0x24, 0x10, 0x01]);
        assert_eq!(
            (a.member_id.as_str(), a.alarm.as_str()),
            ("1234", "NOSPACE")
        );
        assert_eq!(threshold(5, true, Some(9), TombstoneAtRev::Keep), Some(6));
        assert_eq!(threshold(5, true, None, TombstoneAtRev::Drop), Some(5));
        assert_eq!(threshold(5, false, Some(9), TombstoneAtRev::Keep), Some(9));
        let mut h = ThresholdHistogram::new(vec![2, 4, 6]);
        for (d, b) in [
            (Some(1), 1),
            (Some(3), 10),
            (Some(4), 100),
            (Some(7), 1000),
            (None, 5),
        ] {
            h.add(d, b);
        }
        let c: Vec<_> = h
            .curve()
            .iter()
            .map(|p| (p.revision, p.remaining_bytes))
            .collect();
        assert_eq!(c, vec![(2, 1115), (4, 1005), (6, 1005)]);
        assert_eq!(percentile(&[1, 2, 3, 4], 0.5), 2);
        assert_eq!(percentile(&[1, 2, 3, 4], 0.99), 4);
        assert_eq!(spread(166, 218, 3), vec![166, 192, 218]);
    }

    /// What CompactionPlan keeps at R, counted directly.
    fn plan_counts(db: &Db, r: i64, rule: TombstoneAtRev) -> (u64, u64) {
        let plan = CompactionPlan::build(db, r, rule).unwrap();
        let (mut n, mut b) = (0, 0);
        for e in key_bucket(db).unwrap().iter() {
            let e = e.unwrap();
            if plan.keeps(e.key, e.value).unwrap() {
                n += 1;
                b += (e.key.len() + e.value.len()) as u64;
            }
        }
        (n, b)
    }

    #[test]
    fn curve_equals_compaction_plan_on_fixture() {
        let db = fixture();
        for rule in [TombstoneAtRev::Keep, TombstoneAtRev::Drop] {
            let opts = EtcdOptions {
                rule,
                curve_points: 1000,
                // Every revision from the compacted one to the current one.
                candidates: 60,
                ..EtcdOptions::default()
            };
            let a = EtcdAnalysis::gather(&db, &opts).unwrap().unwrap();
            assert_eq!(
                a.capacity.curve.len(),
                218 - 166 + 1,
                "one point per revision"
            );
            for p in &a.capacity.curve {
                let (n, b) = plan_counts(&db, p.revision, rule);
                assert_eq!(
                    (p.remaining_entries, p.remaining_bytes),
                    (n, b),
                    "R {} {rule:?}",
                    p.revision
                );
            }
            for c in &a.capacity.candidates {
                assert_eq!(
                    c.remaining_file_size,
                    planned_size(&db, c.revision, 166, rule).unwrap()
                );
            }
        }
    }

    #[test]
    fn fixture_figures() {
        let db = fixture();
        let a = EtcdAnalysis::gather(&db, &EtcdOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!((a.current_revision, a.compacted_revision), (218, 166));
        assert_eq!(a.keys.live_keys, 97);
        assert_eq!(a.keys.entries, 135);
        assert_eq!(a.interrupted_compaction, None);
        assert_eq!(a.members, 1);
        let total: u64 = a.revision_histogram.iter().map(|b| b.entries).sum();
        assert_eq!(total, a.keys.entries);
        let rows: u64 = a.prefixes.groups.iter().map(|g| g.revisions).sum();
        assert_eq!(rows, a.keys.entries);
        assert_eq!(a.capacity.candidates.len(), 8);
        assert_eq!(a.capacity.candidates[0].revision, 166);
        assert_eq!(a.capacity.candidates.last().unwrap().revision, 218);
        // Nothing is removable at the compacted revision itself.
        assert_eq!(a.capacity.candidates[0].removed_entries, 0);
    }

    /// The fixture with an interrupted compaction (scheduledCompactRev 180 > finished 166)
    /// and a NOSPACE alarm, written through the writer's transform.
    #[test]
    fn interrupted_compaction_and_alarm() {
        let db = fixture();
        let mut t = Transform::default();
        let sched = crate::etcd::RevisionKey {
            main: 180,
            sub: 0,
            tombstone: false,
        };
        t.set.insert(
            META_BUCKET.to_vec(),
            [(b"scheduledCompactRev".to_vec(), sched.to_bytes().to_vec())].into(),
        );
        t.set.insert(
            b"alarm".to_vec(),
            [(vec![0x08, 0xb4, 0x24, 0x10, 0x01], Vec::new())].into(),
        );
        let (bytes, _) =
            crate::writer::compact::compact_to_vec(&db, &CompactOptions::default(), &t).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("db");
        std::fs::write(&p, bytes).unwrap();
        let copy = Db::open(&p, OpenOptions { lock: false }).unwrap();
        let a = EtcdAnalysis::gather(&copy, &EtcdOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(a.finished_compact_rev, Some(166));
        assert_eq!(a.scheduled_compact_rev, Some(180));
        assert_eq!(a.interrupted_compaction, Some(180));
        // etcd 3.4.23 resumes it at start (180 <= current 218) and then enforces 180.
        assert_eq!((a.current_revision, a.compacted_revision), (218, 180));
        assert_eq!(
            a.alarms,
            vec![Alarm {
                member_id: "1234".into(),
                alarm: "NOSPACE".into()
            }]
        );
        // Candidates now start at 180.
        assert_eq!(a.capacity.candidates[0].revision, 180);
    }

    /// A synthetic history through the same threshold logic, against the key index rule.
    #[test]
    fn synthetic_history_matches_rule() {
        // put foo@2, put foo@3, put baz@4, del foo@5, put foo@6, put lk@7 (docs/format.md B5 example).
        let ops: [(i64, &[u8], bool); 6] = [
            (2, b"foo", false),
            (3, b"foo", false),
            (4, b"baz", false),
            (5, b"foo", true),
            (6, b"foo", false),
            (7, b"lk", false),
        ];
        for rule in [TombstoneAtRev::Keep, TombstoneAtRev::Drop] {
            let mut h = ThresholdHistogram::new((1..=7).collect());
            for (i, &(m, k, t)) in ops.iter().enumerate() {
                let next = ops[i + 1..].iter().find(|o| o.1 == k).map(|o| o.0);
                h.add(threshold(m, t, next, rule), 1);
            }
            let c: Vec<u64> = h.curve().iter().map(|p| p.remaining_entries).collect();
            // compact 4 keeps foo@3 and baz@4 plus 5, 6, 7 (foo@2 gone).
            assert_eq!(c[3], 5);
            // compact 5: foo's generation ended at 5; keep drops it all, keep-rule keeps
            // the tombstone.
            let at5 = if rule == TombstoneAtRev::Keep { 4 } else { 3 };
            assert_eq!(c[4], at5, "{rule:?}");
            assert_eq!(c[6], 3);
        }
    }
}
