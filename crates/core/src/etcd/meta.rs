//! etcd's `meta` bucket (docs/format.md B4) and the revisions etcd derives from it at start
//! (`store.restore`, docs/format.md B6): the current revision and the compacted revision.

use crate::error::DamageKind;
use crate::error::{Error, Result};
use crate::etcd::{KEY_BUCKET, META_BUCKET, RevisionKey, Rules};
use crate::reader::MAX_TREE_DEPTH;
use crate::reader::{Bucket, BucketInfo, Db};

/// `meta` key names (etcd@v3.4.23 `mvcc/kvstore.go`, etcd@v3.6 `schema/*.go`).
pub const CONSISTENT_INDEX: &[u8] = b"consistent_index";
pub const TERM: &[u8] = b"term";
pub const SCHEDULED_COMPACT_REV: &[u8] = b"scheduledCompactRev";
pub const FINISHED_COMPACT_REV: &[u8] = b"finishedCompactRev";
pub const CONF_STATE: &[u8] = b"confState";
pub const STORAGE_VERSION: &[u8] = b"storageVersion";

/// `raftpb.ConfState` as etcd >= 3.5 stores it in `meta/confState` (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfState {
    #[serde(default)]
    pub voters: Vec<u64>,
    #[serde(default)]
    pub learners: Vec<u64>,
    #[serde(default)]
    pub voters_outgoing: Vec<u64>,
    #[serde(default)]
    pub learners_next: Vec<u64>,
    #[serde(default)]
    pub auto_leave: bool,
}

/// The decoded `meta` bucket. Absent keys are `None` (3.4 has no `term`, `confState` or
/// `storageVersion`; a never-compacted store has no compact revisions).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EtcdMeta {
    /// Applied raft index, 8-byte big-endian (3.0+).
    pub consistent_index: Option<u64>,
    /// Raft term, 8-byte big-endian (3.5+).
    pub term: Option<u64>,
    /// `main` of `scheduledCompactRev` (17-byte revision key).
    pub scheduled_compact_rev: Option<i64>,
    /// `main` of `finishedCompactRev` (17-byte revision key).
    pub finished_compact_rev: Option<i64>,
    /// `confState` (3.5+).
    pub conf_state: Option<ConfState>,
    /// `storageVersion`, e.g. `3.6.0` (3.6+).
    pub storage_version: Option<String>,
}

fn bad(db: &Db, value: &[u8], what: String) -> Error {
    db.damage_at(value, DamageKind::Etcd, what)
}

fn be_u64(db: &Db, name: &str, v: &[u8]) -> Result<u64> {
    let b: [u8; 8] = v.try_into().map_err(|_| {
        bad(
            db,
            v,
            format!("meta/{name} is {} bytes, want 8 (big-endian u64)", v.len()),
        )
    })?;
    Ok(u64::from_be_bytes(b))
}

fn rev_main(db: &Db, name: &str, v: &[u8]) -> Result<i64> {
    RevisionKey::parse(v)
        .map(|r| r.main)
        .map_err(|e| bad(db, v, format!("meta/{name}: {e}")))
}

impl EtcdMeta {
    /// Read the `meta` bucket. A file without one is not an etcd backend (`NotFound`);
    /// a value of the wrong shape is corruption (etcd itself panics on those).
    pub fn read(db: &Db) -> Result<EtcdMeta> {
        EtcdMeta::read_under(db, Bucket::root_of(db))
    }

    /// [`EtcdMeta::read`] from the `meta` bucket under `root` (salvage: a copy of the root
    /// bucket's page found elsewhere in the file).
    pub fn read_under<'a>(db: &'a Db, root: Bucket<'a>) -> Result<EtcdMeta> {
        let Some(meta) = root.bucket(META_BUCKET)? else {
            return Err(Error::NotFound(
                "no `meta` bucket: not an etcd backend file".into(),
            ));
        };
        let get = |k: &[u8]| meta.get(k);
        let mut m = EtcdMeta::default();
        if let Some(v) = get(CONSISTENT_INDEX)? {
            m.consistent_index = Some(be_u64(db, "consistent_index", v)?);
        }
        if let Some(v) = get(TERM)? {
            m.term = Some(be_u64(db, "term", v)?);
        }
        if let Some(v) = get(SCHEDULED_COMPACT_REV)? {
            m.scheduled_compact_rev = Some(rev_main(db, "scheduledCompactRev", v)?);
        }
        if let Some(v) = get(FINISHED_COMPACT_REV)? {
            m.finished_compact_rev = Some(rev_main(db, "finishedCompactRev", v)?);
        }
        if let Some(v) = get(CONF_STATE)? {
            m.conf_state = Some(
                serde_json::from_slice(v)
                    .map_err(|e| bad(db, v, format!("meta/confState is not JSON: {e}")))?,
            );
        }
        if let Some(v) = get(STORAGE_VERSION)? {
            m.storage_version = Some(
                std::str::from_utf8(v)
                    .map_err(|_| bad(db, v, "meta/storageVersion is not UTF-8".into()))?
                    .to_string(),
            );
        }
        Ok(m)
    }
}

/// The revisions etcd works with after starting on this file (`store.restore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Revisions {
    /// `main` of the last entry of the `key` bucket; `None` when the bucket is empty.
    pub last_key: Option<i64>,
    /// etcd's `currentRev`: the last key's main (1 for an empty bucket), raised to the
    /// finished compaction, and from etcd 3.4.32 / 3.5.14 / 3.6 also to the scheduled one.
    pub current: i64,
    /// etcd's `compactMainRev`: `finishedCompactRev`, or -1 when never compacted; if a
    /// scheduled compaction above it is resumed at start, that revision.
    pub compacted: i64,
    /// `scheduledCompactRev` > `finishedCompactRev`: a compaction that was interrupted and
    /// that etcd resumes at start (`Some` only when it can: it is <= `current`).
    pub resumed_compaction: Option<i64>,
    /// An interrupted compaction etcd cannot resume (above the current revision: 3.4.23
    /// fails it with ErrFutureRev, leaving `compacted` at the finished one).
    pub unresumable_compaction: Option<i64>,
}

impl Revisions {
    /// Derive the revisions as the etcd release of `rules` does at start (docs/format.md B6).
    pub fn derive(last_key: Option<i64>, meta: &EtcdMeta, rules: &Rules) -> Revisions {
        let finished = meta.finished_compact_rev.unwrap_or(-1);
        let mut scheduled = meta.scheduled_compact_rev.unwrap_or(0);
        let mut current = last_key.unwrap_or(1).max(finished);
        if rules.current_rev_includes_scheduled {
            current = current.max(scheduled);
        }
        if scheduled <= finished {
            scheduled = 0;
        }
        let (mut compacted, mut resumed, mut unresumable) = (finished, None, None);
        if scheduled != 0 {
            // `s.Compact(scheduled)`: ErrFutureRev above the current revision.
            if scheduled <= current {
                compacted = scheduled;
                resumed = Some(scheduled);
            } else {
                unresumable = Some(scheduled);
            }
        }
        Revisions {
            last_key,
            current,
            compacted,
            resumed_compaction: resumed,
            unresumable_compaction: unresumable,
        }
    }

    /// Read the `meta` bucket and the last key, then [`Revisions::derive`].
    pub fn read(db: &Db, rules: &Rules) -> Result<(EtcdMeta, Revisions)> {
        let meta = EtcdMeta::read(db)?;
        let last = last_key_revision(db)?;
        Ok((meta.clone(), Revisions::derive(last, &meta, rules)))
    }
}

/// The `key` bucket, or `NotFound`.
pub fn key_bucket(db: &Db) -> Result<Bucket<'_>> {
    Bucket::root_of(db)
        .bucket(KEY_BUCKET)?
        .ok_or_else(|| Error::NotFound("no `key` bucket: not an etcd backend file".into()))
}

/// Whether a walk's bucket is the `key` bucket (a bucket of the root named `key`).
pub(crate) fn is_key_bucket(b: &BucketInfo<'_>) -> bool {
    b.parent == Some(0) && b.path == [KEY_BUCKET]
}

/// `main` of the last entry of the `key` bucket, by descending the rightmost branch
/// (falls back to a scan for inline buckets or an empty rightmost leaf).
pub fn last_key_revision(db: &Db) -> Result<Option<i64>> {
    let bucket = key_bucket(db)?;
    let last = if bucket.is_inline() {
        None
    } else {
        let mut node = db.node(bucket.root_page())?;
        let mut found = None;
        for _ in 0..=MAX_TREE_DEPTH {
            if node.count() == 0 {
                break;
            }
            if node.is_leaf() {
                found = Some(node.leaf(node.count() - 1)?.key);
                break;
            }
            node = db.node(node.branch(node.count() - 1)?.child)?;
        }
        found
    };
    let last = match last {
        Some(k) => Some(k),
        None => {
            let mut last = None;
            for e in bucket.iter() {
                last = Some(e?.key);
            }
            last
        }
    };
    last.map(|k| rev_main(db, "key bucket entry", k))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(finished: Option<i64>, scheduled: Option<i64>) -> EtcdMeta {
        EtcdMeta {
            finished_compact_rev: finished,
            scheduled_compact_rev: scheduled,
            ..EtcdMeta::default()
        }
    }

    #[test]
    fn derive_revisions() {
        let old = Rules::ETCD_3_4_23;
        let new = Rules::for_version("3.6.0").unwrap();
        // never compacted, empty bucket
        let r = Revisions::derive(None, &EtcdMeta::default(), &old);
        assert_eq!((r.current, r.compacted), (1, -1));
        // compacted at 166, last key 218
        let r = Revisions::derive(Some(218), &meta(Some(166), Some(166)), &old);
        assert_eq!((r.current, r.compacted), (218, 166));
        assert_eq!(r.resumed_compaction, None);
        // every key up to the compaction deleted: current = compacted
        let r = Revisions::derive(Some(6), &meta(Some(8), Some(8)), &old);
        assert_eq!((r.current, r.compacted), (8, 8));
        // interrupted compaction above the last key: 3.4.23 cannot resume it; 3.6 can
        let r = Revisions::derive(Some(6), &meta(Some(4), Some(8)), &old);
        assert_eq!((r.current, r.compacted), (6, 4));
        assert_eq!(r.unresumable_compaction, Some(8));
        let r = Revisions::derive(Some(6), &meta(Some(4), Some(8)), &new);
        assert_eq!((r.current, r.compacted), (8, 8));
        assert_eq!(r.resumed_compaction, Some(8));
        // interrupted compaction below the last key: both resume it
        let r = Revisions::derive(Some(20), &meta(None, Some(8)), &old);
        assert_eq!(
            (r.current, r.compacted, r.resumed_compaction),
            (20, 8, Some(8))
        );
    }
}
