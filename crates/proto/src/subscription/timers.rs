//! Engine time: one clock (`Instant` ↔ integer ticks since the first input).
//!
//! Each subscription has at most one *current* deadline (`Sub::deadline`), in the engine's one
//! `time::DeadlineQueue`; entries whose deadline no longer matches the subscription's are stale
//! and dropped lazily. Never: a task or a sleep per subscription.

use std::time::{Duration, Instant};

/// "No deadline".
pub(super) const NEVER: u64 = u64::MAX;

/// Maps `Instant`s to milliseconds / nanoseconds since the first instant the engine saw.
#[derive(Debug, Default)]
pub(super) struct Clock {
    epoch: Option<Instant>,
}

impl Clock {
    fn epoch(&mut self, now: Instant) -> Instant {
        *self.epoch.get_or_insert(now)
    }
    /// Milliseconds since the epoch (an instant before the epoch counts as the epoch).
    pub fn ms(&mut self, now: Instant) -> u64 {
        let e = self.epoch(now);
        u64::try_from(now.saturating_duration_since(e).as_millis()).unwrap_or(NEVER - 1)
    }
    /// Nanoseconds since the epoch.
    pub fn ns(&mut self, now: Instant) -> u64 {
        let e = self.epoch(now);
        u64::try_from(now.saturating_duration_since(e).as_nanos()).unwrap_or(NEVER - 1)
    }
    /// The instant of a millisecond tick (None for `NEVER` or before any input).
    pub fn at_ms(&self, ms: u64) -> Option<Instant> {
        if ms == NEVER {
            return None;
        }
        self.epoch
            .and_then(|e| e.checked_add(Duration::from_millis(ms)))
    }
    pub fn at_ns(&self, ns: u64) -> Option<Instant> {
        self.epoch
            .and_then(|e| e.checked_add(Duration::from_nanos(ns)))
    }
}

/// Saturating `t + secs` in milliseconds.
pub(super) fn add_secs(t: u64, secs: u32) -> u64 {
    t.saturating_add(u64::from(secs) * 1000)
}

/// Saturating `t + d` in milliseconds.
pub(super) fn add_dur(t: u64, d: Duration) -> u64 {
    t.saturating_add(u64::try_from(d.as_millis()).unwrap_or(NEVER))
}
