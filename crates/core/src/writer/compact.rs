//! `compact`: copy every bucket of a source db through the bulk writer, optionally applying
//! an etcd MVCC compaction plan, then write the metas, verify and commit atomically.

use std::borrow::Cow;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::etcd::KEY_BUCKET;
use crate::format::PageId;
use crate::format::bucket::{BUCKET_LEAF_FLAG, BucketHeader, inline_bucket_value};
use crate::format::meta::PGID_NO_FREELIST;
use crate::format::page::PAGE_HEADER_SIZE;
use crate::reader::{Bucket, Db, OpenOptions};

use super::digest::{ContentDigest, verify};
use super::digest::{DigestFeed, DigestRec};
use super::output::Perms;
use super::output::{AtomicFile, WRITE_BEHIND_STEP, spawn_write_behind, tmp_error};
use super::pages::{LeafItem, MetaFields, PageSink, meta_page, write_empty_freelist};
use super::transform::Transform;
use super::transform::{Item, for_each_item};
use super::tree::TreeBuilder;

/// Whether the copy persists a freelist page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FreelistMode {
    /// An (empty) freelist page, as bbolt writes by default.
    Sync,
    /// No freelist page, meta freelist = 0xFFFFFFFFFFFFFFFF (NoFreelistSync, etcd on Linux).
    None,
}

#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Fill leaves and branches up to this fraction of a page (0.1 ..= 1.0).
    pub fill_percent: f64,
    /// Output page size; `None` keeps the source's.
    pub page_size: Option<u32>,
    /// `None` keeps the source's mode.
    pub freelist: Option<FreelistMode>,
}

impl CompactOptions {
    /// The node size at which a page counts as full, for pages of `page_size` bytes.
    pub fn fill_threshold(&self, page_size: u32) -> usize {
        (f64::from(page_size) * self.fill_percent.clamp(0.1, 1.0)) as usize
    }
}

/// bbolt's `Bucket.inlineable` limit: a bucket without sub-buckets whose leaf image is at
/// most a quarter page is stored inside its parent's leaf (bb136 bucket.go).
pub fn inline_max(page_size: u32) -> usize {
    page_size as usize / 4
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            fill_percent: 1.0,
            page_size: None,
            freelist: None,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CompactSummary {
    #[serde(rename = "page_size_bytes")]
    pub page_size: u32,
    #[serde(rename = "src_file_size_bytes")]
    pub src_file_size: u64,
    pub src_pages: u64,
    pub dst_pages: u64,
    /// The copy's file size: its pages, and the SHA-256 trailer when it has one.
    #[serde(rename = "dst_size_bytes")]
    pub dst_size: u64,
    /// The copy ends in `etcdctl snapshot save`'s SHA-256 trailer.
    pub trailer: bool,
    pub freelist: FreelistMode,
    pub buckets: u64,
    pub keys: u64,
    /// `key` bucket entries removed by MVCC compaction.
    pub revisions_removed: u64,
    pub verified: bool,
    #[serde(skip)]
    pub elapsed: Duration,
}

struct Writer<'a, W: Write> {
    sink: PageSink<W>,
    t: &'a Transform<'a>,
    threshold: usize,
    inline_max: usize,
    buckets: u64,
    keys: u64,
    dropped: u64,
    /// The content digest of what goes into the copy (as [`expected_digest`] computes it),
    /// taken as the items go by (on another thread): verification then needs no second
    /// pass over the source.
    digest: Option<DigestFeed<'a>>,
    /// Where the copy's final size is estimated as it goes (see [`SizeEstimate`]).
    estimate: Option<SizeEstimate<'a>>,
}

/// The copy's final size, estimated from how far the `key` bucket (nearly all of an etcd
/// file) has come, reported as [`Progress::Total`] every [`SizeEstimate::EVERY`] pages.
/// Below the compaction revision R the copy keeps a few entries, above it all of them, so
/// the two parts are estimated apart: below R, the bytes written so far over the fraction
/// of `[first, R]` passed, plus the source's share of bytes above R; above R, what is
/// written plus the bytes per revision written since R times the revisions left. Without
/// a compaction now R is the one already done, or else the first revision (and the
/// estimate is the written bytes over the fraction of the revision span passed).
struct SizeEstimate<'p> {
    first: i64,
    last: i64,
    /// The compaction revision (`first` when nothing is compacted).
    rev: i64,
    /// The source's bytes in use (high-water mark), for the part above R seen from below.
    src_bytes: f64,
    /// Bytes of the copy when its first entry above R went in.
    at_rev: Option<f64>,
    reported: PageId,
    progress: ProgressFn<'p>,
}

impl SizeEstimate<'_> {
    const EVERY: PageId = 1024;

    fn of<'p>(
        db: &Db,
        rev: Option<i64>,
        progress: Option<ProgressFn<'p>>,
    ) -> Option<SizeEstimate<'p>> {
        let progress = progress?;
        let key = Bucket::root_of(db).bucket(KEY_BUCKET).ok()??;
        let first = crate::etcd::RevisionKey::parse(key.iter().next()?.ok()?.key).ok()?;
        let last = crate::etcd::last_key_revision(db).ok()??;
        // Without a compaction now, entries below an earlier one are as sparse.
        let rev = rev.or_else(|| {
            let rules = crate::etcd::Rules::ETCD_3_4_23;
            let (_, revs) = crate::etcd::Revisions::read(db, &rules).ok()?;
            (revs.compacted > 0).then_some(revs.compacted)
        });
        (last > first.main).then_some(SizeEstimate {
            first: first.main,
            last,
            rev: rev.unwrap_or(first.main).clamp(first.main, last),
            src_bytes: db.hwm() as f64 * f64::from(db.page_size()),
            at_rev: None,
            reported: 0,
            progress,
        })
    }

    /// A `key` bucket entry with revision key `key` went into the copy, whose pages so far
    /// end at `next` (of `page_size` bytes).
    fn at(&mut self, key: &[u8], next: PageId, page_size: usize) {
        if key.len() < 8 {
            return;
        }
        let main = i64::from_be_bytes(key[..8].try_into().expect("8 bytes"));
        let written = next as f64 * page_size as f64;
        if main > self.rev && self.at_rev.is_none() {
            self.at_rev = Some(written);
        }
        if next < self.reported + Self::EVERY {
            return;
        }
        self.reported = next;
        let span = |a: i64, b: i64| (b - a).max(1) as f64;
        // Too early in a part, its rate says little yet.
        let total = match self.at_rev {
            None => {
                let done = span(self.first, main) / span(self.first, self.rev);
                let above =
                    self.src_bytes * span(self.rev, self.last) / span(self.first, self.last);
                (done >= 0.02).then(|| written / done + above)
            }
            Some(at) => {
                let rate = (written - at) / span(self.rev, main);
                let early = span(self.rev, main) < 0.02 * span(self.rev, self.last);
                (!early).then(|| written + rate * span(main, self.last))
            }
        };
        if let Some(total) = total {
            (self.progress)(Progress::Total(total as u64));
        }
    }
}

impl<'a, W: Write> Writer<'a, W> {
    /// bbolt's `Bucket.inlineable`: no sub-buckets and the leaf image fits in a quarter
    /// page (bb136 bucket.go). Returns the inline bucket value when it applies, and counts
    /// its keys and dropped revisions into the summary.
    fn inline_value(&mut self, path: &[&'a [u8]], b: Bucket<'a>) -> Result<Option<Vec<u8>>> {
        let mut items: Vec<LeafItem<'a>> = Vec::new();
        let mut size = PAGE_HEADER_SIZE;
        let mut ok = true;
        let dropped = for_each_item(self.t, path, b, &mut |it| {
            match it {
                Item::Sub(..) => ok = false,
                Item::Plain(key, value) => {
                    let item = LeafItem {
                        flags: 0,
                        key,
                        value: Cow::Borrowed(value),
                    };
                    size += item.size();
                    ok = size <= self.inline_max;
                    items.push(item);
                }
            }
            Ok(ok)
        })?;
        if !ok {
            return Ok(None);
        }
        self.keys += items.len() as u64;
        self.dropped += dropped;
        if let Some(d) = &mut self.digest {
            for it in &items {
                if let Cow::Borrowed(value) = it.value {
                    d.push(DigestRec::Entry(path.len(), it.key, value));
                }
            }
        }
        let elements = items.iter().map(LeafItem::element);
        Ok(Some(inline_bucket_value(b.sequence(), elements)))
    }

    fn bucket(&mut self, path: &mut Vec<&'a [u8]>, b: Bucket<'a>) -> Result<PageId> {
        if path.len() > crate::reader::MAX_BUCKET_DEPTH {
            // Damage (a cycle through nested buckets, or nesting no bbolt writes): exit 1.
            let page = b.root_page();
            return Err(Error::corrupt(
                crate::error::DamageKind::Shape,
                page,
                b.db().page_offset(page).unwrap_or(0),
                format!(
                    "buckets nested deeper than {}, so no copy is written (see `boltpack check`)",
                    crate::reader::MAX_BUCKET_DEPTH
                ),
            ));
        }
        let mut tree = TreeBuilder::new(self.threshold, self.sink.page_size());
        let t = self.t;
        let p = path.clone();
        let dropped = for_each_item(t, &p, b, &mut |it| {
            let item = match it {
                Item::Plain(key, value) => {
                    self.keys += 1;
                    if let Some(d) = &mut self.digest {
                        d.push(DigestRec::Entry(p.len(), key, value));
                    }
                    if let Some(e) = &mut self.estimate
                        && p[..] == [KEY_BUCKET]
                    {
                        e.at(key, self.sink.next_id(), self.sink.page_size());
                    }
                    LeafItem {
                        flags: 0,
                        key,
                        value: Cow::Borrowed(value),
                    }
                }
                Item::Sub(key, sub) => {
                    self.buckets += 1;
                    if let Some(d) = &mut self.digest {
                        d.push(DigestRec::Bucket(p.len(), key, sub.sequence()));
                    }
                    path.push(key);
                    let presized = self
                        .t
                        .presized_key_bucket
                        .filter(|_| self.sink.plan_only && path[..] == [KEY_BUCKET]);
                    let header = |root| {
                        BucketHeader {
                            root,
                            sequence: sub.sequence(),
                        }
                        .to_bytes()
                        .to_vec()
                    };
                    let value = match presized {
                        Some(ps) => {
                            self.keys += ps.keys;
                            self.dropped += ps.dropped;
                            header(self.sink.skip(ps.pages))
                        }
                        None => match self.inline_value(path, sub)? {
                            Some(v) => v,
                            None => header(self.bucket(path, sub)?),
                        },
                    };
                    path.pop();
                    LeafItem {
                        flags: BUCKET_LEAF_FLAG,
                        key,
                        value: Cow::Owned(value),
                    }
                }
            };
            tree.push(&mut self.sink, item).map_err(write_err)?;
            Ok(true)
        })?;
        self.dropped += dropped;
        tree.finish(&mut self.sink).map_err(write_err)
    }
}

fn write_err(e: std::io::Error) -> Error {
    Error::Write(e)
}

/// The output layout: pages 2.. streamed to `out` (after two placeholder meta pages), and
/// the two meta page images to write at offset 0.
pub struct Written<W> {
    pub out: W,
    pub metas: Vec<u8>,
    pub summary: CompactSummary,
    /// With [`Copying::digest`]: the [`expected_digest`] of the copy.
    pub digest: Option<ContentDigest>,
}

/// What a copy pass does besides laying out pages.
#[derive(Clone, Copy, Default)]
pub struct Copying<'p> {
    /// Plan only: allocate page ids, write no page images (the sizes come out exact).
    pub plan_only: bool,
    /// Take the content digest on the way ([`Written::digest`]).
    pub digest: bool,
    /// Told the copy's estimated final size as it goes ([`Progress::Total`]).
    pub progress: Option<ProgressFn<'p>>,
}

/// Copy `db` through the writer into `out`. `out` receives the whole file except the meta
/// pages, which come back in [`Written::metas`] (zeros stand in for them in `out`).
pub fn compact_to<'a, W: Write>(
    db: &'a Db,
    opts: &CompactOptions,
    t: &'a Transform<'a>,
    out: W,
) -> Result<Written<W>> {
    copy_through(db, opts, t, out, Copying::default())
}

/// The exact layout of the copy, without building its pages: what `compact --dry-run`
/// prints, and how `analyze` sizes compaction candidates.
pub fn plan_copy<'a>(
    db: &'a Db,
    opts: &CompactOptions,
    t: &'a Transform<'a>,
) -> Result<CompactSummary> {
    let plan = Copying {
        plan_only: true,
        ..Copying::default()
    };
    Ok(copy_through(db, opts, t, std::io::sink(), plan)?.summary)
}

/// [`compact_to`] with the choices of [`Copying`].
pub fn copy_through<'a, W: Write>(
    db: &'a Db,
    opts: &CompactOptions,
    t: &'a Transform<'a>,
    out: W,
    how: Copying<'a>,
) -> Result<Written<W>> {
    if !how.digest {
        return copy_with(db, opts, t, out, how, None);
    }
    // The digest is taken on the other core, fed in batches.
    std::thread::scope(|s| {
        let (feed, digest) = DigestFeed::spawn(s);
        let mut w = copy_with(db, opts, t, out, how, Some(feed))?;
        w.digest = Some(joined(digest)?);
        Ok(w)
    })
}

fn copy_with<'a, W: Write>(
    db: &'a Db,
    opts: &CompactOptions,
    t: &'a Transform<'a>,
    mut out: W,
    how: Copying<'a>,
    digest: Option<DigestFeed<'a>>,
) -> Result<Written<W>> {
    let start = Instant::now();
    let page_size = opts.page_size.unwrap_or(db.page_size());
    let freelist = opts.freelist.unwrap_or(if db.meta().has_freelist_page() {
        FreelistMode::Sync
    } else {
        FreelistMode::None
    });
    if !how.plan_only {
        out.write_all(&vec![0u8; 2 * page_size as usize])
            .map_err(write_err)?;
    }
    let mut sink = PageSink::new(out, page_size, 2);
    sink.plan_only = how.plan_only;
    let mut w = Writer {
        sink,
        t,
        threshold: opts.fill_threshold(page_size),
        inline_max: inline_max(page_size),
        buckets: 0,
        keys: 0,
        dropped: 0,
        digest,
        estimate: SizeEstimate::of(
            db,
            t.plan.map(|p| p.rev),
            how.progress.filter(|_| !how.plan_only),
        ),
    };
    let root = w.bucket(&mut Vec::new(), Bucket::root_of(db))?;
    let freelist_id = match freelist {
        FreelistMode::None => PGID_NO_FREELIST,
        FreelistMode::Sync => w
            .sink
            .emit(PAGE_HEADER_SIZE, |buf, id, _| write_empty_freelist(buf, id))
            .map_err(write_err)?,
    };
    let pgid = w.sink.next_id();
    // Like `tx.WriteTo`: meta 0 carries txid T, meta 1 the same with T - 1 (T >= 1).
    let txid = db.meta().txid.max(1);
    let m = MetaFields {
        page_size,
        flags: 0,
        root: BucketHeader {
            root,
            sequence: db.meta().root.sequence,
        },
        freelist: freelist_id,
        pgid,
        txid,
    };
    let mut metas = meta_page(0, &m);
    metas.extend(meta_page(
        1,
        &MetaFields {
            txid: txid - 1,
            ..m
        },
    ));
    let summary = CompactSummary {
        page_size,
        src_file_size: db.file_size(),
        src_pages: db.hwm(),
        dst_pages: pgid,
        dst_size: pgid * u64::from(page_size),
        trailer: false,
        freelist,
        buckets: w.buckets,
        keys: w.keys,
        revisions_removed: w.dropped,
        verified: false,
        elapsed: start.elapsed(),
    };
    // Ends the digest thread's input.
    drop(w.digest.take());
    Ok(Written {
        digest: None,
        out: w.sink.finish().map_err(write_err)?,
        metas,
        summary,
    })
}

/// The whole copy in memory (tests, small files).
pub fn compact_to_vec<'a>(
    db: &'a Db,
    opts: &CompactOptions,
    t: &'a Transform<'a>,
) -> Result<(Vec<u8>, CompactSummary)> {
    let w = compact_to(db, opts, t, Vec::new())?;
    let mut bytes = w.out;
    bytes[..w.metas.len()].copy_from_slice(&w.metas);
    Ok((bytes, w.summary))
}

/// What a long compaction is doing, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Bytes of the copy written so far.
    Written(u64),
    /// The copy's estimated final size, refined as it goes (etcd files: by how far the
    /// `key` bucket's revisions have come). The last `Written` before `Verifying` is exact.
    Total(u64),
    /// Re-reading and checking the copy.
    Verifying,
}

/// A progress callback.
pub type ProgressFn<'p> = &'p dyn Fn(Progress);

/// Counts bytes on their way to `inner`, reports every 4 MiB and nudges the write-behind
/// thread every [`WRITE_BEHIND_STEP`].
struct Counted<'p, W> {
    inner: W,
    written: u64,
    reported: u64,
    progress: Option<ProgressFn<'p>>,
    nudged: u64,
    write_behind: Option<std::sync::mpsc::SyncSender<()>>,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        if let Some(p) = self.progress
            && self.written - self.reported >= 4 << 20
        {
            self.reported = self.written;
            p(Progress::Written(self.written));
        }
        if let Some(tx) = &self.write_behind
            && self.written - self.nudged >= WRITE_BEHIND_STEP
        {
            self.nudged = self.written;
            // Busy with the last nudge: this one is folded into its next fdatasync.
            let _ = tx.try_send(());
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A scoped thread's result; its panic goes on in this thread.
fn joined<T>(h: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// How [`compact_file`] writes its file.
#[derive(Clone, Copy)]
pub struct FileOutput<'p> {
    /// Replace an existing destination (never one a process holds for writing).
    pub force: bool,
    /// Re-read and check the copy before the rename.
    pub verify: bool,
    /// The copy's permission bits (and owner): never wider than its source's.
    pub perms: Perms,
    /// Append the SHA-256 trailer of `etcdctl snapshot save`, so `snapshot restore` takes
    /// the copy without `--skip-hash-check`.
    pub trailer: bool,
    /// Called as the copy is written and verified.
    pub progress: Option<ProgressFn<'p>>,
}

/// Write the copy of `db` to `dst` atomically; see [`FileOutput`] for the choices.
pub fn compact_file<'a>(
    db: &'a Db,
    dst: &Path,
    opts: &CompactOptions,
    t: &'a Transform<'a>,
    how_out: &FileOutput<'_>,
) -> Result<CompactSummary> {
    let (check_output, progress) = (how_out.verify, how_out.progress);
    let mut af = AtomicFile::create(dst, how_out.force, how_out.perms)?;
    let tmp = af.tmp_path().to_path_buf();
    let io = |source| tmp_error(dst, &tmp, "writing the copy", source);
    let summary = std::thread::scope(|s| -> Result<CompactSummary> {
        let (nudge, write_behind) = spawn_write_behind(s, af.file().try_clone().map_err(io)?);
        let counted = Counted {
            inner: af.file().try_clone().map_err(io)?,
            written: 0,
            reported: 0,
            progress,
            nudged: 0,
            write_behind: Some(nudge),
        };

        let how = Copying {
            plan_only: false,
            digest: check_output,
            progress,
        };
        // Name the temp file in write errors (a full disk shows up here).
        let w = copy_through(db, opts, t, counted, how).map_err(|e| match e {
            Error::Write(source) => io(source),
            e => e,
        })?;
        // Dropping the sender ends the write-behind thread after its last sync.
        let Counted {
            inner: file,
            write_behind: nudge,
            ..
        } = w.out;
        drop(nudge);
        file.write_all_at(&w.metas, 0).map_err(io)?;
        let mut summary = w.summary;
        // The copy is re-read from the page cache while the disk takes it (the write-behind's
        // last sync, then ours): what is checked is what the kernel writes out. The rename
        // waits for all three.
        let verified = w.digest.map(|expected| {
            if let Some(p) = progress {
                p(Progress::Verifying);
            }
            let tmp = &tmp;
            s.spawn(move || -> Result<()> {
                let copy = Db::open(tmp, OpenOptions { lock: false })?;
                verify(&copy, &expected)
            })
        });
        // The trailer covers the finished pages, metas included: hashed from the page
        // cache while the verification reads the same bytes on the other core.
        let trailer = if how_out.trailer {
            let sha = crate::etcd::sha256_of_prefix(&file, summary.dst_size).map_err(io)?;
            file.write_all_at(&sha, summary.dst_size).map_err(io)?;
            summary.trailer = true;
            summary.dst_size += sha.len() as u64;
            Ok(())
        } else {
            Ok(())
        };
        let synced = trailer.and_then(|()| file.sync_all().map_err(io));
        let behind = write_behind
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
            .map_err(io);
        if let Some(v) = verified {
            joined(v)?;
            summary.verified = true;
        }
        behind?;
        synced?;
        Ok(summary)
    })?;
    af.commit()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::digest::{content_digest, expected_digest};

    /// A compaction at the midpoint of revisions 1..=10000 keeping one page per 100
    /// revisions below it and one page per 2 above it: the estimate is the true final
    /// size (2550 pages) from 2% of the way on, both below R and above it.
    #[test]
    fn the_size_estimate_follows_what_is_kept_below_and_above_the_compaction() {
        let totals = std::cell::RefCell::new(Vec::new());
        let record = |p: Progress| {
            if let Progress::Total(t) = p {
                totals.borrow_mut().push((t / 4096) as i64);
            }
        };
        let mut e = SizeEstimate {
            first: 1,
            last: 10_001,
            rev: 5_001,
            src_bytes: 5_000.0 * 4096.0 * 2.0,
            at_rev: None,
            reported: 0,
            progress: &record,
        };
        let mut pages = 0.0;
        for main in 1..=10_001i64 {
            pages += if main <= 5_001 { 0.01 } else { 0.5 };
            e.at(&main.to_be_bytes(), pages as PageId, 4096);
        }
        let totals = totals.into_inner();
        assert!(!totals.is_empty());
        // Below R the part above is the source's share (10000 pages here): an overestimate
        // the rate above R then corrects.
        assert!(
            totals.iter().all(|t| (2_000..=10_100).contains(t)),
            "{totals:?}"
        );
        let last = *totals.last().unwrap();
        assert!((2_500..=2_560).contains(&last), "{totals:?}");
    }

    fn fixture(name: &str) -> Db {
        let p = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("testdata/bbolt")
            .join(name);
        Db::open(p, OpenOptions { lock: false }).unwrap()
    }

    /// A copy that takes the survivors up to R from the plan (and walks only what lies
    /// above R) is byte for byte the copy that walks the whole `key` bucket: real etcd
    /// members, every revision, both tombstone rules.
    #[test]
    fn the_plans_survivors_copy_as_the_walk_does() {
        use crate::etcd::{CompactionPlan, Revisions, Rules, TombstoneAtRev};
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/etcd"));
        let opts = CompactOptions::default();
        for name in ["db", "snapshot.db"] {
            let src = Db::open(dir.join(name), OpenOptions { lock: false }).unwrap();
            let (_, revs) = Revisions::read(&src, &Rules::default()).unwrap();
            for rev in revs.compacted.max(0) + 1..=revs.current {
                for rule in [TombstoneAtRev::Keep, TombstoneAtRev::Drop] {
                    let fast = CompactionPlan::build(&src, rev, rule).unwrap();
                    assert!(fast.below().is_some(), "{name} at {rev}");
                    let walked = CompactionPlan::build(&src, rev, rule)
                        .unwrap()
                        .without_below();
                    let copy = |plan: &CompactionPlan<'_>| {
                        let t = Transform {
                            plan: Some(plan),
                            ..Transform::default()
                        };
                        let (bytes, summary) = compact_to_vec(&src, &opts, &t).unwrap();
                        (
                            bytes,
                            summary.revisions_removed,
                            summary.keys,
                            expected_digest(&src, &t).unwrap(),
                        )
                    };
                    assert!(copy(&fast) == copy(&walked), "{name} at {rev} {rule:?}");
                }
            }
        }
    }

    /// Two revision keys swapped in a real member's `key` bucket: the plan cannot vouch
    /// for the order, so the copy walks the bucket and refuses the source as before
    /// (rather than writing the survivors in an order the source does not have).
    #[test]
    fn a_plan_over_keys_out_of_order_hands_nothing_over() {
        use crate::etcd::{CompactionPlan, Revisions, Rules, TombstoneAtRev};
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/etcd/db"
        ));
        let mut bytes = std::fs::read(path).unwrap();
        let keys: Vec<Vec<u8>> = {
            let src = Db::from_bytes(bytes.clone()).unwrap();
            let key = Bucket::root_of(&src).bucket(KEY_BUCKET).unwrap().unwrap();
            key.iter().map(|e| e.unwrap().key.to_vec()).collect()
        };
        let (a, b) = (&keys[3], &keys[9]);
        let find = |bytes: &[u8], k: &[u8]| bytes.windows(k.len()).position(|w| w == k).unwrap();
        let (i, j) = (find(&bytes, a), find(&bytes, b));
        bytes[i..i + a.len()].copy_from_slice(b);
        bytes[j..j + b.len()].copy_from_slice(a);
        let src = Db::from_bytes(bytes).unwrap();
        let (_, revs) = Revisions::read(&src, &Rules::default()).unwrap();
        let plan = CompactionPlan::build(&src, revs.current, TombstoneAtRev::Keep).unwrap();
        assert!(plan.below().is_none());
        let t = Transform {
            plan: Some(&plan),
            ..Transform::default()
        };
        let e = compact_to_vec(&src, &CompactOptions::default(), &t).expect_err("refused");
        assert_eq!(
            e.damage_kind(),
            Some(crate::error::DamageKind::KeyOrder),
            "{e}"
        );
    }

    #[test]
    fn verify_accepts_a_faithful_copy_and_rejects_a_different_one() {
        let src = fixture("nested.db");
        let t = Transform::default();
        let (bytes, _) = compact_to_vec(&src, &CompactOptions::default(), &t).unwrap();
        let copy = Db::from_bytes(bytes).unwrap();
        let expected = expected_digest(&src, &t).unwrap();
        verify(&copy, &expected).unwrap();
        let other = expected_digest(&fixture("flat.db"), &t).unwrap();
        let err = verify(&copy, &other).unwrap_err();
        assert!(matches!(err, Error::Verify(_)), "{err}");
        assert!(!err.is_corruption());
    }

    /// Releasing the map after every page read (the RSS bound, `ResidentBudget`) changes
    /// nothing a walk sees: the copy, its digest, the check.
    #[test]
    fn releasing_the_map_after_every_page_changes_nothing() {
        for name in [
            "nested.db",
            "bigvalues.db",
            "deletes-nosync.db",
            "ps65536.db",
        ] {
            let src = fixture(name);
            let t = Transform::default();
            let opts = CompactOptions::default();
            let how = Copying {
                digest: true,
                ..Copying::default()
            };
            let plain = copy_through(&src, &opts, &t, Vec::new(), how).unwrap();
            let checked = crate::check::check(&src);
            src.set_resident_budget(Some(1));
            let released = copy_through(&src, &opts, &t, Vec::new(), how).unwrap();
            assert_eq!(plain.out, released.out, "{name}");
            assert_eq!(plain.digest, released.digest, "{name}");
            assert_eq!(
                content_digest(&src).unwrap(),
                plain.digest.unwrap(),
                "{name}"
            );
            assert_eq!(crate::check::check(&src), checked, "{name}");
        }
    }
}
