#!/usr/bin/env bash
# benches/compare.sh [--size MIB] [--runs N] [--keep] [--no-write]
#
# One run on one machine, everything local (etcd on 127.0.0.1 only). Missing
# peers are installed from Debian's packages (as root), boltpeer is built in
# GOPATH mode against the packaged bbolt 1.3.6, boltpack in release mode. Then it
#   1. generates an etcd-3.4-schema db of ~MIB MiB (default 1024) with the
#      real Go bbolt: `boltpeer gen-etcd MIB` (tests/peer/boltpeer/genetcd.go);
#   2. times (median of N runs, default 3):
#      - boltpack compact (defrag only; --revision at the midpoint between the
#        compacted and the current revision; --revision at current),
#      - Go bbolt Compact as `bbolt compact` runs it (64 KiB transactions, each
#        fsynced) and the same with NoSync,
#      - `etcdctl defrag --data-dir` on a copy of a data dir holding the db,
#      - etcd's own pipeline: snapshot restore, start etcd, compact R --physical,
#        defrag, stop, copy the db (benches/etcd-pipeline.sh),
#      - the floor: cp + fsync of a file of each output's size;
#   3. times boltpack analyze against cat DB > /dev/null, file in page cache;
#   4. records the peak RSS of each (/usr/bin/time -v: every resident page,
#      the mapped file's included), and for boltpack, in one extra run, the
#      peak heap (RssAnon: heap and stacks, sampled from /proc), which is what
#      the issue's memory target counts;
#   5. prints the table of ratios and writes it into BENCHMARKS.md (the section
#      for this size is replaced; other sizes' sections are kept).
#
# boltpack, the floor, analyze and cat run max(N, 5) times: they are short and
# their ratios are the tight ones. Every timed run starts with `sync` and the
# source in page cache (cat), and
# writes to a fresh output path. Outputs are on the same file system as the
# temp dir ($TMPDIR or /tmp). boltpack's output is checked to be
# byte-identical between runs (deterministic).
set -euo pipefail

size=1024
runs=3
keep=0
write=1
while [ $# -gt 0 ]; do
    case $1 in
    --size) size=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --no-write) write=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
log() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The peers, from Debian's packages (as .ci/run installs them): Go and the real bbolt
# 1.3.6 source for boltpeer, etcd and etcdctl 3.4, and GNU time.
need=()
[ -x /usr/bin/time ] || need+=(time)
command -v go >/dev/null || need+=(golang-go)
[ -d /usr/share/gocode/src/go.etcd.io/bbolt ] || [ -d /usr/share/gocode/src/github.com/coreos/bbolt ] ||
    need+=(golang-github-coreos-bbolt-dev)
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${need[*]}: install them (apt-get) or run as root"
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq "${need[@]}"; } >/dev/null ||
        die "apt-get install ${need[*]} failed"
fi
for c in go etcd etcdctl cargo; do
    command -v "$c" >/dev/null || die "$c not installed"
done

T=$(mktemp -d "${TMPDIR:-/tmp}/boltpack-bench.XXXXXX")
cleanup() {
    if [ "$keep" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

log "building boltpack (release) and boltpeer"
cargo build --release --quiet --bin boltpack
BP=$repo/target/release/boltpack
mkdir -p "$T/gopath"
GO111MODULE=off GOPATH="$T/gopath:/usr/share/gocode" GOCACHE="$T/gocache" \
    go build -o "$T/boltpeer" ./tests/peer/boltpeer
PEER=$T/boltpeer

SRC=$T/src.db
log "generating a ${size} MiB etcd db with Go bbolt"
gen_start=$(date +%s%N)
"$PEER" gen-etcd "$size" "$SRC" >"$T/gen.json"
gen_ms=$(( ($(date +%s%N) - gen_start) / 1000000 ))
log "generated in ${gen_ms} ms: $(cat "$T/gen.json")"
src_bytes=$(stat -c %s "$SRC")
"$BP" check "$SRC" >/dev/null || die "boltpack check of the generated db failed"
"$BP" hashkv "$SRC" --json >"$T/hashkv.json"
cur=$(sed -n 's/^ *"revision": \([0-9]*\),*$/\1/p' "$T/hashkv.json")
comp=$(sed -n 's/^ *"compact_revision": \([0-9]*\),*$/\1/p' "$T/hashkv.json")
mid=$(( (comp + cur) / 2 ))
log "revisions: compacted $comp, current $cur, midpoint $mid"

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
RAW=$T/raw.tsv
: >"$RAW"
warm() { cat "$SRC" >/dev/null; }

# measure LABEL PREP -- CMD...: RUNS runs of CMD under /usr/bin/time -v, each
# after `sync` and PREP (a function name); appends "LABEL ms rss_kib" lines.
measure() {
    local label=$1 prep=$2 i t0 t1 rss
    shift 3
    for ((i = 1; i <= runs; i++)); do
        sync
        $prep
        t0=$(date +%s%N)
        if ! /usr/bin/time -v -o "$T/time.txt" "$@" >"$T/cmd.out" 2>&1; then
            tail -n 20 "$T/cmd.out" >&2
            die "$label failed: $*"
        fi
        t1=$(date +%s%N)
        rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$T/time.txt")
        printf '%s\t%d\t%d\n' "$label" $(( (t1 - t0) / 1000 )) "$rss" >>"$RAW"
        log "$label run $i: $(( (t1 - t0) / 1000000 )) ms, ${rss} KiB"
    done
}

# heap_peak LABEL CMD...: one more run of CMD, sampling /proc/PID/status every
# 5 ms (bash builtins only, no forks); appends "LABEL heap_kib" to HEAP.
HEAP=$T/heap.tsv
: >"$HEAP"
# shellcheck source=rss-anon.sh
source "$repo/benches/rss-anon.sh"
heap_peak() {
    local label=$1 peak
    shift
    sync
    warm
    peak=$(peak_rss_anon_kib "$@") || die "$label (heap run) failed: $*"
    printf '%s\t%d\n' "$label" "$peak" >>"$HEAP"
    log "$label heap peak: ${peak} KiB"
}

# ---- boltpack compact
OUT=$T/out.db
runs_peers=$runs
runs=$(( runs < 5 ? 5 : runs ))
bp_compact() { # LABEL ARGS...
    local label=$1
    shift
    rm -f "$T/out.first" "$OUT"
    prep_bp() { warm; if [ -f "$OUT" ] && [ ! -f "$T/out.first" ]; then mv "$OUT" "$T/out.first"; fi; rm -f "$OUT"; }
    measure "$label" prep_bp -- "$BP" compact "$SRC" -o "$OUT" "$@"
    if [ -f "$T/out.first" ] && ! cmp -s "$OUT" "$T/out.first"; then
        die "$label: two runs wrote different bytes (output not deterministic)"
    fi
    rm -f "$T/out.first"
    "$BP" check "$OUT" >/dev/null || die "$label: output fails boltpack check"
    rm -f "$OUT"
    heap_peak "$label" "$BP" compact "$SRC" -o "$OUT" "$@"
}

log "boltpack compact (defrag only)"
bp_compact bp_defrag
cp "$OUT" "$T/defrag.db"
out_defrag=$(stat -c %s "$OUT")
"$PEER" check "$OUT" >/dev/null || die "Go tx.Check() fails on boltpack's output"
bp_compact bp_defrag_noverify --no-verify
log "boltpack compact --revision $mid (midpoint)"
bp_compact bp_mid --revision "$mid"
out_mid=$(stat -c %s "$OUT")
log "boltpack compact --revision $cur (current)"
bp_compact bp_cur --revision "$cur"
out_cur=$(stat -c %s "$OUT")
rm -f "$OUT"

# ---- the floor: cp + fsync of a file of the output's size
floor() { # LABEL BYTES
    head -c "$2" "$T/defrag.db" >"$T/floor.src" 2>/dev/null || true
    if [ "$(stat -c %s "$T/floor.src")" -lt "$2" ]; then
        head -c "$2" "$SRC" >"$T/floor.src"
    fi
    prep_floor() { cat "$T/floor.src" >/dev/null; rm -f "$T/floor.dst"; }
    measure "$1" prep_floor -- bash -c 'cp "$1" "$2" && sync "$2"' _ "$T/floor.src" "$T/floor.dst"
    rm -f "$T/floor.dst" "$T/floor.src"
}
log "floor: cp + fsync"
floor floor_defrag "$out_defrag"
floor floor_mid "$out_mid"
floor floor_cur "$out_cur"
runs=$runs_peers

# ---- Go bbolt Compact
GOOUT=$T/go.db
prep_go() { warm; rm -f "$GOOUT"; }
log "Go bbolt Compact (64 KiB transactions, fsync each, as bbolt compact)"
measure go_compact prep_go -- "$PEER" compact "$SRC" "$GOOUT" 65536
go_bytes=$(stat -c %s "$GOOUT")
log "Go bbolt Compact, NoSync"
measure go_compact_nosync prep_go -- "$PEER" compact-nosync "$SRC" "$GOOUT" 65536
rm -f "$GOOUT"

# ---- etcdctl defrag --data-dir on a copy of a data dir holding the db
DD=$T/datadir
prep_dd() { rm -rf "$DD"; mkdir -p "$DD/member/snap"; cp "$SRC" "$DD/member/snap/db"; sync; cat "$DD/member/snap/db" >/dev/null; }
log "etcdctl defrag --data-dir"
measure etcd_defrag prep_dd -- env ETCDCTL_API=3 etcdctl defrag --data-dir "$DD"
etcd_defrag_bytes=$(stat -c %s "$DD/member/snap/db")
rm -rf "$DD"

# ---- etcd's own restore + compact + defrag pipeline
PW=$T/pipe
prep_pipe() { warm; rm -rf "$PW" "$T/pipe.db"; }
log "etcd pipeline: snapshot restore, start, compact $mid, defrag, copy"
measure etcd_pipeline prep_pipe -- bash "$repo/benches/etcd-pipeline.sh" "$SRC" "$mid" "$PW" "$T/pipe.db"
pipe_bytes=$(stat -c %s "$T/pipe.db")
rm -rf "$PW" "$T/pipe.db"

# ---- analyze vs cat, file in page cache
log "boltpack analyze vs cat (page cache)"
runs_saved=$runs
runs=$(( runs < 5 ? 5 : runs ))
measure cat warm -- bash -c 'cat "$1" >/dev/null' _ "$SRC"
measure bp_analyze warm -- bash -c '"$1" analyze "$2" >/dev/null' _ "$BP" "$SRC"
heap_peak bp_analyze "$BP" analyze "$SRC"
runs=$runs_saved

# ---- summary
med() { awk -F'\t' -v l="$1" '$1 == l {print $2}' "$RAW" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
rss() { awk -F'\t' -v l="$1" '$1 == l && $3 > m {m = $3} END {print m + 0}' "$RAW"; }
heap() { awk -F'\t' -v l="$1" '$1 == l {print $2}' "$HEAP" | sed -n 1p; }
s() { awk -v u="$1" 'BEGIN {printf "%.3f", u / 1e6}'; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
kmib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }                                # KiB as MiB
kpct() { awk -v k="$1" -v b="$src_bytes" 'BEGIN {printf "%.1f", 100 * k * 1024 / b}'; }    # KiB as % of the input
kfrac() { awk -v k="$1" -v b="$src_bytes" 'BEGIN {printf "%.3f", k * 1024 / b}'; }         # KiB / input size
verdict() { # VALUE OP LIMIT
    awk -v v="$1" -v o="$2" -v l="$3" 'BEGIN {ok = (o == "<=") ? (v <= l) : (v >= l); print ok ? "met" : "**missed**"}'
}

declare -A M R H
for l in bp_defrag bp_defrag_noverify bp_mid bp_cur floor_defrag floor_mid floor_cur \
    go_compact go_compact_nosync etcd_defrag etcd_pipeline cat bp_analyze; do
    M[$l]=$(med "$l")
    R[$l]=$(rss "$l")
    H[$l]=$(heap "$l")
done

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
# (no `| head`: under pipefail, the writer's SIGPIPE would end the script)
machine_cpu=$(lscpu | sed -n 's/^Model name: *//p' | sed -n 1p)
machine="$machine_cpu, $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, $(uname -sr), $(df -T "$T" | awk 'NR == 2 {print $2}') on $(df "$T" | awk 'NR == 2 {print $1}')"
versions="boltpack $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo '+dirty'), $(rustc --version | cut -d' ' -f1-2), $(go version | cut -d' ' -f3), bbolt 1.3.6 (Debian), $(etcd --version | sed -n 1p)"

sec=$T/section.md
{
    echo "<!-- size=$size begin -->"
    echo "## ${size} MiB"
    echo
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), median of $runs runs for the Go and etcd peers, $(( runs < 5 ? 5 : runs )) for boltpack, the floor, analyze and cat. Peak RSS = max over the runs (/usr/bin/time: every resident page, the mapped file's included); peak heap = RssAnon in one more run."
    echo "Machine: $machine. $versions."
    echo "Load average (1/5/15 min) when the timings started: $load_start; at the end: $load_end (other processes share the machine)."
    echo
    echo "Input: \`boltpeer gen-etcd $size\`: $(mib "$src_bytes") MiB ($src_bytes B), generated in $(s $((gen_ms * 1000))) s; $(cat "$T/gen.json")."
    echo "Revisions: compacted $comp, current $cur; midpoint R = $mid."
    echo "Outputs: defrag $(mib "$out_defrag") MiB, --revision $mid $(mib "$out_mid") MiB, --revision $cur $(mib "$out_cur") MiB;"
    echo "Go Compact $(mib "$go_bytes") MiB, etcdctl defrag $(mib "$etcd_defrag_bytes") MiB, etcd pipeline $(mib "$pipe_bytes") MiB."
    echo
    echo "| what | median s | peak RSS MiB | RSS % of input | peak heap MiB | heap % of input |"
    echo "|---|---:|---:|---:|---:|---:|"
    for l in bp_defrag bp_defrag_noverify bp_mid bp_cur floor_defrag floor_mid floor_cur \
        go_compact go_compact_nosync etcd_defrag etcd_pipeline bp_analyze cat; do
        case $l in
        bp_defrag) d="boltpack compact (defrag only)" ;;
        bp_defrag_noverify) d="boltpack compact --no-verify" ;;
        bp_mid) d="boltpack compact --revision $mid (mid)" ;;
        bp_cur) d="boltpack compact --revision $cur (current)" ;;
        floor_defrag) d="floor: cp + fsync, defrag output size" ;;
        floor_mid) d="floor: cp + fsync, --revision mid output size" ;;
        floor_cur) d="floor: cp + fsync, --revision current output size" ;;
        go_compact) d="Go bbolt Compact, 64 KiB tx, fsync each (bbolt compact)" ;;
        go_compact_nosync) d="Go bbolt Compact, 64 KiB tx, NoSync" ;;
        etcd_defrag) d="etcdctl defrag --data-dir (copy of a data dir)" ;;
        etcd_pipeline) d="etcd: snapshot restore, start, compact $mid, defrag, copy" ;;
        bp_analyze) d="boltpack analyze (page cache)" ;;
        cat) d="cat DB > /dev/null (page cache)" ;;
        esac
        if [ -n "${H[$l]}" ]; then
            hp="$(kmib "${H[$l]}") | $(kpct "${H[$l]}")"
        else
            hp="– | –"
        fi
        echo "| $d | $(s "${M[$l]}") | $(kmib "${R[$l]}") | $(kpct "${R[$l]}") | $hp |"
    done
    echo
    echo "| target | ratio (boltpack / other) | limit | |"
    echo "|---|---:|---:|---|"
    t() { # DESC NUM DEN OP LIMIT
        local r
        r=$(ratio "$2" "$3")
        echo "| $1 | $r | $4 $5 | $(verdict "$r" "$4" "$5") |"
    }
    t "compact, defrag only / floor" "${M[bp_defrag]}" "${M[floor_defrag]}" "<=" 1.3
    t "defrag only / floor" "${M[bp_defrag]}" "${M[floor_defrag]}" "<=" 1.5
    t "defrag only / Go Compact, fsync per tx (>= 5x faster)" "${M[bp_defrag]}" "${M[go_compact]}" "<=" 0.2
    t "defrag only / Go Compact, NoSync (>= 2x faster)" "${M[bp_defrag]}" "${M[go_compact_nosync]}" "<=" 0.5
    t "defrag only / etcdctl defrag --data-dir (>= 4x faster)" "${M[bp_defrag]}" "${M[etcd_defrag]}" "<=" 0.25
    t "compact --revision mid / etcd pipeline (>= 15x faster)" "${M[bp_mid]}" "${M[etcd_pipeline]}" "<=" 0.0667
    t "analyze / cat (page cache)" "${M[bp_analyze]}" "${M[cat]}" "<=" 2
    for what in "peak heap (RssAnon)" "peak RSS incl. the mapped file (stricter than the target)"; do
        for l in bp_defrag bp_mid bp_cur; do
            if [ "$what" = "peak heap (RssAnon)" ]; then r=$(kfrac "${H[$l]}"); else r=$(kfrac "${R[$l]}"); fi
            echo "| $what of $l / input size | $r | <= 0.15 | $(verdict "$r" "<=" 0.15) |"
        done
    done
    echo
    echo "Not targets of the issue (the whole input is read, but the floor is sized by the smaller output):"
    echo "compact --revision mid / its floor $(ratio "${M[bp_mid]}" "${M[floor_mid]}");"
    echo "compact --revision current / its floor $(ratio "${M[bp_cur]}" "${M[floor_cur]}")."
    echo "Other ratios: defrag only / --no-verify $(ratio "${M[bp_defrag]}" "${M[bp_defrag_noverify]}");"
    echo "Go Compact fsync / NoSync $(ratio "${M[go_compact]}" "${M[go_compact_nosync]}");"
    echo "etcd pipeline / floor of its output $(ratio "${M[etcd_pipeline]}" "${M[floor_mid]}")."
    echo "<!-- size=$size end -->"
} >"$sec"

cat "$sec"
cp "$RAW" "$repo/target/bench-raw-$size.tsv" 2>/dev/null || true

if [ "$write" = 1 ]; then
    bm=$repo/BENCHMARKS.md
    if [ ! -f "$bm" ]; then
        cat >"$bm" <<'EOF'
# Benchmarks

Written by `benches/compare.sh --size MIB` (one section per size; a new run
replaces its size's section). Each section is one run on one machine. Ratios
are boltpack's time / the other's: below 1 means boltpack is faster.

EOF
    fi
    awk -v s="$size" -v f="$sec" '
        BEGIN { b = "<!-- size=" s " begin -->"; e = "<!-- size=" s " end -->" }
        $0 == b { skip = 1; while ((getline l < f) > 0) print l; done = 1; next }
        skip && $0 == e { skip = 0; next }
        !skip { print }
        END { if (!done) { print ""; while ((getline l < f) > 0) print l } }
    ' "$bm" >"$bm.tmp"
    mv "$bm.tmp" "$bm"
    log "wrote the ${size} MiB section of $bm"
fi
