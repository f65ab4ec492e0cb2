#!/usr/bin/env bash
# make-etcd-fixtures.sh -- regenerate testdata/etcd/ with a REAL etcd 3.4.
#
# Starts a fresh single-member etcd on loopback (tests/peer/etcd-lib.sh), builds
# a small Kubernetes-like history with etcdctl (puts, overwrites, deletes,
# multi-op txns, leases incl. a revoked one, an online physical compaction, a
# >1 MiB value, a final key), then writes
#   testdata/etcd/snapshot.db        `etcdctl snapshot save` (sha256 trailer)
#   testdata/etcd/db                 member/snap/db of the stopped member
#   testdata/etcd/datadir.tar.gz     whole stopped data dir (only if < 1 MiB)
#   testdata/etcd/expected/*         the real etcd's answers + facts.json
# and finally checks the restore path (db -> snapshot restore -> etcd serves
# the same keys; snapshot.db restores WITH hash check; datadir restarts).
#
# Usage: testdata/make-etcd-fixtures.sh [OUT_DIR]     (default: testdata/etcd)
# Needs: etcd + etcdctl 3.4 (apt-get install etcd-server etcd-client),
#        python3 (JSON handling; jq would lose precision on 64-bit ids), xxd.
#
# Keys, values and revisions are deterministic; lease ids, cluster/member ids,
# ports and hashes that cover them are not -- always commit db, snapshot.db,
# datadir.tar.gz and expected/ from the SAME run.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=$(realpath -m "${1:-$ROOT/testdata/etcd}")
EXP=$OUT/expected

WORK=$(mktemp -d /tmp/etcd-fixtures.XXXXXX)
# set before the library so its EXIT trap chains in front of ours
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=../tests/peer/etcd-lib.sh
source "$ROOT/tests/peer/etcd-lib.sh"

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'FATAL: %s\n' "$*" >&2; exit 1; }

for t in etcd etcdctl python3 xxd sha256sum; do
    command -v "$t" >/dev/null || die "$t not installed"
done
# Read etcd's whole output (no `grep -q`/`head`: an early close is a SIGPIPE under pipefail).
ETCD_VERSION=$(etcd --version | sed -n 's/^etcd Version: //p')
case $ETCD_VERSION in 3.4.*) ;; *) die "need etcd 3.4.x, got: ${ETCD_VERSION:-unknown}" ;; esac

# ---------------------------------------------------------------- helpers
e() { etcdctl_local "$@"; }
put() { e put -- "$1" "$2" >/dev/null; }
del() { e del -- "$@" >/dev/null; }
# current revision of the store
rev() { e get -w json -- __no_such_key__ | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])'; }
# assert current revision
expect_rev() {
    local r
    r=$(rev)
    [ "$r" = "$1" ] || die "expected revision $1, store is at $r (${2:-})"
}
pod_value() { # name ns n
    printf '{"kind":"Pod","apiVersion":"v1","metadata":{"name":"%s","namespace":"%s","uid":"00000000-0000-4000-8000-%012d","resourceVersion":"%d"},"spec":{"nodeName":"node-%d","containers":[{"name":"app","image":"registry.k8s.io/pause:3.9"}]},"status":{"phase":"Running"}}' \
        "$1" "$2" "$3" "$4" "$(($3 % 3))"
}
cm_value() { # name n gen
    printf '{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"%s","namespace":"kube-system"},"data":{"n":"%d","generation":"%d"}}' "$1" "$2" "$3"
}
nodelease_value() { # node renewal
    printf '{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"%s","namespace":"kube-node-lease"},"spec":{"holderIdentity":"%s","leaseDurationSeconds":40,"renewTime":"2024-01-01T00:%02d:%02d.000000Z"}}' \
        "$1" "$1" "$(($2 / 60))" "$(($2 % 60))"
}
lease_grant() { # ttl -> prints hex id
    e lease grant "$1" | awk '/granted/ {print $2}'
}

# ---------------------------------------------------------------- start
say "starting fresh etcd $ETCD_VERSION in $WORK"
etcd_start "$WORK/data" "$WORK/etcd.log"
say "endpoint $ETCD_ENDPOINT pid $ETCD_PID"
expect_rev 1 "fresh store"

# ================================================================ phase A: before compaction
say "phase A: pods, configmaps, node leases"
for n in $(seq 0 59); do
    put "/registry/pods/default/pod-$n" "$(pod_value "pod-$n" default "$n" 1)"
done
for n in $(seq 0 19); do
    put "/registry/configmaps/kube-system/cm-$n" "$(cm_value "cm-$n" "$n" 1)"
done
for n in 0 1 2; do
    put "/registry/leases/kube-node-lease/node-$n" "$(nodelease_value "node-$n" 0)"
done
# non-/registry keys and odd keys/values
put foo bar0
put bar baz
put a/b/c "value with spaces"
put "key with space" x
put "/registry/events/default/évènement-ü" "utf-8 key"
put empty-value ""                       # empty value: field 5 absent from the protobuf
put /registry/pods/default/pod-1 "$(pod_value pod-1 default 1 2)"   # version 2
expect_rev 91 "after initial puts"

say "phase A: overwrites"
for i in $(seq 1 40); do
    put /registry/leases/kube-node-lease/node-0 "$(nodelease_value node-0 "$((i * 10))")"
done
for i in $(seq 1 10); do put foo "bar$i"; done
FOO_VALUE_PRE=bar10
expect_rev 141 "after overwrites"

say "phase A: deletes"
for n in 20 21 22 23 24; do del "/registry/pods/default/pod-$n"; done   # deleted, never re-created before compaction
# one DeleteRange removing several keys in one revision (sub-revisions 0..N-1)
# prefix cm-1 matches cm-1 and cm-10..cm-19
e del --prefix /registry/configmaps/kube-system/cm-1 >/dev/null
REV_DELETE_RANGE=$(rev)
# deleted, re-created, deleted again
FLAPPY=/registry/pods/default/flappy
put "$FLAPPY" flappy-v1
put "$FLAPPY" flappy-v2
del "$FLAPPY"
put "$FLAPPY" flappy-v3
del "$FLAPPY"
# deleted then re-created (stays live)
put /registry/pods/default/pod-30 "$(pod_value pod-30 default 30 2)"
del /registry/pods/default/pod-31
put /registry/pods/default/pod-31 "$(pod_value pod-31 default 31 9)"
expect_rev 155 "after deletes"

say "phase A: transactions"
# txn 1: no compares -> success branch: 3 puts + 1 delete, one revision, subs 0..3
e txn >/dev/null <<'EOF'

put /registry/deployments/default/web web-deployment-v1
put /registry/replicasets/default/web-5d8f7 web-rs-v1
put /registry/pods/default/web-5d8f7-abcde web-pod-v1
del /registry/pods/default/pod-40


EOF
REV_TXN1=$(rev)
# txn 2: compare succeeds
e txn >/dev/null <<EOF
value("foo") = "$FOO_VALUE_PRE"

put foo txn-foo
put /registry/pods/default/pod-2 pod-2-updated-in-txn
del /registry/pods/default/pod-41
put /registry/services/specs/default/kubernetes svc-v1

put /registry/txn/should-not-exist 1

EOF
REV_TXN2=$(rev)
# txn 3: compare fails -> failure branch (2 puts)
e txn >/dev/null <<'EOF'
version("/registry/pods/default/pod-3") = "99"

put /registry/txn/should-not-exist 1

put /registry/txn/failure-branch-a yes
put /registry/txn/failure-branch-b yes

EOF
REV_TXN3=$(rev)
expect_rev 158 "after txns"

say "phase A: leases"
LEASE_LIVE=$(lease_grant 1000000)      # keeps keys, survives the whole run
LEASE_REVOKED=$(lease_grant 1000000)   # revoked below
LEASE_EMPTY=$(lease_grant 1000000)     # never attached to a key
e put /registry/masterleases/127.0.0.1 master-lease --lease="$LEASE_LIVE" >/dev/null
e put /registry/leases/kube-system/kube-scheduler scheduler --lease="$LEASE_LIVE" >/dev/null
for n in 0 1 2; do
    e put "/registry/events/default/ev-$n" "event-$n" --lease="$LEASE_REVOKED" >/dev/null
done
e lease revoke "$LEASE_REVOKED" >/dev/null   # deletes ev-0..2 in one revision
REV_LEASE_REVOKE=$(rev)
expect_rev 164 "after leases"

# a key whose tombstone lands exactly on the compaction revision
DOOMED=/registry/pods/default/doomed
put "$DOOMED" doomed-v1
del "$DOOMED"
COMPACT_REV=$(rev)
expect_rev 166 "before compaction"

say "compacting at $COMPACT_REV (physical)"
e compact "$COMPACT_REV" --physical >/dev/null
expect_rev "$COMPACT_REV" "compaction must not create a revision"

# ================================================================ phase B: after compaction
say "phase B"
for i in $(seq 41 60); do
    put /registry/leases/kube-node-lease/node-0 "$(nodelease_value node-0 "$((i * 10))")"
done
for i in $(seq 1 5); do
    put /registry/leases/kube-node-lease/node-1 "$(nodelease_value node-1 "$((i * 10))")"
done
for n in $(seq 60 74); do
    put "/registry/pods/default/pod-$n" "$(pod_value "pod-$n" default "$n" 1)"
done
del /registry/pods/default/pod-0                       # created before compaction
put /registry/pods/default/pod-20 "$(pod_value pod-20 default 20 3)"   # re-created after its pre-compaction delete
put "$FLAPPY" flappy-v4                                 # flappy: third generation ...
del "$FLAPPY"                                           # ... deleted again
put /registry/configmaps/kube-system/cm-0 "$(cm_value cm-0 0 2)"
MID_REV=$(rev)
e txn >/dev/null <<'EOF'

put /registry/deployments/default/web web-deployment-v2
put /registry/replicasets/default/web-6b9c1 web-rs-v2
del /registry/replicasets/default/web-5d8f7
del /registry/pods/default/web-5d8f7-abcde
put /registry/pods/default/web-6b9c1-fghij web-pod-v2


EOF
REV_TXN4=$(rev)
e put /registry/leases/kube-system/kube-controller-manager controller-manager --lease="$LEASE_LIVE" >/dev/null
REV_LEASE_PUT_AFTER=$(rev)
expect_rev 213 "phase B before big value"

say "big value"
BIG_KEY=/registry/configmaps/kube-system/big-cm
BIG_LEN=1258291   # 1.2 MiB (etcd's default request limit is 1.5 MiB)
# deterministic, non-periodic, compressible text
awk 'BEGIN { for (i = 0; i < 30000; i++) printf "big-value line %07d of the 1.2 MiB configmap, checksum %010d\n", i, (i * 2654435761) % 4294967296 }' \
    >"$WORK/big.full"
head -c "$BIG_LEN" "$WORK/big.full" >"$WORK/big.bin"
[ "$(stat -c %s "$WORK/big.bin")" = "$BIG_LEN" ] || die "big value has wrong size"
BIG_SHA=$(sha256sum "$WORK/big.bin" | cut -d' ' -f1)
e put -- "$BIG_KEY" <"$WORK/big.bin" >/dev/null
REV_BIG=$(rev)
for i in 1 2 3; do put foo "after-compaction-$i"; done
FINAL_KEY=/registry/zz/final-key
put "$FINAL_KEY" final-value
CURRENT_REV=$(rev)
expect_rev 218 "final"

# ================================================================ expected answers
say "recording expected answers (current revision $CURRENT_REV, compacted $COMPACT_REV)"
rm -rf "$EXP" "$OUT/db" "$OUT/snapshot.db" "$OUT/datadir.tar.gz"   # README.md stays
mkdir -p "$EXP"
e snapshot save "$OUT/snapshot.db" >"$WORK/snapshot-save.log" 2>&1 || { cat "$WORK/snapshot-save.log" >&2; die "snapshot save failed"; }

# run an etcdctl command, keep stdout in FILE; stderr (minus client retry
# log lines) and the exit code go to FILE.stderr / the EXIT_CODES map
declare -A EXIT_CODES
record() { # name file args...
    local name=$1 file=$2 rc=0
    shift 2
    e "$@" >"$EXP/$file" 2>"$WORK/stderr" || rc=$?
    EXIT_CODES[$name]=$rc
    grep -v '"level":"warn"' "$WORK/stderr" >"$WORK/stderr.clean" || true
    if [ -s "$WORK/stderr.clean" ]; then cp "$WORK/stderr.clean" "$EXP/$file.stderr"; fi
}
# for commands that are expected to fail: FILE gets "exit=N", then stdout, then
# stderr (minus client retry log lines)
record_err() { # name file args...
    local name=$1 file=$2 rc=0
    shift 2
    e "$@" >"$WORK/stdout" 2>"$WORK/stderr" || rc=$?
    EXIT_CODES[$name]=$rc
    {
        echo "exit=$rc"
        cat "$WORK/stdout"
        grep -v '"level":"warn"' "$WORK/stderr" || true
    } >"$EXP/$file"
}

record endpoint_status        endpoint-status.json      endpoint status -w json
record hashkv_current         hashkv-current.json       endpoint hashkv -w json
record hashkv_current_minus_1 hashkv-current-minus-1.json endpoint hashkv -w json --rev="$((CURRENT_REV - 1))"
record hashkv_mid             hashkv-mid.json           endpoint hashkv -w json --rev="$MID_REV"
record hashkv_compacted_plus_1 hashkv-compacted-plus-1.json endpoint hashkv -w json --rev="$((COMPACT_REV + 1))"
record_err hashkv_compacted   hashkv-compacted.txt      endpoint hashkv -w json --rev="$COMPACT_REV"
record get_current            get-current.json          get "" --prefix -w json
record get_current_minus_1    get-current-minus-1.json  get "" --prefix -w json --rev="$((CURRENT_REV - 1))"
record get_mid                get-mid.json              get "" --prefix -w json --rev="$MID_REV"
record get_compacted          get-compacted.json        get "" --prefix -w json --rev="$COMPACT_REV"
record_err get_below_compacted get-below-compacted.txt   get "" --prefix --rev="$((COMPACT_REV - 1))"
record keys_only_current      keys-only-current.json    get "" --prefix --keys-only -w json
record lease_list             lease-list.json           lease list -w json
record lease_live_ttl         lease-live-timetolive.json lease timetolive "$LEASE_LIVE" --keys -w json
ETCDCTL_API=3 etcdctl snapshot status "$OUT/snapshot.db" -w json >"$EXP/snapshot-status.json"

[ "${EXIT_CODES[get_below_compacted]}" != 0 ] || die "get below compaction unexpectedly succeeded"
for k in "${!EXIT_CODES[@]}"; do
    case $k in get_below_compacted|hashkv_compacted) ;;
    *) [ "${EXIT_CODES[$k]}" = 0 ] || die "$k failed (exit ${EXIT_CODES[$k]})" ;;
    esac
done
ENDPOINT_AT_RECORD=$ETCD_ENDPOINT

say "stopping etcd"
etcd_stop
cp "$WORK/data/member/snap/db" "$OUT/db"
chmod 644 "$OUT/db" "$OUT/snapshot.db"
# keep the whole stopped data dir if it is small
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$WORK/data" -cf - member \
    | gzip -9n >"$WORK/datadir.tar.gz"
DATADIR_SIZE=$(stat -c %s "$WORK/datadir.tar.gz")
if [ "$DATADIR_SIZE" -lt 1048576 ]; then
    cp "$WORK/datadir.tar.gz" "$OUT/datadir.tar.gz"
    DATADIR_KEPT=true
else
    say "datadir.tar.gz is $DATADIR_SIZE bytes >= 1 MiB: not kept"
    DATADIR_KEPT=false
fi

# ================================================================ checks
say "checking files"
magic=$(xxd -s 16 -l 4 -p "$OUT/db")
[ "$magic" = "edda0ced" ] || die "db: magic at offset 16 is $magic (want ed0cdaed little-endian = edda0ced)"
snap_size=$(stat -c %s "$OUT/snapshot.db")
[ $((snap_size % 512)) = 32 ] || die "snapshot.db size $snap_size % 512 != 32"
db_size=$(stat -c %s "$OUT/db")
[ $((db_size % 4096)) = 0 ] || die "db size $db_size not page aligned"
head -c $((snap_size - 32)) "$OUT/snapshot.db" | sha256sum | cut -d' ' -f1 >"$WORK/sha.body"
tail -c 32 "$OUT/snapshot.db" | xxd -p -c 64 >"$WORK/sha.trailer"
cmp -s "$WORK/sha.body" "$WORK/sha.trailer" || die "snapshot.db trailer != sha256(body)"

say "checking restore of db (no trailer, --skip-hash-check)"
etcd_restore_and_start "$OUT/db" "$WORK/restore-db"
mkdir -p "$EXP/restored-from-db"
e get "" --prefix -w json >"$WORK/restored-get.json"
e endpoint status -w json >"$EXP/restored-from-db/endpoint-status.json"
e endpoint hashkv -w json >"$EXP/restored-from-db/hashkv-current.json"
e get "" --prefix --rev="$((COMPACT_REV - 1))" >/dev/null 2>&1 && die "restored db: get below compaction succeeded"
etcd_stop

say "checking restore of snapshot.db WITH hash check"
ETCDCTL_API=3 etcdctl snapshot restore "$OUT/snapshot.db" --data-dir "$WORK/restore-snap/data" \
    --name "$ETCDLIB_NAME" --initial-cluster-token "$ETCDLIB_TOKEN" \
    --initial-cluster "$ETCDLIB_NAME=http://127.0.0.1:2380" \
    --initial-advertise-peer-urls http://127.0.0.1:2380 >"$WORK/restore-snap.log" 2>&1 \
    || { cat "$WORK/restore-snap.log" >&2; die "snapshot.db restore with hash check failed"; }
etcd_start "$WORK/restore-snap/data"
e get "" --prefix -w json >"$WORK/restored-snap-get.json"
etcd_stop

DATADIR_CHECK=skipped
if [ "$DATADIR_KEPT" = true ]; then
    say "checking datadir.tar.gz restarts"
    mkdir -p "$WORK/dd/data"
    tar -xzf "$OUT/datadir.tar.gz" -C "$WORK/dd/data"
    etcd_start "$WORK/dd/data"
    e get "" --prefix -w json >"$WORK/datadir-get.json"
    etcd_stop
    DATADIR_CHECK=ok
fi

# ================================================================ facts.json
say "writing facts.json"
export OUT EXP WORK ETCD_VERSION CURRENT_REV COMPACT_REV MID_REV BIG_KEY BIG_LEN BIG_SHA REV_BIG \
    FINAL_KEY FLAPPY DOOMED LEASE_LIVE LEASE_REVOKED LEASE_EMPTY REV_LEASE_REVOKE REV_DELETE_RANGE \
    REV_TXN1 REV_TXN2 REV_TXN3 REV_TXN4 REV_LEASE_PUT_AFTER DATADIR_KEPT DATADIR_SIZE DATADIR_CHECK \
    ETCDLIB_NAME ETCDLIB_TOKEN ENDPOINT_AT_RECORD
EXIT_CODES_JSON=$(for k in "${!EXIT_CODES[@]}"; do printf '%s=%s\n' "$k" "${EXIT_CODES[$k]}"; done)
export EXIT_CODES_JSON
python3 - <<'PY'
import base64, hashlib, json, os
E = os.environ
exp, out, work = E["EXP"], E["OUT"], E["WORK"]

def load(p):
    with open(p) as f:
        return json.load(f)

cur = load(f"{exp}/get-current.json")
keys_only = load(f"{exp}/keys-only-current.json")

# restore checks: same kvs and revision as the original member
for name in ("restored-get.json", "restored-snap-get.json") + (("datadir-get.json",) if E["DATADIR_CHECK"] == "ok" else ()):
    got = load(f"{work}/{name}")
    assert got["kvs"] == cur["kvs"], f"{name}: kvs differ from get-current.json"
    assert got["header"]["revision"] == cur["header"]["revision"], f"{name}: revision differs"
hk = load(f"{exp}/hashkv-current.json")[0]["HashKV"]
hk_r = load(f"{exp}/restored-from-db/hashkv-current.json")[0]["HashKV"]
assert hk["hash"] == hk_r["hash"] and hk["compact_revision"] == hk_r["compact_revision"], "hashkv differs after restore"

big = E["BIG_KEY"].encode()
kv_by_key = {base64.b64decode(kv["key"]): kv for kv in cur["kvs"]}
bigkv = kv_by_key[big]
bigval = base64.b64decode(bigkv["value"])
assert len(bigval) == int(E["BIG_LEN"]) and hashlib.sha256(bigval).hexdigest() == E["BIG_SHA"]
assert keys_only["count"] == cur["count"] == len(cur["kvs"])
final = kv_by_key[E["FINAL_KEY"].encode()]
assert final["mod_revision"] == int(E["CURRENT_REV"])

def lease_obj(h):
    return {"hex": h, "id": int(h, 16)}

hashes = {}
for tag, fname in [("current", "hashkv-current.json"), ("current_minus_1", "hashkv-current-minus-1.json"),
                   ("mid", "hashkv-mid.json"), ("compacted_plus_1", "hashkv-compacted-plus-1.json")]:
    h = load(f"{exp}/{fname}")[0]["HashKV"]
    hashes[tag] = {"hash": h["hash"], "compact_revision": h["compact_revision"], "header_revision": h["header"]["revision"]}

status = load(f"{exp}/endpoint-status.json")[0]["Status"]
rstatus = load(f"{exp}/restored-from-db/endpoint-status.json")[0]["Status"]
snapst = load(f"{exp}/snapshot-status.json")
codes = dict(l.split("=", 1) for l in E["EXIT_CODES_JSON"].splitlines() if l)

cur_rev, comp_rev, mid_rev = int(E["CURRENT_REV"]), int(E["COMPACT_REV"]), int(E["MID_REV"])
facts = {
    "etcd_version": E["ETCD_VERSION"],
    "member_name": E["ETCDLIB_NAME"],
    "initial_cluster_token": E["ETCDLIB_TOKEN"],
    "endpoint_at_record_time": E["ENDPOINT_AT_RECORD"],
    "current_revision": cur_rev,
    "compacted_revision": comp_rev,
    "mid_revision": mid_rev,
    "revisions_of_expected_gets": {
        "get-current.json": cur_rev, "get-current-minus-1.json": cur_rev - 1,
        "get-mid.json": mid_rev, "get-compacted.json": comp_rev,
        "get-below-compacted.txt": comp_rev - 1,
    },
    "revisions_of_expected_hashkv": {
        "hashkv-current.json": cur_rev, "hashkv-current-minus-1.json": cur_rev - 1,
        "hashkv-mid.json": mid_rev, "hashkv-compacted-plus-1.json": comp_rev + 1,
        "hashkv-compacted.txt": comp_rev,
    },
    "hashkv": hashes,
    "hashkv_at_compacted_revision_fails": codes["hashkv_compacted"] != "0",
    "get_below_compacted_exit_code": int(codes["get_below_compacted"]),
    "get_below_compacted_error": "etcdserver: mvcc: required revision has been compacted",
    "live_key_count": cur["count"],
    "live_keys_with_lease": sorted(base64.b64decode(kv["key"]).decode() for kv in cur["kvs"] if kv.get("lease")),
    "big_key": E["BIG_KEY"],
    "big_value_len": int(E["BIG_LEN"]),
    "big_value_sha256": E["BIG_SHA"],
    "big_value_revision": int(E["REV_BIG"]),
    "final_key": E["FINAL_KEY"],
    "final_key_revision": cur_rev,
    "empty_value_key": "empty-value",
    "flappy_key": E["FLAPPY"],
    "flappy_key_note": "put,put,del,put,del before compaction; put,del after compaction; not live at the end",
    "tombstone_at_compacted_revision_key": E["DOOMED"],
    "deleted_before_compaction_never_recreated": sorted(
        [f"/registry/pods/default/pod-{n}" for n in (21, 22, 23, 24, 40, 41)]
        + [f"/registry/events/default/ev-{n}" for n in (0, 1, 2)]
        + ["/registry/configmaps/kube-system/cm-1"] + [f"/registry/configmaps/kube-system/cm-{n}" for n in range(10, 20)]
        + [E["FLAPPY"], E["DOOMED"]]),
    "delete_range_revision": int(E["REV_DELETE_RANGE"]),
    "delete_range_prefix": "/registry/configmaps/kube-system/cm-1",
    "txn_revisions": {"txn1_success_3put_1del": int(E["REV_TXN1"]), "txn2_compare_ok_3put_1del": int(E["REV_TXN2"]),
                      "txn3_compare_failed_2put": int(E["REV_TXN3"]), "txn4_after_compaction_3put_2del": int(E["REV_TXN4"])},
    "lease_live": lease_obj(E["LEASE_LIVE"]),
    "lease_revoked": lease_obj(E["LEASE_REVOKED"]),
    "lease_empty": lease_obj(E["LEASE_EMPTY"]),
    "lease_granted_ttl": 1000000,
    "lease_revoke_revision": int(E["REV_LEASE_REVOKE"]),
    "lease_put_after_compaction_revision": int(E["REV_LEASE_PUT_AFTER"]),
    "raft_index_at_record": status["raftIndex"],
    "raft_term_at_record": status["raftTerm"],
    "db_size_reported_by_status": status["dbSize"],
    "restored_from_db_raft_index": rstatus["raftIndex"],
    "snapshot_status": {"revision": snapst["revision"], "totalKey": snapst["totalKey"], "hash": snapst["hash"]},
    "files": {
        "db": {"size": os.path.getsize(f"{out}/db"), "sha256": hashlib.sha256(open(f"{out}/db", "rb").read()).hexdigest()},
        "snapshot.db": {"size": os.path.getsize(f"{out}/snapshot.db"),
                        "sha256": hashlib.sha256(open(f"{out}/snapshot.db", "rb").read()).hexdigest()},
    },
    "datadir_tar_gz_kept": E["DATADIR_KEPT"] == "true",
    "datadir_tar_gz_size": int(E["DATADIR_SIZE"]),
}
if facts["datadir_tar_gz_kept"]:
    facts["files"]["datadir.tar.gz"] = {"size": int(E["DATADIR_SIZE"])}
with open(f"{exp}/facts.json", "w") as f:
    json.dump(facts, f, indent=2, ensure_ascii=False)
    f.write("\n")
print(json.dumps({k: facts[k] for k in ("current_revision", "compacted_revision", "live_key_count")}))
PY

say "done: $OUT"
ls -l "$OUT" "$EXP" >&2
