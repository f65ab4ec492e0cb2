#!/usr/bin/env bash
# etcd-compact-history.sh OUT_DIR -- write a fresh history on a REAL etcd (loopback only, via
# etcd-lib.sh) for tests/compact_etcd.rs, and keep two files of it:
#
#   OUT_DIR/pre.db     `etcdctl snapshot save` before any compaction (sha256 trailer)
#   OUT_DIR/db         member/snap/db after one online compaction, more writes and a clean stop
#   OUT_DIR/tiny.db    member db of a second, tiny etcd whose buckets are all inline
#   OUT_DIR/revisions  "NAME REV" lines: the revisions the test compacts at (see below)
#
# History: puts, overwrites, deletes, re-creates, a DeleteRange, txns with several ops (puts
# and deletes), a big value (overflow pages), keys on a long lease (overwritten, deleted)
# and a revoked lease that deletes its keys; then `compact --physical` at a put.
# Every revision is checked against the one this script expects.
# Needs etcd + etcdctl 3.4, bash, coreutils. Leaves no etcd running.
set -euo pipefail

OUT=$(realpath -m "${1:?usage: etcd-compact-history.sh OUT_DIR}")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d /tmp/etcd-compact-history.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=etcd-lib.sh
source "$HERE/etcd-lib.sh"

e() { etcdctl_local --dial-timeout=5s --command-timeout=30s "$@"; }
rev() { e get -w json -- __no_such_key__ | grep -o '"revision":[0-9]*' | sed -n 1p | cut -d: -f2; }
put() { e put "$@" >/dev/null; }
del() { e del "$@" >/dev/null; }
# expect NAME REV: the current revision must be REV; record it as NAME
expect() {
    local now
    now=$(rev)
    if [ "$now" != "$2" ]; then
        echo "etcd-compact-history.sh: $1: expected revision $2, etcd is at $now" >&2
        exit 1
    fi
    echo "$1 $2" >>"$OUT/revisions"
}
lease() { e lease grant 1000000 | awk '{print $2}'; }
big() { # big N CHAR: N bytes of deterministic text
    head -c "$1" /dev/zero | tr '\0' "$2"
}

rm -rf "$OUT"
mkdir -p "$OUT"
etcd_start "$WORK/data" "$WORK/etcd.log" >/dev/null

# ---- before the snapshot: no compaction
for n in $(seq 0 19); do put -- "/k/$n" "v$n"; done          # 2..21
for i in 1 2 3 4 5; do put -- /k/0 "v0-$i"; done              # 22..26
L1=$(lease)
put --lease="$L1" -- /lease/a a1                              # 27
put --lease="$L1" -- /lease/b b1                              # 28
put --lease="$L1" -- /lease/a a2                              # 29
del -- /k/2                                                   # 30
put -- /k/2 v2-again                                          # 31 (re-created)
del -- /k/3                                                   # 32 (tombstone, /k/3 since 5)
expect pre_tomb 32
e txn >/dev/null <<'TXN'

put /t/a a1
put /t/b b1
del /k/4
put /k/5 v5-txn


TXN
expect pre_txn 33                                             # 33: 3 puts + 1 delete
del --prefix -- /k/1                                          # 34: /k/1, /k/10../k/19
put -- /flappy f1                                             # 35
del -- /flappy                                                # 36
put -- /flappy f2                                             # 37
big 200000 b | e put -- /big >/dev/null                       # 38 (overflow pages)
L2=$(lease)
put --lease="$L2" -- /ev/0 e0                                 # 39
put --lease="$L2" -- /ev/1 e1                                 # 40
e lease revoke "$L2" >/dev/null                               # 41: deletes /ev/0, /ev/1
put -- /k/6 v6-1                                              # 42
put -- /k/6 v6-2                                              # 43
expect pre_put 43
put -- /k/6 v6-3                                              # 44
put -- /gone g1                                               # 45
del -- /gone                                                  # 46
put -- /pre/last last                                         # 47
expect pre_current 47
e snapshot save "$OUT/pre.db" >"$WORK/save.log" 2>&1 || { cat "$WORK/save.log" >&2; exit 1; }

# ---- one online compaction at a put, more writes
e compact 43 --physical >/dev/null
expect after_compaction 47
echo "compacted 43" >>"$OUT/revisions"
for i in 1 2 3; do put -- /k/0 "v0-b$i"; done                # 48..50
put -- /k/3 v3-again                                          # 51 (re-created)
del -- /flappy                                                # 52
expect final_tomb 52
put -- /flappy f3                                             # 53
e txn >/dev/null <<'TXN'
value("/t/a") = "a1"

put /t/a a2
del /t/b
put /t/c c1
del /k/5


TXN
expect final_txn 54                                           # 54: 2 puts + 2 deletes
put --lease="$L1" -- /lease/c c1                              # 55
del -- /lease/b                                               # 56 (a leased key)
expect final_lease_tomb 56
big 150000 c | e put -- /big >/dev/null                       # 57
expect final_put 57
del -- /k/7                                                   # 58
put -- /k/7 v7-again                                          # 59
put -- /k/8 v8-1                                              # 60
put -- /zz/final final                                        # 61
expect final_current 61

etcd_stop
cp "$WORK/data/member/snap/db" "$OUT/db"

# ---- a tiny history: the `key` bucket stays inline (< 1/4 page)
etcd_start "$WORK/tiny" "$WORK/tiny.log" >/dev/null
for i in 1 2 3; do put -- a "a$i"; done                      # 2..4
del -- a                                                      # 5
expect tiny_tomb 5
put -- b b1                                                   # 6
put -- a a-again                                              # 7
put -- b b2                                                   # 8
expect tiny_current 8
etcd_stop
cp "$WORK/tiny/member/snap/db" "$OUT/tiny.db"
echo "done: $OUT" >&2
