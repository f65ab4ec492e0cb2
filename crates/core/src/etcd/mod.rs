//! etcd's MVCC schema inside bbolt: revision keys, `mvccpb.KeyValue` values (borrowed).

pub mod compaction;
pub mod hashkv;
pub mod keyindex;
pub mod keymap;
pub mod kv;
pub mod meta;
pub mod revision;
pub mod rules;
pub mod snapshot;

pub use kv::KeyValue;
pub use revision::RevisionKey;
pub use rules::Rules;

/// Bucket names of etcd's schema (etcd@v3.4 `mvcc/kvstore.go`, 3.6 `schema/bucket.go`).
pub const KEY_BUCKET: &[u8] = b"key";
pub const META_BUCKET: &[u8] = b"meta";

/// True when the file looks like an etcd backend: it has the `key` and `meta` buckets.
pub fn is_etcd(db: &crate::Db) -> bool {
    let root = crate::Bucket::root_of(db);
    matches!(root.bucket(KEY_BUCKET), Ok(Some(_)))
        && matches!(root.bucket(META_BUCKET), Ok(Some(_)))
}
