//! etcd's encodings inside bbolt: `mvccpb.KeyValue` values and revision keys.
#![no_main]

use boltpack::etcd::{KeyValue, RevisionKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(kv) = KeyValue::decode(data) {
        assert!(kv.key.len() + kv.value.len() <= data.len());
    }
    if let Ok(kv) = KeyValue::decode_through_value(data) {
        assert!(kv.key.len() + kv.value.len() <= data.len());
    }
    // The key-only reading never fails where the full one succeeds, and never reads past.
    match (KeyValue::decode(data), KeyValue::decode_key_only(data)) {
        (Ok(_), Err(e)) => panic!("key-only decode failed where the full one did not: {e}"),
        (_, Ok(kv)) => assert!(kv.key.len() <= data.len()),
        _ => {}
    }
    if let Ok(r) = RevisionKey::parse(data) {
        assert_eq!(&r.to_bytes()[..], &data[..17]);
    }
});
