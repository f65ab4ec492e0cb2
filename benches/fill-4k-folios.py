#!/usr/bin/env python3
"""benches/fill-4k-folios.py FILE: fill the page cache with FILE in 4 KiB folios.

Each page is faulted on its own through a map advised MADV_RANDOM (no read-around), as
bbolt's own map (which etcd reads its db through) leaves the cache. A plain read (`cat`)
fills it with large folios instead (2 MiB on ext4 since Linux 6.16), and every reader
of a mapped file then maps it faster: the warm figures depend on which one came first
after the cache was dropped (BENCHMARKS.md, sixth session). Run after drop_caches.
"""
import mmap
import os
import sys

with open(sys.argv[1], "rb") as f:
    n = os.fstat(f.fileno()).st_size
    m = mmap.mmap(f.fileno(), n, prot=mmap.PROT_READ)
    m.madvise(mmap.MADV_RANDOM)
    s = 0
    for off in range(0, n, mmap.PAGESIZE):
        s += m[off]
    m.close()
