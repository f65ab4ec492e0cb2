//! One page image: as a branch/leaf node (every element, raw and decoded), as a freelist
//! page, and as a bucket value (header and inline page).
#![no_main]

use boltpack::format::bucket::{BucketHeader, inline_page};
use boltpack::format::element::NodeView;
use boltpack::format::freelist::FreelistView;
use boltpack::format::page::PageHeader;
use libfuzzer_sys::fuzz_target;

fn node(data: &[u8]) {
    let Ok(n) = NodeView::new(data) else { return };
    let _ = (n.is_leaf(), n.bytes().len());
    for i in 0..=n.count() {
        let _ = n.leaf_raw(i);
        let _ = n.branch_raw(i);
        if let Ok(e) = n.leaf(i) {
            let _ = e.is_bucket();
        }
        let _ = n.branch(i);
    }
}

fuzz_target!(|data: &[u8]| {
    node(data);
    if let Ok(h) = PageHeader::parse(data) {
        let _ = (h.kind(), h.span());
        if let Ok(f) = FreelistView::parse(&h, data) {
            let n = f.ids().count();
            assert_eq!(n, f.len());
        }
    }
    if let Ok(b) = BucketHeader::parse(data) {
        let _ = b.is_inline();
        node(inline_page(data));
    }
});
