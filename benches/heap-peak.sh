#!/usr/bin/env bash
# heap-peak.sh CMD...: run CMD and report its peak anonymous memory (RssAnon: heap, stacks)
# and peak file-backed memory (RssFile: the mmapped source and copy, which is page cache and
# which issue 6's memory target excludes), sampled from /proc every 10 ms.
set -u
"$@" >/dev/null 2>&1 &
pid=$!
peak_anon=0 peak_file=0
while kill -0 "$pid" 2>/dev/null; do
    read -r a f < <(awk '/^RssAnon/{a=$2} /^RssFile/{f=$2} END{print a+0, f+0}' "/proc/$pid/status" 2>/dev/null || echo "0 0")
    [ "$a" -gt "$peak_anon" ] && peak_anon=$a
    [ "$f" -gt "$peak_file" ] && peak_file=$f
    sleep 0.01
done
wait "$pid"
rc=$?
echo "peak RssAnon $((peak_anon / 1024)) MiB, peak RssFile $((peak_file / 1024)) MiB, exit $rc"
