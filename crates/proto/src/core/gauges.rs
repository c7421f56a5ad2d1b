//! Gauges published once a second from the core's own state: live registrations and
//! subscriptions per trunk group (and state), and registrations without a subscription.
//!
//! Owns: the live registration count per trunk group (kept from registration events). Never:
//! per-message work.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashMap;

use super::ctx::Trunk;
use crate::names;
use crate::registrar::RegEvent;
use crate::subscription::Engine;

#[derive(Debug, Default)]
pub(super) struct Gauges {
    registrations_by_trunk: HashMap<Arc<str>, i64>,
    next: Option<Instant>,
}

impl Gauges {
    /// Count registrations created and removed.
    pub fn on_event(&mut self, ev: &RegEvent) {
        match ev {
            RegEvent::Registered {
                trunk_group,
                initial: true,
                ..
            } => {
                *self
                    .registrations_by_trunk
                    .entry(trunk_group.clone())
                    .or_default() += 1
            }
            RegEvent::Removed { trunk_group, .. } => {
                *self
                    .registrations_by_trunk
                    .entry(trunk_group.clone())
                    .or_default() -= 1
            }
            _ => {}
        }
    }

    /// Count restored registrations.
    pub fn restore<'a>(&mut self, regs: impl Iterator<Item = &'a crate::registrar::Registration>) {
        self.registrations_by_trunk.clear();
        for r in regs {
            *self
                .registrations_by_trunk
                .entry(r.trunk_group.clone())
                .or_default() += 1;
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// Publish when due (the first call publishes at once).
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        trunks: &HashMap<Arc<str>, Trunk>,
        engine: &Engine,
    ) {
        if self.next.is_some_and(|t| t > now) {
            return;
        }
        self.next = Some(now + Duration::from_secs(1));
        for (tg, n) in &self.registrations_by_trunk {
            metrics::gauge!(names::REGISTRATIONS_LIVE, "trunk_group" => tg.to_string())
                .set(*n as f64);
        }
        let mut seen: HashMap<(Arc<str>, &'static str), usize> = HashMap::new();
        for tg in trunks.keys() {
            for st in ["pending", "active", "refreshing", "unsubscribing"] {
                seen.insert((tg.clone(), st), 0);
            }
        }
        for (tg, st, n) in engine.counts() {
            *seen.entry((tg, st.as_str())).or_default() += n;
        }
        for ((tg, st), n) in seen {
            metrics::gauge!(names::SUBSCRIPTIONS_LIVE, "trunk_group" => tg.to_string(), "state" => st).set(n as f64);
        }
        let blind = engine.blind_by_trunk_group();
        for tg in trunks.keys() {
            let n = blind.iter().find(|(t, _)| t == tg).map_or(0, |(_, n)| *n);
            metrics::gauge!(names::REGISTRATIONS_UNSUBSCRIBED, "trunk_group" => tg.to_string())
                .set(n as f64);
        }
    }
}
