//! Refresh storm guard: a rate limiter over our SUBSCRIBEs, with an earliest-deadline-first wait
//! queue for refresh-type ones (Refresh, FullStateRequest). Initial SUBSCRIBEs and unsubscribes
//! take their tokens from the same limiter but wait in the core's FIFO
//! ([`super::Engine::take_subscribe_token`]), behind the refreshes.
//!
//! The limiter is a GCRA (virtual scheduling): one SUBSCRIBE per `1 s / rate`, no burst credit
//! after an idle period, so no virtual second ever holds more than `rate` of them when the caller
//! wakes up on time. A caller that wakes up late (timer granularity) may catch up on at most
//! `CATCH_UP` worth of missed slots.
//!
//! Waiting refreshes are ordered by their subscription's expiry (earliest first); full-state
//! requests by the time they were asked for, which is earlier than any expiry, so they go first.

use super::types::{SubId, SubscribeKind};
use crate::time::DeadlineQueue;

/// Slots missed by a late wake-up that may still be used (nanoseconds).
const CATCH_UP: u64 = 10_000_000;

#[derive(Debug)]
pub(super) struct Limiter {
    /// Nanoseconds between two SUBSCRIBEs; 0 = unlimited.
    interval: u64,
    /// Theoretical arrival time of the next SUBSCRIBE (ns since the engine epoch).
    tat: u64,
    /// Waiting SUBSCRIBEs by priority key (earliest first); entries the engine no longer
    /// wants are dropped when they reach the front.
    queue: DeadlineQueue<u64, (SubId, Kind)>,
}

/// Queue entry kind (ordered so the tuple is `Ord`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    FullState,
    Refresh,
}

impl Kind {
    pub fn subscribe_kind(self) -> SubscribeKind {
        match self {
            Kind::FullState => SubscribeKind::FullStateRequest,
            Kind::Refresh => SubscribeKind::Refresh,
        }
    }
}

impl Limiter {
    pub fn new(rate: u32) -> Self {
        let interval = if rate == 0 {
            0
        } else {
            1_000_000_000 / u64::from(rate)
        };
        Limiter {
            interval,
            tat: 0,
            queue: DeadlineQueue::new(),
        }
    }
    pub fn enqueue(&mut self, key: u64, id: SubId, kind: Kind) {
        self.queue.push(key, (id, kind));
    }
    /// The first waiting entry that is still `wanted` (unwanted ones in front are dropped).
    pub fn peek(&mut self, mut wanted: impl FnMut(SubId, Kind) -> bool) -> Option<(SubId, Kind)> {
        self.queue.tidy(|_, &(id, kind)| wanted(id, kind));
        self.queue.peek().map(|(_, &e)| e)
    }
    pub fn pop(&mut self) {
        self.queue.pop_due(u64::MAX, |_, _| true);
    }
    /// Drop unwanted entries from the front (so `next_token` is only asked for a real wait).
    pub fn tidy(&mut self, mut wanted: impl FnMut(SubId, Kind) -> bool) {
        self.queue.tidy(|_, &(id, kind)| wanted(id, kind));
    }
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
    /// Take a token at `now` (ns) if one is available.
    pub fn try_take(&mut self, now: u64) -> bool {
        if self.interval == 0 {
            return true;
        }
        if self.tat.saturating_add(CATCH_UP) < now {
            // Idle (or very late): no accumulated credit.
            self.tat = now;
        }
        if self.tat <= now {
            self.tat = self.tat.max(now.saturating_sub(CATCH_UP)) + self.interval;
            true
        } else {
            false
        }
    }
    /// Whether there is a rate at all.
    pub fn limited(&self) -> bool {
        self.interval != 0
    }
    /// When the next token is available (ns), whether or not anything waits (None: unlimited).
    pub fn token_at(&self) -> Option<u64> {
        (self.interval != 0).then_some(self.tat)
    }
    /// When the next token is available (ns), if anything waits for one.
    pub fn next_token(&self) -> Option<u64> {
        (!self.queue.is_empty() && self.interval != 0).then_some(self.tat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_always_gives() {
        let mut l = Limiter::new(0);
        assert!((0..10_000).all(|_| l.try_take(0)));
    }

    #[test]
    fn spacing_and_no_idle_credit() {
        let mut l = Limiter::new(1000);
        let t = 5_000_000_000;
        assert!(l.try_take(t));
        assert!(!l.try_take(t));
        assert!(l.try_take(t + 1_000_000));
        // Late by 3 ms: catches up the missed slots only.
        let late = t + 4_000_000;
        let n = (0..10).filter(|_| l.try_take(late)).count();
        assert_eq!(n, 3);
        // After a long idle time: one, not a burst.
        let n = (0..10).filter(|_| l.try_take(t + 60_000_000_000)).count();
        assert_eq!(n, 1);
    }
}
