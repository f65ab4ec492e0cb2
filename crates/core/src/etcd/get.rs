//! A point-in-time read, as `etcdctl get` answers it from a live etcd (etcd@v3.4
//! `mvcc/kvstore_txn.go: rangeKeys`, `mvcc/index.go: Revisions`; docs/format.md B5).
//!
//! At revision `rev` a key holds the value of its newest revision at or below `rev`, unless
//! that revision is a tombstone. The `key` bucket is in revision order, so one pass over
//! its entries up to `rev` finds, per user key in the range, the newest one; entries above
//! `rev` end the pass. Memory grows with the keys in the range, whose bytes stay in the map.
//! After a compaction at C the entries at or below C that etcd keeps are the survivors, so
//! every `rev >= C` reads the same as a live etcd does. `rev < C` is refused with etcd's
//! "required revision has been compacted" (note: `<`, where HashKV under 3.4.23 refuses
//! `<=`), `rev` above the current revision with "is a future revision".

use crate::error::Error;
use crate::etcd::keyindex::decode_entry;
use crate::etcd::keymap::{self, KeyMap};
use crate::etcd::meta::{Revisions, key_bucket};
use crate::etcd::{KeyValue, Rules};
use crate::reader::Db;

/// Which keys: etcd's `key` / `range_end` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRange {
    /// One key.
    Key(Vec<u8>),
    /// `[start, end)`.
    Range(Vec<u8>, Vec<u8>),
    /// Every key `>= start` (etcdctl `--from-key`; `range_end` = `"\0"`).
    From(Vec<u8>),
}

impl KeyRange {
    /// etcdctl's `--prefix`: `[p, p with its last non-0xff byte + 1)`; an empty or all-0xff
    /// prefix is every key.
    pub fn prefix(p: &[u8]) -> KeyRange {
        let mut end = p.to_vec();
        while let Some(&last) = end.last() {
            if last < 0xff {
                *end.last_mut().expect("not empty") += 1;
                return KeyRange::Range(p.to_vec(), end);
            }
            end.pop();
        }
        KeyRange::From(p.to_vec())
    }

    /// etcd's pair as `etcdctl get KEY RANGE_END` sends it: an empty end is one key, `"\0"`
    /// is every key from KEY on.
    pub fn from_pair(key: &[u8], range_end: &[u8]) -> KeyRange {
        match range_end {
            [] => KeyRange::Key(key.to_vec()),
            [0] => KeyRange::From(key.to_vec()),
            end => KeyRange::Range(key.to_vec(), end.to_vec()),
        }
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        match self {
            KeyRange::Key(key) => k == key.as_slice(),
            KeyRange::Range(start, end) => k >= start.as_slice() && k < end.as_slice(),
            KeyRange::From(start) => k >= start.as_slice(),
        }
    }
}

/// What `etcdctl get` prints: the current revision, the key-values in key order (at most
/// `limit`), how many keys the range holds, and whether `limit` cut it.
#[derive(Debug, Clone)]
pub struct GetResponse<'a> {
    pub revision: i64,
    pub kvs: Vec<KeyValue<'a>>,
    pub count: u64,
    pub more: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error(
        "revision {rev} has been compacted: the compact revision is {compact_revision} (etcd: \
         \"mvcc: required revision has been compacted\")"
    )]
    Compacted { rev: i64, compact_revision: i64 },
    #[error(
        "revision {rev} is a future revision: the current revision is {current_revision} \
         (etcd: \"mvcc: required revision is a future revision\")"
    )]
    FutureRevision { rev: i64, current_revision: i64 },
    #[error(transparent)]
    Read(#[from] Error),
}

/// The keys of `range` at `rev` (0 or less: the current revision), at most `limit` of
/// them (0: all), as etcd's range answers.
pub fn get<'a>(
    db: &'a Db,
    range: &KeyRange,
    rev: i64,
    limit: usize,
) -> Result<GetResponse<'a>, GetError> {
    let (_, revs) = Revisions::read(db, &Rules::default())?;
    let rev = if rev <= 0 { revs.current } else { rev };
    if rev > revs.current {
        return Err(GetError::FutureRevision {
            rev,
            current_revision: revs.current,
        });
    }
    if rev < revs.compacted {
        return Err(GetError::Compacted {
            rev,
            compact_revision: revs.compacted,
        });
    }
    // Per key in the range: its newest entry at or below `rev` (None: a tombstone). Keyed
    // by a copy of the key: probes then compare against the copy, not against the page of
    // the key's first revision, which the walk has long let go (see keymap.rs).
    let mut newest: KeyMap<Option<KeyValue<'a>>> = KeyMap::default();
    for e in key_bucket(db)?.iter() {
        let e = e?;
        let (r, kv) = decode_entry(db, e.key, e.value, e.is_bucket())?;
        if r.main > rev {
            // Revision order: nothing after this is at or below `rev` (mains are positive;
            // a negative one, in a damaged file, would sort last and is not etcd's).
            break;
        }
        if range.contains(kv.key) {
            keymap::set(&mut newest, kv.key, (!r.tombstone).then_some(kv));
        }
    }
    let mut live: Vec<(Box<[u8]>, KeyValue<'a>)> = newest
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    live.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let live: Vec<KeyValue<'a>> = live.into_iter().map(|(_, kv)| kv).collect();
    let count = live.len() as u64;
    let more = limit > 0 && live.len() > limit;
    let kvs = if limit > 0 {
        live.into_iter().take(limit).collect()
    } else {
        live
    };
    Ok(GetResponse {
        revision: revs.current,
        kvs,
        count,
        more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            KeyRange::prefix(b"/registry/"),
            KeyRange::Range(b"/registry/".to_vec(), b"/registry0".to_vec())
        );
        assert_eq!(
            KeyRange::prefix(b"a\xff\xff"),
            KeyRange::Range(b"a\xff\xff".to_vec(), b"b".to_vec())
        );
        assert_eq!(KeyRange::prefix(b""), KeyRange::From(vec![]));
        assert_eq!(KeyRange::prefix(b"\xff"), KeyRange::From(b"\xff".to_vec()));
        assert_eq!(KeyRange::from_pair(b"a", b""), KeyRange::Key(b"a".to_vec()));
        assert_eq!(
            KeyRange::from_pair(b"a", b"\0"),
            KeyRange::From(b"a".to_vec())
        );
        let r = KeyRange::from_pair(b"b", b"d");
        assert!(r.contains(b"b") && r.contains(b"c\xff") && !r.contains(b"d") && !r.contains(b"a"));
    }
}
