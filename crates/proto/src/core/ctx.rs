//! What every role of the core shares: the settings, who we are, where the core is, the trunk
//! groups' profiles, the identifiers we hand out, the message counters, and the outbox.
//!
//! Owns: the outbox (everything the core sends goes through [`Ctx::send`]), branch and tag
//! generation, trunk-group lookup. Never: registrations, subscriptions, transactions — each role
//! keeps its own.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use hashbrown::HashMap;

use super::routing::{RoutePolicy, StaticRoutePolicy};
use super::{Inbound, Transmit};
use crate::names;
use crate::settings::{Network, Profile, Role, Settings, TrunkGroup};
use crate::sip::writer::push_hex;
use crate::sip::{self, uri_target, Dest, Message, Target, Transport, Uri};
use crate::subscription::SubscribePolicy;

/// Per trunk group: its name (shared by every record of it) and profile (replaced on reload).
#[derive(Debug, Clone)]
pub(super) struct Trunk {
    pub name: Arc<str>,
    pub profile: Profile,
}

/// The shared context of the core's roles.
#[derive(Debug)]
pub(super) struct Ctx {
    pub cfg: Arc<Settings>,
    /// `host:port` of `sip.identity`, for Via sent-by and our URIs.
    pub hostport: String,
    host: String,
    port: u16,
    /// Where REGISTERs go (`sip.core`).
    pub core: Target,
    pub trunks: HashMap<Arc<str>, Trunk>,
    pub route_policy: Arc<dyn RoutePolicy>,
    /// Parser limits over UDP and over TCP.
    pub limits: sip::Limits,
    pub limits_tcp: sip::Limits,
    pub counters: MessageCounters,
    out: VecDeque<Transmit>,
    pub secret: u64,
    branch_seq: u64,
}

impl Ctx {
    pub fn new(cfg: Settings, seed: u64) -> Result<Ctx, String> {
        let id = Uri::parse(&cfg.identity).map_err(|e| format!("sip.identity: {e}"))?;
        let (host, port) = (id.host.to_string(), id.port.unwrap_or(5060));
        let core = uri_target(&cfg.core)
            .ok_or_else(|| format!("sip.core: cannot route to {}", cfg.core))?;
        let mut ctx = Ctx {
            hostport: format!("{host}:{port}"),
            host,
            port,
            core,
            trunks: HashMap::new(),
            route_policy: Arc::new(StaticRoutePolicy),
            limits: sip::Limits {
                max_message: cfg.max_message,
                ..sip::Limits::default()
            },
            limits_tcp: sip::Limits {
                max_message: cfg.max_message_tcp,
                ..sip::Limits::default()
            },
            counters: MessageCounters::default(),
            out: VecDeque::new(),
            secret: seed ^ 0x9e37_79b9_7f4a_7c15,
            branch_seq: 0,
            cfg: Arc::new(cfg),
        };
        ctx.reload(ctx.cfg.clone());
        Ok(ctx)
    }

    /// New profiles (SIGHUP): new registrations follow them; live ones are untouched.
    pub fn reload(&mut self, cfg: Arc<Settings>) {
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

    pub fn send(&mut self, transport: Transport, dest: Dest, bytes: Bytes) {
        self.out.push_back(Transmit {
            transport,
            dest,
            bytes,
        });
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// Answer a request ourselves, to where it came from.
    pub fn answer(
        &mut self,
        inb: &Inbound,
        req: &Message,
        code: u16,
        reason: &str,
        extra: &[(&str, &str)],
    ) {
        let tag = (code > 100).then(|| self.make_tag(req));
        let resp = sip::writer::response(req, code, reason, tag.as_deref(), extra);
        self.counters.out_response(req.method_str());
        self.send(inb.transport, Dest::Addr(inb.peer), resp);
    }

    /// The trunk group a message belongs to: by its listener and source address.
    pub fn trunk_group_of(&self, inb: &Inbound) -> Option<&TrunkGroup> {
        self.cfg.trunk_group_for(inb.listener, inb.peer.ip())
    }

    /// The trunk (name and profile) a message belongs to.
    pub fn trunk_of(&self, inb: &Inbound) -> Option<&Trunk> {
        self.trunks.get(self.trunk_group_of(inb)?.name.as_str())
    }

    /// Does the request arrive on an IBCF / IPX trunk group?
    pub fn is_ibcf_trunk(&self, inb: &Inbound) -> bool {
        self.trunk_of(inb)
            .is_some_and(|t| matches!(t.profile.role, Role::Ibcf | Role::Ipx))
    }

    /// The subscription policy of a registration on `trunk_group`.
    pub fn policy_for(
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

    /// Is `host[:port]` (from a Via or a URI) our own address?
    pub fn is_ours(&self, host: &str, port: Option<u16>) -> bool {
        host.eq_ignore_ascii_case(&self.host) && port.unwrap_or(5060) == self.port
    }

    /// A fresh branch for a request we originate.
    pub fn new_branch(&mut self) -> String {
        self.branch_seq += 1;
        let mut b = String::with_capacity(41);
        b.push_str("z9hG4bKrg");
        push_hex(&mut b, mix(self.secret ^ self.branch_seq), 0);
        push_hex(&mut b, self.branch_seq, 0);
        b
    }

    /// Our Via for a request we send or forward over `t`.
    pub fn our_via(&self, t: Transport, branch: &str) -> String {
        let mut v = String::with_capacity(24 + self.hostport.len() + branch.len());
        for part in [
            "SIP/2.0/",
            t.via_name(),
            " ",
            &self.hostport,
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
    pub fn derived_branch(&self, msg: &Message) -> String {
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
        push_hex(&mut b, mix(self.secret ^ h), 16);
        b
    }

    /// Our To tag for a response to `req` (the same for its retransmissions).
    pub fn make_tag(&self, req: &Message) -> String {
        let mut t = String::with_capacity(16);
        push_hex(&mut t, mix(self.secret ^ fnv(req.call_id().as_bytes())), 0);
        t
    }
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
/// recorder once per core instead of once per message (a lookup builds and hashes the labels).
#[derive(Debug, Default)]
pub(super) struct MessageCounters {
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
    pub fn count_in(&self, msg: &Message) {
        self.count(false, msg.method_str(), msg.is_request());
    }
    pub fn out_request(&self, method: &str) {
        self.count(true, method, true);
    }
    pub fn out_response(&self, method: &str) {
        self.count(true, method, false);
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

pub(super) fn fnv(b: &[u8]) -> u64 {
    fnv_from(FNV_OFFSET, b)
}

/// FNV-1a, continued from `h`.
fn fnv_from(h: u64, b: &[u8]) -> u64 {
    b.iter()
        .fold(h, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3))
}

/// splitmix64 finaliser.
pub(super) fn mix(mut z: u64) -> u64 {
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
