//! Time for the sans-IO core: one deadline queue that every timer owner uses.
//!
//! [`DeadlineQueue`] holds `(deadline, key)` entries. An owner keeps the *current* deadline of
//! each of its things (a binding, a subscription, a transaction) in the thing's own record and
//! pushes a new entry whenever it changes; entries that no longer match are stale and are dropped
//! when they reach the front (lazy deletion), so changing a deadline is O(1) and the queue needs
//! no index of its own. The owner says what is current through a closure.
//!
//! Most owners push deadlines in order (a fixed timeout after "now": Timer J, Timer K, a
//! pending REGISTER's lifetime), so entries pushed in non-decreasing order go to a FIFO (O(1)
//! push and pop) and only out-of-order ones to a binary heap; the front is the smaller of the
//! two fronts. At 15,000 registrations/s a transaction table holds ~500,000 deadlines, and a
//! heap pop there costs ~20 cache-missing levels.
//!
//! Never: a clock. Deadlines are whatever ordered time the owner uses (`Instant`, milliseconds
//! or whole seconds since its epoch).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

/// Deadlines of type `T` (ordered time) for keys of type `K`.
#[derive(Debug, Clone)]
pub struct DeadlineQueue<T, K> {
    /// Entries pushed in non-decreasing deadline order.
    fifo: VecDeque<(T, K)>,
    /// Entries that came out of order.
    heap: BinaryHeap<Reverse<(T, K)>>,
}

impl<T, K> Default for DeadlineQueue<T, K> {
    fn default() -> Self {
        DeadlineQueue {
            fifo: VecDeque::new(),
            heap: BinaryHeap::new(),
        }
    }
}

impl<T: Ord + Copy, K: Ord> DeadlineQueue<T, K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `n` entries without growing.
    pub fn reserve(&mut self, n: usize) {
        self.fifo.reserve(n);
    }

    /// Entries held, stale ones included.
    pub fn len(&self) -> usize {
        self.fifo.len() + self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add a deadline for `key` (an earlier one for the same key becomes stale when the owner's
    /// record says so).
    pub fn push(&mut self, at: T, key: K) {
        match self.fifo.back() {
            Some((last, _)) if at < *last => self.heap.push(Reverse((at, key))),
            _ => self.fifo.push_back((at, key)),
        }
    }

    /// The front entry, stale or not.
    pub fn peek(&self) -> Option<(T, &K)> {
        let f = self.fifo.front().map(|(t, k)| (*t, k));
        let h = self.heap.peek().map(|Reverse((t, k))| (*t, k));
        match (f, h) {
            (Some(f), Some(h)) => Some(if h.0 < f.0 { h } else { f }),
            (f, h) => f.or(h),
        }
    }

    /// The earliest deadline, stale or not (exact after [`Self::tidy`]).
    pub fn next_deadline(&self) -> Option<T> {
        self.peek().map(|(t, _)| t)
    }

    fn pop_front(&mut self) -> Option<(T, K)> {
        let from_heap = match (self.fifo.front(), self.heap.peek()) {
            (Some((f, _)), Some(Reverse((h, _)))) => h < f,
            (None, Some(_)) => true,
            _ => false,
        };
        if from_heap {
            self.heap.pop().map(|Reverse(e)| e)
        } else {
            self.fifo.pop_front()
        }
    }

    /// Drop stale entries from the front, so that [`Self::next_deadline`] is the earliest
    /// current one.
    pub fn tidy(&mut self, mut current: impl FnMut(T, &K) -> bool) {
        while let Some((t, k)) = self.peek() {
            if current(t, k) {
                return;
            }
            self.pop_front();
        }
    }

    /// The next current entry due at `now` (deadline ≤ now), removed; stale entries on the way
    /// are dropped.
    pub fn pop_due(&mut self, now: T, mut current: impl FnMut(T, &K) -> bool) -> Option<(T, K)> {
        loop {
            let (t, k) = self.peek()?;
            if t > now {
                return None;
            }
            let live = current(t, k);
            let e = self.pop_front();
            if live {
                return e;
            }
        }
    }

    /// When stale entries outnumber `live` (the owner's count of current deadlines) by far,
    /// keep only the current ones.
    pub fn compact(&mut self, live: usize, mut current: impl FnMut(T, &K) -> bool) {
        if self.len() <= 1024 || self.len() <= 3 * live {
            return;
        }
        self.fifo.retain(|(t, k)| current(*t, k));
        let heap = std::mem::take(&mut self.heap);
        self.heap = heap
            .into_iter()
            .filter(|Reverse((t, k))| current(*t, k))
            .collect();
    }
}

/// `Instant`s ↔ Unix milliseconds, from the wall-clock time at one instant. The caller reads
/// the wall clock; the core only converts (durable records carry Unix times, since an `Instant`
/// means nothing after a restart).
#[derive(Debug, Clone, Copy)]
pub struct Wall {
    now: Instant,
    unix_ms: u64,
}

impl Wall {
    /// `wall` is the wall-clock time at `now`.
    pub fn new(now: Instant, wall: SystemTime) -> Wall {
        let unix_ms = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Wall { now, unix_ms }
    }

    /// Unix milliseconds of `t`.
    pub fn unix(&self, t: Instant) -> u64 {
        if t >= self.now {
            let d = u64::try_from((t - self.now).as_millis()).unwrap_or(u64::MAX);
            self.unix_ms.saturating_add(d)
        } else {
            let d = u64::try_from((self.now - t).as_millis()).unwrap_or(u64::MAX);
            self.unix_ms.saturating_sub(d)
        }
    }

    /// The `Instant` of Unix milliseconds `ms` (a time too far in the past for the platform's
    /// monotonic clock is `now`: for a deadline that is as due as it gets).
    pub fn instant(&self, ms: u64) -> Instant {
        if ms >= self.unix_ms {
            self.now
                .checked_add(Duration::from_millis(ms - self.unix_ms))
                .unwrap_or(self.now + Duration::from_secs(100 * 365 * 86_400))
        } else {
            self.now
                .checked_sub(Duration::from_millis(self.unix_ms - ms))
                .unwrap_or(self.now)
        }
    }
}

/// The earliest of several optional deadlines.
pub fn earliest<T: Ord>(deadlines: impl IntoIterator<Item = Option<T>>) -> Option<T> {
    deadlines.into_iter().flatten().min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn in_order_and_out_of_order_pushes_come_out_in_deadline_order() {
        let mut q = DeadlineQueue::new();
        for (t, k) in [(5, 'a'), (7, 'b'), (3, 'c'), (7, 'd'), (1, 'e'), (9, 'f')] {
            q.push(t, k);
        }
        let mut got = Vec::new();
        while let Some(e) = q.pop_due(100, |_, _| true) {
            got.push(e);
        }
        assert_eq!(
            got,
            [(1, 'e'), (3, 'c'), (5, 'a'), (7, 'b'), (7, 'd'), (9, 'f')]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn stale_entries_are_skipped_and_nothing_is_early() {
        let mut q = DeadlineQueue::new();
        q.push(10, 1u32);
        q.push(20, 2);
        q.push(15, 1); // key 1 moved to 15: the entry at 10 is stale
        let current = |t: u32, k: &u32| matches!((*k, t), (1, 15) | (2, 20));
        q.tidy(current);
        assert_eq!(q.next_deadline(), Some(15));
        assert_eq!(q.pop_due(14, current), None);
        assert_eq!(q.pop_due(15, current), Some((15, 1)));
        assert_eq!(q.pop_due(19, current), None);
        assert_eq!(q.pop_due(25, current), Some((20, 2)));
        assert_eq!(q.pop_due(25, current), None);
    }

    #[test]
    fn wall_clock_conversions_round_trip_to_the_millisecond() {
        let now = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
        let w = Wall::new(now, wall);
        assert_eq!(w.unix(now), 1_700_000_000_000);
        let later = now + Duration::from_millis(3_060_123);
        assert_eq!(w.unix(later), 1_700_003_060_123);
        assert_eq!(w.instant(1_700_003_060_123), later);
        if let Some(earlier) = now.checked_sub(Duration::from_secs(5)) {
            assert_eq!(w.unix(earlier), 1_699_999_995_000);
            assert_eq!(w.instant(1_699_999_995_000), earlier);
        }
        assert_eq!(
            w.instant(0).min(now),
            w.instant(0),
            "far past is not in the future"
        );
    }

    #[test]
    fn compaction_keeps_current_entries_only() {
        let mut q = DeadlineQueue::new();
        for i in 0..5000u32 {
            q.push(i % 97, i);
        }
        q.compact(10, |_, k| *k < 10);
        assert_eq!(q.len(), 10);
        q.compact(10, |_, _| false);
        assert_eq!(q.len(), 10, "small queues are left alone");
    }

    proptest! {
        /// Against a model: a map of current deadlines; every pop is the earliest current one.
        #[test]
        fn behaves_like_a_map_of_current_deadlines(ops in prop::collection::vec((0u8..4, 0u32..20, 0u32..200), 1..300)) {
            let mut q = DeadlineQueue::new();
            let mut model: BTreeMap<u32, u32> = BTreeMap::new();
            let mut now = 0u32;
            for (op, key, t) in ops {
                match op {
                    0 | 1 => {
                        let at = now + t;
                        model.insert(key, at);
                        q.push(at, key);
                    }
                    2 => { model.remove(&key); }
                    _ => {
                        now += t / 4;
                        loop {
                            let m = model.clone();
                            let Some((at, k)) = q.pop_due(now, |at, k| m.get(k) == Some(&at)) else { break };
                            let earliest = model.values().min().copied();
                            prop_assert_eq!(Some(at), earliest);
                            prop_assert!(at <= now);
                            model.remove(&k);
                        }
                        prop_assert!(model.values().all(|at| *at > now));
                    }
                }
            }
        }
    }
}
