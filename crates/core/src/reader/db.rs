//! An open database: page size discovery, both metas, the active one, and bounds-checked
//! page access (Go: `db.mmap`, `db.meta`, `db.page`, bb136 `db.go`).

use std::path::Path;

use crate::error::{DamageKind, Error, Result};
use crate::format::PageId;
use crate::format::meta::{MAX_PAGE_SIZE, MIN_PAGE_SIZE, Meta, MetaError};
use crate::format::page::{PAGE_HEADER_SIZE, PageHeader, PageKind};

use super::file::{Source, open_source};

/// How to open a file.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// Take a shared flock and refuse a file that a writer holds (default: true).
    pub lock: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { lock: true }
    }
}

/// One of the two meta pages, decoded or the reason it is unusable.
#[derive(Debug, Clone)]
pub struct MetaSlot {
    /// Byte offset of the meta page in the file.
    pub offset: u64,
    pub meta: Result<Meta, MetaError>,
}

impl MetaSlot {
    pub fn valid(&self) -> Option<&Meta> {
        self.meta.as_ref().ok()
    }
}

/// A logical page in the file: header plus all its bytes (overflow pages included).
#[derive(Debug, Clone, Copy)]
pub struct PageRef<'a> {
    pub id: PageId,
    pub header: PageHeader,
    pub data: &'a [u8],
}

impl PageRef<'_> {
    pub fn kind(&self) -> PageKind {
        self.header.kind()
    }
}

/// Bytes of pages one walk reads between two [`Db::release_mapped`] calls, at most (the
/// default of [`Db::set_resident_budget`] is a 64th of the file, within these bounds).
pub const RELEASE_EVERY_BYTES: u64 = 16 << 20;
/// ... and at least.
pub const RELEASE_EVERY_MIN_BYTES: u64 = 4 << 20;

/// Keeps a walk's resident set small: every page of a mapped file counts in the process's
/// RSS once read, so a walk over a 1 GiB file would hold ~1 GiB (page cache, but mapped).
/// A walk counts the bytes of the pages it reads, and every [`Db::resident_budget`] bytes
/// the map's pages are let go: they stay in the page cache, and only the next touch of each
/// costs a minor fault. With the kernel's fault-around (it maps up to 64 KiB around a fault)
/// the resident set runs to a few times the budget.
#[derive(Debug, Clone, Copy)]
pub struct ResidentBudget {
    read: u64,
    every: u64,
    /// Bytes read but not yet added to [`Db::bytes_read`]: published in steps, so threads
    /// walking at once do not share one counter's cache line page by page.
    unpublished: u64,
}

/// How often a walk publishes its progress to [`Db::bytes_read`].
const PUBLISH_EVERY_BYTES: u64 = 1 << 20;

impl ResidentBudget {
    pub fn new(db: &Db) -> ResidentBudget {
        ResidentBudget {
            read: 0,
            every: db.resident_budget(),
            unpublished: 0,
        }
    }

    #[inline]
    pub fn read(&mut self, db: &Db, bytes: u64) {
        self.unpublished += bytes;
        if self.unpublished >= PUBLISH_EVERY_BYTES {
            db.bytes_read
                .fetch_add(self.unpublished, std::sync::atomic::Ordering::Relaxed);
            self.unpublished = 0;
        }
        self.reread(db, bytes);
    }

    /// Bytes read a second time (a pass over slices an earlier walk kept): they count
    /// towards the next release but not as progress.
    #[inline]
    pub fn reread(&mut self, db: &Db, bytes: u64) {
        self.read += bytes;
        if self.read >= self.every {
            self.read = 0;
            db.release_mapped();
        }
    }
}

pub struct Db {
    source: Source,
    page_size: u32,
    metas: [MetaSlot; 2],
    active: usize,
    /// See [`ResidentBudget`]; `u64::MAX`: never release.
    resident_budget: std::sync::atomic::AtomicU64,
    /// Bytes of pages the walks and cursors have read so far (all threads): what a
    /// progress bar shows ([`Db::bytes_read`]).
    bytes_read: std::sync::atomic::AtomicU64,
}

impl Db {
    pub fn open(path: impl AsRef<Path>, opts: OpenOptions) -> Result<Db> {
        Db::from_source(open_source(path.as_ref(), opts.lock)?)
    }

    /// A database over bytes in memory (tests, fuzzing).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Db> {
        Db::from_source(Source::Owned(bytes))
    }

    fn from_source(source: Source) -> Result<Db> {
        let (page_size, metas, active) = read_metas(source.bytes())?;
        Ok(Db::assemble(source, page_size, metas, active))
    }

    fn assemble(source: Source, page_size: u32, metas: [MetaSlot; 2], active: usize) -> Db {
        let size = source.bytes().len() as u64;
        Db {
            source,
            page_size,
            metas,
            active,
            resident_budget: (size / 64)
                .clamp(RELEASE_EVERY_MIN_BYTES, RELEASE_EVERY_BYTES)
                .into(),
            bytes_read: 0.into(),
        }
    }

    /// Salvage only: open a file whose two metas are both unusable, through the meta
    /// `found` makes from the file's bytes (a page size and root found by scanning), or
    /// the metas' error when it finds none.
    pub fn open_with_found_meta(
        path: impl AsRef<Path>,
        opts: OpenOptions,
        found: impl FnOnce(&[u8]) -> Option<Meta>,
    ) -> Result<Db> {
        Db::with_found_meta(open_source(path.as_ref(), opts.lock)?, found)
    }

    /// [`Db::open_with_found_meta`] over bytes in memory (fuzzing).
    pub fn from_bytes_with_found_meta(
        bytes: Vec<u8>,
        found: impl FnOnce(&[u8]) -> Option<Meta>,
    ) -> Result<Db> {
        Db::with_found_meta(Source::Owned(bytes), found)
    }

    fn with_found_meta(source: Source, found: impl FnOnce(&[u8]) -> Option<Meta>) -> Result<Db> {
        let (meta0, meta1) = match read_metas(source.bytes()) {
            Ok((page_size, metas, active)) => {
                return Ok(Db::assemble(source, page_size, metas, active));
            }
            Err(Error::NoValidMeta { meta0, meta1 }) => (meta0, meta1),
            Err(e) => return Err(e),
        };
        let Some(m) = found(source.bytes()) else {
            return Err(Error::NoValidMeta { meta0, meta1 });
        };
        let metas = [
            MetaSlot {
                offset: 0,
                meta: Ok(m),
            },
            MetaSlot {
                offset: u64::from(m.page_size),
                meta: Err(meta1),
            },
        ];
        Ok(Db::assemble(source, m.page_size, metas, 0))
    }

    /// Salvage only: read the file through `meta` from now on (the active meta with its
    /// root page replaced by a copy found elsewhere in the file). Its page size must be
    /// the file's.
    pub fn replace_meta_for_salvage(&mut self, meta: Meta) {
        assert_eq!(meta.page_size, self.page_size, "the file's page size");
        self.metas[self.active].meta = Ok(meta);
    }

    /// Bytes of pages read so far by every walk and cursor over this db, on all threads
    /// (a page read twice counts twice). For progress: the binary polls it.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn bytes(&self) -> &[u8] {
        self.source.bytes()
    }

    pub fn file_size(&self) -> u64 {
        self.bytes().len() as u64
    }

    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    pub fn metas(&self) -> &[MetaSlot; 2] {
        &self.metas
    }

    /// Index (0 or 1) of the meta bbolt would use.
    pub fn active_index(&self) -> usize {
        self.active
    }

    pub fn meta(&self) -> &Meta {
        self.metas[self.active]
            .valid()
            .expect("the active meta is valid by construction")
    }

    /// The high-water mark: pages `[0, hwm)` are in use.
    pub fn hwm(&self) -> PageId {
        self.meta().pgid
    }

    /// Whole pages the file holds.
    pub fn file_pages(&self) -> u64 {
        self.file_size() / u64::from(self.page_size)
    }

    /// Pages that exist both below the high-water mark and in the file: the bound for any
    /// per-page table, so a hostile `pgid` cannot make us allocate.
    pub fn addressable_pages(&self) -> u64 {
        self.hwm().min(self.file_pages())
    }

    /// Bytes a walk reads between releases of the map ([`ResidentBudget`]).
    pub fn resident_budget(&self) -> u64 {
        self.resident_budget
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `None`: walks keep every page they read mapped. Faster when several threads walk at
    /// once (each release of the map interrupts them all); the resident set then grows to
    /// what was read (page cache, not heap).
    pub fn set_resident_budget(&self, every: Option<u64>) {
        self.resident_budget.store(
            every.unwrap_or(u64::MAX).max(1),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    pub(super) fn source(&self) -> &Source {
        &self.source
    }

    /// Let go of the mapped pages read so far ([`Source::release`]); see [`ResidentBudget`].
    pub fn release_mapped(&self) {
        self.source.release();
    }

    /// Hint that page `id` is read soon ([`super::file::prefetch`]); out of range: nothing.
    #[inline]
    pub fn prefetch_page(&self, id: PageId) {
        if let Some(off) = self.page_offset(id).and_then(|o| usize::try_from(o).ok())
            && let Some(b) = self.bytes().get(off..)
        {
            super::file::prefetch(b);
        }
    }

    /// Hint that the bytes from the start of `s` (a slice of this database) are read soon.
    #[inline]
    pub fn prefetch_from(&self, s: &[u8]) {
        if let Some(b) = usize::try_from(self.offset_of(s))
            .ok()
            .and_then(|o| self.bytes().get(o..))
        {
            super::file::prefetch(b);
        }
    }

    /// Byte offset of page `id`, when it fits in `u64`.
    pub fn page_offset(&self, id: PageId) -> Option<u64> {
        id.checked_mul(u64::from(self.page_size))
    }

    /// Byte offset in the file of a slice borrowed from this database.
    pub fn offset_of(&self, s: &[u8]) -> u64 {
        (s.as_ptr() as usize).wrapping_sub(self.bytes().as_ptr() as usize) as u64
    }

    /// The `len` bytes at `offset` ([`Db::offset_of`]'s inverse: a slice kept as its
    /// place, to save its memory); `None` past the end.
    pub fn bytes_at(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let at = usize::try_from(offset).ok()?;
        self.bytes().get(at..at.checked_add(len)?)
    }

    /// Damage found in a slice borrowed from this database: the error names its page and
    /// file offset.
    pub fn damage_at(&self, s: &[u8], kind: DamageKind, what: impl Into<String>) -> Error {
        let at = self.offset_of(s);
        Error::corrupt(kind, self.page_at(at), at, what)
    }

    /// The page that contains byte `offset`.
    pub fn page_at(&self, offset: u64) -> PageId {
        offset / u64::from(self.page_size)
    }

    /// Page `id` with its overflow, checked against the high-water mark and the file; the
    /// header id must equal the position (bbolt >= 1.3.7 `fastCheck`).
    pub fn page(&self, id: PageId) -> Result<PageRef<'_>> {
        let hwm = self.hwm();
        let off = self.page_offset(id).unwrap_or(u64::MAX);
        if id >= hwm {
            return Err(Error::corrupt(
                DamageKind::Bounds,
                id,
                off,
                format!("page id beyond the high-water mark {hwm}"),
            ));
        }
        let bytes = self.bytes();
        let ps = u64::from(self.page_size);
        let head = bytes
            .get(off as usize..)
            .filter(|b| b.len() >= PAGE_HEADER_SIZE)
            .ok_or_else(|| {
                Error::corrupt(
                    DamageKind::Bounds,
                    id,
                    off,
                    format!(
                        "page lies past the end of the file ({} bytes): truncated?",
                        bytes.len()
                    ),
                )
            })?;
        let header =
            PageHeader::parse(head).map_err(|e| Error::corrupt(e.kind, id, off, e.what))?;
        if header.id != id {
            return Err(Error::corrupt(
                DamageKind::PageType,
                id,
                off,
                format!(
                    "header says page {}, but the page sits at position {id}",
                    header.id
                ),
            ));
        }
        let span = header.span();
        if id.checked_add(span).is_none_or(|end| end > hwm) {
            return Err(Error::corrupt(
                DamageKind::Bounds,
                id,
                off + 12,
                format!(
                    "overflow {} runs past the high-water mark {hwm}",
                    header.overflow
                ),
            ));
        }
        let len = span * ps;
        let data = bytes
            .get(off as usize..(off + len) as usize)
            .ok_or_else(|| {
                Error::corrupt(DamageKind::Bounds,
                    id,
                    off + 12,
                    format!(
                        "page with overflow {} runs past the end of the file ({} bytes): truncated?",
                        header.overflow,
                        bytes.len()
                    ),
                )
            })?;
        Ok(PageRef { id, header, data })
    }
}

/// The page size, both metas and the active one's index (`db.meta`, bb136 `db.go`).
fn read_metas(bytes: &[u8]) -> Result<(u32, [MetaSlot; 2], usize)> {
    let size = bytes.len() as u64;
    if size < 2 * u64::from(MIN_PAGE_SIZE) {
        return Err(Error::TooSmall { size });
    }
    let meta0 = Meta::parse(bytes).and_then(|m| m.validate().map(|()| m));
    // Page size: meta 0's when valid; otherwise probe meta 1 at 1 KiB .. 16 MiB as
    // bbolt >= 1.3.7 does (`getPageSizeFromSecondMeta`).
    let page_size = match &meta0 {
        Ok(m) => Some(m.page_size),
        Err(_) => probe_meta1(bytes),
    };
    let Some(page_size) = page_size else {
        return Err(Error::NoValidMeta {
            meta0: meta0.unwrap_err(),
            meta1: MetaError::NotFound,
        });
    };
    let off1 = page_size as usize;
    let meta1 = match bytes.get(off1..) {
        None => Err(MetaError::Truncated),
        Some(b) => Meta::parse(b).and_then(|m| {
            m.validate()?;
            if m.page_size != page_size {
                return Err(MetaError::PageSizeMismatch {
                    found: m.page_size,
                    expected: page_size,
                });
            }
            Ok(m)
        }),
    };
    // `db.meta()`: the candidate is meta 1 only when its txid is strictly higher;
    // fall back to the other one when the candidate is invalid.
    let active = match (&meta0, &meta1) {
        (Ok(m0), Ok(m1)) => usize::from(m1.txid > m0.txid),
        (Ok(_), Err(_)) => 0,
        (Err(_), Ok(_)) => 1,
        (Err(e0), Err(e1)) => {
            return Err(Error::NoValidMeta {
                meta0: e0.clone(),
                meta1: e1.clone(),
            });
        }
    };
    let metas = [
        MetaSlot {
            offset: 0,
            meta: meta0,
        },
        MetaSlot {
            offset: off1 as u64,
            meta: meta1,
        },
    ];
    Ok((page_size, metas, active))
}

/// Find meta 1 when meta 0 is unusable: try each page size bbolt allows.
fn probe_meta1(bytes: &[u8]) -> Option<u32> {
    let mut ps = MIN_PAGE_SIZE;
    while ps <= MAX_PAGE_SIZE {
        let b = bytes.get(ps as usize..)?;
        if let Ok(m) = Meta::parse(b)
            && m.validate().is_ok()
            && m.page_size == ps
        {
            return Some(ps);
        }
        ps <<= 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slice kept as its place comes back as the same bytes; a place past the end, or
    /// one whose end overflows, gives none.
    #[test]
    fn bytes_at_is_offset_of_inverted() {
        let p = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/etcd/db"
        ));
        let db = Db::from_bytes(std::fs::read(p).unwrap()).unwrap();
        let s = &db.bytes()[5000..5017];
        assert_eq!(db.bytes_at(db.offset_of(s), s.len()), Some(s));
        assert_eq!(db.bytes_at(db.file_size(), 0), Some(&[][..]));
        assert_eq!(db.bytes_at(db.file_size(), 1), None);
        assert_eq!(db.bytes_at(u64::MAX, 2), None);
    }
}
