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

/// A vector grown in fixed chunks: no doubling, so its peak is its length plus one chunk,
/// not twice its length while a reallocation copies it (a per-entry or per-key table of a
/// large file is tens of MiB).
pub struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    const CHUNK: usize = 1 << 16;

    pub fn push(&mut self, v: T) {
        if self.len.is_multiple_of(Self::CHUNK) {
            self.chunks.push(Vec::with_capacity(Self::CHUNK));
        }
        self.chunks.last_mut().expect("a chunk").push(v);
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / Self::CHUNK)?.get(i % Self::CHUNK)
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.chunks
            .get_mut(i / Self::CHUNK)?
            .get_mut(i % Self::CHUNK)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

/// A [`KeyIds`] id: a key's 128-bit XXH3, as two words (8-byte aligned, so a table slot
/// with its index is 24 bytes, not 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyId(u64, u64);

impl std::hash::Hash for KeyId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// Passes a [`KeyId`]'s first word on as the hash: the id is a hash already.
#[derive(Default, Clone, Copy)]
pub struct IdHash(u64);

impl Hasher for IdHash {
    fn write(&mut self, _: &[u8]) {
        unreachable!("only key ids are hashed")
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
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
///
/// The table holds only the id and an index into `slots` (24 bytes a key): it is what
/// doubles, and at its resize both sizes are live.
pub struct KeyIds<V> {
    map: HashMap<KeyId, usize, BuildHasherDefault<IdHash>>,
    /// Per key in insertion order: where its bytes are ([`ARENA_CHUNK_BITS`] of offset
    /// under the arena chunk's number), its length, its value.
    slots: Chunked<(u32, u32, V)>,
    /// The keys' bytes in chunks of 1 << [`ARENA_CHUNK_BITS`] (a key never straddles two).
    arena: Vec<Vec<u8>>,
}

/// A [`KeyIds`] arena chunk is 1 MiB (a bbolt key is at most 32 KiB); 4095 of them (4 GiB
/// of distinct keys, some 70 million) can be numbered. Past that a key's bytes are not
/// kept (it is reported as empty); its figures still count.
const ARENA_CHUNK_BITS: u32 = 20;

impl<V> Default for KeyIds<V> {
    fn default() -> Self {
        KeyIds {
            map: HashMap::default(),
            slots: Chunked::default(),
            arena: Vec::new(),
        }
    }
}

/// The id of a user key in a [`KeyIds`].
pub fn key_id(key: &[u8]) -> KeyId {
    let h = xxhash_rust::xxh3::xxh3_128(key);
    KeyId(h as u64, (h >> 64) as u64)
}

impl<V> KeyIds<V> {
    /// The entry for `key`, its bytes kept when it is new.
    pub fn entry(&mut self, key: &[u8]) -> &mut V
    where
        V: Default,
    {
        let (arena, slots) = (&mut self.arena, &mut self.slots);
        let i = *self.map.entry(key_id(key)).or_insert_with(|| {
            let place = keep_bytes(arena, key);
            slots.push((place, key.len() as u32, V::default()));
            slots.len() - 1
        });
        &mut self.slots.get_mut(i).expect("an index the map gave").2
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn contains_id(&self, id: KeyId) -> bool {
        self.map.contains_key(&id)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().map(|(_, _, v)| v)
    }

    /// Each key's id and value.
    pub fn ids(&self) -> impl Iterator<Item = (KeyId, &V)> {
        self.map
            .iter()
            .filter_map(|(&id, &i)| Some((id, &self.slots.get(i)?.2)))
    }

    /// Each key's bytes and value.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> {
        self.slots.iter().map(|(place, len, v)| {
            let (chunk, at) = (
                (*place >> ARENA_CHUNK_BITS) as usize,
                (*place & ((1 << ARENA_CHUNK_BITS) - 1)) as usize,
            );
            let key = (*place != u32::MAX)
                .then(|| self.arena.get(chunk)?.get(at..at + *len as usize))
                .flatten();
            (key.unwrap_or_default(), v)
        })
    }
}

/// Copy `key` into the arena: its place, or `u32::MAX` when it cannot be numbered.
fn keep_bytes(arena: &mut Vec<Vec<u8>>, key: &[u8]) -> u32 {
    let chunk = 1usize << ARENA_CHUNK_BITS;
    let fits = arena.last().is_some_and(|c| c.len() + key.len() <= chunk);
    if !fits && key.len() <= chunk {
        arena.push(Vec::with_capacity(chunk));
    }
    let n = arena.len().saturating_sub(1);
    match arena.last_mut() {
        Some(c) if n < (1 << (32 - ARENA_CHUNK_BITS)) - 1 && c.len() + key.len() <= chunk => {
            let at = c.len();
            c.extend_from_slice(key);
            ((n << ARENA_CHUNK_BITS) | at) as u32
        }
        _ => u32::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_indexes_across_chunks() {
        let mut c: Chunked<u32> = Chunked::default();
        let n = Chunked::<u32>::CHUNK * 2 + 5;
        for i in 0..n as u32 {
            c.push(i);
        }
        assert_eq!(c.len(), n);
        *c.get_mut(Chunked::<u32>::CHUNK).unwrap() += 1_000_000;
        assert_eq!(
            c.get(Chunked::<u32>::CHUNK - 1),
            Some(&(Chunked::<u32>::CHUNK as u32 - 1))
        );
        assert_eq!(
            c.get(Chunked::<u32>::CHUNK),
            Some(&(Chunked::<u32>::CHUNK as u32 + 1_000_000))
        );
        assert_eq!(c.get(n), None);
        assert_eq!(c.iter().count(), n);
    }

    #[test]
    fn key_ids_keep_bytes_across_arena_chunks() {
        // 3 MiB of 1000-byte keys: the arena rolls over to new chunks, no key straddles.
        let mut m: KeyIds<u32> = KeyIds::default();
        let key = |i: u32| {
            let mut k = vec![b'k'; 1000];
            k[..4].copy_from_slice(&i.to_be_bytes());
            k
        };
        for i in 0..3000 {
            *m.entry(&key(i)) = i;
        }
        assert!(m.arena.len() >= 3);
        for (k, &v) in m.iter() {
            assert_eq!(k, &key(v)[..]);
        }
        assert_eq!(m.len(), 3000);
    }

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
