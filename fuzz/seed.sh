#!/usr/bin/env bash
# Regenerate the seed corpora fuzz/corpus/<target>/ from the committed fixtures (the corpus
# directories are git-ignored). Needs cargo (to build boltpack for the page lists), dd, awk;
# xxd is used for the etcd value seeds when present.
#
#   fuzz/seed.sh            # then: cd fuzz && cargo fuzz run -s none open_walk_check -- -max_len=600000
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
corpus="$here/corpus"
bbolt="$root/testdata/bbolt"
etcd="$root/testdata/etcd"

cargo build --quiet --manifest-path "$root/Cargo.toml" --bin boltpack
bp="$root/target/debug/boltpack"

mkdir -p "$corpus"/{meta,page,open_walk_check,etcd_kv,compact,salvage}

pagesize() { # the page size from meta 0 (u32 LE at byte 24)
    od -An -tu4 -j24 -N4 "$1" | tr -d ' '
}

# cut FILE ID PAGESIZE COUNT OUT: COUNT pages starting at page ID.
cut_pages() {
    dd if="$1" of="$5" bs="$3" skip="$2" count="$4" status=none
}

# open_walk_check: the small fixtures whole, and the first pages of the big ones.
for name in empty flat nested deletes deletes-nosync ps8192-hashmap; do
    cp "$bbolt/$name.db" "$corpus/open_walk_check/$name.db"
done
for f in "$bbolt/bigvalues.db" "$bbolt/ps16384.db" "$bbolt/ps65536.db" "$etcd/db"; do
    ps=$(pagesize "$f")
    n=$(( 589824 / ps ))
    cut_pages "$f" 0 "$ps" "$n" "$corpus/open_walk_check/head-$(basename "$(dirname "$f")")-$(basename "$f")"
done

# Copies of small fixtures rewritten with 1 KiB pages by `boltpack compact`: the same content
# in small files with more pages, deeper trees and overflow pages (skipped if compact fails).
for name in flat nested deletes ps8192-hashmap; do
    for fl in sync none; do
        out="$corpus/open_walk_check/ps1024-$fl-$name.db"
        "$bp" compact "$bbolt/$name.db" -o "$out" --page-size 1024 --freelist "$fl" --force \
            >/dev/null 2>&1 || rm -f "$out"
    done
done

# compact: the same whole files (the writer needs a readable source to get anywhere).
cp "$corpus"/open_walk_check/*.db "$corpus/open_walk_check/head-etcd-db" "$corpus/compact/"
# ... and a small etcd file with MVCC history above a finished compaction, for the copies
# under a compaction plan and analyze's split pass (the real fixture is too large for the
# targets' max_len): 1 MiB
# from boltpeer's generator (Go bbolt), compacted to its last 300 revisions. Needs Go.
if command -v go >/dev/null; then
    gen=$(mktemp -d)
    (cd "$root/tests/peer/boltpeer" && GO111MODULE=off GOPATH="$gen/gopath:/usr/share/gocode" \
        GOCACHE="$gen/gocache" go build -o "$gen/boltpeer" .)
    "$gen/boltpeer" gen-etcd 1 "$gen/etcd.db" small >/dev/null
    "$bp" compact --no-lock --keep-revisions 300 "$gen/etcd.db" -o "$corpus/compact/etcd-history.db" \
        --force >/dev/null
    cp "$corpus/compact/etcd-history.db" "$corpus/open_walk_check/"
    rm -rf "$gen"
fi
# salvage: the same, and the real etcd fixture whole (its free pages hold stale copies).
cp "$corpus"/compact/* "$etcd/db" "$corpus/salvage/"

# meta: both meta pages of every fixture (their first 128 bytes: the meta is 80).
# page: every meta, freelist, branch and leaf page of the small fixtures (at most 64 KiB each,
# the first 40 of a file), with its overflow pages.
for f in "$bbolt"/*.db "$etcd/db"; do
    base=$(basename "$(dirname "$f")")-$(basename "$f" .db)
    ps=$(pagesize "$f")
    for m in 0 1; do
        dd if="$f" of="$corpus/meta/$base-meta$m" bs=1 skip=$(( m * ps )) count=128 status=none
    done
    "$bp" pages --no-lock "$f" | awk 'NR > 1 && ($2 == "freelist" || $2 == "branch" || $2 == "leaf") && n++ < 40 { print $1, $2, $4 }' |
        while read -r id type overflow; do
            span=$(( overflow + 1 ))
            if (( span * ps <= 65536 )); then
                cut_pages "$f" "$id" "$ps" "$span" "$corpus/page/$base-$id-$type"
            fi
        done
done

# etcd_kv: revision keys and mvccpb.KeyValue values of the etcd fixture.
if command -v xxd >/dev/null; then
    i=0
    "$bp" dump --no-lock "$etcd/db" key | awk 'NR <= 60' |
        while read -r line; do
            k=$(printf '%s' "$line" | grep -o '"key":{"hex":"[0-9a-f]*"' | cut -d'"' -f6 || true)
            v=$(printf '%s' "$line" | grep -o '"value":{"hex":"[0-9a-f]*"' | cut -d'"' -f6 || true)
            [ -n "$k" ] && printf '%s' "$k" | xxd -r -p >"$corpus/etcd_kv/rev-$i"
            [ -n "$v" ] && printf '%s' "$v" | xxd -r -p >"$corpus/etcd_kv/kv-$i"
            i=$(( i + 1 ))
        done
fi
# The value captured from etcd 3.4.23 in crates/core/src/etcd/kv.rs's test, and a tombstone key.
printf '\x0a\x02lk\x10\x07\x18\x07\x20\x01\x2a\x02lv\x30\x8a\xce\x88\xe0\x8c\xc4\xe8\x86\x39' >"$corpus/etcd_kv/kv-captured"
printf '\x00\x00\x00\x00\x00\x00\x00\x07_\x00\x00\x00\x00\x00\x00\x00\x02t' >"$corpus/etcd_kv/rev-tombstone"

# Inputs that once crashed or hung a target.
for f in "$root"/testdata/fuzz-regressions/*-*; do
    t=$(basename "$f")
    t=${t%%-*}
    if [ -d "$corpus/$t" ]; then
        cp "$f" "$corpus/$t/regression-$(basename "$f")"
    fi
done

for t in meta page open_walk_check etcd_kv compact salvage; do
    echo "$t: $(ls "$corpus/$t" | wc -l) seeds"
done
