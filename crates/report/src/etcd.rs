//! `boltpack hashkv` and `boltpack snapshot status`: rendering for people, and the JSON
//! shapes (field names are stable).

use std::fmt::Write;

use serde::Serialize;

use boltpack::check::check_with_map;
use boltpack::error::Result;
use boltpack::etcd::HashKv;
use boltpack::etcd::{SnapshotStatus, TrailerState, status, status_in_walk};
use boltpack::reader::Db;

/// Human output of `hashkv`.
pub fn render_hashkv(h: &HashKv) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "hash              {} (0x{:08x})", h.hash, h.hash);
    let _ = writeln!(s, "hashed revision   {}", h.hash_revision);
    let _ = writeln!(s, "compact revision  {}", h.compact_revision);
    let _ = writeln!(s, "current revision  {}", h.revision);
    let _ = writeln!(s, "rules             {}", h.rules);
    s
}

/// `snapshot status`: the etcd status, the trailer, and our structural check (etcd's
/// `snapshot status` refuses a file that fails `tx.Check()`).
#[derive(Debug, Serialize)]
pub struct SnapshotReport {
    #[serde(flatten)]
    pub status: SnapshotStatus,
    /// Problems `boltpack check` finds (0 for a sound file).
    pub check_problems: usize,
}

impl SnapshotReport {
    pub fn gather(db: &Db) -> Result<SnapshotReport> {
        Self::gather_split(db, false)
    }

    /// [`SnapshotReport::gather`]; `always`: the walk split on two threads whatever the
    /// file's size (tests and fuzzing: the report must not depend on it). The status comes
    /// from the check's walk on a sound file, from its own pass on any other.
    pub fn gather_split(db: &Db, always: bool) -> Result<SnapshotReport> {
        let (map, in_walk) = status_in_walk(db, always);
        let check_problems = check_with_map(db, &map).len();
        let status = match in_walk {
            Some(s) if check_problems == 0 => s,
            _ => status(db)?,
        };
        Ok(SnapshotReport {
            status,
            check_problems,
        })
    }

    /// Why the command should exit 1, if it should: a trailer that does not match, or a
    /// file that fails the check.
    pub fn failure(&self) -> Option<String> {
        let mut why = Vec::new();
        if self.status.trailer.state == TrailerState::Invalid {
            why.push(format!(
                "the SHA-256 trailer does not match the file: `etcdctl snapshot restore` \
                 would fail (expected sha256 {}, got {})",
                self.status.trailer.stored_sha256.as_deref().unwrap_or("?"),
                self.status
                    .trailer
                    .computed_sha256
                    .as_deref()
                    .unwrap_or("?"),
            ));
        }
        if self.check_problems > 0 {
            why.push(format!(
                "{} structural problems (etcd's `snapshot status` fails its integrity check \
                 on such a file); run `boltpack check` for the list",
                self.check_problems
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }

    pub fn render(&self) -> String {
        let st = &self.status;
        let t = &st.trailer;
        let mut s = String::new();
        let _ = writeln!(s, "hash              {} (0x{:08x})", st.hash, st.hash);
        let _ = writeln!(s, "revision          {}", st.revision);
        let _ = writeln!(
            s,
            "total keys        {} (etcd 3.4/3.5 totalKey: every key/value of every bucket)",
            st.total_key
        );
        let _ = writeln!(
            s,
            "live keys         {} (etcd 3.6 totalKey: user keys whose newest revision is a put)",
            st.total_key_etcd36
        );
        let _ = writeln!(
            s,
            "total size        {} bytes (high-water mark x page size)",
            st.total_size
        );
        let _ = writeln!(s, "file size         {} bytes", st.file_size);
        let trailer = match t.state {
            TrailerState::Absent => format!(
                "absent (size % 512 = {}; restore needs --skip-hash-check)",
                st.file_size % 512
            ),
            TrailerState::Valid => format!(
                "valid: sha256 of the first {} bytes = {}",
                t.covered_bytes.unwrap_or(0),
                t.stored_sha256.as_deref().unwrap_or("")
            ),
            TrailerState::Invalid => format!(
                "INVALID: stored {}, but sha256 of the first {} bytes is {}",
                t.stored_sha256.as_deref().unwrap_or(""),
                t.covered_bytes.unwrap_or(0),
                t.computed_sha256.as_deref().unwrap_or("")
            ),
        };
        let _ = writeln!(s, "sha256 trailer    {trailer}");
        let _ = writeln!(
            s,
            "check             {}",
            match self.check_problems {
                0 => "ok".to_string(),
                n => format!("{n} problems (boltpack check)"),
            }
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use boltpack::etcd::Rules;

    #[test]
    fn renders_hashkv() {
        let h = HashKv {
            hash: 0xdead_beef,
            compact_revision: -1,
            revision: 9,
            hash_revision: 9,
            rules: Rules::default(),
        };
        let s = render_hashkv(&h);
        assert!(s.contains("3735928559 (0xdeadbeef)"), "{s}");
        assert!(s.contains("compact revision  -1"), "{s}");
        assert!(s.contains("etcd 3.4.23"), "{s}");
    }
}

/// `get -w json`: etcdctl's JSON of a `RangeResponse` (etcd@v3.4 `etcdctl/ctlv3/command/
/// printer_json.go`): keys and values in base64, zero fields left out. The header holds the
/// revision only: the cluster id, member id and raft term are not in the db.
#[derive(Debug, Serialize)]
pub struct GetJson {
    pub header: GetHeader,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kvs: Vec<KvJson>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
    #[serde(skip_serializing_if = "is_zero")]
    pub count: u64,
}

#[derive(Debug, Serialize)]
pub struct GetHeader {
    pub revision: i64,
}

#[derive(Debug, Serialize)]
pub struct KvJson {
    pub key: String,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub create_revision: i64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub mod_revision: i64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub version: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub lease: i64,
    /// With `--decode`: the object kind the value holds (not in etcdctl's JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_kind: Option<boltpack::analyze::etcd::ObjectKind>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

impl GetJson {
    pub fn of(r: &boltpack::etcd::GetResponse<'_>, keys_only: bool, decode: bool) -> GetJson {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        GetJson {
            header: GetHeader {
                revision: r.revision,
            },
            kvs: r
                .kvs
                .iter()
                .map(|kv| KvJson {
                    key: b64(kv.key),
                    create_revision: kv.create_revision,
                    mod_revision: kv.mod_revision,
                    version: kv.version,
                    value: if keys_only {
                        String::new()
                    } else {
                        b64(kv.value)
                    },
                    lease: kv.lease,
                    object_kind: decode.then(|| boltpack::analyze::etcd::object_kind(kv.value)),
                })
                .collect(),
            more: r.more,
            count: r.count,
        }
    }
}

/// `get` as etcdctl's `-w simple` prints it: each key on a line, then its value (an empty
/// line with `--keys-only`), bytes as they are. With `decode`, the value line says what
/// object the value holds (`apps/v1 Deployment (protobuf, 812 bytes)`), and a JSON object
/// follows in full.
pub fn render_get_simple(
    r: &boltpack::etcd::GetResponse<'_>,
    keys_only: bool,
    decode: bool,
) -> Vec<u8> {
    use boltpack::analyze::etcd::{Encoding, object_kind};
    let mut out = Vec::new();
    for kv in &r.kvs {
        out.extend_from_slice(kv.key);
        out.push(b'\n');
        if decode && !keys_only {
            let k = object_kind(kv.value);
            out.extend_from_slice(
                format!(
                    "{} ({}, {} bytes)",
                    k.label(),
                    k.encoding.label(),
                    kv.value.len()
                )
                .as_bytes(),
            );
            if k.encoding == Encoding::Json {
                out.push(b'\n');
                out.extend_from_slice(kv.value);
            }
        } else if !keys_only {
            out.extend_from_slice(kv.value);
        }
        out.push(b'\n');
    }
    out
}

/// `diff` for people: the two sides, the totals, a row per group, the top growth.
pub fn render_diff(d: &boltpack::analyze::etcd::Diff, old: &str, new: &str) -> String {
    use crate::units::short;
    let mut s = String::new();
    let side = |path: &str, x: &boltpack::analyze::etcd::DiffSide| {
        format!(
            "{path} (revision {}, {})",
            x.revision,
            short(x.file_size_bytes as f64)
        )
    };
    let _ = writeln!(s, "old   {}", side(old, &d.old));
    let _ = writeln!(s, "new   {}", side(new, &d.new));
    if d.revisions_written < 0 {
        let _ = writeln!(
            s,
            "NOTE: NEW is the older backup ({} revisions behind OLD): the figures read from NEW to OLD reversed",
            -d.revisions_written
        );
    } else {
        let _ = writeln!(
            s,
            "      {} revisions written between them, {} of history added",
            d.revisions_written,
            short(d.history_bytes_added as f64)
        );
    }
    let t = &d.total;
    let _ = writeln!(
        s,
        "total {} added, {} removed, {} changed; live keys {} -> {}; live values {} -> {}",
        t.added_keys,
        t.removed_keys,
        t.changed_keys,
        t.live_keys_old,
        t.live_keys_new,
        short(t.value_bytes_old as f64),
        short(t.value_bytes_new as f64)
    );
    diff_rows(&mut s, "PREFIX", &d.groups);
    if d.kinds.iter().any(|k| !k.prefix.starts_with("(not")) {
        diff_rows(&mut s, "OBJECT KIND", &d.kinds);
    }
    if !d.top_growth.is_empty() {
        let _ = writeln!(
            s,
            "\ntop growth\n  {:>11} {:>11} {:>11}  KEY",
            "GROWTH", "OLD", "NEW"
        );
        for g in &d.top_growth {
            let _ = writeln!(
                s,
                "  {:>11} {:>11} {:>11}  {}",
                short(g.growth_bytes as f64),
                short(g.value_bytes_old as f64),
                short(g.value_bytes_new as f64),
                g.key
            );
        }
    }
    s
}

/// One `diff` table: a heading, then a row per group.
fn diff_rows(s: &mut String, first: &str, rows: &[boltpack::analyze::etcd::DiffGroup]) {
    use crate::units::short;
    let _ = writeln!(
        s,
        "\n  {first:<44} {:>7} {:>7} {:>7} {:>9} {:>9} {:>11} {:>11}",
        "ADDED", "REMOVED", "CHANGED", "LIVE OLD", "LIVE NEW", "VALUES OLD", "VALUES NEW"
    );
    for g in rows {
        let f = &g.figures;
        let _ = writeln!(
            s,
            "  {:<44} {:>7} {:>7} {:>7} {:>9} {:>9} {:>11} {:>11}",
            g.prefix,
            f.added_keys,
            f.removed_keys,
            f.changed_keys,
            f.live_keys_old,
            f.live_keys_new,
            short(f.value_bytes_old as f64),
            short(f.value_bytes_new as f64)
        );
    }
}
