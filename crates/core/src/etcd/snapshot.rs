//! `snapshot status` for etcd snapshot files (docs/format.md B9, B7 "Other hashes"), and the
//! SHA-256 trailer that `etcdctl snapshot save` appends.
//!
//! etcd's `snapshot status` (3.4 `clientv3/snapshot/v3_snapshot.go: Status`; 3.6
//! `etcdutl/snapshot/v3_snapshot.go`) opens the file with bbolt, runs `tx.Check()`, then
//! hashes with CRC-32C, for every root bucket in order, the bucket name and every `k, v` of
//! that bucket (a sub-bucket entry contributes its key only, as Go's `ForEach` gives it a
//! nil value). `revision` is the main of the last `key` entry; `totalKey` counts every
//! `k, v` of every bucket in 3.4 and 3.5, and the user keys whose newest entry is not a
//! tombstone in 3.6; `totalSize` is `tx.Size()` = high-water mark × page size. It does
//! not look at the SHA-256 trailer: only `snapshot restore` does.

use crate::error::DamageKind;
use sha2::Digest;

use crate::error::Result;
use crate::etcd::keyindex::{decode_entry_key_only, parse_revision_key};
use crate::etcd::keymap::{KeyId, KeyIds, key_id, pipelined};
use crate::etcd::meta::last_key_revision;
use crate::etcd::span_crc::SpanCrc;
use crate::etcd::{KEY_BUCKET, RevisionKey};
use crate::format::text::hex;
use crate::reader::{Bucket, Cursor, Db, Entry, plain_key_in_root};

/// Length of the trailer: a SHA-256.
pub const TRAILER_LEN: usize = 32;
/// `hasChecksum`: a file whose size % 512 == 32 carries the trailer (etcd@v3.4
/// `clientv3/snapshot`, "512 is the minimum disk sector size").
pub const SECTOR: u64 = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrailerState {
    /// size % 512 != 32: no trailer (a plain member db). `snapshot restore` needs
    /// `--skip-hash-check` for it.
    Absent,
    /// The trailer equals the SHA-256 of everything before it.
    Valid,
    /// The trailer does not match: `snapshot restore` fails with "expected sha256 …".
    Invalid,
}

/// The SHA-256 trailer, as `snapshot restore` checks it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Trailer {
    pub state: TrailerState,
    /// The stored trailer (hex), when there is one.
    pub stored_sha256: Option<String>,
    /// SHA-256 of the bytes before the trailer (hex), when there is one.
    pub computed_sha256: Option<String>,
    /// Bytes the SHA-256 covers.
    pub covered_bytes: Option<u64>,
}

/// The SHA-256 of the first `len` bytes of `file`: the trailer a copy of `len` bytes gets.
pub fn sha256_of_prefix(file: &std::fs::File, len: u64) -> std::io::Result<[u8; TRAILER_LEN]> {
    use std::os::unix::fs::FileExt;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut at = 0u64;
    while at < len {
        let n = buf.len().min((len - at) as usize);
        file.read_exact_at(&mut buf[..n], at)?;
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok(h.finalize().into())
}

/// Detect and verify the trailer of the whole file `bytes`.
pub fn trailer(bytes: &[u8]) -> Trailer {
    let len = bytes.len() as u64;
    if len % SECTOR != TRAILER_LEN as u64 {
        return Trailer {
            state: TrailerState::Absent,
            stored_sha256: None,
            computed_sha256: None,
            covered_bytes: None,
        };
    }
    let (body, stored) = bytes.split_at(bytes.len() - TRAILER_LEN);
    let computed = sha2::Sha256::digest(body);
    Trailer {
        state: if computed.as_slice() == stored {
            TrailerState::Valid
        } else {
            TrailerState::Invalid
        },
        stored_sha256: Some(hex(stored)),
        computed_sha256: Some(hex(&computed)),
        covered_bytes: Some(body.len() as u64),
    }
}

/// `etcdctl snapshot status -w json`, field for field (3.4 / 3.5 meanings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EtcdctlStatus {
    pub hash: u32,
    pub revision: i64,
    #[serde(rename = "totalKey")]
    pub total_key: u64,
    #[serde(rename = "totalSize")]
    pub total_size: u64,
}

/// Everything `boltpack snapshot status` reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotStatus {
    /// CRC-32C over every bucket (name, then each k, v), as etcd's `snapshot status`.
    pub hash: u32,
    /// Main revision of the last `key` entry (0 when the bucket is empty or absent).
    pub revision: i64,
    /// etcd 3.4 / 3.5 `totalKey`: every k/v (and sub-bucket entry) in every bucket.
    pub total_key: u64,
    /// etcd 3.6 `totalKey`: user keys whose newest entry is a put (live keys).
    pub total_key_etcd36: u64,
    /// `tx.Size()`: high-water mark × page size.
    #[serde(rename = "total_size_bytes")]
    pub total_size: u64,
    /// The file's length (with trailer and any bytes past the high-water mark).
    #[serde(rename = "file_size_bytes")]
    pub file_size: u64,
    pub trailer: Trailer,
    /// Exactly the object `etcdctl snapshot status -w json` prints (3.4 / 3.5).
    pub etcdctl: EtcdctlStatus,
}

/// Compute the status of `db` (the trailer from its bytes).
pub fn status(db: &Db) -> Result<SnapshotStatus> {
    let root = Bucket::root_of(db);
    let mut h = 0u32;
    let (mut revision, mut total_key, mut live) = (0i64, 0u64, 0u64);
    for e in root.iter() {
        let e = e?;
        if !e.is_bucket() {
            return Err(db.damage_at(
                e.key,
                DamageKind::KeyOrder,
                format!(
                    "{}; etcd: \"cannot get hash of bucket\"",
                    plain_key_in_root(e.key)
                ),
            ));
        }
        let b = Bucket::open(db, e.value)?;
        h = crc32c::crc32c_append(h, e.key);
        if e.key == KEY_BUCKET {
            let p = key_bucket_pass(db, &b)?;
            h = crc32c::crc32c_combine(h, p.earlier.crc, p.earlier.len);
            h = crc32c::crc32c_combine(h, p.later.crc, p.later.len);
            total_key += p.earlier.entries + p.later.entries;
            revision = p
                .later
                .last_main
                .or(p.earlier.last_main)
                .unwrap_or(revision);
            live = p.live;
            continue;
        }
        for kv in b.iter() {
            let kv = kv?;
            h = crc32c::crc32c_append(h, kv.key);
            if !kv.is_bucket() {
                h = crc32c::crc32c_append(h, kv.value);
            }
            total_key += 1;
        }
    }
    Ok(SnapshotStatus::assemble(db, h, revision, total_key, live))
}

impl SnapshotStatus {
    pub(super) fn assemble(db: &Db, hash: u32, revision: i64, total_key: u64, live: u64) -> Self {
        let total_size = db.hwm().saturating_mul(u64::from(db.page_size()));
        SnapshotStatus {
            hash,
            revision,
            total_key,
            total_key_etcd36: live,
            total_size,
            file_size: db.file_size(),
            trailer: trailer(db.bytes()),
            etcdctl: EtcdctlStatus {
                hash,
                revision,
                total_key,
                total_size,
            },
        }
    }
}

/// User keys whose newest entry is a put, from the key bucket's two halves (by position).
pub(super) fn live_keys(earlier: &KeyIds<bool>, later: &KeyIds<bool>) -> u64 {
    let mut live = later.values().filter(|&&p| p).count() as u64;
    for (id, &put) in earlier.ids() {
        if put && !later.contains_id(id) {
            live += 1;
        }
    }
    live
}

/// The `key` bucket's part of the status, read in two halves (by position), one per core.
struct KeyPass {
    earlier: KeyHalf,
    later: KeyHalf,
    /// User keys whose newest entry is a put (the restored index's live keys).
    live: u64,
}

#[derive(Default)]
struct KeyHalf {
    /// CRC-32C, from 0, of each entry's key and value.
    crc: u32,
    len: usize,
    entries: u64,
    /// Main revision of the half's last entry.
    last_main: Option<i64>,
    /// Per user key: whether its newest entry in this half is a put.
    newest_is_put: KeyIds<bool>,
}

fn key_bucket_pass(db: &Db, bucket: &Bucket<'_>) -> Result<KeyPass> {
    // Split at the revision halfway between the first and the last entry's.
    let first = match bucket.iter().next() {
        Some(e) => Some(parse_revision_key(db, e?.key)?.main),
        None => None,
    };
    let last = last_key_revision(db)?;
    let split = match (first, last) {
        (Some(f), Some(l)) if l > f => Some(
            RevisionKey {
                main: f + (l - f) / 2,
                sub: 0,
                tombstone: false,
            }
            .to_bytes(),
        ),
        _ => None,
    };
    let (earlier, later) = match split {
        None => (key_half(db, bucket.iter(), None)?, KeyHalf::default()),
        Some(at) => {
            let (earlier, later) = std::thread::scope(|s| {
                let later = s.spawn(|| key_half(db, bucket.iter_from(&at)?, None));
                let earlier = key_half(db, bucket.iter(), Some(&at));
                (
                    earlier,
                    later
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                )
            });
            (earlier?, later?)
        }
    };
    let live = live_keys(&earlier.newest_is_put, &later.newest_is_put);
    Ok(KeyPass {
        earlier,
        later,
        live,
    })
}

/// The entries of `cursor` up to (not including) the key `until`.
fn key_half<'a>(db: &'a Db, cursor: Cursor<'a>, until: Option<&[u8]>) -> Result<KeyHalf> {
    let mut half = KeyHalf::default();
    let mut crc = SpanCrc::over(db.bytes());
    // Cut at `until` before decoding: an entry past it belongs to the other half.
    let entries = cursor
        .take_while(|e| !matches!((e, until), (Ok(e), Some(u)) if e.key >= u))
        .map(|e| {
            let e = e?;
            let (rev, kv) = decode_entry_key_only(db, e.key, e.value, e.is_bucket())?;
            Ok((e, rev, key_id(kv.key)))
        });
    type Step<'s> = (Entry<'s>, RevisionKey, KeyId);
    let ahead_slot = |h: &KeyHalf, s: &Step<'a>| h.newest_is_put.prefetch_slot(s.2);
    let ahead_value = |h: &KeyHalf, s: &Step<'a>| h.newest_is_put.prefetch_value(s.2);
    pipelined(
        entries,
        &mut half,
        ahead_slot,
        ahead_value,
        |_, _| {},
        |half, (e, rev, id)| {
            crc.append(e.key);
            if !e.is_bucket() {
                crc.append(e.value);
            }
            half.entries += 1;
            half.last_main = Some(rev.main);
            *half.newest_is_put.entry_with_id(id) = !rev.tombstone;
            Ok(())
        },
    )?;
    (half.crc, half.len) = crc.finish();
    Ok(half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_states() {
        let body = vec![7u8; 1024];
        assert_eq!(trailer(&body).state, TrailerState::Absent);
        let mut f = body.clone();
        f.extend_from_slice(&sha2::Sha256::digest(&body));
        let t = trailer(&f);
        assert_eq!(t.state, TrailerState::Valid);
        assert_eq!(t.covered_bytes, Some(1024));
        assert_eq!(t.stored_sha256, t.computed_sha256);
        let n = f.len();
        f[n - 1] ^= 1;
        assert_eq!(trailer(&f).state, TrailerState::Invalid);
        f[n - 1] ^= 1;
        f[0] ^= 1;
        assert_eq!(trailer(&f).state, TrailerState::Invalid);
    }
}
