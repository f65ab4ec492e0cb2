//! Maps keyed by etcd user keys, as every pass over the `key` bucket keeps one.
//!
//! Keys are copied in rather than borrowed from the map: a probe compares against the
//! stored key, and a borrowed one sits in the page of that key's first revision, long
//! since read. Each probe would then miss the cache and fault a page (and the kernel's
//! fault-around: 64 KiB) back into the resident set. User keys are short; the copies are
//! a few MiB even for a million keys.
//!
//! They are hashed with XXH3: SipHash's flood resistance buys nothing on one's own file,
//! and it was a tenth of a pass.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// XXH3 over the key bytes (the length prefix that `Hash for [u8]` writes first is mixed in).
#[derive(Default, Clone, Copy)]
pub struct KeyHash(u64);

impl Hasher for KeyHash {
    fn write(&mut self, b: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(b, self.0);
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = self.0.rotate_left(29) ^ n as u64;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map from owned user keys; look up with a borrowed `&[u8]`.
pub type KeyMap<V> = HashMap<Box<[u8]>, V, BuildHasherDefault<KeyHash>>;

/// The entry for `key`, copying the key in only when it is new.
pub fn entry<'m, V: Default>(map: &'m mut KeyMap<V>, key: &[u8]) -> &'m mut V {
    // A known key (most are) is found twice and never copied: returning the first lookup's
    // borrow from one branch and inserting in the other is what the borrow checker refuses
    // (std has no `entry` by reference). The second lookup hits lines the first loaded.
    if map.contains_key(key) {
        return map.get_mut(key).expect("just found");
    }
    map.entry(key.into()).or_default()
}

/// Set `key` to `value`, copying the key in only when it is new.
pub fn set<V>(map: &mut KeyMap<V>, key: &[u8], value: V) {
    match map.get_mut(key) {
        Some(v) => *v = value,
        None => {
            map.insert(key.into(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_keys_found_by_slice() {
        let mut m: KeyMap<u32> = KeyMap::default();
        *entry(&mut m, b"/registry/pods/a") += 1;
        *entry(&mut m, b"/registry/pods/a") += 1;
        *entry(&mut m, b"/registry/pods/b") += 1;
        assert_eq!(m.get(&b"/registry/pods/a"[..]), Some(&2));
        assert_eq!(m.len(), 2);
    }
}
