//! Salvage on any input: planning never panics, and when the copy is written (into
//! memory) it passes our own `check` and holds nothing the input does not: every key and
//! value of the copy is bytes of the input (checked on inputs up to 64 KiB).
#![no_main]

use boltpack::Db;
use boltpack::reader::{Bucket, visit_all};
use boltpack::writer::{CompactOptions, Transform, compact_to_vec};
use libfuzzer_sys::fuzz_target;

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    // Both metas or the root page unusable: the page size and root found by scanning.
    let Ok((db, rebuilt)) = boltpack::salvage::from_bytes(data.to_vec()) else {
        return;
    };
    let opts = boltpack::salvage::SalvageOptions::default();
    let Ok((_report, plan)) = boltpack::salvage::plan(&db, rebuilt.as_ref(), opts) else {
        return;
    };
    let mut t = Transform {
        salvage: true,
        leave_out: plan.leave_out,
        create: plan.create,
        ..Transform::default()
    };
    if !plan.recovered.is_empty() {
        t.set.insert(boltpack::etcd::KEY_BUCKET.to_vec(), plan.recovered);
    }
    let Ok((bytes, _)) = compact_to_vec(&db, &CompactOptions::default(), &t) else {
        return;
    };
    let copy = Db::from_bytes(bytes).expect("a salvaged copy opens");
    assert!(
        boltpack::check::check(&copy).is_empty(),
        "a salvaged copy is clean"
    );
    // The byte search is quadratic: on large inputs only the check above runs.
    if data.len() > 64 << 10 {
        return;
    }
    let mut path = Vec::new();
    visit_all(Bucket::root_of(&copy), &mut path, &mut |_, e, _| {
        assert!(holds(data, e.key), "a key the input does not hold");
        if !e.is_bucket() {
            assert!(holds(data, e.value), "a value the input does not hold");
        }
        Ok(())
    })
    .expect("the copy reads");
});
