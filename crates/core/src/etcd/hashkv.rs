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

use crate::etcd::hashkv_one_pass::one_pass;
use crate::etcd::keyindex::{KeyIndex, Rev, decode_entry_key_only, parse_revision_key};
use crate::etcd::meta::{Revisions, key_bucket};
use crate::etcd::{KEY_BUCKET, RevisionKey, Rules};
use crate::reader::Db;

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
    !rules.hash_skips_tombstone(r, compact)
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

    #[test]
    fn crc32c_is_castagnoli_and_appends_like_go() {
        // Go: crc32.Checksum([]byte("123456789"), crc32.MakeTable(crc32.Castagnoli))
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let h = crc32c::crc32c_append(crc32c::crc32c_append(0, b"1234"), b"56789");
        assert_eq!(h, 0xe306_9283);
    }
}
