//! HashKV in one pass over the `key` bucket on both cores, for a revision above a finished
//! compaction (the common case); [`one_pass`] says when it cannot answer.

use std::sync::OnceLock;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use crate::error::Error;
use crate::etcd::keyindex::{KeyIndex, decode_entry_key_only};
use crate::etcd::keymap::pipelined;
use crate::etcd::keytable::{KeyTable, key_hash};
use crate::etcd::meta::key_bucket;
use crate::etcd::span_crc::SpanCrc;
use crate::etcd::{KEY_BUCKET, RevisionKey, Rules};
use crate::reader::{Bucket, Db, Entry, ResidentBudget};

/// HashKV in one pass over the `key` bucket, on both cores.
///
/// `keep(rev)` decides only the entries at or below the compact revision (the "low"
/// entries, at the start of the bucket), and which of them it keeps depends only on the
/// keys that have one. The low entries go through the key index (after a finished
/// compaction they are one survivor per key); a low key's kept revision `L` stays kept
/// exactly when the key has no entry in `(compact, rev]` (a put there becomes the newest
/// revision <= rev; a tombstone there closes L's generation, which doCompact then skips or,
/// at rev itself, keeps without L). So the entries above the compact revision only need
/// to mark the low keys they touch, in any order: they are cut by revision into
/// [`UPPER_CHUNKS`] chunks, each hashed into a CRC of its own, which the two threads take
/// in turn; the CRC of `"key"` and the kept low entries is then joined to the chunks' with
/// `crc32c_combine`. Entries above `rev` never change `keep(rev)`.
///
/// One thread reads the low entries first while the other starts on the chunks: until the
/// low keys are known it keeps each touched key aside (a copy, up to a 64th of the file,
/// then it waits) and marks them afterwards.
///
/// `None` when the shortcut does not apply and `hashkv::two_passes` must answer: a low entry
/// after a higher one (negative revisions, in a damaged file), or no low key keeps its
/// revision (whether `keep` is empty then depends on the other keys too).
pub(super) fn one_pass(
    db: &Db,
    rev: i64,
    compact: i64,
    rules: &Rules,
) -> Result<Option<u32>, Error> {
    let bucket = key_bucket(db)?;
    let upper = Upper::new(db, &bucket, rev, compact);
    let (low, mine, helpers) = std::thread::scope(|s| {
        let helper = s.spawn(|| upper.hash_chunks());
        let low = {
            // Whatever happens here, the helper must not wait for low keys forever.
            let _publish = PublishOnDrop(&upper);
            let low = low_pass(db, &bucket, rev, compact, rules);
            match &low {
                Ok(l) if !(l.low > 0 && l.slots.is_empty()) => {}
                _ => upper.stop.store(true, Relaxed),
            }
            low.map(|mut l| {
                let _ = upper.slots.set(std::mem::take(&mut l.slots));
                l
            })
        };
        let mine = upper.hash_chunks();
        let helpers = helper
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (low, mine, helpers)
    });
    let low = low?;
    if upper.stop.load(Relaxed) {
        return Ok(None);
    }
    let (mine, helpers) = (mine?, helpers?);
    if mine.low_after_higher || helpers.low_after_higher {
        return Ok(None);
    }
    let slots = upper.slots.get().expect("set before the stop check");
    let mut touched = vec![false; slots.len()];
    for w in [&mine, &helpers] {
        w.mark(slots, &mut touched);
    }
    if low.low > 0 && touched.iter().all(|&t| t) {
        return Ok(None);
    }
    let mut h = crc32c::crc32c_append(0, KEY_BUCKET);
    let (crc, len) = hash_low(db, &bucket, &low, slots, &touched, compact, rules)?;
    h = crc32c::crc32c_combine(h, crc, len);
    let mut chunks: Vec<&(usize, u32, usize)> = mine.done.iter().chain(&helpers.done).collect();
    chunks.sort_unstable_by_key(|c| c.0);
    Ok(Some(chunks.into_iter().fold(h, |h, &(_, crc, len)| {
        crc32c::crc32c_combine(h, crc, len)
    })))
}

/// Chunks of the revisions above the compact revision, hashed one at a time by either
/// thread: several per thread, so the one that read the low entries first takes fewer.
const UPPER_CHUNKS: i64 = 16;

/// `[from, to)` main-revision ranges covering `first..=rev`; the last one runs to the end
/// of the bucket, where negative mains sort (damaged files).
fn upper_chunks(first: i64, rev: i64) -> Vec<(i64, i64)> {
    let span = (i128::from(rev) - i128::from(first) + 1).max(1);
    let mut bounds: Vec<i64> = (0..UPPER_CHUNKS)
        .map(|i| (i128::from(first) + span * i128::from(i) / i128::from(UPPER_CHUNKS)) as i64)
        .collect();
    bounds.dedup();
    bounds.push(i64::MAX);
    bounds.windows(2).map(|w| (w[0], w[1])).collect()
}

/// The entries at or below the compact revision, read first.
struct LowPart<'a> {
    ix: KeyIndex<'a>,
    low: usize,
    /// The low entries, kept to hash them after the chunks without a second walk, unless
    /// they would take more than a 64th of the file (a compaction scheduled but never
    /// finished leaves every revision below it).
    kept: Option<Vec<LowEntry<'a>>>,
    /// The low keys whose revision keep(rev) may keep, numbered for the chunks' marks.
    slots: KeyTable<()>,
}

fn low_pass<'a>(
    db: &'a Db,
    bucket: &Bucket<'a>,
    rev: i64,
    compact: i64,
    rules: &Rules,
) -> Result<LowPart<'a>, Error> {
    let mut ix = KeyIndex::new(rev, rules);
    let mut low = 0usize;
    let mut kept: Option<Vec<LowEntry<'_>>> = Some(Vec::new());
    let cap = (db.file_size() / 64) as usize / std::mem::size_of::<LowEntry<'_>>();
    for e in bucket.iter() {
        let e = e?;
        let (r, kv) = decode_entry_key_only(db, e.key, e.value, e.is_bucket())?;
        if r.main > compact {
            break;
        }
        low += 1;
        ix.add(r, kv.key);
        if let Some(v) = kept.as_mut() {
            if v.len() < cap {
                v.push(LowEntry {
                    r,
                    key: e.key,
                    value: e.value,
                    user_key: kv.key,
                });
            } else {
                kept = None;
            }
        }
    }
    let kept_keys = ix.iter().filter(|(_, st)| st.kept().is_some()).count();
    // Every entry above the compact revision searches this table, most for a key not in it.
    let mut slots: KeyTable<()> = KeyTable::sparse_for(kept_keys);
    for (key, _) in ix.iter().filter(|(_, st)| st.kept().is_some()) {
        if !slots.set(key_hash(key), key, ()) {
            return Err(super::too_many_keys("HashKV"));
        }
    }
    Ok(LowPart {
        ix,
        low,
        kept,
        slots,
    })
}

/// CRC (from 0) and length of the kept low entries no chunk touched, in bucket order.
fn hash_low(
    db: &Db,
    bucket: &Bucket<'_>,
    low: &LowPart<'_>,
    slots: &KeyTable<()>,
    touched: &[bool],
    compact: i64,
    rules: &Rules,
) -> Result<(u32, usize), Error> {
    let untouched_kept = |key: &[u8]| {
        slots
            .index_of(key_hash(key), key)
            .is_some_and(|slot| !touched[slot])
    };
    let mut crc = SpanCrc::over(db.bytes());
    // The kept entries point into pages the first walk let go: hashing them maps those
    // pages again, so this pass releases the map as the walks do.
    let mut resident = ResidentBudget::new(db);
    let mut hash = |l: &LowEntry<'_>| {
        resident.reread(db, (l.key.len() + l.value.len()) as u64);
        let kept = low.ix.get(l.user_key).and_then(|st| st.kept()) == Some((l.r.main, l.r.sub));
        if kept && untouched_kept(l.user_key) && !rules.hash_skips_tombstone(&l.r, compact) {
            crc.append(l.key);
            crc.append(l.value);
        }
    };
    match &low.kept {
        Some(v) => v.iter().for_each(&mut hash),
        None => {
            for e in bucket.iter().take(low.low) {
                let e = e?;
                let (r, kv) = decode_entry_key_only(db, e.key, e.value, e.is_bucket())?;
                hash(&LowEntry {
                    r,
                    key: e.key,
                    value: e.value,
                    user_key: kv.key,
                });
            }
        }
    }
    Ok(crc.finish())
}

/// An entry at or below the compact revision: its revision, bucket key and value, and the
/// user key in the value.
struct LowEntry<'a> {
    r: RevisionKey,
    key: &'a [u8],
    value: &'a [u8],
    user_key: &'a [u8],
}

/// What both threads share while hashing the entries above the compact revision.
struct Upper<'a, 'b> {
    db: &'a Db,
    bucket: &'b Bucket<'a>,
    rev: i64,
    compact: i64,
    chunks: Vec<(i64, i64)>,
    /// The next chunk to take.
    next: AtomicUsize,
    /// The low keys, once the low entries are read.
    slots: OnceLock<KeyTable<()>>,
    /// The shortcut does not apply (or the low pass failed): take no more chunks.
    stop: AtomicBool,
    /// Bytes of touched keys a thread may keep aside before the low keys are known.
    aside_cap: usize,
}

/// Sets `stop` and publishes empty low keys if the low pass ends without publishing them
/// (an error or a panic), so a thread waiting for them goes on.
struct PublishOnDrop<'u, 'a, 'b>(&'u Upper<'a, 'b>);

impl Drop for PublishOnDrop<'_, '_, '_> {
    fn drop(&mut self) {
        if self.0.slots.get().is_none() {
            self.0.stop.store(true, Relaxed);
            let _ = self.0.slots.set(KeyTable::default());
        }
    }
}

/// One thread's share of the chunks.
#[derive(Default)]
struct Worker {
    /// (chunk, CRC-32C from 0 of its hashed keys and values, their length).
    done: Vec<(usize, u32, usize)>,
    /// Which low keys (by slot) a chunk had an entry of at or below `rev`; empty until the
    /// low keys are known.
    touched: Vec<bool>,
    /// Keys met before the low keys were known: (hash, end in `aside`).
    aside_keys: Vec<(u64, usize)>,
    aside: Vec<u8>,
    /// An entry at or below the compact revision came up above it.
    low_after_higher: bool,
}

impl Worker {
    /// Add this worker's marks to `touched`.
    fn mark(&self, slots: &KeyTable<()>, touched: &mut [bool]) {
        for (t, &mine) in touched.iter_mut().zip(&self.touched) {
            *t |= mine;
        }
        let mut start = 0;
        for &(hash, end) in &self.aside_keys {
            if let Some(slot) = slots.index_of(hash, &self.aside[start..end]) {
                touched[slot] = true;
            }
            start = end;
        }
    }

    fn touch(&mut self, slots: Option<&KeyTable<()>>, hash: u64, key: &[u8]) {
        match slots {
            Some(slots) => {
                if let Some(slot) = slots.index_of(hash, key) {
                    self.touched[slot] = true;
                }
            }
            None => {
                self.aside.extend_from_slice(key);
                self.aside_keys.push((hash, self.aside.len()));
            }
        }
    }
}

impl<'a, 'b> Upper<'a, 'b> {
    fn new(db: &'a Db, bucket: &'b Bucket<'a>, rev: i64, compact: i64) -> Self {
        let first = compact.saturating_add(1).max(0);
        Upper {
            db,
            bucket,
            rev,
            compact,
            chunks: upper_chunks(first, rev),
            next: AtomicUsize::new(0),
            slots: OnceLock::new(),
            stop: AtomicBool::new(false),
            aside_cap: (db.file_size() / 64) as usize,
        }
    }

    fn hash_chunks(&self) -> Result<Worker, Error> {
        let mut w = Worker::default();
        loop {
            let c = self.next.fetch_add(1, Relaxed);
            if c >= self.chunks.len() || self.stop.load(Relaxed) {
                return Ok(w);
            }
            let (crc, len) = self.hash_chunk(&mut w, self.chunks[c])?;
            w.done.push((c, crc, len));
        }
    }

    /// The low keys if known; waits for them when this thread's aside is full.
    fn slots_for(&self, w: &mut Worker) -> Option<&KeyTable<()>> {
        let slots = match self.slots.get() {
            Some(s) => Some(s),
            None if w.aside.len() + 16 * w.aside_keys.len() >= self.aside_cap => {
                Some(self.slots.wait())
            }
            None => None,
        };
        if let Some(s) = slots
            && w.touched.len() != s.len()
        {
            w.touched = vec![false; s.len()];
        }
        slots
    }

    fn hash_chunk(&self, w: &mut Worker, (from, to): (i64, i64)) -> Result<(u32, usize), Error> {
        let (db, rev, compact) = (self.db, self.rev, self.compact);
        let mut crc = SpanCrc::over(db.bytes());
        let start = RevisionKey {
            main: from,
            sub: 0,
            tombstone: false,
        }
        .to_bytes();
        let entries = self
            .bucket
            .iter_from(&start)?
            .map(|e| {
                let e = e?;
                let (r, kv) = decode_entry_key_only(db, e.key, e.value, e.is_bucket())?;
                Ok((e, r, kv.key, key_hash(kv.key)))
            })
            .take_while(|s| !matches!(s, Ok((_, r, _, _)) if r.main >= to));
        type Step<'s> = (Entry<'s>, RevisionKey, &'s [u8], u64);
        let slots = self.slots_for(w);
        let mut state = (w, slots);
        let ahead_slot = |st: &(&mut Worker, Option<&KeyTable<()>>), s: &Step<'_>| {
            if let Some(t) = st.1 {
                t.prefetch_slot(s.3)
            }
        };
        let ahead_key = |st: &(&mut Worker, Option<&KeyTable<()>>), s: &Step<'_>| {
            if let Some(t) = st.1 {
                t.prefetch_key(s.3)
            }
        };
        pipelined(
            entries,
            &mut state,
            ahead_slot,
            ahead_key,
            |_, _| {},
            |(w, slots), (e, r, key, hash)| {
                if r.main <= compact {
                    w.low_after_higher = true;
                } else if r.main <= rev {
                    if slots.is_none() {
                        *slots = self.slots_for(w);
                    }
                    w.touch(*slots, hash, key);
                    crc.append(e.key);
                    crc.append(e.value);
                }
                Ok(())
            },
        )?;
        Ok(crc.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys a thread kept aside before the low keys were known mark the same low keys as
    /// probing them at once, and the chunks' CRCs do not depend on it (a real etcd 3.4
    /// member compacted at 166, current 218, at every revision above the compaction).
    #[test]
    fn keys_kept_aside_mark_as_probes_do() {
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata"));
        let db = Db::open(dir.join("etcd/db"), crate::OpenOptions { lock: false }).unwrap();
        let rules = Rules::ETCD_3_4_23;
        let (_, revs) = crate::etcd::meta::Revisions::read(&db, &rules).unwrap();
        let bucket = key_bucket(&db).unwrap();
        let mut aside_seen = 0;
        for rev in revs.compacted + 1..=revs.current {
            let low = |u: &Upper<'_, '_>| {
                let l = low_pass(&db, &bucket, rev, revs.compacted, &rules).unwrap();
                let _ = u.slots.set(l.slots);
            };
            let late = Upper::new(&db, &bucket, rev, revs.compacted);
            let aside = late.hash_chunks().unwrap();
            low(&late);
            let early = Upper::new(&db, &bucket, rev, revs.compacted);
            low(&early);
            let probed = early.hash_chunks().unwrap();
            assert!(probed.aside_keys.is_empty());
            aside_seen += aside.aside_keys.len();
            let slots = late.slots.get().unwrap();
            let (mut a, mut b) = (vec![false; slots.len()], vec![false; slots.len()]);
            aside.mark(slots, &mut a);
            probed.mark(early.slots.get().unwrap(), &mut b);
            assert_eq!(a, b, "at {rev}");
            assert_eq!(aside.done, probed.done, "at {rev}");
        }
        assert!(aside_seen > 0);
    }

    #[test]
    fn upper_chunks_cover_the_revisions_once() {
        for (first, rev) in [(0, 0), (5, 7), (1, 100), (0, i64::MAX - 1), (10, 1_000_003)] {
            let c = upper_chunks(first, rev);
            assert_eq!(c[0].0, first);
            assert_eq!(c.last().unwrap().1, i64::MAX);
            assert!(c.windows(2).all(|w| w[0].1 == w[1].0 && w[0].0 < w[0].1));
            assert!(c.len() <= UPPER_CHUNKS as usize);
        }
    }
}
