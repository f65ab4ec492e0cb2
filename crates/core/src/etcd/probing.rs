//! The open-addressing table under both per-key tables (`KeyIds`' ids, `KeyTable`'s exact
//! keys): linear probing over a power-of-two array, at most three quarters full, each slot
//! placed by a hash it carries. Ours rather than a `HashMap` so a pass can prefetch the slot
//! a search will start at ([`Probing::prefetch`]; `HashMap` does not say where that is).

use crate::reader::prefetch_value;

/// A slot of a [`Probing`] table.
pub(super) trait ProbeSlot: Copy {
    /// The free slot.
    const FREE: Self;
    fn is_free(&self) -> bool;
    /// The hash that places it.
    fn hash(&self) -> u64;
}

pub(super) struct Probing<S> {
    slots: Vec<S>,
    len: usize,
}

impl<S> Default for Probing<S> {
    fn default() -> Self {
        Probing {
            slots: Vec::new(),
            len: 0,
        }
    }
}

impl<S: ProbeSlot> Probing<S> {
    /// Slots of the first table.
    const FIRST_SLOTS: usize = 1 << 10;

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// A table for `n` slots at most a quarter full: a search for a hash it does not hold
    /// then looks at ~1.4 slots instead of ~8.5 at three quarters (a table built once and
    /// searched by every entry of a pass, most of which it does not hold).
    pub(super) fn sparse_for(n: usize) -> Self {
        let slots = n
            .saturating_mul(4)
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX / 2 + 1)
            .max(Self::FIRST_SLOTS);
        Probing {
            slots: vec![S::FREE; slots],
            len: 0,
        }
    }

    fn start(&self, hash: u64) -> usize {
        (hash as usize) & (self.slots.len() - 1)
    }

    /// The slot where the search for `hash` begins; `None` for an empty table.
    #[inline]
    pub(super) fn first(&self, hash: u64) -> Option<&S> {
        (!self.slots.is_empty()).then(|| &self.slots[self.start(hash)])
    }

    /// Start loading the slot where the search for `hash` begins.
    #[inline]
    pub(super) fn prefetch(&self, hash: u64) {
        if let Some(s) = self.first(hash) {
            prefetch_value(s);
        }
    }

    /// The slot `is` accepts, searched from `hash`'s place; `None` when not there.
    pub(super) fn get(&self, hash: u64, is: impl Fn(&S) -> bool) -> Option<&S> {
        if self.slots.is_empty() {
            return None;
        }
        let s = &self.slots[self.find(hash, is)];
        (!s.is_free()).then_some(s)
    }

    /// The position of the slot `is` accepts, or of the free slot where it would go.
    fn find(&self, hash: u64, is: impl Fn(&S) -> bool) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = self.start(hash);
        while !self.slots[at].is_free() && !is(&self.slots[at]) {
            at = (at + 1) & mask;
        }
        at
    }

    /// The position of the slot `is` accepts, or of the free one where it would go (the
    /// table grown first if one more would fill it past three quarters): see [`at`] and
    /// [`fill`].
    ///
    /// [`at`]: Probing::at
    /// [`fill`]: Probing::fill
    pub(super) fn place(&mut self, hash: u64, is: impl Fn(&S) -> bool) -> usize {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        self.find(hash, is)
    }

    /// The slot at a position [`place`](Probing::place) gave.
    pub(super) fn at(&self, pos: usize) -> &S {
        &self.slots[pos]
    }

    /// Fill the free slot at a position [`place`](Probing::place) gave.
    pub(super) fn fill(&mut self, pos: usize, s: S) {
        debug_assert!(self.slots[pos].is_free());
        self.slots[pos] = s;
        self.len += 1;
    }

    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(Self::FIRST_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![S::FREE; n]);
        for s in old.into_iter().filter(|s| !s.is_free()) {
            let at = self.find(s.hash(), |_| false);
            self.slots[at] = s;
        }
    }

    /// The filled slots, in table order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &S> {
        self.slots.iter().filter(|s| !s.is_free())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, PartialEq, Debug)]
    struct T(u64, u32);

    impl ProbeSlot for T {
        const FREE: T = T(0, u32::MAX);
        fn is_free(&self) -> bool {
            self.1 == u32::MAX
        }
        fn hash(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn finds_every_slot_through_growth_and_shared_hashes() {
        let mut t: Probing<T> = Probing::default();
        assert_eq!(t.get(1, |_| true), None);
        t.prefetch(1);
        // Every third one shares hash 7: they probe past each other.
        let hash = |i: u32| {
            if i.is_multiple_of(3) {
                7
            } else {
                u64::from(i) * 0x9e37_79b9
            }
        };
        for i in 0..5000u32 {
            let at = t.place(hash(i), |s| s.1 == i);
            assert!(t.at(at).is_free());
            t.fill(at, T(hash(i), i));
            let again = t.place(hash(i), |s| s.1 == i);
            assert_eq!(*t.at(again), T(hash(i), i));
        }
        assert_eq!(t.len(), 5000);
        for i in 0..5000u32 {
            assert_eq!(t.get(hash(i), |s| s.1 == i).copied(), Some(T(hash(i), i)));
        }
        assert_eq!(t.get(7, |s| s.1 == 1), None);
        assert_eq!(t.iter().count(), 5000);
    }
}
