//! The core, sans-IO: every SIP message a transport receives goes through [`Core::handle`] with
//! the current time; what must be sent comes out of [`Core::poll_transmit`], and
//! [`Core::poll_timeout`] says when to call [`Core::handle_timeout`]. With
//! [`Core::track_changes`] on, [`Core::poll_change`] says which durable state changed.
//!
//! ```text
//!  Inbound ─▶ parse ─▶ request ─ REGISTER ─────────────▶ Registering (forward, remember)
//!                    │         ├ NOTIFY of our dialog ─▶ Notifies ─▶ engine
//!                    │         └ anything else ───────▶ Proxy (+ ContactMap for IBCF)
//!                    └ response ─ our SUBSCRIBE ──────▶ Subscriber ─▶ engine
//!                               └ with our Via ───────▶ Registering (2xx ─▶ registrar), Proxy relays
//!  then, always: settle ─ registrar events ─▶ engine ─▶ SUBSCRIBEs (Subscriber) and
//!                         registration actions ─▶ registrar ─▶ events ... until quiet
//! ```
//!
//! Each role keeps its own state in its own struct (`register.rs`, `notify.rs`, `subscribe.rs`,
//! `proxy.rs`, `ibcf.rs`); what they share (settings, identity, outbox, identifiers, counters)
//! is `ctx.rs`. The core owns the registrar and the subscription engine and is the only place
//! where they meet: every entry point ends in `settle`, which runs their round trips to
//! quiescence, so no caller can leave a SUBSCRIBE or a registration action behind.
//!
//! Never: sockets, the wall clock, DNS (host names leave as [`Dest::Name`]).

mod admin;
mod ctx;
mod flow;
mod gauges;
mod ibcf;
mod notify;
mod overload;
mod persist;
mod proxy;
mod register;
pub mod routing;
mod subscribe;
pub mod views;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use hashbrown::HashSet;

use crate::names;
use crate::reginfo;
use crate::registrar::{BindingMatch, RegEvent, Registrar, RemovalReason};
use crate::settings::Settings;
use crate::sip::{self, Message, Method, Transport};
use crate::subscription::{Engine, EngineConfig, Output, RegAction, SubId};
use crate::time::earliest;
use crate::transaction::Timers;

pub use crate::sip::{uri_target, Dest};
pub use admin::pui_domain;
pub use overload::{Class, OverloadSettings, Reason as RefusalReason};
pub use persist::Restored;
pub use routing::{RoutePolicy, StaticRoutePolicy};

/// The earlier of two optional deadlines (for a caller that adds its own to the core's).
pub fn earliest_of(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    earliest([a, b])
}
pub use subscribe::render_subscribe;

use ctx::Ctx;
use gauges::Gauges;
use ibcf::ContactMap;
use notify::Notifies;
use overload::{Intake, Waiting};
use proxy::Proxy;
use register::Registering;
use subscribe::Subscriber;
use views::{SubscriptionFilter, SubscriptionPage};

/// A message received by a transport.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub transport: Transport,
    /// Index into the listeners (`Settings::listeners`).
    pub listener: u16,
    pub peer: SocketAddr,
    pub bytes: Bytes,
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub transport: Transport,
    pub dest: Dest,
    pub bytes: Bytes,
}

/// A piece of durable state that changed (or went away): a store writes its current value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// The registration of this default PUI.
    Registration(Arc<str>),
    /// This subscription (live or lingering), of this default PUI.
    Subscription(SubId, Arc<str>),
    /// The IBCF Contact mappings of this dialog (Call-ID).
    IbcfDialog(Box<str>),
    /// The identifiers handed out (`state::MetaRecord`).
    Meta,
}

/// What changed since the last [`Core::poll_change`]s, in first-change order, each key once.
#[derive(Debug, Default)]
struct Changes {
    tracking: bool,
    order: VecDeque<Change>,
    seen: HashSet<Change>,
    registrations: Vec<Arc<str>>,
    subscriptions: Vec<(SubId, Arc<str>)>,
    dialogs: Vec<Box<str>>,
}

impl Changes {
    fn clear(&mut self) {
        self.order.clear();
        self.seen.clear();
    }
    fn push(&mut self, c: Change) {
        if self.seen.insert(c.clone()) {
            self.order.push_back(c);
        }
    }
}

/// The gateway's protocol core. One owner (a task); no locks inside.
#[derive(Debug)]
pub struct Core {
    ctx: Ctx,
    registrar: Registrar,
    engine: Engine,
    register: Registering,
    subscriber: Subscriber,
    notifies: Notifies,
    proxy: Proxy,
    ibcf: ContactMap,
    gauges: Gauges,
    /// Overload control: the queues of [`Core::offer`] and [`Core::serve`].
    intake: Intake,
    /// Registrar events the engine has not seen yet (empty outside `settle`).
    events: Vec<RegEvent>,
    changes: Changes,
    /// The identifiers as last reported (a change in them is a `Change::Meta`).
    last_meta: crate::state::MetaRecord,
}

impl Core {
    /// Build the core from validated settings. `seed` feeds tags, Call-IDs, branches.
    pub fn new(cfg: Settings, seed: u64) -> Result<Self, String> {
        let timers = Timers {
            t1: cfg.t1,
            t2: cfg.t2,
            ..Timers::default()
        };
        let expected = cfg.expected_registrations;
        let mut engine = Engine::new(EngineConfig {
            identity: cfg.identity.clone(),
            contact: cfg.identity.clone(),
            p_asserted_identity: cfg.p_asserted_identity.clone(),
            max_forwards: cfg.max_forwards,
            expiry_margin: cfg.expiry_margin,
            max_subscribe_rate: cfg.max_subscribe_rate,
            seed,
            linger: cfg.t1 * 64,
        });
        engine.reserve(expected);
        let mut registrar = Registrar::new();
        registrar.reserve(expected);
        let reginfo_limits = reginfo::Limits {
            max_bytes: cfg.reginfo_max_bytes,
            max_depth: cfg.reginfo_max_depth,
        };
        let intake = Intake::new(cfg.overload.clone(), seed);
        let ctx = Ctx::new(cfg, seed)?;
        Ok(Core {
            intake,
            register: Registering::new(ctx.cfg.t1 * 64),
            subscriber: Subscriber::new(timers, expected, ctx.cfg.max_subscribe_rate),
            notifies: Notifies::new(timers, reginfo_limits, expected),
            proxy: Proxy::new(ctx.cfg.t1),
            ibcf: ContactMap::new(ctx::mix(ctx.secret ^ 0x1bcf)),
            gauges: Gauges::default(),
            events: Vec::new(),
            changes: Changes::default(),
            last_meta: crate::state::MetaRecord::default(),
            registrar,
            engine,
            ctx,
        })
    }

    /// Replace the routing policy for visited-network SUBSCRIBEs.
    pub fn set_route_policy(&mut self, p: Arc<dyn RoutePolicy>) {
        self.ctx.route_policy = p;
    }

    /// Take new profiles (SIGHUP): new registrations follow them; live ones are untouched.
    pub fn reload_profiles(&mut self, cfg: Arc<Settings>) {
        // `[overload]` is restart-only: the intake keeps the settings it started with.
        self.ctx.reload(cfg);
    }

    pub fn settings(&self) -> &Settings {
        &self.ctx.cfg
    }
    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Registrations on reg-event trunks that have no live subscription (blind to network
    /// deregistration).
    pub fn blind_registrations(&self) -> usize {
        self.engine.blind_registrations()
    }

    /// A page of the live subscription list (SPEC §8). `wall` is the wall-clock time at `now`.
    pub fn subscription_page(
        &self,
        filter: &SubscriptionFilter,
        offset: usize,
        after: Option<u64>,
        limit: usize,
        now: Instant,
        wall: SystemTime,
    ) -> SubscriptionPage {
        admin::subscription_page(&self.engine, filter, offset, after, limit, now, wall)
    }

    /// The registration of a default PUI, as operators see it. `wall` is the wall-clock time
    /// at `now`.
    pub fn registration_view(
        &self,
        default_pui: &str,
        now: Instant,
        wall: SystemTime,
    ) -> Option<views::RegistrationView> {
        admin::registration_view(&self.registrar, default_pui, now, wall)
    }

    /// Process one received message at once (no overload control: see [`Core::offer`]).
    pub fn handle(&mut self, now: Instant, inb: Inbound) {
        if let Some(msg) = self.parse(&inb) {
            self.dispatch(now, &inb, &msg);
        }
    }

    /// Take one received message under overload control (SPEC §11): parsed and classed now,
    /// then either queued for [`Core::serve`] or, when it cannot be served in time, answered
    /// `503` with `Retry-After` (a response or ACK: dropped and counted) before any other work.
    /// With `overload.enabled = false` this is [`Core::handle`].
    pub fn offer(&mut self, now: Instant, inb: Inbound) {
        if !self.intake.enabled() && !self.intake.draining() {
            return self.handle(now, inb);
        }
        let Some(msg) = self.parse(&inb) else {
            return;
        };
        let class = self.class_of(&msg);
        let w = Waiting {
            at: now,
            class,
            inb,
            msg,
        };
        if self.intake.draining() && class >= Class::Reregister {
            return self.refuse(now, overload::Reason::Shutdown, w);
        }
        if !self.intake.enabled() {
            return self.dispatch(now, &w.inb, &w.msg);
        }
        let in_flight = self.in_flight();
        if let Some((reason, w)) = self.intake.offer(now, w, in_flight) {
            self.refuse(now, reason, w);
        }
    }

    /// The gateway is stopping: from now on [`Core::offer`] answers new requests (REGISTERs and
    /// requests outside dialogs) `503` with `Retry-After`; responses, NOTIFYs and requests in
    /// dialogs are still served, so what is in flight can finish.
    pub fn drain(&mut self) {
        self.intake.drain();
    }

    /// Nothing waits and no forwarded REGISTER or INVITE is unanswered.
    pub fn quiescent(&self) -> bool {
        self.intake.len() == 0 && self.in_flight() == 0
    }

    /// Serve up to `max` of the messages [`Core::offer`] queued, highest class first; one that
    /// waited longer than `overload.max_delay` is refused instead (cheaply: refusals do not
    /// count against `max`). Returns how many were taken, served or refused.
    pub fn serve(&mut self, now: Instant, max: usize) -> usize {
        let (mut served, mut taken) = (0, 0);
        while served < max {
            match self.intake.next(now) {
                None => break,
                Some(Ok(w)) => {
                    self.dispatch(now, &w.inb, &w.msg);
                    served += 1;
                }
                Some(Err((reason, w))) => self.refuse(now, reason, w),
            }
            taken += 1;
        }
        taken
    }

    /// Messages waiting for [`Core::serve`].
    pub fn waiting(&self) -> usize {
        self.intake.len()
    }

    /// Whether an overload episode runs (something was refused in the last second).
    pub fn overloaded(&self) -> bool {
        self.intake.overloaded()
    }

    fn parse(&mut self, inb: &Inbound) -> Option<Message> {
        let limits = match inb.transport {
            Transport::Udp => &self.ctx.limits,
            Transport::Tcp => &self.ctx.limits_tcp,
        };
        match Message::parse(inb.bytes.clone(), limits) {
            Ok(msg) => {
                self.ctx.counters.count_in(&msg);
                tracing::trace!(peer = %inb.peer, transport = inb.transport.name(), method = msg.method_str(), status = msg.status(), "received");
                Some(msg)
            }
            Err(e) => {
                self.reject_unparseable(inb, &e);
                None
            }
        }
    }

    fn dispatch(&mut self, now: Instant, inb: &Inbound, msg: &Message) {
        if msg.is_request() {
            self.on_request(now, inb, msg);
        } else {
            self.on_response(now, msg);
        }
        self.settle(now);
    }

    /// The overload class of a parsed message.
    fn class_of(&self, msg: &Message) -> Class {
        if !msg.is_request() {
            return Class::Response;
        }
        let tag = msg.to().tag();
        match msg.method() {
            Some(Method::Notify)
                if tag.is_some_and(|t| self.engine.find_dialog(msg.call_id(), t).is_some()) =>
            {
                Class::Notify
            }
            Some(Method::Ack | Method::Cancel) => Class::InDialog,
            _ if tag.is_some() => Class::InDialog,
            Some(Method::Register) if self.known_registration(msg) => Class::Reregister,
            Some(Method::Register) => Class::Register,
            _ => Class::Other,
        }
    }

    /// A REGISTER of a registration we hold: its To URI is a registration's default PUI (the
    /// usual re-REGISTER: no Contact parsed), or its first Contact is bound (or is `*`).
    fn known_registration(&self, msg: &Message) -> bool {
        if self.registrar.get(msg.to().uri).is_some() {
            return true;
        }
        match msg.value_spans(sip::HeaderName::Contact).next() {
            Some((_, s)) => match msg.span_str(s) {
                "*" => true,
                c => self.registrar.by_contact(register::addr_uri(c)).is_some(),
            },
            None => false,
        }
    }

    /// Transactions in flight that new requests add to: REGISTERs forwarded and INVITEs
    /// proxied, not answered yet. (Our SUBSCRIBEs are paced by the engine.)
    fn in_flight(&self) -> usize {
        self.register.in_flight() + self.proxy.in_flight()
    }

    /// Refuse a message for overload: a request gets `503` with a random `Retry-After`; a
    /// response or an ACK cannot be answered and is dropped.
    fn refuse(&mut self, now: Instant, reason: overload::Reason, w: Waiting) {
        let answerable = w.msg.is_request() && w.msg.method() != Some(Method::Ack);
        if answerable {
            let mut secs = [0u8; 20];
            let secs = sip::writer::decimal(self.intake.retry_after(), &mut secs);
            let secs = std::str::from_utf8(secs).unwrap_or("10");
            self.ctx.answer(
                &w.inb,
                &w.msg,
                503,
                "Service Unavailable",
                &[("Retry-After", secs)],
            );
        } else {
            metrics::counter!(names::SIP_DROPS, "reason" => "overload").increment(1);
        }
        self.intake.refused(now, w.class, reason);
    }

    /// A message over the size limit of its transport whose header section (`inb.bytes`) could
    /// be read: answered `513 Message Too Large` (RFC 3261 §21.5.14), counted, never processed.
    pub fn reject_oversize(&mut self, inb: Inbound) {
        metrics::counter!(names::SIP_DROPS, "reason" => "oversize").increment(1);
        let answered = self.answer_raw(&inb, 513, "Message Too Large");
        tracing::debug!(peer = %inb.peer, transport = inb.transport.name(), answered, "oversize message");
    }

    fn reject_unparseable(&mut self, inb: &Inbound, e: &sip::ParseError) {
        let proto = inb.transport.name();
        let (code, reason) = match e {
            sip::ParseError::Version => (505, "Version Not Supported".to_string()),
            sip::ParseError::TooLarge => (513, "Message Too Large".to_string()),
            other => (400, format!("Bad Request ({other})")),
        };
        if self.answer_raw(inb, code, &reason) {
            metrics::counter!(names::SIP_PARSE_ERRORS, "transport" => proto, "answered" => "true")
                .increment(1);
            tracing::debug!(peer = %inb.peer, error = %e, "malformed request answered");
        } else {
            metrics::counter!(names::SIP_PARSE_ERRORS, "transport" => proto, "answered" => "false")
                .increment(1);
            metrics::counter!(names::SIP_DROPS, "reason" => "unparseable").increment(1);
            tracing::debug!(peer = %inb.peer, error = %e, "malformed message dropped");
        }
    }

    /// Answer a message that was not parsed (only its raw header section is read) with
    /// `code reason`, back where it came from. False when no response can be built from it
    /// (not a request, or no usable Via).
    fn answer_raw(&mut self, inb: &Inbound, code: u16, reason: &str) -> bool {
        match sip::writer::error_response_from_raw(&inb.bytes, code, reason) {
            Some(resp) => {
                self.ctx.send(inb.transport, Dest::Addr(inb.peer), resp);
                true
            }
            None => false,
        }
    }

    fn on_request(&mut self, now: Instant, inb: &Inbound, msg: &Message) {
        let method = msg.method();
        // Only NOTIFYs of our own dialogs are ours; every other one (a UE's, IBCF) is proxied.
        let ours = match method {
            Some(Method::Notify) => msg
                .to()
                .tag()
                .and_then(|tag| self.engine.find_dialog(msg.call_id(), tag)),
            _ => None,
        };
        match (method, ours) {
            (Some(Method::Register), _) => self.register.forward(now, &mut self.ctx, inb, msg),
            (_, Some(sub)) => {
                let (ctx, engine) = (&mut self.ctx, &mut self.engine);
                self.notifies.handle(now, ctx, engine, sub, inb, msg);
            }
            _ => self.proxy.request(
                now,
                &mut self.ctx,
                &self.registrar,
                &mut self.ibcf,
                inb,
                msg,
            ),
        }
    }

    fn on_response(&mut self, now: Instant, msg: &Message) {
        let via = msg.top_via();
        let Some(branch) = via.branch() else {
            metrics::counter!(names::SIP_DROPS, "reason" => "response_without_branch").increment(1);
            return;
        };
        if !self.ctx.is_ours(via.host, via.port) {
            metrics::counter!(names::SIP_DROPS, "reason" => "response_not_ours").increment(1);
            return;
        }
        let status = msg.status().unwrap_or(0);
        if let Some(user) = self.subscriber.on_response(now, branch, status) {
            // `regevent_subscribe_responses_total` is counted by the engine (it knows stale ones).
            let resp = subscribe::response_input(user, msg);
            self.engine.on_response(now, user.sub, &resp);
            return;
        }
        if let Some(p) = self.register.on_response(branch, msg) {
            let outcome = register::outcome(&p, msg);
            self.registrar
                .on_register_ok(now, &outcome, &mut self.events);
        }
        self.proxy
            .relay_response(now, &mut self.ctx, &mut self.ibcf, branch, msg);
    }

    /// Next thing to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ctx.poll_transmit()
    }

    /// When `handle_timeout` must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest([
            self.engine.poll_timeout(),
            self.subscriber.poll_timeout(),
            self.notifies.poll_timeout(),
            self.registrar.poll_timeout(),
            self.register.poll_timeout(),
            self.gauges.poll_timeout(),
            self.intake.poll_timeout(),
            (self.subscriber.paced() > 0)
                .then(|| self.engine.next_subscribe_token())
                .flatten(),
            self.proxy.poll_timeout(),
            self.ibcf.poll_timeout(),
        ])
    }

    /// Run every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut timeouts = Vec::new();
        self.subscriber
            .handle_timeout(now, &mut self.ctx, &mut timeouts);
        for user in timeouts {
            // Counted (regevent_subscribe_timeouts_total) by the engine.
            self.engine.on_transaction_timeout(now, user.sub, user.cseq);
        }
        self.notifies.handle_timeout(now);
        self.proxy.handle_timeout(now, &mut self.ctx);
        self.ibcf.handle_timeout(now);
        self.register.handle_timeout(now);
        // Registrations that expire now go to the engine before its own deadlines run: a
        // registration and its subscription both due (after a restart, say) end with the
        // unsubscribe in the dialog, not with a silent subscription expiry.
        self.registrar.handle_timeout(now, &mut self.events);
        self.settle(now);
        self.engine.handle_timeout(now);
        self.drain_paced(now);
        self.settle(now);
        let tick = self.gauges.poll_timeout().is_some_and(|t| t <= now);
        self.gauges
            .handle_timeout(now, &self.ctx.trunks, &self.engine);
        self.intake.handle_timeout(now);
        if tick {
            self.intake.report(now);
        }
    }

    /// Send one of the engine's SUBSCRIBEs. Initial SUBSCRIBEs and unsubscribes take a token of
    /// `subscription.max_subscribe_rate` (refreshes took theirs in the engine) or wait for one,
    /// in order, in a bounded queue; when that is full the SUBSCRIBE fails as an unanswered one
    /// would (SPEC §4.2: no retry; an unsubscribe's subscription then expires at the notifier).
    fn subscribe(&mut self, now: Instant, s: crate::subscription::OutSubscribe) {
        use crate::subscription::SubscribeKind as K;
        let paced =
            matches!(s.kind, K::Initial | K::Unsubscribe) && self.engine.subscribe_rate_limited();
        if paced && (self.subscriber.paced() > 0 || !self.engine.take_subscribe_token(now)) {
            if self.subscriber.pace_full() {
                metrics::counter!(names::SIP_DROPS, "reason" => "subscribe_queue_full")
                    .increment(1);
                tracing::debug!(
                    sub = s.sub.0,
                    kind = s.kind.as_str(),
                    "SUBSCRIBE queue full"
                );
                self.engine.on_transaction_timeout(now, s.sub, s.cseq);
            } else {
                self.subscriber.pace(s);
            }
            return;
        }
        if self.subscriber.send(now, &mut self.ctx, &s).is_err() {
            // Unroutable: as a transaction that failed at once (SPEC §4.2).
            self.engine.on_transaction_timeout(now, s.sub, s.cseq);
        }
    }

    /// Send the paced SUBSCRIBEs that have a token now (those the engine no longer waits for
    /// are dropped without one).
    fn drain_paced(&mut self, now: Instant) {
        while let Some(s) = self.subscriber.next_paced() {
            if !self.engine.awaits(s.sub, s.cseq) {
                continue;
            }
            if !self.engine.take_subscribe_token(now) {
                // Not yet: back to the front.
                self.subscriber.unpop(s);
                break;
            }
            if self.subscriber.send(now, &mut self.ctx, &s).is_err() {
                self.engine.on_transaction_timeout(now, s.sub, s.cseq);
            }
        }
    }

    /// Run the registrar ⇄ engine round trips until nothing is left: registration events to
    /// the engine, the engine's SUBSCRIBEs out, its registration actions to the registrar (whose
    /// events go back to the engine). Then note what changed.
    fn settle(&mut self, now: Instant) {
        loop {
            let mut events = std::mem::take(&mut self.events);
            for ev in events.drain(..) {
                self.registration_event(now, &ev);
            }
            self.events = events;
            let mut quiet = true;
            while let Some(out) = self.engine.poll_output() {
                quiet = false;
                match out {
                    Output::Send(s) => self.subscribe(now, s),
                    Output::Reg(a) => apply_action(&mut self.registrar, now, &a, &mut self.events),
                }
            }
            if quiet && self.events.is_empty() {
                break;
            }
        }
        self.collect_changes();
    }

    /// One registration event: gauges, counters, logs, and the engine.
    fn registration_event(&mut self, now: Instant, ev: &RegEvent) {
        self.gauges.on_event(ev);
        let policy = match ev {
            RegEvent::Registered {
                default_pui,
                trunk_group,
                initial,
                associated,
                service_route,
                granted,
                bindings,
            } => {
                let label = if *initial {
                    "initial"
                } else {
                    "reregistration"
                };
                metrics::counter!(names::REGISTRATION_EVENTS, "event" => label, "trunk_group" => trunk_group.clone()).increment(1);
                tracing::debug!(%default_pui, %trunk_group, initial, implicit = associated.len(), bindings, granted_s = granted.as_secs(), "registered");
                self.ctx.policy_for(trunk_group, default_pui, service_route)
            }
            RegEvent::Removed {
                default_pui,
                trunk_group,
                reason,
            } => {
                metrics::counter!(names::REGISTRATION_EVENTS, "event" => reason.as_str(), "trunk_group" => trunk_group.clone()).increment(1);
                tracing::debug!(%default_pui, %trunk_group, reason = reason.as_str(), "registration removed");
                self.ctx.policy_for(trunk_group, default_pui, &[])
            }
            RegEvent::BindingAdded {
                default_pui,
                contact,
            } => {
                tracing::debug!(%default_pui, %contact, "binding added");
                return;
            }
            RegEvent::BindingRemoved {
                default_pui,
                contact,
            } => {
                tracing::debug!(%default_pui, %contact, "binding removed");
                return;
            }
        };
        self.engine.on_registration(now, ev, &policy);
    }

    /// Start reporting what durable state changes ([`Core::poll_change`]). Off by default: a
    /// core without a store keeps no list.
    pub fn track_changes(&mut self) {
        self.changes.tracking = true;
        self.last_meta = self.meta();
        self.changes.push(Change::Meta);
    }

    /// How many changed keys wait for `poll_change`.
    pub fn pending_changes(&self) -> usize {
        self.changes.order.len()
    }

    /// The next piece of durable state that changed since it was last returned.
    pub fn poll_change(&mut self) -> Option<Change> {
        let next = self.changes.order.pop_front()?;
        self.changes.seen.remove(&next);
        Some(next)
    }

    /// Gather the components' change lists (emptied in any case, so that they never grow).
    fn collect_changes(&mut self) {
        let c = &mut self.changes;
        self.registrar.take_changed(&mut c.registrations);
        self.engine.take_changed(&mut c.subscriptions);
        self.ibcf.take_changed(&mut c.dialogs);
        let (mut regs, mut subs, mut dialogs) = (
            std::mem::take(&mut c.registrations),
            std::mem::take(&mut c.subscriptions),
            std::mem::take(&mut c.dialogs),
        );
        if c.tracking {
            regs.drain(..).for_each(|k| c.push(Change::Registration(k)));
            subs.drain(..)
                .for_each(|(id, pui)| c.push(Change::Subscription(id, pui)));
            dialogs
                .drain(..)
                .for_each(|k| c.push(Change::IbcfDialog(k)));
            let meta = crate::state::MetaRecord {
                next_subscription: self.engine.next_id(),
                ibcf_secret: self.ibcf.secret(),
            };
            if meta != self.last_meta {
                self.last_meta = meta;
                c.push(Change::Meta);
            }
        }
        regs.clear();
        subs.clear();
        dialogs.clear();
        (c.registrations, c.subscriptions, c.dialogs) = (regs, subs, dialogs);
    }
}

/// Apply a registration action (from a NOTIFY) to the registrar.
fn apply_action(
    registrar: &mut Registrar,
    now: Instant,
    a: &RegAction,
    events: &mut Vec<RegEvent>,
) {
    let label = match a {
        RegAction::NetworkDeregistration { default_pui } => {
            registrar.remove(default_pui, RemovalReason::Network, events);
            "network_deregistration"
        }
        RegAction::AddPui { default_pui, pui } => {
            registrar.add_pui(default_pui, pui);
            "add_pui"
        }
        RegAction::RemovePui { default_pui, pui } => {
            registrar.remove_pui(default_pui, pui);
            "remove_pui"
        }
        RegAction::RemoveBinding {
            default_pui,
            contact,
        } => {
            let m = BindingMatch {
                uri: &contact.uri,
                instance: contact.instance.as_deref(),
                reg_id: contact.reg_id,
            };
            registrar.remove_binding(default_pui, m, events);
            "remove_binding"
        }
        RegAction::UpdateBindingExpiry {
            default_pui,
            contact,
            expires,
        } => {
            let m = BindingMatch {
                uri: &contact.uri,
                instance: contact.instance.as_deref(),
                reg_id: contact.reg_id,
            };
            registrar.update_binding_expiry(now, default_pui, m, *expires);
            "update_binding_expiry"
        }
    };
    // `regevent_registration_actions_total` is counted by the engine when it emits the action.
    tracing::debug!(action = label, "registration action from NOTIFY");
}
