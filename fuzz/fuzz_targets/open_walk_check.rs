//! A whole file: open, map the pages, check, visit every entry, gather info, list pages.
#![no_main]

use boltpack::Db;
use boltpack::reader::reach::PageMap;
use boltpack::reader::{Bucket, visit_all};
use boltpack::report::info::Info;
use boltpack::report::pages::{page_lines, render_page_lines};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(db) = Db::from_bytes(data.to_vec()) else {
        return;
    };
    let map = PageMap::build(&db);
    let _ = boltpack::check::check_with_map(&db, &map);
    let mut n = 0u64;
    let _ = visit_all(Bucket::root_of(&db), &mut Vec::new(), &mut |_, _, _| {
        n += 1;
        Ok(())
    });
    let info = Info::gather(&db, &map);
    let _ = info.render();
    let lines = page_lines(&db, &map);
    let _ = render_page_lines(&lines);
});
