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

/// Passes the low 64 bits of a [`KeyIds`] id on as the hash: the id is a hash already.
#[derive(Default, Clone, Copy)]
pub struct IdHash(u64);

impl Hasher for IdHash {
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u128 ids are hashed")
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map for figures only (`analyze`, `snapshot status`): user keys identified by their
/// 128-bit XXH3, each key's bytes kept once in an arena for the reports. A probe hashes
/// the key once and compares 16 bytes in the table's slot, never the stored key (which
/// sits in another cache line, as [`KeyMap`]'s do: that miss was most of a pass). Two
/// distinct keys share an id with a probability of about n^2 / 2^129 (1e-25 for ten
/// million keys); a file crafted to collide could only merge two keys' figures. Whatever
/// decides what a copy or a hash holds (`compact`, `hashkv`, `get`) uses [`KeyMap`],
/// which compares the keys themselves.
pub struct KeyIds<V> {
    map: HashMap<u128, (u32, u32, V), BuildHasherDefault<IdHash>>,
    arena: Vec<u8>,
}

impl<V> Default for KeyIds<V> {
    fn default() -> Self {
        KeyIds {
            map: HashMap::default(),
            arena: Vec::new(),
        }
    }
}

/// The id of a user key in a [`KeyIds`].
pub fn key_id(key: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(key)
}

impl<V> KeyIds<V> {
    /// The entry for `key`, its bytes kept when it is new.
    pub fn entry(&mut self, key: &[u8]) -> &mut V
    where
        V: Default,
    {
        let arena = &mut self.arena;
        &mut self
            .map
            .entry(key_id(key))
            .or_insert_with(|| {
                // Keys longer than 4 GiB, or an arena past it, do not occur (a bbolt key is
                // at most a page's worth of a 32-bit size); saturating keeps it total.
                let at = u32::try_from(arena.len()).unwrap_or(u32::MAX);
                arena.extend_from_slice(key);
                (
                    at,
                    u32::try_from(key.len()).unwrap_or(u32::MAX),
                    V::default(),
                )
            })
            .2
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn contains_id(&self, id: u128) -> bool {
        self.map.contains_key(&id)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values().map(|(_, _, v)| v)
    }

    /// Each key's id and value.
    pub fn ids(&self) -> impl Iterator<Item = (u128, &V)> {
        self.map.iter().map(|(&id, (_, _, v))| (id, v))
    }

    /// Each key's bytes and value.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> {
        self.map.values().map(|(at, len, v)| {
            let (at, len) = (*at as usize, *len as usize);
            (self.arena.get(at..at + len).unwrap_or_default(), v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_count_keys_and_keep_their_bytes() {
        let mut m: KeyIds<u32> = KeyIds::default();
        *m.entry(b"/registry/pods/a") += 1;
        *m.entry(b"/registry/pods/a") += 1;
        *m.entry(b"/registry/pods/b") += 1;
        assert_eq!(m.len(), 2);
        let mut all: Vec<(Vec<u8>, u32)> = m.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
        all.sort();
        assert_eq!(
            all,
            vec![
                (b"/registry/pods/a".to_vec(), 2),
                (b"/registry/pods/b".to_vec(), 1)
            ]
        );
        assert!(m.contains_id(key_id(b"/registry/pods/b")));
    }

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
