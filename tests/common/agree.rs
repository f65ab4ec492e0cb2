//! Checks that two ways of computing one answer agree, shared by the fuzz targets (which
//! include this file by path) and the replay of their regression inputs in
//! tests/corrupt.rs. Only `boltpack` paths: it compiles in both crates. Each target uses
//! the checks it needs.
#![allow(dead_code)]

use boltpack::Db;
use boltpack::analyze::Analysis;
use boltpack::analyze::etcd::{EtcdAnalysis, EtcdOptions};
use boltpack::etcd::{CompactionPlan, Revisions, Rules, TombstoneAtRev};
use boltpack::writer::{CompactOptions, Transform, compact_to_vec};

/// On an etcd file, the copy under an MVCC plan that takes the survivors up to R from the
/// plan is the copy (or the refusal) of one that walks the whole `key` bucket, at the
/// current revision and midway above the compacted one.
pub fn mvcc_copies_agree(db: &Db, opts: &CompactOptions) {
    let Ok((_, revs)) = Revisions::read(db, &Rules::default()) else {
        return;
    };
    let mid = revs.compacted.max(0) / 2 + revs.current / 2;
    for rev in [revs.current, mid] {
        let Ok(fast) = CompactionPlan::build(db, rev, TombstoneAtRev::Keep) else {
            continue;
        };
        let walked = CompactionPlan::build(db, rev, TombstoneAtRev::Keep)
            .expect("built once")
            .without_below();
        let copy = |p: &CompactionPlan<'_>| {
            let t = Transform {
                plan: Some(p),
                ..Transform::default()
            };
            compact_to_vec(db, opts, &t).ok().map(|(bytes, _)| bytes)
        };
        assert!(
            copy(&fast) == copy(&walked),
            "the planned and the walked copy at {rev}"
        );
    }
}

/// Where both finish (each part's cursor has a work budget of its own, so a hostile shape
/// may stop the one-thread pass and not the parts), analyze's `key` bucket pass in two
/// parts on two threads reports what the one-thread pass does.
pub fn split_pass_agrees(db: &Db) {
    let report = |split_always| {
        let opts = EtcdOptions {
            split_always,
            ..EtcdOptions::default()
        };
        EtcdAnalysis::gather(db, &opts)
            .ok()
            .map(|a| format!("{a:?}"))
    };
    if let (Some(one), Some(split)) = (report(false), report(true)) {
        assert_eq!(
            one, split,
            "the split key pass differs from the one-thread pass"
        );
    }
}

/// Where both finish, analyze in one walk (the page map's, split on two threads, with the
/// bucket statistics and the etcd pass watching it) reports what its two walks apart do.
pub fn one_walk_agrees(db: &Db) {
    for split_always in [false, true] {
        let opts = EtcdOptions {
            split_always,
            ..EtcdOptions::default()
        };
        if let (Ok(one), Ok(apart)) = (
            Analysis::gather_with(db, &opts),
            Analysis::gather_apart(db, &opts),
        ) {
            assert_eq!(
                format!("{one:?}"),
                format!("{apart:?}"),
                "analyze in one walk differs from its walks apart (split {split_always})"
            );
        }
    }
}
