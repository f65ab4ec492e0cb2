//! The writer on a damaged source: `compact_to_vec` (into memory) either fails cleanly, or
//! its copy passes our own `check` and holds exactly the source's content
//! (`content_digest(copy) == expected_digest(source)`). The writer must never silently turn
//! a readable source into a broken file. The input's length picks one of three output
//! layouts (the source's, 1 KiB pages with a freelist page, 0.5 fill without one).
//! The digest the writer takes on the way equals `expected_digest`, `verify` (the check
//! watched by the digest) accepts the copy, and the plan-only pass gives the same size.
//! On an etcd file, a copy under an MVCC plan that takes the survivors up to R from the plan
//! is the copy (or the refusal) of one that walks the whole `key` bucket.
#![no_main]

#[path = "../../tests/common/agree.rs"]
mod agree;

use agree::mvcc_copies_agree;
use boltpack::Db;
use boltpack::writer::{
    CompactOptions, Copying, FreelistMode, Transform, compact_to_vec, content_digest, copy_through,
    expected_digest, plan_copy, verify,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = match data.len() % 3 {
        0 => CompactOptions::default(),
        1 => CompactOptions {
            page_size: Some(1024),
            freelist: Some(FreelistMode::Sync),
            ..CompactOptions::default()
        },
        _ => CompactOptions {
            fill_percent: 0.5,
            freelist: Some(FreelistMode::None),
            ..CompactOptions::default()
        },
    };
    let Ok(db) = Db::from_bytes(data.to_vec()) else {
        return;
    };
    let t = Transform::default();
    let Ok((bytes, summary)) = compact_to_vec(&db, &opts, &t) else {
        return;
    };
    assert_eq!(bytes.len() as u64, summary.dst_size);
    let expected =
        expected_digest(&db, &t).expect("the writer read the source: so does the digest");
    let copy = Db::from_bytes(bytes).expect("the copy opens");
    let problems = boltpack::check::check(&copy);
    assert!(problems.is_empty(), "the copy has problems: {problems:?}");
    assert_eq!(
        content_digest(&copy).expect("the copy reads"),
        expected,
        "the copy's content differs from the source's"
    );
    let how = Copying {
        digest: true,
        ..Copying::default()
    };
    let w = copy_through(&db, &opts, &t, Vec::new(), how).expect("the copy was written once");
    assert_eq!(w.digest, Some(expected), "the writer's digest");
    verify(&copy, &expected).expect("verify accepts the copy");
    let plan = plan_copy(&db, &opts, &t).expect("the writer planned it once");
    assert_eq!(plan.dst_size, summary.dst_size, "plan-only size");
    mvcc_copies_agree(&db, &opts);
});
