//! Salvage: a clean copy of a damaged db holding every entry the file still proves intact.
//!
//! 1. **The tree, read around its damage.** Every bucket is read with a salvaging cursor
//!    ([`Bucket::iter_salvaging`]): a child page it cannot read (out of bounds, of the wrong
//!    type, a header id that is not its position, elements outside the page, a cycle) is
//!    skipped, and the key range it covered, as the parent's separator keys say, is
//!    recorded as lost. A sub-bucket that does not open is lost whole.
//! 2. **The lost part of the `key` bucket, from other pages.** bbolt is copy-on-write:
//!    free and unreachable pages often hold earlier copies of a lost leaf. A `key` bucket
//!    entry never changes (its key is its revision), so an intact leaf page anywhere in the
//!    file whose every entry is a revision key with an `mvccpb.KeyValue` value may fill a
//!    lost range, with one rule: only revisions above the compact revision (the scheduled
//!    one when it is ahead), since older ones may have been removed by a compaction and
//!    bringing them back could resurrect a deleted key. Two copies of one revision with
//!    different values are reported and neither is used. Other buckets (`meta`, `lease`,
//!    `members`, ...) are mutable: an old copy may be stale, so they never take data from
//!    pages outside the tree.
//! 3. **The copy** goes through the writer like `compact`'s (atomic, re-read, checked and
//!    digest-verified): nothing is invented, every entry is byte-identical to one the file
//!    holds, in key order.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::etcd::{KEY_BUCKET, KeyValue, RevisionKey};
use crate::format::text::text_or_hex;
use crate::reader::{Bucket, Db, Lost};
use crate::writer::{CompactOptions, CompactSummary, FileOutput, Transform, compact_file};

/// A key range `[from, to)`; `None`: the bucket's start or end.
type KeyRange = (Option<Vec<u8>>, Option<Vec<u8>>);
/// Told each lost part: the bucket's path, the part, and whether the whole bucket is gone.
type LostFn<'f> = dyn FnMut(&[&[u8]], &Lost, bool) + 'f;
/// An intact leaf's entries: bucket key, value, revision.
type RevisionEntries<'a> = Vec<(&'a [u8], &'a [u8], RevisionKey)>;
/// Entries by key.
pub type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

/// A part of the tree that could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct Damaged {
    /// The bucket it belongs to, as a path (`key`, `outer/inner`).
    pub bucket: String,
    pub page: Option<u64>,
    pub offset: Option<u64>,
    pub why: String,
    /// The key range it covered (`from` inclusive, `to` exclusive; absent: the bucket's
    /// start or end).
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Main revisions `from..=to`; `to` is `None` when the end of the `key` bucket was lost
/// (how far it went is not known).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RevisionRange {
    pub from: i64,
    pub to: Option<i64>,
}

impl RevisionRange {
    pub fn contains(&self, main: i64) -> bool {
        main >= self.from && self.to.is_none_or(|t| main <= t)
    }
}

/// What salvage found, kept and lost. (`lost_key_ranges` lists the damage of buckets
/// other than `key`; the `key` bucket's is in `lost_revision_ranges`.)
#[derive(Debug, Clone, Serialize)]
pub struct SalvageReport {
    pub damaged: Vec<Damaged>,
    /// Entries read from the tree (every bucket; sub-bucket entries included).
    pub entries_from_tree: u64,
    /// `key` bucket entries taken from intact leaf pages outside the tree.
    pub key_entries_recovered: u64,
    /// Revisions found on two pages with different values: left out.
    pub conflicting_revisions: Vec<i64>,
    /// Inclusive main-revision ranges of the `key` bucket inside a lost range that no page
    /// could fill (above the compact revision every revision has an entry, so these are
    /// lost; at or below it, only some revisions survived compaction, so these may be).
    pub lost_revision_ranges: Vec<RevisionRange>,
    /// The compact revision the recovery rule used (`None`: not an etcd db).
    pub compact_revision: Option<i64>,
    /// Lost ranges of other buckets (never recovered from outside the tree).
    pub lost_key_ranges: Vec<Damaged>,
    /// Nothing was lost: every damaged range was filled.
    pub complete: bool,
}

/// Read the damage and plan the recovery: the report and the entries to put back into the
/// `key` bucket.
pub fn plan(db: &Db) -> Result<(SalvageReport, Entries)> {
    let mut damaged = Vec::new();
    let mut key_lost: Vec<KeyRange> = Vec::new();
    // The `key` bucket itself is gone (its entry in the root, or its header): nothing can
    // be put back into it, since the copy only has the buckets the tree still shows.
    let mut key_gone = false;
    let entries = walk(
        db,
        Bucket::root_of(db),
        &mut Vec::new(),
        &mut |path, lost, whole| {
            let bucket = if path.is_empty() {
                "(root)".to_string()
            } else {
                path.iter()
                    .map(|p| text_or_hex(p))
                    .collect::<Vec<_>>()
                    .join("/")
            };
            if path == [KEY_BUCKET] {
                key_lost.push((lost.from.clone(), lost.to.clone()));
                key_gone |= whole;
            }
            if path.is_empty() && in_lost(KEY_BUCKET, &[(lost.from.clone(), lost.to.clone())]) {
                key_gone = true;
            }
            damaged.push(describe(&bucket, lost));
        },
    )?;
    let compact = compact_guard(db);
    let (recovered, conflicts) = match compact {
        Some(c) if !key_lost.is_empty() && !key_gone => recover_key_entries(db, &key_lost, c),
        _ => (BTreeMap::new(), Vec::new()),
    };
    let lost_revision_ranges = if key_gone {
        vec![RevisionRange { from: 1, to: None }]
    } else {
        lost_revisions(&key_lost, &recovered)
    };
    let lost_key_ranges: Vec<Damaged> = damaged
        .iter()
        .filter(|d| d.bucket != "key" || compact.is_none() || key_gone)
        .cloned()
        .collect();
    let report = SalvageReport {
        complete: lost_revision_ranges.is_empty() && lost_key_ranges.is_empty(),
        damaged,
        entries_from_tree: entries,
        key_entries_recovered: recovered.len() as u64,
        conflicting_revisions: conflicts,
        lost_revision_ranges,
        compact_revision: compact,
        lost_key_ranges,
    };
    Ok((report, recovered))
}

/// Salvage `db` into `dst` (see the module documentation).
pub fn salvage_file(
    db: &Db,
    dst: &Path,
    opts: &CompactOptions,
    out: &FileOutput<'_>,
) -> Result<(SalvageReport, CompactSummary)> {
    let (report, recovered) = plan(db)?;
    let mut t = Transform {
        salvage: true,
        ..Transform::default()
    };
    if !recovered.is_empty() {
        t.set.insert(KEY_BUCKET.to_vec(), recovered);
    }
    let summary = compact_file(db, dst, opts, &t, out)?;
    Ok((report, summary))
}

fn describe(bucket: &str, lost: &Lost) -> Damaged {
    let (page, offset, why) = match &lost.damage {
        Error::Corrupt {
            page, offset, what, ..
        } => (Some(*page), Some(*offset), what.clone()),
        e => (None, None, e.to_string()),
    };
    Damaged {
        bucket: bucket.to_string(),
        page,
        offset,
        why,
        from: lost.from.as_deref().map(text_or_hex),
        to: lost.to.as_deref().map(text_or_hex),
    }
}

/// Every bucket under `b`, read around its damage; `lost` is told each lost part. Returns
/// the entries read.
fn walk<'a>(
    db: &'a Db,
    b: Bucket<'a>,
    path: &mut Vec<&'a [u8]>,
    lost: &mut LostFn<'_>,
) -> Result<u64> {
    let mut n = 0;
    let mut c = b.iter_salvaging();
    for e in c.by_ref() {
        let e = e?;
        n += 1;
        if e.is_bucket() {
            path.push(e.key);
            match Bucket::open(db, e.value) {
                Ok(sub) => n += walk(db, sub, path, lost)?,
                Err(damage) => lost(
                    path,
                    &Lost {
                        damage,
                        from: None,
                        to: None,
                    },
                    true,
                ),
            }
            path.pop();
        }
    }
    for l in c.take_lost() {
        lost(path, &l, false);
    }
    Ok(n)
}

/// The revision at or below which compaction may have removed entries: the scheduled
/// compaction when it is ahead of the finished one. `None` without a readable `meta`.
fn compact_guard(db: &Db) -> Option<i64> {
    let meta = crate::etcd::EtcdMeta::read(db).ok()?;
    let finished = meta.finished_compact_rev.unwrap_or(-1);
    Some(finished.max(meta.scheduled_compact_rev.unwrap_or(-1)))
}

fn in_lost(key: &[u8], lost: &[KeyRange]) -> bool {
    lost.iter().any(|(from, to)| {
        from.as_deref().is_none_or(|f| key >= f) && to.as_deref().is_none_or(|t| key < t)
    })
}

/// Entries of intact `key` bucket leaf pages anywhere in the file that fall in a lost
/// range and lie above `compact`; revisions seen with two different values are left out.
fn recover_key_entries(db: &Db, lost: &[KeyRange], compact: i64) -> (Entries, Vec<i64>) {
    let mut found: Entries = BTreeMap::new();
    let mut conflicts = std::collections::BTreeSet::new();
    for id in 2..db.file_pages() {
        let Some(entries) = revision_leaf(db, id) else {
            continue;
        };
        for (key, value, r) in entries {
            if r.main <= compact || !in_lost(key, lost) {
                continue;
            }
            match found.get(key) {
                Some(v) if v.as_slice() != value => {
                    conflicts.insert(r.main);
                }
                Some(_) => {}
                None => {
                    found.insert(key.to_vec(), value.to_vec());
                }
            }
        }
    }
    for k in conflicts.iter() {
        found.retain(|key, _| RevisionKey::parse(key).map(|r| r.main) != Ok(*k));
    }
    (found, conflicts.into_iter().collect())
}

/// Page `id` when it is an intact `key` bucket leaf: its header names its position, its
/// elements read, its keys ascend, every key is a revision key and every value a
/// `KeyValue`.
fn revision_leaf(db: &Db, id: u64) -> Option<RevisionEntries<'_>> {
    let node = db.node(id).ok()?;
    if !node.is_leaf() || node.count() == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(node.count());
    let mut prev: Option<&[u8]> = None;
    for i in 0..node.count() {
        let e = node.leaf(i).ok()?;
        if e.is_bucket() || prev.is_some_and(|p| e.key <= p) {
            return None;
        }
        let r = RevisionKey::parse(e.key).ok()?;
        KeyValue::decode(e.value).ok()?;
        prev = Some(e.key);
        out.push((e.key, e.value, r));
    }
    Some(out)
}

/// The main-revision ranges inside the `key` bucket's lost ranges that hold no recovered
/// entry.
fn lost_revisions(lost: &[KeyRange], recovered: &Entries) -> Vec<RevisionRange> {
    // A bound may be a revision key with a 0 byte appended (just after an entry).
    let main = |k: &Option<Vec<u8>>| {
        let b: [u8; 8] = k.as_deref()?.get(..8)?.try_into().ok()?;
        Some(i64::from_be_bytes(b))
    };
    let mains: Vec<i64> = recovered
        .keys()
        .filter_map(|k| RevisionKey::parse(k).ok().map(|r| r.main))
        .collect();
    let mut ranges = Vec::new();
    for (from, to) in lost {
        let lo = main(from).unwrap_or(1);
        // `to` is exclusive as a key: the revisions below its main are inside.
        let hi = main(to).map(|t| t - 1);
        let mut next = lo;
        for &m in mains
            .iter()
            .filter(|&&m| m >= lo && hi.is_none_or(|h| m <= h))
        {
            if m > next {
                ranges.push(RevisionRange {
                    from: next,
                    to: Some(m - 1),
                });
            }
            next = next.max(m + 1);
        }
        if hi.is_none_or(|h| next <= h) {
            ranges.push(RevisionRange { from: next, to: hi });
        }
    }
    ranges
}
