//! Gauges published once a second from the core's own state: live registrations and
//! subscriptions per trunk group (and state), and registrations without a subscription.
//!
//! A trunk group's gauges are published while it is configured or still has live registrations
//! or subscriptions (a reload that removes a trunk group does not drop what lives on it). When
//! neither holds any more, its gauges are retired: set once to [`RETIRED`] (NaN) and never
//! again. The exporter cannot forget a series, so the server leaves NaN gauges out of
//! `/metrics`, and the series disappears from Prometheus instead of staying at its last value.
//!
//! Owns: the live registration count per trunk group (kept from registration events), and the
//! trunk groups whose gauges are published. Never: per-message work.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::{HashMap, HashSet};

use super::ctx::Trunk;
use crate::names;
use crate::registrar::RegEvent;
use crate::subscription::Engine;

/// The value of a gauge that no longer describes anything (its trunk group is gone).
pub const RETIRED: f64 = f64::NAN;

/// Subscription states, as the `state` label of `regevent_subscriptions`.
const STATES: [&str; 4] = ["pending", "active", "refreshing", "unsubscribing"];

#[derive(Debug, Default)]
pub(super) struct Gauges {
    registrations_by_trunk: HashMap<Arc<str>, i64>,
    /// Trunk groups whose gauges the last publication set.
    published: HashSet<Arc<str>>,
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
        let subscriptions = engine.counts();
        let blind = engine.blind_by_trunk_group();
        // Configured, or something still lives on it.
        let mut current: HashSet<Arc<str>> = trunks.keys().cloned().collect();
        current.extend(
            self.registrations_by_trunk
                .iter()
                .filter(|(_, n)| **n != 0)
                .map(|(tg, _)| tg.clone()),
        );
        current.extend(subscriptions.iter().map(|(tg, _, _)| tg.clone()));
        current.extend(blind.iter().map(|(tg, _)| tg.clone()));

        for tg in &current {
            let registrations = self.registrations_by_trunk.get(tg).copied().unwrap_or(0);
            metrics::gauge!(names::REGISTRATIONS_LIVE, "trunk_group" => tg.to_string())
                .set(registrations as f64);
            for st in STATES {
                let n: usize = subscriptions
                    .iter()
                    .filter(|(t, s, _)| t == tg && s.as_str() == st)
                    .map(|(_, _, n)| *n)
                    .sum();
                metrics::gauge!(names::SUBSCRIPTIONS_LIVE, "trunk_group" => tg.to_string(), "state" => st).set(n as f64);
            }
            let n = blind.iter().find(|(t, _)| t == tg).map_or(0, |(_, n)| *n);
            metrics::gauge!(names::REGISTRATIONS_UNSUBSCRIBED, "trunk_group" => tg.to_string())
                .set(n as f64);
        }
        for tg in self.published.difference(&current) {
            metrics::gauge!(names::REGISTRATIONS_LIVE, "trunk_group" => tg.to_string())
                .set(RETIRED);
            for st in STATES {
                metrics::gauge!(names::SUBSCRIPTIONS_LIVE, "trunk_group" => tg.to_string(), "state" => st).set(RETIRED);
            }
            metrics::gauge!(names::REGISTRATIONS_UNSUBSCRIBED, "trunk_group" => tg.to_string())
                .set(RETIRED);
            tracing::debug!(trunk_group = %tg, "trunk group gone: its gauges are retired");
        }
        self.registrations_by_trunk
            .retain(|tg, n| *n != 0 || current.contains(tg));
        self.published = current;
    }
}
