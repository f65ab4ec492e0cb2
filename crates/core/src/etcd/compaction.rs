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
use crate::reader::{Bucket, Cursor, Db, Node, Resume};

use super::keymap::pipelined;
use super::keytable::{KeyTable, key_hash};
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

/// A `key` entry at or below R: its revision, and its key and value in the map.
#[derive(Clone, Copy)]
struct Newest<'a> {
    r: RevisionKey,
    key: &'a [u8],
    value: &'a [u8],
}

/// What one part of pass 1 found.
struct Part<'a> {
    /// Per user key, its newest entry at or below R.
    newest: KeyTable<Newest<'a>>,
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

/// Pass 1 over the entries `cursor` yields, up to the first one above `rev`.
fn newest_in<'a>(db: &'a Db, mut cursor: Cursor<'a>, rev: i64) -> Result<Part<'a>> {
    let mut newest = KeyTable::default();
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
        ascending &= !e.is_bucket() && last.is_none_or(|l: &[u8]| e.key > l);
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
                    let n = Newest {
                        r,
                        key: e.key,
                        value: e.value,
                    };
                    (n, kv.key, key_hash(kv.key))
                }),
        )
    });
    type Step<'s> = (Newest<'s>, &'s [u8], u64);
    let ahead_slot = |t: &KeyTable<Newest<'a>>, s: &Step<'a>| t.prefetch_slot(s.2);
    let ahead_key = |t: &KeyTable<Newest<'a>>, s: &Step<'a>| t.prefetch_key(s.2);
    pipelined(
        steps,
        &mut newest,
        ahead_slot,
        ahead_key,
        |_, _| {},
        |t, (n, key, hash)| {
            if t.set(hash, key, n) {
                Ok(())
            } else {
                Err(super::too_many_keys("a compaction plan"))
            }
        },
    )?;
    Ok(Part {
        newest,
        seen,
        first,
        last,
        ascending,
        above,
    })
}

/// The root element the second part of pass 1 starts at: the first whose key is at the
/// middle revision between the bucket's first one and `rev`, or above it; `None` when the
/// root is a leaf or the keys are no revisions.
fn split_child(root: &Node<'_>, first: i64, rev: i64) -> Option<usize> {
    let n = root.count();
    if n < 2 {
        return None;
    }
    let split = first.saturating_add(rev.saturating_sub(first) / 2);
    let main_at = |i: usize| Some(RevisionKey::parse(root.branch(i).ok()?.key).ok()?.main);
    let (mut lo, mut hi) = (1, n - 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if main_at(mid)? >= split {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo)
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
    /// The entries at or below `rev` that survive, as (main, sub), ascending: each key's
    /// newest one, unless it is a tombstone the rule drops. The copy pass looks an entry
    /// up here by its revision alone: no value to decode, no key to hash.
    kept: Vec<(i64, i64)>,
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
    /// up to `rev` are read in two parts, one per core: the subtrees of the root's first
    /// elements, and the rest from the element at the middle revision (an exact split of
    /// the tree, so a copy may take the entries up to R from here and walk only what lies
    /// above); the later part's newest revisions replace the earlier part's.
    pub fn build(db: &'a Db, rev: i64, rule: TombstoneAtRev) -> Result<CompactionPlan<'a>> {
        let (key, _) = etcd_buckets(db)?;
        let first = match key.iter().next() {
            Some(e) => {
                let e = e?;
                RevisionKey::parse(e.key)
                    .map_err(|m| bad_entry(db, e.key, m))?
                    .main
            }
            None => rev,
        };
        let root = key.root_branch()?;
        let split = root
            .as_ref()
            .and_then(|r| Some((split_child(r, first, rev)?, r.count())));
        let (mut part, later) = match split {
            None => (newest_in(db, key.iter(), rev)?, None),
            Some((at, count)) => {
                let (earlier, later) = std::thread::scope(|s| {
                    let later = s.spawn(|| newest_in(db, key.iter_root_part(at, count), rev));
                    let earlier = newest_in(db, key.iter_root_part(0, at), rev);
                    (
                        earlier,
                        later
                            .join()
                            .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                    )
                });
                (earlier?, Some(later?))
            }
        };
        if let Some(later) = later {
            // In key order the later part follows the earlier; it has nothing at or below
            // R when the earlier one already met an entry above it.
            part.ascending &= later.ascending
                && match part.above {
                    None => part.last.zip(later.first).is_none_or(|(l, f)| l < f),
                    Some(_) => later.seen == 0,
                };
            if !part.newest.extend_from(&later.newest) {
                return Err(super::too_many_keys("a compaction plan"));
            }
            part.seen += later.seen;
            part.above = part.above.or(later.above);
        }
        let survives =
            |r: &RevisionKey| !r.tombstone || (rule == TombstoneAtRev::Keep && r.main == rev);
        let mut entries: Vec<&Newest<'a>> =
            part.newest.values().filter(|n| survives(&n.r)).collect();
        // Key order, from the parsed revisions: comparing the keys' bytes would touch a
        // page of the map per comparison (pass 1 let them go), most of the file again.
        entries.sort_unstable_by_key(|n| (n.r.main as u64, n.r.sub as u64, n.r.tombstone));
        let mut kept: Vec<(i64, i64)> = entries.iter().map(|n| (n.r.main, n.r.sub)).collect();
        kept.sort_unstable();
        let below = part.ascending.then(|| Below {
            dropped: part.seen - entries.len() as u64,
            entries: entries.iter().map(|n| (n.key, n.value)).collect(),
            resume: part.above,
        });
        Ok(CompactionPlan {
            rev,
            rule,
            db,
            kept,
            keys: part.newest.len(),
            cursor: 0.into(),
            below,
        })
    }

    /// The surviving entries at or below R and where the rest starts, when pass 1 could
    /// vouch for the key order ([`Below`]).
    pub fn below(&self) -> Option<&Below<'a>> {
        self.below.as_ref()
    }

    /// This plan without [`Below`]: a copy then walks the whole `key` bucket (tests).
    #[cfg(test)]
    pub(crate) fn without_below(mut self) -> Self {
        self.below = None;
        self
    }

    /// Distinct user keys seen at or below the compaction revision.
    pub fn keys(&self) -> usize {
        self.keys
    }

    /// Whether (main, sub) `r` is in `kept`.
    fn is_kept(&self, r: (i64, i64)) -> bool {
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
        Ok(self.is_kept((r.main, r.sub)))
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
