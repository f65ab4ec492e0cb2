//! `boltpack diff` of two snapshots of one real etcd 3.4 member, with puts, updates and
//! deletes between them: every figure equals what the live etcd's `get "" --prefix -w json`
//! answered when each snapshot was saved (in total, and for the `/registry/pods/` group);
//! the revisions between them equal the two headers'; backups of another cluster are
//! refused unless `--any-cluster`.
//!
//! Live trial (`live_etcd::diff::snapshots`): ignored with a NOTE without etcd 3.4; with
//! BOLTPACK_REQUIRE_PEERS=1 a missing peer fails.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use base64::Engine;
use common::{EtcdPeer, boltpack, gate_peer, path_str as s, repo, testdata};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

const SCRIPT: &str = r#"
set -euo pipefail
source "$2/tests/peer/etcd-lib.sh"
W=$1
etcd_start "$W/data"
for i in $(seq 1 20); do etcdctl_local put "/registry/pods/ns$((i % 3))/p$i" "pod-$i" >/dev/null; done
for i in 1 2 3; do etcdctl_local put "/registry/configmaps/default/c$i" "cfg$i" >/dev/null; done
etcdctl_local put app/x 1 >/dev/null
etcdctl_local get "" --prefix -w json >"$W/old.json"
etcdctl_local snapshot save "$W/old.db" >/dev/null
for i in 1 2 3 4 5; do etcdctl_local put "/registry/pods/ns$((i % 3))/p$i" "pod-$i-updated-and-longer" >/dev/null; done
etcdctl_local del "/registry/pods/ns0/p6" >/dev/null
etcdctl_local del "/registry/configmaps/default/c1" >/dev/null
for i in 21 22 23; do etcdctl_local put "/registry/pods/ns1/p$i" "new-pod-$i" >/dev/null; done
etcdctl_local put /registry/events/default/e1 "an event" >/dev/null
etcdctl_local put app/x 1 >/dev/null
etcdctl_local get "" --prefix -w json >"$W/new.json"
etcdctl_local snapshot save "$W/new.db" >/dev/null
etcd_stop
"#;

/// key -> (mod_revision, value length) of an `etcdctl get -w json` answer, and its revision.
fn live(v: &Value) -> (BTreeMap<String, (i64, u64)>, i64) {
    let b64 = |s: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(s.as_str().unwrap_or(""))
            .unwrap()
    };
    let mut m = BTreeMap::new();
    for kv in v["kvs"].as_array().unwrap() {
        let k = String::from_utf8(b64(&kv["key"])).unwrap();
        m.insert(
            k,
            (
                kv["mod_revision"].as_i64().unwrap(),
                b64(&kv["value"]).len() as u64,
            ),
        );
    }
    (m, v["header"]["revision"].as_i64().unwrap())
}

/// The figures `diff` must give for the keys starting with `prefix`.
fn expected(
    old: &BTreeMap<String, (i64, u64)>,
    new: &BTreeMap<String, (i64, u64)>,
    prefix: &str,
) -> Value {
    let pick = |m: &BTreeMap<String, (i64, u64)>| -> BTreeMap<String, (i64, u64)> {
        m.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    let (o, n) = (pick(old), pick(new));
    let added = n.keys().filter(|k| !o.contains_key(*k)).count();
    let removed = o.keys().filter(|k| !n.contains_key(*k)).count();
    let changed = n
        .iter()
        .filter(|(k, v)| o.get(*k).is_some_and(|w| w.0 != v.0))
        .count();
    serde_json::json!({
        "added_keys": added,
        "removed_keys": removed,
        "changed_keys": changed,
        "live_keys_old": o.len(),
        "live_keys_new": n.len(),
        "value_bytes_old": o.values().map(|v| v.1).sum::<u64>(),
        "value_bytes_new": n.values().map(|v| v.1).sum::<u64>(),
    })
}

fn snapshots() -> Result<(), Failed> {
    let w = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("diff");
    let _ = std::fs::remove_dir_all(&w);
    std::fs::create_dir_all(&w)?;
    let o = Command::new("timeout")
        .args(["--kill-after=20", "300", "bash", "-c", SCRIPT, "diff"])
        .arg(&w)
        .arg(repo())
        .output()?;
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).to_string().into());
    }
    let read = |n: &str| -> Result<Value, Failed> {
        Ok(serde_json::from_slice(&std::fs::read(w.join(n))?)?)
    };
    let (old, old_rev) = live(&read("old.json")?);
    let (new, new_rev) = live(&read("new.json")?);
    let (od, nd) = (w.join("old.db"), w.join("new.db"));
    let out = boltpack(&["diff", s(&od), s(&nd), "-w", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(d["revisions_written"], new_rev - old_rev);
    assert_eq!(d["old"]["revision"], old_rev);
    assert_eq!(d["new"]["revision"], new_rev);
    let want = expected(&old, &new, "");
    for (f, v) in want.as_object().unwrap() {
        assert_eq!(&d["total"][f], v, "total {f}");
    }
    let pods = d["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["prefix"] == "/registry/pods/")
        .ok_or("no /registry/pods/ group")?;
    for (f, v) in expected(&old, &new, "/registry/pods/").as_object().unwrap() {
        assert_eq!(&pods[f], v, "/registry/pods/ {f}");
    }
    assert!(d["history_bytes_added"].as_u64().unwrap() > 0);
    assert!(
        d["top_growth"][0]["key"]
            .as_str()
            .unwrap()
            .starts_with("/registry/")
    );
    // Another cluster's backup: refused, unless --any-cluster.
    let other = testdata("etcd/db");
    let o = boltpack(&["diff", s(&od), s(&other)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("different clusters"));
    let o = boltpack(&["diff", s(&od), s(&other), "--any-cluster"]);
    assert_eq!(o.status.code(), Some(0));
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let avail = EtcdPeer::V34.available();
    gate_peer("etcd34 peer", &avail);
    let trials = vec![
        Trial::test("live_etcd::diff::snapshots", snapshots).with_ignored_flag(avail.is_err()),
    ];
    libtest_mimic::run(&args, trials).exit();
}
