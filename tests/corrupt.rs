//! A corruption matrix over the real fixtures, as ordinary tests.
//!
//! Every committed fixture made by Go bbolt (testdata/bbolt/*.db) and by etcd
//! (testdata/etcd/db) is damaged in memory in many ways: truncations, page header fields,
//! element fields, metas, the freelist pointer, shared children and cycles. For every case the
//! whole read path runs (open, page map, check, info, page list, page detail, visit, dump):
//! it must not panic and must finish. Where the damage is always detectable, `check` must
//! report it (or the open must fail), and for page header damage the report must name the
//! damaged page and a byte offset inside it.
//!
//! Synthetic files (a DAG of branch pages, nested inline buckets, deep trees) and inputs found
//! by the fuzz targets (testdata/fuzz-regressions/) are kept here as regression tests.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use boltpack::Db;
use boltpack::check::check_with_map;
use boltpack::format::bucket::{BUCKET_HEADER_SIZE, BucketHeader};
use boltpack::format::element::{
    BRANCH_ELEMENT_FIELDS, BranchElementRaw, LEAF_ELEMENT_FIELDS, LeafElementRaw, NodeView,
};
use boltpack::format::meta::{
    MAGIC, MetaField, MetaFields, VERSION, reseal_meta_page, write_meta_page,
};
use boltpack::format::page::{
    BRANCH_PAGE_FLAG, COUNT_OFFSET, HEADER_FIELDS, LEAF_PAGE_FLAG, OVERFLOW_OFFSET,
    PAGE_HEADER_SIZE, PageHeader,
};
use boltpack::format::{DamageKind, Field, PageId};
use boltpack::reader::Problem;
use boltpack::reader::{Bucket, visit_all};
use boltpack::reader::{PageMap, PageUse};
use boltpack_report::dump::{DumpOptions, dump};
use boltpack_report::info::Info;
use boltpack_report::pages::{page_detail, page_lines, render_page_lines};
use common::agree::{mvcc_copies_agree, one_walk_agrees, split_pass_agrees};

/// Sanity guard only (not a performance test): a whole fixture's matrix in a debug build.
const FIXTURE_BOUND: Duration = Duration::from_secs(600);
/// Tree pages damaged per fixture (besides metas and the freelist page), chosen evenly: enough
/// to meet every kind of page (root, inner, bucket roots, leaves of several buckets) while each
/// fixture's test stays under ~20 s in a debug build.
const TREE_PAGES: usize = 30;

use common::testdata;

// ---------------------------------------------------------------------------------------
// Byte helpers

fn put(b: &mut [u8], at: usize, width: usize, v: u64) {
    b[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
}

fn get(b: &[u8], at: usize, width: usize) -> u64 {
    let mut w = [0u8; 8];
    w[..width].copy_from_slice(&b[at..at + width]);
    u64::from_le_bytes(w)
}

/// Recompute the checksum of the meta page at `at` after a field was changed.
fn fix_meta_checksum(b: &mut [u8], at: usize) {
    reseal_meta_page(&mut b[at..]);
}

/// Meta fields' offsets from the start of a meta page.
const MAGIC_AT: usize = MetaField::Magic.offset();
const VERSION_AT: usize = MetaField::Version.offset();
const PAGE_SIZE_AT: usize = MetaField::PageSize.offset();
const ROOT_AT: usize = MetaField::Root.offset();
const FREELIST_AT: usize = MetaField::Freelist.offset();
const PGID_AT: usize = MetaField::Pgid.offset();
const TXID_AT: usize = MetaField::Txid.offset();

fn max_of(width: usize) -> u64 {
    if width == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    }
}

// ---------------------------------------------------------------------------------------
// Running one case

/// What the read path said about one damaged file.
struct Outcome {
    open_err: Option<boltpack::Error>,
    problems: Vec<Problem>,
    /// Validity of meta 0 and 1 and the active index, when the file opened.
    metas: Option<([bool; 2], usize)>,
    visit: Option<Result<u64, boltpack::Error>>,
}

impl Outcome {
    fn detected(&self) -> bool {
        self.open_err.is_some() || !self.problems.is_empty()
    }

    fn summary(&self) -> String {
        match &self.open_err {
            Some(e) => format!("open failed: {e}"),
            None => {
                let mut s = format!("{} problems", self.problems.len());
                for p in self.problems.iter().take(6) {
                    s.push_str(&format!("\n    {p}"));
                }
                s
            }
        }
    }
}

/// How much of the read path to run besides open, map, check, info, page list and visit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// Also `page_detail` of every page id and a full `dump`.
    Full,
    /// Also `page_detail` of the given pages only.
    Pages,
}

/// Run the whole read path over `bytes`. Panics propagate (that is the test).
fn exercise(bytes: Vec<u8>, depth: Depth, detail: &[PageId]) -> Outcome {
    let db = match Db::from_bytes(bytes) {
        Ok(db) => db,
        Err(e) => {
            return Outcome {
                open_err: Some(e),
                problems: Vec::new(),
                metas: None,
                visit: None,
            };
        }
    };
    let map = PageMap::build(&db);
    let problems = check_with_map(&db, &map);

    let info = Info::gather(&db, &map);
    let _ = info.render();
    serde_json::to_string(&info).expect("info serializes");
    let valid = [
        db.metas()[0].valid().is_some(),
        db.metas()[1].valid().is_some(),
    ];
    for (i, m) in info.metas.iter().enumerate() {
        assert_eq!(m.valid, valid[i], "info and the db disagree about meta {i}");
        assert_eq!(m.valid, m.error.is_none());
    }
    assert!(valid[info.active_meta], "the active meta is valid");
    assert_eq!(info.active_meta, db.active_index());

    let lines = page_lines(&db, &map);
    assert_eq!(lines.len(), map.uses.len());
    let _ = render_page_lines(&lines);
    serde_json::to_string(&lines).expect("page lines serialize");

    let mut n = 0u64;
    let visit = visit_all(Bucket::root_of(&db), &mut Vec::new(), &mut |_, _, _| {
        n += 1;
        Ok(())
    })
    .map(|()| n);

    let last = db.hwm().min(db.file_pages());
    let mut ids: BTreeSet<PageId> = detail.iter().copied().collect();
    ids.extend([
        last,
        last + 1,
        db.hwm().saturating_sub(1),
        db.hwm(),
        u64::MAX,
    ]);
    if depth == Depth::Full {
        ids.extend(0..last);
        let mut out = Vec::new();
        let _ = dump(&db, &[], DumpOptions::default(), &mut out);
        let mut out = Vec::new();
        let _ = dump(
            &db,
            &[b"key".to_vec()],
            DumpOptions {
                etcd: true,
                hash_values: false,
            },
            &mut out,
        );
    }
    for id in ids {
        if let Ok(v) = page_detail(&db, id, 16) {
            let _ = v.to_string();
        }
    }
    Outcome {
        open_err: None,
        problems,
        metas: Some((valid, db.active_index())),
        visit: Some(visit),
    }
}

/// Run `f` on its own thread and fail if it does not finish within `limit`.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .unwrap();
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: did not finish in {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

// ---------------------------------------------------------------------------------------
// The fixture's layout, read from the pristine file

struct Fixture {
    name: String,
    bytes: Vec<u8>,
    ps: u64,
    hwm: u64,
    file_pages: u64,
    active: usize,
    root: PageId,
    freelist: Option<PageId>,
    /// Branch and leaf pages of the bucket trees.
    tree: Vec<PageId>,
    branches: BTreeSet<PageId>,
    leaves: Vec<PageId>,
    span: BTreeMap<PageId, u64>,
    /// The nearest page pointing at each tree page: its branch, or the leaf holding the value
    /// of the bucket it is the root of.
    parent: BTreeMap<PageId, PageId>,
}

impl Fixture {
    fn load(rel: &str) -> Fixture {
        let bytes = std::fs::read(testdata(rel)).unwrap();
        let db = Db::from_bytes(bytes.clone()).unwrap();
        let map = PageMap::build(&db);
        let problems = check_with_map(&db, &map);
        assert!(problems.is_empty(), "{rel} is clean: {problems:?}");
        let mut tree = Vec::new();
        let mut branches = BTreeSet::new();
        let mut leaves = Vec::new();
        let mut span = BTreeMap::new();
        let mut parent = BTreeMap::new();
        for (i, u) in map.uses.iter().enumerate() {
            let id = i as PageId;
            if let Ok(p) = db.page(id) {
                span.insert(id, p.header.span());
            }
            match u {
                PageUse::Branch => {
                    tree.push(id);
                    branches.insert(id);
                    let node = db.node(id).unwrap();
                    for e in 0..node.count() {
                        parent.insert(node.branch(e).unwrap().child, id);
                    }
                }
                PageUse::Leaf => {
                    tree.push(id);
                    leaves.push(id);
                    let node = db.node(id).unwrap();
                    for e in 0..node.count() {
                        let l = node.leaf(e).unwrap();
                        if l.is_bucket() {
                            let h = BucketHeader::parse(l.value).unwrap();
                            if !h.is_inline() {
                                parent.insert(h.root, id);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let m = db.meta();
        Fixture {
            name: rel.to_string(),
            ps: u64::from(db.page_size()),
            hwm: db.hwm(),
            file_pages: db.file_pages(),
            active: db.active_index(),
            root: m.root.root,
            freelist: m.has_freelist_page().then_some(m.freelist),
            tree,
            branches,
            leaves,
            span,
            parent,
            bytes,
        }
    }

    fn off(&self, id: PageId) -> usize {
        (id * self.ps) as usize
    }

    fn span(&self, id: PageId) -> u64 {
        self.span.get(&id).copied().unwrap_or(1)
    }

    /// Ancestors of a tree page, nearest first, up to the root bucket's root page.
    fn ancestors(&self, id: PageId) -> Vec<PageId> {
        let mut out = Vec::new();
        let mut p = id;
        while let Some(&up) = self.parent.get(&p) {
            if out.contains(&up) || out.len() > 200 {
                break;
            }
            out.push(up);
            p = up;
        }
        out
    }

    /// Up to `n` tree pages chosen evenly (first and last included).
    fn sample_tree(&self, n: usize) -> Vec<PageId> {
        sample(&self.tree, n)
    }

    /// The boundary values for a field of page `id`: 0, 1, max, own id, ancestors, hwm-1,
    /// hwm, hwm+1 (each cut to the field width later).
    fn values(&self, id: PageId, width: usize) -> Vec<(String, u64)> {
        let mut v = vec![
            ("0".to_string(), 0),
            ("1".to_string(), 1),
            ("max".to_string(), max_of(width)),
            ("own id".to_string(), id),
        ];
        let anc = self.ancestors(id);
        if let Some(&a) = anc.first() {
            v.push(("parent".into(), a));
        }
        if self.root != id && anc.first().is_none_or(|&a| a != self.root) {
            v.push(("root".into(), self.root));
        }
        v.push(("hwm-1".into(), self.hwm - 1));
        v.push(("hwm".into(), self.hwm));
        v.push(("hwm+1".into(), self.hwm + 1));
        v
    }
}

fn sample(v: &[PageId], n: usize) -> Vec<PageId> {
    if v.len() <= n {
        return v.to_vec();
    }
    let mut out: Vec<PageId> = (0..n).map(|i| v[i * (v.len() - 1) / (n - 1)]).collect();
    out.dedup();
    out
}

// ---------------------------------------------------------------------------------------
// The matrix

/// What a case promises about detection.
enum Expect {
    /// Only: no panic, finishes.
    Nothing,
    /// `check` reports something, or the open fails.
    Detected,
    /// As `Detected`, and a problem names one of these pages with an offset inside it
    /// (page id, span) — unless the open failed without a location (no valid meta).
    Located(Vec<(PageId, u64)>),
}

#[derive(Default)]
struct Tally {
    cases: BTreeMap<&'static str, usize>,
    detected_asserted: usize,
    located_asserted: usize,
}

struct Matrix<'f> {
    fx: &'f Fixture,
    tally: Tally,
    /// Every n-th case runs the full depth (page_detail of every page, dump).
    full_every: usize,
    n: usize,
    /// The page being damaged, detailed in every case (with the pages a case names).
    focus: Option<PageId>,
}

impl Matrix<'_> {
    fn case(
        &mut self,
        group: &'static str,
        what: String,
        bytes: Vec<u8>,
        expect: Expect,
    ) -> Outcome {
        self.n += 1;
        *self.tally.cases.entry(group).or_default() += 1;
        let depth = if self.n.is_multiple_of(self.full_every) {
            Depth::Full
        } else {
            Depth::Pages
        };
        let mut detail: Vec<PageId> = match &expect {
            Expect::Located(pages) => pages.iter().map(|p| p.0).collect(),
            _ => Vec::new(),
        };
        detail.extend(self.focus);
        let o = exercise(bytes, depth, &detail);
        let name = &self.fx.name;
        match expect {
            Expect::Nothing => {}
            Expect::Detected => {
                self.tally.detected_asserted += 1;
                assert!(o.detected(), "{name}: {what}: not detected");
            }
            Expect::Located(pages) => {
                self.tally.detected_asserted += 1;
                self.tally.located_asserted += 1;
                assert!(o.detected(), "{name}: {what}: not detected");
                if let Some(e) = &o.open_err {
                    assert!(
                        matches!(e, boltpack::Error::NoValidMeta { .. }),
                        "{name}: {what}: open failed with {e}"
                    );
                } else {
                    let ps = self.fx.ps;
                    let hit = o.problems.iter().any(|p| {
                        pages.iter().any(|&(id, span)| {
                            p.page == id && p.offset >= id * ps && p.offset < (id + span) * ps
                        })
                    });
                    assert!(
                        hit,
                        "{name}: {what}: no problem names page(s) {pages:?} with an offset inside: {}",
                        o.summary()
                    );
                }
            }
        }
        o
    }

    fn truncations(&mut self) {
        let fx = self.fx;
        let pages = fx.file_pages;
        let ids: Vec<u64> = if pages <= 160 {
            (0..=pages).collect()
        } else {
            let all: Vec<u64> = (0..=pages).collect();
            let mut s: BTreeSet<u64> = sample(&all, 40).into_iter().collect();
            s.extend(0..8);
            s.extend(pages - 8..=pages);
            s.extend(pages / 2 - 4..pages / 2 + 4);
            s.extend(
                [fx.hwm - 1, fx.hwm, fx.hwm + 1]
                    .into_iter()
                    .filter(|&h| h <= pages),
            );
            s.into_iter().collect()
        };
        let used = fx.hwm * fx.ps;
        for k in ids {
            for (what, len) in [
                ("at", k * fx.ps),
                ("mid", k * fx.ps + fx.ps / 2),
                ("header", k * fx.ps + PAGE_HEADER_SIZE as u64),
            ] {
                let len = len as usize;
                if len > fx.bytes.len() || (what != "at" && k == pages) {
                    continue;
                }
                let expect = if (len as u64) < used {
                    Expect::Detected
                } else {
                    Expect::Nothing
                };
                self.case(
                    "truncate",
                    format!("truncated {what} page {k} ({len} bytes)"),
                    fx.bytes[..len].to_vec(),
                    expect,
                );
            }
        }
    }

    fn header_fields(&mut self) {
        let fx = self.fx;
        let mut pages = vec![0, 1];
        pages.extend(fx.freelist);
        pages.extend(fx.sample_tree(TREE_PAGES));
        for id in pages {
            self.focus = Some(id);
            let span = fx.span(id);
            let kind = if id < 2 {
                "meta"
            } else if Some(id) == fx.freelist {
                "freelist"
            } else if fx.branches.contains(&id) {
                "branch"
            } else {
                "leaf"
            };
            for Field {
                name: field,
                offset: at,
                width,
            } in HEADER_FIELDS
            {
                for (vname, v) in fx.values(id, width) {
                    let v = v & max_of(width);
                    let off = fx.off(id) + at;
                    if get(&fx.bytes, off, width) == v {
                        continue; // no change
                    }
                    let mut b = fx.bytes.clone();
                    put(&mut b, off, width, v);
                    let here = vec![(id, span)];
                    let expect = match (field, kind) {
                        ("id", _) => Expect::Located(here),
                        ("flags", "meta") => Expect::Located(here),
                        ("flags", "freelist") => Expect::Located(here),
                        ("flags", _) => {
                            let v = v as u16;
                            if v == BRANCH_PAGE_FLAG || v == LEAF_PAGE_FLAG {
                                Expect::Nothing
                            } else {
                                Expect::Located(here)
                            }
                        }
                        // bbolt writes metas with count and overflow 0 (a zeroed buffer).
                        ("count" | "overflow", "meta") => Expect::Located(here),
                        ("count", "freelist") => {
                            let room = (span * fx.ps - 16) / 8;
                            if v != 0xFFFF && v > room {
                                Expect::Located(here)
                            } else {
                                Expect::Nothing
                            }
                        }
                        ("count", _) => {
                            if NodeView::element_offset(v as usize) as u64 > span * fx.ps {
                                Expect::Located(here)
                            } else {
                                Expect::Nothing
                            }
                        }
                        ("overflow", _) => {
                            if id + v + 1 > fx.hwm {
                                Expect::Located(here)
                            } else {
                                Expect::Nothing
                            }
                        }
                        _ => unreachable!(),
                    };
                    let o = self.case(
                        "header",
                        format!("{kind} page {id}: header {field} = {vname} ({v})"),
                        b,
                        expect,
                    );
                    // A tree page whose header names another page is a page-type problem
                    // (a bucket pointing at a page beyond the file is a bounds one).
                    if field == "id" && (kind == "leaf" || kind == "branch") {
                        assert!(
                            o.problems
                                .iter()
                                .any(|p| p.page == id && p.kind == DamageKind::PageType),
                            "{kind} page {id}: header id = {v}: {}",
                            o.summary()
                        );
                    }
                }
            }
        }
    }

    fn element_fields(&mut self) {
        let fx = self.fx;
        for id in fx.sample_tree(TREE_PAGES) {
            self.focus = Some(id);
            let base = fx.off(id);
            let count = get(&fx.bytes, base + COUNT_OFFSET, 2) as usize;
            if count == 0 {
                continue;
            }
            let branch = fx.branches.contains(&id);
            let fields: &[Field] = if branch {
                &BRANCH_ELEMENT_FIELDS
            } else {
                &LEAF_ELEMENT_FIELDS
            };
            let mut elems = vec![0];
            if count > 1 {
                elems.push(count - 1);
            }
            let anc: BTreeSet<PageId> = fx.ancestors(id).into_iter().collect();
            for &e in &elems {
                for &Field {
                    name: field,
                    offset: at,
                    width,
                } in fields
                {
                    for (vname, v) in fx.values(id, width) {
                        let v = v & max_of(width);
                        let off = base + NodeView::element_offset(e) + at;
                        if get(&fx.bytes, off, width) == v {
                            continue;
                        }
                        let mut b = fx.bytes.clone();
                        put(&mut b, off, width, v);
                        let expect = if field == "child" {
                            if v < 2 || v >= fx.hwm {
                                // Reported at the element: the page it names is not there.
                                Expect::Located(vec![(id, fx.span(id))])
                            } else if v == id || anc.contains(&v) {
                                Expect::Detected
                            } else {
                                Expect::Nothing
                            }
                        } else {
                            Expect::Nothing
                        };
                        let kind = if branch { "branch" } else { "leaf" };
                        let what = format!("{kind} page {id}: element {e} {field} = {vname} ({v})");
                        let o = self.case("element", what.clone(), b, expect);
                        if field == "child" && (v < 2 || v >= fx.hwm) {
                            // The cursor (visit_all, dump) locates it at the element too.
                            match o.visit {
                                Some(Err(boltpack::Error::Corrupt { page, offset, .. })) => {
                                    assert!(
                                        page == id
                                            && offset
                                                == (base + NodeView::element_offset(e)) as u64
                                                    + BRANCH_ELEMENT_FIELDS[2].offset as u64,
                                        "{}: {what}: visit_all blames page {page} at {offset}",
                                        fx.name
                                    )
                                }
                                other => panic!("{}: {what}: visit_all gave {other:?}", fx.name),
                            }
                        }
                    }
                }
            }
        }
    }

    fn metas(&mut self) {
        let fx = self.fx;
        let ps = fx.ps;
        // (what, at, width, value or None to flip the lowest bit, fix the checksum)
        let mut edits: Vec<(String, usize, usize, Option<u64>, bool)> = Vec::new();
        for v in [0, u64::from(MAGIC ^ 1), u64::from(u32::MAX)] {
            edits.push((format!("magic = {v:#x}"), MAGIC_AT, 4, Some(v), false));
        }
        for v in [0, 1, u64::from(VERSION + 1), u64::from(u32::MAX)] {
            edits.push((format!("version = {v}"), VERSION_AT, 4, Some(v), false));
        }
        for v in [0, 1024, ps / 2, ps * 2, u64::from(u32::MAX)] {
            edits.push((
                format!("page size = {v} (stale checksum)"),
                PAGE_SIZE_AT,
                4,
                Some(v),
                false,
            ));
        }
        for v in [
            0,
            512,
            1023,
            1024,
            ps / 2,
            ps * 2,
            1 << 24,
            (1 << 24) + 1,
            u64::from(u32::MAX),
        ] {
            edits.push((
                format!("page size = {v} (checksum fixed)"),
                PAGE_SIZE_AT,
                4,
                Some(v),
                true,
            ));
        }
        let sum = MetaField::Checksum.offset();
        edits.push(("checksum = 0".into(), sum, 8, Some(0), false));
        edits.push(("checksum = max".into(), sum, 8, Some(u64::MAX), false));
        edits.push(("checksum bit flipped".into(), sum, 8, None, false));

        for (what, at, width, v, fix) in edits {
            for which in [&[0usize][..], &[1], &[0, 1]] {
                let mut b = fx.bytes.clone();
                let mut changed = false;
                for &m in which {
                    let mo = m * ps as usize;
                    let v = v.unwrap_or(get(&b, mo + at, width) ^ 1);
                    changed |= get(&b, mo + at, width) != v;
                    put(&mut b, mo + at, width, v);
                    if fix {
                        fix_meta_checksum(&mut b, mo);
                    }
                }
                if !changed {
                    continue;
                }
                let stays_valid = what == "checksum = 0"
                    || (fix && v.is_some_and(|v| (1024..=1 << 24).contains(&v)));
                let desc = format!("meta {which:?}: {what}");
                let o = self.case("meta", desc.clone(), b, Expect::Detected);
                if stays_valid {
                    continue;
                }
                match which {
                    [m] => {
                        // One valid meta left: info works and shows the other invalid.
                        let (valid, active) = o.metas.unwrap_or_else(|| {
                            panic!(
                                "{}: {desc}: one meta is left, yet: {}",
                                fx.name,
                                o.summary()
                            )
                        });
                        assert!(!valid[*m], "{}: {desc}: meta {m} still valid", fx.name);
                        assert_eq!(active, 1 - m, "{}: {desc}", fx.name);
                        assert!(
                            o.problems.iter().any(|p| p.page == *m as u64
                                && p.what.contains(&format!("meta {m} is invalid"))),
                            "{}: {desc}: {}",
                            fx.name,
                            o.summary()
                        );
                    }
                    _ => assert!(
                        matches!(o.open_err, Some(boltpack::Error::NoValidMeta { .. })),
                        "{}: {desc}: both metas broken, yet: {}",
                        fx.name,
                        o.summary()
                    ),
                }
            }
        }
    }

    /// The active meta's root, high-water mark and txid, checksum fixed (the meta stays valid).
    fn meta_fields(&mut self) {
        let fx = self.fx;
        let mo = fx.active * fx.ps as usize;
        let file_pages = fx.bytes.len() as u64 / fx.ps;
        let mut edits: Vec<(&str, usize, u64, bool)> = Vec::new(); // field, at, value, detectable
        for v in [0, 1, fx.hwm, fx.hwm + 1, u64::MAX] {
            edits.push(("root", ROOT_AT, v, true)); // outside [2, hwm)
        }
        for v in [fx.root + 1, fx.hwm - 1] {
            edits.push(("root", ROOT_AT, v, false));
        }
        for v in [0, 1, 2, fx.root] {
            edits.push(("hwm", PGID_AT, v, true)); // the root is not below it
        }
        edits.push(("hwm", PGID_AT, u64::MAX, true)); // past the file: truncated
        edits.push(("hwm", PGID_AT, file_pages + 1, true));
        for v in [fx.hwm - 1, fx.hwm + 1] {
            edits.push(("hwm", PGID_AT, v, false));
        }
        for v in [0, u64::MAX] {
            edits.push(("txid", TXID_AT, v, false)); // only changes which meta is active
        }
        for (field, at, v, detectable) in edits {
            let mut b = fx.bytes.clone();
            if get(&b, mo + at, 8) == v {
                continue;
            }
            put(&mut b, mo + at, 8, v);
            fix_meta_checksum(&mut b, mo);
            let expect = if detectable {
                Expect::Detected
            } else {
                Expect::Nothing
            };
            self.case(
                "meta field",
                format!("active meta {}: {field} = {v}", fx.active),
                b,
                expect,
            );
        }
    }

    /// Point the active meta's freelist somewhere wrong (checksum fixed, so the meta is valid).
    fn freelist_pointer(&mut self) {
        let fx = self.fx;
        let mo = fx.active * fx.ps as usize;
        let mut targets: Vec<(String, PageId, bool)> = Vec::new();
        for &l in sample(&fx.leaves, 3).iter() {
            targets.push((format!("leaf page {l}"), l, true));
        }
        for &b in fx.branches.iter().take(2) {
            targets.push((format!("branch page {b}"), b, true));
        }
        for (name, v) in [
            ("meta 0", 0),
            ("meta 1", 1),
            ("hwm", fx.hwm),
            ("hwm+1", fx.hwm + 1),
        ] {
            targets.push((name.into(), v, false));
        }
        for (name, id, located) in targets {
            let mut b = fx.bytes.clone();
            put(&mut b, mo + FREELIST_AT, 8, id);
            fix_meta_checksum(&mut b, mo);
            let expect = if located {
                Expect::Located(vec![(id, fx.span(id))])
            } else {
                Expect::Detected
            };
            self.case(
                "freelist",
                format!("active meta {}: freelist -> {name}", fx.active),
                b,
                expect,
            );
        }
        if fx.freelist.is_some() {
            // Dropping the freelist page is NoFreelistSync: free = unreached, consistent.
            let mut b = fx.bytes.clone();
            put(&mut b, mo + FREELIST_AT, 8, u64::MAX);
            fix_meta_checksum(&mut b, mo);
            self.case(
                "freelist",
                format!("active meta {}: freelist -> none", fx.active),
                b,
                Expect::Nothing,
            );
        }
    }

    /// Two branch elements share a child; a child points at its own page or an ancestor.
    fn shared_and_cycles(&mut self) {
        let fx = self.fx;
        let branches: Vec<PageId> = fx.branches.iter().copied().collect();
        for id in sample(&branches, TREE_PAGES) {
            self.focus = Some(id);
            let base = fx.off(id);
            let count = get(&fx.bytes, base + COUNT_OFFSET, 2) as usize;
            let child_at = BRANCH_ELEMENT_FIELDS[2].offset;
            let child = |e: usize| base + NodeView::element_offset(e) + child_at;
            if count >= 2 {
                for (a, z) in [(0, 1), (0, count - 1), (count - 1, 0)] {
                    let mut b = fx.bytes.clone();
                    let c = get(&b, child(a), 8);
                    put(&mut b, child(z), 8, c);
                    self.case(
                        "shared",
                        format!("branch page {id}: element {z} shares element {a}'s child {c}"),
                        b,
                        Expect::Detected,
                    );
                }
            }
            let mut to = vec![("own page".to_string(), id)];
            for a in fx.ancestors(id) {
                to.push((format!("ancestor {a}"), a));
            }
            if !to.iter().any(|t| t.1 == fx.root) {
                to.push(("the root bucket's root".into(), fx.root));
            }
            for e in [0, count - 1] {
                for (name, v) in &to {
                    let mut b = fx.bytes.clone();
                    put(&mut b, child(e), 8, *v);
                    let o = self.case(
                        "cycle",
                        format!("branch page {id}: element {e} child -> {name}"),
                        b,
                        Expect::Located(vec![(*v, fx.span(*v))]),
                    );
                    if *v == id {
                        // A page that is its own child: the cursor must refuse it too.
                        assert!(
                            matches!(o.visit, Some(Err(_))),
                            "{}: branch page {id} as its own child: visit_all succeeded",
                            fx.name
                        );
                    }
                }
            }
        }
    }
}

fn run_matrix(rel: &'static str) {
    let start = Instant::now();
    let fx = Fixture::load(rel);
    // Dumping and detailing every page is slow in a debug build for the bigger fixtures: do it
    // on every case where that is cheap, on a regular subset of the cases elsewhere.
    let t = Instant::now();
    exercise(fx.bytes.clone(), Depth::Pages, &[]);
    let pages = t.elapsed();
    let t = Instant::now();
    exercise(fx.bytes.clone(), Depth::Full, &[]);
    let full = t.elapsed();
    let full_every = (full.as_micros() / 500).max(1) as usize;
    println!("{rel}: one case {pages:?}, full {full:?}: full every {full_every}");
    let mut m = Matrix {
        fx: &fx,
        tally: Tally::default(),
        full_every,
        n: 0,
        focus: None,
    };
    m.truncations();
    m.header_fields();
    m.element_fields();
    m.focus = None;
    m.metas();
    m.meta_fields();
    m.freelist_pointer();
    m.shared_and_cycles();
    let elapsed = start.elapsed();
    let t = &m.tally;
    println!(
        "{rel}: {} cases {:?}; detection asserted in {}, location in {}; {:.1?}",
        t.cases.values().sum::<usize>(),
        t.cases,
        t.detected_asserted,
        t.located_asserted,
        elapsed
    );
    assert!(elapsed < FIXTURE_BOUND, "{rel}: took {elapsed:?}");
}

macro_rules! matrix {
    ($($test:ident => $rel:expr),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                run_matrix($rel);
            }
        )*
        const MATRIX: &[&str] = &[$($rel),*];
    };
}

matrix! {
    matrix_bigvalues => "bbolt/bigvalues.db",
    matrix_deletes => "bbolt/deletes.db",
    matrix_deletes_nosync => "bbolt/deletes-nosync.db",
    matrix_empty => "bbolt/empty.db",
    matrix_flat => "bbolt/flat.db",
    matrix_nested => "bbolt/nested.db",
    matrix_ps16384 => "bbolt/ps16384.db",
    matrix_ps65536 => "bbolt/ps65536.db",
    matrix_ps8192_hashmap => "bbolt/ps8192-hashmap.db",
    matrix_etcd_db => "etcd/db",
}

#[test]
fn matrix_covers_every_committed_fixture() {
    for e in std::fs::read_dir(testdata("bbolt")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".db") {
            let rel = format!("bbolt/{name}");
            assert!(MATRIX.contains(&rel.as_str()), "{rel} is not in the matrix");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Synthetic files: shapes bbolt never writes, built page by page

fn synth_meta(id: u64, ps: usize, root: u64, pgid: u64, txid: u64) -> Vec<u8> {
    let mut b = vec![0u8; ps];
    let fields = MetaFields {
        page_size: ps as u32,
        flags: 0,
        root: BucketHeader { root, sequence: 0 },
        freelist: u64::MAX, // no freelist page (NoFreelistSync)
        pgid,
        txid,
    };
    write_meta_page(&mut b, id, &fields);
    b
}

/// A page image (`id` 0 for an inline page) with raw elements and a data area.
fn synth_page(
    id: u64,
    flags: u16,
    elems: &[[u64; 3]],
    branch: bool,
    data: &[u8],
    size: usize,
) -> Vec<u8> {
    let mut p = vec![0u8; size];
    PageHeader {
        id,
        flags,
        count: elems.len() as u16,
        overflow: 0,
    }
    .write(&mut p);
    let data_at = NodeView::element_offset(elems.len());
    for (i, e) in elems.iter().enumerate() {
        let at = NodeView::element_offset(i);
        if branch {
            // [data offset of the key, ksize, child]
            BranchElementRaw {
                pos: ((data_at as u64 + e[0]) - at as u64) as u32,
                ksize: e[1] as u32,
                child: e[2],
            }
            .write(&mut p, at);
        } else {
            // [data offset of the key, ksize, vsize]; flags 1 (bucket) when the top bit is set
            let off = e[0] & (u64::MAX >> 1);
            LeafElementRaw {
                flags: (e[0] >> 63) as u32,
                pos: ((data_at as u64 + off) - at as u64) as u32,
                ksize: e[1] as u32,
                vsize: e[2] as u32,
            }
            .write(&mut p, at);
        }
    }
    p[data_at..data_at + data.len()].copy_from_slice(data);
    p
}

const BUCKET: u64 = 1 << 63;

/// Metas (txid 1 and 2, the root bucket at page 2) followed by `pages` (ids 2..).
fn synth_file(ps: usize, pages: Vec<Vec<u8>>) -> Vec<u8> {
    let pgid = pages.len() as u64 + 2;
    let mut f = synth_meta(0, ps, 2, pgid, 1);
    f.extend(synth_meta(1, ps, 2, pgid, 2));
    for p in pages {
        assert_eq!(p.len(), ps);
        f.extend(p);
    }
    f
}

fn bucket_value(root: u64) -> Vec<u8> {
    BucketHeader { root, sequence: 0 }.to_bytes().to_vec()
}

/// A paged bucket whose tree is `levels` branch pages, each with two elements pointing at
/// the same next page: 2^levels paths to the last leaf.
fn dag_file(levels: u64) -> Vec<u8> {
    let ps = 1024;
    let mut pages = Vec::new();
    let mut data = b"b".to_vec();
    data.extend(bucket_value(3));
    pages.push(synth_page(
        2,
        LEAF_PAGE_FLAG,
        &[[BUCKET, 1, 16]],
        false,
        &data,
        ps,
    ));
    for i in 0..levels {
        let id = 3 + i;
        let next = id + 1;
        pages.push(synth_page(
            id,
            BRANCH_PAGE_FLAG,
            &[[0, 1, next], [1, 1, next]],
            true,
            b"ab",
            ps,
        ));
    }
    pages.push(synth_page(
        3 + levels,
        LEAF_PAGE_FLAG,
        &[[0, 1, 1]],
        false,
        b"av",
        ps,
    ));
    synth_file(ps, pages)
}

/// An inline bucket nested `levels` deep in itself, each level holding two sub-bucket
/// entries that share one value: 2^levels buckets from a 4 KiB page.
fn inline_bomb_file(levels: usize) -> Vec<u8> {
    let ps = 4096;
    // The innermost: a bucket header and an empty leaf image.
    let mut v = vec![0u8; 32];
    PageHeader {
        id: 0,
        flags: LEAF_PAGE_FLAG,
        count: 0,
        overflow: 0,
    }
    .write(&mut v[BUCKET_HEADER_SIZE..]);
    for _ in 0..levels {
        let mut data = b"k".to_vec();
        data.extend(&v);
        let image = synth_page(
            0,
            LEAF_PAGE_FLAG,
            &[[BUCKET, 1, v.len() as u64], [BUCKET, 1, v.len() as u64]],
            false,
            &data,
            16 + 32 + data.len(),
        );
        v = bucket_value(0);
        v.extend(image);
    }
    let mut data = b"a".to_vec();
    data.extend(&v);
    let leaf = synth_page(
        2,
        LEAF_PAGE_FLAG,
        &[[BUCKET, 1, v.len() as u64]],
        false,
        &data,
        ps,
    );
    synth_file(ps, vec![leaf])
}

#[test]
fn synthetic_files_are_well_formed() {
    // The builders make what the reader expects when nothing is shared.
    let f = dag_file(1);
    let db = Db::from_bytes(f).unwrap();
    let mut n = 0;
    visit_all(Bucket::root_of(&db), &mut Vec::new(), &mut |_, _, _| {
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 3, "bucket b, then its key a twice (the DAG)");
    let db = Db::from_bytes(inline_bomb_file(1)).unwrap();
    let mut n = 0;
    visit_all(Bucket::root_of(&db), &mut Vec::new(), &mut |_, _, _| {
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 3);
}

#[test]
fn dag_of_branch_pages_is_bounded() {
    // Found by reading the cursor: it stops cycles (a page on its own stack) but not a DAG,
    // so 40 levels of shared children meant 2^40 leaf visits.
    let o = within(Duration::from_secs(60), "dag", || {
        exercise(dag_file(40), Depth::Full, &[])
    });
    assert!(o.detected(), "{}", o.summary());
    assert!(
        o.problems.iter().any(|p| p.kind == DamageKind::Shape),
        "{}",
        o.summary()
    );
    let err = o.visit.unwrap().unwrap_err();
    assert_eq!(err.damage_kind(), Some(DamageKind::Shape), "{err}");
}

#[test]
fn inline_bucket_bomb_is_bounded() {
    // Each inline bucket holds two sub-bucket entries sharing one value: 2^60 buckets from
    // one page, for the walk (check) and for the cursor (visit_all, dump).
    let o = within(Duration::from_secs(60), "inline bomb", || {
        exercise(inline_bomb_file(60), Depth::Full, &[])
    });
    assert!(o.detected(), "{}", o.summary());
    let err = o.visit.unwrap().unwrap_err();
    assert_eq!(err.damage_kind(), Some(DamageKind::Shape), "{err}");
}

/// `buckets` paged buckets nested in each other, each a chain of `levels` branch pages
/// (one element each) over a leaf holding the next bucket: a walk `buckets * (levels + 1)`
/// pages deep.
fn deep_file(buckets: u64, levels: u64) -> Vec<u8> {
    let ps = 1024;
    let mut pages = Vec::new();
    let mut id = 2;
    for b in 0..buckets {
        for _ in 0..levels {
            pages.push(synth_page(
                id,
                BRANCH_PAGE_FLAG,
                &[[0, 1, id + 1]],
                true,
                b"b",
                ps,
            ));
            id += 1;
        }
        let last = b + 1 == buckets;
        let leaf = if last {
            synth_page(id, LEAF_PAGE_FLAG, &[[0, 1, 1]], false, b"kv", ps)
        } else {
            let mut data = b"b".to_vec();
            data.extend(bucket_value(id + 1));
            synth_page(id, LEAF_PAGE_FLAG, &[[BUCKET, 1, 16]], false, &data, ps)
        };
        pages.push(leaf);
        id += 1;
    }
    synth_file(ps, pages)
}

#[test]
fn deep_trees_are_walked_within_bounds() {
    // 8 buckets of 64 levels: every tree at the depth limit, 512 levels in all.
    let o = within(Duration::from_secs(60), "deep", || {
        exercise(deep_file(8, 63), Depth::Full, &[])
    });
    assert!(o.problems.is_empty(), "{}", o.summary());
    assert_eq!(o.visit.unwrap().unwrap(), 8);
    // One level more in each: every bucket tree is too deep.
    let o = within(Duration::from_secs(60), "deeper", || {
        exercise(deep_file(9, 64), Depth::Full, &[])
    });
    assert!(
        o.problems.iter().any(|p| p.what.contains("too deep")),
        "{}",
        o.summary()
    );
    assert!(o.visit.unwrap().is_err());
}

#[test]
fn many_buckets_sharing_a_huge_name_stay_small() {
    // 100 nested buckets with 900-byte names, the deepest holding 2000 sub-bucket entries
    // that share one name and one (bad) value. The page map used to copy every bucket's
    // whole path, and messages printed it whole: 2000 x 100 x 900 bytes.
    let ps = 1024;
    let depth = 100u64;
    let mut pages = Vec::new();
    for i in 0..depth {
        let id = 2 + i;
        let mut data = vec![b'a' + (i % 26) as u8; 900];
        data.extend(bucket_value(id + 1));
        pages.push(synth_page(
            id,
            LEAF_PAGE_FLAG,
            &[[BUCKET, 900, 16]],
            false,
            &data,
            ps,
        ));
    }
    let n: usize = 2000;
    let span = (NodeView::element_offset(n) + 17).div_ceil(ps);
    let elems = vec![[BUCKET, 1, 16]; n];
    let mut data = b"x".to_vec();
    data.extend(bucket_value(1));
    let mut big = synth_page(2 + depth, LEAF_PAGE_FLAG, &elems, false, &data, span * ps);
    put(&mut big, OVERFLOW_OFFSET, 4, span as u64 - 1);
    pages.extend(big.chunks(ps).map(<[u8]>::to_vec));
    let o = within(Duration::from_secs(60), "huge names", move || {
        exercise(synth_file(ps, pages), Depth::Full, &[])
    });
    assert!(o.problems.len() >= n, "{}", o.summary());
    let longest = o.problems.iter().map(|p| p.what.len()).max().unwrap();
    assert!(longest < 2048, "a message of {longest} bytes");
}

// ---------------------------------------------------------------------------------------
// Inputs found by the fuzz targets (fuzz/), committed under testdata/fuzz-regressions/:
// `<target>-<what>` for each. Every one goes through its target's code and the whole read
// path: no panic, bounded time.

fn fuzz_regressions() -> Vec<(String, Vec<u8>)> {
    let dir = testdata("fuzz-regressions");
    let mut v: Vec<(String, Vec<u8>)> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .filter(|(name, _)| !name.ends_with(".md"))
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

#[test]
fn fuzz_regressions_do_not_panic() {
    for (name, bytes) in fuzz_regressions() {
        let o = within(Duration::from_secs(60), &name, move || {
            fuzz_targets_on(&bytes);
            exercise(bytes, Depth::Full, &[])
        });
        println!("{name}: {}", o.summary().lines().next().unwrap_or(""));
    }
}

/// What the fuzz targets run, on any bytes.
fn fuzz_targets_on(data: &[u8]) {
    use boltpack::etcd::{KeyValue, RevisionKey};
    use boltpack::format::bucket::inline_page;
    use boltpack::format::element::NodeView;
    use boltpack::format::freelist::FreelistView;
    use boltpack::format::meta::Meta;
    use boltpack::format::page::PageHeader;

    if let Ok(m) = Meta::parse(data) {
        let _ = m.validate();
    }
    let node = |data: &[u8]| {
        if let Ok(n) = NodeView::new(data) {
            for i in 0..=n.count() {
                let _ = (n.leaf_raw(i), n.branch_raw(i), n.leaf(i), n.branch(i));
            }
        }
    };
    node(data);
    if let Ok(h) = PageHeader::parse(data)
        && let Ok(f) = FreelistView::parse(&h, data)
    {
        assert_eq!(f.ids().count(), f.len());
    }
    if BucketHeader::parse(data).is_ok() {
        node(inline_page(data));
    }
    let _ = KeyValue::decode(data);
    let _ = RevisionKey::parse(data);
    compact_target(data);
    if let Ok(db) = Db::from_bytes(data.to_vec()) {
        split_pass_agrees(&db);
        one_walk_agrees(&db);
    }
}

/// The `compact` fuzz target: the writer either fails cleanly or writes a copy that our own
/// `check` accepts and that holds exactly the source's content, in each output layout.
fn compact_target(data: &[u8]) {
    use boltpack::writer::{
        CompactOptions, FreelistMode, Transform, compact_to_vec, content_digest, expected_digest,
    };
    let Ok(db) = Db::from_bytes(data.to_vec()) else {
        return;
    };
    let layouts = [
        CompactOptions::default(),
        CompactOptions {
            page_size: Some(1024),
            freelist: Some(FreelistMode::Sync),
            ..CompactOptions::default()
        },
        CompactOptions {
            fill_percent: 0.5,
            freelist: Some(FreelistMode::None),
            ..CompactOptions::default()
        },
    ];
    let t = Transform::default();
    for opts in &layouts {
        let Ok((bytes, _)) = compact_to_vec(&db, opts, &t) else {
            continue;
        };
        let expected = expected_digest(&db, &t).expect("the writer read the source");
        let copy = Db::from_bytes(bytes).expect("the copy opens");
        let problems = boltpack::check::check(&copy);
        assert!(problems.is_empty(), "the copy has problems: {problems:?}");
        assert_eq!(
            content_digest(&copy).unwrap(),
            expected,
            "the copy's content"
        );
        mvcc_copies_agree(&db, opts);
    }
}

/// Sources the writer cannot copy faithfully, because its tree is built from the entries as
/// they come: keys out of order and an empty key (both found by the `compact` target), and a
/// plain key in the root bucket. It refuses each as damage, naming the page and element.
#[test]
fn compact_refuses_sources_it_cannot_copy() {
    use boltpack::writer::{CompactOptions, Transform, compact_to_vec};
    let root_plain = synth_file(
        1024,
        vec![synth_page(
            2,
            LEAF_PAGE_FLAG,
            &[[0, 1, 1]],
            false,
            b"kv",
            1024,
        )],
    );
    let cases = [
        (
            std::fs::read(testdata("fuzz-regressions/compact-keys-out-of-order")).unwrap(),
            "page 53 (byte offset 54496): key 642d3030313333 is not above the key before it",
        ),
        (
            std::fs::read(testdata("fuzz-regressions/compact-empty-key")).unwrap(),
            "page 57 (byte offset 58384): an empty key",
        ),
        (
            root_plain,
            "page 2 (byte offset 2064): the root bucket holds a plain key 6b",
        ),
    ];
    for (bytes, want) in cases {
        let db = Db::from_bytes(bytes).unwrap();
        let e = compact_to_vec(&db, &CompactOptions::default(), &Transform::default())
            .map(|(_, summary)| summary)
            .expect_err("refused");
        assert_eq!(e.damage_kind(), Some(DamageKind::KeyOrder), "{e}");
        let msg = e.to_string();
        assert!(
            msg.starts_with(want) && msg.ends_with("so no copy is written (see `boltpack check`)"),
            "{msg}"
        );
    }
}

#[test]
fn compact_of_buckets_nested_too_deep_is_damage() {
    // 140 paged buckets nested in each other: more than any bbolt writes (the walk's
    // limit is 128). The writer refuses it as damage (exit 1), not as a usage error.
    let db = Db::from_bytes(deep_file(140, 0)).unwrap();
    let t = boltpack::writer::Transform::default();
    let opts = boltpack::writer::CompactOptions::default();
    let Err(err) = boltpack::writer::compact_to_vec(&db, &opts, &t) else {
        panic!("a copy of 140 nested buckets was written");
    };
    assert_eq!(err.damage_kind(), Some(DamageKind::Shape), "{err}");
    assert!(err.to_string().contains("nested deeper than 128"), "{err}");
}
