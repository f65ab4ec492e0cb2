//! Opening a file read-only, its shared lock, the memory map, and prefetch hints into it
//! (and the allocator's one setting that keeps freed tables from staying resident). The
//! only `unsafe` in the crate lives here.

use std::fs::{File, TryLockError};
use std::path::Path;

use memmap2::{Mmap, UncheckedAdvice};

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

    /// Drop this process's page-table entries for the whole map (`MADV_DONTNEED`): the
    /// pages read so far stop counting in its resident set. Their data stays in the page
    /// cache; a later read faults the same bytes back in.
    pub fn release(&self) {
        if let Source::Mapped { map, .. } = self {
            // SAFETY: what memmap2 guards against is DONTNEED on a private or written mapping,
            // where it discards changes, so borrowed bytes could change under their
            // borrowers. This map is shared, file-backed and read-only: madvise(2) says later
            // accesses repopulate it "from the up-to-date contents of the underlying mapped
            // file", which does not change while we read it (the same condition the map
            // itself rests on, see `open_source`). Every live slice keeps its bytes.
            // A failure only means the resident set stays as it was.
            let _ = unsafe { map.unchecked_advise(UncheckedAdvice::DontNeed) };
        }
    }
}

impl Source {
    /// Ask for the map's faults to read the file in huge pages (`MADV_HUGEPAGE`): a cold
    /// page the walk meets then comes in with the 2 MiB around it, one large page-cache
    /// folio, not 128 KiB of small ones; and a warm file whose cache holds large folios is
    /// mapped a folio at a time. A hint only: a kernel or filesystem without large folios
    /// ignores it (or refuses it, which changes nothing either).
    pub fn advise_huge_pages(&self) {
        if let Source::Mapped { map, .. } = self {
            let _ = map.advise(memmap2::Advice::HugePage);
        }
    }

    /// Whether the system page holding `bytes[off]` is in the page cache (`mincore`):
    /// `None` for an owned buffer, an offset outside the map, or when the call fails.
    pub fn resident(&self, off: usize) -> Option<bool> {
        let Source::Mapped { map, .. } = self else {
            return None;
        };
        let page = system_page_size()?;
        let start = off - off % page;
        let range = map.get(start..off.checked_add(1)?)?;
        let mut vec = [0u8; 1];
        // SAFETY: `range` is inside the live map and starts on a page boundary (the map's
        // base is page-aligned, and `start` a multiple of the page size), as mincore(2)
        // requires; it spans one page, so the kernel writes the one byte of `vec`. mincore
        // only reports residency: it reads nothing from the map and changes nothing.
        let rc = unsafe {
            libc::mincore(
                range.as_ptr() as *mut libc::c_void,
                range.len(),
                vec.as_mut_ptr(),
            )
        };
        (rc == 0).then_some(vec[0] & 1 == 1)
    }

    /// Read `buf.len()` bytes of the file at `off` through the file, not the map (so the
    /// read leaves the page cache holding them and this process's resident set as it was).
    /// Bytes read; 0 at the end or for an owned buffer.
    pub fn read_file_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        match self {
            Source::Mapped { _file, .. } => _file.read_at(buf, off),
            Source::Owned(_) => Ok(0),
        }
    }
}

/// The kernel's page size, which mincore counts in.
fn system_page_size() -> Option<usize> {
    // SAFETY: sysconf reads a constant of the system; it takes no pointers.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0)
}

/// Bytes a hint asks for: eight cache lines, a page header and its first elements, or an
/// entry and what follows it. Measured on a real etcd member (1 GB, ~900-byte entries):
/// hashkv 226 -> 191 ms and analyze 443 -> 395 ms against two lines; four lines gained
/// less, sixteen or more lost again (the hints then push out lines still in use).
const PREFETCH_BYTES: usize = 512;

/// Hint the CPU to start loading the start of `bytes` (a page a walk reads next): a walk
/// then waits for several pages' memory at once instead of one after another. A hint only:
/// nothing is read, and a page not yet mapped is simply skipped by the CPU.
#[inline]
pub fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes[..bytes.len().min(PREFETCH_BYTES)].chunks(64) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: `prefetch` is a hint that never faults and reads nothing into the program
        // (the pointer comes from a live slice anyway); it needs SSE, which every x86_64
        // CPU has (it is in the target's baseline).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Hint the CPU to start loading the cache lines of `v` (a table slot a pass reads a few
/// steps later): see [`prefetch`].
#[inline]
pub fn prefetch_value<T>(v: &T) {
    // SAFETY: `v` is a live reference, so its bytes are readable for its size.
    let bytes = unsafe {
        std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>())
    };
    prefetch(bytes);
}

/// Allocations this large and larger are mapped on their own ([`map_large_allocations`]).
const MMAP_THRESHOLD_BYTES: i32 = 128 << 10;

/// Have glibc's `malloc` map every allocation of [`MMAP_THRESHOLD_BYTES`] and more on its
/// own, so that freeing it gives the memory back. By default glibc raises that threshold
/// to the size of each large block freed, after which blocks of the passes' tables (MiB
/// each, freed chunk by chunk as two tables merge) come from its heap and stay resident
/// once freed: `analyze` held ~10 MiB more at its peak (46 vs 36 MiB on a 1 GB member).
/// Call once, before any thread starts. No effect on other C libraries.
pub fn map_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tuning parameter of the allocator; it takes no pointers.
    // Called before any other thread exists, it races with no allocation.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
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
