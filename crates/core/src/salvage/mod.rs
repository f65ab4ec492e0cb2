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

mod root;

pub use root::{RebuiltRoot, from_bytes, open};

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
    /// The root bucket's page (or both metas) could not be read: the earlier copy of the
    /// root used instead.
    pub rebuilt_root: Option<RebuiltRoot>,
}

/// What an earlier copy of the root costs: the buckets left out (etcd: all but `key`,
/// whose content may be stale there) and the end of the `key` bucket, where the
/// transactions after that copy wrote.
struct FromEarlierRoot {
    leave_out: std::collections::BTreeSet<Vec<u8>>,
    lost: Vec<Damaged>,
    key_after: Option<KeyRange>,
}

fn from_earlier_root(db: &Db, r: &RebuiltRoot) -> FromEarlierRoot {
    let mut out = FromEarlierRoot {
        leave_out: Default::default(),
        lost: Vec::new(),
        key_after: None,
    };
    let copy = format!("page {} (byte offset {})", r.page, r.offset);
    let advice = if r.etcd {
        "; the buckets other than `key` are left out (their content may be stale there): \
         restore the copy with `etcdctl snapshot restore`, which rebuilds `meta` and \
         `members`, then create leases, users and roles again"
    } else {
        ", so what later transactions changed may be missing and what they deleted may be back"
    };
    out.lost.push(Damaged {
        bucket: "(root)".into(),
        page: Some(r.page),
        offset: Some(r.offset),
        why: format!(
            "{}: read through an earlier copy of the root bucket's page, {copy}{advice}",
            r.why
        ),
        from: None,
        to: None,
    });
    if !r.etcd {
        return out;
    }
    for e in Bucket::root_of(db).iter_salvaging().flatten() {
        if e.is_bucket() && e.key != KEY_BUCKET {
            out.leave_out.insert(e.key.to_vec());
            out.lost.push(Damaged {
                bucket: text_or_hex(e.key),
                page: Some(r.page),
                offset: Some(r.offset),
                why: "left out: only the earlier copy of the root bucket's page lists it".into(),
                from: None,
                to: None,
            });
        }
    }
    // Revisions after the copy's last one were written by later transactions: looked for
    // on other pages, and open-ended when none is found.
    if let Ok(Some(last)) = crate::etcd::last_key_revision(db) {
        out.key_after = Some((Some((last + 1).to_be_bytes().to_vec()), None));
    }
    out
}

/// What the copy takes besides the tree: the entries put back into the `key` bucket, and
/// the top-level buckets it leaves out.
pub struct Plan {
    pub recovered: Entries,
    pub leave_out: std::collections::BTreeSet<Vec<u8>>,
    /// Top-level buckets the copy creates (the `key` bucket, when its own is gone).
    pub create: std::collections::BTreeSet<Vec<u8>>,
}

/// What the operator tells salvage.
#[derive(Debug, Clone, Copy, Default)]
pub struct SalvageOptions {
    /// The compact revision to assume (0: never compacted) when `meta` is lost: revisions
    /// above it are then taken from pages outside the tree. With `meta` readable the
    /// higher of the two is used.
    pub compact_revision: Option<i64>,
}

/// Read the damage and plan the recovery: the report and the [`Plan`]. `rebuilt`: the
/// root was read through an earlier copy of its page ([`open`]).
pub fn plan(
    db: &Db,
    rebuilt: Option<&RebuiltRoot>,
    opts: SalvageOptions,
) -> Result<(SalvageReport, Plan)> {
    let mut damaged = Vec::new();
    let mut key_lost: Vec<KeyRange> = Vec::new();
    let earlier = rebuilt.map(|r| from_earlier_root(db, r));
    // The `key` bucket itself is gone (its entry in the root, or its header): all of it is
    // then looked for on other pages, into a `key` bucket the copy creates.
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
    if let Some(e) = &earlier {
        key_lost.extend(e.key_after.clone());
        damaged.extend(e.lost.iter().cloned());
    }
    let compact = compact_guard(db)
        .max(rebuilt.and_then(|r| r.compact_guard))
        .max(opts.compact_revision);
    if key_gone {
        key_lost = vec![(None, None)];
    }
    let (recovered, conflicts) = match compact {
        Some(c) if !key_lost.is_empty() => recover_key_entries(db, &key_lost, c),
        _ => (BTreeMap::new(), Vec::new()),
    };
    let lost_revision_ranges = lost_revisions(&key_lost, &recovered, compact.unwrap_or(-1));
    let mut create = std::collections::BTreeSet::new();
    if key_gone && !recovered.is_empty() {
        create.insert(KEY_BUCKET.to_vec());
    }
    let lost_key_ranges: Vec<Damaged> = damaged
        .iter()
        .filter(|d| d.bucket != "key" || compact.is_none())
        .cloned()
        .collect();
    let leave_out = earlier.map(|e| e.leave_out).unwrap_or_default();
    let report = SalvageReport {
        complete: lost_revision_ranges.is_empty() && lost_key_ranges.is_empty(),
        damaged,
        entries_from_tree: entries,
        key_entries_recovered: recovered.len() as u64,
        conflicting_revisions: conflicts,
        lost_revision_ranges,
        compact_revision: compact,
        lost_key_ranges,
        rebuilt_root: rebuilt.cloned(),
    };
    Ok((
        report,
        Plan {
            recovered,
            leave_out,
            create,
        },
    ))
}

/// Salvage `db` into `dst` (see the module documentation).
pub fn salvage_file(
    db: &Db,
    rebuilt: Option<&RebuiltRoot>,
    salvage: SalvageOptions,
    dst: &Path,
    opts: &CompactOptions,
    out: &FileOutput<'_>,
) -> Result<(SalvageReport, CompactSummary)> {
    let (report, plan) = plan(db, rebuilt, salvage)?;
    let mut t = Transform {
        salvage: true,
        leave_out: plan.leave_out,
        create: plan.create,
        ..Transform::default()
    };
    if !plan.recovered.is_empty() {
        t.set.insert(KEY_BUCKET.to_vec(), plan.recovered);
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
/// At or below `compact`, an entry is taken only when it provably survived compaction:
/// its generation goes on above `compact` with the very next version (see
/// [`survivors_below`]).
fn recover_key_entries(db: &Db, lost: &[KeyRange], compact: i64) -> (Entries, Vec<i64>) {
    let mut found: Entries = BTreeMap::new();
    let mut below: Entries = BTreeMap::new();
    let mut conflicts = std::collections::BTreeSet::new();
    for id in 2..db.file_pages() {
        let Some(entries) = revision_leaf(db, id) else {
            continue;
        };
        for (key, value, r) in entries {
            if !in_lost(key, lost) {
                continue;
            }
            let into = if r.main <= compact {
                &mut below
            } else {
                &mut found
            };
            match into.get(key) {
                Some(v) if v.as_slice() != value => {
                    conflicts.insert(r.main);
                }
                Some(_) => {}
                None => {
                    into.insert(key.to_vec(), value.to_vec());
                }
            }
        }
    }
    let main_of = |key: &[u8]| RevisionKey::parse(key).map(|r| r.main);
    found.retain(|key, _| !main_of(key).is_ok_and(|m| conflicts.contains(&m)));
    below.retain(|key, _| !main_of(key).is_ok_and(|m| conflicts.contains(&m)));
    let survivors = survivors_below(db, compact, &found, below);
    found.extend(survivors);
    (found, conflicts.into_iter().collect())
}

/// The entries of `below` (at or below `compact`, from pages outside the tree) that
/// survived the compaction for certain: a put whose key has an entry above `compact`
/// (in the tree or in `above`) of the same generation (create revision) with the next
/// version. That entry is the put right after it, so it was the newest of its key at
/// `compact`, which compaction keeps; a stale copy of a removed entry never qualifies.
fn survivors_below(db: &Db, compact: i64, above: &Entries, below: Entries) -> Entries {
    // Per user key, the (create revision, version) its candidates' next puts would have,
    // and whether one was seen: only those are looked for above `compact`, so memory grows
    // with the candidates alone.
    let mut wanted: BTreeMap<Vec<u8>, Vec<(i64, i64, bool)>> = BTreeMap::new();
    let next_put = |k: &[u8], v: &[u8]| {
        let (r, kv) = (RevisionKey::parse(k).ok()?, KeyValue::decode(v).ok()?);
        (!r.tombstone).then(|| (kv.key.to_vec(), kv.create_revision, kv.version + 1))
    };
    for (k, v) in &below {
        if let Some((key, create, version)) = next_put(k, v) {
            wanted
                .entry(key)
                .or_default()
                .push((create, version, false));
        }
    }
    if wanted.is_empty() {
        return Entries::new();
    }
    let mut note = |k: &[u8], v: &[u8]| {
        if let (Ok(r), Ok(kv)) = (RevisionKey::parse(k), KeyValue::decode(v))
            && r.main > compact
            && !r.tombstone
            && let Some(puts) = wanted.get_mut(kv.key)
        {
            for p in puts.iter_mut() {
                p.2 |= (p.0, p.1) == (kv.create_revision, kv.version);
            }
        }
    };
    for (k, v) in above {
        note(k, v);
    }
    if let Ok(Some(key)) = Bucket::root_of(db).bucket(KEY_BUCKET) {
        for e in key.iter_salvaging().flatten() {
            note(e.key, e.value);
        }
    }
    below
        .into_iter()
        .filter(|(k, v)| {
            next_put(k, v).is_some_and(|(key, create, version)| {
                wanted
                    .get(&key)
                    .is_some_and(|puts| puts.contains(&(create, version, true)))
            })
        })
        .collect()
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
/// At or below `compact` a revision keeps only the entries that survived compaction, so a
/// recovered one does not show that all of its entries are back: those stay in the ranges.
fn lost_revisions(lost: &[KeyRange], recovered: &Entries, compact: i64) -> Vec<RevisionRange> {
    // A bound may be a revision key with a 0 byte appended (just after an entry).
    let main = |k: &Option<Vec<u8>>| {
        let b: [u8; 8] = k.as_deref()?.get(..8)?.try_into().ok()?;
        Some(i64::from_be_bytes(b))
    };
    let mains: Vec<i64> = recovered
        .keys()
        .filter_map(|k| RevisionKey::parse(k).ok().map(|r| r.main))
        .filter(|&m| m > compact)
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
