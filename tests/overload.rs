//! Overload control (SPEC §11) in virtual time, through the sans-IO core as the transport drives
//! it: messages are offered as they arrive ([`Core::offer`]) and served a few at a time
//! ([`Core::serve`]); the test decides how many the gateway "can" serve per millisecond, so the
//! overload is exact and no wall clock is involved.

use std::net::SocketAddr;
use std::time::Duration;

use regevent_gw::core::OverloadSettings;
use regevent_gw::settings::{Profile, Settings};
use regevent_gw::sip::{writer, HeaderName, Message};
use regevent_lab::sim::{Sent, Sim};

const UE: &str = "127.0.0.2:5060";
/// Where the storm of new UEs comes from.
const CROWD: &str = "127.0.0.5:5060";
const CORE: &str = "127.0.0.3:5060";
const SCSCF: &str = "127.0.0.4:5060";

fn addr(a: &str) -> SocketAddr {
    a.parse().unwrap()
}

fn sim(overload: OverloadSettings) -> Sim {
    let settings = Settings {
        identity: "sip:127.0.0.1:5060".into(),
        core: format!("sip:{CORE}"),
        overload,
        ..Settings::default()
    }
    .with_profile(Profile {
        support_reg_event: true,
        ..Profile::default()
    });
    Sim::new(settings, 7)
}

fn settings(max_queue: usize) -> OverloadSettings {
    OverloadSettings {
        max_delay: Duration::from_millis(200),
        max_queue,
        retry_after_min: Duration::from_secs(10),
        retry_after_max: Duration::from_secs(40),
        ..OverloadSettings::default()
    }
}

fn register(user: &str, from: &str, cseq: u32) -> String {
    format!(
        "REGISTER sip:ims.example.net SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK{user}-{cseq}\r\nMax-Forwards: 70\r\n\
         From: <sip:{user}@ims.example.net>;tag=1\r\nTo: <sip:{user}@ims.example.net>\r\nCall-ID: {user}\r\nCSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@{from}>;expires=600\r\nContent-Length: 0\r\n\r\n"
    )
}

fn options(from: &str) -> String {
    format!(
        "OPTIONS sip:someone@ims.example.net SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKopt\r\nMax-Forwards: 70\r\n\
         From: <sip:alice@ims.example.net>;tag=9\r\nTo: <sip:someone@ims.example.net>\r\nCall-ID: opt-1\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// alice registered (served at once, before any storm) and her subscription accepted; returns
/// the SUBSCRIBE.
fn alice(sim: &mut Sim) -> Message {
    sim.send(addr(UE), register("alice", UE, 1).into_bytes());
    let fwd = sim.drain(addr(CORE)).remove(0).msg;
    let ok = writer::response(
        &fwd,
        200,
        "OK",
        Some("c"),
        &[
            ("Contact", &format!("<sip:alice@{UE}>;expires=600")),
            ("Service-Route", &format!("<sip:scscf@{SCSCF};lr>")),
            ("P-Associated-URI", "<sip:alice@ims.example.net>"),
        ],
    );
    sim.send(addr(CORE), ok);
    let sub = sim
        .drain(addr(SCSCF))
        .into_iter()
        .find(|s| s.msg.method_str() == "SUBSCRIBE")
        .expect("SUBSCRIBE")
        .msg;
    sim.drain(addr(UE));
    sim.send(addr(SCSCF), sub_ok(&sub));
    sub
}

fn sub_ok(sub: &Message) -> bytes::Bytes {
    writer::response(
        sub,
        200,
        "OK",
        Some("n"),
        &[("Expires", "660"), ("Contact", &format!("<sip:n@{SCSCF}>"))],
    )
}

/// A full-state NOTIFY in alice's dialog.
fn notify(sub: &Message, version: u32) -> String {
    let body = format!(
        "<?xml version=\"1.0\"?><reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"{version}\" state=\"full\">\
         <registration aor=\"sip:alice@ims.example.net\" id=\"r1\" state=\"active\">\
         <contact id=\"c1\" state=\"active\" event=\"registered\"><uri>sip:alice@{UE}</uri></contact>\
         </registration></reginfo>"
    );
    format!(
        "NOTIFY sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {SCSCF};branch=z9hG4bKn{version}\r\nMax-Forwards: 70\r\n\
         From: <{}>;tag=n\r\nTo: <{}>;tag={}\r\nCall-ID: {}\r\nCSeq: {} NOTIFY\r\nContact: <sip:n@{SCSCF}>\r\n\
         Event: reg\r\nSubscription-State: active;expires=600\r\nContent-Type: application/reginfo+xml\r\n\
         Content-Length: {}\r\n\r\n{body}",
        sub.to().uri,
        sub.from().uri,
        sub.from().tag().unwrap(),
        sub.call_id(),
        version + 1,
        body.len()
    )
}

/// The users of the REGISTERs among `sent`.
fn users(sent: &[Sent]) -> Vec<String> {
    sent.iter()
        .filter(|s| s.msg.method_str() == "REGISTER" && s.msg.is_request())
        .map(|s| s.msg.call_id().to_string())
        .collect()
}

/// The `Retry-After` of every 503 among `sent`, with its Call-ID.
fn refusals(sent: &[Sent]) -> Vec<(String, u64)> {
    sent.iter()
        .filter(|s| s.msg.status() == Some(503))
        .map(|s| {
            let ra = s
                .msg
                .header_by_name("Retry-After")
                .expect("a 503 carries Retry-After");
            (s.msg.call_id().to_string(), ra.parse().expect("seconds"))
        })
        .collect()
}

#[test]
fn priorities_then_503s_with_retry_after_once_requests_wait_too_long() {
    let mut sim = sim(settings(1000));
    let sub = alice(&mut sim);
    for i in 0..20 {
        sim.offer(addr(CROWD), register(&format!("u{i}"), CROWD, 1));
    }
    sim.offer(addr(UE), register("alice", UE, 2));
    sim.offer(addr(UE), options(UE));
    sim.offer(addr(SCSCF), notify(&sub, 0));
    assert_eq!(sim.core.waiting(), 23, "everything waits for its turn");
    assert!(sim.drain(addr(CROWD)).is_empty() && sim.drain(addr(CORE)).is_empty());

    // One at a time: the NOTIFY of our dialog, then the re-registration, then the new UEs in
    // the order they came.
    assert_eq!(sim.serve(1), 1);
    let to_scscf = sim.drain(addr(SCSCF));
    assert_eq!(to_scscf.len(), 1);
    assert_eq!(to_scscf[0].msg.status(), Some(200));
    assert_eq!(to_scscf[0].msg.cseq().method, "NOTIFY");
    assert!(sim.drain(addr(CORE)).is_empty());
    sim.serve(1);
    assert_eq!(users(&sim.drain(addr(CORE))), ["alice"]);
    sim.serve(2);
    assert_eq!(users(&sim.drain(addr(CORE))), ["u0", "u1"]);

    // 300 ms pass and nothing is served: what waits is later than max_delay (200 ms).
    sim.advance(Duration::from_millis(300));
    sim.offer(addr(CROWD), register("u100", CROWD, 1));
    let now = refusals(&sim.drain(addr(CROWD)));
    assert_eq!(now.len(), 1, "refused as it arrives: its class is late");
    assert_eq!(now[0].0, "u100");
    assert!(sim.core.overloaded());

    // Serving what waits refuses it all, no REGISTER reaches the core, and every one is answered.
    assert_eq!(sim.serve(100), 19, "18 new UEs and the OPTIONS");
    assert!(sim.drain(addr(CORE)).is_empty());
    let crowd = refusals(&sim.drain(addr(CROWD)));
    let expect: Vec<String> = (2..20).map(|i| format!("u{i}")).collect();
    assert_eq!(
        crowd.iter().map(|(u, _)| u.clone()).collect::<Vec<_>>(),
        expect
    );
    let opt = sim.drain(addr(UE));
    assert_eq!(opt.len(), 1);
    assert_eq!(
        (opt[0].msg.status(), opt[0].msg.cseq().method),
        (Some(503), "OPTIONS")
    );
    let secs: Vec<u64> = crowd.iter().chain(&now).map(|(_, s)| *s).collect();
    assert!(secs.iter().all(|s| (10..=40).contains(s)), "{secs:?}");
    let first = secs[0];
    assert!(secs.iter().any(|s| *s != first), "randomised: {secs:?}");
    assert_eq!(sim.core.waiting(), 0);

    // A second without refusals ends the episode; new UEs are served again.
    sim.advance(Duration::from_secs(2));
    assert!(!sim.core.overloaded());
    sim.offer(addr(CROWD), register("u200", CROWD, 1));
    sim.serve(10);
    assert_eq!(users(&sim.drain(addr(CORE))), ["u200"]);
}

#[test]
fn a_full_queue_makes_room_for_higher_classes_and_refuses_the_rest() {
    let mut sim = sim(settings(5));
    let sub = alice(&mut sim);
    for i in 0..5 {
        sim.offer(addr(CROWD), register(&format!("u{i}"), CROWD, 1));
    }
    // Full. A NOTIFY of our dialog takes the place of the oldest new UE, which is refused.
    sim.offer(addr(SCSCF), notify(&sub, 0));
    assert_eq!(sim.core.waiting(), 5);
    let out: Vec<String> = refusals(&sim.drain(addr(CROWD)))
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    assert_eq!(out, ["u0"]);
    // Another new UE finds nothing lower than itself to push out: refused at once.
    sim.offer(addr(CROWD), register("u5", CROWD, 1));
    let out: Vec<String> = refusals(&sim.drain(addr(CROWD)))
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    assert_eq!(out, ["u5"]);
    // The rest is served in time: the NOTIFY first, then u1..u4 go to the core.
    sim.serve(10);
    let n = sim.drain(addr(SCSCF));
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].msg.status(), Some(200));
    assert_eq!(users(&sim.drain(addr(CORE))), ["u1", "u2", "u3", "u4"]);
    assert!(sim.drain(addr(CROWD)).is_empty());
}

#[test]
fn new_requests_are_refused_while_the_core_leaves_too_many_transactions_open() {
    let mut sim = sim(OverloadSettings {
        max_transactions: 3,
        ..settings(1000)
    });
    alice(&mut sim);
    for i in 0..3 {
        sim.offer(addr(CROWD), register(&format!("u{i}"), CROWD, 1));
        sim.serve(1);
    }
    assert_eq!(users(&sim.drain(addr(CORE))), ["u0", "u1", "u2"]);
    // The core answers none of them: a fourth new UE is refused, a re-registration is not.
    sim.offer(addr(CROWD), register("u3", CROWD, 1));
    let r = refusals(&sim.drain(addr(CROWD)));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, "u3");
    sim.offer(addr(UE), register("alice", UE, 2));
    sim.serve(1);
    assert_eq!(users(&sim.drain(addr(CORE))), ["alice"]);
}

/// Three new UEs arrive per millisecond, the gateway serves two messages per millisecond, for
/// three seconds around the time alice's subscription must be refreshed: the refresh's answer
/// goes ahead of the crowd, the subscription lives on, and every new UE gets an answer (its
/// REGISTER forwarded or a 503).
#[test]
fn a_subscription_refresh_is_not_starved_by_a_registration_storm() {
    let mut sim = sim(settings(20_000));
    let sub = alice(&mut sim);
    assert_eq!(sub.cseq().seq, 1);
    // 660 s granted: the refresh is due at 330 s. The storm starts a second before.
    sim.advance(Duration::from_secs(329));
    assert!(sim.drain(addr(SCSCF)).is_empty());
    let (mut offered, mut forwarded, mut refused, mut refreshes) = (0usize, 0usize, 0usize, 0);
    for ms in 0..3000usize {
        for k in 0..3 {
            let u = format!("s{}", ms * 3 + k);
            sim.offer(addr(CROWD), register(&u, CROWD, 1));
            offered += 1;
        }
        sim.serve(2);
        for s in sim.drain(addr(SCSCF)) {
            if s.msg.is_request() && s.msg.method_str() == "SUBSCRIBE" {
                refreshes += 1;
                assert_eq!(s.msg.cseq().seq, 2, "a refresh in the dialog");
                sim.offer(addr(SCSCF), sub_ok(&s.msg));
            }
        }
        forwarded += users(&sim.drain(addr(CORE))).len();
        refused += refusals(&sim.drain(addr(CROWD))).len();
        sim.advance(Duration::from_millis(1));
    }
    // What still waits is served (or refused) once the storm is over.
    while sim.serve(1000) > 0 {}
    forwarded += users(&sim.drain(addr(CORE))).len();
    refused += refusals(&sim.drain(addr(CROWD))).len();
    assert_eq!(refreshes, 1);
    assert_eq!(forwarded + refused, offered, "every new UE is answered");
    assert!(refused > offered / 4, "{refused} of {offered} refused");
    // Goodput: the gateway served at its full rate (2 per ms) all along; refusals cost it
    // nothing here (a refusal is a few microseconds, a registration tens).
    assert!(
        forwarded >= 5_900,
        "{forwarded} of {offered} served in 3,000 ms at 2/ms"
    );
    // The refresh's 200 OK was taken: the next refresh comes at half of the new 660 s grant,
    // in the same dialog, and no initial SUBSCRIBE replaces a lost subscription.
    let t = sim.elapsed();
    let next = sim
        .recv_where(addr(SCSCF), Duration::from_secs(700), |m| {
            m.is_request() && m.method_str() == "SUBSCRIBE"
        })
        .expect("next refresh")
        .msg;
    assert_eq!(next.cseq().seq, 3);
    assert_eq!(next.to().tag(), Some("n"));
    assert!(sim.elapsed() - t < Duration::from_secs(330));
    assert!(next.header(HeaderName::Expires).is_some());
}

#[test]
fn with_overload_control_off_every_message_is_served_as_it_comes() {
    let mut sim = sim(OverloadSettings {
        enabled: false,
        ..settings(1)
    });
    for i in 0..3 {
        sim.offer(addr(CROWD), register(&format!("u{i}"), CROWD, 1));
    }
    assert_eq!(sim.core.waiting(), 0);
    assert_eq!(users(&sim.drain(addr(CORE))), ["u0", "u1", "u2"]);
}

/// SIGTERM (issue 22.5): new requests get 503, what is in flight finishes.
#[test]
fn a_stopping_gateway_refuses_new_requests_and_finishes_what_is_in_flight() {
    let mut sim = sim(settings(1000));
    let sub = alice(&mut sim);
    sim.offer(addr(CROWD), register("u0", CROWD, 1));
    sim.serve(10);
    let fwd = sim.drain(addr(CORE)).remove(0).msg;
    assert!(!sim.core.quiescent(), "u0's REGISTER is in flight");

    sim.core.drain();
    sim.offer(addr(CROWD), register("u1", CROWD, 1));
    sim.offer(addr(UE), register("alice", UE, 2));
    assert_eq!(sim.core.waiting(), 0, "refused at once");
    let r = refusals(&sim.drain(addr(CROWD)));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, "u1");
    assert_eq!(refusals(&sim.drain(addr(UE))).len(), 1);
    assert!(sim.drain(addr(CORE)).is_empty());
    // Not an overload: no episode starts.
    assert!(!sim.core.overloaded());

    // The NOTIFY of a dialog and the core's answer to u0 are still served.
    sim.offer(addr(SCSCF), notify(&sub, 0));
    let ok = writer::response(
        &fwd,
        200,
        "OK",
        Some("c"),
        &[
            ("Contact", &format!("<sip:u0@{CROWD}>;expires=600")),
            ("P-Associated-URI", "<sip:u0@ims.example.net>"),
        ],
    );
    sim.offer(addr(CORE), ok);
    sim.serve(10);
    assert_eq!(sim.drain(addr(SCSCF))[0].msg.status(), Some(200));
    let to_u0 = sim.drain(addr(CROWD));
    assert_eq!(to_u0.len(), 1);
    assert_eq!(to_u0[0].msg.status(), Some(200));
    assert!(sim.core.quiescent());
}

/// Register `user` (from [`CROWD`]) at once, the core answering 200; its SUBSCRIBE may wait.
fn register_now(sim: &mut Sim, user: &str) {
    sim.send(addr(CROWD), register(user, CROWD, 1).into_bytes());
    let fwd = sim
        .drain(addr(CORE))
        .into_iter()
        .find(|s| s.msg.is_request())
        .expect("forwarded")
        .msg;
    let ok = writer::response(
        &fwd,
        200,
        "OK",
        Some("c"),
        &[
            ("Contact", &format!("<sip:{user}@{CROWD}>;expires=600")),
            ("Service-Route", &format!("<sip:scscf@{SCSCF};lr>")),
            ("P-Associated-URI", &format!("<sip:{user}@ims.example.net>")),
        ],
    );
    sim.send(addr(CORE), ok);
    sim.drain(addr(CROWD));
}

fn paced_sim(rate: u32) -> Sim {
    let settings = Settings {
        identity: "sip:127.0.0.1:5060".into(),
        core: format!("sip:{CORE}"),
        max_subscribe_rate: rate,
        ..Settings::default()
    }
    .with_profile(Profile {
        support_reg_event: true,
        ..Profile::default()
    });
    Sim::new(settings, 3)
}

/// `subscription.max_subscribe_rate` (issue 22.9) holds initial SUBSCRIBEs and unsubscribes too:
/// a burst of 25 registrations at one instant with a ceiling of 10/s gets its 25 SUBSCRIBEs one
/// every 100 ms, in order; their 25 deregistrations get their unsubscribes the same way.
#[test]
fn initial_subscribes_and_unsubscribes_keep_to_the_subscribe_rate() {
    let mut sim = paced_sim(10);
    for i in 0..25 {
        register_now(&mut sim, &format!("p{i}"));
    }
    let t0 = sim.elapsed();
    let mut at = Vec::new();
    while let Some(s) = sim.recv_where(addr(SCSCF), Duration::from_secs(5), |m| {
        m.is_request() && m.method_str() == "SUBSCRIBE"
    }) {
        at.push((s.msg.to().uri.to_string(), sim.elapsed() - t0));
        // Accepted at once, so that each can be unsubscribed in its dialog later.
        sim.send(addr(SCSCF), sub_ok(&s.msg));
    }
    assert_eq!(at.len(), 25);
    for (k, (uri, t)) in at.iter().enumerate() {
        assert_eq!(
            uri,
            &format!("sip:p{k}@ims.example.net"),
            "in the order they arose"
        );
        assert_eq!(*t, Duration::from_millis(100) * k as u32, "one per 100 ms");
    }
    // Every deregistration at one instant: the unsubscribes are spaced the same way.
    for i in 0..25 {
        let de = register(&format!("p{i}"), CROWD, 2).replace("expires=600", "expires=0");
        sim.send(addr(CROWD), de.into_bytes());
        let fwd = sim.drain(addr(CORE)).remove(0).msg;
        sim.send(
            addr(CORE),
            writer::response(&fwd, 200, "OK", Some("c"), &[]),
        );
    }
    let t1 = sim.elapsed();
    let mut unsubs = Vec::new();
    while let Some(s) = sim.recv_where(addr(SCSCF), Duration::from_secs(5), |m| {
        m.is_request() && m.method_str() == "SUBSCRIBE"
    }) {
        assert_eq!(s.msg.expires().unwrap(), Some(0), "an unsubscribe");
        unsubs.push(sim.elapsed() - t1);
        sim.send(
            addr(SCSCF),
            writer::response(&s.msg, 200, "OK", None, &[("Expires", "0")]),
        );
    }
    assert_eq!(unsubs.len(), 25);
    for w in unsubs.windows(2) {
        assert!(w[1] - w[0] >= Duration::from_millis(100), "{unsubs:?}");
    }
}

/// The queue is bounded (one minute at the rate, at least 10,000): beyond it an initial
/// SUBSCRIBE fails as an unanswered one would, and its registration stays without subscription.
#[test]
fn initial_subscribes_beyond_the_bounded_queue_fail_and_leave_the_registration_blind() {
    let mut sim = paced_sim(1);
    let n = 10_050;
    for i in 0..n {
        register_now(&mut sim, &format!("q{i}"));
    }
    // One went at once, 10,000 wait, the rest failed.
    assert_eq!(sim.core.engine().len(), 10_001);
    assert_eq!(sim.core.blind_registrations(), n - 10_001);
    assert_eq!(sim.core.registrar().len(), n);
}
