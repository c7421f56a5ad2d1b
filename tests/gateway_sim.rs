//! The whole gateway core in virtual time (STYLE §2): a simulated UE, the sans-IO `Core` and a
//! simulated core / S-CSCF exchange bytes without sockets; time jumps to the next deadline. The
//! SPEC §3 refresh rule is checked over an hour of virtual time in microseconds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use regevent_gw::config::{Config, Profile, Transport};
use regevent_gw::core::{Core, Dest, Inbound, Transmit};
use regevent_gw::sip::{writer, HeaderName, Limits, Message};

const UE: &str = "127.0.0.2:5060";
const CORE: &str = "127.0.0.3:5060";
const SCSCF: &str = "127.0.0.4:5060";

struct Sim {
    gw: Core,
    t0: Instant,
    now: Instant,
}

impl Sim {
    fn new() -> Sim {
        let mut cfg = Config::load(None).expect("defaults");
        cfg.sip.identity = "sip:127.0.0.1:5060".into();
        cfg.sip.core = format!("sip:{CORE}");
        for tg in cfg.trunk_groups.clone() {
            cfg.profiles.by_name.insert(
                tg.profile.clone(),
                Profile {
                    support_reg_event: true,
                    ..Profile::default()
                },
            );
        }
        let t0 = Instant::now();
        Sim {
            gw: Core::new(cfg.core_settings(), 1).expect("gateway"),
            t0,
            now: t0,
        }
    }
    fn feed(&mut self, from: &str, bytes: &[u8]) {
        let inb = Inbound {
            transport: Transport::Udp,
            listener: 0,
            peer: from.parse().unwrap(),
            bytes: Bytes::copy_from_slice(bytes),
        };
        self.gw.handle(self.now, inb);
    }
    fn out(&mut self) -> Vec<(SocketAddr, Message)> {
        let mut v = Vec::new();
        while let Some(Transmit { dest, bytes, .. }) = self.gw.poll_transmit() {
            let Dest::Addr(a) = dest else {
                panic!("name dest")
            };
            v.push((
                a,
                Message::parse(bytes, &Limits::default()).expect("we send valid SIP"),
            ));
        }
        v
    }
    /// Jump to the next deadline (at most `until`), run it, return what went out.
    fn step(&mut self, until: Instant) -> Vec<(SocketAddr, Message)> {
        match self.gw.poll_timeout() {
            Some(t) if t <= until => {
                self.now = self.now.max(t);
                self.gw.handle_timeout(self.now);
                self.out()
            }
            _ => {
                self.now = until;
                Vec::new()
            }
        }
    }
    /// Run until a SUBSCRIBE goes out (or `limit` of virtual time passes).
    fn next_subscribe(&mut self, limit: Duration) -> Option<Message> {
        let until = self.now + limit;
        while self.now < until {
            for (to, m) in self.step(until) {
                if m.method_str() == "SUBSCRIBE" && m.is_request() {
                    assert_eq!(to, SCSCF.parse().unwrap());
                    return Some(m);
                }
            }
        }
        None
    }
    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }
}

fn register(user: &str, expires: u32) -> String {
    format!(
        "REGISTER sip:ims.example.net SIP/2.0\r\nVia: SIP/2.0/UDP {UE};branch=z9hG4bK{user}\r\nMax-Forwards: 70\r\n\
         From: <sip:{user}@ims.example.net>;tag=1\r\nTo: <sip:{user}@ims.example.net>\r\nCall-ID: {user}\r\nCSeq: 1 REGISTER\r\n\
         Contact: <sip:{user}@{UE}>;expires={expires}\r\nContent-Length: 0\r\n\r\n"
    )
}

fn registered(sim: &mut Sim, user: &str, expires: u32) -> Message {
    sim.feed(UE, register(user, expires).as_bytes());
    let out = sim.out();
    let fwd = &out[0].1;
    let contact = format!("<sip:{user}@{UE}>;expires={expires}");
    let sr = format!("<sip:scscf@{SCSCF};lr>");
    let ok = writer::response(
        fwd,
        200,
        "OK",
        Some("c"),
        &[
            ("Contact", &contact),
            ("Service-Route", &sr),
            ("P-Associated-URI", "<sip:x@y>"),
        ],
    );
    let ok = String::from_utf8(ok.to_vec())
        .unwrap()
        .replace("<sip:x@y>", &format!("<sip:{user}@ims.example.net>"));
    sim.feed(CORE, ok.as_bytes());
    let out = sim.out();
    let sub = out
        .iter()
        .find(|(_, m)| m.method_str() == "SUBSCRIBE")
        .map(|(_, m)| m.clone())
        .expect("SUBSCRIBE");
    assert!(out
        .iter()
        .any(|(to, m)| *to == UE.parse().unwrap() && m.status() == Some(200)));
    sub
}

fn ok(sub: &Message, expires: u32) -> Vec<u8> {
    let e = expires.to_string();
    writer::response(
        sub,
        200,
        "OK",
        Some("n"),
        &[("Expires", &e), ("Contact", &format!("<sip:n@{SCSCF}>"))],
    )
    .to_vec()
}

#[test]
fn registration_3600_refreshes_at_3060_then_again_from_each_grant() {
    let mut sim = Sim::new();
    let sub = registered(&mut sim, "alice", 3600);
    assert_eq!(sub.expires().unwrap(), Some(3660));
    sim.feed(SCSCF, &ok(&sub, 3660));
    let r1 = sim
        .next_subscribe(Duration::from_secs(7200))
        .expect("refresh");
    assert_eq!(
        sim.elapsed().as_secs(),
        3060,
        "E > 1200: 600 s before expiry"
    );
    assert_eq!(r1.cseq().seq, 2);
    assert_eq!(r1.expires().unwrap(), Some(3660));
    // The notifier grants only 1000 s this time: next refresh at half of it.
    let t = sim.elapsed();
    sim.feed(SCSCF, &ok(&r1, 1000));
    let r2 = sim
        .next_subscribe(Duration::from_secs(7200))
        .expect("second refresh");
    assert_eq!((sim.elapsed() - t).as_secs(), 500);
    assert_eq!(r2.cseq().seq, 3);
}

#[test]
fn registration_600_refreshes_at_330() {
    let mut sim = Sim::new();
    let sub = registered(&mut sim, "bob", 600);
    assert_eq!(sub.expires().unwrap(), Some(660));
    sim.feed(SCSCF, &ok(&sub, 660));
    sim.next_subscribe(Duration::from_secs(3600))
        .expect("refresh");
    assert_eq!(sim.elapsed().as_secs(), 330);
}

#[test]
fn registration_expiry_without_reregistration_unsubscribes() {
    let mut sim = Sim::new();
    let sub = registered(&mut sim, "carol", 600);
    sim.feed(SCSCF, &ok(&sub, 3600));
    // At 600 s the binding expires (the refresh would have come at 3000 s).
    let unsub = sim
        .next_subscribe(Duration::from_secs(3600))
        .expect("unsubscribe");
    assert_eq!(sim.elapsed().as_secs(), 600);
    assert_eq!(unsub.expires().unwrap(), Some(0));
    assert!(sim
        .gw
        .registrar()
        .get("sip:carol@ims.example.net")
        .is_none());
    assert_eq!(sim.gw.engine().len(), 0);
}

#[test]
fn a_retransmitted_notify_gets_the_same_answer_and_is_processed_once() {
    let mut sim = Sim::new();
    let sub = registered(&mut sim, "dan", 600);
    sim.feed(SCSCF, &ok(&sub, 660));
    let body = "<?xml version=\"1.0\"?><reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"0\" state=\"full\">\
        <registration aor=\"sip:dan@ims.example.net\" id=\"a\" state=\"active\">\
        <contact id=\"c\" state=\"active\" event=\"registered\"><uri>sip:dan@127.0.0.2:5060</uri></contact></registration>\
        <registration aor=\"sip:dan-2@ims.example.net\" id=\"b\" state=\"active\">\
        <contact id=\"d\" state=\"active\" event=\"created\"><uri>sip:dan@127.0.0.2:5060</uri></contact></registration></reginfo>";
    let notify = format!(
        "NOTIFY sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {SCSCF};branch=z9hG4bKn1\r\nMax-Forwards: 70\r\n\
         From: <sip:dan@ims.example.net>;tag=n\r\nTo: <sip:127.0.0.1:5060>;tag={}\r\nCall-ID: {}\r\nCSeq: 1 NOTIFY\r\n\
         Event: reg\r\nSubscription-State: active;expires=660\r\nContent-Type: application/reginfo+xml\r\nContent-Length: {}\r\n\r\n{body}",
        sub.from().tag().unwrap(),
        sub.call_id(),
        body.len()
    );
    sim.feed(SCSCF, notify.as_bytes());
    let a = sim.out();
    sim.feed(SCSCF, notify.as_bytes());
    let b = sim.out();
    assert_eq!(a.len(), 1);
    assert_eq!(b.len(), 1);
    assert_eq!(a[0].1.status(), Some(200));
    assert_eq!(a[0].1.raw(), b[0].1.raw(), "same bytes again");
    let reg = sim.gw.registrar().get("sip:dan@ims.example.net").unwrap();
    assert_eq!(
        reg.associated.len(),
        2,
        "implicit PUI learned from NOTIFY once"
    );
    assert!(sim
        .gw
        .engine()
        .find_dialog(sub.call_id(), sub.from().tag().unwrap())
        .is_some());
    let _ = HeaderName::Via;
}
