//! The whole gateway core in virtual time (STYLE §2): a simulated UE, the sans-IO `Core` and a
//! simulated core / S-CSCF exchange bytes without sockets; time jumps to the next deadline. The
//! SPEC §3 refresh rule is checked over an hour of virtual time in microseconds.

use std::net::SocketAddr;
use std::time::Duration;

use regevent_gw::settings::{Profile, Settings};
use regevent_gw::sip::{writer, Message};
use regevent_lab::sim::Sim;

const UE: &str = "127.0.0.2:5060";
const CORE: &str = "127.0.0.3:5060";
const SCSCF: &str = "127.0.0.4:5060";

fn addr(a: &str) -> SocketAddr {
    a.parse().unwrap()
}

fn sim() -> Sim {
    let settings = Settings {
        identity: "sip:127.0.0.1:5060".into(),
        core: format!("sip:{CORE}"),
        ..Settings::default()
    }
    .with_profile(Profile {
        support_reg_event: true,
        ..Profile::default()
    });
    Sim::new(settings, 1)
}

/// Run until a SUBSCRIBE reaches the S-CSCF (or `limit` of virtual time passes).
fn next_subscribe(sim: &mut Sim, limit: Duration) -> Option<Message> {
    sim.recv_where(addr(SCSCF), limit, |m| {
        m.method_str() == "SUBSCRIBE" && m.is_request()
    })
    .map(|s| s.msg)
}

fn register(user: &str, expires: u32) -> String {
    format!(
        "REGISTER sip:ims.example.net SIP/2.0\r\nVia: SIP/2.0/UDP {UE};branch=z9hG4bK{user}\r\nMax-Forwards: 70\r\n\
         From: <sip:{user}@ims.example.net>;tag=1\r\nTo: <sip:{user}@ims.example.net>\r\nCall-ID: {user}\r\nCSeq: 1 REGISTER\r\n\
         Contact: <sip:{user}@{UE}>;expires={expires}\r\nContent-Length: 0\r\n\r\n"
    )
}

fn registered(sim: &mut Sim, user: &str, expires: u32) -> Message {
    sim.send(addr(UE), register(user, expires).into_bytes());
    let out = sim.drain(addr(CORE));
    let fwd = &out[0].msg;
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
    sim.send(addr(CORE), ok.into_bytes());
    let out = sim.drain(addr(SCSCF));
    let sub = out
        .iter()
        .find(|s| s.msg.method_str() == "SUBSCRIBE")
        .map(|s| s.msg.clone())
        .expect("SUBSCRIBE");
    assert!(sim
        .drain(addr(UE))
        .iter()
        .any(|s| s.msg.status() == Some(200)));
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
    let mut sim = sim();
    let sub = registered(&mut sim, "alice", 3600);
    assert_eq!(sub.expires().unwrap(), Some(3660));
    sim.send(addr(SCSCF), ok(&sub, 3660));
    let r1 = next_subscribe(&mut sim, Duration::from_secs(7200)).expect("refresh");
    assert_eq!(
        sim.elapsed().as_secs(),
        3060,
        "E > 1200: 600 s before expiry"
    );
    assert_eq!(r1.cseq().seq, 2);
    assert_eq!(r1.expires().unwrap(), Some(3660));
    // The notifier grants only 1000 s this time: next refresh at half of it.
    let t = sim.elapsed();
    sim.send(addr(SCSCF), ok(&r1, 1000));
    let r2 = next_subscribe(&mut sim, Duration::from_secs(7200)).expect("second refresh");
    assert_eq!((sim.elapsed() - t).as_secs(), 500);
    assert_eq!(r2.cseq().seq, 3);
}

#[test]
fn registration_600_refreshes_at_330() {
    let mut sim = sim();
    let sub = registered(&mut sim, "bob", 600);
    assert_eq!(sub.expires().unwrap(), Some(660));
    sim.send(addr(SCSCF), ok(&sub, 660));
    next_subscribe(&mut sim, Duration::from_secs(3600)).expect("refresh");
    assert_eq!(sim.elapsed().as_secs(), 330);
}

#[test]
fn registration_expiry_without_reregistration_unsubscribes() {
    let mut sim = sim();
    let sub = registered(&mut sim, "carol", 600);
    sim.send(addr(SCSCF), ok(&sub, 3600));
    // At 600 s the binding expires (the refresh would have come at 3000 s).
    let unsub = next_subscribe(&mut sim, Duration::from_secs(3600)).expect("unsubscribe");
    assert_eq!(sim.elapsed().as_secs(), 600);
    assert_eq!(unsub.expires().unwrap(), Some(0));
    assert!(sim
        .core
        .registrar()
        .get("sip:carol@ims.example.net")
        .is_none());
    assert_eq!(sim.core.engine().len(), 0);
}

#[test]
fn a_retransmitted_notify_gets_the_same_answer_and_is_processed_once() {
    let mut sim = sim();
    let sub = registered(&mut sim, "dan", 600);
    sim.send(addr(SCSCF), ok(&sub, 660));
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
    sim.send(addr(SCSCF), notify.clone().into_bytes());
    let a = sim.drain(addr(SCSCF));
    sim.send(addr(SCSCF), notify.into_bytes());
    let b = sim.drain(addr(SCSCF));
    assert_eq!(a.len(), 1);
    assert_eq!(b.len(), 1);
    assert_eq!(a[0].msg.status(), Some(200));
    assert_eq!(a[0].msg.raw(), b[0].msg.raw(), "same bytes again");
    let reg = sim.core.registrar().get("sip:dan@ims.example.net").unwrap();
    assert_eq!(
        reg.associated.len(),
        2,
        "implicit PUI learned from NOTIFY once"
    );
    assert!(sim
        .core
        .engine()
        .find_dialog(sub.call_id(), sub.from().tag().unwrap())
        .is_some());
}
