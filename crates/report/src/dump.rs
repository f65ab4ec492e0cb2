//! `boltpack dump`: every entry as a JSON line, depth-first in key order.

use std::io::Write;

use serde_json::{Value, json};

use boltpack::error::{Error, Result};
use boltpack::etcd::{KeyValue, RevisionKey};
use boltpack::reader::{Bucket, Db, visit_all};

use crate::{hex, printable};

/// Bytes as a JSON string when printable UTF-8, else `{"hex": "..."}`: never ambiguous.
pub fn bytes_json(b: &[u8]) -> Value {
    match printable(b) {
        Some(s) => Value::String(s.to_string()),
        None => json!({ "hex": hex(b) }),
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct DumpOptions {
    /// Decode the `key` bucket as etcd revisions and mvccpb.KeyValue.
    pub etcd: bool,
    /// Print value length and SHA-256 instead of the value.
    pub hash_values: bool,
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(b))
}

/// Dump the bucket at `start` (empty: everything) to `out`.
pub fn dump(db: &Db, start: &[Vec<u8>], opts: DumpOptions, out: &mut impl Write) -> Result<()> {
    let root = Bucket::root_of(db);
    let bucket = root.bucket_path(start)?.ok_or_else(|| {
        Error::NotFound(format!(
            "no bucket {}",
            start
                .iter()
                .map(|p| crate::text_or_hex(p))
                .collect::<Vec<_>>()
                .join("/")
        ))
    })?;
    let mut path: Vec<&[u8]> = start.iter().map(|p| p.as_slice()).collect();
    let io = Error::Write;
    visit_all(bucket, &mut path, &mut |path, e, sub| {
        let p: Vec<Value> = path.iter().map(|n| bytes_json(n)).collect();
        let line = if let Some(sub) = sub {
            let mut full = p.clone();
            full.push(bytes_json(e.key));
            json!({ "bucket": full, "type": "bucket", "sequence": sub.sequence(), "inline": sub.is_inline() })
        } else {
            let mut v = json!({ "bucket": p, "key": bytes_json(e.key) });
            if opts.hash_values {
                v["len"] = json!(e.value.len());
                v["sha256"] = json!(sha256_hex(e.value));
            } else {
                v["value"] = bytes_json(e.value);
            }
            if opts.etcd && path.len() == 1 && path[0] == boltpack::etcd::KEY_BUCKET {
                etcd_fields(&mut v, e.key, e.value);
            }
            v
        };
        serde_json::to_writer(&mut *out, &line).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)
    })
}

fn etcd_fields(v: &mut Value, key: &[u8], value: &[u8]) {
    match RevisionKey::parse(key) {
        Ok(r) => v["revision"] = json!(r),
        Err(e) => v["revision_error"] = json!(e.to_string()),
    }
    match KeyValue::decode(value) {
        Ok(kv) => {
            v["kv"] = json!({
                "key": bytes_json(kv.key),
                "create_revision": kv.create_revision,
                "mod_revision": kv.mod_revision,
                "version": kv.version,
                "value": if kv.value.len() > 4096 { json!({"len": kv.value.len(), "sha256": sha256_hex(kv.value)}) } else { bytes_json(kv.value) },
                "lease": kv.lease,
            })
        }
        Err(e) => v["kv_error"] = json!(e.to_string()),
    }
}
