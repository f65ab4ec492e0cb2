//! "My etcd hit its quota", end to end on real etcd 3.4 and 3.5: a member with a 1 MiB
//! `--quota-backend-bytes` is written until it answers "mvcc: database space exceeded" and
//! lists a NOSPACE alarm; with it stopped, `boltpack analyze` says NOSPACE and names the
//! one-step recovery, `boltpack compact --data-dir DIR --revision R --disarm` does it, and
//! the member restarted with the same quota accepts a put at once and lists no alarm
//! (etcd 3.5). etcd 3.4 replays the alarm's activation from its WAL on restart (it does
//! not record applying alarms in the db): the report says so, and after one
//! `etcdctl alarm disarm` the put is accepted.
//!
//! Live trials (`live_etcd::nospace::*`): without a peer they are ignored with a NOTE;
//! with BOLTPACK_REQUIRE_PEERS=1 that is a failure.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{EtcdPeer, repo};
use libtest_mimic::{Arguments, Failed};

/// $1 work dir, $2 repo, $3 boltpack. Leaves its answers in files of the work dir.
const SCRIPT: &str = r#"
set -euo pipefail
source "$2/tests/peer/etcd-lib.sh"
W=$1 BP=$3
ETCDLIB_EXTRA_ARGS="--quota-backend-bytes=1048576"
etcd_start "$W/data"
v=$(head -c 20000 /dev/zero | tr '\0' x)
i=0
while etcdctl_local put "/registry/configmaps/default/cm-$((i % 20))" "$v" >/dev/null 2>"$W/put.err"; do
    i=$((i + 1))
    [ "$i" -lt 5000 ] || { echo "the quota was never hit" >&2; exit 1; }
done
cp "$W/put.err" "$W/refused.txt"
etcdctl_local alarm list >"$W/alarms-before.txt"
etcd_stop
db=$W/data/member/snap/db
"$BP" analyze "$db" >"$W/analyze.txt"
rev=$("$BP" hashkv "$db" --json | sed -n 's/^ *"revision": \([0-9]*\),*$/\1/p')
"$BP" compact --data-dir "$W/data" --revision "$rev" --disarm --backup "$W/original.db" >"$W/compact.txt"
etcd_start "$W/data"
etcdctl_local alarm list >"$W/alarms-restarted.txt"
if [ -s "$W/alarms-restarted.txt" ]; then
    # etcd 3.4 replays the activation from its WAL (compact.txt says so): one disarm.
    etcdctl_local alarm disarm >/dev/null
fi
etcdctl_local put foo bar >"$W/put-after.txt" 2>&1
etcdctl_local alarm list >"$W/alarms-after.txt"
etcd_stop
"#;

fn nospace(peer: EtcdPeer) -> Result<(), Failed> {
    let w = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("nospace-{}", peer.label()));
    let _ = std::fs::remove_dir_all(&w);
    std::fs::create_dir_all(&w)?;
    let o = Command::new("timeout")
        .args(["--kill-after=20", "300", "bash", "-c", SCRIPT, "nospace"])
        .arg(&w)
        .arg(repo())
        .arg(env!("CARGO_BIN_EXE_boltpack"))
        .envs(peer.env())
        .output()?;
    let read = |name: &str| std::fs::read_to_string(w.join(name)).unwrap_or_default();
    if !o.status.success() {
        return Err(format!(
            "{}: the script failed ({}): {}\nput-after: {}",
            peer.label(),
            o.status,
            String::from_utf8_lossy(&o.stderr),
            read("put-after.txt")
        )
        .into());
    }
    assert!(read("refused.txt").contains("database space exceeded"));
    assert!(read("alarms-before.txt").contains("NOSPACE"));
    let analyze = read("analyze.txt");
    assert!(
        analyze.contains("NOSPACE: the member refuses writes"),
        "{analyze}"
    );
    assert!(analyze.contains("--disarm"), "the next step: {analyze}");
    let compact = read("compact.txt");
    assert!(compact.contains("disarmed NOSPACE on member"), "{compact}");
    // 3.5 records applying the alarm (its consistent index moves with every commit), so the
    // restarted member has none; 3.4 replays it from the WAL, and the report says so.
    let replays = compact.contains("replays the alarm from its WAL");
    let restarted = read("alarms-restarted.txt");
    match peer {
        EtcdPeer::V35 => assert!(!replays && restarted.trim().is_empty(), "{restarted}"),
        EtcdPeer::V34 => assert!(replays && restarted.contains("NOSPACE"), "{compact}"),
    }
    assert_eq!(read("put-after.txt").trim(), "OK");
    assert_eq!(
        read("alarms-after.txt").trim(),
        "",
        "no alarm after the restart"
    );
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    libtest_mimic::run(&args, common::trial_per_etcd_peer("nospace", nospace)).exit();
}
