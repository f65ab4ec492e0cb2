//! The page map: what every page below the high-water mark is used for, which bucket owns
//! it, and what the freelist says (Go's `tx.check` reachability, bb136 `tx.go`).

use crate::error::DamageKind;
use std::collections::HashMap;

use crate::format::PageId;
use crate::format::freelist::FreelistView;
use crate::format::page::PageKind;

use super::db::Db;
use super::node::Node;
use super::split::{Split, walk_split};
use super::walk::{BucketInfo, Problem, Tee, Visitor, walk};

/// What a physical page is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PageUse {
    /// Not reached from any meta, bucket or the freelist.
    Unreached,
    Meta,
    Freelist,
    Branch,
    Leaf,
    /// A continuation page of a larger logical page (branch, leaf or freelist).
    Overflow,
}

/// How the free pages are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FreelistKind {
    /// A persisted freelist page lists them.
    Page,
    /// `NoFreelistSync` (meta freelist = 0xFFFFFFFFFFFFFFFF): every unreached page in
    /// `[2, hwm)` is free, as bbolt's `freepages()` computes at open.
    NotSynced,
}

/// A bucket as the page map records it: its parent (walk order) and where its name lies in
/// the file. Names are not copied: a hostile file can give many buckets one huge name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketName {
    /// `None` for the root bucket (which has no name).
    pub parent: Option<usize>,
    /// File offset and length of the name.
    pub offset: u64,
    pub len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageMap {
    pub uses: Vec<PageUse>,
    /// Owning bucket index (walk order, root = 0) of branch/leaf/overflow pages.
    pub owner: Vec<u32>,
    /// Free per the freelist page, or derived for `NotSynced`.
    pub free: Vec<bool>,
    pub freelist_kind: FreelistKind,
    /// Ids the freelist page lists (in file order), when there is one.
    pub freelist_ids: Vec<PageId>,
    /// Every bucket in walk order (the root bucket is 0); see [`PageMap::bucket_path`].
    pub buckets: Vec<BucketName>,
    pub problems: Vec<Problem>,
}

/// Page counts for `info`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PageCounts {
    /// Pages `[0, hwm)`.
    pub total: u64,
    pub meta: u64,
    pub freelist: u64,
    pub branch: u64,
    pub leaf: u64,
    pub overflow: u64,
    /// Reached from a meta, bucket tree or the freelist page.
    pub reachable: u64,
    /// Free (listed, or derived under NoFreelistSync).
    pub free: u64,
    /// Pending pages exist only in a live process's memory; on disk bbolt lists them with the
    /// free ones, so this is always 0 for a file.
    pub pending: u64,
    /// Neither reachable nor free: leaked (only possible with a freelist page).
    pub unreachable: u64,
    /// Both reachable and listed free: corruption.
    pub reachable_and_free: u64,
}

struct Mapper<'m, 'd> {
    map: &'m mut PageMap,
    db: &'d Db,
}

impl<'a> Visitor<'a> for Mapper<'_, '_> {
    fn bucket(&mut self, b: &BucketInfo<'a>) {
        let name = b.path.last().copied().unwrap_or_default();
        self.map.buckets.push(BucketName {
            parent: b.parent,
            offset: if name.is_empty() {
                0
            } else {
                self.db.offset_of(name)
            },
            len: name.len(),
        });
    }

    fn page(&mut self, bucket: usize, node: &Node<'a>, _depth: usize, span: u64) {
        mark_use(&mut self.map.uses, node, span);
        let owned = node.page as usize..(node.page.saturating_add(span) as usize);
        let n = self.map.owner.len();
        for o in &mut self.map.owner[owned.start.min(n)..owned.end.min(n)] {
            *o = bucket as u32;
        }
    }

    fn problem(&mut self, p: Problem) {
        self.map.problems.push(p);
    }
}

/// The helper thread's side of [`walk_split`]: the use of each page it reaches.
struct HelperMapper {
    uses: Vec<PageUse>,
}

impl<'a> Visitor<'a> for HelperMapper {
    fn page(&mut self, _bucket: usize, node: &Node<'a>, _depth: usize, span: u64) {
        mark_use(&mut self.uses, node, span);
    }
}

fn mark_use(uses: &mut [PageUse], node: &Node<'_>, span: u64) {
    let kind = if node.is_leaf() {
        PageUse::Leaf
    } else {
        PageUse::Branch
    };
    for (i, p) in (node.page..node.page + span).enumerate() {
        if let Some(u) = uses.get_mut(p as usize) {
            *u = if i == 0 { kind } else { PageUse::Overflow };
        }
    }
}

impl<'d> Mapper<'_, 'd> {
    /// The walk of [`walk`], on two threads where [`walk_split`] can join them exactly;
    /// `also` and `also_helper` watch the two threads' walks. On [`Split::Redo`] the map is
    /// walked again alone, and what `also` saw is not the walk's.
    fn walk_split<A: Visitor<'d>, AH: Visitor<'d> + Send>(
        &mut self,
        premarked: &[PageId],
        always: bool,
        also: &mut A,
        also_helper: &mut AH,
    ) -> Split {
        let db = self.db;
        let before = (self.map.uses.clone(), self.map.problems.len());
        let mut helper = HelperMapper {
            uses: vec![PageUse::Unreached; self.map.uses.len()],
        };
        let split = walk_split(
            db,
            premarked,
            &mut Tee(self, also),
            &mut Tee(&mut helper, also_helper),
            always,
        );
        match split {
            Split::Whole => {}
            Split::Joined { bucket } => {
                for (p, u) in helper.uses.iter().enumerate() {
                    if *u != PageUse::Unreached {
                        self.map.uses[p] = *u;
                        self.map.owner[p] = bucket as u32;
                    }
                }
            }
            Split::Redo => {
                self.map.uses = before.0;
                self.map.owner.fill(u32::MAX);
                self.map.buckets.clear();
                self.map.problems.truncate(before.1);
                walk(db, premarked, self);
            }
        }
        split
    }
}

impl PageMap {
    /// The map, the walk on two cores for a large file ([`walk_split`]).
    pub fn build(db: &Db) -> PageMap {
        Self::build_inner(db, None::<(&mut (), Option<&[PageId]>)>, false)
    }

    /// Build the map while `also` watches the same walk, when `also` wants the same pages
    /// marked as reached beforehand (`also_premarked`: metas and freelist, as here, on any
    /// sound file); otherwise `also` gets a walk of its own.
    pub fn build_with<'a>(
        db: &'a Db,
        also: &mut impl Visitor<'a>,
        also_premarked: &[PageId],
    ) -> PageMap {
        Self::build_inner(db, Some((also, Some(also_premarked))), false)
    }

    /// Build the map while `also` watches the same walk, whatever the pages marked as
    /// reached beforehand (a visitor that only reads entries, such as a content digest).
    pub fn build_watched<'a>(db: &'a Db, also: &mut impl Visitor<'a>) -> PageMap {
        Self::build_inner(db, Some((also, None)), false)
    }

    fn build_inner<'a, V: Visitor<'a>>(
        db: &'a Db,
        also: Option<(&mut V, Option<&[PageId]>)>,
        always_split: bool,
    ) -> PageMap {
        let (mut map, premarked) = Self::before_walk(db);
        let mut mapper = Mapper { map: &mut map, db };
        match also {
            None => {
                mapper.walk_split(&premarked, always_split, &mut (), &mut ());
            }
            Some((also, None)) => walk(db, &premarked, &mut Tee(&mut mapper, also)),
            Some((also, Some(also_premarked))) if premarked == also_premarked => {
                walk(db, &premarked, &mut Tee(&mut mapper, also));
            }
            Some((also, Some(also_premarked))) => {
                walk(db, &premarked, &mut mapper);
                walk(db, also_premarked, also);
            }
        }
        map.after_walk();
        map
    }

    /// The map before the walk: metas and the freelist read; and the pages they take.
    fn before_walk(db: &Db) -> (PageMap, Vec<PageId>) {
        let n = db.addressable_pages() as usize;
        let meta = *db.meta();
        let mut map = PageMap {
            uses: vec![PageUse::Unreached; n],
            owner: vec![u32::MAX; n],
            free: vec![false; n],
            freelist_kind: if meta.has_freelist_page() {
                FreelistKind::Page
            } else {
                FreelistKind::NotSynced
            },
            freelist_ids: Vec::new(),
            buckets: Vec::new(),
            problems: Vec::new(),
        };
        for p in 0..2.min(n) {
            map.uses[p] = PageUse::Meta;
        }
        let mut premarked = vec![0, 1];
        if meta.has_freelist_page() {
            map.read_freelist(db, meta.freelist, &mut premarked);
        }
        (map, premarked)
    }

    /// Under `NoFreelistSync`, every page the walk did not reach is free.
    fn after_walk(&mut self) {
        if self.freelist_kind == FreelistKind::NotSynced {
            for p in 2..self.uses.len() {
                self.free[p] = self.uses[p] == PageUse::Unreached;
            }
        }
    }

    /// [`PageMap::build`] while `also` watches the walk and `also_helper` the helper
    /// thread's part of it ([`Split`] says what each saw; on [`Split::Redo`] their
    /// figures are not the walk's).
    pub fn build_split_watched<'a, A: Visitor<'a>, AH: Visitor<'a> + Send>(
        db: &'a Db,
        also: &mut A,
        also_helper: &mut AH,
    ) -> (PageMap, Split) {
        Self::split_watched(db, also, also_helper, false)
    }

    /// [`PageMap::split_watched`] for watchers that start from `also_premarked` (the pages
    /// they count as reached before the walk, as [`PageMap::build_with`]'s): `None`, and
    /// no walk, when the map's differ (a file whose freelist page is unreadable).
    pub(crate) fn split_watched_from<'a, A: Visitor<'a>, AH: Visitor<'a> + Send>(
        db: &'a Db,
        also: &mut A,
        also_helper: &mut AH,
        also_premarked: &[PageId],
        always: bool,
    ) -> Option<(PageMap, Split)> {
        let start = Self::before_walk(db);
        (start.1 == also_premarked)
            .then(|| Self::walked_split(db, start, also, also_helper, always))
    }

    /// The split walk from the map and the pages marked before it ([`PageMap::before_walk`]).
    fn walked_split<'a, A: Visitor<'a>, AH: Visitor<'a> + Send>(
        db: &'a Db,
        (mut map, premarked): (PageMap, Vec<PageId>),
        also: &mut A,
        also_helper: &mut AH,
        always: bool,
    ) -> (PageMap, Split) {
        let split = Mapper { map: &mut map, db }.walk_split(&premarked, always, also, also_helper);
        map.after_walk();
        (map, split)
    }

    /// [`PageMap::build_split_watched`]; `always`: split a file of any size.
    pub(crate) fn split_watched<'a, A: Visitor<'a>, AH: Visitor<'a> + Send>(
        db: &'a Db,
        also: &mut A,
        also_helper: &mut AH,
        always: bool,
    ) -> (PageMap, Split) {
        Self::walked_split(db, Self::before_walk(db), also, also_helper, always)
    }

    /// [`PageMap::build`], its walk split between two threads whatever the file's size
    /// (tests and fuzzing: it must equal [`PageMap::build`] on every file).
    pub fn build_split(db: &Db) -> PageMap {
        Self::build_inner(db, None::<(&mut (), Option<&[PageId]>)>, true)
    }

    fn read_freelist(&mut self, db: &Db, id: PageId, premarked: &mut Vec<PageId>) {
        let page = match db.page(id) {
            Ok(p) => p,
            Err(e) => return self.problems.push(Problem::from(e).with_prefix("freelist")),
        };
        let off = db.page_offset(id).unwrap_or(0);
        if page.kind() != PageKind::Freelist {
            self.problems.push(Problem {
                kind: DamageKind::Freelist,
                page: id,
                offset: off + 8,
                what: format!(
                    "freelist: meta points at a {} page, not a freelist page",
                    page.kind()
                ),
            });
            return;
        }
        if id < 2 {
            return;
        }
        for (i, p) in (id..id + page.header.span()).enumerate() {
            premarked.push(p);
            if let Some(u) = self.uses.get_mut(p as usize) {
                *u = if i == 0 {
                    PageUse::Freelist
                } else {
                    PageUse::Overflow
                };
            }
        }
        let view = match FreelistView::parse(&page.header, page.data) {
            Ok(v) => v,
            Err(e) => {
                return self.problems.push(Problem {
                    page: id,
                    offset: off + e.offset as u64,
                    kind: e.kind,
                    what: format!("freelist: {}", e.what),
                });
            }
        };
        let mut seen: HashMap<PageId, ()> = HashMap::new();
        let hwm = db.hwm();
        for (i, pid) in view.ids().enumerate() {
            let at = off + (view.ids_offset + 8 * i) as u64;
            let bad = |what: String| Problem {
                kind: DamageKind::Freelist,
                page: id,
                offset: at,
                what: format!("freelist entry {i}: page {pid}: {what}"),
            };
            if pid < 2 {
                self.problems.push(bad("a meta page is listed free".into()));
            } else if pid >= hwm {
                self.problems
                    .push(bad(format!("beyond the high-water mark {hwm}")));
            } else if id <= pid && pid < id + page.header.span() {
                self.problems
                    .push(bad("the freelist lists its own page".into()));
            } else if seen.insert(pid, ()).is_some() {
                self.problems
                    .push(bad("already freed (listed twice)".into()));
            } else if let Some(f) = self.free.get_mut(pid as usize) {
                *f = true;
            }
            self.freelist_ids.push(pid);
        }
    }

    /// Page counts over `[0, hwm)` of the addressable pages.
    pub fn counts(&self) -> PageCounts {
        let mut c = PageCounts {
            total: self.uses.len() as u64,
            ..Default::default()
        };
        for (u, &free) in self.uses.iter().zip(&self.free) {
            match u {
                PageUse::Meta => c.meta += 1,
                PageUse::Freelist => c.freelist += 1,
                PageUse::Branch => c.branch += 1,
                PageUse::Leaf => c.leaf += 1,
                PageUse::Overflow => c.overflow += 1,
                PageUse::Unreached => {}
            }
            let reached = *u != PageUse::Unreached;
            c.reachable += u64::from(reached);
            c.free += u64::from(free);
            c.unreachable += u64::from(!reached && !free);
            c.reachable_and_free += u64::from(reached && free);
        }
        c
    }

    /// The names from the top of bucket `index` (walk order), borrowed from `db`.
    pub fn bucket_path<'d>(&self, db: &'d Db, index: usize) -> Option<Vec<&'d [u8]>> {
        let mut names = Vec::new();
        let mut i = index;
        loop {
            let b = self.buckets.get(i)?;
            let Some(parent) = b.parent else { break };
            let start = usize::try_from(b.offset).ok()?;
            names.push(db.bytes().get(start..start.checked_add(b.len)?)?);
            // The walk numbers a parent before its children; anything else is not ours.
            if parent >= i {
                return None;
            }
            i = parent;
        }
        names.reverse();
        Some(names)
    }

    /// The owning bucket's path of page `id`, if it belongs to a bucket tree.
    pub fn owner_path<'d>(&self, db: &'d Db, id: PageId) -> Option<Vec<&'d [u8]>> {
        let o = *self.owner.get(id as usize)?;
        self.bucket_path(db, o as usize)
    }

    /// Runs of consecutive free pages: (first id, length), in page order.
    pub fn free_runs(&self) -> Vec<(PageId, u64)> {
        let mut runs = Vec::new();
        let mut start = None;
        for (i, &f) in self.free.iter().chain(std::iter::once(&false)).enumerate() {
            match (f, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    runs.push((s as PageId, (i - s) as u64));
                    start = None;
                }
                _ => {}
            }
        }
        runs
    }
}

impl Problem {
    fn with_prefix(mut self, prefix: &str) -> Problem {
        self.what = format!("{prefix}: {}", self.what);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> Vec<(String, Vec<u8>)> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");
        let mut out = Vec::new();
        for dir in ["bbolt", "etcd", "fuzz-regressions"] {
            for e in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
                let p = e.unwrap().path();
                let name = p.display().to_string();
                let keep = p.extension().is_some_and(|x| x == "db")
                    || name.ends_with("/etcd/db")
                    || (dir == "fuzz-regressions" && !name.ends_with(".md"));
                if keep {
                    out.push((name, std::fs::read(&p).unwrap()));
                }
            }
        }
        out
    }

    /// The two-thread walk gives the one-thread walk's map, on sound files and on damaged
    /// ones (40 copies of each, one byte of a page's header or first elements garbled).
    #[test]
    fn split_walk_builds_the_same_map() {
        for (name, bytes) in fixtures() {
            let Ok(db) = Db::from_bytes(bytes.clone()) else {
                continue;
            };
            assert_eq!(PageMap::build_split(&db), PageMap::build(&db), "{name}");
            let ps = db.page_size() as usize;
            for (at, bad) in
                crate::reader::garbled_copies(&bytes, ps, 0x9e37_79b9_7f4a_7c15, 40, 0, 63)
            {
                let Ok(db) = Db::from_bytes(bad) else {
                    continue;
                };
                assert_eq!(
                    PageMap::build_split(&db),
                    PageMap::build(&db),
                    "{name}, byte {at} garbled"
                );
            }
        }
    }
}
