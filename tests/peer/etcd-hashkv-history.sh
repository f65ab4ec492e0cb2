#!/usr/bin/env bash
# etcd-hashkv-history.sh OUT_DIR -- make a fresh history on a REAL etcd (loopback only, via
# etcd-lib.sh) and record its HashKV and `snapshot status` answers, for tests/etcd_peers.rs.
#
# Three phases, each leaving OUT_DIR/<phase>/:
#   snapshot.db        `etcdctl snapshot save` at the end of the phase
#   status.json        `etcdctl snapshot status snapshot.db -w json`
#   hashkv/<R>.json    `etcdctl endpoint hashkv --rev=R -w json` (R = 0 means current)
#   hashkv/<R>.err     the same when etcdctl failed: "exit=N" then its output
#   revisions          "current C" and "compacted K" lines
# Phases: a (puts, overwrites, deletes, a DeleteRange, txns; no compaction),
#         b (online compaction at a revision that is a tombstone, more writes),
#         final (a second compaction, more writes); final/ also gets db (member/snap/db
#         after a clean stop) and db-status.json (`snapshot status db`).
# Needs etcd + etcdctl (any 3.4+), bash, coreutils. Leaves no etcd running.
set -euo pipefail

OUT=$(realpath -m "${1:?usage: etcd-hashkv-history.sh OUT_DIR}")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d /tmp/etcd-hashkv.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=etcd-lib.sh
source "$HERE/etcd-lib.sh"

e() { etcdctl_local "$@"; }
put() { e put -- "$1" "$2" >/dev/null; }
del() { e del -- "$@" >/dev/null; }
rev() { e get -w json -- __no_such_key__ | grep -o '"revision":[0-9]*' | sed -n 1p | cut -d: -f2; }

# record PHASE COMPACTED REV...
record() {
    local phase=$1 compacted=$2 r rc cur
    shift 2
    mkdir -p "$OUT/$phase/hashkv"
    cur=$(rev)
    for r in "$@"; do
        rc=0
        e endpoint hashkv -w json --rev="$r" >"$WORK/out" 2>"$WORK/err" || rc=$?
        if [ "$rc" = 0 ]; then
            cp "$WORK/out" "$OUT/$phase/hashkv/$r.json"
        else
            { echo "exit=$rc"; cat "$WORK/out"; grep -v '"level":"warn"' "$WORK/err" || true; } \
                >"$OUT/$phase/hashkv/$r.err"
        fi
    done
    e snapshot save "$OUT/$phase/snapshot.db" >"$WORK/save.log" 2>&1 \
        || { cat "$WORK/save.log" >&2; exit 1; }
    ETCDCTL_API=3 etcdctl snapshot status "$OUT/$phase/snapshot.db" -w json >"$OUT/$phase/status.json"
    printf 'current %s\ncompacted %s\n' "$cur" "$compacted" >"$OUT/$phase/revisions"
}

mkdir -p "$OUT"
etcd_start "$WORK/data" "$WORK/etcd.log" >/dev/null

# ---- phase a: no compaction
for n in $(seq 0 19); do put "/k/$n" "v$n"; done
for i in 1 2 3 4 5; do put /k/0 "v0-$i"; done
for i in 1 2 3; do put /k/1 "v1-$i"; done
del /k/2
del /k/3
e del --prefix /k/1 >/dev/null               # /k/1 and /k/10../k/19 in one revision
e txn >/dev/null <<'TXN'

put /t/a a1
put /t/b b1
del /k/4


TXN
put /flappy f1
del /flappy
put /flappy f2
put /empty ""
MID_A=$(rev)
put /k/5 v5-1
put /doomed d1
del /doomed
C1=$(rev)                                   # a tombstone exactly at the compaction revision
record a -1 0 1 2 10 "$MID_A" "$((C1 - 1))" "$C1" "$((C1 + 1))"

# ---- phase b: compaction at C1, more writes
e compact "$C1" --physical >/dev/null
for i in 1 2 3; do put /k/0 "v0-b$i"; done
put /k/2 v2-again                            # re-created after its delete
del /flappy
put /doomed d2                               # re-created after the tombstone at C1
e txn >/dev/null <<'TXN'
value("/t/a") = "a1"

put /t/a a2
del /t/b
put /t/c c1


TXN
MID_B=$(rev)
put /k/6 v6-1
put /k/7 v7-1
CUR_B=$(rev)
record b "$C1" 0 "$((C1 - 1))" "$C1" "$((C1 + 1))" "$MID_B" "$((CUR_B - 1))" "$CUR_B" "$((CUR_B + 1))"

# ---- final: a second compaction at a plain put, more writes
put /k/8 v8-1
del /k/6
C2=$(rev)
e compact "$C2" --physical >/dev/null
put /k/0 v0-final
del /doomed
put /t/d d1
for i in 1 2; do put /k/5 "v5-f$i"; done
put /zz/final final
CUR=$(rev)
record final "$C2" 0 "$((C2 - 1))" "$C2" "$((C2 + 1))" "$((C2 + 2))" "$((CUR - 1))" "$CUR" "$((CUR + 1))"

etcd_stop
cp "$WORK/data/member/snap/db" "$OUT/final/db"
ETCDCTL_API=3 etcdctl snapshot status "$OUT/final/db" -w json >"$OUT/final/db-status.json"
echo "done: $OUT (compactions at $C1 and $C2, current $CUR)" >&2
