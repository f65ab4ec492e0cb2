//! An exact, growing map from user keys to values that a pass can prefetch: the compaction
//! plan's newest revision per key, and HashKV's numbered low keys. (`analyze` and
//! `snapshot status` keep `KeyIds`: comparing the key bytes too made them 8-20% slower.)
//!
//! Keys are copied once into an arena of 1 MiB chunks, each after its length; the table is a [`Probing`] one of
//! 24-byte slots (the key's 64-bit XXH3, where its bytes are, the value's index); values
//! sit in [`Chunked`] storage, in
//! insertion order. A lookup compares the hash in the slot, then the bytes in the arena:
//! exact. [`KeyTable::prefetch_slot`] and [`KeyTable::prefetch_key`] let a pass request
//! both some entries before it asks (see [`pipelined`](super::keymap::pipelined)).

use super::keymap::Chunked;
use super::probing::{ProbeSlot, Probing};
use crate::error::Error;
use crate::reader::prefetch_value;

/// The 64-bit XXH3 a [`KeyTable`] places a key by, seeded per process
/// ([`table_seed`](super::keymap::table_seed): no file can make many keys share it).
/// Lookups compare the bytes too: the hash only places a key.
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(key, super::keymap::table_seed())
}

/// A pass met more than [`MAX_KEYS`] distinct user keys.
pub fn too_many_keys(what: &str) -> Error {
    Error::Usage(format!(
        "more than {MAX_KEYS} distinct user keys: too many for {what}"
    ))
}

pub struct KeyTable<V> {
    table: Probing<Slot>,
    values: Chunked<V>,
    arena: Vec<Vec<u8>>,
}

#[derive(Clone, Copy)]
struct Slot {
    hash: u64,
    /// The key's arena chunk and offset in it.
    chunk: u32,
    at: u32,
    len: u32,
    /// Index in `values`; [`Slot::EMPTY`] for a free slot. 32 bits keep the slot at 24
    /// bytes; [`MAX_KEYS`] bounds the table.
    index: u32,
}

/// Keys a table holds at most (a file with more distinct keys is some 100 GiB).
pub const MAX_KEYS: usize = u32::MAX as usize - 1;

impl Slot {
    const EMPTY: u32 = u32::MAX;
    const FREE: Slot = Slot {
        hash: 0,
        chunk: 0,
        at: 0,
        len: 0,
        index: Slot::EMPTY,
    };
}

impl ProbeSlot for Slot {
    const FREE: Slot = Slot::FREE;

    fn is_free(&self) -> bool {
        self.index == Slot::EMPTY
    }

    fn hash(&self) -> u64 {
        self.hash
    }
}

/// Bytes of an arena chunk; a longer key gets a chunk of its own.
const ARENA_CHUNK: usize = 1 << 20;

impl<V> Default for KeyTable<V> {
    fn default() -> Self {
        KeyTable {
            table: Probing::default(),
            values: Chunked::default(),
            arena: Vec::new(),
        }
    }
}

impl<V> KeyTable<V> {
    /// An empty table for `n` keys, sparse ([`Probing::sparse_for`]): for one filled once and
    /// then searched far more often than filled.
    pub fn sparse_for(n: usize) -> Self {
        KeyTable {
            table: Probing::sparse_for(n),
            values: Chunked::default(),
            arena: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Set `key`'s value (`hash` = [`key_hash`] of `key`), copying the key in when new.
    /// `false` (nothing set) when the key is new and the table holds [`MAX_KEYS`].
    #[must_use]
    pub fn set(&mut self, hash: u64, key: &[u8], value: V) -> bool {
        self.set_if(hash, key, value, |_| true)
    }

    /// Set `key`'s value to `value` when the key is new, or when `replace` says so of the
    /// value it has: one search either way. `false` as [`KeyTable::set`].
    #[must_use]
    pub fn set_if(
        &mut self,
        hash: u64,
        key: &[u8],
        value: V,
        replace: impl FnOnce(&V) -> bool,
    ) -> bool {
        let mut value = Some(value);
        let Some(i) = self.index_or_insert(hash, key, || value.take().expect("made once")) else {
            return false;
        };
        if let (Some(value), Some(v)) = (value, self.values.get_mut(i))
            && replace(v)
        {
            *v = value;
        }
        true
    }

    /// Give the table up for its keys and values in insertion order, read front to back
    /// (no cache miss per key, as a walk of the slots would take) and freed as they go:
    /// the slots first, each arena chunk once its keys are taken, the values' chunks as
    /// they are. `f` gets the keys of one arena chunk at a time with their values.
    pub fn drain_in_order<E>(
        self,
        mut f: impl FnMut(&mut dyn Iterator<Item = (&[u8], V)>) -> Result<(), E>,
    ) -> Result<(), E> {
        let KeyTable {
            table,
            values,
            arena,
        } = self;
        drop(table);
        let mut values = values.into_chunks().flatten();
        for chunk in arena {
            let mut keys = chunk_keys(&chunk).zip(values.by_ref());
            f(&mut keys)?;
        }
        Ok(())
    }

    /// The index of `key`'s value, made by `make` (and the key copied in) when new; `None`
    /// when new and the table holds [`MAX_KEYS`].
    fn index_or_insert(
        &mut self,
        hash: u64,
        key: &[u8],
        make: impl FnOnce() -> V,
    ) -> Option<usize> {
        let arena = &self.arena;
        let at = self
            .table
            .place(hash, |s| s.hash == hash && key_eq(key_of(arena, s), key));
        if self.table.at(at).is_free() {
            if self.len() >= MAX_KEYS {
                return None;
            }
            let (chunk, off) = keep(&mut self.arena, key);
            self.values.push(make());
            let slot = Slot {
                hash,
                chunk,
                at: off,
                len: key.len() as u32,
                index: (self.values.len() - 1) as u32,
            };
            self.table.fill(at, slot);
        }
        Some(self.table.at(at).index as usize)
    }

    /// The index of `key`'s value (values are numbered in insertion order).
    pub fn index_of(&self, hash: u64, key: &[u8]) -> Option<usize> {
        self.table
            .get(hash, |s| {
                s.hash == hash && key_eq(key_of(&self.arena, s), key)
            })
            .map(|s| s.index as usize)
    }

    /// Start loading the slot where the search for `hash` begins.
    #[inline]
    pub fn prefetch_slot(&self, hash: u64) {
        self.table.prefetch(hash);
    }

    /// Start loading the key bytes that `hash`'s first slot points to, when its hash
    /// matches (that slot should be in the cache by now: this reads it).
    #[inline]
    pub fn prefetch_key(&self, hash: u64) {
        if let Some(s) = self.table.first(hash)
            && !s.is_free()
            && s.hash == hash
            && let Some(b) = self
                .arena
                .get(s.chunk as usize)
                .and_then(|c| c.get(s.at as usize))
        {
            prefetch_value(b);
        }
    }

    /// Start loading the value of the key whose search starts at `hash`'s slot, when the
    /// slot (prefetched steps before) holds that hash: a replaced value is a third line.
    #[inline]
    pub fn prefetch_value(&self, hash: u64) {
        if let Some(s) = self.table.first(hash)
            && !s.is_free()
            && s.hash == hash
            && let Some(v) = self.values.get(s.index as usize)
        {
            prefetch_value(v);
        }
    }

    /// Every key and its value, in no particular order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> {
        self.table
            .iter()
            .filter_map(|s| Some((key_of(&self.arena, s), self.values.get(s.index as usize)?)))
    }

    /// The value [`KeyTable::index_of`] numbered `i`.
    #[cfg(test)]
    pub fn value(&self, i: usize) -> Option<&V> {
        self.values.get(i)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.values.iter()
    }
}

/// The bytes of the key in slot `s`.
/// Byte equality of two keys, inline and 8 bytes at a time: `==` on slices calls `bcmp`,
/// one call per probe, 7% of hashkv's profile on a member's 20-80 byte keys.
#[inline]
fn key_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    let mut at = 0;
    while at + 8 < n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    // The last word, overlapping the one before when n is not a multiple of 8.
    word(a, n - 8) == word(b, n - 8)
}

fn key_of<'a>(arena: &'a [Vec<u8>], s: &Slot) -> &'a [u8] {
    let (at, len) = (s.at as usize, s.len as usize);
    &arena[s.chunk as usize][at..at + len]
}

/// Bytes before each key in the arena: its length (so the arena reads back in order
/// without the table, [`KeyTable::drain_in_order`]).
const LEN_BYTES: usize = 4;

/// Copy `key` into the arena after its length: the chunk and the offset of its bytes.
fn keep(arena: &mut Vec<Vec<u8>>, key: &[u8]) -> (u32, u32) {
    let need = LEN_BYTES + key.len();
    let fits = arena.last().is_some_and(|c| c.len() + need <= c.capacity());
    if !fits {
        arena.push(Vec::with_capacity(need.max(ARENA_CHUNK)));
    }
    let n = arena.len() - 1;
    let c = &mut arena[n];
    c.extend_from_slice(&(key.len() as u32).to_le_bytes());
    let off = c.len();
    c.extend_from_slice(key);
    (n as u32, off as u32)
}

/// The keys of one arena chunk, in the order they were copied in.
fn chunk_keys(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = chunk.get(at..at + LEN_BYTES)?;
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let key = chunk.get(at + LEN_BYTES..at + LEN_BYTES + len)?;
        at += LEN_BYTES + len;
        Some(key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_eq_is_byte_equality() {
        let keys: Vec<Vec<u8>> = (0..=40usize)
            .flat_map(|n| {
                let base: Vec<u8> = (0..n as u8).collect();
                let mut variants = vec![base.clone()];
                for i in 0..n {
                    let mut v = base.clone();
                    v[i] ^= 0x80;
                    variants.push(v);
                }
                variants
            })
            .collect();
        for a in &keys {
            for b in &keys {
                assert_eq!(key_eq(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn drains_in_insertion_order_with_the_last_values() {
        let mut t: KeyTable<usize> = KeyTable::default();
        // Keys of every length up to past an arena chunk, so chunks end at odd places and
        // one key has a chunk of its own; every third key is set twice.
        let keys: Vec<Vec<u8>> = (0..3000usize)
            .map(|i| vec![(i % 251) as u8; if i == 1500 { ARENA_CHUNK + 5 } else { i % 700 }])
            .enumerate()
            .map(|(i, mut k)| {
                k.extend_from_slice(&i.to_le_bytes());
                k
            })
            .collect();
        for (i, k) in keys.iter().enumerate() {
            assert!(t.set(key_hash(k), k, i));
        }
        for (i, k) in keys.iter().enumerate().step_by(3) {
            assert!(t.set(key_hash(k), k, i + 10_000));
        }
        let mut got: Vec<(Vec<u8>, usize)> = Vec::new();
        t.drain_in_order(|keys| {
            got.extend(keys.map(|(k, v)| (k.to_vec(), v)));
            Ok::<(), ()>(())
        })
        .unwrap();
        let want: Vec<(Vec<u8>, usize)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), if i % 3 == 0 { i + 10_000 } else { i }))
            .collect();
        assert_eq!(got, want);
        // An error stops the drain.
        let mut one: KeyTable<u8> = KeyTable::default();
        assert!(one.set(key_hash(b"a"), b"a", 1));
        assert_eq!(one.drain_in_order(|_| Err("stop")), Err("stop"));
    }

    #[test]
    fn sets_and_replaces_exactly_through_growth() {
        let mut t: KeyTable<u32> = KeyTable::default();
        let key = |i: u32| format!("/registry/leases/ns/{i}").into_bytes();
        for round in 0..2 {
            for i in 0..5000 {
                assert!(t.set(key_hash(&key(i)), &key(i), i + round));
            }
        }
        // A key longer than an arena chunk.
        let long = vec![b'x'; ARENA_CHUNK + 3];
        assert!(t.set(key_hash(&long), &long, 7));
        assert_eq!(t.len(), 5001);
        let mut all: Vec<(Vec<u8>, u32)> = t.iter().map(|(k, &v)| (k.to_vec(), v)).collect();
        all.sort();
        let mut want: Vec<(Vec<u8>, u32)> = (0..5000).map(|i| (key(i), i + 1)).collect();
        want.push((long.clone(), 7));
        want.sort();
        assert_eq!(all, want);
        // Equal hashes, different bytes: two keys (the hash only places them).
        let mut c: KeyTable<u8> = KeyTable::default();
        assert!(c.set(1, b"a", 1) && c.set(1, b"b", 2) && c.set(1, b"a", 3));
        assert_eq!(c.len(), 2);
        c.prefetch_slot(1);
        c.prefetch_key(1);
        c.prefetch_value(1);
        let i = c.index_of(1, b"a").unwrap();
        assert_eq!(c.value(i), Some(&3));
        KeyTable::<u8>::default().prefetch_key(5);
        assert_eq!(KeyTable::<u8>::default().index_of(5, b"a"), None);
        let mut e: KeyTable<()> = KeyTable::default();
        assert!(e.is_empty());
        for k in [&b"x"[..], b"y", b"x"] {
            assert!(e.set(key_hash(k), k, ()));
        }
        assert_eq!(e.index_of(key_hash(b"y"), b"y"), Some(1));
        assert_eq!(e.index_of(key_hash(b"x"), b"x"), Some(0));
        assert_eq!(e.index_of(key_hash(b"z"), b"z"), None);
    }
}
