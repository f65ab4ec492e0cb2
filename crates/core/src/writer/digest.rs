//! The content digest that verifies a copy: what the copy must hold (the source through
//! the transform, taken while the copy is written) against what the written file holds
//! (taken while its structure is checked).

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{Scope, ScopedJoinHandle};

use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, Result};
use crate::format::bucket::BucketHeader;
use crate::format::element::LeafElement;
use crate::reader::Node;
use crate::reader::{Bucket, Db, visit_all};
use crate::reader::{BucketInfo, Visitor};

use super::transform::{Item, Transform, for_each_item};

/// A 128-bit digest of a db's content (every bucket, sequence, key and value, in order;
/// not the layout). It guards against writer bugs, not adversaries, so it is XXH3-128
/// (~10 GB/s here) rather than SHA-256 (1.6 GB/s with SHA-NI): verification re-reads the
/// whole copy, and at SHA-256's speed the digests alone were ~40% of a verified compact.
pub type ContentDigest = u128;

/// Keys up to this long go into the digest together with the fields around them.
const SHORT_KEY: usize = 64;

/// One entry into the digest: tag, depth, key and value, each length-prefixed (tag 1 byte,
/// depth and lengths 8). The small parts go in as one piece: the streaming hasher pays
/// per call.
fn put(h: &mut Xxh3, tag: u8, depth: usize, a: &[u8], b: &[u8]) {
    let mut head = [0u8; 1 + 8 + 8 + SHORT_KEY + 8];
    head[0] = tag;
    head[1..9].copy_from_slice(&(depth as u64).to_le_bytes());
    head[9..17].copy_from_slice(&(a.len() as u64).to_le_bytes());
    let blen = (b.len() as u64).to_le_bytes();
    if a.len() <= SHORT_KEY {
        let end = 17 + a.len();
        head[17..end].copy_from_slice(a);
        head[end..end + 8].copy_from_slice(&blen);
        h.update(&head[..end + 8]);
    } else {
        h.update(&head[..17]);
        h.update(a);
        h.update(&blen);
    }
    h.update(b);
}

/// Digest of what the copy must hold: the source through the transform, by a walk of its
/// own. `compact` takes the same digest from the writer's items instead; this separate
/// walk is the reference that tests and the `compact` fuzz target hold it to.
pub fn expected_digest<'a>(db: &'a Db, t: &'a Transform<'a>) -> Result<ContentDigest> {
    fn rec<'a>(
        t: &'a Transform<'a>,
        path: &mut Vec<&'a [u8]>,
        b: Bucket<'a>,
        h: &mut Xxh3,
    ) -> Result<()> {
        let p = path.clone();
        for_each_item(t, &p, b, &mut |it| {
            match it {
                Item::Plain(k, v) => put(h, b'K', p.len(), k, v),
                Item::Sub(k, sub) => {
                    put(h, b'B', p.len(), k, &sub.sequence().to_le_bytes());
                    path.push(k);
                    rec(t, path, sub, h)?;
                    path.pop();
                }
            }
            Ok(true)
        })?;
        Ok(())
    }
    let mut h = Xxh3::new();
    rec(t, &mut Vec::new(), Bucket::root_of(db), &mut h)?;
    Ok(h.digest128())
}

/// Digest of what a db holds (every bucket, sequence, key and value; not the layout), by
/// the cursor walk. [`verify`] takes it by watching the checking walk instead; this one is
/// the reference that tests and the `compact` fuzz target hold that to.
pub fn content_digest(db: &Db) -> Result<ContentDigest> {
    let mut h = Xxh3::new();
    visit_all(Bucket::root_of(db), &mut Vec::new(), &mut |path, e, sub| {
        match sub {
            Some(sub) => put(
                &mut h,
                b'B',
                path.len(),
                e.key,
                &sub.sequence().to_le_bytes(),
            ),
            None => put(&mut h, b'K', path.len(), e.key, e.value),
        }
        Ok(())
    })?;
    Ok(h.digest128())
}

/// [`content_digest`] taken by watching a tree walk: the walk visits every bucket's
/// entries depth-first in key order, each sub-bucket right after its element, as
/// [`visit_all`] does. The hashing is done by the feed's thread.
struct DigestVisitor<'a> {
    feed: DigestFeed<'a>,
    /// Nesting of each bucket the walk announced, by index.
    depth: Vec<usize>,
}

impl<'a> Visitor<'a> for DigestVisitor<'a> {
    fn bucket(&mut self, b: &BucketInfo<'a>) {
        if self.depth.len() <= b.index {
            self.depth.resize(b.index + 1, 0);
        }
        self.depth[b.index] = b.path.len();
    }

    fn entry(&mut self, bucket: usize, _: &Node<'a>, e: &LeafElement<'a>) {
        let depth = self.depth.get(bucket).copied().unwrap_or(0);
        if e.is_bucket() {
            // A bad header is the check's to report; the digest then differs anyway.
            let seq = BucketHeader::parse(e.value).map_or(0, |h| h.sequence);
            self.feed.push(DigestRec::Bucket(depth, e.key, seq));
        } else {
            self.feed.push(DigestRec::Entry(depth, e.key, e.value));
        }
    }
}

/// Re-read a written copy: structure clean, content as expected. One walk does both: the
/// structural check, watched by the content digest (hashed on the other core).
pub fn verify(copy: &Db, expected: &ContentDigest) -> Result<()> {
    let (problems, digest) = std::thread::scope(|s| {
        let (feed, digest) = DigestFeed::spawn(s);
        let mut v = DigestVisitor {
            feed,
            depth: Vec::new(),
        };
        let problems = crate::check::check_watched(copy, &mut v);
        drop(v);
        let digest = digest
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (problems, digest)
    });
    if let Some(p) = problems.first() {
        return Err(Error::Verify(format!(
            "{} problems, the first: {p}",
            problems.len()
        )));
    }
    if digest? != *expected {
        return Err(Error::Verify(
            "its content differs from the source's".into(),
        ));
    }
    Ok(())
}

/// One record of the digest, borrowed from the source.
pub(super) enum DigestRec<'a> {
    /// A key and value, in a bucket at this depth.
    Entry(usize, &'a [u8], &'a [u8]),
    /// A sub-bucket's name and sequence.
    Bucket(usize, &'a [u8], u64),
}

/// Records go to the digest thread in batches of this many.
const DIGEST_BATCH: usize = 2048;

/// Feeds the digest thread. Dropping it ends the thread's input.
pub(super) struct DigestFeed<'a> {
    batch: Vec<DigestRec<'a>>,
    tx: SyncSender<Vec<DigestRec<'a>>>,
}

impl<'a> DigestFeed<'a> {
    /// A thread taking the digest of what it is fed, in order.
    pub(super) fn spawn<'s>(
        s: &'s Scope<'s, '_>,
    ) -> (DigestFeed<'a>, ScopedJoinHandle<'s, Result<ContentDigest>>)
    where
        'a: 's,
    {
        let (tx, rx) = sync_channel(4);
        let h = s.spawn(move || Ok(digest_of(rx)));
        (
            DigestFeed {
                batch: Vec::with_capacity(DIGEST_BATCH),
                tx,
            },
            h,
        )
    }

    pub(super) fn push(&mut self, r: DigestRec<'a>) {
        self.batch.push(r);
        if self.batch.len() >= DIGEST_BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let b = std::mem::replace(&mut self.batch, Vec::with_capacity(DIGEST_BATCH));
        // The thread only stops when the feed is dropped.
        let _ = self.tx.send(b);
    }
}

impl Drop for DigestFeed<'_> {
    fn drop(&mut self) {
        if !self.batch.is_empty() {
            self.flush();
        }
    }
}

fn digest_of(rx: Receiver<Vec<DigestRec<'_>>>) -> ContentDigest {
    let mut h = Xxh3::new();
    for batch in rx {
        for r in batch {
            match r {
                DigestRec::Entry(depth, k, v) => put(&mut h, b'K', depth, k, v),
                DigestRec::Bucket(depth, k, seq) => put(&mut h, b'B', depth, k, &seq.to_le_bytes()),
            }
        }
    }
    h.digest128()
}
