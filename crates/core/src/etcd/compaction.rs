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
use crate::reader::{Bucket, Db};

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

/// Per user key, its newest revision among the entries from `entries` up to `last`.
fn newest_up_to<'a>(
    db: &'a Db,
    entries: impl Iterator<Item = Result<crate::reader::Entry<'a>>>,
    last: i64,
) -> Result<KeyTable<RevisionKey>> {
    let mut newest = KeyTable::default();
    let steps = entries
        .map(|e| {
            let e = e?;
            let r = RevisionKey::parse(e.key).map_err(|m| bad_entry(db, e.key, m))?;
            Ok((e, r))
        })
        .take_while(|s| !matches!(s, Ok((_, r)) if r.main > last))
        .map(|s| {
            let (e, r) = s?;
            let kv =
                KeyValue::decode_through_value(e.value).map_err(|m| bad_entry(db, e.value, m))?;
            Ok((r, kv.key, key_hash(kv.key)))
        });
    let ahead_slot =
        |t: &KeyTable<RevisionKey>, s: &(RevisionKey, &[u8], u64)| t.prefetch_slot(s.2);
    let ahead_key = |t: &KeyTable<RevisionKey>, s: &(RevisionKey, &[u8], u64)| t.prefetch_key(s.2);
    pipelined(
        steps,
        &mut newest,
        ahead_slot,
        ahead_key,
        |_, _| {},
        |t, (r, key, hash)| {
            if t.set(hash, key, r) {
                Ok(())
            } else {
                Err(super::too_many_keys("a compaction plan"))
            }
        },
    )?;
    Ok(newest)
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
}

impl<'a> CompactionPlan<'a> {
    /// Pass 1. `rev` must be <= the current revision (checked by the caller). The entries
    /// up to `rev` are read in two halves by revision, one per core; the later half's
    /// newest revisions replace the earlier half's.
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
        let split = first.saturating_add(rev.saturating_sub(first) / 2);
        let newest = if split <= first {
            newest_up_to(db, key.iter(), rev)?
        } else {
            let from = RevisionKey {
                main: split,
                sub: 0,
                tombstone: false,
            }
            .to_bytes();
            let (earlier, later) = std::thread::scope(|s| {
                let later = s.spawn(|| newest_up_to(db, key.iter_from(&from)?, rev));
                let earlier = newest_up_to(db, key.iter(), split - 1);
                (
                    earlier,
                    later
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                )
            });
            let mut newest = earlier?;
            if !newest.extend_from(&later?) {
                return Err(super::too_many_keys("a compaction plan"));
            }
            newest
        };
        let survives =
            |r: &RevisionKey| !r.tombstone || (rule == TombstoneAtRev::Keep && r.main == rev);
        let mut kept: Vec<(i64, i64)> = newest
            .values()
            .filter(|r| survives(r))
            .map(|r| (r.main, r.sub))
            .collect();
        kept.sort_unstable();
        Ok(CompactionPlan {
            rev,
            rule,
            db,
            kept,
            keys: newest.len(),
            cursor: 0.into(),
        })
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
