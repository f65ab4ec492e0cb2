# shellcheck shell=bash
# benches/rss-anon.sh, sourced by compare.sh and etcd-speed.sh.
#
# peak_rss_anon_kib CMD...: run CMD (output discarded) and print its peak RssAnon in KiB
# (heap and stacks: what the memory targets count, not the mapped file's page cache),
# sampled from /proc/PID/status every 5 ms with bash builtins only (no forks). Returns
# CMD's exit status.
peak_rss_anon_kib() {
    local pid peak=0 k v rc=0
    "$@" >/dev/null 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        while read -r k v _; do
            if [ "$k" = RssAnon: ] && [ "$v" -gt "$peak" ]; then peak=$v; fi
        done <"/proc/$pid/status" 2>/dev/null || true
        sleep 0.005
    done
    wait "$pid" || rc=$?
    echo "$peak"
    return "$rc"
}
