#!/usr/bin/env bash
# make-large-etcd.sh SIZE_MIB OUT
#
# Writes a large etcd-3.4-schema db of ~SIZE_MIB MiB to OUT with the real Go
# bbolt 1.3.6 (`boltpeer gen-etcd`, tests/peer/boltpeer/genetcd.go):
# Kubernetes-like keys, ~20 revisions per key, 0.5-10 KiB values with a few
# ~1 MiB ones, ~5% tombstones, replayed online compactions (scattered free
# pages), NoFreelistSync as etcd on Linux. Same SIZE_MIB -> same content.
# Not committed: benches/compare.sh and tests/large_peers.rs generate their own.
#
# Needs: golang-go, golang-github-coreos-bbolt-dev (Debian).
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 SIZE_MIB OUT" >&2
    exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$repo" && GO111MODULE=off GOPATH="$tmp/gopath:/usr/share/gocode" GOCACHE="$tmp/gocache" \
    go build -o "$tmp/boltpeer" ./tests/peer/boltpeer)
"$tmp/boltpeer" gen-etcd "$1" "$2"
