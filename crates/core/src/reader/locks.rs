//! Is a file held for writing by another process? Two kinds of lock say so:
//! - bbolt (and so etcd) holds an exclusive `flock` on its db while it is open read-write;
//! - etcd holds its WAL files with open-file-description write locks (`fcntl(F_OFD_SETLK)`,
//!   etcd's `pkg/fileutil` on Linux), which `flock` cannot see: Linux keeps the two kinds
//!   apart.
//!
//! `/proc/locks` lists every kind by device and inode, so it answers for both; where it
//! cannot be read, a non-blocking shared `flock` still catches bbolt. Only write locks count:
//! readers holding a shared lock (another boltpack, `flock -s`) do not stop a copy.

use std::fs::{File, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// True when some process holds a write lock on `path` (see the module comment). A path
/// that does not exist is not locked. Errors other than "not found" count as not locked for
/// the `/proc/locks` part (it is a second opinion), but a failed `flock` probe on a file we
/// can open is reported.
pub fn write_locked(path: &Path) -> std::io::Result<bool> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if let Ok(text) = std::fs::read_to_string("/proc/locks")
        && proc_locks_write_lock(&text, meta.dev(), meta.ino())
    {
        return Ok(true);
    }
    if !meta.is_file() {
        return Ok(false);
    }
    // A file we may not read (0600 of another user) cannot be probed by flock; /proc/locks
    // above has already answered for it.
    let Ok(file) = File::open(path) else {
        return Ok(false);
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// glibc's `major()` / `minor()` of a user-space `st_dev`.
fn major_minor(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

/// Does `/proc/locks` text hold a WRITE lock on (dev, ino)? Lines look like
/// `1: FLOCK  ADVISORY  WRITE 1234 08:02:131 0 EOF` (the kernel prints `MAJ:MIN:INODE`,
/// major and minor in hex); lines of waiters carry a `->` and are skipped.
fn proc_locks_write_lock(text: &str, dev: u64, ino: u64) -> bool {
    let (major, minor) = major_minor(dev);
    text.lines().filter(|l| !l.contains("->")).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(kind), Some(id)) = (f.get(3), f.get(5)) else {
            return false;
        };
        let mut parts = id.split(':');
        let (Some(ma), Some(mi), Some(i)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        *kind == "WRITE"
            && u64::from_str_radix(ma, 16) == Ok(major)
            && u64::from_str_radix(mi, 16) == Ok(minor)
            && i.parse::<u64>() == Ok(ino)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_locks_lines() {
        let text = "1: OFDLCK ADVISORY  WRITE -1 00:2d:4242 0 EOF\n\
                    2: FLOCK  ADVISORY  READ  77 08:02:99 0 EOF\n\
                    3: POSIX  ADVISORY  WRITE 78 08:02:100 0 EOF\n\
                    3: -> POSIX  ADVISORY  WRITE 79 08:02:101 0 EOF\n";
        let dev = |ma: u64, mi: u64| (ma << 8) | mi;
        assert!(proc_locks_write_lock(text, dev(0, 0x2d), 4242));
        assert!(!proc_locks_write_lock(text, dev(8, 2), 99), "a read lock");
        assert!(proc_locks_write_lock(text, dev(8, 2), 100));
        assert!(!proc_locks_write_lock(text, dev(8, 2), 101), "a waiter");
        assert!(
            !proc_locks_write_lock(text, dev(8, 3), 100),
            "another device"
        );
    }

    #[test]
    fn sees_an_exclusive_flock_and_ignores_a_shared_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        assert!(!write_locked(&p).unwrap());
        let held = File::open(&p).unwrap();
        held.lock_shared().unwrap();
        assert!(!write_locked(&p).unwrap(), "a reader's shared lock");
        held.unlock().unwrap();
        held.lock().unwrap();
        assert!(write_locked(&p).unwrap(), "a writer's exclusive lock");
        assert!(!write_locked(&dir.path().join("missing")).unwrap());
    }
}
