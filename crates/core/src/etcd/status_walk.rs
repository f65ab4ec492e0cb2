//! `snapshot status` computed inside the page map's walk (the one `check` judges): one
//! pass over the pages for both, on two cores ([`PageMap::build_split_watched`]). The walk
//! meets every bucket's entries in key order, as the cursors of [`super::snapshot::status`]
//! do. A file the walk finds any problem in (or whose root holds a plain key, or whose
//! `key` bucket holds a key that is no revision) gets no status here: the cursors' pass
//! then says what is wrong. The caller also takes the cursors' status when the map fails
//! the check (the walk does not see every problem the check reports).
use crate::format::element::LeafElement;
use crate::reader::{BucketInfo, Db, Node, PageMap, Problem, Split, Visitor};

use super::keyindex::decode_entry_key_only;
use super::keymap::{KeyId, KeyIds, Pipeline, key_id};
use super::meta::is_key_bucket;
use super::snapshot::{SnapshotStatus, live_keys};
use super::span_crc::SpanCrc;

/// The page map and, when the walk met no problem, the status. `always`: split the walk
/// whatever the file's size (tests and fuzzing: the answer must not depend on it).
pub fn status_in_walk(db: &Db, always: bool) -> (PageMap, Option<SnapshotStatus>) {
    let (mut main, mut helper) = (Watch::new(db, false), Watch::new(db, true));
    let (map, split) = PageMap::split_watched(db, &mut main, &mut helper, always);
    if split == Split::Redo || main.failed || helper.failed || !map.problems.is_empty() {
        return (map, None);
    }
    let status = combine(db, main, helper);
    (map, Some(status))
}

/// The status from the two threads' parts.
fn combine(db: &Db, main: Watch<'_>, helper: Watch<'_>) -> SnapshotStatus {
    let helper_is_key = helper.key_bucket.is_some();
    let (main, helper) = (main.finish(), helper.finish());
    // The helper's part lies at the main walk's gap (a walk that was not split has none,
    // and the helper saw nothing).
    let h = match main.before_gap {
        Some((crc, _)) => {
            let h = crc32c::crc32c_combine(crc, helper.crc.0, helper.crc.1);
            crc32c::crc32c_combine(h, main.crc.0, main.crc.1)
        }
        None => main.crc.0,
    };
    let total_key = main.entries + helper.entries;
    let (earlier, later) = if helper_is_key {
        (main.newest_is_put, helper.newest_is_put)
    } else {
        (main.newest_is_put, KeyIds::default())
    };
    let live = live_keys(&earlier, &later);
    let revision = if helper_is_key {
        helper.last_main.or(main.last_main)
    } else {
        main.last_main
    }
    .unwrap_or(0);
    SnapshotStatus::assemble(db, h, revision, total_key, live)
}

/// A `key` entry on its way to the table: the key's id, whether it is a put.
type Step = (KeyId, bool);

/// Watches one thread's part of the walk.
struct Watch<'a> {
    db: &'a Db,
    /// Watches the helper's part: every entry is one of the bucket it walks in.
    helper: bool,
    crc: SpanCrc<'a>,
    /// CRC-32C (from 0) and length of what came before the gap.
    before_gap: Option<(u32, usize)>,
    /// Per bucket (walk order): whether it is a bucket of the root.
    top: Vec<bool>,
    /// The `key` bucket's index (the helper: `Some` when it walks in the `key` bucket).
    key_bucket: Option<usize>,
    entries: u64,
    /// Main revision of the last `key` entry.
    last_main: Option<i64>,
    /// Per user key: whether its newest entry is a put.
    newest_is_put: KeyIds<bool>,
    ring: Pipeline<Step>,
    failed: bool,
}

/// What a [`Watch`] adds up to.
struct Watched {
    crc: (u32, usize),
    before_gap: Option<(u32, usize)>,
    entries: u64,
    last_main: Option<i64>,
    newest_is_put: KeyIds<bool>,
}

impl<'a> Watch<'a> {
    fn new(db: &'a Db, helper: bool) -> Self {
        Watch {
            db,
            helper,
            crc: SpanCrc::over(db.bytes()),
            before_gap: None,
            top: Vec::new(),
            key_bucket: None,
            entries: 0,
            last_main: None,
            newest_is_put: KeyIds::default(),
            ring: Pipeline::default(),
            failed: false,
        }
    }

    fn bucket_entry(&mut self, e: &LeafElement<'a>, in_key_bucket: bool) {
        self.crc.append(e.key);
        if !e.is_bucket() {
            self.crc.append(e.value);
        }
        self.entries += 1;
        if !in_key_bucket {
            return;
        }
        let Ok((rev, kv)) = decode_entry_key_only(self.db, e.key, e.value, e.is_bucket()) else {
            self.failed = true;
            return;
        };
        self.last_main = Some(rev.main);
        let step = (key_id(kv.key), !rev.tombstone);
        let due = self.ring.push(
            &self.newest_is_put,
            step,
            |t, s| t.prefetch_slot(s.0),
            |t, s| t.prefetch_value(s.0),
            |_, _| {},
        );
        if let Some(s) = due {
            self.apply(s);
        }
    }

    fn apply(&mut self, (id, put): Step) {
        *self.newest_is_put.entry_with_id(id) = put;
    }

    fn finish(mut self) -> Watched {
        while let Some(s) = self.ring.pop() {
            self.apply(s);
        }
        Watched {
            crc: self.crc.finish(),
            before_gap: self.before_gap,
            entries: self.entries,
            last_main: self.last_main,
            newest_is_put: self.newest_is_put,
        }
    }
}

impl<'a> Visitor<'a> for Watch<'a> {
    fn bucket(&mut self, b: &BucketInfo<'a>) {
        let is_key = is_key_bucket(b);
        if self.helper {
            self.key_bucket = is_key.then_some(b.index);
            return;
        }
        if self.top.len() <= b.index {
            self.top.resize(b.index + 1, false);
        }
        self.top[b.index] = b.parent == Some(0);
        if is_key {
            self.key_bucket = Some(b.index);
        }
    }

    fn entry(&mut self, bucket: usize, _node: &Node<'a>, e: &LeafElement<'a>) {
        if self.helper {
            let in_key = self.key_bucket.is_some();
            return self.bucket_entry(e, in_key);
        }
        if bucket == 0 {
            // A root entry: a bucket's name goes into the hash before its entries.
            if !e.is_bucket() {
                self.failed = true;
            }
            return self.crc.append(e.key);
        }
        if self.top.get(bucket).copied().unwrap_or(false) {
            let in_key = self.key_bucket == Some(bucket);
            self.bucket_entry(e, in_key);
        }
    }

    fn problem(&mut self, _p: Problem) {
        self.failed = true;
    }

    fn reads_values(&self) -> bool {
        true
    }

    fn gap(&mut self) {
        let crc = std::mem::replace(&mut self.crc, SpanCrc::over(self.db.bytes()));
        self.before_gap = Some(crc.finish());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::snapshot::status;

    fn fixture(rel: &str) -> Vec<u8> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/");
        std::fs::read(format!("{root}{rel}")).unwrap()
    }

    /// Inside the check's walk, split or not, the status is the cursors' and the problems
    /// the check's; a garbled file either gets the same or goes to the separate passes.
    #[test]
    fn the_walks_status_is_the_cursors() {
        for rel in [
            "etcd/db",
            "etcd/snapshot.db",
            "bbolt/nested.db",
            "bbolt/flat.db",
        ] {
            let bytes = fixture(rel);
            let db = Db::from_bytes(bytes.clone()).unwrap();
            let want = (PageMap::build(&db), status(&db).unwrap());
            for always in [false, true] {
                match status_in_walk(&db, always) {
                    (map, Some(got)) => assert_eq!((map, got), want, "{rel} split {always}"),
                    // Nested buckets in the helper's half: the walk is redone alone.
                    (map, None) => {
                        assert_eq!(map, want.0);
                        assert!(always && rel == "bbolt/nested.db", "{rel} {always}");
                    }
                }
            }
            let ps = db.page_size() as usize;
            for (at, bad) in
                crate::reader::garbled_copies(&bytes, ps, 0x2545_f491_4f6c_dd1d, 30, 16, 255)
            {
                let Ok(db) = Db::from_bytes(bad) else {
                    continue;
                };
                let (map, got) = status_in_walk(&db, true);
                assert_eq!(map, PageMap::build(&db), "{rel}, byte {at} garbled");
                if let Some(got) = got {
                    assert_eq!(Some(got), status(&db).ok(), "{rel}, byte {at} garbled");
                }
            }
        }
    }
}
