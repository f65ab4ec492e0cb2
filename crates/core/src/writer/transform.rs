//! What a copy changes on the way: the entries of each bucket after an MVCC plan and the
//! entries set in top-level buckets, in key order. The writer and the expected-content
//! digest both read the source through this, so they cannot disagree about what the copy
//! holds.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::etcd::CompactionPlan;
use crate::etcd::KEY_BUCKET;
use crate::format::PageId;
use crate::reader::{Bucket, Cursor, Db, Entry, ResidentBudget, plain_key_in_root};

/// Changes applied while copying: an MVCC plan for the `key` bucket, plain entries to set
/// (insert or replace) in top-level buckets, and plain entries to leave out of them.
#[derive(Default)]
pub struct Transform<'a> {
    pub plan: Option<&'a CompactionPlan<'a>>,
    pub set: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>,
    /// Top-level bucket -> keys of plain entries the copy does not hold (`compact
    /// --disarm`: the NOSPACE alarms).
    pub delete: BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>>,
    /// Read the source around its damage (`salvage`): parts that cannot be read, and
    /// sub-buckets that do not open, are left out.
    pub salvage: bool,
    /// Top-level buckets the copy does not hold (`salvage` from an earlier copy of the
    /// root page: etcd's mutable buckets, which may be stale there).
    pub leave_out: BTreeSet<Vec<u8>>,
    /// Top-level buckets the copy holds even where the source has none, or one that does
    /// not open (`salvage`: the `key` bucket filled from pages outside the tree): created
    /// empty, then filled by `set`.
    pub create: BTreeSet<Vec<u8>>,
    /// `plan_copy` only: the `key` bucket's layout, already counted, so it is not
    /// walked (`analyze` sizes many compaction candidates from one pass over it).
    pub presized_key_bucket: Option<Presized>,
}

/// A bucket's layout counted elsewhere ([`crate::writer::tree::tree_pages`]). It must not
/// be inline (the caller checks that its leaf image is over `compact::inline_max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presized {
    pub pages: u64,
    pub keys: u64,
    /// `key` bucket entries removed by the compaction this layout is for.
    pub dropped: u64,
}

pub(super) enum Item<'a> {
    Plain(&'a [u8], &'a [u8]),
    Sub(&'a [u8], Bucket<'a>),
}

/// The entries of bucket `b` (at `path`) after the transform, in key order. `f` returns
/// false to stop early. Returns how many source entries the plan dropped.
pub(super) fn for_each_item<'a>(
    t: &'a Transform<'a>,
    path: &[&'a [u8]],
    b: Bucket<'a>,
    f: &mut dyn FnMut(Item<'a>) -> Result<bool>,
) -> Result<u64> {
    let top = (path.len() == 1).then(|| path[0]);
    let plan = t.plan.filter(|_| top == Some(KEY_BUCKET));
    let mut set = top
        .and_then(|name| t.set.get(name))
        .map(|m| m.iter().peekable());
    let mut dropped = 0;
    let mut prev: Option<&[u8]> = None;
    // The plan holds the surviving entries up to its revision: only what lies above is
    // walked (at the current revision, none of the `key` bucket's pages).
    let below = plan.and_then(|p| p.below()).filter(|_| {
        !t.salvage && top.is_some_and(|n| !t.set.contains_key(n) && !t.delete.contains_key(n))
    });
    let mut entries = match below {
        Some(below) => {
            dropped += below.dropped;
            Entries::Planned {
                kept: below.entries.iter(),
                rest: below.resume.as_ref().map(|at| b.iter_resumed(at)),
                db: b.db(),
                resident: ResidentBudget::new(b.db()),
            }
        }
        None if t.salvage => Entries::Walked(b.iter_salvaging()),
        None => Entries::Walked(b.iter()),
    };
    // Buckets to create, in key order with the root's own entries.
    let mut create = t
        .create
        .iter()
        .filter(|_| path.is_empty())
        .map(Vec::as_slice)
        .peekable();
    let empty = |name| Item::Sub(name, Bucket::empty(b.db()));
    while let Some((e, planned)) = entries.next() {
        let e = e?;
        while let Some(name) = create.next_if(|n| *n < e.key) {
            if !f(empty(name))? {
                return Ok(dropped);
            }
        }
        // The source has this one: it is created only if it does not open (below).
        let created = create.next_if(|n| *n == e.key).is_some();
        // The copy is built bottom-up from the entries as they come: a source whose keys are
        // not strictly ascending would give a tree no reader can search. Refuse it.
        // Nor can it hold what bbolt never stores: an empty key, or a plain key in the root
        // bucket (`check` rejects both, so the copy would fail verification).
        let broken = if prev.is_some_and(|p| e.key <= p) {
            Some(format!(
                "key {} is not above the key before it ({}): the source's key order is broken",
                hex_cut(e.key),
                hex_cut(prev.unwrap_or_default())
            ))
        } else if e.key.is_empty() {
            Some("an empty key".to_string())
        } else if path.is_empty() && !e.is_bucket() {
            Some(plain_key_in_root(e.key))
        } else {
            None
        };
        if let Some(what) = broken {
            let (page, offset) = entries.position().unwrap_or((b.root_page(), 0));
            return Err(Error::corrupt(
                crate::error::DamageKind::KeyOrder,
                page,
                offset,
                format!("{what}, so no copy is written (see `boltpack check`)"),
            ));
        }
        prev = Some(e.key);
        if let Some(set) = set.as_mut() {
            while let Some((k, v)) = set.next_if(|(k, _)| k.as_slice() <= e.key) {
                if !f(Item::Plain(k, v))? {
                    return Ok(dropped);
                }
            }
        }
        if let Some(set_map) = top.and_then(|name| t.set.get(name))
            && set_map.contains_key(e.key)
        {
            continue; // replaced by the set entry emitted above
        }
        if !e.is_bucket()
            && let Some(gone) = top.and_then(|name| t.delete.get(name))
            && gone.contains(e.key)
        {
            continue;
        }
        if e.is_bucket() && path.is_empty() && t.leave_out.contains(e.key) {
            continue;
        }
        let keep = if e.is_bucket() {
            match Bucket::open(b.db(), e.value) {
                Ok(sub) => f(Item::Sub(e.key, sub))?,
                Err(_) if created => f(empty(e.key))?,
                Err(_) if t.salvage => true,
                Err(e) => return Err(e),
            }
        } else if let Some(plan) = plan
            && !planned
            && !plan.keeps(e.key)?
        {
            dropped += 1;
            true
        } else {
            f(Item::Plain(e.key, e.value))?
        };
        if !keep {
            return Ok(dropped);
        }
    }
    if let Some(set) = set.as_mut() {
        for (k, v) in set {
            if !f(Item::Plain(k, v))? {
                break;
            }
        }
    }
    for name in create {
        if !f(empty(name))? {
            break;
        }
    }
    Ok(dropped)
}

/// A bucket's entries as the copy takes them: walked, or (the `key` bucket under a plan)
/// the plan's survivors up to its revision, then the walk from the first entry above it.
enum Entries<'a> {
    Walked(Cursor<'a>),
    Planned {
        kept: std::slice::Iter<'a, (&'a [u8], &'a [u8])>,
        rest: Option<Cursor<'a>>,
        db: &'a Db,
        /// The survivors lie scattered over pages pass 1 let go: each read maps its page
        /// again, and the kernel's fault-around with it, so the map is released as a
        /// walk's would be.
        resident: ResidentBudget,
    },
}

/// What reading one scattered entry maps: the kernel's fault-around (64 KiB by default).
const MAPPED_PER_SCATTERED_ENTRY: u64 = 64 << 10;

impl<'a> Entries<'a> {
    /// The next entry, and whether the plan already decided it survives.
    fn next(&mut self) -> Option<(Result<Entry<'a>>, bool)> {
        match self {
            Entries::Walked(c) => c.next().map(|e| (e, false)),
            Entries::Planned {
                kept,
                rest,
                db,
                resident,
            } => match kept.next() {
                Some(&(key, value)) => {
                    resident.reread(db, MAPPED_PER_SCATTERED_ENTRY);
                    let e = Entry {
                        flags: 0,
                        key,
                        value,
                    };
                    Some((Ok(e), true))
                }
                None => rest.as_mut()?.next().map(|e| (e, false)),
            },
        }
    }

    /// Where the entry returned last stands, when it came from a walk.
    fn position(&self) -> Option<(PageId, u64)> {
        match self {
            Entries::Walked(c) => c.position(),
            Entries::Planned { rest, .. } => rest.as_ref()?.position(),
        }
    }
}

/// A key in hex for a message, cut to 32 bytes.
fn hex_cut(k: &[u8]) -> String {
    crate::format::text::hex_cut(k, 32)
}
