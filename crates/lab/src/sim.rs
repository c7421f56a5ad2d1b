//! The whole gateway core in virtual time, without sockets (STYLE §2): peers are addresses, the
//! network delivers at once, and time jumps to the core's next deadline. Tests drive it to check
//! timing rules over hours of virtual time in microseconds ("refresh at 3060 s", "nothing is
//! sent before Timer F") without a wall clock that a busy machine could stretch.
//!
//! Also the realistic VoLTE traffic (REGISTER, the core's 200 OK, the SUBSCRIBE's 200 OK, a
//! full-state NOTIFY) that `benches/sip.rs` and the memory examples feed through it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashbrown::HashMap;

use regevent_proto::core::{Core, Inbound};
use regevent_proto::settings::{Profile, Settings};
use regevent_proto::sip::{writer, Dest, HeaderName, Limits, Message, Transport};

pub const DOMAIN: &str = "ims.mnc001.mcc262.3gppnetwork.org";
pub const UE: &str = "10.20.30.40:5060";
pub const GW: &str = "127.0.0.1:5060";
pub const CORE: &str = "127.0.0.3:5060";
pub const SCSCF: &str = "127.0.0.4:5060";

/// A REGISTER as a VoLTE UE sends it after the AKA challenge (with sec-agree, Digest
/// Authorization, +sip.instance / reg-id / ICSI feature tags).
pub fn register(user: u64) -> String {
    format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {UE};branch=z9hG4bK{user:08x}c0ffee17;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+4917{user:08}@{DOMAIN}>;tag=2345{user:08x}\r\n\
         To: <sip:+4917{user:08}@{DOMAIN}>\r\n\
         Call-ID: {user:08x}-4d2a-9c7e@10.20.30.40\r\n\
         CSeq: 2 REGISTER\r\n\
         Contact: <sip:+4917{user:08}@{UE}>;expires=3600;\
         +sip.instance=\"<urn:gsma:imei:35209900-{user:06}-0>\";reg-id=1;\
         +g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel\"\r\n\
         Authorization: Digest username=\"262011{user:09}@{DOMAIN}\",realm=\"{DOMAIN}\",\
         uri=\"sip:{DOMAIN}\",nonce=\"tAbXoOF1A8cR6Nks5x3uYVx1Xg2kEgAAjAhg0jW6cpE=\",\
         response=\"7e2a9f1d4c8b3a6e5f0d2c1b9a8e7f6d\",algorithm=AKAv1-MD5,\
         cnonce=\"0a4f113b9c2d\",qop=auth,nc=00000001\r\n\
         Supported: path, gruu, sec-agree\r\n\
         Require: sec-agree\r\n\
         Security-Client: ipsec-3gpp;spi-c=32212254;spi-s=32212255;\
         port-c=50512;port-s=50513;alg=hmac-sha-1-96;ealg=null\r\n\
         P-Access-Network-Info: 3GPP-E-UTRAN-FDD;utran-cell-id-3gpp=26201a1b2c3d4e5f6\r\n\
         User-Agent: Example-VoLTE/4.2.17 (Android 14)\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, PRACK, MESSAGE, NOTIFY, OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The core's 200 OK to a forwarded REGISTER (`vias`: ours then the UE's, as forwarded).
pub fn register_ok(user: u64, vias: &[&str], path: &str) -> String {
    let mut s = String::with_capacity(1200);
    s.push_str("SIP/2.0 200 OK\r\n");
    for v in vias {
        s.push_str("Via: ");
        s.push_str(v);
        s.push_str("\r\n");
    }
    s.push_str(&format!(
        "From: <sip:+4917{user:08}@{DOMAIN}>;tag=2345{user:08x}\r\n\
         To: <sip:+4917{user:08}@{DOMAIN}>;tag=scscf-7a41{user:x}\r\n\
         Call-ID: {user:08x}-4d2a-9c7e@10.20.30.40\r\n\
         CSeq: 2 REGISTER\r\n\
         Contact: <sip:+4917{user:08}@{UE}>;expires=3600;\
         +sip.instance=\"<urn:gsma:imei:35209900-{user:06}-0>\";reg-id=1\r\n\
         Path: {path}\r\n\
         Service-Route: <sip:orig@{SCSCF};lr>\r\n\
         P-Associated-URI: <sip:+4917{user:08}@{DOMAIN}>, <tel:+4917{user:08}>, \
         <sip:user{user}.alias@{DOMAIN}>\r\n\
         P-Charging-Function-Addresses: ccf=\"aaa://pcrf1.{DOMAIN}\"\r\n\
         Content-Length: 0\r\n\r\n"
    ));
    s
}

pub fn static_register_ok() -> String {
    register_ok(
        1234,
        &[
            "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKrp5f1d0c9a8b7e6f43;rport",
            "SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK000004d2c0ffee17;rport=5060;received=10.20.30.40",
        ],
        "<sip:u0-0a141e28-13c4@127.0.0.1:5060;lr>",
    )
}

pub fn reginfo_body(user: u64) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"0\" state=\"full\">\
         <registration aor=\"sip:+4917{user:08}@{DOMAIN}\" id=\"r{user}\" state=\"active\">\
         <contact id=\"c{user}\" state=\"active\" event=\"registered\" expires=\"3600\">\
         <uri>sip:+4917{user:08}@{UE};transport=udp</uri>\
         <unknown-param name=\"+sip.instance\">\"&lt;urn:gsma:imei:35209900-{user:06}-0&gt;\"</unknown-param>\
         <unknown-param name=\"reg-id\">1</unknown-param></contact></registration></reginfo>"
    )
}

pub fn notify(sub: &Message, user: u64) -> String {
    let body = reginfo_body(user);
    format!(
        "NOTIFY sip:{GW} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {SCSCF};branch=z9hG4bKnotify{user:x}\r\n\
         Max-Forwards: 70\r\n\
         From: <{}>;tag=scscf-sub-{user:x}\r\n\
         To: <{}>;tag={}\r\n\
         Call-ID: {}\r\n\
         CSeq: 1 NOTIFY\r\n\
         Contact: <sip:notifier@{SCSCF}>\r\n\
         Event: reg\r\n\
         Subscription-State: active;expires=3660\r\n\
         Content-Type: application/reginfo+xml\r\n\
         Content-Length: {}\r\n\r\n{body}",
        sub.to().uri,
        sub.from().uri,
        sub.from().tag().expect("from tag"),
        sub.call_id(),
        body.len()
    )
}

/// Settings of a VoLTE gateway at [`GW`] towards [`CORE`], reg-event on every trunk group.
pub fn volte_settings() -> Settings {
    Settings {
        identity: format!("sip:{GW}"),
        core: format!("sip:{CORE}"),
        ..Settings::default()
    }
    .with_profile(Profile {
        support_reg_event: true,
        ..Profile::default()
    })
}

/// A message the core sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub transport: Transport,
    pub msg: Message,
}

/// The core on a simulated network, in virtual time.
pub struct Sim {
    pub core: Core,
    /// The virtual clock: starts at `t0`, moves only when the sim moves it.
    pub t0: Instant,
    pub now: Instant,
    /// What the core sent, per destination address, not yet received.
    inbox: HashMap<SocketAddr, VecDeque<Sent>>,
    /// Sends to host names (never resolved here).
    pub to_names: Vec<(Dest, Sent)>,
    /// Raw output kept by [`Sim::feed`] (the benchmark path).
    out: Vec<Bytes>,
}

impl Sim {
    /// A core with these settings and seed, its clock at an arbitrary origin.
    pub fn new(settings: Settings, seed: u64) -> Sim {
        let now = Instant::now();
        Sim {
            core: Core::new(settings, seed).expect("valid settings"),
            t0: now,
            now,
            inbox: HashMap::new(),
            to_names: Vec::new(),
            out: Vec::with_capacity(8),
        }
    }

    /// [`volte_settings`], seed 1.
    pub fn volte() -> Sim {
        Sim::new(volte_settings(), 1)
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// The listener index of the first listener of `transport` (`udp:`/`tcp:` by name).
    fn listener(&self, transport: Transport) -> u16 {
        let prefix = transport.name();
        self.core
            .settings()
            .listeners
            .iter()
            .position(|l| l.starts_with(prefix))
            .and_then(|i| u16::try_from(i).ok())
            .unwrap_or(0)
    }

    /// `from` sends `bytes` to the gateway over `transport`; the core's output is delivered.
    pub fn deliver(&mut self, from: SocketAddr, transport: Transport, bytes: impl Into<Bytes>) {
        let inb = Inbound {
            transport,
            listener: self.listener(transport),
            peer: from,
            bytes: bytes.into(),
        };
        self.core.handle(self.now, inb);
        self.collect();
    }

    /// Like [`Sim::deliver`] over UDP, but under overload control as the transport does it
    /// ([`Core::offer`]): the message waits for [`Sim::serve`] unless it is refused at once.
    pub fn offer(&mut self, from: SocketAddr, bytes: impl Into<Bytes>) {
        let inb = Inbound {
            transport: Transport::Udp,
            listener: self.listener(Transport::Udp),
            peer: from,
            bytes: bytes.into(),
        };
        self.core.offer(self.now, inb);
        self.collect();
    }

    /// Serve up to `max` waiting messages ([`Core::serve`]) at the current time; returns how
    /// many were taken.
    pub fn serve(&mut self, max: usize) -> usize {
        let n = self.core.serve(self.now, max);
        self.collect();
        n
    }

    /// `from` sends `bytes` to the gateway over UDP.
    pub fn send(&mut self, from: SocketAddr, bytes: impl Into<Bytes>) {
        self.deliver(from, Transport::Udp, bytes);
    }

    /// Put what the core sent into the inboxes.
    fn collect(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            let msg =
                Message::parse(t.bytes, &Limits::default()).expect("the core sends valid SIP");
            let sent = Sent {
                transport: t.transport,
                msg,
            };
            match t.dest {
                Dest::Addr(a) => self.inbox.entry(a).or_default().push_back(sent),
                name => self.to_names.push((name, sent)),
            }
        }
    }

    /// Run the core's timers due by `until`, one deadline at a time, stopping early once `at`
    /// has something in its inbox (with `at`). The clock ends at the last deadline run, or at
    /// `until`.
    fn run_until(&mut self, until: Instant, at: Option<SocketAddr>) {
        loop {
            if at.is_some_and(|a| self.inbox.get(&a).is_some_and(|q| !q.is_empty())) {
                return;
            }
            match self.core.poll_timeout() {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.core.handle_timeout(self.now);
                    self.collect();
                }
                _ => {
                    self.now = self.now.max(until);
                    return;
                }
            }
        }
    }

    /// Let `d` of virtual time pass (timers run as they come due).
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until, None);
    }

    /// The next message the core sends to `at` within `wait` of virtual time (`None`: nothing
    /// was sent there by then, which in virtual time is exact).
    pub fn recv(&mut self, at: SocketAddr, wait: Duration) -> Option<Sent> {
        let until = self.now + wait;
        self.run_until(until, Some(at));
        self.inbox.get_mut(&at)?.pop_front()
    }

    /// The next message to `at` satisfying `want` within `wait`; others on the way are dropped.
    pub fn recv_where(
        &mut self,
        at: SocketAddr,
        wait: Duration,
        mut want: impl FnMut(&Message) -> bool,
    ) -> Option<Sent> {
        let until = self.now + wait;
        while self.now <= until {
            let left = until - self.now;
            let s = self.recv(at, left)?;
            if want(&s.msg) {
                return Some(s);
            }
        }
        None
    }

    /// Everything in `at`'s inbox now, without letting time pass.
    pub fn drain(&mut self, at: SocketAddr) -> Vec<Sent> {
        self.inbox
            .get_mut(&at)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// Timed, for benchmarks: `handle` of one message over UDP and the drain of
    /// `poll_transmit` (kept raw, see [`Sim::take`]); returns the wall time spent in the core.
    pub fn feed(&mut self, peer: SocketAddr, bytes: Bytes) -> Duration {
        let inb = Inbound {
            transport: Transport::Udp,
            listener: 0,
            peer,
            bytes,
        };
        let t = Instant::now();
        self.core.handle(self.now, inb);
        while let Some(tx) = self.core.poll_transmit() {
            self.out.push(tx.bytes);
        }
        t.elapsed()
    }

    /// What [`Sim::feed`] kept, parsed.
    pub fn take(&mut self) -> Vec<Message> {
        self.out
            .drain(..)
            .map(|b| Message::parse(b, &Limits::default()).unwrap())
            .collect()
    }

    /// One VoLTE registration with its subscription (the core at [`volte_settings`]); returns
    /// the wall time spent in the core and the number of messages it sent.
    pub fn registration(&mut self, user: u64) -> (Duration, usize) {
        let core: SocketAddr = CORE.parse().expect("literal");
        let scscf: SocketAddr = SCSCF.parse().expect("literal");
        // Every UE has a flow of its own (address and port), as behind a carrier-grade NAT.
        let ue = SocketAddr::from((
            [10, (user >> 16) as u8, (user >> 8) as u8, user as u8],
            5060 + (user % 7) as u16,
        ));
        let mut spent = self.feed(ue, Bytes::from(register(user)));
        let fwd = self.take();
        let fwd = &fwd[0];
        let vias = fwd.header_values(HeaderName::Via);
        let path = fwd.header(HeaderName::Path).unwrap();
        let ok = register_ok(user, &vias, path);
        spent += self.feed(core, Bytes::from(ok));
        let out = self.take();
        let mut sent = 1 + out.len();
        let sub = out
            .iter()
            .find(|m| m.is_request())
            .expect("SUBSCRIBE")
            .clone();
        let sub_ok = writer::response(
            &sub,
            200,
            "OK",
            Some(&format!("scscf-sub-{user:x}")),
            &[
                ("Expires", "3660"),
                ("Contact", "<sip:notifier@127.0.0.4:5060>"),
            ],
        );
        spent += self.feed(scscf, sub_ok);
        spent += self.feed(scscf, Bytes::from(notify(&sub, user)));
        sent += self.out.len();
        self.out.clear();
        // Virtual time moves 1 ms per registration; due timers (transaction cleanup, gauges)
        // run as the gateway task would run them, and are counted.
        self.now += Duration::from_millis(1);
        let t = Instant::now();
        if self.core.poll_timeout().is_some_and(|d| d <= self.now) {
            self.core.handle_timeout(self.now);
            while let Some(tx) = self.core.poll_transmit() {
                drop(tx);
            }
        }
        spent += t.elapsed();
        (spent, sent)
    }
}
