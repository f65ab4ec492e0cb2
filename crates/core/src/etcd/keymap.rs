//! Maps keyed by etcd user keys, as every pass over the `key` bucket keeps one.
//!
//! Keys are copied in rather than borrowed from the map: a probe compares against the
//! stored key, and a borrowed one sits in the page of that key's first revision, long
//! since read. Each probe would then miss the cache and fault a page (and the kernel's
//! fault-around: 64 KiB) back into the resident set. User keys are short; the copies are
//! a few MiB even for a million keys.
//!
//! They are hashed with XXH3 (SipHash was a tenth of a pass), seeded once per process
//! ([`table_seed`]): a hostile file cannot know the seed, so it cannot make many keys share
//! a hash and turn the tables' probing quadratic.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::probing::{ProbeSlot, Probing};

/// XXH3 over the key bytes (the length prefix that `Hash for [u8]` writes first is mixed
/// in), from the per-process [`table_seed`]: no file can make many keys share a hash.
#[derive(Clone, Copy)]
pub struct KeyHash(u64);

impl Default for KeyHash {
    fn default() -> Self {
        KeyHash(table_seed())
    }
}

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

    /// The chunks, in order, each to be let go once used.
    pub fn into_chunks(self) -> impl Iterator<Item = Vec<T>> {
        self.chunks.into_iter()
    }
}

/// A [`KeyIds`] id: 96 bits of a key's 128-bit XXH3, as a word and a half (so a table
/// slot with its index is 16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyId(u64, u32);

impl KeyId {
    /// `==` in two compares: a derived `==` may become a call into `memcmp` (LLVM merges
    /// adjacent compares), which was a fifth of `analyze` on a large file.
    #[inline]
    fn is(self, other: KeyId) -> bool {
        ((self.0 ^ other.0) | u64::from(self.1 ^ other.1)) == 0
    }
}

/// A map for figures only (`analyze`, `snapshot status`): user keys identified by their
/// XXH3 (96 of its 128 bits, seeded per process: [`table_seed`]), without their bytes. A probe hashes
/// the key once and compares 16 bytes in the table's slot, never the stored key (which
/// sits in another cache line, as [`KeyMap`]'s do: that miss was most of a pass). Two
/// distinct keys share an id with a probability of about n^2 / 2^97 (1e-15 for ten
/// million keys), and a file cannot be crafted to make them: it cannot know the seed.
/// Whatever decides what a copy or a hash holds (`compact`, `hashkv`, `get`) compares the
/// keys themselves (`KeyTable`, [`KeyMap`]).
///
/// The keys' bytes are not kept: a report that names keys keeps where they are in the
/// file in its values (`analyze`'s top keys), so the table is the ids and the values only
/// (a copy of every key was a third of `analyze`'s heap).
///
/// The table holds only the id and an index into `values` (16 bytes a key): it is what
/// doubles, and at its resize both sizes are live.
pub struct KeyIds<V> {
    map: Probing<IdSlot>,
    /// Per key in insertion order, its value.
    values: Chunked<V>,
    /// The value of every key past the [`IdSlot::EMPTY`]th (a file of billions of keys):
    /// their figures are lumped together rather than lost.
    overflow: V,
}

impl<V: Default> Default for KeyIds<V> {
    fn default() -> Self {
        KeyIds {
            map: Probing::default(),
            values: Chunked::default(),
            overflow: V::default(),
        }
    }
}

/// The id of a user key in a [`KeyIds`].
pub fn key_id(key: &[u8]) -> KeyId {
    let h = xxhash_rust::xxh3::xxh3_128_with_seed(key, table_seed());
    KeyId(h as u64, (h >> 64) as u32)
}

/// The seed of the per-key tables' hashes ([`key_id`], `keytable::key_hash`, [`KeyHash`]),
/// drawn once per process: a file crafted so that many keys share a hash (XXH3 is no
/// cryptographic hash) would turn their linear probing quadratic, a hang; with a seed the
/// file cannot know, it cannot. No output depends on the hashes' values (what a table's
/// order decides is sorted or numbered in insertion order).
pub fn table_seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(0u8)
    })
}

impl<V> KeyIds<V> {
    /// The entry for `key`.
    #[cfg(test)]
    pub fn entry(&mut self, key: &[u8]) -> &mut V
    where
        V: Default,
    {
        self.entry_with_id(key_id(key))
    }

    /// The entry of the key whose id is `id` ([`key_id`]), `V::default()` when new.
    pub fn entry_with_id(&mut self, id: KeyId) -> &mut V
    where
        V: Default,
    {
        let at = self.map.place(id.0, |s| s.id().is(id));
        if self.map.at(at).is_free() {
            let index = match u32::try_from(self.values.len()) {
                Ok(i) if i != IdSlot::EMPTY => i,
                _ => return &mut self.overflow,
            };
            self.values.push(V::default());
            self.map.fill(at, IdSlot::new(id, index));
        }
        let i = self.map.at(at).index as usize;
        self.values.get_mut(i).expect("an index the map gave")
    }

    /// Start loading the table slot where `id`'s search begins: a pass that asks for a
    /// key some entries later then finds the slot in the cache (on a large file the table
    /// is far larger than the cache, and each search was a wait for memory).
    #[inline]
    pub fn prefetch_slot(&self, id: KeyId) {
        self.map.prefetch(id.0);
    }

    /// `id`'s index in `values`, when the key is known.
    fn index(&self, id: KeyId) -> Option<usize> {
        self.map
            .get(id.0, |s| s.id().is(id))
            .map(|s| s.index as usize)
    }

    /// The value of `id`, when the key is known.
    #[inline]
    pub fn get_by_id(&self, id: KeyId) -> Option<&V> {
        self.index(id).and_then(|i| self.values.get(i))
    }

    /// Start loading the value of `id`, when the key is known (its slot should have been
    /// prefetched by then: this reads it).
    #[inline]
    pub fn prefetch_value(&self, id: KeyId) {
        if let Some(v) = self.get_by_id(id) {
            crate::reader::prefetch_value(v);
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn contains_id(&self, id: KeyId) -> bool {
        self.index(id).is_some()
    }

    /// The values, in the order their keys came.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.values.iter()
    }

    /// The values in the order their keys came, each chunk let go once used (a merge of
    /// two tables then never holds both whole).
    pub fn into_values(self) -> impl Iterator<Item = V> {
        self.values.into_chunks().flatten()
    }

    /// Each key's id and value.
    pub fn ids(&self) -> impl Iterator<Item = (KeyId, &V)> {
        self.map
            .iter()
            .filter_map(|s| Some((s.id(), self.values.get(s.index as usize)?)))
    }
}

/// A slot of a [`KeyIds`]' table: the id, and its index in `values` (16 bytes).
#[derive(Clone, Copy)]
struct IdSlot {
    lo: u64,
    hi: u32,
    /// [`IdSlot::EMPTY`] for a free slot.
    index: u32,
}

const _: () = assert!(std::mem::size_of::<IdSlot>() == 16);

impl IdSlot {
    const EMPTY: u32 = u32::MAX;

    fn new(id: KeyId, index: u32) -> IdSlot {
        IdSlot {
            lo: id.0,
            hi: id.1,
            index,
        }
    }

    fn id(&self) -> KeyId {
        KeyId(self.lo, self.hi)
    }
}

impl ProbeSlot for IdSlot {
    const FREE: IdSlot = IdSlot {
        lo: 0,
        hi: 0,
        index: IdSlot::EMPTY,
    };

    fn is_free(&self) -> bool {
        self.index == IdSlot::EMPTY
    }

    /// The id is a hash already: its first word places the slot.
    fn hash(&self) -> u64 {
        self.lo
    }
}

/// Steps between prefetching an item's memory and using it, per stage of [`pipelined`]:
/// enough for the loads of several entries to be on their way at once.
const AHEAD_STEPS: usize = 8;

/// Feed `items` to `f` [`AHEAD_STEPS`] * 2 items behind the iterator: `first` sees each
/// item as it arrives (to prefetch what a lookup will read first, e.g. a table slot),
/// `second` [`AHEAD_STEPS`] items later (to prefetch what the first load points to), and
/// `third` half as many later again (what that points to: analyze's layout entry of the
/// key's previous revision). A pass over a file much larger than the cache then waits for
/// memory once for many entries instead of once per entry. The order of `f`'s calls is the
/// items' order; an error stops it at once (the items behind the error are not fed).
pub(crate) fn pipelined<S, T, E>(
    items: impl Iterator<Item = Result<T, E>>,
    state: &mut S,
    first: impl Fn(&S, &T),
    second: impl Fn(&S, &T),
    third: impl Fn(&S, &T),
    mut f: impl FnMut(&mut S, T) -> Result<(), E>,
) -> Result<(), E> {
    let mut ring = Pipeline::default();
    for item in items {
        if let Some(t) = ring.push(state, item?, &first, &second, &third) {
            f(state, t)?;
        }
    }
    while let Some(t) = ring.pop() {
        f(state, t)?;
    }
    Ok(())
}

/// [`pipelined`] for items that arrive by calls rather than from an iterator (a walk's
/// visitor): [`Pipeline::push`] returns the item that is due, [`Pipeline::pop`] drains.
pub(crate) struct Pipeline<T> {
    ring: std::collections::VecDeque<T>,
}

impl<T> Default for Pipeline<T> {
    fn default() -> Self {
        Pipeline {
            ring: std::collections::VecDeque::with_capacity(2 * AHEAD_STEPS + 1),
        }
    }
}

impl<T> Pipeline<T> {
    /// Take `item` in; out comes the item [`AHEAD_STEPS`] * 2 before it, once there is one.
    #[inline]
    pub(crate) fn push<S>(
        &mut self,
        state: &S,
        item: T,
        first: impl Fn(&S, &T),
        second: impl Fn(&S, &T),
        third: impl Fn(&S, &T),
    ) -> Option<T> {
        let ring = &mut self.ring;
        first(state, &item);
        ring.push_back(item);
        if let Some(mid) = ring.len().checked_sub(AHEAD_STEPS + 1) {
            second(state, &ring[mid]);
        }
        if let Some(late) = ring.len().checked_sub(AHEAD_STEPS + AHEAD_STEPS / 2 + 1) {
            third(state, &ring[late]);
        }
        if ring.len() > 2 * AHEAD_STEPS {
            ring.pop_front()
        } else {
            None
        }
    }

    /// The oldest item still inside (all of them in turn, at the end).
    pub(crate) fn pop(&mut self) -> Option<T> {
        self.ring.pop_front()
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
    fn key_ids_count_keys() {
        let mut m: KeyIds<u32> = KeyIds::default();
        *m.entry(b"/registry/pods/a") += 1;
        *m.entry(b"/registry/pods/a") += 1;
        *m.entry(b"/registry/pods/b") += 1;
        assert_eq!(m.len(), 2);
        assert_eq!(m.values().copied().collect::<Vec<_>>(), vec![2, 1]);
        assert_eq!(m.get_by_id(key_id(b"/registry/pods/a")), Some(&2));
        assert!(m.contains_id(key_id(b"/registry/pods/b")));
        assert!(!m.contains_id(key_id(b"/registry/pods/c")));
        assert_eq!(m.into_values().collect::<Vec<_>>(), vec![2, 1]);
    }

    #[test]
    fn pipelined_feeds_every_item_in_order_and_stops_at_an_error() {
        for n in [0, 1, AHEAD_STEPS, 2 * AHEAD_STEPS, 2 * AHEAD_STEPS + 1, 100] {
            let mut seen: Vec<usize> = Vec::new();
            let items = (0..n).map(Ok::<usize, ()>);
            pipelined(
                items,
                &mut seen,
                |_, _| {},
                |_, _| {},
                |_, _| {},
                |s, i| {
                    s.push(i);
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(seen, (0..n).collect::<Vec<_>>());
        }
        let items = (0..50).map(|i| if i == 30 { Err(i) } else { Ok(i) });
        let mut fed = 0;
        assert_eq!(
            pipelined(
                items,
                &mut fed,
                |_, _| {},
                |_, _| {},
                |_, _| {},
                |s, _| {
                    *s += 1;
                    Ok(())
                }
            ),
            Err(30)
        );
        assert!(fed < 30);
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
