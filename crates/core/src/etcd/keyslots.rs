//! A fixed set of user keys, numbered, that a pass over the `key` bucket looks every entry's
//! key up in (HashKV: the low keys whose kept revision an entry above the compact revision
//! may still void).
//!
//! Exact: a key is found by its bytes, which sit once in an arena. Built once and then only
//! read (by both halves' threads at once), so it is a flat table sized at the start: open
//! addressing, linear probing, 16-byte slots of the key's 64-bit XXH3 (placing the slot,
//! and most misses end on it) and the key's place in the arena. A pass asks for each
//! entry's slot some entries ahead ([`KeySlots::prefetch_slot`]), then for the key bytes
//! that slot points to ([`KeySlots::prefetch_key`]), so the lookup itself finds both in the
//! cache: on a file much larger than the cache, each lookup had been two waits for memory.

use crate::reader::prefetch_value;

/// The 64-bit XXH3 a [`KeySlots`] places a key by.
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

pub struct KeySlots {
    table: Vec<Slot>,
    /// Every key's bytes, back to back in number order.
    arena: Vec<u8>,
    /// Where key `n` starts in `arena`; one more entry for the end.
    starts: Vec<usize>,
}

#[derive(Clone, Copy)]
struct Slot {
    hash: u64,
    /// The key's number; [`Slot::EMPTY`] for a free slot.
    number: u32,
}

impl Slot {
    const EMPTY: u32 = u32::MAX;
}

impl KeySlots {
    /// The keys (distinct), numbered in the order given; at most `u32::MAX - 1` of them
    /// (those past are left out).
    pub fn new<'k>(keys: impl Iterator<Item = &'k [u8]>) -> KeySlots {
        let mut arena = Vec::new();
        let mut starts = vec![0];
        for k in keys.take(Slot::EMPTY as usize - 1) {
            arena.extend_from_slice(k);
            starts.push(arena.len());
        }
        let n = starts.len() - 1;
        // At most three quarters full.
        let size = (n * 4 / 3 + 1).next_power_of_two();
        let mut s = KeySlots {
            table: vec![
                Slot {
                    hash: 0,
                    number: Slot::EMPTY,
                };
                size
            ],
            arena,
            starts,
        };
        for number in 0..n {
            let hash = key_hash(s.key(number as u32));
            let mut at = s.start(hash);
            while s.table[at].number != Slot::EMPTY {
                at = (at + 1) & (size - 1);
            }
            s.table[at] = Slot {
                hash,
                number: number as u32,
            };
        }
        s
    }

    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Key number `n`'s bytes.
    fn key(&self, n: u32) -> &[u8] {
        let n = n as usize;
        &self.arena[self.starts[n]..self.starts[n + 1]]
    }

    fn start(&self, hash: u64) -> usize {
        (hash as usize) & (self.table.len() - 1)
    }

    /// The number of `key`, whose [`key_hash`] is `hash`.
    #[inline]
    pub fn get(&self, hash: u64, key: &[u8]) -> Option<u32> {
        let mask = self.table.len() - 1;
        let mut at = self.start(hash);
        loop {
            let s = self.table[at];
            if s.number == Slot::EMPTY {
                return None;
            }
            if s.hash == hash && self.key(s.number) == key {
                return Some(s.number);
            }
            at = (at + 1) & mask;
        }
    }

    /// Start loading the slot where the search for `hash` begins.
    #[inline]
    pub fn prefetch_slot(&self, hash: u64) {
        prefetch_value(&self.table[self.start(hash)]);
    }

    /// Start loading the bytes of the key in `hash`'s first slot, when its hash matches
    /// (that slot should be in the cache by now: this reads it).
    #[inline]
    pub fn prefetch_key(&self, hash: u64) {
        let s = self.table[self.start(hash)];
        if s.number != Slot::EMPTY && s.hash == hash {
            let n = s.number as usize;
            if let Some(b) = self.arena.get(self.starts[n]) {
                prefetch_value(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_key_exactly() {
        let keys: Vec<Vec<u8>> = (0..3000u32)
            .map(|i| format!("/registry/pods/ns/{i}").into_bytes())
            .collect();
        let s = KeySlots::new(keys.iter().map(|k| k.as_slice()));
        assert_eq!(s.len(), 3000);
        for (n, k) in keys.iter().enumerate() {
            assert_eq!(s.get(key_hash(k), k), Some(n as u32));
            s.prefetch_slot(key_hash(k));
            s.prefetch_key(key_hash(k));
        }
        // A hash that matches but bytes that do not: not found.
        assert_eq!(s.get(key_hash(&keys[5]), b"/registry/pods/ns/x"), None);
        assert_eq!(s.get(key_hash(b"nope"), b"nope"), None);
        let empty = KeySlots::new(std::iter::empty());
        assert!(empty.is_empty());
        assert_eq!(empty.get(key_hash(b"a"), b"a"), None);
        empty.prefetch_slot(1);
        empty.prefetch_key(1);
    }
}
