//! The transactions by key: a slab of entries and an index of 4-byte slot numbers.
//!
//! A `HashMap<Arc<str>, Tx>` that fills up moves every transaction into a table twice its size
//! while SIP processing waits, and the new table's memory is touched at random: at 15,000
//! registrations/s (150,000 server transactions in flight after 10 s; a completed one lives
//! 64×T1 = 32 s) such turns took tens of milliseconds. Here the transactions sit in a slab
//! (vacated slots are reused) and the hash table holds only slot numbers, so it is small enough
//! to size at start for the expected burst (`reserve`), and what a burst adds to the slab is
//! touched in order.
//!
//! Owns: the key → transaction map. Never: timers (the callers' heaps).

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashTable};

#[derive(Debug)]
pub(crate) struct TxTable<V> {
    hasher: DefaultHashBuilder,
    /// Slot numbers, hashed by their entry's key.
    index: HashTable<u32>,
    slots: Vec<Option<(Arc<str>, V)>>,
    /// Vacated slots, reused first.
    free: Vec<u32>,
}

impl<V> Default for TxTable<V> {
    fn default() -> Self {
        TxTable {
            hasher: DefaultHashBuilder::default(),
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

/// The key of the entry in `slot` (vacated slots are never in the index).
fn key_of<V>(slots: &[Option<(Arc<str>, V)>], slot: u32) -> &str {
    slots
        .get(slot as usize)
        .and_then(Option::as_ref)
        .map_or("", |(k, _)| k)
}

impl<V> TxTable<V> {
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// Room for `n` transactions without the index growing (and the slab reserved).
    pub(crate) fn reserve(&mut self, n: usize) {
        let TxTable {
            hasher,
            index,
            slots,
            ..
        } = self;
        index.reserve(n, |&s| hasher.hash_one(key_of(slots, s)));
        crate::memory::prefault(index, || 0);
        slots.reserve(n.saturating_sub(slots.len()));
    }

    /// The slot of `key`, whose hash is `hash`.
    fn slot(&self, hash: u64, key: &str) -> Option<u32> {
        self.index
            .find(hash, |&s| key_of(&self.slots, s) == key)
            .copied()
    }

    pub(crate) fn get_key_value(&self, key: &str) -> Option<(&Arc<str>, &V)> {
        let s = self.slot(self.hasher.hash_one(key), key)?;
        self.slots[s as usize].as_ref().map(|(k, v)| (k, v))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.get_key_value(key).map(|(_, v)| v)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let s = self.slot(self.hasher.hash_one(key), key)?;
        self.slots[s as usize].as_mut().map(|(_, v)| v)
    }

    /// The entry of `key`, inserted with `make()` (and the key allocated) only if absent: one
    /// hash and one probe either way. The `bool` is whether it was inserted. (`None` only if
    /// the index named a vacant slot, which it never does.)
    pub(crate) fn entry(
        &mut self,
        key: &str,
        make: impl FnOnce() -> V,
    ) -> Option<(&Arc<str>, &mut V, bool)> {
        let hash = self.hasher.hash_one(key);
        let (s, inserted) = match self.slot(hash, key) {
            Some(s) => (s, false),
            None => (self.insert_new(hash, Arc::from(key), make()), true),
        };
        let (k, v) = self.slots.get_mut(s as usize)?.as_mut()?;
        Some((&*k, v, inserted))
    }

    /// Insert or replace; returns the value it replaced.
    pub(crate) fn insert(&mut self, key: Arc<str>, value: V) -> Option<V> {
        let hash = self.hasher.hash_one(&*key);
        if let Some(s) = self.slot(hash, &key) {
            let entry = self.slots[s as usize].as_mut()?;
            return Some(std::mem::replace(&mut entry.1, value));
        }
        self.insert_new(hash, key, value);
        None
    }

    /// Put a key known to be absent in a slot and index it; returns the slot.
    fn insert_new(&mut self, hash: u64, key: Arc<str>, value: V) -> u32 {
        let s = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some((key, value));
                s
            }
            None => {
                self.slots.push(Some((key, value)));
                // Slot numbers are 32-bit: 4 G live transactions would need hundreds of GB, so
                // the conversion does not fail in practice (and cannot panic).
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let TxTable {
            hasher,
            index,
            slots,
            ..
        } = self;
        index.insert_unique(hash, s, |&s| hasher.hash_one(key_of(slots, s)));
        s
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<V> {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        let entry = self
            .index
            .find_entry(hash, |&s| key_of(slots, s) == key)
            .ok()?;
        let (s, _) = entry.remove();
        let (_, value) = self.slots.get_mut(s as usize)?.take()?;
        self.free.push(s);
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reserved_room_is_used_without_growing_and_slots_are_reused() {
        let mut t = TxTable::default();
        t.reserve(5000);
        let (index_cap, slab_cap) = (t.index.capacity(), t.slots.capacity());
        assert!(index_cap >= 5000 && slab_cap >= 5000);
        let keys: Vec<Arc<str>> = (0..5000)
            .map(|i| Arc::from(format!("z9hG4bK{i}")))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.insert(k.clone(), i), None);
        }
        assert_eq!(
            (t.index.capacity(), t.slots.capacity()),
            (index_cap, slab_cap)
        );
        assert_eq!(t.len(), 5000);
        assert_eq!(t.get("z9hG4bK4999"), Some(&4999));
        assert_eq!(t.insert(keys[7].clone(), 70), Some(7), "replaced in place");
        for k in &keys[..2500] {
            assert!(t.remove(k).is_some());
        }
        assert_eq!(t.get("z9hG4bK0"), None);
        for i in 5000..7500 {
            t.insert(Arc::from(format!("z9hG4bK{i}")), i);
        }
        assert_eq!(t.slots.len(), 5000, "vacated slots were reused");
        assert_eq!(t.len(), 5000);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u32),
        Remove(u16),
        Get(u16),
        Bump(u16),
        Entry(u16, u32),
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any sequence of operations gives what a plain hash map gives.
        #[test]
        fn behaves_like_a_hash_map(ops in proptest::collection::vec(prop_oneof![
            (0u16..2000, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0u16..2000).prop_map(Op::Remove),
            (0u16..2000).prop_map(Op::Get),
            (0u16..2000).prop_map(Op::Bump),
            (0u16..2000, any::<u32>()).prop_map(|(k, v)| Op::Entry(k, v)),
        ], 0..3000)) {
            let mut t = TxTable::default();
            let mut m: hashbrown::HashMap<String, u32> = hashbrown::HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let k = format!("b{k}");
                        prop_assert_eq!(t.insert(Arc::from(k.as_str()), v), m.insert(k, v));
                    }
                    Op::Remove(k) => {
                        let k = format!("b{k}");
                        prop_assert_eq!(t.remove(&k), m.remove(&k));
                    }
                    Op::Get(k) => {
                        let k = format!("b{k}");
                        prop_assert_eq!(t.get(&k), m.get(&k));
                        prop_assert_eq!(
                            t.get_key_value(&k).map(|(k, _)| k.to_string()),
                            m.get_key_value(&k).map(|(k, _)| k.clone())
                        );
                    }
                    Op::Entry(k, v) => {
                        let k = format!("b{k}");
                        let absent = !m.contains_key(&k);
                        let mv = *m.entry(k.clone()).or_insert(v);
                        let (tk, tv, inserted) = t.entry(&k, || v).unwrap();
                        prop_assert_eq!((&**tk, *tv, inserted), (k.as_str(), mv, absent));
                    }
                    Op::Bump(k) => {
                        let k = format!("b{k}");
                        if let Some(v) = t.get_mut(&k) {
                            *v = v.wrapping_add(1);
                        }
                        if let Some(v) = m.get_mut(&k) {
                            *v = v.wrapping_add(1);
                        }
                    }
                }
                prop_assert_eq!(t.len(), m.len());
            }
        }
    }
}
