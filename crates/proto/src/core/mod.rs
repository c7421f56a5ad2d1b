//! The gateway core, sans-IO: every SIP message the transports receive goes through
//! [`Gateway::handle`], with the current time; what must be sent comes out of
//! [`Gateway::poll_transmit`], and [`Gateway::poll_timeout`] says when to call
//! [`Gateway::handle_timeout`]. It owns the registrar, the subscription engine and the SIP
//! transactions, and is the only place where they meet.
//!
//! ```text
//!  Inbound ─▶ parse ─▶ request? ─ REGISTER ─▶ register.rs (forward to core, remember pending)
//!                     │         └ NOTIFY for our dialog ─▶ notify.rs ─▶ engine + registrar
//!                     └ response ─▶ ours (SUBSCRIBE tx) ─▶ engine
//!                                 └ REGISTER's ─▶ registrar learns ─▶ engine ─▶ SUBSCRIBE out
//! ```
//! Never: sockets, the wall clock, DNS (host names leave as [`Dest::Name`]).

mod flow;
mod ibcf;
mod notify;
mod proxy;
mod register;
pub mod routing;
mod subscribe;
pub mod views;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hashbrown::HashMap;

use crate::names;
use crate::registrar::{Flow, RegEvent, Registrar};
use crate::settings::{Network, Profile, Role, Settings, TrunkGroup};
use crate::sip::writer::push_hex;
use crate::sip::Transport;
use crate::sip::{self, Message, Method};
pub use crate::sip::{uri_target, Dest};
use crate::subscription::{Engine, EngineConfig, SubId, SubscribeKind, SubscribePolicy};
use crate::transaction::{ClientTransactions, ServerTransactions, Timers};
pub use routing::{RoutePolicy, StaticRoutePolicy};
use views::{SubscriptionFilter, SubscriptionPage, SubscriptionRow};

/// A message received by a transport.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub transport: Transport,
    /// Index into `config.sip.listen`.
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

/// What a SUBSCRIBE client transaction belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TxUser {
    sub: SubId,
    cseq: u32,
    kind: SubscribeKind,
}

/// A REGISTER we forwarded and whose final response we have not seen yet.
#[derive(Debug, Clone)]
struct PendingRegister {
    trunk_group: Arc<str>,
    flow: Flow,
    aor: Box<str>,
    contacts: Vec<Box<str>>,
}

/// Per trunk group: its name and profile (replaced on reload).
#[derive(Debug, Clone)]
struct Trunk {
    name: Arc<str>,
    profile: Profile,
}

/// Our own address as written in Via / Path / Record-Route.
#[derive(Debug, Clone)]
struct Identity {
    /// `host:port` for Via sent-by and our URIs.
    hostport: String,
}

/// The gateway. One owner (a task); no locks inside.
#[derive(Debug)]
pub struct Gateway {
    cfg: Arc<Settings>,
    counters: MessageCounters,
    limits: sip::Limits,
    reginfo_limits: crate::reginfo::Limits,
    me: Identity,
    core: (Transport, Dest),
    trunks: HashMap<Arc<str>, Trunk>,
    route_policy: Arc<dyn RoutePolicy>,
    registrar: Registrar,
    engine: Engine,
    client_tx: ClientTransactions<(Transport, Dest), TxUser>,
    server_tx: ServerTransactions,
    pending: HashMap<Box<str>, PendingRegister>,
    pending_order: VecDeque<(Instant, Box<str>)>,
    pending_ttl: Duration,
    registrations_by_trunk: HashMap<Arc<str>, i64>,
    out: VecDeque<Transmit>,
    events: Vec<RegEvent>,
    next_gauges: Option<Instant>,
    branch_secret: u64,
    branch_seq: u64,
    proxy: proxy::ProxyState,
}

impl Gateway {
    /// Build the gateway from a validated configuration. `seed` feeds tags, Call-IDs, branches.
    pub fn new(cfg: Settings, seed: u64) -> Result<Self, String> {
        let cfg = Arc::new(cfg);
        let me = identity(&cfg.identity)?;
        let core = uri_target(&cfg.core)
            .ok_or_else(|| format!("sip.core: cannot route to {}", cfg.core))?;
        let timers = Timers {
            t1: cfg.t1,
            t2: cfg.t2,
            ..Timers::default()
        };
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
        let mut registrar = Registrar::new();
        let expected = cfg.expected_registrations;
        registrar.reserve(expected);
        engine.reserve(expected);
        // A registration burst at R per second keeps ≈ 64·R server transactions (the UE's
        // REGISTER and the NOTIFY, each until Timer J = 64×T1) and ≈ 10·R client ones (the
        // REGISTER to the core and the SUBSCRIBE, until Timer K = T4 after the answer). Sized
        // for a burst of N/128 per second (7,800/s at 1M); beyond it the tables grow.
        let mut client_tx = ClientTransactions::new(timers);
        client_tx.reserve(expected / 12);
        let mut server_tx = ServerTransactions::new(timers);
        server_tx.reserve(expected / 2);
        let mut gw = Gateway {
            counters: MessageCounters::default(),
            limits: sip::Limits {
                max_message: cfg.max_message,
                ..sip::Limits::default()
            },
            reginfo_limits: crate::reginfo::Limits {
                max_bytes: cfg.reginfo_max_bytes,
                max_depth: cfg.reginfo_max_depth,
            },
            me,
            core,
            trunks: HashMap::new(),
            route_policy: Arc::new(StaticRoutePolicy),
            registrar,
            engine,
            client_tx,
            server_tx,
            pending: HashMap::new(),
            pending_order: VecDeque::new(),
            pending_ttl: cfg.t1 * 64,
            registrations_by_trunk: HashMap::new(),
            out: VecDeque::new(),
            events: Vec::new(),
            next_gauges: None,
            branch_secret: seed ^ 0x9e37_79b9_7f4a_7c15,
            branch_seq: 0,
            proxy: proxy::ProxyState::new(seed),
            cfg,
        };
        gw.reload_profiles(gw.cfg.clone());
        Ok(gw)
    }

    /// Replace the routing policy for visited-network SUBSCRIBEs.
    pub fn set_route_policy(&mut self, p: Arc<dyn RoutePolicy>) {
        self.route_policy = p;
    }

    /// Take new profiles (SIGHUP): new registrations follow them; live ones are untouched.
    pub fn reload_profiles(&mut self, cfg: Arc<Settings>) {
        self.trunks = cfg
            .trunk_groups
            .iter()
            .map(|tg| {
                let name: Arc<str> = Arc::from(tg.name.as_str());
                let profile = cfg.profiles.get(&tg.profile).cloned().unwrap_or_default();
                (name.clone(), Trunk { name, profile })
            })
            .collect();
        self.cfg = cfg;
    }

    pub fn settings(&self) -> &Settings {
        &self.cfg
    }
    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Process one received message.
    pub fn handle(&mut self, now: Instant, inb: Inbound) {
        let transport = inb.transport;
        let msg = match Message::parse(inb.bytes.clone(), &self.limits) {
            Ok(m) => m,
            Err(e) => return self.reject_unparseable(&inb, &e),
        };
        self.counters.count_in(&msg);
        tracing::debug!(peer = %inb.peer, ?transport, method = msg.method_str(), status = msg.status(), "received");
        if msg.is_request() {
            self.handle_request(now, &inb, msg);
        } else {
            self.handle_response(now, msg);
        }
    }

    fn reject_unparseable(&mut self, inb: &Inbound, e: &sip::ParseError) {
        let proto = inb.transport.name();
        let (code, reason) = match e {
            sip::ParseError::Version => (505, "Version Not Supported".to_string()),
            sip::ParseError::TooLarge => (513, "Message Too Large".to_string()),
            other => (400, format!("Bad Request ({other})")),
        };
        match sip::writer::error_response_from_raw(&inb.bytes, code, &reason) {
            Some(resp) => {
                metrics::counter!(names::SIP_PARSE_ERRORS, "transport" => proto, "answered" => "true").increment(1);
                tracing::debug!(peer = %inb.peer, error = %e, "malformed request answered");
                self.send(inb.transport, Dest::Addr(inb.peer), resp);
            }
            None => {
                metrics::counter!(names::SIP_PARSE_ERRORS, "transport" => proto, "answered" => "false").increment(1);
                metrics::counter!(names::SIP_DROPS, "reason" => "unparseable").increment(1);
                tracing::debug!(peer = %inb.peer, error = %e, "malformed message dropped");
            }
        }
    }

    fn handle_request(&mut self, now: Instant, inb: &Inbound, msg: Message) {
        match msg.method() {
            Some(Method::Register) => self.handle_register(now, inb, &msg),
            // Only NOTIFYs of our own dialogs are ours; every other one (a UE's, IBCF) is proxied.
            Some(Method::Notify)
                if msg
                    .to()
                    .tag()
                    .is_some_and(|t| self.engine.find_dialog(msg.call_id(), t).is_some()) =>
            {
                self.handle_notify(now, inb, &msg)
            }
            _ => self.proxy_request(now, inb, &msg),
        }
    }

    fn handle_response(&mut self, now: Instant, msg: Message) {
        let via = msg.top_via();
        let Some(branch) = via.branch() else {
            metrics::counter!(names::SIP_DROPS, "reason" => "response_without_branch").increment(1);
            return;
        };
        if !self.is_our_via_host(via.host, via.port) {
            metrics::counter!(names::SIP_DROPS, "reason" => "response_not_ours").increment(1);
            return;
        }
        let status = msg.status().unwrap_or(0);
        if let Some(user) = self.client_tx.on_response(now, branch, status) {
            self.on_subscribe_response(now, user, &msg);
            return;
        }
        self.on_register_response(now, branch, &msg);
        self.relay_response(now, branch, &msg);
    }

    /// Answer a request ourselves (to its source).
    fn answer(
        &mut self,
        inb: &Inbound,
        req: &Message,
        code: u16,
        reason: &str,
        extra: &[(&str, &str)],
    ) {
        let tag = if code > 100 {
            Some(self.make_tag(req))
        } else {
            None
        };
        let resp = sip::writer::response(req, code, reason, tag.as_deref(), extra);
        self.counters.out_response(req.method_str());
        self.send(inb.transport, Dest::Addr(inb.peer), resp);
    }

    fn send(&mut self, transport: Transport, dest: Dest, bytes: Bytes) {
        self.out.push_back(Transmit {
            transport,
            dest,
            bytes,
        });
    }

    /// Next thing to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// When `handle_timeout` must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.engine.poll_timeout(),
            self.client_tx.poll_timeout(),
            self.server_tx.poll_timeout(),
            self.registrar.poll_timeout(),
            self.pending_order
                .front()
                .map(|(t, _)| *t + self.pending_ttl),
            self.next_gauges,
            self.proxy.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Run every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut tx_events = Vec::new();
        self.client_tx.handle_timeout(now, &mut tx_events);
        for ev in tx_events {
            match ev {
                crate::transaction::ClientEvent::Retransmit {
                    dest: (t, d),
                    bytes,
                } => self.send(t, d, bytes),
                crate::transaction::ClientEvent::Timeout { user } => {
                    // Counted (regevent_subscribe_timeouts_total) by the engine.
                    self.engine.on_transaction_timeout(now, user.sub, user.cseq);
                }
            }
        }
        self.server_tx.handle_timeout(now);
        self.proxy_timeout(now);
        let mut events = std::mem::take(&mut self.events);
        self.registrar.handle_timeout(now, &mut events);
        self.apply_reg_events(now, &mut events);
        self.events = events;
        self.engine.handle_timeout(now);
        self.drain_engine(now);
        while let Some((t, _)) = self.pending_order.front() {
            if *t + self.pending_ttl > now {
                break;
            }
            if let Some((_, b)) = self.pending_order.pop_front() {
                self.pending.remove(&b);
            }
        }
        if self.next_gauges.is_none_or(|t| t <= now) {
            self.update_gauges();
            self.next_gauges = Some(now + Duration::from_secs(1));
        }
    }

    fn update_gauges(&self) {
        for (tg, n) in &self.registrations_by_trunk {
            metrics::gauge!(names::REGISTRATIONS_LIVE, "trunk_group" => tg.to_string())
                .set(*n as f64);
        }
        let mut seen: HashMap<(Arc<str>, &'static str), usize> = HashMap::new();
        for tg in self.trunks.keys() {
            for st in ["pending", "active", "refreshing", "unsubscribing"] {
                seen.insert((tg.clone(), st), 0);
            }
        }
        for (tg, st, n) in self.engine.counts() {
            *seen.entry((tg, st.as_str())).or_default() += n;
        }
        for ((tg, st), n) in seen {
            metrics::gauge!(names::SUBSCRIPTIONS_LIVE, "trunk_group" => tg.to_string(), "state" => st).set(n as f64);
        }
        let blind = self.engine.blind_by_trunk_group();
        for tg in self.trunks.keys() {
            let n = blind.iter().find(|(t, _)| t == tg).map_or(0, |(_, n)| *n);
            metrics::gauge!(names::REGISTRATIONS_UNSUBSCRIBED, "trunk_group" => tg.to_string())
                .set(n as f64);
        }
    }

    /// Registrations on reg-event trunks that have no live subscription (blind to network
    /// deregistration).
    pub fn blind_registrations(&self) -> usize {
        self.engine.blind_registrations()
    }

    /// Feed registration events to the engine (and the logs/gauges).
    fn apply_reg_events(&mut self, now: Instant, events: &mut Vec<RegEvent>) {
        for ev in events.drain(..) {
            let policy = match &ev {
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
                    if *initial {
                        *self
                            .registrations_by_trunk
                            .entry(trunk_group.clone())
                            .or_default() += 1;
                        tracing::info!(%default_pui, %trunk_group, implicit = associated.len(), bindings, granted_s = granted.as_secs(), "registration created");
                    } else {
                        tracing::info!(%default_pui, %trunk_group, bindings, granted_s = granted.as_secs(), "re-registration");
                    }
                    self.policy_for(trunk_group, default_pui, service_route)
                }
                RegEvent::Removed {
                    default_pui,
                    trunk_group,
                    reason,
                } => {
                    metrics::counter!(names::REGISTRATION_EVENTS, "event" => reason.as_str(), "trunk_group" => trunk_group.clone()).increment(1);
                    *self
                        .registrations_by_trunk
                        .entry(trunk_group.clone())
                        .or_default() -= 1;
                    tracing::info!(%default_pui, %trunk_group, reason = reason.as_str(), "registration removed");
                    self.policy_for(trunk_group, default_pui, &[])
                }
                RegEvent::BindingAdded {
                    default_pui,
                    contact,
                } => {
                    tracing::info!(%default_pui, %contact, "binding added");
                    continue;
                }
                RegEvent::BindingRemoved {
                    default_pui,
                    contact,
                } => {
                    tracing::info!(%default_pui, %contact, "binding removed");
                    continue;
                }
            };
            self.engine.on_registration(now, &ev, &policy);
        }
    }

    fn policy_for(
        &self,
        trunk_group: &str,
        default_pui: &str,
        service_route: &[String],
    ) -> SubscribePolicy {
        let Some(t) = self.trunks.get(trunk_group) else {
            return SubscribePolicy::default();
        };
        let p = &t.profile;
        let route = match p.network {
            Network::Home => service_route.to_vec(),
            Network::Visited => self.route_policy.subscribe_route(&t.name, p, default_pui),
        };
        SubscribePolicy {
            enabled: p.support_reg_event && p.role == Role::Pcscf,
            route,
            resubscribe_on_reregistration: p.resubscribe_on_reregistration,
        }
    }

    /// The trunk group a message belongs to: by its listener and source address.
    fn trunk_group_of(&self, inb: &Inbound) -> Option<&TrunkGroup> {
        self.cfg.trunk_group_for(inb.listener, inb.peer.ip())
    }

    /// A page of the live subscription list (SPEC §8).
    pub fn subscription_page(
        &self,
        filter: &SubscriptionFilter,
        offset: usize,
        after: Option<u64>,
        limit: usize,
        now: Instant,
        wall: SystemTime,
    ) -> SubscriptionPage {
        let unix_now = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let unix = |t: Instant| -> f64 {
            if t >= now {
                unix_now + (t - now).as_secs_f64()
            } else {
                unix_now - (now - t).as_secs_f64()
            }
        };
        let mut keep = |pui: &str, tg: &str, st: crate::subscription::SubState| {
            filter.matches_fields(pui, tg, st.as_str())
        };
        let mut rows = Vec::with_capacity(limit.min(10_000));
        let mut push = |v: crate::subscription::SubscriptionView| {
            rows.push(SubscriptionRow {
                id: v.id.0,
                package: "reg".into(),
                domain: pui_domain(&v.default_pui).to_string(),
                default_pui: v.default_pui.to_string(),
                trunk_group: v.trunk_group.to_string(),
                state: v.state.as_str().into(),
                call_id: v.call_id,
                registrar: v.registrar,
                requested_expiry_s: v.requested_expiry,
                granted_expiry_s: v.granted_expiry,
                expires_at_unix: v.expires_at.map(unix),
                next_refresh_unix: v.next_refresh.map(unix),
                created_unix: unix(v.created),
                last_notify_version: v.last_notify_version,
                implicit_puis: v.implicit_puis as u32,
            });
        };
        let total = match after {
            // The scrape's cursor over the whole table: O(page).
            Some(after) if filter.is_empty() => {
                self.engine.page_after(Some(SubId(after)), limit, &mut push);
                self.engine.len()
            }
            Some(after) => {
                let mut seen = 0;
                self.engine.page(&mut keep, 0, usize::MAX, &mut |v| {
                    if v.id.0 > after && seen < limit {
                        seen += 1;
                        push(v);
                    }
                })
            }
            None if filter.is_empty() && offset == 0 => {
                self.engine.page_after(None, limit, &mut push);
                self.engine.len()
            }
            None => self.engine.page(&mut keep, offset, limit, &mut push),
        };
        SubscriptionPage {
            total,
            offset,
            rows,
        }
    }

    /// Is `host[:port]` (from a Via or URI) our own address?
    fn is_our_via_host(&self, host: &str, port: Option<u16>) -> bool {
        let ours = &self.me.hostport;
        let (h, p) = split_hostport(ours);
        host.eq_ignore_ascii_case(h) && port.unwrap_or(5060) == p
    }

    /// A fresh branch for a request we originate.
    fn new_branch(&mut self) -> String {
        self.branch_seq += 1;
        let mut b = String::with_capacity(41);
        b.push_str("z9hG4bKrg");
        push_hex(&mut b, mix(self.branch_secret ^ self.branch_seq), 0);
        push_hex(&mut b, self.branch_seq, 0);
        b
    }

    /// Our Via for a request we send or forward over `t`.
    fn our_via(&self, t: Transport, branch: &str) -> String {
        let mut v = String::with_capacity(24 + self.me.hostport.len() + branch.len());
        for part in [
            "SIP/2.0/",
            t.via_name(),
            " ",
            &self.me.hostport,
            ";branch=",
            branch,
            ";rport",
        ] {
            v.push_str(part);
        }
        v
    }

    /// Stateless-proxy branch (RFC 3261 §16.11): a function of the incoming request's top Via,
    /// so a retransmission is forwarded with the same branch.
    fn derived_branch(&self, msg: &Message) -> String {
        let via = msg.top_via();
        let port = via.port.unwrap_or(0).to_be_bytes();
        let parts: [&[u8]; 4] = [
            via.branch().unwrap_or("").as_bytes(),
            via.host.as_bytes(),
            &port,
            msg.call_id().as_bytes(),
        ];
        // Each part is followed by a separator byte no SIP token contains.
        let h = parts
            .iter()
            .fold(FNV_OFFSET, |h, p| fnv_from(fnv_from(h, p), b"\0"));
        let mut b = String::with_capacity(25);
        b.push_str("z9hG4bKrp");
        push_hex(&mut b, mix(self.branch_secret ^ h), 16);
        b
    }

    fn make_tag(&self, req: &Message) -> String {
        let mut t = String::with_capacity(16);
        push_hex(
            &mut t,
            mix(self.branch_secret ^ fnv(req.call_id().as_bytes())),
            0,
        );
        t
    }
}

fn identity(uri: &str) -> Result<Identity, String> {
    let u = sip::Uri::parse(uri).map_err(|e| format!("sip.identity: {e}"))?;
    let port = u.port.unwrap_or(5060);
    Ok(Identity {
        hostport: format!("{}:{}", u.host, port),
    })
}

fn split_hostport(hp: &str) -> (&str, u16) {
    match hp.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => (h, p.parse().unwrap_or(5060)),
        _ => (hp, 5060),
    }
}

/// The domain part of a PUI (`sip:alice@ims.example.net` → `ims.example.net`; tel → "").
pub fn pui_domain(pui: &str) -> &str {
    let rest = pui.split_once('@').map(|(_, d)| d).unwrap_or("");
    rest.split([';', '>', ':', '?']).next().unwrap_or("")
}

const METHOD_LABELS: [&str; 10] = [
    "REGISTER",
    "SUBSCRIBE",
    "NOTIFY",
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "MESSAGE",
    "other",
];

/// `regevent_sip_messages_total` handles by (direction, method label, kind), looked up in the
/// recorder once per gateway instead of once per message (a lookup builds and hashes the labels).
#[derive(Debug, Default)]
struct MessageCounters {
    cells: [[[std::sync::OnceLock<metrics::Counter>; 2]; METHOD_LABELS.len()]; 2],
}

impl MessageCounters {
    fn count(&self, out: bool, method: &str, request: bool) {
        let d = usize::from(out);
        let m = METHOD_LABELS[..METHOD_LABELS.len() - 1]
            .iter()
            .position(|l| *l == method)
            .unwrap_or(METHOD_LABELS.len() - 1);
        let k = usize::from(!request);
        self.cells[d][m][k]
            .get_or_init(|| {
                let direction = if out { "out" } else { "in" };
                let kind = if request { "request" } else { "response" };
                metrics::counter!(names::SIP_MESSAGES, "direction" => direction, "method" => METHOD_LABELS[m], "kind" => kind)
            })
            .increment(1);
    }
    fn count_in(&self, msg: &Message) {
        self.count(false, msg.method_str(), msg.is_request());
    }
    fn out_request(&self, method: &str) {
        self.count(true, method, true);
    }
    fn out_response(&self, method: &str) {
        self.count(true, method, false);
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(b: &[u8]) -> u64 {
    fnv_from(FNV_OFFSET, b)
}

/// FNV-1a, continued from `h`.
fn fnv_from(h: u64, b: &[u8]) -> u64 {
    b.iter()
        .fold(h, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3))
}

/// splitmix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod counter_tests {
    use super::*;
    use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder};
    use metrics::{SharedString, Unit};
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::Mutex;

    /// Counts per key, and how many times a handle was asked for.
    #[derive(Default)]
    struct Tally {
        counts: Mutex<Vec<(String, Arc<AtomicU64>)>>,
        lookups: AtomicU64,
    }
    struct Add(Arc<AtomicU64>);
    impl CounterFn for Add {
        fn increment(&self, n: u64) {
            self.0.fetch_add(n, Relaxed);
        }
        fn absolute(&self, n: u64) {
            self.0.store(n, Relaxed);
        }
    }
    impl Recorder for Tally {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            self.lookups.fetch_add(1, Relaxed);
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            let mut v = self.counts.lock().unwrap();
            let c = match v.iter().find(|(n, _)| *n == name) {
                Some((_, c)) => c.clone(),
                None => {
                    let c = Arc::new(AtomicU64::new(0));
                    v.push((name, c.clone()));
                    c
                }
            };
            Counter::from_arc(Arc::new(Add(c)))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn message_counters_count_by_labels_and_look_each_handle_up_once() {
        let tally = Tally::default();
        let c = MessageCounters::default();
        metrics::with_local_recorder(&tally, || {
            for _ in 0..3 {
                c.out_request("REGISTER");
            }
            c.out_response("NOTIFY");
            c.out_request("PUBLISH");
            c.out_request("UPDATE");
        });
        let got: Vec<(String, u64)> = tally
            .counts
            .lock()
            .unwrap()
            .iter()
            .map(|(n, c)| (n.clone(), c.load(Relaxed)))
            .collect();
        let key = |m: &str, k: &str| {
            format!(
                "{}{{direction=out,kind={k},method={m}}}",
                names::SIP_MESSAGES
            )
        };
        assert!(got.contains(&(key("REGISTER", "request"), 3)), "{got:?}");
        assert!(got.contains(&(key("NOTIFY", "response"), 1)), "{got:?}");
        assert!(got.contains(&(key("other", "request"), 2)), "{got:?}");
        assert_eq!(got.len(), 3);
        assert_eq!(
            tally.lookups.load(Relaxed),
            3,
            "one recorder lookup per label set"
        );
    }
}
