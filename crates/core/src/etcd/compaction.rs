//! etcd's MVCC compaction at revision R, as a plan the writer applies while copying
//! (etcd@v3.4 `mvcc/key_index.go: compact`, `kvstore_compaction.go`; docs/format.md B5).
//!
//! Per user key, what stays is every revision above R, plus the newest revision <= R of the
//! generation live at R. A key whose newest revision <= R is a tombstone below R loses that
//! whole generation, tombstone included. A tombstone exactly at R is kept by etcd >= 3.4.34 /
//! 3.5.16 / 3.6 (watchers at R still see the delete) and dropped by older versions.
//!
//! Pass 1 (here) reads the `key` bucket up to R and keeps, per distinct user key, its newest
//! revision <= R, then only the sorted list of the surviving revisions. Pass 2 is the
//! writer's copy, asking [`keeps`] about each entry by its revision (no value decoded, no
//! key hashed). Memory grows with distinct keys, never with revisions.
//!
//! [`keeps`]: CompactionPlan::keeps

use crate::error::DamageKind;
use crate::error::{Error, Result};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use crate::reader::{Bucket, Cursor, Db, Resume, key_cmp};

use super::keymap::pipelined;
use super::keytable::{KeyTable, key_hash};
use super::revision::{MARKED_REV_BYTES_LEN, REV_BYTES_LEN};
use super::{KEY_BUCKET, KeyValue, META_BUCKET, RevisionKey, Rules};

/// `meta` bucket keys written by compaction (etcd@v3.4 `mvcc/kvstore.go`).
pub const SCHEDULED_COMPACT_KEY: &[u8] = b"scheduledCompactRev";
pub const FINISHED_COMPACT_KEY: &[u8] = b"finishedCompactRev";

/// What to do with a tombstone whose revision is exactly the compaction revision.
///
/// The default is what current etcd releases do ([`TombstoneAtRev::of`] the newest
/// [`Rules`]), so watchers at R still see the delete. It is not the rule of the etcd 3.4.23
/// whose HashKV boltpack emulates by default: emulating an answer and choosing how to write
/// a copy are different questions, and both come from the one rule in [`Rules`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TombstoneAtRev {
    /// etcd >= 3.4.34 / 3.5.16 / 3.6: keep it, so watchers at R still see the delete.
    #[default]
    Keep,
    /// Older etcd (including the 3.4.23 of Debian): drop it with its generation.
    Drop,
}

impl TombstoneAtRev {
    /// The rule of the etcd release `rules` describes (`Rules::keep_tombstone_at_rev`).
    pub fn of(rules: &Rules) -> TombstoneAtRev {
        if rules.keep_tombstone_at_rev {
            TombstoneAtRev::Keep
        } else {
            TombstoneAtRev::Drop
        }
    }
}

/// Does compacting at `r` remove anything, given the already compacted revision
/// (`compacted`, <= 0 when never)? At or below it, `compact --revision r` only
/// defragments; `analyze`'s candidates follow the same rule.
pub fn compacts_at(r: i64, compacted: i64) -> bool {
    r > compacted.max(0) && r >= 1
}

fn etcd_buckets(db: &Db) -> Result<(Bucket<'_>, Bucket<'_>)> {
    let root = Bucket::root_of(db);
    let key = root.bucket(KEY_BUCKET)?;
    let meta = root.bucket(META_BUCKET)?;
    match (key, meta) {
        (Some(k), Some(m)) => Ok((k, m)),
        _ => Err(Error::Usage(
            "not an etcd db (no `key` and `meta` buckets): MVCC compaction needs one".into(),
        )),
    }
}

/// A `key` entry at or below R: its revision, and where its key and value are in the
/// map. 40 bytes, one per user key (as slices it was 56, and the plan's tables were the
/// heap of `compact --revision`): the key is the revision's 17 bytes, 18 with the
/// tombstone mark.
#[derive(Clone, Copy)]
struct Newest {
    main: i64,
    sub: i64,
    key_at: u64,
    value_at: u64,
    value_len: u32,
    tombstone: bool,
}

const _: () = assert!(std::mem::size_of::<Newest>() == 40);

impl Newest {
    fn new(db: &Db, r: RevisionKey, key: &[u8], value: &[u8]) -> Newest {
        Newest {
            main: r.main,
            sub: r.sub,
            key_at: db.offset_of(key),
            value_at: db.offset_of(value),
            value_len: value.len() as u32,
            tombstone: r.tombstone,
        }
    }

    fn r(&self) -> RevisionKey {
        RevisionKey {
            main: self.main,
            sub: self.sub,
            tombstone: self.tombstone,
        }
    }

    /// The entry's key and value, slices of `db`'s map again.
    fn entry<'a>(&self, db: &'a Db) -> (&'a [u8], &'a [u8]) {
        let key_len = if self.tombstone {
            MARKED_REV_BYTES_LEN
        } else {
            REV_BYTES_LEN
        };
        let at = |off, len| db.bytes_at(off, len).unwrap_or_default();
        (
            at(self.key_at, key_len),
            at(self.value_at, self.value_len as usize),
        )
    }
}

/// Pass 1's table of each key's newest entry, in two halves by the top bit of the key's
/// hash (its low bits place it in a half): the two threads' tables are merged half by
/// half, one half on each core.
#[derive(Default)]
struct Halves([KeyTable<Newest>; 2]);

impl Halves {
    fn of(&self, hash: u64) -> &KeyTable<Newest> {
        &self.0[(hash >> 63) as usize]
    }

    /// [`KeyTable::set`] in `hash`'s half.
    #[must_use]
    fn set(&mut self, hash: u64, key: &[u8], n: Newest) -> bool {
        self.0[(hash >> 63) as usize].set(hash, key, n)
    }

    fn len(&self) -> usize {
        self.0.iter().map(KeyTable::len).sum()
    }

    fn values(&self) -> impl Iterator<Item = &Newest> {
        self.0.iter().flat_map(KeyTable::values)
    }
}

/// What pass 1 found in one part of the bucket (the subtree of a root element).
struct Part<'a> {
    /// Entries at or below R.
    seen: u64,
    /// The first and the last key the part met (the last: where it stopped).
    first: Option<&'a [u8]>,
    last: Option<&'a [u8]>,
    /// Every key was above the one before it.
    ascending: bool,
    /// Where the first entry above R stands (`None`: the part has none).
    above: Option<Resume<'a>>,
}

/// Pass 1 over the entries `cursor` yields, up to the first one above `rev`, into
/// `newest` (a later entry of a key replaces the one there).
fn newest_in<'a>(
    newest: &mut Halves,
    db: &'a Db,
    mut cursor: Cursor<'a>,
    rev: i64,
) -> Result<Part<'a>> {
    let (mut first, mut last, mut ascending, mut above) = (None, None, true, None);
    let mut seen = 0u64;
    let steps = std::iter::from_fn(|| {
        let e = match cursor.next()? {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        let r = match RevisionKey::parse(e.key) {
            Ok(r) => r,
            Err(m) => return Some(Err(bad_entry(db, e.key, m))),
        };
        // (A sub-bucket here is no entry the plan can hand over: the copy walks instead.)
        ascending &= !e.is_bucket() && last.is_none_or(|l: &[u8]| key_cmp(e.key, l).is_gt());
        first = first.or(Some(e.key));
        last = Some(e.key);
        if r.main > rev {
            above = cursor.resume_point();
            return None;
        }
        seen += 1;
        Some(
            KeyValue::decode_through_value(e.value)
                .map_err(|m| bad_entry(db, e.value, m))
                .map(|kv| {
                    let n = Newest::new(db, r, e.key, e.value);
                    (n, kv.key, key_hash(kv.key))
                }),
        )
    });
    type Step<'s> = (Newest, &'s [u8], u64);
    let ahead_slot = |t: &Halves, s: &Step<'a>| t.of(s.2).prefetch_slot(s.2);
    let ahead_key = |t: &Halves, s: &Step<'a>| t.of(s.2).prefetch_key(s.2);
    let ahead_value = |t: &Halves, s: &Step<'a>| t.of(s.2).prefetch_value(s.2);
    pipelined(
        steps,
        newest,
        ahead_slot,
        ahead_key,
        ahead_value,
        |t, (n, key, hash)| {
            if t.set(hash, key, n) {
                Ok(())
            } else {
                Err(super::too_many_keys("a compaction plan"))
            }
        },
    )?;
    Ok(Part {
        seen,
        first,
        last,
        ascending,
        above,
    })
}

/// Per key its newest entry, and the parts read (with their index).
type Read<'a> = (Halves, Vec<(usize, Part<'a>)>);

/// Pass 1 on both cores: the root's elements are taken in turn, each thread keeping the
/// newest entries of the parts it read in a table of its own (its parts come in key order,
/// so a later entry replaces an earlier one); a part that meets an entry above R ends the
/// hand-out. The parts, by index, with the merged table.
fn newest_by_parts<'a>(db: &'a Db, key: &Bucket<'a>, count: usize, rev: i64) -> Result<Read<'a>> {
    let next = AtomicUsize::new(0);
    let stop = AtomicUsize::new(usize::MAX);
    let work = || -> Result<Read<'a>> {
        let mut newest = Halves::default();
        let mut parts = Vec::new();
        loop {
            let i = next.fetch_add(1, Relaxed);
            if i >= count || i > stop.load(Relaxed) {
                return Ok((newest, parts));
            }
            let part = newest_in(&mut newest, db, key.iter_root_part(i, i + 1), rev)?;
            if part.above.is_some() {
                stop.fetch_min(i, Relaxed);
            }
            parts.push((i, part));
        }
    };
    let (mine, theirs) = std::thread::scope(|s| {
        let theirs = s.spawn(work);
        let mine = work();
        (
            mine,
            theirs
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
        )
    });
    let ((Halves([a0, a1]), mut parts), (Halves([b0, b1]), more)) = (mine?, theirs?);
    // Each table holds the newest of its own parts: the newer of the two wins. Half by
    // half, one half on each core.
    let (h0, h1) = std::thread::scope(|s| {
        let h1 = s.spawn(|| merged(a1, b1));
        let h0 = merged(a0, b0);
        (
            h0,
            h1.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
        )
    });
    let newest = Halves([h0?, h1?]);
    parts.extend(more);
    parts.sort_unstable_by_key(|(i, _)| *i);
    Ok((newest, parts))
}

/// `into` with the entries of `other` that are newer than its own (or of keys it lacks).
/// `other` is read in the order it was filled and let go as it is (the merge is when pass
/// 1 holds most); one search per key, prefetched some keys ahead as the pass does.
fn merged(mut into: KeyTable<Newest>, other: KeyTable<Newest>) -> Result<KeyTable<Newest>> {
    type Merge<'s> = (u64, &'s [u8], Newest);
    let newer = |old: &Newest, n: &Newest| old.r().byte_order() < n.r().byte_order();
    other.drain_in_order(|keys| {
        pipelined(
            keys.map(|(k, n)| Ok((key_hash(k), k, n))),
            &mut into,
            |t, m: &Merge<'_>| t.prefetch_slot(m.0),
            |t, m: &Merge<'_>| t.prefetch_key(m.0),
            |t, m: &Merge<'_>| t.prefetch_value(m.0),
            |t, (h, k, n)| {
                if t.set_if(h, k, n, |old| newer(old, &n)) {
                    Ok(())
                } else {
                    Err(super::too_many_keys("a compaction plan"))
                }
            },
        )
    })?;
    Ok(into)
}

/// The parts of pass 1 joined in key order: every key above the one before it, and nothing
/// at or below R after the first entry above it. The entries at or below R, whether they
/// ascend, and where the first entry above R stands.
fn joined<'a>(parts: Vec<(usize, Part<'a>)>) -> (u64, bool, Option<Resume<'a>>) {
    let (mut seen, mut ascending, mut above) = (0, true, None::<Resume<'a>>);
    let mut last: Option<&[u8]> = None;
    for (_, p) in parts {
        seen += p.seen;
        ascending &= p.ascending && (above.is_none() || p.seen == 0);
        if above.is_none() {
            ascending &= last.zip(p.first).is_none_or(|(l, f)| key_cmp(f, l).is_gt());
            last = p.last.or(last);
            above = p.above;
        }
    }
    (seen, ascending, above)
}

/// The surviving entries at or below R, for a copy that takes them from here instead of
/// walking the pages they are on, and where its walk of the rest resumes.
pub struct Below<'a> {
    /// Key and value of each surviving entry, in key order.
    pub entries: Vec<(&'a [u8], &'a [u8])>,
    /// Where the first entry above R stands; `None`: there is none.
    pub resume: Option<Resume<'a>>,
    /// Entries at or below R the compaction drops.
    pub dropped: u64,
}

fn bad_entry(db: &Db, at: &[u8], what: impl std::fmt::Display) -> Error {
    db.damage_at(at, DamageKind::Etcd, format!("key bucket entry: {what}"))
}

pub struct CompactionPlan<'a> {
    pub rev: i64,
    pub rule: TombstoneAtRev,
    db: &'a Db,
    /// The entries at or below `rev` that survive, as (main, sub, tombstone), ascending: each key's
    /// newest one, unless it is a tombstone the rule drops. The copy pass looks an entry
    /// up here by its revision alone: no value to decode, no key to hash.
    kept: Vec<(i64, i64, bool)>,
    /// Distinct user keys at or below `rev`.
    keys: usize,
    /// Where the last lookup ended in `kept`: the copy asks in ascending order, so each
    /// lookup starts there (any value is correct, only slower).
    cursor: std::sync::atomic::AtomicUsize,
    /// The surviving entries at or below R themselves; `None` when pass 1 met a key not
    /// above the one before it (the copy's own walk then says where).
    below: Option<Below<'a>>,
}

impl<'a> CompactionPlan<'a> {
    /// Pass 1. `rev` must be <= the current revision (checked by the caller). The entries
    /// up to `rev` are read by the subtrees of the root's elements, taken in turn by the
    /// two cores ([`newest_by_parts`]: an exact split of the tree, so a copy may take the
    /// entries up to R from here and walk only what lies above).
    pub fn build(db: &'a Db, rev: i64, rule: TombstoneAtRev) -> Result<CompactionPlan<'a>> {
        let (key, _) = etcd_buckets(db)?;
        let (newest, seen, ascending, above) = match key.root_branch()? {
            Some(root) if root.count() > 1 => {
                let (newest, parts) = newest_by_parts(db, &key, root.count(), rev)?;
                let (seen, ascending, above) = joined(parts);
                (newest, seen, ascending, above)
            }
            _ => {
                let mut newest = Halves::default();
                let p = newest_in(&mut newest, db, key.iter(), rev)?;
                (newest, p.seen, p.ascending, p.above)
            }
        };
        let survives =
            |r: &RevisionKey| !r.tombstone || (rule == TombstoneAtRev::Keep && r.main == rev);
        let mut entries: Vec<&Newest> = newest.values().filter(|n| survives(&n.r())).collect();
        // Key order, from the parsed revisions: comparing the keys' bytes would touch a
        // page of the map per comparison (pass 1 let them go), most of the file again.
        entries.sort_unstable_by_key(|n| n.r().byte_order());
        let mut kept: Vec<(i64, i64, bool)> = entries
            .iter()
            .map(|n| (n.main, n.sub, n.tombstone))
            .collect();
        kept.sort_unstable();
        let below = ascending.then(|| Below {
            dropped: seen - entries.len() as u64,
            entries: entries.iter().map(|n| n.entry(db)).collect(),
            resume: above,
        });
        Ok(CompactionPlan {
            rev,
            rule,
            db,
            kept,
            keys: newest.len(),
            cursor: 0.into(),
            below,
        })
    }

    /// The surviving entries at or below R and where the rest starts, when pass 1 could
    /// vouch for the key order ([`Below`]).
    pub fn below(&self) -> Option<&Below<'a>> {
        self.below.as_ref()
    }

    /// This plan without [`Below`]: a copy then walks the whole `key` bucket (for tests
    /// and the `compact` fuzz target, which hold the two copies equal).
    #[doc(hidden)]
    pub fn without_below(mut self) -> Self {
        self.below = None;
        self
    }

    /// Distinct user keys seen at or below the compaction revision.
    pub fn keys(&self) -> usize {
        self.keys
    }

    /// Whether revision key `r` is in `kept` (the tombstone mark too: a damaged file may
    /// hold a put and a tombstone at one revision).
    fn is_kept(&self, r: (i64, i64, bool)) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let k = &self.kept;
        let mut i = self.cursor.load(Relaxed).min(k.len());
        if i > 0 && k[i - 1] >= r {
            i = k.partition_point(|x| *x < r);
        }
        while i < k.len() && k[i] < r {
            i += 1;
        }
        self.cursor.store(i, Relaxed);
        k.get(i) == Some(&r)
    }

    /// Pass 2: does the `key` bucket entry with revision key `key` survive compaction?
    pub fn keeps(&self, key: &[u8]) -> Result<bool> {
        let r = RevisionKey::parse(key).map_err(|m| bad_entry(self.db, key, m))?;
        if r.main > self.rev {
            return Ok(true);
        }
        // Pass 1 decoded every entry at or below `rev` (a bad value failed there).
        Ok(self.is_kept((r.main, r.sub, r.tombstone)))
    }

    /// The `meta` entries to set: both compaction revisions = R (17-byte form), so a
    /// restarted etcd reports R as compacted and resumes nothing (docs/format.md B6).
    pub fn meta_entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        Self::meta_entries_at(self.rev)
    }

    /// [`meta_entries`](Self::meta_entries) of a compaction at `rev`.
    pub fn meta_entries_at(rev: i64) -> Vec<(Vec<u8>, Vec<u8>)> {
        let r = RevisionKey {
            main: rev,
            sub: 0,
            tombstone: false,
        }
        .to_bytes()
        .to_vec();
        vec![
            (FINISHED_COMPACT_KEY.to_vec(), r.clone()),
            (SCHEDULED_COMPACT_KEY.to_vec(), r),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_tombstone_rule_is_current_etcds() {
        let newest = Rules::for_version("3.6.0").unwrap();
        assert_eq!(TombstoneAtRev::default(), TombstoneAtRev::of(&newest));
        assert_eq!(
            TombstoneAtRev::of(&Rules::ETCD_3_4_23),
            TombstoneAtRev::Drop
        );
        assert!(
            !compacts_at(5, 5) && compacts_at(6, 5) && !compacts_at(0, -1) && compacts_at(1, -1)
        );
    }
}
