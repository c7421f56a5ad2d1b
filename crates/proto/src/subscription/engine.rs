//! The engine: public API, registration events, removal, timers and the views for stats.
//!
//! Responses and SUBSCRIBE building live in `dialog.rs`, NOTIFY handling in `notify.rs`.
//!
//! Removal policy (SPEC §4, §5):
//! - error response, transaction timeout, NOTIFY terminated, expiry without refresh → the record
//!   is dropped at once, no unsubscribe, no retry; the registration becomes "blind";
//! - user/network deregistration, registration expiry → unsubscribe (Expires 0, in dialog); the
//!   record leaves the live list but *lingers* for `EngineConfig::linger` so the final NOTIFY is
//!   answered 200 and the response to the unsubscribe is absorbed. If the dialog does not exist
//!   yet (no 2xx and no NOTIFY), the unsubscribe is deferred until the dialog is established
//!   within the linger time (RFC 6665 has no out-of-dialog unsubscribe); otherwise nothing is sent.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use hashbrown::HashMap;

use super::limiter::{Kind, Limiter};
use super::refresh::refresh_delay;
use super::store::{others_of, Life, Request, Store, Sub};
use super::timers::{add_dur, add_secs, Clock, NEVER};
use super::types::*;
use crate::names;
use crate::registrar::{RegEvent, RemovalReason};
use crate::time::DeadlineQueue;

/// The reg-event subscription engine (sans-IO). See the module docs of `subscription`.
#[derive(Debug)]
pub struct Engine {
    pub(super) cfg: EngineConfig,
    rng: fastrand::Rng,
    pub(super) next_id: u64,
    pub(super) clock: Clock,
    pub(super) store: Store,
    /// Each subscription's next deadline (`Sub::deadline` says which entry is current).
    timers: DeadlineQueue<u64, SubId>,
    pub(super) limiter: Limiter,
    pub(super) out: VecDeque<Output>,
    /// Registrations on an enabled trunk group with no live subscription: default PUI → trunk.
    pub(super) blind: HashMap<Arc<str>, Arc<str>>,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        let store = Store::new(uri_host(&cfg.identity));
        Engine {
            rng: fastrand::Rng::with_seed(cfg.seed),
            limiter: Limiter::new(cfg.max_subscribe_rate),
            cfg,
            next_id: 1,
            clock: Clock::default(),
            store,
            timers: DeadlineQueue::new(),
            out: VecDeque::new(),
            blind: HashMap::new(),
        }
    }

    /// Room for `n` subscriptions and their timers without growing a table.
    pub fn reserve(&mut self, n: usize) {
        self.store.reserve(n);
        self.timers.reserve(n);
    }

    /// A registration lifecycle event. `policy` is the trunk group's resolved policy.
    pub fn on_registration(&mut self, now: Instant, ev: &RegEvent, policy: &SubscribePolicy) {
        let t = self.clock.ms(now);
        match ev {
            RegEvent::Registered {
                default_pui,
                trunk_group,
                initial,
                associated,
                granted,
                ..
            } => {
                if !policy.enabled {
                    self.blind.remove(&**default_pui);
                    return;
                }
                if self.store.by_pui(default_pui).is_some() {
                    self.blind.remove(&**default_pui);
                    return;
                }
                if *initial || policy.resubscribe_on_reregistration {
                    let requested = ceil_secs(*granted + self.cfg.expiry_margin);
                    let reg = NewSub {
                        pui: default_pui,
                        trunk_group,
                        associated,
                        requested,
                    };
                    self.create(t, reg, policy);
                } else {
                    self.blind.insert(default_pui.clone(), trunk_group.clone());
                }
            }
            RegEvent::BindingAdded { .. } | RegEvent::BindingRemoved { .. } => {}
            RegEvent::Removed {
                default_pui,
                reason,
                ..
            } => {
                self.blind.remove(&**default_pui);
                if let Some(id) = self.store.by_pui(default_pui) {
                    let why = match reason {
                        RemovalReason::UserDeregistration => SubRemoval::UserDeregistration,
                        RemovalReason::Expired => SubRemoval::RegistrationExpired,
                        RemovalReason::Network => SubRemoval::NetworkDeregistration,
                    };
                    self.unsubscribe(t, id, why);
                }
            }
        }
        self.tidy();
    }

    /// Find our subscription for an incoming NOTIFY: Call-ID and our tag (the NOTIFY's To tag).
    /// Finds live subscriptions and lingering (unsubscribed) ones.
    pub fn find_dialog(&self, call_id: &str, local_tag: &str) -> Option<SubId> {
        self.store.by_dialog(call_id, local_tag)
    }

    /// Network-initiated deregistration of `default_pui` signalled from outside the NOTIFY path.
    pub fn network_deregistration(&mut self, now: Instant, default_pui: &str) {
        let t = self.clock.ms(now);
        if let Some(id) = self.store.by_pui(default_pui) {
            self.unsubscribe(t, id, SubRemoval::NetworkDeregistration);
        }
        self.tidy();
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The earliest instant `handle_timeout` has work: a subscription deadline or, when
    /// refreshes wait for the rate limiter, its next token.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self
            .timers
            .next_deadline()
            .and_then(|at| self.clock.at_ms(at));
        let token = self
            .limiter
            .next_token()
            .and_then(|ns| self.clock.at_ns(ns));
        match (timer, token) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let t = self.clock.ms(now);
        loop {
            let store = &self.store;
            let due = self
                .timers
                .pop_due(t, |at, id| store.get(*id).is_some_and(|s| s.deadline == at));
            let Some((_, id)) = due else { break };
            if let Some(s) = self.store.get_mut(id) {
                s.deadline = NEVER;
            }
            self.fire(t, id);
        }
        self.drain_limiter(now);
        self.tidy();
    }

    /// Number of live subscriptions.
    pub fn len(&self) -> usize {
        self.store.live()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Has `default_pui` a live subscription?
    pub fn has_subscription(&self, default_pui: &str) -> bool {
        self.store.by_pui(default_pui).is_some()
    }
    /// Registrations on a reg-event trunk group that have no live subscription (blind to
    /// network-initiated deregistration).
    pub fn blind_registrations(&self) -> usize {
        self.blind.len()
    }
    /// `blind_registrations` per trunk group.
    pub fn blind_by_trunk_group(&self) -> Vec<(Arc<str>, usize)> {
        let mut v: Vec<(Arc<str>, usize)> = Vec::new();
        for tg in self.blind.values() {
            match v.iter_mut().find(|(k, _)| k == tg) {
                Some((_, n)) => *n += 1,
                None => v.push((tg.clone(), 1)),
            }
        }
        v
    }
    /// Take a token of `subscription.max_subscribe_rate` at `now`: true = one SUBSCRIBE may go
    /// now. Refreshes and full-state requests queued here take theirs in `handle_timeout`,
    /// first; the core paces initial SUBSCRIBEs and unsubscribes with this.
    pub fn take_subscribe_token(&mut self, now: Instant) -> bool {
        let ns = self.clock.ns(now);
        self.limiter.try_take(ns)
    }

    /// When the next SUBSCRIBE token is available (None: no rate limit).
    pub fn next_subscribe_token(&self) -> Option<Instant> {
        self.limiter.token_at().and_then(|ns| self.clock.at_ns(ns))
    }

    /// Whether `subscription.max_subscribe_rate` limits anything.
    pub fn subscribe_rate_limited(&self) -> bool {
        self.limiter.limited()
    }

    /// Whether subscription `sub` is still there and its latest SUBSCRIBE is the one with
    /// `cseq` (one that waited for a token is dropped once the subscription is gone).
    pub fn awaits(&self, sub: SubId, cseq: u32) -> bool {
        self.store.get(sub).is_some_and(|s| s.cseq == cseq)
    }

    /// Refreshes / full-state requests waiting for the rate limiter.
    pub fn waiting_for_rate_limit(&self) -> usize {
        self.limiter.queued()
    }

    /// Interned (initial route sets, dialog remotes) shared by the subscriptions (memory diagnostics).
    pub fn interned_values(&self) -> (usize, usize) {
        self.store.interned()
    }

    /// Rough heap bytes held by the engine (tables at capacity, records, remote tags; shared
    /// strings not counted), for diagnostics and the memory test.
    pub fn memory_estimate(&self) -> usize {
        self.store.memory_estimate() + self.timers.len() * 16 + self.limiter.queued() * 24
    }

    /// Visit live subscriptions (for the admin API / scrape), in id order.
    pub fn for_each_view(&self, f: &mut dyn FnMut(SubscriptionView)) {
        self.page(&mut |_, _, _| true, 0, usize::MAX, f);
    }

    /// Up to `limit` live subscriptions with an id greater than `after`, in id order: a
    /// binary search in the id-ordered list, then the page. The scrape's cursor.
    pub fn page_after(
        &self,
        after: Option<SubId>,
        limit: usize,
        f: &mut dyn FnMut(SubscriptionView),
    ) {
        let order = &self.store.order;
        let start = after.map_or(0, |a| order.partition_point(|id| *id <= a));
        let mut n = 0;
        for id in &order[start..] {
            if n >= limit {
                break;
            }
            if let Some(s) = self.store.get(*id).filter(|s| !s.is_lingering()) {
                f(self.view(*id, s));
                n += 1;
            }
        }
    }

    /// One page of the live subscriptions in id order: those for which `keep(default PUI,
    /// trunk group, state)` holds, skipping the first `offset` of them, at most `limit` views.
    /// Returns how many match in all. Views (which render the Call-ID) are built only for the
    /// page, so a scrape of a large table costs a sort of ids plus the page.
    pub fn page(
        &self,
        keep: &mut dyn FnMut(&str, &str, SubState) -> bool,
        offset: usize,
        limit: usize,
        f: &mut dyn FnMut(SubscriptionView),
    ) -> usize {
        let mut ids: Vec<SubId> = self
            .store
            .subs
            .iter()
            .filter(|(_, s)| !s.is_lingering() && keep(&s.pui, &s.trunk_group, state_of(s)))
            .map(|(id, _)| *id)
            .collect();
        let total = ids.len();
        if offset >= total || limit == 0 {
            return total;
        }
        let end = offset.saturating_add(limit).min(total);
        // Only the first `end` ids in order are needed.
        if end < total {
            ids.select_nth_unstable(end - 1);
            ids.truncate(end);
        }
        ids.sort_unstable();
        for id in &ids[offset..] {
            if let Some(s) = self.store.get(*id) {
                f(self.view(*id, s));
            }
        }
        total
    }

    /// Live subscriptions per (trunk group, state), non-zero counts only. Maintained on every
    /// insert, state change and removal: O(trunk groups), no walk over the subscriptions.
    pub fn counts(&self) -> Vec<(Arc<str>, SubState, usize)> {
        self.store.counts()
    }

    /// `counts` by a full walk over the subscriptions (for the tests that check `counts`).
    #[cfg(test)]
    pub(crate) fn counts_by_walk(&self) -> Vec<(Arc<str>, SubState, usize)> {
        self.store.counts_by_walk()
    }

    fn view(&self, id: SubId, s: &Sub) -> SubscriptionView {
        let granted = s.granted != 0;
        SubscriptionView {
            id,
            default_pui: s.pui.clone(),
            trunk_group: s.trunk_group.clone(),
            state: state_of(s),
            call_id: self.store.call_id(id, s),
            registrar: s
                .route0
                .first()
                .map_or_else(|| s.pui.to_string(), |r| r.to_string()),
            requested_expiry: s.requested,
            granted_expiry: granted.then_some(s.granted),
            expires_at: if granted {
                self.clock.at_ms(s.expires_at)
            } else {
                None
            },
            next_refresh: self.clock.at_ms(s.refresh_at),
            created: self.clock.at_ms(s.created).unwrap_or_else(Instant::now),
            last_notify_version: s.version,
            implicit_puis: s.implicit_puis(),
        }
    }

    /// Create a subscription and queue its initial SUBSCRIBE.
    fn create(&mut self, t: u64, reg: NewSub<'_>, policy: &SubscribePolicy) {
        let id = SubId(self.next_id);
        self.next_id += 1;
        let (call_key, tag_key) = (self.rng.u64(..), self.rng.u64(..));
        let route0 = self.store.intern_route(policy.route.iter().cloned());
        let others = others_of(reg.pui, reg.associated);
        let sub = Sub::new(
            reg.pui.clone(),
            reg.trunk_group.clone(),
            call_key,
            tag_key,
            route0,
            others,
            t,
            reg.requested,
        );
        let (call_id, from_tag) = (self.store.call_id(id, &sub), sub.local_tag());
        self.store.insert(id, sub);
        self.blind.remove(&**reg.pui);
        metrics::counter!(names::SUBSCRIPTIONS_CREATED, "trunk_group" => reg.trunk_group.clone())
            .increment(1);
        self.count_sent(SubscribeKind::Initial, reg.trunk_group);
        self.out.push_back(Output::Send(OutSubscribe {
            sub: id,
            kind: SubscribeKind::Initial,
            trunk_group: reg.trunk_group.clone(),
            request_uri: reg.pui.to_string(),
            route: policy.route.clone(),
            to: reg.pui.to_string(),
            to_tag: None,
            from: self.cfg.identity.clone(),
            from_tag,
            call_id,
            cseq: 1,
            expires: reg.requested,
            contact: self.cfg.contact.clone(),
            p_asserted_identity: self.cfg.p_asserted_identity.clone(),
            max_forwards: self.cfg.max_forwards,
        }));
    }

    pub(super) fn count_sent(&self, kind: SubscribeKind, trunk_group: &Arc<str>) {
        metrics::counter!(names::SUBSCRIBES_SENT, "kind" => kind.as_str(),
            "trunk_group" => trunk_group.clone())
        .increment(1);
    }

    /// Take `id` out of the live list for `reason`. `linger`: keep the record (dialog index)
    /// for `cfg.linger`; otherwise forget it now. Registrations that stay alive become blind.
    pub(super) fn remove(&mut self, t: u64, id: SubId, reason: SubRemoval, linger: bool) {
        let Some(s) = self.store.get(id) else { return };
        if s.is_lingering() {
            return;
        }
        metrics::counter!(names::SUBSCRIPTION_REMOVALS, "reason" => reason.as_str()).increment(1);
        tracing::debug!(sub = id.0, pui = %s.pui, reason = reason.as_str(), "subscription removed");
        let registration_alive = matches!(
            reason,
            SubRemoval::ErrorResponse
                | SubRemoval::Timeout
                | SubRemoval::NotifyTerminated
                | SubRemoval::Expired
        );
        if registration_alive {
            self.blind.insert(s.pui.clone(), s.trunk_group.clone());
        }
        if !linger {
            self.store.remove(id);
            return;
        }
        self.store.unindex_pui(id);
        let until = add_dur(t, self.cfg.linger);
        if let Some(s) = self.store.get_mut(id) {
            s.life = Life::Lingering;
            s.request = Request::Idle;
            s.refresh_at = NEVER;
            s.expires_at = until;
        }
        self.reschedule(id);
    }

    /// Unsubscribe (SPEC §5): leave the live list, send Expires 0 in the dialog (or defer it
    /// until the dialog exists), linger for the final NOTIFY.
    pub(super) fn unsubscribe(&mut self, t: u64, id: SubId, reason: SubRemoval) {
        self.remove(t, id, reason, true);
        let established = self.store.get(id).is_some_and(Sub::is_established);
        if established {
            self.send_in_dialog(id, SubscribeKind::Unsubscribe);
        } else if let Some(s) = self.store.get_mut(id) {
            s.life = Life::LingeringUntilDialog;
        }
    }

    /// Record a grant of `e` seconds at `t` and schedule the refresh.
    pub(super) fn grant(&mut self, t: u64, id: SubId, e: u32) {
        if e == 0 {
            self.remove(t, id, SubRemoval::Expired, true);
            return;
        }
        let Some(s) = self.store.get_mut(id) else {
            return;
        };
        s.granted = e;
        s.expires_at = add_secs(t, e);
        s.refresh_at = add_dur(t, refresh_delay(std::time::Duration::from_secs(e.into())));
        self.reschedule(id);
    }

    /// Put the subscription's next deadline in the timer queue (if it changed).
    pub(super) fn reschedule(&mut self, id: SubId) {
        let Some(s) = self.store.get_mut(id) else {
            return;
        };
        let next = if s.is_lingering() {
            s.expires_at
        } else {
            s.refresh_at.min(expiry_deadline(s, self.cfg.linger))
        };
        if next != s.deadline {
            s.deadline = next;
            self.timers.push(next, id);
        }
    }

    /// A subscription's deadline is due.
    fn fire(&mut self, t: u64, id: SubId) {
        let Some(s) = self.store.get_mut(id) else {
            return;
        };
        if s.is_lingering() {
            if s.expires_at <= t {
                self.store.remove(id);
            } else {
                self.reschedule(id);
            }
            return;
        }
        if expiry_deadline(s, self.cfg.linger) <= t {
            tracing::debug!(
                sub = id.0,
                "subscription expired before a successful refresh"
            );
            self.remove(t, id, SubRemoval::Expired, false);
            return;
        }
        if s.refresh_at <= t {
            s.refresh_at = NEVER;
            if s.request == Request::Idle {
                s.request = Request::Queued(Kind::Refresh);
                let key = s.expires_at;
                self.limiter.enqueue(key, id, Kind::Refresh);
            }
        }
        self.reschedule(id);
    }

    /// Send waiting refreshes while the rate limiter has tokens.
    pub(super) fn drain_limiter(&mut self, now: Instant) {
        let ns = self.clock.ns(now);
        loop {
            let store = &self.store;
            let Some((id, kind)) = self.limiter.peek(|id, kind| is_queued(store, id, kind)) else {
                break;
            };
            if !self.limiter.try_take(ns) {
                break;
            }
            self.limiter.pop();
            if let Some(s) = self.store.get_mut(id) {
                s.request = Request::Idle;
            }
            self.send_in_dialog(id, kind.subscribe_kind());
            self.reschedule(id);
        }
    }

    /// Drop stale fronts so `poll_timeout` is exact; compact queues full of stale entries.
    pub(super) fn tidy(&mut self) {
        let store = &self.store;
        let current = |at: u64, id: &SubId| store.get(*id).is_some_and(|s| s.deadline == at);
        self.timers.tidy(current);
        self.timers.compact(store.subs.len(), current);
        self.limiter.tidy(|id, kind| is_queued(store, id, kind));
        self.store.flush_counts();
    }

    /// Subscriptions changed or removed since the last call (with repeats): what a store must
    /// write.
    pub fn take_changed(&mut self, out: &mut Vec<(SubId, Arc<str>)>) {
        self.store.take_touched(out);
    }
}

/// Whether a limiter entry is still wanted: the subscription is live and waits for that kind.
fn is_queued(store: &Store, id: SubId, kind: Kind) -> bool {
    store
        .get(id)
        .is_some_and(|s| !s.is_lingering() && s.request == Request::Queued(kind))
}

/// When an unrefreshed subscription is dropped: at expiry, or — while a refresh awaits its final
/// response — `linger` (≥ Timer F) later, so the transaction decides (2xx, error or timeout)
/// and a lost timeout report cannot keep a record forever.
fn expiry_deadline(s: &Sub, linger: std::time::Duration) -> u64 {
    if s.in_flight().is_none() {
        s.expires_at
    } else {
        add_dur(s.expires_at, linger)
    }
}

/// What `create` needs from a `Registered` event.
struct NewSub<'a> {
    pui: &'a Arc<str>,
    trunk_group: &'a Arc<str>,
    associated: &'a Arc<[Arc<str>]>,
    requested: u32,
}

pub(super) fn state_of(s: &Sub) -> SubState {
    let refreshing = matches!(
        s.request,
        Request::Queued(_)
            | Request::InFlight {
                kind: SubscribeKind::Refresh | SubscribeKind::FullStateRequest,
                ..
            }
    );
    match s.life {
        Life::Lingering | Life::LingeringUntilDialog => SubState::Unsubscribing,
        Life::Live if refreshing && s.granted != 0 => SubState::Refreshing,
        Life::Live if s.granted == 0 || s.notifier_pending => SubState::Pending,
        Life::Live => SubState::Active,
    }
}

/// Whole seconds, rounded up, saturating at `u32::MAX`.
fn ceil_secs(d: std::time::Duration) -> u32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(s).unwrap_or(u32::MAX)
}

/// Host part of our identity (`sip:user@host:port;params` → `host`; IPv6 keeps its brackets),
/// for our Call-IDs.
fn uri_host(uri: &str) -> &str {
    let text = uri.trim().trim_start_matches('<');
    let text = text.split('>').next().unwrap_or(text);
    match crate::sip::Uri::parse(text) {
        Ok(u) if !u.host.is_empty() => u.host,
        _ => "invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_identity() {
        assert_eq!(uri_host("sip:pcscf.example.net:5060"), "pcscf.example.net");
        assert_eq!(
            uri_host("<sips:gw@[2001:db8::1]:5061;transport=tls>"),
            "[2001:db8::1]"
        );
        assert_eq!(uri_host("sip:10.0.0.1"), "10.0.0.1");
        assert_eq!(uri_host(""), "invalid");
    }

    #[test]
    fn ceil() {
        assert_eq!(ceil_secs(std::time::Duration::from_millis(660_001)), 661);
        assert_eq!(ceil_secs(std::time::Duration::from_secs(660)), 660);
    }
}

/// The incremental per-(trunk group, state) counts always equal a full walk, through a long
/// random sequence of engine operations.
#[cfg(test)]
mod counts_tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::reginfo::{parse, Limits};

    fn sorted(mut v: Vec<(Arc<str>, SubState, usize)>) -> Vec<(String, &'static str, usize)> {
        v.retain(|(_, _, n)| *n > 0);
        let mut v: Vec<_> = v
            .into_iter()
            .map(|(tg, st, n)| (tg.to_string(), st.as_str(), n))
            .collect();
        v.sort();
        v
    }

    fn doc(pui: &str, version: u64, full: bool, others: &[&str], terminated: bool) -> String {
        let state = if full { "full" } else { "partial" };
        let reg_state = if terminated { "terminated" } else { "active" };
        let mut s = format!(
            "<?xml version=\"1.0\"?><reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" \
             version=\"{version}\" state=\"{state}\"><registration aor=\"{pui}\" id=\"a\" \
             state=\"{reg_state}\"><contact id=\"c\" state=\"active\" event=\"registered\">\
             <uri>sip:ue@10.0.0.1</uri></contact></registration>"
        );
        for (i, o) in others.iter().enumerate() {
            s.push_str(&format!(
                "<registration aor=\"{o}\" id=\"o{i}\" state=\"active\"><contact id=\"d{i}\" \
                 state=\"active\" event=\"created\"><uri>sip:ue@10.0.0.1</uri></contact>\
                 </registration>"
            ));
        }
        s.push_str("</reginfo>");
        s
    }

    #[test]
    fn incremental_counts_match_a_full_walk() {
        for seed in 0..4u64 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut e = Engine::new(EngineConfig {
                identity: "sip:gw.example".into(),
                max_subscribe_rate: if seed % 2 == 0 { 0 } else { 3 },
                seed,
                ..EngineConfig::default()
            });
            let t0 = Instant::now();
            let mut now = t0;
            let tgs: [Arc<str>; 3] = ["access".into(), "roaming".into(), "ipx".into()];
            let puis: Vec<Arc<str>> = (0..40)
                .map(|i| Arc::from(format!("sip:u{i}@ims.example")))
                .collect();
            let on = SubscribePolicy {
                enabled: true,
                route: vec!["<sip:scscf.example;lr>".into()],
                resubscribe_on_reregistration: seed % 3 == 0,
            };
            // (subscription, CSeq, default PUI) of every SUBSCRIBE sent.
            let mut sent: Vec<(SubId, u32, Arc<str>)> = Vec::new();
            let mut versions: Vec<u64> = vec![0; 64];
            for step in 0..3000 {
                let pui = puis[rng.usize(..puis.len())].clone();
                let tg = tgs[rng.usize(..tgs.len())].clone();
                match rng.u32(..100) {
                    0..=19 => {
                        let ev = RegEvent::Registered {
                            default_pui: pui.clone(),
                            trunk_group: tg,
                            initial: rng.bool(),
                            associated: Arc::from([pui.clone(), "tel:+1".into()]),
                            service_route: vec![],
                            granted: Duration::from_secs(rng.u64(1..4000)),
                            bindings: 1,
                        };
                        let policy = if rng.u32(..10) == 0 {
                            SubscribePolicy::default()
                        } else {
                            on.clone()
                        };
                        e.on_registration(now, &ev, &policy);
                    }
                    20..=44 if !sent.is_empty() => {
                        let (id, cseq, _) = sent.swap_remove(rng.usize(..sent.len()));
                        let status = [200, 200, 200, 202, 100, 403, 500, 489][rng.usize(..8)];
                        let r = ResponseInput {
                            status,
                            cseq,
                            expires: [None, Some(0), Some(30), Some(600), Some(3660)]
                                [rng.usize(..5)],
                            to_tag: Some(format!("rt{}", id.0)),
                            record_route: vec!["<sip:scscf.example;lr>".into()],
                            contact: Some("sip:scscf.example".into()),
                        };
                        e.on_response(now, id, &r);
                    }
                    45..=64 if !sent.is_empty() => {
                        let (id, _, pui) = sent[rng.usize(..sent.len())].clone();
                        let v = &mut versions[(id.0 % 64) as usize];
                        let body = match rng.u32(..6) {
                            0 => None,
                            1 => Some(doc(&pui, *v + 2, false, &[], false)),
                            2 => Some(doc(&pui, *v + 1, false, &["tel:+2"], false)),
                            3 => Some(doc(&pui, *v, true, &[], rng.u32(..4) == 0)),
                            _ => Some(doc(&pui, *v + 1, true, &["tel:+1"], false)),
                        };
                        *v += 1;
                        let parsed = body.map(|b| parse(b.as_bytes(), &Limits::default()).unwrap());
                        use crate::sip::SubscriptionStatus as S;
                        let states = [S::Active, S::Active, S::Pending, S::Terminated];
                        let n = NotifyInput {
                            cseq: rng.u32(1..1000),
                            remote_tag: "rt",
                            record_route: vec![],
                            contact: Some("sip:scscf.example".into()),
                            sub_state: states[rng.usize(..4)],
                            sub_expires: Some(rng.u32(0..4000)),
                            sub_reason: None,
                            doc: parsed.as_ref(),
                        };
                        e.on_notify(now, id, &n);
                    }
                    65..=69 if !sent.is_empty() => {
                        let (id, cseq, _) = sent.swap_remove(rng.usize(..sent.len()));
                        e.on_transaction_timeout(now, id, cseq);
                    }
                    70..=79 => {
                        let reason = [
                            RemovalReason::UserDeregistration,
                            RemovalReason::Expired,
                            RemovalReason::Network,
                        ][rng.usize(..3)];
                        let ev = RegEvent::Removed {
                            default_pui: pui,
                            trunk_group: tg,
                            reason,
                        };
                        e.on_registration(now, &ev, &on);
                    }
                    80..=82 => e.network_deregistration(now, &pui),
                    _ => {
                        // Time passes: refreshes fall due, the limiter releases them, lingering
                        // records are purged, unrefreshed subscriptions expire.
                        let max = if rng.bool() { 2_000 } else { 900_000 };
                        now += Duration::from_millis(rng.u64(1..max));
                        e.handle_timeout(now);
                    }
                }
                while let Some(o) = e.poll_output() {
                    if let Output::Send(s) = o {
                        sent.push((s.sub, s.cseq, Arc::from(s.to.as_str())));
                    }
                }
                assert_eq!(
                    sorted(e.counts()),
                    sorted(e.counts_by_walk()),
                    "seed {seed} step {step}"
                );
            }
            assert!(!e.is_empty(), "the sequence keeps some subscriptions");
        }
    }
}
