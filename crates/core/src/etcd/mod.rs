//! etcd's MVCC schema inside bbolt: revision keys, `mvccpb.KeyValue` values (borrowed).

mod alarm;
mod compaction;
mod get;
mod hashkv;
mod hashkv_one_pass;
mod keyindex;
mod keymap;
mod keytable;
mod kv;
mod meta;
mod probing;
mod revision;
mod rules;
mod snapshot;
mod span_crc;
mod status_walk;
pub use status_walk::status_in_walk;

#[cfg(test)]
pub(crate) use alarm::decode_alarm;
pub use alarm::{ALARM_BUCKET, Alarm, alarm_entries};
pub use compaction::{CompactionPlan, TombstoneAtRev, compacts_at};
pub use get::{GetError, GetResponse, KeyRange, get};
pub use hashkv::{HashKv, HashKvError, hash_kv};
pub use keyindex::KeyIndex;
pub(crate) use keyindex::{decode_entry, decode_entry_through_value};
pub(crate) use keymap::{Chunked, KeyId, KeyIds, KeyMap, Pipeline, key_id, pipelined};
pub(crate) use keytable::too_many_keys;
pub use kv::KeyValue;
pub(crate) use kv::varint;
pub use meta::{EtcdMeta, Revisions};
pub(crate) use meta::{is_key_bucket, key_bucket, last_key_revision};
pub use revision::RevisionKey;
pub use rules::Rules;
pub(crate) use snapshot::sha256_of_prefix;
pub use snapshot::{
    EtcdctlStatus, SnapshotStatus, TRAILER_LEN, Trailer, TrailerState, status, trailer,
};

/// Bucket names of etcd's schema (etcd@v3.4 `mvcc/kvstore.go`, 3.6 `schema/bucket.go`).
pub const KEY_BUCKET: &[u8] = b"key";
pub const META_BUCKET: &[u8] = b"meta";

/// Entries of the top-level bucket `name` (`None` when there is no such bucket): the
/// `members`, `members_removed` and `lease` counts.
pub fn bucket_len(db: &crate::Db, name: &[u8]) -> crate::Result<Option<u64>> {
    let Some(b) = crate::Bucket::root_of(db).bucket(name)? else {
        return Ok(None);
    };
    let mut n = 0;
    for e in b.iter() {
        e?;
        n += 1;
    }
    Ok(Some(n))
}

/// True when the file looks like an etcd backend: it has the `key` and `meta` buckets.
pub fn is_etcd(db: &crate::Db) -> bool {
    let root = crate::Bucket::root_of(db);
    matches!(root.bucket(KEY_BUCKET), Ok(Some(_)))
        && matches!(root.bucket(META_BUCKET), Ok(Some(_)))
}
