//! Issues 3 and 4 in virtual time on the sans-IO core, against a scripted S-CSCF
//! (`common::virt`): the exact SUBSCRIBE, in-dialog refresh, NOTIFY before 2xx, removal on 403 /
//! timeout / terminated, unsubscribe on deregistration, disabled and visited profiles, network
//! deregistration and malformed bodies. (The UDP registration and subscription over real sockets
//! is `gateway_register.rs`'s smoke test.)

mod common;

use std::time::Duration;

use common::virt::{addr, Virt, T1};
use common::{profile, reginfo, visited, DOMAIN, WAIT};
use regevent_gw::sip::{writer, HeaderName};

#[test]
fn initial_subscribe_has_exactly_the_specified_headers() {
    let mut h = Virt::start_with(profile(true), |s| {
        s.p_asserted_identity = Some("sip:pcscf@ims.example.net".into())
    });
    h.register(
        "alice",
        1,
        600,
        &["sip:alice-2@ims.example.net", "sip:alice-3@ims.example.net"],
    );
    let sub = h.next_subscribe().expect("SUBSCRIBE");
    let pui = format!("sip:alice@{DOMAIN}");
    assert_eq!(sub.request_uri(), Some(pui.as_str()));
    assert_eq!(sub.to().uri, pui);
    assert!(sub.to().tag().is_none());
    assert_eq!(sub.from().uri, format!("sip:127.0.0.1:{}", h.port));
    assert!(sub.from().tag().is_some_and(|t| !t.is_empty()));
    assert_eq!(sub.header(HeaderName::Event), Some("reg"));
    assert_eq!(
        sub.header(HeaderName::Accept),
        Some("application/reginfo+xml")
    );
    assert_eq!(
        sub.expires().unwrap(),
        Some(660),
        "registration expiry + 60 s"
    );
    assert_eq!(sub.max_forwards().unwrap(), Some(70));
    assert_eq!(sub.cseq().seq, 1);
    let route = sub.header_values(HeaderName::Route);
    assert_eq!(
        route,
        vec![format!("<sip:scscf@{};lr>", h.scscf)],
        "Route = Service-Route"
    );
    assert!(sub
        .header(HeaderName::Contact)
        .unwrap()
        .contains(&format!("127.0.0.1:{}", h.port)));
    assert_eq!(
        sub.header(HeaderName::PAssertedIdentity),
        Some("<sip:pcscf@ims.example.net>")
    );
    assert!(!sub.call_id().is_empty());
    // One subscription for the implicit set of three.
    h.only_retransmissions_of(&sub, Duration::from_millis(300));
    assert_eq!(h.subscriptions(), 1);
}

#[test]
fn refresh_goes_in_dialog_with_cseq_plus_one_and_the_route_set() {
    let mut h = Virt::start(profile(true));
    h.register("bob", 1, 600, &[]);
    let sub = h.next_subscribe().unwrap();
    // Grant 2 s: refresh at 1 s.
    let ok = h.subscribe_ok(&sub, 2);
    h.sim.send(h.scscf, ok);
    let refresh = h.next_subscribe().expect("refresh");
    assert_eq!(refresh.call_id(), sub.call_id());
    assert_eq!(refresh.from().tag(), sub.from().tag());
    assert_eq!(refresh.to().tag(), Some("scscf-tag"));
    assert_eq!(refresh.cseq().seq, 2);
    assert_eq!(
        refresh.expires().unwrap(),
        Some(660),
        "same duration as the initial SUBSCRIBE"
    );
    assert_eq!(
        refresh.request_uri(),
        Some(format!("sip:notifier@{}", h.scscf).as_str())
    );
    // Route set from the 2xx's Record-Route, reversed (RFC 3261 §12.1.2).
    let route = refresh.header_values(HeaderName::Route);
    assert_eq!(
        route,
        vec![
            format!("<sip:rr1@{};lr>", h.scscf),
            format!("<sip:rr2@{};lr>", h.scscf)
        ]
    );
}

#[test]
fn notify_before_the_2xx_establishes_the_dialog() {
    let mut h = Virt::start(profile(true));
    h.register("carol", 1, 600, &[]);
    let sub = h.next_subscribe().unwrap();
    let pui = format!("sip:carol@{DOMAIN}");
    let body = reginfo(0, &pui, "active", "sip:carol@127.0.0.1");
    let notify = h.notify(
        &sub,
        1,
        "active;expires=2",
        "application/reginfo+xml",
        &body,
    );
    let resp = h.send_notify(&notify);
    assert_eq!(resp.status(), Some(200));
    let ok = h.subscribe_ok(&sub, 2);
    h.sim.send(h.scscf, ok);
    let refresh = h.next_subscribe().expect("refresh");
    assert_eq!(refresh.to().tag(), Some("scscf-tag"));
    assert_eq!(
        refresh.request_uri(),
        Some(format!("sip:notifier@{}", h.scscf).as_str())
    );
}

#[test]
fn error_response_removes_the_subscription_and_it_is_never_sent_again() {
    let mut h = Virt::start(profile(true));
    h.register("dave", 1, 600, &[]);
    let sub = h.next_subscribe().unwrap();
    h.sim.send(
        h.scscf,
        writer::response(&sub, 403, "Forbidden", Some("x"), &[]),
    );
    assert!(
        h.recv(h.scscf, Duration::from_millis(1500)).is_none(),
        "no retry, no unsubscribe"
    );
    assert_eq!(h.subscriptions(), 0);
    // A re-registration does not subscribe again (vendor behaviour, resubscribe off).
    h.register("dave", 2, 600, &[]);
    assert!(h.recv(h.scscf, Duration::from_millis(500)).is_none());
    let blind = h.sim.core.blind_registrations();
    assert_eq!(blind, 1);
}

#[test]
fn resubscribe_on_reregistration_subscribes_again_after_a_removal() {
    let mut p = profile(true);
    p.resubscribe_on_reregistration = true;
    let mut h = Virt::start(p);
    h.register("erin", 1, 600, &[]);
    let sub = h.next_subscribe().unwrap();
    h.sim
        .send(h.scscf, writer::response(&sub, 500, "Oops", Some("x"), &[]));
    h.sim.advance(Duration::from_millis(200));
    assert_eq!(h.subscriptions(), 0);
    h.register("erin", 2, 600, &[]);
    let again = h.next_subscribe().expect("subscribed again");
    assert_ne!(again.call_id(), sub.call_id());
}

/// T1 = 20 ms: Timer F fires 64×T1 = 1.28 s after the SUBSCRIBE was first sent, and the
/// subscription is there until then.
#[test]
fn no_answer_removes_the_subscription_after_timer_f() {
    let mut h = Virt::start(profile(true));
    h.register("fay", 1, 600, &[]);
    let first = h.next_subscribe().unwrap();
    let sent = h.sim.elapsed();
    // UDP retransmissions with the same branch, then silence.
    let re = h.next_subscribe().expect("retransmission");
    assert_eq!(re.top_via().branch(), first.top_via().branch());
    let timer_f = sent + 64 * T1;
    h.sim
        .advance(timer_f - Duration::from_millis(1) - h.sim.elapsed());
    assert_eq!(h.subscriptions(), 1, "still there just before Timer F");
    h.sim.advance(Duration::from_millis(1));
    assert_eq!(h.sim.elapsed(), timer_f);
    assert_eq!(h.subscriptions(), 0);
}

#[test]
fn notify_terminated_removes_the_subscription_without_unsubscribe() {
    let mut h = Virt::start(profile(true));
    let sub = h.subscribed("gus", &[], 600);
    let notify = h.notify(
        &sub,
        1,
        "terminated;reason=deactivated",
        "application/reginfo+xml",
        "",
    );
    let resp = h.send_notify(&notify);
    assert_eq!(resp.status(), Some(200));
    assert_eq!(h.subscriptions(), 0);
    assert!(h.next_subscribe().is_none(), "no unsubscribe");
}

#[test]
fn user_deregistration_sends_the_expires_0_subscribe_in_dialog() {
    let mut h = Virt::start(profile(true));
    let sub = h.subscribed("hal", &[], 600);
    h.sim.advance(Duration::from_millis(100));
    h.register("hal", 2, 0, &[]);
    let unsub = h.next_subscribe().expect("unsubscribe");
    assert_eq!(unsub.expires().unwrap(), Some(0));
    assert_eq!(unsub.call_id(), sub.call_id());
    assert_eq!(unsub.to().tag(), Some("scscf-tag"));
    assert_eq!(unsub.cseq().seq, 2);
    assert_eq!(h.subscriptions(), 0, "left the list");
    // The final NOTIFY is answered 200, not 481.
    let notify = h.notify(
        &unsub,
        2,
        "terminated;reason=timeout",
        "application/reginfo+xml",
        "",
    );
    let resp = h.send_notify(&notify);
    assert_eq!(resp.status(), Some(200));
}

#[test]
fn disabled_profile_never_subscribes_and_visited_uses_the_profile_route() {
    let mut h = Virt::start(profile(false));
    h.register("ivy", 1, 600, &[]);
    assert!(h.recv(h.scscf, Duration::from_millis(400)).is_none());

    let policy = addr("127.0.0.5:5060");
    let route = format!("sip:policy@{policy};lr");
    let mut h = Virt::start(visited(&route));
    h.register("jim", 1, 600, &[]);
    let sub = h
        .recv(policy, WAIT)
        .expect("SUBSCRIBE via the policy route");
    assert_eq!(
        sub.header_values(HeaderName::Route),
        vec![format!("<{route}>")]
    );
}

#[test]
fn network_deregistration_unsubscribes_and_removes_the_registration() {
    let mut h = Virt::start(profile(true));
    let sub = h.subscribed("kim", &["sip:kim-2@ims.example.net"], 600);
    let pui = format!("sip:kim@{DOMAIN}");
    let body = reginfo(0, &pui, "active", "sip:kim@127.0.0.1");
    let notify = h.notify(
        &sub,
        1,
        "active;expires=600",
        "application/reginfo+xml",
        &body,
    );
    assert_eq!(h.send_notify(&notify).status(), Some(200));
    assert!(h.registered(&pui).is_some());
    let body = reginfo(1, &pui, "terminated", "sip:kim@127.0.0.1");
    let notify = h.notify(
        &sub,
        2,
        "active;expires=600",
        "application/reginfo+xml",
        &body,
    );
    assert_eq!(h.send_notify(&notify).status(), Some(200));
    let unsub = h.next_subscribe().expect("unsubscribe");
    assert_eq!(unsub.expires().unwrap(), Some(0));
    assert!(h.registered(&pui).is_none(), "registration removed");
}

#[test]
fn malformed_reginfo_gets_400_and_changes_nothing() {
    let mut h = Virt::start(profile(true));
    let sub = h.subscribed("lea", &["sip:lea-2@ims.example.net"], 600);
    let pui = format!("sip:lea@{DOMAIN}");
    let before = h.registered(&pui).unwrap();
    let notify = h.notify(
        &sub,
        1,
        "active;expires=600",
        "application/reginfo+xml",
        "<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"x\"",
    );
    let resp = h.send_notify(&notify);
    assert_eq!(resp.status(), Some(400));
    let reason = String::from_utf8_lossy(resp.raw())
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(reason.contains("reginfo"), "{reason}");
    let after = h.registered(&pui).unwrap();
    assert_eq!(before.bindings, after.bindings);
    assert_eq!(before.associated, after.associated);
    assert_eq!(h.subscriptions(), 1);
    // Wrong content type: 415 with Accept.
    let notify = h.notify(&sub, 2, "active;expires=600", "text/plain", "hello");
    let resp = h.send_notify(&notify);
    assert_eq!(resp.status(), Some(415));
    assert_eq!(
        resp.header(HeaderName::Accept),
        Some("application/reginfo+xml")
    );
    // Unknown dialog: 481.
    let other = String::from_utf8(h.notify(&sub, 3, "active", "application/reginfo+xml", ""))
        .unwrap()
        .replace(sub.call_id(), "nope");
    assert_eq!(h.send_notify(other.as_bytes()).status(), Some(481));
}
