//! The core's durable state (SPEC §10): the record of a [`Change`], and putting everything back
//! from records at start-up.
//!
//! Restore order: the identifiers, then registrations, then subscriptions (in id order), then
//! IBCF dialogs; registrations on reg-event trunk groups without a live subscription are blind,
//! as they were. Nothing is sent by restoring: deadlines that passed while the process was down
//! are due at the first `handle_timeout`, which then does what would have been done — an expired
//! registration is removed and its subscription unsubscribed in its dialog; overdue refreshes
//! wait for the rate limiter.

use std::time::{Instant, SystemTime};

use super::{Change, Core};
use crate::state::{Key, MetaRecord, Record};
use crate::subscription::SubId;
use crate::time::Wall;

/// What a restore put back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    pub registrations: usize,
    pub subscriptions: usize,
    pub ibcf_dialogs: usize,
    /// Records skipped: duplicates, or a registration without bindings.
    pub skipped: usize,
}

impl Core {
    /// The store key of a change, and its current record (`None`: the key is gone). `wall` is
    /// the wall-clock time at `now`.
    pub fn record(
        &self,
        change: &Change,
        now: Instant,
        wall: SystemTime,
    ) -> (Key, Option<Record<'_>>) {
        let w = Wall::new(now, wall);
        let unix = |t: Instant| w.unix(t);
        match change {
            Change::Registration(pui) => (
                Key::Registration(pui.to_string()),
                self.registrar.export(pui, &unix).map(Record::Registration),
            ),
            Change::Subscription(id, pui) => (
                Key::Subscription {
                    id: id.0,
                    default_pui: pui.to_string(),
                },
                self.engine.export(*id, &w).map(Record::Subscription),
            ),
            Change::IbcfDialog(call_id) => (
                Key::IbcfDialog(call_id.to_string()),
                self.ibcf.export(call_id, &unix).map(Record::IbcfDialog),
            ),
            Change::Meta => (Key::Meta, Some(Record::Meta(self.meta()))),
        }
    }

    /// The identifiers handed out.
    pub fn meta(&self) -> MetaRecord {
        MetaRecord {
            next_subscription: self.engine.next_id(),
            ibcf_secret: self.ibcf.secret(),
        }
    }

    /// Every durable record, for a full copy of the state (a snapshot, or a store that came
    /// back empty).
    pub fn changes_of_everything(&self) -> Vec<Change> {
        let mut v: Vec<Change> = self
            .registrar
            .iter()
            .map(|r| Change::Registration(r.default_pui.clone()))
            .collect();
        self.engine
            .for_each_sub(&mut |id, pui| v.push(Change::Subscription(id, pui.clone())));
        v.extend(self.ibcf.call_ids().map(|c| Change::IbcfDialog(c.into())));
        v.push(Change::Meta);
        v
    }

    /// Put the state back from the store's encoded records (at start-up, before any message;
    /// `wall` is the wall-clock time at `now`): registrations first, then subscriptions in id
    /// order, then IBCF dialogs. Each record is decoded as it is put back (subscriptions and
    /// dialogs once more when their turn comes), not all of them first: at 1M registrations
    /// the decoded records would take about as much memory again as the live state. The first
    /// value that does not decode stops it, with its index (the state is then partly
    /// restored: start-up fails).
    pub fn restore_encoded(
        &mut self,
        now: Instant,
        wall: SystemTime,
        values: &[&[u8]],
    ) -> Result<Restored, (usize, crate::state::DecodeError)> {
        let get = |i: usize| crate::state::decode(values[i]).map_err(|e| (i, e));
        let n = values.len();
        let w = Wall::new(now, wall);
        let instant = |ms: u64| w.instant(ms);
        let mut out = Restored::default();
        // (id, index) of the subscriptions, index of the dialogs: put back after every
        // registration, the subscriptions in id order.
        let mut subs: Vec<(u64, usize)> = Vec::new();
        let mut dialogs: Vec<usize> = Vec::new();
        for i in 0..n {
            match get(i)? {
                Record::Meta(m) => {
                    self.engine.reserve_ids(m.next_subscription);
                    self.ibcf.set_secret(m.ibcf_secret);
                }
                Record::Registration(r) => {
                    if self.registrar.restore(now, &r, &instant) {
                        out.registrations += 1;
                    } else {
                        out.skipped += 1;
                    }
                }
                Record::Subscription(s) => subs.push((s.id, i)),
                Record::IbcfDialog(_) => dialogs.push(i),
            }
        }
        subs.sort_by_key(|(id, _)| *id);
        for (_, i) in subs {
            if let Record::Subscription(s) = get(i)? {
                if self.engine.restore_one(now, &s, &w) {
                    out.subscriptions += 1;
                } else {
                    out.skipped += 1;
                }
            }
        }
        self.engine.finish_restore();
        for r in self.registrar.iter() {
            let policy = self.ctx.policy_for(&r.trunk_group, &r.default_pui, &[]);
            if policy.enabled {
                self.engine
                    .restore_registration(&r.default_pui, &r.trunk_group);
            }
        }
        self.gauges.restore(self.registrar.iter());
        for i in dialogs {
            if let Record::IbcfDialog(d) = get(i)? {
                self.ibcf.restore(&d, w.instant(d.expires_at));
                out.ibcf_dialogs += 1;
            }
        }
        // What restoring touched is already stored; start the change list afresh.
        self.collect_changes();
        self.changes.clear();
        self.last_meta = self.meta();
        Ok(out)
    }

    /// The subscription ids of the live list and the lingering ones (for tests and exports).
    pub fn subscription_ids(&self) -> Vec<SubId> {
        let mut v = Vec::new();
        self.engine.for_each_sub(&mut |id, _| v.push(id));
        v
    }
}
