//! A meta page: decode and validate arbitrary bytes (`Meta::parse`, `Meta::validate`).
#![no_main]

use boltpack::format::meta::Meta;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Meta::parse(data) {
        let _ = m.validate();
        let _ = (m.checksum_is_zero(), m.has_freelist_page());
    }
});
