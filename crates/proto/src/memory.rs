//! Making memory that is sized at start resident at start.
//!
//! A hash table reserved for N entries is allocated at once, but its pages are first written
//! when entries land in them, and entries land at random places: the first few thousand inserts
//! fault in the whole table. With the tables sized for `limits.expected_registrations =
//! 1000000`, the first turns of a 15,000/s burst took 80–140 ms each, mostly zeroing fresh
//! pages (a first touch is especially expensive in a VM whose host backs memory lazily), long
//! enough to overflow a socket buffer. Writing every bucket once at start-up moves that cost out
//! of the first seconds of traffic.
//!
//! Owns: pre-faulting of tables. Never: sizing policy (the callers reserve).

use hashbrown::HashTable;

/// Write every bucket of an empty table once, then empty it again (capacity and allocation are
/// kept). A table with entries is left alone.
pub(crate) fn prefault<T>(table: &mut HashTable<T>, dummy: impl Fn() -> T) {
    if !table.is_empty() {
        return;
    }
    let capacity = table.capacity();
    for i in 0..capacity {
        // hashbrown picks the bucket from the hash's low bits: spreading consecutive numbers
        // over the buckets (capacity is 7/8 of them) puts one entry in each, touching every page.
        let hash = (i as u64).wrapping_mul(8) / 7;
        // The rehash closure is never called: the table does not grow within its capacity.
        table.insert_unique(hash, dummy(), |_| 0);
    }
    table.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefault_keeps_the_table_empty_and_its_capacity() {
        let mut t: HashTable<u32> = HashTable::with_capacity(10_000);
        let cap = t.capacity();
        prefault(&mut t, || 7);
        assert!(t.is_empty());
        assert_eq!(t.capacity(), cap);
        // Still usable at full capacity without growing.
        for i in 0..cap as u32 {
            t.insert_unique(u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15), i, |&v| {
                u64::from(v).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            });
        }
        assert_eq!((t.len(), t.capacity()), (cap, cap));
        // A table with entries is left alone.
        let mut full: HashTable<u32> = HashTable::with_capacity(16);
        full.insert_unique(1, 1, |_| 1);
        prefault(&mut full, || 0);
        assert_eq!(full.len(), 1);
    }
}
