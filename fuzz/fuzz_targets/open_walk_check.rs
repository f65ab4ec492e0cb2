//! A whole file: open, map the pages (on one thread and two), check, snapshot status, visit every entry, gather info, list pages,
//! seek into the top-level buckets, and analyze (the etcd part when it has `key` and `meta`;
//! its `key` bucket pass in two parts on two threads gives the one-thread pass's report).
#![no_main]

#[path = "../../tests/common/agree.rs"]
mod agree;

use agree::{one_walk_agrees, split_pass_agrees};
use boltpack::Db;
use boltpack::reader::PageMap;
use boltpack::reader::{Bucket, visit_all};
use boltpack_report::info::Info;
use boltpack_report::pages::{page_lines, render_page_lines};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(db) = Db::from_bytes(data.to_vec()) else {
        return;
    };
    let map = PageMap::build(&db);
    // The walk on two threads joins only where it equals the walk on one.
    assert_eq!(PageMap::build_split(&db), map);
    let _ = boltpack::check::check_with_map(&db, &map);
    // snapshot status inside the check's walk, split: the separate passes' answer.
    let (split_map, in_walk) = boltpack::etcd::status_in_walk(&db, true);
    assert_eq!(split_map, map);
    if let Some(status) = in_walk {
        assert_eq!(Some(status), boltpack::etcd::status(&db).ok());
    }
    let mut n = 0u64;
    let _ = visit_all(Bucket::root_of(&db), &mut Vec::new(), &mut |_, _, _| {
        n += 1;
        Ok(())
    });
    let info = Info::gather(&db, &map);
    let _ = info.render();
    let lines = page_lines(&db, &map);
    let _ = render_page_lines(&lines);
    if let Ok(Some(b)) = Bucket::root_of(&db).bucket(b"key") {
        for probe in [&data[..data.len().min(17)], b"", &[0xff; 18]] {
            if let Ok(c) = b.iter_from(probe) {
                for e in c.take(10_000) {
                    if e.is_err() {
                        break;
                    }
                }
            }
        }
    }
    let _ = boltpack::analyze::Analysis::gather_with(&db, &Default::default());
    split_pass_agrees(&db);
    one_walk_agrees(&db);
});
