#!/usr/bin/env bash
# Regenerate the real-bbolt fixtures in testdata/bbolt/ with tests/peer/boltpeer
# (built against Go bbolt 1.3.6, Debian package golang-github-coreos-bbolt-dev).
#
#   testdata/make-bbolt-fixtures.sh                 # committed fixtures -> testdata/bbolt/
#   testdata/make-bbolt-fixtures.sh --large DIR     # the large many-free fixture (~280 MiB) -> DIR
#
# For every fixture NAME it writes NAME.db and the Go outputs NAME.dump.jsonl
# (boltpeer dump), NAME.stats.json (boltpeer stats) and NAME.meta.json
# (boltpeer meta), and requires `boltpeer check` to print "ok".
#
# Set BOLTPEER=/path/to/boltpeer to use a prebuilt binary; otherwise it is
# built into a temporary directory with:
#   GO111MODULE=off GOPATH=<tmp>:/usr/share/gocode go build -o <tmp>/boltpeer ./tests/peer/boltpeer
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")

small_shapes=(empty flat nested bigvalues deletes deletes-nosync ps8192-hashmap ps16384 ps65536)
large_shapes=(many-free)

usage() {
  echo "usage: $0 [--large DIR]" >&2
  exit 2
}

large=0
if [[ $# -gt 0 ]]; then
  [[ $1 == --large && $# -eq 2 ]] || usage
  large=1
  outdir=$2
  shapes=("${large_shapes[@]}")
else
  outdir=$here/bbolt
  shapes=("${small_shapes[@]}")
fi
mkdir -p "$outdir"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ -n ${BOLTPEER:-} ]]; then
  peer=$BOLTPEER
else
  peer=$tmp/boltpeer
  mkdir -p "$tmp/gopath"
  (cd "$repo" && GO111MODULE=off GOPATH="$tmp/gopath:/usr/share/gocode" GOFLAGS= \
    go build -o "$peer" ./tests/peer/boltpeer)
fi

# u16/u64 little-endian readers for sanity checks on the raw bytes.
u16() { od -An -tu2 -j "$2" -N2 --endian=little "$1" | tr -d ' '; }
u64() { od -An -tu8 -j "$2" -N8 --endian=little "$1" | tr -d ' '; }

for name in "${shapes[@]}"; do
  db=$outdir/$name.db
  echo "== $name" >&2
  "$peer" gen "$name" "$db"
  out=$(timeout 600 "$peer" check "$db") || { echo "$name: check failed:" >&2; echo "$out" >&2; exit 1; }
  [[ $out == ok ]] || { echo "$name: unexpected check output: $out" >&2; exit 1; }
  "$peer" dump "$db" >"$outdir/$name.dump.jsonl"
  "$peer" stats "$db" >"$outdir/$name.stats.json"
  "$peer" meta "$db" >"$outdir/$name.meta.json"

  # Sanity checks on the raw file.
  ps=$(( $(u16 "$db" 24) + ($(u16 "$db" 26) << 16) ))
  case $name in
    ps8192-hashmap) want_ps=8192 ;;
    ps16384) want_ps=16384 ;;
    ps65536) want_ps=65536 ;;
    *) want_ps=4096 ;;
  esac
  [[ $ps == "$want_ps" ]] || { echo "$name: page size $ps, want $want_ps" >&2; exit 1; }
  fl=$(sed -E 's/.*"freelist":([0-9]+).*/\1/' "$outdir/$name.meta.json")
  if [[ $name == deletes-nosync ]]; then
    [[ $fl == 18446744073709551615 ]] || { echo "$name: meta freelist $fl, want sentinel" >&2; exit 1; }
  else
    [[ $fl != 18446744073709551615 ]] || { echo "$name: unexpected freelist sentinel" >&2; exit 1; }
  fi
  if [[ $name == many-free ]]; then
    cnt=$(u16 "$db" $((fl * ps + 10)))
    n=$(u64 "$db" $((fl * ps + 16)))
    [[ $cnt == 65535 && $n -ge 65535 ]] || { echo "$name: freelist count $cnt/$n, want 0xFFFF escape" >&2; exit 1; }
    echo "$name: freelist page $fl uses the 0xFFFF escape, $n ids" >&2
  fi
  echo "$name: $(stat -c %s "$db") bytes, $(cat "$outdir/$name.meta.json")" >&2
done
