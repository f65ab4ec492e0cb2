//! Reading a file from a cold page cache in its physical order while a walk goes through
//! it in tree order.
//!
//! A walk faults the pages it meets in key order, which on a long-lived etcd file is
//! scattered over the disk: each fault waits for a small read at a new place (the kernel's
//! read-around is 128 KiB), so a cold walk took 3.5x as long as a cold `cat` of the same
//! 8 GiB file (BENCHMARKS.md). A thread of its own reads the file front to back in large
//! chunks through the file (not the map), as `cat` does, and the walk then finds most
//! pages in the page cache. Chunks already cached (`mincore`) are skipped: on a warm file
//! the thread only asks the kernel about a few pages of each chunk.

use std::sync::atomic::{AtomicBool, Ordering};

use super::db::Db;

/// Bytes read at once: large enough for the disk to stream, small enough that the thread
/// stops soon after the walk ends.
const CHUNK_BYTES: usize = 4 << 20;

/// Smaller files are not read ahead: their cold walk is a few faults, not worth a thread.
const MIN_FILE_BYTES: u64 = 16 << 20;

/// Only files up to this share of the memory available are read ahead: the read-ahead
/// runs ahead of a walk that is not in physical order, and on a file larger than the page
/// cache can hold it would push out pages before the walk reaches them.
const MAX_SHARE_OF_AVAILABLE: u64 = 2;

impl Db {
    /// Run `f` while a thread reads this file ahead into the page cache (see the module
    /// documentation); the thread stops when `f` returns. Nothing is read for a database
    /// in memory, a file under 16 MiB or larger than half the memory available, or when
    /// the memory available is unknown.
    pub fn with_read_ahead<R>(&self, f: impl FnOnce() -> R) -> R {
        // What the walk faults in itself (ahead of the thread, or all of a file too large
        // for it) comes in 2 MiB at a time.
        self.source().advise_huge_pages();
        if !self.read_ahead_fits() {
            return f();
        }
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| self.read_ahead(&done));
            let r = f();
            done.store(true, Ordering::Relaxed);
            r
        })
    }

    fn read_ahead_fits(&self) -> bool {
        let size = self.file_size();
        size >= MIN_FILE_BYTES
            && mem_available().is_some_and(|m| size <= m / MAX_SHARE_OF_AVAILABLE)
    }

    fn read_ahead(&self, done: &AtomicBool) {
        let end = self
            .file_size()
            .min(self.hwm().saturating_mul(u64::from(self.page_size())));
        let mut buf = vec![0u8; CHUNK_BYTES];
        let mut off = 0u64;
        while off < end && !done.load(Ordering::Relaxed) {
            let len = (end - off).min(CHUNK_BYTES as u64) as usize;
            if !self.sampled_resident(off, len)
                && self.source().read_file_at(&mut buf[..len], off).is_err()
            {
                return; // a hint only: the walk reads what it needs itself
            }
            off += len as u64;
        }
    }

    /// Whether [`RESIDENT_SAMPLES`] pages spread over the chunk are all cached. A sample,
    /// not every page: mincore costs ~0.1 us a page (32 ms of a core for a warm 1 GiB file,
    /// page by page). A chunk the walk has partly read in may be taken for cached; the
    /// walk then faults the rest itself.
    fn sampled_resident(&self, off: u64, len: usize) -> bool {
        (0..RESIDENT_SAMPLES).all(|i| {
            let at = off + (len as u64 - 1) * i / (RESIDENT_SAMPLES - 1);
            usize::try_from(at)
                .ok()
                .and_then(|a| self.source().resident(a))
                == Some(true)
        })
    }
}

/// Pages of a chunk asked about before it is read (its first, its last, three between).
const RESIDENT_SAMPLES: u64 = 5;

/// `MemAvailable` of /proc/meminfo, in bytes.
fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&info)
}

fn parse_mem_available(info: &str) -> Option<u64> {
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo() {
        let info = "MemTotal:       24000000 kB\nMemAvailable:   23000000 kB\n";
        assert_eq!(parse_mem_available(info), Some(23_000_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn a_walk_under_read_ahead_sees_the_same_file() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/bbolt/deletes.db"
        );
        let db = Db::open(path, crate::reader::OpenOptions::default()).unwrap();
        let plain = crate::check::check(&db).len();
        assert_eq!(db.with_read_ahead(|| crate::check::check(&db).len()), plain);
        let mem = Db::from_bytes(std::fs::read(path).unwrap()).unwrap();
        assert_eq!(mem.with_read_ahead(|| 7), 7);
        // The thread's own loop (a file this small gets none): it reads to the end, and a
        // file just read is cached.
        db.read_ahead(&AtomicBool::new(false));
        assert!(db.sampled_resident(0, db.file_size() as usize));
        assert!(!mem.sampled_resident(0, 4096));
    }
}
