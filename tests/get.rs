//! `boltpack get` against a live etcd serving the same db: the fixture
//! (`testdata/etcd/db`: compacted at 166, current 218) restored into real etcd 3.4 and
//! 3.5, a three-put txn (revision 219) and a delete (220) written, then the same `get`
//! asked of the live etcd and of boltpack on the member's db: at the current revision, at
//! the compacted one (allowed: etcd refuses only below it), inside the history, at the
//! txn's revision, below the compacted one and above the current one (both refused,
//! exit 1). `-w simple` output is
//! byte-identical to etcdctl's; `-w json` has the same `kvs`, `count`, `more` and header
//! revision (the db holds no cluster id, member id or raft term).
//!
//! Live trials (`live_etcd::get::*`): ignored with a NOTE without the peer; with
//! BOLTPACK_REQUIRE_PEERS=1 a missing peer fails.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{EtcdPeer, boltpack, path_str as s, repo};
use libtest_mimic::{Arguments, Failed};
use serde_json::Value;

/// Each line: the arguments of one `get` (after the subcommand; words split on spaces).
const QUERIES: &[&str] = &[
    "foo",
    "foo --rev 200",
    "foo --rev 166",
    "foo --rev 165",
    "foo --rev 219",
    "/registry/pods/ --prefix",
    "/registry/pods/ --prefix --keys-only",
    "/registry/pods/ --prefix --limit 5",
    "/registry/pods/ --prefix --rev 180",
    "/registry/ /registry/pods/",
    "/registry/replicasets --from-key",
    "/registry/leases/kube-node-lease/node-0 --rev 190",
    "/registry/pods/default/flappy --rev 170",
    "a --prefix --rev 210",
    "nothing-here",
    // The txn the script writes at 219 (three puts: one revision, subs 0-2), then the
    // delete at 220.
    "/registry/txn2/ --prefix --rev 219",
    "/registry/txn2/ --prefix --rev 218",
    "/registry/txn2/ --prefix",
    "/registry/txn2/b",
    "/registry/txn2/b --rev 219",
    "foo --rev 221",
];

/// $1 work dir, $2 repo, $3 the queries file. For query i: q$i.json / q$i.txt / q$i.rc.
const SCRIPT: &str = r#"
set -euo pipefail
source "$2/tests/peer/etcd-lib.sh"
W=$1
etcd_restore_and_start "$2/testdata/etcd/db" "$W/restore"
etcdctl_local txn >/dev/null <<'TXN'

put /registry/txn2/a 1
put /registry/txn2/b 2
put /registry/txn2/c 3


TXN
etcdctl_local del /registry/txn2/b >/dev/null
i=0
while read -r line; do
    # shellcheck disable=SC2086
    set +e
    etcdctl_local get $line -w json >"$W/q$i.json" 2>"$W/q$i.err"
    echo $? >"$W/q$i.rc"
    etcdctl_local get $line -w simple >"$W/q$i.txt" 2>/dev/null
    set -e
    i=$((i + 1))
done <"$3"
etcd_stop
"#;

fn live_get(peer: EtcdPeer) -> Result<(), Failed> {
    let w = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("get-{}", peer.label()));
    let _ = std::fs::remove_dir_all(&w);
    std::fs::create_dir_all(&w)?;
    let queries = w.join("queries.txt");
    std::fs::write(&queries, QUERIES.join("\n") + "\n")?;
    let o = Command::new("timeout")
        .args(["--kill-after=20", "300", "bash", "-c", SCRIPT, "get"])
        .arg(&w)
        .arg(repo())
        .arg(&queries)
        .envs(peer.env())
        .output()?;
    if !o.status.success() {
        return Err(format!("{}: {}", peer.label(), String::from_utf8_lossy(&o.stderr)).into());
    }
    // The member's db as the live etcd left it: the fixture plus the txn and the delete.
    let db = w.join("restore/data/member/snap/db");
    for (i, q) in QUERIES.iter().enumerate() {
        let read = |ext: &str| std::fs::read(w.join(format!("q{i}.{ext}"))).unwrap_or_default();
        let etcd_rc: i32 = String::from_utf8_lossy(&read("rc")).trim().parse()?;
        let mut args = vec!["get", s(&db)];
        args.extend(q.split(' '));
        let json = boltpack(&[&args[..], &["-w", "json"]].concat());
        let simple = boltpack(&[&args[..], &["-w", "simple"]].concat());
        let what = format!("{}: get {q}", peer.label());
        if etcd_rc != 0 {
            let err = String::from_utf8_lossy(&read("err")).to_string();
            assert_eq!(json.status.code(), Some(1), "{what}: etcd refused ({err})");
            let ours = String::from_utf8_lossy(&json.stderr);
            for said in ["has been compacted", "is a future revision"] {
                if err.contains(said) {
                    assert!(ours.contains(said), "{what}: {ours} vs {err}");
                }
            }
            continue;
        }
        assert_eq!(
            json.status.code(),
            Some(0),
            "{what}: {}",
            String::from_utf8_lossy(&json.stderr)
        );
        let theirs: Value = serde_json::from_slice(&read("json"))?;
        let ours: Value = serde_json::from_slice(&json.stdout)?;
        for f in ["kvs", "count", "more"] {
            assert_eq!(ours[f], theirs[f], "{what}: {f}");
        }
        assert_eq!(
            ours["header"]["revision"], theirs["header"]["revision"],
            "{what}"
        );
        assert_eq!(simple.stdout, read("txt"), "{what}: -w simple");
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    libtest_mimic::run(&args, common::trial_per_etcd_peer("get", live_get)).exit();
}
