#!/usr/bin/env bash
# etcd-pipeline.sh SNAPSHOT_DB R WORKDIR OUT
#
# etcd's own way to get an MVCC-compacted, defragmented copy of a snapshot,
# timed by benches/compare.sh against `boltpack compact --revision R`:
#   1. etcdctl snapshot restore SNAPSHOT_DB --skip-hash-check (into WORKDIR/data)
#   2. start etcd on it (127.0.0.1 only, tests/peer/etcd-lib.sh)
#   3. etcdctl compact R --physical   (waits until the compaction is applied)
#   4. etcdctl defrag
#   5. stop etcd, copy member/snap/db to OUT and fsync it
set -euo pipefail
if [ $# -ne 4 ]; then
    echo "usage: $0 SNAPSHOT_DB R WORKDIR OUT" >&2
    exit 2
fi
src=$1 rev=$2 work=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
# big files: allow a slow start, and a quota above the 2 GiB default
: "${ETCDLIB_START_TIMEOUT:=300}"
export ETCDLIB_START_TIMEOUT
export ETCDLIB_EXTRA_ARGS="--quota-backend-bytes=17179869184 ${ETCDLIB_EXTRA_ARGS:-}"
# shellcheck source=../tests/peer/etcd-lib.sh
source "$here/../tests/peer/etcd-lib.sh"

etcd_restore_and_start "$src" "$work"
etcdctl_local --command-timeout=3600s compact "$rev" --physical >/dev/null
etcdctl_local --command-timeout=3600s defrag >/dev/null
etcd_stop
cp "$work/data/member/snap/db" "$out"
sync "$out"
