//! A whole gateway in virtual time, without sockets: one realistic VoLTE registration with its
//! subscription at a time (REGISTER, the core's 200 OK, the SUBSCRIBE's 200 OK, a full-state
//! NOTIFY). Used by `benches/sip.rs` and `examples/gateway_memory.rs`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use regevent_proto::core::{Core, Inbound};
use regevent_proto::settings::{Profile, Settings};
use regevent_proto::sip::{writer, HeaderName, Limits, Message, Transport};

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

/// A sans-IO gateway with reg-event enabled on every trunk group (as `tests/gateway_sim.rs`).
pub fn gateway() -> Core {
    let settings = Settings {
        identity: format!("sip:{GW}"),
        core: format!("sip:{CORE}"),
        ..Settings::default()
    }
    .with_profile(Profile {
        support_reg_event: true,
        ..Profile::default()
    });
    Core::new(settings, 1).expect("gateway")
}

pub struct Sim {
    pub gw: Core,
    pub now: Instant,
    core: SocketAddr,
    scscf: SocketAddr,
    out: Vec<Bytes>,
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Sim {
    pub fn new() -> Sim {
        Sim {
            gw: gateway(),
            now: Instant::now(),
            core: CORE.parse().unwrap(),
            scscf: SCSCF.parse().unwrap(),
            out: Vec::with_capacity(8),
        }
    }
    /// Timed: `handle` of one message and the drain of `poll_transmit` (kept in `self.out`).
    pub fn feed(&mut self, peer: SocketAddr, bytes: Bytes) -> Duration {
        let inb = Inbound {
            transport: Transport::Udp,
            listener: 0,
            peer,
            bytes,
        };
        let t = Instant::now();
        self.gw.handle(self.now, inb);
        while let Some(tx) = self.gw.poll_transmit() {
            self.out.push(tx.bytes);
        }
        t.elapsed()
    }
    pub fn take(&mut self) -> Vec<Message> {
        self.out
            .drain(..)
            .map(|b| Message::parse(b, &Limits::default()).unwrap())
            .collect()
    }
    /// One registration with its subscription; returns the time spent in the gateway and the
    /// number of messages it sent.
    pub fn registration(&mut self, user: u64) -> (Duration, usize) {
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
        spent += self.feed(self.core, Bytes::from(ok));
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
        spent += self.feed(self.scscf, sub_ok);
        spent += self.feed(self.scscf, Bytes::from(notify(&sub, user)));
        sent += self.out.len();
        self.out.clear();
        // Virtual time moves 1 ms per registration; due timers (transaction cleanup, gauges)
        // run as the gateway task would run them, and are counted.
        self.now += Duration::from_millis(1);
        let t = Instant::now();
        if self.gw.poll_timeout().is_some_and(|d| d <= self.now) {
            self.gw.handle_timeout(self.now);
            while let Some(tx) = self.gw.poll_transmit() {
                drop(tx);
            }
        }
        spent += t.elapsed();
        (spent, sent)
    }
}
