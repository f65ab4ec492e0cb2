//! The one pass over the `key` bucket: per-key accumulators, the revision bands, the
//! entries' layout and their compaction thresholds.

use crate::error::Result;
use crate::etcd::decode_entry_through_value;
use crate::etcd::key_bucket;
use crate::etcd::{Chunked, KeyId, KeyIds, Pipeline, key_id, pipelined};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use crate::reader::{Cursor, Db, key_cmp};
use crate::writer::ElementLen;

use super::kinds::{Encoding, kind_parts};
use super::tables::{group_name, group_span};
use super::*;
use crate::etcd::KeyMap;
use std::collections::HashMap;

/// A `key` bucket entry on its way to the pass ([`Pipeline`]).
struct Step<'a> {
    key: &'a [u8],
    value_len: usize,
    rev: crate::etcd::RevisionKey,
    kv: crate::etcd::KeyValue<'a>,
    id: KeyId,
}

/// What the pass keeps per distinct user key.
#[derive(Debug, Clone, Copy, Default)]
/// 48 bytes, one per key: an entry's size fits 32 bits (a bbolt key is at most
/// 32 KiB and a value under 2 GiB), and so does a key's count of revisions in practice
/// (it saturates). The key's bytes stay in the file ([`KeyAcc::key_at`]): only the top
/// keys' are read again, for the report.
pub(super) struct KeyAcc {
    /// Where the key's bytes are in the file (in its first entry's value), and how many.
    pub(super) key_at: u64,
    pub(super) key_len: u32,
    /// The key's group ([`Groups`]).
    pub(super) group: u32,
    pub(super) revisions: u32,
    pub(super) bytes: u64,
    /// The newest entry so far.
    pub(super) last_bytes: u32,
    pub(super) last_tombstone: bool,
    pub(super) last_value_len: u32,
    /// Index of the newest entry in [`Pass::layout`].
    pub(super) last_index: usize,
    /// The object kind of the newest put: an index into [`Pass::kinds`] (0 until a put).
    pub(super) last_kind: u16,
    /// A put came (so `last_kind` is one).
    pub(super) put_seen: bool,
}

/// A `key` bucket entry as the candidates' layout needs it.
#[derive(Debug, Clone, Copy)]
/// 8 bytes: a `key` bucket key is a revision (17 or 18 bytes, the decoder refuses any
/// other), and there are at most [`MAX_CANDIDATES`](super::capacity::MAX_CANDIDATES).
pub(super) struct EntryLayout {
    value: u32,
    key: u16,
    /// The first candidate (index) whose compaction removes the entry; the number of
    /// candidates when none does.
    pub(super) gone_at: u16,
}

const _: () = assert!(std::mem::size_of::<EntryLayout>() == 8);
const _: () = assert!(std::mem::size_of::<KeyAcc>() == 48);

impl EntryLayout {
    fn new(len: ElementLen, gone_at: u16) -> EntryLayout {
        EntryLayout {
            value: len.value,
            key: u16::try_from(len.key).unwrap_or(u16::MAX),
            gone_at,
        }
    }

    /// The entry's key and value lengths.
    pub(super) fn len(&self) -> ElementLen {
        ElementLen {
            key: u32::from(self.key),
            value: self.value,
        }
    }
}

/// The result of the one pass, before capacity planning.
pub(super) struct Pass {
    pub(super) keys: KeyIds<KeyAcc>,
    /// The `key` bucket's entries came in strictly ascending order, as the writer needs
    /// them (otherwise `compact` refuses the file and the layout figures are not used).
    pub(super) ordered: bool,
    /// Every entry, in bucket order.
    pub(super) layout: Chunked<EntryLayout>,
    pub(super) figures: KeyFigures,
    pub(super) bands: Vec<RevisionBand>,
    pub(super) thresholds: ThresholdHistogram,
    /// Entry bytes with main above the rate's base revision.
    pub(super) recent_bytes: u64,
    /// The object kinds the puts hold.
    pub(super) kinds: Kinds,
    /// The keys' groups.
    pub(super) groups: Groups,
}

impl Pass {
    /// Start loading the table slot of `id`'s key.
    #[inline]
    fn prefetch_slot(&self, id: KeyId) {
        self.keys.prefetch_slot(id);
    }

    /// Start loading the figures of `id`'s key (its slot should be loaded by now).
    #[inline]
    fn prefetch_figures(&self, id: KeyId) {
        self.keys.prefetch_value(id);
    }

    /// Start loading the layout entry of `id`'s key's newest revision, which its next
    /// revision updates (its figures should be loaded by now).
    #[inline]
    fn prefetch_last_layout(&self, id: KeyId) {
        if let Some(l) = self
            .keys
            .get_by_id(id)
            .and_then(|a| self.layout.get(a.last_index))
        {
            crate::reader::prefetch_value(l);
        }
    }
}

/// The keys' groups ([`group_of`]), numbered in the order they came: a key's group is
/// found once, when the pass meets the key (its bytes are at hand then, not later).
#[derive(Default)]
pub(super) struct Groups {
    /// By name.
    ids: HashMap<String, u32>,
    /// Per way of grouping ([`group_span`]: each Kubernetes prefix, then by path
    /// segments), the key prefixes met that name a group: most keys find theirs here,
    /// without making the name.
    spans: Vec<KeyMap<u32>>,
}

impl Groups {
    /// The number of group `name`, adding it when new.
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.ids.len() as u32;
        self.ids.insert(name.to_owned(), id);
        id
    }

    /// The number of `key`'s group.
    fn id(&mut self, key: &[u8], opts: &EtcdOptions) -> u32 {
        let k8s = &opts.k8s_prefixes;
        let (by, span) = group_span(key, opts.prefix_depth, opts.by_namespace, k8s);
        let (way, span) = (by.unwrap_or(k8s.len()), &key[..span]);
        if self.spans.len() <= way {
            self.spans.resize_with(way + 1, KeyMap::default);
        }
        if let Some(&id) = self.spans[way].get(span) {
            return id;
        }
        // Two prefixes may show as one name (text that reads as another's hex): one group.
        let id = self.intern(&group_name(span, by.map(|i| k8s[i].as_str())));
        self.spans[way].insert(span.into(), id);
        id
    }

    /// The names, by number.
    pub(super) fn names(&self) -> Vec<&str> {
        let mut names = vec![""; self.ids.len()];
        for (name, &id) in &self.ids {
            names[id as usize] = name;
        }
        names
    }
}

/// The object kinds seen, numbered in the order they came (0: not an object). Few: a
/// cluster has some dozens, so a scan beats a map keyed by the parts of every put.
#[derive(Default)]
pub(super) struct Kinds {
    pub(super) seen: Vec<(Encoding, Vec<u8>, Vec<u8>)>,
}

impl Kinds {
    /// The number of a kind another pass numbered (its parts as [`Kinds::id`] found them),
    /// adding it when new.
    fn intern(&mut self, (enc, api, kind): &(Encoding, Vec<u8>, Vec<u8>)) -> u16 {
        self.find_or_add(*enc, api, kind, 0)
    }

    /// The kind of `value`; `hint` is the kind to try first (the key's previous put's: a
    /// key keeps its kind, and a scan of dozens of kinds per put was a tenth of `analyze`).
    fn id(&mut self, value: &[u8], hint: u16) -> u16 {
        let (enc, api, kind) = kind_parts(value);
        self.find_or_add(enc, api, kind, hint)
    }

    fn find_or_add(&mut self, enc: Encoding, api: &[u8], kind: &[u8], hint: u16) -> u16 {
        if self.seen.is_empty() {
            self.seen.push((Encoding::Other, Vec::new(), Vec::new()));
        }
        // Empty parts (every value not an object, an encrypted value's kind) are compared by
        // length only: `==` would hand `memcmp` an empty `Vec`'s dangling pointer, and its
        // masked vector load of an unmapped address takes a slow microcode assist (a third
        // of `analyze` on a file of plain values).
        let same = |a: &[u8], b: &[u8]| a.len() == b.len() && (a.is_empty() || a == b);
        let is =
            |(e, a, k): &(Encoding, Vec<u8>, Vec<u8>)| *e == enc && same(a, api) && same(k, kind);
        if self.seen.get(usize::from(hint)).is_some_and(is) {
            return hint;
        }
        if let Some(i) = self.seen.iter().position(is) {
            return i as u16;
        }
        if self.seen.len() >= usize::from(u16::MAX) {
            return 0; // a hostile file's endless kinds: counted as not objects
        }
        self.seen.push((enc, api.to_vec(), kind.to_vec()));
        (self.seen.len() - 1) as u16
    }
}

/// `n` bands of equal width over `first..=last` (the last one shorter), and the width.
fn revision_bands(first: i64, last: i64, n: usize) -> (Vec<RevisionBand>, i64) {
    let n = n.max(1) as i64;
    let width = ((last - first + 1).max(1) + n - 1) / n;
    let mut bands = Vec::new();
    let mut b0 = first;
    while b0 <= last {
        bands.push(RevisionBand {
            first: b0,
            last: (b0 + width - 1).min(last),
            ..Default::default()
        });
        b0 += width;
    }
    (bands, width)
}

/// What every part of the pass shares.
pub(super) struct PassCtx<'c> {
    first: i64,
    width: i64,
    rate_base: i64,
    candidates: &'c Candidates,
    opts: &'c EtcdOptions,
    edges: Vec<i64>,
    bands: Vec<RevisionBand>,
    /// Revisions covered so far by all parts, for the progress callback.
    covered: AtomicU64,
    total: u64,
}

impl<'c> PassCtx<'c> {
    /// For entries of main revisions `first..=last` (the bands span them); `edges`: the
    /// thresholds' band edges; `rate_base`: the revision above which entries are recent.
    pub(super) fn new(
        first: i64,
        last: i64,
        edges: Vec<i64>,
        rate_base: i64,
        candidates: &'c Candidates,
        opts: &'c EtcdOptions,
    ) -> PassCtx<'c> {
        let (bands, width) = revision_bands(first, last, opts.histogram_bands);
        PassCtx {
            first,
            width,
            rate_base,
            candidates,
            opts,
            edges,
            bands,
            covered: AtomicU64::new(0),
            total: (last - first).max(0) as u64,
        }
    }

    /// The pass of the parts, in bucket order ([`merged`] when two), with its per-key
    /// figures added up.
    pub(super) fn finish(&self, earlier: Part<'_>, later: Option<Part<'_>>) -> Pass {
        let mut p = match later {
            None => earlier.pass,
            Some(later) => merged(earlier, later, self.candidates),
        };
        if let Some(progress) = &self.opts.progress {
            progress(self.total, self.total);
        }
        let f = &mut p.figures;
        f.distinct_keys = p.keys.len() as u64;
        for acc in p.keys.values() {
            if !acc.last_tombstone {
                // The newest put stays at every R.
                p.thresholds.add(None, u64::from(acc.last_bytes));
                f.live_keys += 1;
                f.live_value_bytes += u64::from(acc.last_value_len);
            }
            f.latest_bytes += u64::from(acc.last_bytes);
        }
        f.historical_revisions = f.entries - f.distinct_keys;
        f.history_bytes = f.entry_bytes - f.latest_bytes;
        p
    }
}

/// Files under this size are passed on one thread: the second one is not worth it.
const SPLIT_MIN_BYTES: u64 = 16 << 20;

/// The pass over the `key` bucket by cursors. A bucket whose root is a branch is read in
/// two parts (the subtrees of the first and the second half of the root's elements: an
/// exact split), one per thread, then [`merged`]: the result is the one-thread pass's,
/// entry for entry. (`analyze` usually feeds the parts from the page map's walk instead:
/// `super::walk_pass`.)
pub(super) fn key_pass<'a>(db: &'a Db, ctx: &PassCtx<'_>) -> Result<Pass> {
    let opts = ctx.opts;
    let key = key_bucket(db)?;
    let split = key
        .root_branch()?
        .map(|r| r.count())
        .filter(|&n| n >= 2 && (opts.split_always || db.file_size() >= SPLIT_MIN_BYTES));
    let from_cursor = |entries: Cursor<'a>, keep_firsts| -> Result<Part<'a>> {
        let mut part = PartPass::new(db, ctx, keep_firsts);
        for e in entries {
            let e = e?;
            part.push(e.key, e.value, e.is_bucket())?;
        }
        Ok(part.finish())
    };
    Ok(match split {
        None => ctx.finish(from_cursor(key.iter(), false)?, None),
        Some(n) => {
            let (earlier, later) = std::thread::scope(|s| {
                let later = s.spawn(|| from_cursor(key.iter_root_part(n / 2, n), true));
                let earlier = from_cursor(key.iter_root_part(0, n / 2), false);
                (
                    earlier,
                    later
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                )
            });
            ctx.finish(earlier?, Some(later?))
        }
    })
}

/// One part's pass, and the first and last keys it met (for the order across parts).
pub(super) struct Part<'a> {
    pass: Pass,
    /// Per key (in the order of `pass.keys`), its id and the main revision of its first
    /// entry in the part: where a later part takes over the key's history ([`merged`]).
    /// Beside the table, not in [`KeyAcc`]: only the merge reads it (kept when asked).
    firsts: Chunked<(KeyId, i64)>,
    first_key: Option<&'a [u8]>,
    last_key: Option<&'a [u8]>,
}

/// The pass over one part of the `key` bucket (or all of it), fed its entries in bucket
/// order ([`PartPass::push`]): by a cursor, or by the page map's walk. Each entry goes
/// through a [`Pipeline`] so the memory of its key's figures is prefetched some entries
/// ahead.
pub(super) struct PartPass<'a, 'c> {
    db: &'a Db,
    ctx: &'c PassCtx<'c>,
    p: Pass,
    keep_firsts: bool,
    firsts: Chunked<(KeyId, i64)>,
    first_key: Option<&'a [u8]>,
    prev_key: Option<&'a [u8]>,
    /// The first main revision met, and the revisions last added to `ctx.covered`.
    start: Option<i64>,
    reported: u64,
    ring: Pipeline<Step<'a>>,
}

impl<'a, 'c> PartPass<'a, 'c> {
    /// `keep_firsts`: keep each key's first revision (a part that is merged after another).
    pub(super) fn new(db: &'a Db, ctx: &'c PassCtx<'c>, keep_firsts: bool) -> Self {
        PartPass {
            db,
            ctx,
            p: Pass {
                keys: KeyIds::default(),
                ordered: true,
                layout: Chunked::default(),
                figures: KeyFigures::default(),
                bands: ctx.bands.clone(),
                thresholds: ThresholdHistogram::new(ctx.edges.clone()),
                recent_bytes: 0,
                kinds: Kinds::default(),
                groups: Groups::default(),
            },
            keep_firsts,
            firsts: Chunked::default(),
            first_key: None,
            prev_key: None,
            start: None,
            reported: 0,
            ring: Pipeline::default(),
        }
    }

    /// The next entry of the part: a `key` bucket key and value (an error for anything
    /// that is not a revision and a `KeyValue`).
    #[inline]
    pub(super) fn push(&mut self, key: &'a [u8], value: &'a [u8], is_bucket: bool) -> Result<()> {
        let (rev, kv) = decode_entry_through_value(self.db, key, value, is_bucket)?;
        let step = Step {
            key,
            value_len: value.len(),
            rev,
            kv,
            id: key_id(kv.key),
        };
        let due = self.ring.push(
            &self.p,
            step,
            |p, s| p.prefetch_slot(s.id),
            |p, s| p.prefetch_figures(s.id),
            |p, s| p.prefetch_last_layout(s.id),
        );
        if let Some(s) = due {
            self.apply(s);
        }
        Ok(())
    }

    /// The part's pass, once every entry is in.
    pub(super) fn finish(mut self) -> Part<'a> {
        while let Some(s) = self.ring.pop() {
            self.apply(s);
        }
        Part {
            pass: self.p,
            firsts: self.firsts,
            first_key: self.first_key,
            last_key: self.prev_key,
        }
    }

    fn apply(&mut self, step: Step<'a>) {
        let (ctx, db, p) = (self.ctx, self.db, &mut self.p);
        let (first, width, candidates, opts) = (ctx.first, ctx.width, ctx.candidates, ctx.opts);
        let Step {
            key,
            value_len,
            rev,
            kv,
            id,
        } = step;
        if self.prev_key.is_some_and(|k| key_cmp(key, k).is_le()) {
            p.ordered = false;
        }
        self.first_key = self.first_key.or(Some(key));
        self.prev_key = Some(key);
        let bytes = (key.len() + value_len) as u64;
        let f = &mut p.figures;
        f.entries += 1;
        f.entry_bytes += bytes;
        f.tombstones += u64::from(rev.tombstone);
        if rev.main > ctx.rate_base {
            p.recent_bytes += bytes;
        }
        if let Some(band) = p
            .bands
            .get_mut(((rev.main - first).max(0) / width) as usize)
        {
            band.entries += 1;
            band.bytes += bytes;
            band.tombstones += u64::from(rev.tombstone);
        }
        let acc = p.keys.entry_with_id(id);
        if acc.revisions == 0 {
            if self.keep_firsts {
                self.firsts.push((id, rev.main));
            }
            acc.key_at = db.offset_of(kv.key);
            acc.key_len = kv.key.len() as u32;
            acc.group = p.groups.id(kv.key, opts);
        } else if !acc.last_tombstone {
            // The previous put of this key goes once this revision is <= R.
            p.thresholds.add(Some(rev.main), u64::from(acc.last_bytes));
            if let Some(l) = p.layout.get_mut(acc.last_index) {
                l.gone_at = candidates.gone_at(Some(rev.main));
            }
        }
        let d = threshold(rev.main, rev.tombstone, None, opts.rule);
        if rev.tombstone {
            p.thresholds.add(d, bytes);
        }
        acc.last_index = p.layout.len();
        p.layout.push(EntryLayout::new(
            ElementLen {
                key: key.len() as u32,
                value: value_len as u32,
            },
            // A put's threshold is its key's next revision: set when that comes.
            candidates.gone_at(d),
        ));
        acc.revisions = acc.revisions.saturating_add(1);
        acc.bytes += bytes;
        acc.last_bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        acc.last_tombstone = rev.tombstone;
        acc.last_value_len = u32::try_from(kv.value.len()).unwrap_or(u32::MAX);
        if !rev.tombstone {
            acc.last_kind = p.kinds.id(kv.value, acc.last_kind);
            acc.put_seen = true;
        }
        if let Some(progress) = &opts.progress
            && p.figures.entries.is_multiple_of(4096)
        {
            let covered = (rev.main - *self.start.get_or_insert(rev.main)).max(0) as u64;
            let done = ctx
                .covered
                .fetch_add(covered.saturating_sub(self.reported), Relaxed);
            self.reported = self.reported.max(covered);
            progress(done.min(ctx.total), ctx.total);
        }
    }
}

/// The pass of two parts side by side, as one pass over both would have made it: the
/// later part's keys continue the earlier part's (a key's put in the earlier part goes at
/// its first revision in the later one), its layout follows, its kinds and groups are
/// renumbered. The later part's tables are let go chunk by chunk as they are merged in:
/// the two are never whole at once.
fn merged(earlier: Part<'_>, later: Part<'_>, candidates: &Candidates) -> Pass {
    let mut p = earlier.pass;
    let Pass {
        keys: q_keys,
        ordered: q_ordered,
        layout: q_layout,
        figures: q_figures,
        bands: q_bands,
        thresholds: q_thresholds,
        recent_bytes: q_recent_bytes,
        kinds: q_kinds,
        groups: q_groups,
    } = later.pass;
    p.ordered &= q_ordered
        && earlier
            .last_key
            .zip(later.first_key)
            .is_none_or(|(l, f)| key_cmp(f, l).is_gt());
    let kinds: Vec<u16> = q_kinds.seen.iter().map(|k| p.kinds.intern(k)).collect();
    let groups: Vec<u32> = q_groups
        .names()
        .into_iter()
        .map(|g| p.groups.intern(g))
        .collect();
    let offset = p.layout.len();
    // A wait for memory per key three times over (its slot, its figures, its last layout
    // entry): prefetched some keys ahead, as the pass does.
    let keys = q_keys
        .into_values()
        .zip(later.firsts.into_chunks().flatten())
        .map(|(b, (id, first_main))| Ok::<_, ()>((id, b, first_main)));
    type Merge = (KeyId, KeyAcc, i64);
    let _ = pipelined(
        keys,
        &mut p,
        |p, m: &Merge| p.prefetch_slot(m.0),
        |p, m: &Merge| p.prefetch_figures(m.0),
        |p, m: &Merge| p.prefetch_last_layout(m.0),
        |p, (id, b, first_main)| {
            let a = p.keys.entry_with_id(id);
            if a.revisions == 0 {
                a.key_at = b.key_at;
                a.key_len = b.key_len;
                a.group = groups.get(b.group as usize).copied().unwrap_or(0);
            } else if !a.last_tombstone {
                p.thresholds.add(Some(first_main), u64::from(a.last_bytes));
                if let Some(l) = p.layout.get_mut(a.last_index) {
                    l.gone_at = candidates.gone_at(Some(first_main));
                }
            }
            a.revisions = a.revisions.saturating_add(b.revisions);
            a.bytes += b.bytes;
            a.last_bytes = b.last_bytes;
            a.last_tombstone = b.last_tombstone;
            a.last_value_len = b.last_value_len;
            a.last_index = b.last_index + offset;
            if b.put_seen {
                a.last_kind = kinds.get(usize::from(b.last_kind)).copied().unwrap_or(0);
                a.put_seen = true;
            }
            Ok(())
        },
    );
    // Chunk by chunk, each let go once copied: the two layouts are never whole twice.
    for chunk in q_layout.into_chunks() {
        chunk.into_iter().for_each(|l| p.layout.push(l));
    }
    let f = &mut p.figures;
    f.entries += q_figures.entries;
    f.entry_bytes += q_figures.entry_bytes;
    f.tombstones += q_figures.tombstones;
    p.recent_bytes += q_recent_bytes;
    for (a, b) in p.bands.iter_mut().zip(&q_bands) {
        a.entries += b.entries;
        a.bytes += b.bytes;
        a.tombstones += b.tombstones;
    }
    p.thresholds.absorb(&q_thresholds);
    p
}
