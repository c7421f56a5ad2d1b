//! Engine time: one clock (`Instant` ↔ integer ticks since the first input).
//!
//! Each subscription has at most one *current* deadline (`Sub::deadline`), in the engine's one
//! `time::DeadlineQueue`; entries whose deadline no longer matches the subscription's are stale
//! and dropped lazily. Never: a task or a sleep per subscription.

use std::time::{Duration, Instant};

use crate::time::Wall;

/// "No deadline".
pub(super) const NEVER: u64 = u64::MAX;

/// Where the epoch is on the millisecond scale: times up to ~35 years before the first instant
/// the engine saw are representable (restored subscriptions were created, and their deadlines
/// fell, before this process started).
pub(super) const BASE: u64 = 1 << 40;

/// Maps `Instant`s to milliseconds (`BASE` at the first instant the engine saw) and to
/// nanoseconds since it.
#[derive(Debug, Default)]
pub(super) struct Clock {
    epoch: Option<Instant>,
}

impl Clock {
    fn epoch(&mut self, now: Instant) -> Instant {
        *self.epoch.get_or_insert(now)
    }
    /// Milliseconds of `now` (an instant before the epoch counts as the epoch).
    pub fn ms(&mut self, now: Instant) -> u64 {
        let e = self.epoch(now);
        BASE.saturating_add(
            u64::try_from(now.saturating_duration_since(e).as_millis()).unwrap_or(NEVER - 1),
        )
        .min(NEVER - 1)
    }
    /// Nanoseconds since the epoch.
    pub fn ns(&mut self, now: Instant) -> u64 {
        let e = self.epoch(now);
        u64::try_from(now.saturating_duration_since(e).as_nanos()).unwrap_or(NEVER - 1)
    }
    /// The instant of a millisecond tick (None for `NEVER`, before any input, or before what
    /// the platform's monotonic clock can express).
    pub fn at_ms(&self, ms: u64) -> Option<Instant> {
        if ms == NEVER {
            return None;
        }
        let e = self.epoch?;
        if ms >= BASE {
            e.checked_add(Duration::from_millis(ms - BASE))
        } else {
            e.checked_sub(Duration::from_millis(BASE - ms))
        }
    }
    pub fn at_ns(&self, ns: u64) -> Option<Instant> {
        self.epoch
            .and_then(|e| e.checked_add(Duration::from_nanos(ns)))
    }
    /// Unix milliseconds of a tick (`wall` converts the epoch); `None` for `NEVER`.
    pub fn unix(&self, ms: u64, wall: &Wall) -> Option<u64> {
        if ms == NEVER {
            return None;
        }
        let e = wall.unix(self.epoch?);
        Some(if ms >= BASE {
            e.saturating_add(ms - BASE)
        } else {
            e.saturating_sub(BASE - ms)
        })
    }
    /// The tick of Unix milliseconds `unix` (the epoch must be set).
    pub fn of_unix(&self, unix: u64, wall: &Wall) -> u64 {
        let Some(e) = self.epoch.map(|e| wall.unix(e)) else {
            return BASE;
        };
        if unix >= e {
            BASE.saturating_add(unix - e).min(NEVER - 1)
        } else {
            BASE.saturating_sub(e - unix)
        }
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
