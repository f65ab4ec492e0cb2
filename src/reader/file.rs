//! Opening a file read-only, its shared lock, and the memory map. The only `unsafe` in the
//! crate lives here.

use std::fs::{File, TryLockError};
use std::path::Path;

use memmap2::Mmap;

use crate::error::{Error, Result};

/// Bytes of a database: a read-only map of a file, or an owned buffer (tests, fuzzing).
pub enum Source {
    /// The map and the file whose shared flock keeps writers out while we read.
    Mapped {
        map: Mmap,
        _file: File,
    },
    Owned(Vec<u8>),
}

impl Source {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Source::Mapped { map, .. } => map,
            Source::Owned(v) => v,
        }
    }
}

/// Open `path` read-only; with `lock`, take a shared flock first and refuse a file whose
/// exclusive lock is held (bbolt, hence etcd, holds one while the db is open read-write).
pub fn open_source(path: &Path, lock: bool) -> Result<Source> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    if lock {
        match file.try_lock_shared() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
    }
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::other("not a regular file")));
    }
    if meta.len() == 0 {
        // A zero-length map is an error on Linux; an empty file is simply too small.
        return Ok(Source::Owned(Vec::new()));
    }
    // SAFETY: the map is read-only (PROT_READ, MAP_SHARED) and we never write through it.
    // What memmap2 cannot promise is that no other process changes or truncates the file
    // while it is mapped. We hold a shared flock, which every bbolt writer (and so etcd)
    // respects by taking an exclusive one; without `lock` the user has told us the file is
    // quiet. Every access into the map is bounds-checked against the length taken here.
    let map = unsafe { Mmap::map(&file) }.map_err(io)?;
    Ok(Source::Mapped { map, _file: file })
}
