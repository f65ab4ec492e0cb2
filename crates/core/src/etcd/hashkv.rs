//! etcd's HashKV (`store.HashByRev`, etcd@v3.4.23 `mvcc/kvstore.go`; 3.5 `mvcc/hash.go`,
//! 3.6 `storage/mvcc/hash.go`; docs/format.md B7), computed offline from the file.
//!
//! 1. `compact_revision` and the current revision are what etcd derives at start
//!    ([`Revisions`]). `rev == 0` means the current revision.
//! 2. Errors: `rev <= compact_revision` is "compacted" under etcd 3.4.23's rule (the
//!    default; `rev < compact_revision` from 3.4.27 / 3.5.10, see
//!    [`Rules::compacted_includes_compact_rev`]); `rev > current` is "future revision".
//! 3. `keep = keep(rev)` from the [`KeyIndex`] (computed at `rev`, not at the compact
//!    revision).
//! 4. CRC-32C (Castagnoli) of `"key"`, then of each entry's key bytes (17 or 18, the
//!    tombstone mark included) and value bytes, in bucket order, skipping entries with
//!    `main > rev`, entries with `main <= compact_revision` that are not in a non-empty
//!    `keep`, and (etcd >= 3.4.34 / >= 3.5.16 / 3.6 only) tombstones with
//!    `main == compact_revision`.

use crate::error::Error;
use std::collections::HashSet;

use crate::etcd::keyindex::{KeyIndex, Rev, decode_entry_key_only, parse_revision_key};
use crate::etcd::keymap::pipelined;
use crate::etcd::keytable::{KeyTable, key_hash};
use crate::etcd::meta::{Revisions, key_bucket};
use crate::etcd::{KEY_BUCKET, RevisionKey, Rules};
use crate::reader::{Bucket, Db, Entry, ResidentBudget};

/// The answer of `etcdctl endpoint hashkv --rev R`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HashKv {
    /// CRC-32C, as etcd's `HashKVResponse.hash`.
    pub hash: u32,
    /// etcd's `compact_revision` (-1 when never compacted).
    pub compact_revision: i64,
    /// The current revision (etcd's `header.revision`).
    pub revision: i64,
    /// The revision that was hashed (`--rev`, or the current revision).
    pub hash_revision: i64,
    /// The etcd release whose rules were applied.
    pub rules: Rules,
}

#[derive(Debug, thiserror::Error)]
pub enum HashKvError {
    #[error(
        "revision {rev} has been compacted: the compact revision is {compact_revision} \
         ({rules} answers \"mvcc: required revision has been compacted\" for rev {op} \
         {compact_revision})"
    )]
    Compacted {
        rev: i64,
        compact_revision: i64,
        rules: Rules,
        op: &'static str,
    },
    #[error(
        "revision {rev} is a future revision: the current revision is {current_revision} \
         (etcd: \"mvcc: required revision is a future revision\")"
    )]
    FutureRevision { rev: i64, current_revision: i64 },
    #[error("revision {rev} is negative")]
    Negative { rev: i64 },
    #[error(transparent)]
    Read(#[from] Error),
}

/// HashKV at `rev` (0 = current) under `rules`.
pub fn hash_kv(db: &Db, rev: i64, rules: &Rules) -> Result<HashKv, HashKvError> {
    let (_, revs) = Revisions::read(db, rules)?;
    hash_kv_with(db, &revs, rev, rules)
}

/// HashKV with the revisions already read.
pub fn hash_kv_with(
    db: &Db,
    revs: &Revisions,
    rev: i64,
    rules: &Rules,
) -> Result<HashKv, HashKvError> {
    let (compact, current) = (revs.compacted, revs.current);
    if rev < 0 {
        return Err(HashKvError::Negative { rev });
    }
    let compacted = if rules.compacted_includes_compact_rev {
        rev <= compact
    } else {
        rev < compact
    };
    if rev > 0 && compacted {
        return Err(HashKvError::Compacted {
            rev,
            compact_revision: compact,
            rules: *rules,
            op: if rules.compacted_includes_compact_rev {
                "<="
            } else {
                "<"
            },
        });
    }
    if rev > current {
        return Err(HashKvError::FutureRevision {
            rev,
            current_revision: current,
        });
    }
    let rev = if rev == 0 { current } else { rev };
    let hash = match one_pass(db, rev, compact, rules)? {
        Some(h) => h,
        None => two_passes(db, rev, compact, rules)?,
    };
    Ok(HashKv {
        hash,
        compact_revision: compact,
        revision: current,
        hash_revision: rev,
        rules: *rules,
    })
}

/// HashKV in one pass over the `key` bucket, on both cores.
///
/// `keep(rev)` decides only the entries at or below the compact revision (the "low"
/// entries, at the start of the bucket), and which of them it keeps depends only on the
/// keys that have one. The low entries go through the key index (after a finished
/// compaction they are one survivor per key); a low key's kept revision `L` stays kept
/// exactly when the key has no entry in `(compact, rev]` (a put there becomes the newest
/// revision <= rev; a tombstone there closes L's generation, which doCompact then skips or,
/// at rev itself, keeps without L). So the entries above the compact revision only need
/// to mark the low keys they touch, in any order: two threads each take half of them by
/// revision, hash their half into a CRC of its own and mark keys; the CRC of `"key"` and
/// the kept low entries is then joined to the halves' with `crc32c_combine`. Entries
/// above `rev` never change `keep(rev)`.
///
/// `None` when the shortcut does not apply and [`two_passes`] must answer: a low entry
/// after a higher one (negative revisions, in a damaged file), or no low key keeps its
/// revision (whether `keep` is empty then depends on the other keys too).
fn one_pass(db: &Db, rev: i64, compact: i64, rules: &Rules) -> Result<Option<u32>, Error> {
    let bucket = key_bucket(db)?;
    let mut ix = KeyIndex::new(rev, rules);
    let mut low = 0usize;
    // The low entries, kept to hash them after the halves without a second walk, unless
    // they would take more than a 64th of the file (a compaction scheduled but never
    // finished leaves every revision below it).
    let mut kept_low: Option<Vec<LowEntry<'_>>> = Some(Vec::new());
    let cap = (db.file_size() / 64) as usize / std::mem::size_of::<LowEntry<'_>>();
    for e in bucket.iter() {
        let e = e?;
        let (r, kv) = decode_entry_key_only(db, e.key, e.value, e.is_bucket())?;
        if r.main > compact {
            break;
        }
        low += 1;
        ix.add(r, kv.key);
        if let Some(v) = kept_low.as_mut() {
            if v.len() < cap {
                v.push(LowEntry {
                    r,
                    key: e.key,
                    value: e.value,
                    user_key: kv.key,
                });
            } else {
                kept_low = None;
            }
        }
    }
    // The low keys whose revision keep(rev) may keep, numbered for the halves' marks.
    let mut slots: KeyTable<()> = KeyTable::default();
    for (key, _) in ix.iter().filter(|(_, st)| st.kept().is_some()) {
        if !slots.set(key_hash(key), key, ()) {
            return Err(super::too_many_keys("HashKV"));
        }
    }
    if low > 0 && slots.is_empty() {
        return Ok(None);
    }
    let first = compact.saturating_add(1).max(0);
    let split = first
        .saturating_add(rev.saturating_sub(first) / 2)
        .max(first);
    let (earlier, later) = std::thread::scope(|s| {
        let later = s.spawn(|| upper_half(db, &bucket, split, i64::MAX, rev, compact, &slots));
        let earlier = upper_half(db, &bucket, first, split, rev, compact, &slots);
        (
            earlier,
            later
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
        )
    });
    let (earlier, later) = (earlier?, later?);
    if earlier.low_after_higher || later.low_after_higher {
        return Ok(None);
    }
    let touched = |slot: usize| earlier.touched[slot] || later.touched[slot];
    let untouched_kept = |key: &[u8]| {
        slots
            .index_of(key_hash(key), key)
            .is_some_and(|slot| !touched(slot))
    };
    if low > 0 && !(0..slots.len()).any(|slot| !touched(slot)) {
        return Ok(None);
    }
    let mut h = crc32c::crc32c_append(0, KEY_BUCKET);
    // The kept entries point into pages the first walk let go: hashing them maps those
    // pages again, so this pass releases the map as the walks do.
    let mut resident = ResidentBudget::new(db);
    let mut hash_low = |l: LowEntry<'_>| {
        resident.reread(db, (l.key.len() + l.value.len()) as u64);
        let kept = ix.get(l.user_key).and_then(|st| st.kept()) == Some((l.r.main, l.r.sub));
        if kept && untouched_kept(l.user_key) && !skips_tombstone_at_compact(&l.r, compact, rules) {
            h = crc32c::crc32c_append(h, l.key);
            h = crc32c::crc32c_append(h, l.value);
        }
    };
    match kept_low {
        Some(v) => v.into_iter().for_each(&mut hash_low),
        None => {
            for e in bucket.iter().take(low) {
                let e = e?;
                let (r, kv) = decode_entry_key_only(db, e.key, e.value, e.is_bucket())?;
                hash_low(LowEntry {
                    r,
                    key: e.key,
                    value: e.value,
                    user_key: kv.key,
                });
            }
        }
    }
    h = crc32c::crc32c_combine(h, earlier.crc, earlier.len);
    Ok(Some(crc32c::crc32c_combine(h, later.crc, later.len)))
}

/// An entry at or below the compact revision: its revision, bucket key and value, and the
/// user key in the value.
struct LowEntry<'a> {
    r: RevisionKey,
    key: &'a [u8],
    value: &'a [u8],
    user_key: &'a [u8],
}

/// One half of the entries above the compact revision: those with main in `[from, to)`.
struct UpperHalf {
    /// CRC-32C of the hashed entries' keys and values, from 0.
    crc: u32,
    /// Bytes in `crc`.
    len: usize,
    /// Which low keys (by slot) have an entry here at or below `rev`.
    touched: Vec<bool>,
    /// An entry at or below the compact revision came up here.
    low_after_higher: bool,
}

fn upper_half(
    db: &Db,
    bucket: &Bucket<'_>,
    from: i64,
    to: i64,
    rev: i64,
    compact: i64,
    slots: &KeyTable<()>,
) -> Result<UpperHalf, Error> {
    let mut half = UpperHalf {
        crc: 0,
        len: 0,
        touched: vec![false; slots.len()],
        low_after_higher: false,
    };
    let mut crc = SpanCrc::over(db.bytes());
    let start = RevisionKey {
        main: from,
        sub: 0,
        tombstone: false,
    }
    .to_bytes();
    let entries = bucket
        .iter_from(&start)?
        .map(|e| {
            let e = e?;
            let (r, kv) = decode_entry_key_only(db, e.key, e.value, e.is_bucket())?;
            Ok((e, r, kv.key, key_hash(kv.key)))
        })
        // Negative mains sort after every other: the later half (to = MAX) sees them.
        .take_while(|s| !matches!(s, Ok((_, r, _, _)) if r.main >= to));
    type Step<'s> = (Entry<'s>, RevisionKey, &'s [u8], u64);
    let ahead_slot = |_: &UpperHalf, s: &Step<'_>| slots.prefetch_slot(s.3);
    let ahead_key = |_: &UpperHalf, s: &Step<'_>| slots.prefetch_key(s.3);
    pipelined(
        entries,
        &mut half,
        ahead_slot,
        ahead_key,
        |_, _| {},
        |half, (e, r, key, hash)| {
            if r.main <= compact {
                half.low_after_higher = true;
            } else if r.main <= rev {
                if let Some(slot) = slots.index_of(hash, key) {
                    half.touched[slot] = true;
                }
                crc.append(e.key);
                crc.append(e.value);
            }
            Ok(())
        },
    )?;
    (half.crc, half.len) = crc.finish();
    Ok(half)
}

/// CRC-32C of a run of slices of one database, hashing adjacent ones in one call: bbolt
/// writes each leaf element's key and value back to back, element after element, so the
/// entries of a leaf are one span, which the CRC's 3-way parallel path hashes several
/// times faster than 17-byte keys and short values one call each.
pub(super) struct SpanCrc<'a> {
    bytes: &'a [u8],
    crc: u32,
    len: usize,
    /// The pending span, as offsets into `bytes`.
    start: usize,
    end: usize,
}

impl<'a> SpanCrc<'a> {
    /// Over the bytes every appended slice is expected to borrow from (a database's).
    pub(super) fn over(bytes: &'a [u8]) -> SpanCrc<'a> {
        SpanCrc {
            bytes,
            crc: 0,
            len: 0,
            start: 0,
            end: 0,
        }
    }

    pub(super) fn append(&mut self, s: &[u8]) {
        let at = (s.as_ptr() as usize).wrapping_sub(self.bytes.as_ptr() as usize);
        if at == self.end
            && at
                .checked_add(s.len())
                .is_some_and(|e| e <= self.bytes.len())
        {
            self.end += s.len();
            return;
        }
        self.flush();
        if at
            .checked_add(s.len())
            .is_some_and(|e| e <= self.bytes.len())
        {
            (self.start, self.end) = (at, at + s.len());
        } else {
            self.crc = crc32c::crc32c_append(self.crc, s);
            self.len += s.len();
        }
    }

    fn flush(&mut self) {
        let span = &self.bytes[self.start..self.end];
        self.crc = crc32c::crc32c_append(self.crc, span);
        self.len += span.len();
        self.start = self.end;
    }

    /// The CRC of everything appended, and its length.
    pub(super) fn finish(mut self) -> (u32, usize) {
        self.flush();
        (self.crc, self.len)
    }
}

/// HashKV as etcd computes it: the whole key index, `keep(rev)`, then the hash pass.
fn two_passes(db: &Db, rev: i64, compact: i64, rules: &Rules) -> Result<u32, Error> {
    let keep = KeyIndex::build(db, rev, rules)?.keep();
    let mut h = crc32c::crc32c_append(0, KEY_BUCKET);
    for e in key_bucket(db)?.iter() {
        let e = e?;
        let r = if e.is_bucket() {
            decode_entry_key_only(db, e.key, e.value, true)?.0
        } else {
            parse_revision_key(db, e.key)?
        };
        if !hashed(&r, rev, compact, &keep, rules) {
            continue;
        }
        h = crc32c::crc32c_append(h, e.key);
        h = crc32c::crc32c_append(h, e.value);
    }
    Ok(h)
}

/// 3.4.34+ / 3.5.16+ / 3.6: old and new compactions disagree on a tombstone at the
/// compact revision, so it never counts.
fn skips_tombstone_at_compact(r: &RevisionKey, compact: i64, rules: &Rules) -> bool {
    rules.hash_skips_tombstone_at_compact_rev && r.tombstone && r.main == compact
}

/// Whether HashKV at `rev` hashes the `key` bucket entry `r` (`kvHasher.WriteKeyValue`).
pub fn hashed(r: &RevisionKey, rev: i64, compact: i64, keep: &HashSet<Rev>, rules: &Rules) -> bool {
    if r.main > rev {
        return false;
    }
    // Revisions a compaction at `compact` deleted or will delete; no filter when `keep`
    // is empty.
    if r.main <= compact && !keep.is_empty() && !keep.contains(&(r.main, r.sub)) {
        return false;
    }
    !skips_tombstone_at_compact(r, compact, rules)
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

    #[test]
    fn entry_filter() {
        let old = Rules::ETCD_3_4_23;
        let new = Rules::for_version("3.6.0").unwrap();
        let keep: HashSet<Rev> = [(4, 0), (6, 0)].into_iter().collect();
        let none = HashSet::new();
        // above rev: never
        assert!(!hashed(&rk(8, 0, false), 7, 4, &keep, &old));
        // above the compact revision: always
        assert!(hashed(&rk(5, 0, true), 7, 4, &keep, &old));
        // at or below it: only what keep holds, unless keep is empty
        assert!(hashed(&rk(4, 0, false), 7, 4, &keep, &old));
        assert!(!hashed(&rk(3, 0, false), 7, 4, &keep, &old));
        assert!(!hashed(&rk(4, 1, false), 7, 4, &keep, &old));
        assert!(hashed(&rk(3, 0, false), 7, 4, &none, &old));
        // a tombstone at the compact revision (left by a new compaction): 3.6 skips it
        assert!(hashed(&rk(4, 0, true), 7, 4, &none, &old));
        assert!(!hashed(&rk(4, 0, true), 7, 4, &none, &new));
        assert!(hashed(&rk(4, 0, false), 7, 4, &none, &new));
    }

    /// The one-pass shortcut answers what etcd's two passes answer, at every revision of a
    /// real etcd 3.4 member with history (compacted at 166, current 218) and of a db with
    /// no compaction, under each release's rules.
    #[test]
    fn one_pass_equals_two_passes() {
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata"));
        let opts = crate::OpenOptions { lock: false };
        let mut answered = 0;
        for file in ["etcd/db", "etcd/snapshot.db"] {
            let db = Db::open(dir.join(file), opts).unwrap();
            for version in ["3.4.23", "3.4.34", "3.4.36", "3.5.16", "3.6.0"] {
                let rules = Rules::for_version(version).unwrap();
                let (_, revs) = Revisions::read(&db, &rules).unwrap();
                for rev in revs.compacted.max(1)..=revs.current {
                    let slow = two_passes(&db, rev, revs.compacted, &rules).unwrap();
                    if let Some(fast) = one_pass(&db, rev, revs.compacted, &rules).unwrap() {
                        assert_eq!(fast, slow, "{file} at {rev} under {version}");
                        answered += 1;
                    }
                }
            }
        }
        assert!(
            answered > 100,
            "the shortcut answered only {answered} times"
        );
    }

    /// A span of adjacent slices hashes as the slices one by one.
    #[test]
    fn span_crc_joins_adjacent_slices() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(64 << 10).collect();
        let b = &bytes[..];
        let parts: [&[u8]; 5] = [
            &b[0..17],
            &b[17..900],
            &b[900..901],
            &b[5000..5017],
            b"outside",
        ];
        let mut span = SpanCrc::over(b);
        let mut plain = 0u32;
        for p in parts {
            span.append(p);
            plain = crc32c::crc32c_append(plain, p);
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        assert_eq!(span.finish(), (plain, len));
    }

    #[test]
    fn crc32c_is_castagnoli_and_appends_like_go() {
        // Go: crc32.Checksum([]byte("123456789"), crc32.MakeTable(crc32.Castagnoli))
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let h = crc32c::crc32c_append(crc32c::crc32c_append(0, b"1234"), b"56789");
        assert_eq!(h, 0xe306_9283);
    }
}
