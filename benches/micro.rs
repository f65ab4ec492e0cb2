//! Divan micro-benchmarks of boltpack's hot paths:
//! - `page_parse`: every page header below the high-water mark, and every leaf/branch
//!   element of the tree pages (`PageHeader::parse`, `NodeView::leaf` / `branch`);
//! - `bucket_walk`: the in-order cursor walk over every bucket, key and value (`visit_all`);
//! - `kv_decode`: `mvccpb.KeyValue` decoding of every value of the `key` bucket, whole and
//!   through the value only (what the passes over every revision use);
//! - `tree_builder`: the writer's bottom-up leaf/branch builder (`TreeBuilder` into a
//!   `PageSink` over `io::sink()`), on synthetic etcd-shaped entries (17-byte revision
//!   keys; values of 100 B, 1 KiB and 3 KiB);
//! - `tree_pages`: the same builder counting pages from element lengths only (how
//!   `analyze` sizes its compaction candidates);
//! - `compact_plan`: the whole writer on the db into `io::sink()` building every page, and
//!   `plan_copy` allocating page ids only (what `--dry-run` does);
//! - `verify`: the structural check of the db watched by the content digest (how
//!   `compact` re-reads its copy).
//!
//! Input: the db named by `BOLTPACK_BENCH_DB`, by default the committed etcd fixture
//! `testdata/etcd/db`. For an etcd-shaped file of any size:
//! `testdata/make-large-etcd.sh 64 /tmp/e64.db && BOLTPACK_BENCH_DB=/tmp/e64.db cargo bench --bench micro`.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::OnceLock;

use boltpack::format::element::NodeView;
use boltpack::format::page::{PageHeader, PageKind};
use boltpack::reader::visit_all;
use boltpack::writer::{CompactOptions, Transform, compact_to, content_digest, plan_copy, verify};
use boltpack::writer::{ElementLen, TreeBuilder, tree_pages};
use boltpack::writer::{LeafItem, PageSink};
use boltpack::{Bucket, Db, OpenOptions};
use divan::{Bencher, black_box};

fn main() {
    divan::main();
}

fn db() -> &'static Db {
    static DB: OnceLock<Db> = OnceLock::new();
    DB.get_or_init(|| {
        let path = std::env::var_os("BOLTPACK_BENCH_DB")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/etcd/db"));
        Db::open(&path, OpenOptions { lock: false }).expect("open the bench db")
    })
}

/// The values of the `key` bucket.
fn key_values() -> &'static [&'static [u8]] {
    static V: OnceLock<Vec<&'static [u8]>> = OnceLock::new();
    V.get_or_init(|| {
        let kb = Bucket::root_of(db())
            .bucket(b"key")
            .expect("read root")
            .expect("an etcd db (no key bucket)");
        kb.iter().map(|e| e.expect("entry").value).collect()
    })
}

#[divan::bench]
fn page_parse(b: Bencher) {
    let db = db();
    let bytes = db.bytes();
    let ps = db.page_size() as usize;
    let hwm = db.hwm() as usize;
    b.counter(divan::counter::BytesCount::new(hwm * ps))
        .bench(|| {
            let mut elements = 0usize;
            let mut id = 2;
            while id < hwm {
                let off = id * ps;
                let Ok(h) = PageHeader::parse(&bytes[off..]) else {
                    id += 1;
                    continue;
                };
                let span = h.span() as usize;
                let end = ((id + span) * ps).min(bytes.len());
                match h.kind() {
                    PageKind::Leaf | PageKind::Branch => {
                        if let Ok(n) = NodeView::new(&bytes[off..end]) {
                            for i in 0..n.count() {
                                if n.is_leaf() {
                                    elements += n.leaf(i).map(|e| e.key.len()).unwrap_or(0);
                                } else {
                                    elements += n.branch(i).map(|e| e.key.len()).unwrap_or(0);
                                }
                            }
                        }
                        id += span;
                    }
                    _ => id += 1,
                }
            }
            black_box(elements)
        });
}

#[divan::bench]
fn bucket_walk(b: Bencher) {
    let db = db();
    b.counter(divan::counter::BytesCount::new(db.file_size()))
        .bench(|| {
            let mut n = 0usize;
            visit_all(Bucket::root_of(db), &mut Vec::new(), &mut |_, e, _| {
                n += e.key.len() + e.value.len();
                Ok(())
            })
            .expect("walk");
            black_box(n)
        });
}

#[divan::bench]
fn kv_decode(b: Bencher) {
    let vals = key_values();
    b.counter(divan::counter::ItemsCount::new(vals.len()))
        .bench(|| {
            let mut sum = 0i64;
            for v in vals {
                if let Ok(kv) = boltpack::etcd::KeyValue::decode(black_box(v)) {
                    sum = sum.wrapping_add(kv.mod_revision ^ kv.version);
                }
            }
            black_box(sum)
        });
}

#[divan::bench]
fn kv_decode_through_value(b: Bencher) {
    let vals = key_values();
    b.counter(divan::counter::ItemsCount::new(vals.len()))
        .bench(|| {
            let mut sum = 0usize;
            for v in vals {
                if let Ok(kv) = boltpack::etcd::KeyValue::decode_through_value(black_box(v)) {
                    sum = sum.wrapping_add(kv.key.len() ^ kv.value.len());
                }
            }
            black_box(sum)
        });
}

/// 100 000 etcd-shaped entries: 17-byte revision keys, values of `len` bytes.
fn entries(len: usize) -> (Vec<[u8; 17]>, Vec<u8>) {
    let keys = (0..100_000u64)
        .map(|i| {
            let mut k = [0u8; 17];
            k[..8].copy_from_slice(&(i + 2).to_be_bytes());
            k[8] = b'_';
            k
        })
        .collect();
    let value = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    (keys, value)
}

#[divan::bench(args = [100, 1024, 3072])]
fn tree_builder(b: Bencher, len: usize) {
    let (keys, value) = entries(len);
    b.counter(divan::counter::BytesCount::new(keys.len() * (17 + len)))
        .bench(|| {
            let mut sink = PageSink::new(std::io::sink(), 4096, 2);
            let mut tree = TreeBuilder::new(4096, 4096);
            for k in &keys {
                tree.push(
                    &mut sink,
                    LeafItem {
                        flags: 0,
                        key: k,
                        value: Cow::Borrowed(&value),
                    },
                )
                .expect("push");
            }
            black_box(tree.finish(&mut sink).expect("finish"))
        });
}

#[divan::bench(args = [100, 1024, 3072])]
fn tree_pages_counted(b: Bencher, len: usize) {
    let lens = vec![
        ElementLen {
            key: 17,
            value: len as u32,
        };
        100_000
    ];
    b.counter(divan::counter::ItemsCount::new(lens.len()))
        .bench(|| black_box(tree_pages(4096, 4096, lens.iter().copied())));
}

#[divan::bench]
fn plan_only(b: Bencher) {
    let db = db();
    let t = Transform::default();
    let opts = CompactOptions::default();
    b.counter(divan::counter::BytesCount::new(db.file_size()))
        .bench(|| black_box(plan_copy(db, &opts, &t).expect("plan").dst_pages));
}

#[divan::bench]
fn verify_walk(b: Bencher) {
    let db = db();
    let digest = content_digest(db).expect("digest");
    b.counter(divan::counter::BytesCount::new(db.file_size()))
        .bench(|| verify(db, &digest).expect("the bench db verifies"));
}

#[divan::bench]
fn compact_plan(b: Bencher) {
    let db = db();
    let t = Transform::default();
    let opts = CompactOptions::default();
    b.counter(divan::counter::BytesCount::new(db.file_size()))
        .bench(|| {
            black_box(
                compact_to(db, &opts, &t, std::io::sink())
                    .expect("plan")
                    .summary
                    .dst_pages,
            )
        });
}
