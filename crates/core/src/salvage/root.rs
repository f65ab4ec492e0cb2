//! The root bucket found again when its page, or both meta pages, are gone.
//!
//! Without a usable meta the page size is the one at which the most pages' header ids
//! match their position (a wrong size matches almost none). Without a readable root page,
//! bbolt's copy-on-write helps again: every write transaction writes a new copy of the root
//! bucket's leaf and frees the old one, so earlier copies sit in free pages. A candidate is
//! an intact leaf page whose elements are all buckets, in key order, each of which opens.
//! Of etcd files' candidates (holding `key` and `meta`) the newest is the one whose `meta`
//! bucket has the highest `consistent_index` (etcd raises it in every transaction it
//! commits); of other files', the one with the most sub-buckets whose trees open.

use std::path::Path;

use serde::Serialize;

use crate::error::{DamageKind, Error, Result};
use crate::etcd::{EtcdMeta, KEY_BUCKET, META_BUCKET};
use crate::format::PageId;
use crate::format::bucket::BucketHeader;
use crate::format::meta::{
    MAX_PAGE_SIZE, MIN_PAGE_SIZE, Meta, MetaFields, PGID_NO_FREELIST, write_meta_page,
};
use crate::format::page::{PAGE_HEADER_SIZE, PageHeader, PageKind};
use crate::reader::{Bucket, Db, OpenOptions};

/// Page sizes tried when both metas are gone: bbolt's default is the OS page size, and
/// `Options.PageSize` any power of two; scanning stops at 64 KiB to stay cheap.
const SCANNED_PAGE_SIZE_MAX: u32 = 1 << 16;

/// How the root bucket was found when the file's own could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct RebuiltRoot {
    /// The page used as the root bucket's: an earlier copy, so later transactions' changes
    /// to the buckets it lists may be missing.
    pub page: u64,
    pub offset: u64,
    /// What was wrong with the file's own root.
    pub why: String,
    /// Both metas were unusable: the page size was found by scanning.
    pub page_size_scanned: bool,
    /// Pages that could have been the root bucket's.
    pub candidates: u64,
    /// The chosen copy's `meta/consistent_index` (etcd files).
    pub consistent_index: Option<u64>,
    /// The highest compaction (finished or scheduled) any candidate's `meta` records: no
    /// revision at or below it is taken from outside the chosen tree.
    #[serde(skip)]
    pub compact_guard: Option<i64>,
    /// The chosen copy holds etcd's `key` and `meta` buckets.
    #[serde(skip)]
    pub etcd: bool,
}

/// Open `path` for salvage: as [`Db::open`], but with both metas unusable the page size
/// is scanned for, and with the root bucket's page unreadable an earlier copy of it is
/// used (`None` when the file's own root reads, or no copy was found).
pub fn open(path: &Path, opts: OpenOptions) -> Result<(Db, Option<RebuiltRoot>)> {
    let scanned = std::cell::Cell::new(false);
    let db = Db::open_with_found_meta(path, opts, |bytes| scanning(bytes, &scanned))?;
    rebuilt(db, scanned.get())
}

/// [`open`] over bytes in memory (fuzzing).
pub fn from_bytes(bytes: Vec<u8>) -> Result<(Db, Option<RebuiltRoot>)> {
    let scanned = std::cell::Cell::new(false);
    let db = Db::from_bytes_with_found_meta(bytes, |bytes| scanning(bytes, &scanned))?;
    rebuilt(db, scanned.get())
}

/// The provisional meta of a file whose metas are both gone; `scanned` records the call.
fn scanning(bytes: &[u8], scanned: &std::cell::Cell<bool>) -> Option<Meta> {
    scanned.set(true);
    let ps = scan_page_size(bytes)?;
    provisional_meta(ps, bytes.len() as u64 / u64::from(ps))
}

/// `db` with an earlier copy of its root page when its own does not read (or `scanned`:
/// its metas were both gone; then no copy found is an error).
fn rebuilt(mut db: Db, scanned: bool) -> Result<(Db, Option<RebuiltRoot>)> {
    let why = if scanned {
        Some("both meta pages are unusable".to_string())
    } else {
        root_damage(&db)
    };
    let Some(why) = why else {
        return Ok((db, None));
    };
    let (found, candidates, guard) = best_root(&db);
    let Some(best) = found else {
        if scanned {
            return Err(Error::corrupt(
                DamageKind::Meta,
                0,
                0,
                format!(
                    "both meta pages are unusable, and no page of the file (read as {} byte \
                     pages) is a copy of the root bucket's: nothing to salvage",
                    db.page_size()
                ),
            ));
        }
        return Ok((db, None));
    };
    let mut meta = *db.meta();
    meta.root.root = best.page;
    db.replace_meta_for_salvage(meta);
    let rebuilt = RebuiltRoot {
        page: best.page,
        offset: db.page_offset(best.page).unwrap_or(0),
        why,
        page_size_scanned: scanned,
        candidates,
        consistent_index: best.consistent_index,
        compact_guard: guard,
        etcd: best.etcd,
    };
    Ok((db, Some(rebuilt)))
}

/// Why the active meta's root page cannot be read, or `None` when it can.
fn root_damage(db: &Db) -> Option<String> {
    let root = db.meta().root.root;
    match db.node(root) {
        Ok(_) => None,
        Err(e) => Some(format!("the root bucket's page {root} does not read: {e}")),
    }
}

/// The page size at which the most pages from 2 on carry their own id in their header
/// with one page type; `None` when none does at any size.
fn scan_page_size(bytes: &[u8]) -> Option<u32> {
    let mut best: Option<(u64, u32)> = None;
    let mut ps = MIN_PAGE_SIZE;
    while ps <= SCANNED_PAGE_SIZE_MAX.min(MAX_PAGE_SIZE) {
        let pages = bytes.len() as u64 / u64::from(ps);
        let matching = (2..pages)
            .filter(|&id| {
                let at = (id * u64::from(ps)) as usize;
                bytes
                    .get(at..at + PAGE_HEADER_SIZE)
                    .and_then(|h| PageHeader::parse(h).ok())
                    .is_some_and(|h| h.id == id && h.kind() != PageKind::Meta)
            })
            .count() as u64;
        if matching > best.map_or(0, |b| b.0) {
            best = Some((matching, ps));
        }
        ps <<= 1;
    }
    best.map(|b| b.1)
}

/// A meta for a file whose metas are gone: page size `ps`, every whole page in use, no
/// freelist page, and a root to be found (page 0 until then).
fn provisional_meta(ps: u32, pages: u64) -> Option<Meta> {
    let mut page = vec![0u8; ps as usize];
    let fields = MetaFields {
        page_size: ps,
        flags: 0,
        root: BucketHeader {
            root: 0,
            sequence: 0,
        },
        freelist: PGID_NO_FREELIST,
        pgid: pages,
        txid: 1,
    };
    write_meta_page(&mut page, 0, &fields);
    Meta::parse(&page).ok()
}

struct Candidate {
    page: PageId,
    etcd: bool,
    consistent_index: Option<u64>,
    /// The compaction (finished or scheduled) its `meta` records (etcd).
    compacted: Option<i64>,
    /// Sub-buckets whose root page (or inline image) opens.
    opening: usize,
}

impl Candidate {
    /// Newer (etcd: higher consistent index) first, then more of it readable.
    fn rank(&self) -> (bool, u64, usize, PageId) {
        (
            self.etcd,
            self.consistent_index.unwrap_or(0),
            self.opening,
            self.page,
        )
    }
}

/// The best candidate for the root bucket's page, how many there were, and the highest
/// compaction any etcd candidate's `meta` records.
fn best_root(db: &Db) -> (Option<Candidate>, u64, Option<i64>) {
    let mut best: Option<Candidate> = None;
    let (mut n, mut guard) = (0, None::<i64>);
    for id in 2..db.addressable_pages() {
        let Some(c) = candidate(db, id) else {
            continue;
        };
        n += 1;
        guard = guard.max(c.compacted);
        if best.as_ref().is_none_or(|b| c.rank() > b.rank()) {
            best = Some(c);
        }
    }
    (best, n, guard)
}

/// Page `id` when it can be the root bucket's: an intact leaf of bucket elements in key
/// order, each opening.
fn candidate(db: &Db, id: PageId) -> Option<Candidate> {
    let node = db.node(id).ok()?;
    if !node.is_leaf() || node.count() == 0 {
        return None;
    }
    let (mut prev, mut opening, mut names) = (None::<&[u8]>, 0, Vec::new());
    for i in 0..node.count() {
        let e = node.leaf(i).ok()?;
        if !e.is_bucket() || e.key.is_empty() || prev.is_some_and(|p| e.key <= p) {
            return None;
        }
        let sub = Bucket::open(db, e.value).ok()?;
        if sub.is_inline() || db.node(sub.root_page()).is_ok() {
            opening += 1;
        }
        prev = Some(e.key);
        names.push(e.key);
    }
    let etcd = names.contains(&KEY_BUCKET) && names.contains(&META_BUCKET);
    let meta = etcd
        .then(|| EtcdMeta::read_under(db, Bucket::at_page(db, id)).ok())
        .flatten();
    Some(Candidate {
        page: id,
        etcd,
        consistent_index: meta.as_ref().and_then(|m| m.consistent_index),
        compacted: meta.map(|m| {
            m.finished_compact_rev
                .max(m.scheduled_compact_rev)
                .unwrap_or(-1)
        }),
        opening,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_size_is_the_one_whose_headers_name_their_pages() {
        for ps in [4096u32, 16384] {
            let mut bytes = vec![0u8; ps as usize * 20];
            for id in 2..20u64 {
                let at = id as usize * ps as usize;
                PageHeader {
                    id,
                    flags: crate::format::page::LEAF_PAGE_FLAG,
                    count: 0,
                    overflow: 0,
                }
                .write(&mut bytes[at..]);
            }
            assert_eq!(scan_page_size(&bytes), Some(ps));
        }
        assert_eq!(scan_page_size(&[0u8; 1 << 16]), None);
    }
}
