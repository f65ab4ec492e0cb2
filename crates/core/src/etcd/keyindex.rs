//! etcd's key index (`keyIndex` / `treeIndex`, etcd@v3.4.23 `mvcc/key_index.go`,
//! `index.go`; docs/format.md B5), rebuilt from the `key` bucket in one pass, and its
//! `keep(rev)`, which HashKV uses.
//!
//! **Memory grows with the number of distinct user keys, not with the file.** etcd keeps
//! every revision of every key; to answer `keep(at)` we only need, per key, the state of
//! the generation currently being read, so the index is built *for one revision* `at`,
//! fixed at build time. Keys are borrowed from the map (`&[u8]` into the `KeyValue`
//! values), so the index holds no copy of them either.
//!
//! What the one pass emulates, per user key, in revision order:
//! - **Restore** (`store.restore`, docs/format.md B6): a put opens or extends the open
//!   generation; a tombstone closes it and opens an empty one; a tombstone on an empty
//!   generation is ignored (`ErrRevisionNotFound`). A tombstone of a key not indexed yet is
//!   skipped in etcd 3.4.23 (and <= 3.4.35, <= 3.5.17); with
//!   [`Rules::restore_lone_tombstone`] (>= 3.4.36, >= 3.5.18, 3.6) it becomes a
//!   tombstone-only generation.
//! - **`doCompact(at)`**: starting at generation 0, every non-last generation whose
//!   tombstone main is `<= at` is skipped — etcd 3.4.23's rule, the default — or `< at`
//!   with [`Rules::keep_tombstone_at_rev`] (>= 3.4.34, >= 3.5.16, 3.6). In the first
//!   generation not skipped, the newest revision with main `<= at` is kept.
//! - **`keep(at)`** then drops that revision when it is the tombstone of a non-last
//!   generation (only possible under the newer rule, for a tombstone exactly at `at`).

use crate::error::DamageKind;
use std::collections::HashSet;

use crate::error::Result;
use crate::etcd::keymap::{self, KeyMap};
use crate::etcd::meta::key_bucket;
use crate::etcd::{KeyValue, RevisionKey, Rules};
use crate::reader::Db;

/// etcd's `revision`: (main, sub), without the tombstone mark.
pub type Rev = (i64, i64);

/// What the pass remembers about one user key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyState {
    /// The open (last) generation holds a put: the key is live at the end of the file.
    pub live: bool,
    /// Newest revision with main <= `at` in the open generation.
    cand: Option<Rev>,
    /// `doCompact(at)` stopped at an earlier (closed) generation: what `keep` kept there.
    chosen: Option<Option<Rev>>,
    /// Generations closed by a tombstone.
    pub deletions: u32,
    /// Revisions of this key in the index.
    pub revisions: u64,
}

impl KeyState {
    /// The revision `keep(at)` keeps for this key, if any.
    pub fn kept(&self) -> Option<Rev> {
        self.chosen.unwrap_or(self.cand)
    }
}

/// The key index of a `key` bucket, summarised for `keep(at)`.
#[derive(Debug, Clone)]
pub struct KeyIndex<'a> {
    at: i64,
    rules: Rules,
    keys: KeyMap<KeyState>,
    _borrows: std::marker::PhantomData<&'a [u8]>,
    /// Entries read from the `key` bucket (including tombstones the restore skipped).
    pub entries: u64,
}

impl<'a> KeyIndex<'a> {
    /// An empty index that will answer `keep(at)` under `rules`.
    pub fn new(at: i64, rules: &Rules) -> KeyIndex<'a> {
        KeyIndex {
            at,
            rules: *rules,
            keys: KeyMap::default(),
            _borrows: std::marker::PhantomData,
            entries: 0,
        }
    }

    /// One pass over the `key` bucket of `db`.
    pub fn build(db: &'a Db, at: i64, rules: &Rules) -> Result<KeyIndex<'a>> {
        let mut ix = KeyIndex::new(at, rules);
        for e in key_bucket(db)?.iter() {
            let e = e?;
            let (rev, kv) = decode_entry_key_only(db, e.key, e.value, e.is_bucket())?;
            ix.add(rev, kv.key);
        }
        Ok(ix)
    }

    /// Feed one `key` bucket entry; entries must come in revision (bucket) order.
    pub fn add(&mut self, rev: RevisionKey, key: &'a [u8]) {
        self.entries += 1;
        let r = (rev.main, rev.sub);
        let st = match self.keys.get_mut(key) {
            Some(st) => st,
            None if rev.tombstone && !self.rules.restore_lone_tombstone => return,
            None => keymap::entry(&mut self.keys, key),
        };
        if rev.tombstone && !st.live && st.revisions > 0 {
            // `ki.tombstone` on an empty generation: ErrRevisionNotFound, ignored.
            return;
        }
        st.revisions += 1;
        if rev.main <= self.at {
            st.cand = Some(r);
        }
        if !rev.tombstone {
            st.live = true;
            return;
        }
        // The tombstone closes a generation, which is now not the last one.
        if st.chosen.is_none() {
            let skipped = if self.rules.keep_tombstone_at_rev {
                rev.main < self.at
            } else {
                rev.main <= self.at
            };
            if !skipped {
                // doCompact stops here and keeps the newest revision <= at; keep() drops it
                // when it is this generation's tombstone.
                st.chosen = Some(st.cand.filter(|&c| c != r));
            }
        }
        st.cand = None;
        st.live = false;
        st.deletions += 1;
    }

    /// The revision `keep` is computed at.
    pub fn at(&self) -> i64 {
        self.at
    }

    /// etcd's `kvindex.Keep(at)`: the revisions a compaction at `at` would keep.
    pub fn keep(&self) -> HashSet<Rev> {
        self.keys.values().filter_map(KeyState::kept).collect()
    }

    /// Every key with its state, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &KeyState)> {
        self.keys.iter().map(|(k, v)| (&k[..], v))
    }

    /// One key's state.
    pub fn get(&self, key: &[u8]) -> Option<&KeyState> {
        self.keys.get(key)
    }

    /// Distinct user keys in the index.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// User keys whose newest entry is a put: live at the end of the file.
    pub fn live_keys(&self) -> usize {
        self.keys.values().filter(|s| s.live).count()
    }
}

/// Parse a `key` bucket entry: its revision key and `KeyValue`, as corruption errors that
/// name the page and offset.
pub fn decode_entry<'a>(
    db: &Db,
    key: &'a [u8],
    value: &'a [u8],
    is_bucket: bool,
) -> Result<(RevisionKey, KeyValue<'a>)> {
    decode_entry_with(db, key, value, is_bucket, KeyValue::decode)
}

/// [`decode_entry`] with [`KeyValue::decode_through_value`]: `lease` is not read.
pub fn decode_entry_through_value<'a>(
    db: &Db,
    key: &'a [u8],
    value: &'a [u8],
    is_bucket: bool,
) -> Result<(RevisionKey, KeyValue<'a>)> {
    decode_entry_with(db, key, value, is_bucket, KeyValue::decode_through_value)
}

/// [`decode_entry`] with [`KeyValue::decode_key_only`]: only the user key is read.
pub fn decode_entry_key_only<'a>(
    db: &Db,
    key: &'a [u8],
    value: &'a [u8],
    is_bucket: bool,
) -> Result<(RevisionKey, KeyValue<'a>)> {
    decode_entry_with(db, key, value, is_bucket, KeyValue::decode_key_only)
}

/// A `key` bucket key as a revision, or a corruption error naming its page and offset.
pub fn parse_revision_key(db: &Db, key: &[u8]) -> Result<RevisionKey> {
    RevisionKey::parse(key)
        .map_err(|what| db.damage_at(key, DamageKind::Etcd, format!("`key` bucket: {what}")))
}

fn decode_entry_with<'a>(
    db: &Db,
    key: &'a [u8],
    value: &'a [u8],
    is_bucket: bool,
    decode: fn(&'a [u8]) -> std::result::Result<KeyValue<'a>, crate::etcd::kv::KvError>,
) -> Result<(RevisionKey, KeyValue<'a>)> {
    let err = |s: &[u8], what: String| db.damage_at(s, DamageKind::Etcd, what);
    if is_bucket {
        return Err(err(key, "the `key` bucket holds a sub-bucket".into()));
    }
    let rev = parse_revision_key(db, key)?;
    let kv = decode(value).map_err(|e| {
        err(
            value,
            format!("`key` bucket entry {}_{}: {e}", rev.main, rev.sub),
        )
    })?;
    Ok((rev, kv))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rk(main: i64, sub: i64, tombstone: bool) -> RevisionKey {
        RevisionKey {
            main,
            sub,
            tombstone,
        }
    }

    /// (main, key, tombstone), sub 0.
    fn index<'a>(at: i64, rules: &Rules, ops: &[(i64, &'a str, bool)]) -> KeyIndex<'a> {
        let mut ix = KeyIndex::new(at, rules);
        for &(m, k, t) in ops {
            ix.add(rk(m, 0, t), k.as_bytes());
        }
        ix
    }

    fn keep(ix: &KeyIndex) -> Vec<Rev> {
        let mut v: Vec<_> = ix.keep().into_iter().collect();
        v.sort();
        v
    }

    const OLD: Rules = Rules::ETCD_3_4_23;

    #[test]
    fn reference_example() {
        // put foo@2, put foo@3, put baz@4, del foo@5, put foo@6, put lk@7 (docs/format.md B5, B7).
        let ops = [
            (2, "foo", false),
            (3, "foo", false),
            (4, "baz", false),
            (5, "foo", true),
            (6, "foo", false),
            (7, "lk", false),
        ];
        assert_eq!(keep(&index(7, &OLD, &ops)), vec![(4, 0), (6, 0), (7, 0)]);
        // compact 4 keeps foo@3 (foo is live at 4) and baz@4.
        assert_eq!(keep(&index(4, &OLD, &ops)), vec![(3, 0), (4, 0)]);
        // at 5 foo's generation ended at 5: skipped; the last one has nothing <= 5.
        assert_eq!(keep(&index(5, &OLD, &ops)), vec![(4, 0)]);
        let ix = index(7, &OLD, &ops);
        assert_eq!(ix.live_keys(), 3);
        assert_eq!(ix.get(b"foo").unwrap().deletions, 1);
    }

    #[test]
    fn key_index_doc_example() {
        // key_index.go: put(1) put(2) del(3) put(4) del(5): {1,2,3t} {4,5t} {}
        let ops = [
            (1, "k", false),
            (2, "k", false),
            (3, "k", true),
            (4, "k", false),
            (5, "k", true),
        ];
        assert_eq!(keep(&index(2, &OLD, &ops)), vec![(2, 0)]);
        assert_eq!(keep(&index(4, &OLD, &ops)), vec![(4, 0)]);
        assert_eq!(keep(&index(6, &OLD, &ops)), vec![]);
        assert_eq!(index(6, &OLD, &ops).live_keys(), 0);
    }

    #[test]
    fn tombstone_at_rev() {
        let new = Rules::for_version("3.6.0").unwrap();
        let ops = [(5, "d", false), (6, "d", true), (7, "x", false)];
        // Old rule: the generation ending at 6 is skipped. New rule: it is chosen, its
        // tombstone kept by doCompact, then dropped by keep. Same keep set either way.
        assert_eq!(keep(&index(6, &OLD, &ops)), vec![]);
        assert_eq!(keep(&index(6, &new, &ops)), vec![]);
        assert_eq!(keep(&index(5, &OLD, &ops)), vec![(5, 0)]);
        // A later generation: old rule skips to it (nothing <= 6 there), new rule stops at
        // the tombstone generation; both keep nothing for d.
        let ops = [(5, "d", false), (6, "d", true), (8, "d", false)];
        assert_eq!(keep(&index(6, &OLD, &ops)), vec![]);
        assert_eq!(keep(&index(6, &new, &ops)), vec![]);
        assert_eq!(keep(&index(9, &new, &ops)), vec![(8, 0)]);
    }

    #[test]
    fn memory_is_per_key_not_per_revision() {
        // 100 000 revisions of two keys, with deletes: two small states, nothing per
        // revision.
        let mut ix = KeyIndex::new(50_000, &OLD);
        for m in 2..100_002 {
            let (key, tomb) = if m % 10 == 0 {
                ("b", true)
            } else if m % 10 == 5 {
                ("b", false)
            } else {
                ("a", false)
            };
            ix.add(rk(m, 0, tomb), key.as_bytes());
        }
        assert_eq!((ix.len(), ix.entries), (2, 100_000));
        assert!(std::mem::size_of::<KeyState>() <= 64);
        assert_eq!(keep(&ix), vec![(49_999, 0)], "b was deleted at 50 000");
        assert_eq!(ix.get(b"b").unwrap().deletions, 10_000);
        assert_eq!(ix.live_keys(), 1);
    }

    #[test]
    fn lone_tombstone_restore() {
        let new = Rules::for_version("3.6.0").unwrap();
        // A file compacted by a new etcd may start a key with its tombstone at R.
        let ops = [(6, "d", true), (8, "d", false), (9, "e", true)];
        let ix = index(7, &OLD, &ops);
        assert_eq!(
            (ix.len(), ix.entries),
            (1, 3),
            "3.4.23 skips lone tombstones"
        );
        assert_eq!(keep(&ix), vec![]);
        let ix = index(7, &new, &ops);
        assert_eq!(ix.len(), 2);
        assert_eq!(keep(&ix), vec![]);
        assert_eq!(keep(&index(9, &new, &ops)), vec![(8, 0)]);
        // a tombstone on an already deleted key is ignored
        let ix = index(9, &OLD, &[(2, "k", false), (3, "k", true), (4, "k", true)]);
        assert_eq!(ix.get(b"k").unwrap().deletions, 1);
    }
}
