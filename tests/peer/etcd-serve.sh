#!/usr/bin/env bash
# etcd-serve.sh DB WORK_DIR OUT_DIR FROM TO -- restore DB into a REAL etcd (loopback only,
# via etcd-lib.sh), record what it serves, stop it. For tests/compact_etcd.rs.
#
# Records, in OUT_DIR:
#   get/<R>.json   `etcdctl get "" --prefix --rev=R -w json` for every R in FROM..=TO
#   get/<R>.err    the same when etcdctl failed: "exit=N" then its stderr
#   below.txt      `get "" --prefix --rev=FROM-1` (only when FROM-1 >= 1): "exit=N", output
#   hashkv.json    `etcdctl endpoint hashkv --rev=TO -w json`
#   hashkv.err     the same when etcdctl failed (3.4.23 refuses rev <= compact revision)
#   hashkv0.json   `etcdctl endpoint hashkv -w json` (rev 0: the current revision, which
#                  3.4.23 hashes even when it equals the compact revision)
#   status.json    `etcdctl endpoint status -w json`
#   put.json       `etcdctl put __boltpack_probe__ probe -w json`, after everything above
# WORK_DIR must not exist yet (etcd's data dir and log go there; the data dir, with its 64 MB
# WAL, is removed after a successful run). Every etcdctl call is
# bounded (--dial-timeout, --command-timeout), etcd start and stop are bounded by
# etcd-lib.sh; run the whole script under `timeout` too. Leaves no etcd running.
set -euo pipefail

DB=${1:?usage: etcd-serve.sh DB WORK_DIR OUT_DIR FROM TO}
WORK=$(realpath -m "${2:?}")
OUT=$(realpath -m "${3:?}")
FROM=${4:?}
TO=${5:?}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=etcd-lib.sh
source "$HERE/etcd-lib.sh"

e() { etcdctl_local --dial-timeout=5s --command-timeout=30s "$@"; }

mkdir -p "$OUT/get"
etcd_restore_and_start "$DB" "$WORK" >/dev/null

# run NAME ARGS...: stdout to OUT/NAME.json, or "exit=N", stdout and stderr to OUT/NAME.err
run() {
    local name=$1 rc=0
    shift
    e "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
    if [ "$rc" = 0 ]; then
        mv "$WORK/out" "$OUT/$name.json"
    else
        { echo "exit=$rc"; cat "$WORK/out"; grep -v '"level":"warn"' "$WORK/err" || true; } \
            >"$OUT/$name.err"
    fi
}

for ((r = FROM; r <= TO; r++)); do
    run "get/$r" get "" --prefix --rev="$r" -w json
done
if [ "$FROM" -gt 1 ]; then
    rc=0
    e get "" --prefix --rev="$((FROM - 1))" -w json >"$WORK/out" 2>"$WORK/err" || rc=$?
    { echo "exit=$rc"; head -c 200 "$WORK/out"; echo; grep -v '"level":"warn"' "$WORK/err" || true; } \
        >"$OUT/below.txt"
fi
run hashkv endpoint hashkv --rev="$TO" -w json
run hashkv0 endpoint hashkv -w json
e endpoint status -w json >"$OUT/status.json"
e put __boltpack_probe__ probe -w json >"$OUT/put.json"
etcd_stop
rm -rf "$WORK/data"
