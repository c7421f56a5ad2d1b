//! Issues 3 and 4 over real loopback sockets against a scripted S-CSCF: the exact SUBSCRIBE,
//! in-dialog refresh, NOTIFY before 2xx, removal on 403 / timeout / terminated, unsubscribe on
//! deregistration, disabled and visited profiles, network deregistration and malformed bodies.

mod common;

use std::time::Duration;

use common::{profile, reginfo, visited, Harness, DOMAIN, WAIT};
use regevent_gw::sip::{writer, HeaderName};

#[tokio::test]
async fn initial_subscribe_has_exactly_the_specified_headers() {
    let h = Harness::start_with(profile(true), |c| {
        c.sip.p_asserted_identity = Some("sip:pcscf@ims.example.net".into())
    })
    .await;
    h.register(
        "alice",
        1,
        600,
        &["sip:alice-2@ims.example.net", "sip:alice-3@ims.example.net"],
    )
    .await;
    let (sub, _) = h.next_subscribe().await.expect("SUBSCRIBE");
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
        vec![format!("<sip:scscf@{};lr>", h.scscf.addr)],
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
    h.only_retransmissions_of(&sub, Duration::from_millis(300))
        .await;
    assert_eq!(h.subscriptions().await, 1);
    h.gw.stop().await;
}

#[tokio::test]
async fn refresh_goes_in_dialog_with_cseq_plus_one_and_the_route_set() {
    let h = Harness::start(profile(true)).await;
    h.register("bob", 1, 600, &[]).await;
    let (sub, from) = h.next_subscribe().await.unwrap();
    // Grant 2 s: refresh at 1 s.
    h.scscf.send(from, &h.subscribe_ok(&sub, 2)).await.unwrap();
    let (refresh, _) = h.next_subscribe().await.expect("refresh");
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
        Some(format!("sip:notifier@{}", h.scscf.addr).as_str())
    );
    // Route set from the 2xx's Record-Route, reversed (RFC 3261 §12.1.2).
    let route = refresh.header_values(HeaderName::Route);
    assert_eq!(
        route,
        vec![
            format!("<sip:rr1@{};lr>", h.scscf.addr),
            format!("<sip:rr2@{};lr>", h.scscf.addr)
        ]
    );
    h.gw.stop().await;
}

#[tokio::test]
async fn notify_before_the_2xx_establishes_the_dialog() {
    let h = Harness::start(profile(true)).await;
    h.register("carol", 1, 600, &[]).await;
    let (sub, from) = h.next_subscribe().await.unwrap();
    let pui = format!("sip:carol@{DOMAIN}");
    let body = reginfo(0, &pui, "active", "sip:carol@127.0.0.1");
    let resp = h
        .send_notify(&h.notify(
            &sub,
            1,
            "active;expires=2",
            "application/reginfo+xml",
            &body,
        ))
        .await;
    assert_eq!(resp.status(), Some(200));
    h.scscf.send(from, &h.subscribe_ok(&sub, 2)).await.unwrap();
    let (refresh, _) = h.next_subscribe().await.expect("refresh");
    assert_eq!(refresh.to().tag(), Some("scscf-tag"));
    assert_eq!(
        refresh.request_uri(),
        Some(format!("sip:notifier@{}", h.scscf.addr).as_str())
    );
    h.gw.stop().await;
}

#[tokio::test]
async fn error_response_removes_the_subscription_and_it_is_never_sent_again() {
    let h = Harness::start(profile(true)).await;
    h.register("dave", 1, 600, &[]).await;
    let (sub, from) = h.next_subscribe().await.unwrap();
    h.scscf
        .send(
            from,
            &writer::response(&sub, 403, "Forbidden", Some("x"), &[]),
        )
        .await
        .unwrap();
    assert!(
        h.scscf.recv(Duration::from_millis(1500)).await.is_none(),
        "no retry, no unsubscribe"
    );
    assert_eq!(h.subscriptions().await, 0);
    // A re-registration does not subscribe again (vendor behaviour, resubscribe off).
    h.register("dave", 2, 600, &[]).await;
    assert!(h.scscf.recv(Duration::from_millis(500)).await.is_none());
    let blind = h.gw.inspect(|g| g.blind_registrations()).await.unwrap();
    assert_eq!(blind, 1);
    h.gw.stop().await;
}

#[tokio::test]
async fn resubscribe_on_reregistration_subscribes_again_after_a_removal() {
    let mut p = profile(true);
    p.resubscribe_on_reregistration = true;
    let h = Harness::start(p).await;
    h.register("erin", 1, 600, &[]).await;
    let (sub, from) = h.next_subscribe().await.unwrap();
    h.scscf
        .send(from, &writer::response(&sub, 500, "Oops", Some("x"), &[]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.subscriptions().await, 0);
    h.register("erin", 2, 600, &[]).await;
    let (again, _) = h.next_subscribe().await.expect("subscribed again");
    assert_ne!(again.call_id(), sub.call_id());
    h.gw.stop().await;
}

#[tokio::test]
async fn no_answer_removes_the_subscription_after_timer_f() {
    let h = Harness::start(profile(true)).await; // T1 = 20 ms → Timer F = 1.28 s
    h.register("fay", 1, 600, &[]).await;
    let (first, _) = h.next_subscribe().await.unwrap();
    // UDP retransmissions with the same branch, then silence.
    let (re, _) = h.next_subscribe().await.expect("retransmission");
    assert_eq!(re.top_via().branch(), first.top_via().branch());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(h.subscriptions().await, 0);
    h.gw.stop().await;
}

#[tokio::test]
async fn notify_terminated_removes_the_subscription_without_unsubscribe() {
    let h = Harness::start(profile(true)).await;
    let sub = h.subscribed("gus", &[], 600).await;
    let resp = h
        .send_notify(&h.notify(
            &sub,
            1,
            "terminated;reason=deactivated",
            "application/reginfo+xml",
            "",
        ))
        .await;
    assert_eq!(resp.status(), Some(200));
    assert_eq!(h.subscriptions().await, 0);
    assert!(h.next_subscribe().await.is_none(), "no unsubscribe");
    h.gw.stop().await;
}

#[tokio::test]
async fn user_deregistration_sends_the_expires_0_subscribe_in_dialog() {
    let h = Harness::start(profile(true)).await;
    let sub = h.subscribed("hal", &[], 600).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.register("hal", 2, 0, &[]).await;
    let (unsub, _) = h.next_subscribe().await.expect("unsubscribe");
    assert_eq!(unsub.expires().unwrap(), Some(0));
    assert_eq!(unsub.call_id(), sub.call_id());
    assert_eq!(unsub.to().tag(), Some("scscf-tag"));
    assert_eq!(unsub.cseq().seq, 2);
    assert_eq!(h.subscriptions().await, 0, "left the list");
    // The final NOTIFY is answered 200, not 481.
    let resp = h
        .send_notify(&h.notify(
            &unsub,
            2,
            "terminated;reason=timeout",
            "application/reginfo+xml",
            "",
        ))
        .await;
    assert_eq!(resp.status(), Some(200));
    h.gw.stop().await;
}

#[tokio::test]
async fn disabled_profile_never_subscribes_and_visited_uses_the_profile_route() {
    let h = Harness::start(profile(false)).await;
    h.register("ivy", 1, 600, &[]).await;
    assert!(h.scscf.recv(Duration::from_millis(400)).await.is_none());
    h.gw.stop().await;

    let scscf = regevent_lab::peer::UdpPeer::bind().await.unwrap();
    let route = format!("sip:policy@{};lr", scscf.addr);
    let h = Harness::start(visited(&route)).await;
    h.register("jim", 1, 600, &[]).await;
    let (sub, _) = scscf
        .recv(WAIT)
        .await
        .expect("SUBSCRIBE via the policy route");
    assert_eq!(
        sub.header_values(HeaderName::Route),
        vec![format!("<{route}>")]
    );
    h.gw.stop().await;
}

#[tokio::test]
async fn network_deregistration_unsubscribes_and_removes_the_registration() {
    let h = Harness::start(profile(true)).await;
    let sub = h
        .subscribed("kim", &["sip:kim-2@ims.example.net"], 600)
        .await;
    let pui = format!("sip:kim@{DOMAIN}");
    let body = reginfo(0, &pui, "active", "sip:kim@127.0.0.1");
    assert_eq!(
        h.send_notify(&h.notify(
            &sub,
            1,
            "active;expires=600",
            "application/reginfo+xml",
            &body
        ))
        .await
        .status(),
        Some(200)
    );
    assert!(h.registered(&pui).await.is_some());
    let body = reginfo(1, &pui, "terminated", "sip:kim@127.0.0.1");
    assert_eq!(
        h.send_notify(&h.notify(
            &sub,
            2,
            "active;expires=600",
            "application/reginfo+xml",
            &body
        ))
        .await
        .status(),
        Some(200)
    );
    let (unsub, _) = h.next_subscribe().await.expect("unsubscribe");
    assert_eq!(unsub.expires().unwrap(), Some(0));
    assert!(h.registered(&pui).await.is_none(), "registration removed");
    h.gw.stop().await;
}

#[tokio::test]
async fn malformed_reginfo_gets_400_and_changes_nothing() {
    let h = Harness::start(profile(true)).await;
    let sub = h
        .subscribed("lea", &["sip:lea-2@ims.example.net"], 600)
        .await;
    let pui = format!("sip:lea@{DOMAIN}");
    let before = h.registered(&pui).await.unwrap();
    let resp = h
        .send_notify(&h.notify(
            &sub,
            1,
            "active;expires=600",
            "application/reginfo+xml",
            "<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"x\"",
        ))
        .await;
    assert_eq!(resp.status(), Some(400));
    let reason = String::from_utf8_lossy(resp.raw())
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(reason.contains("reginfo"), "{reason}");
    let after = h.registered(&pui).await.unwrap();
    assert_eq!(before.bindings, after.bindings);
    assert_eq!(before.associated, after.associated);
    assert_eq!(h.subscriptions().await, 1);
    // Wrong content type: 415 with Accept.
    let resp = h
        .send_notify(&h.notify(&sub, 2, "active;expires=600", "text/plain", "hello"))
        .await;
    assert_eq!(resp.status(), Some(415));
    assert_eq!(
        resp.header(HeaderName::Accept),
        Some("application/reginfo+xml")
    );
    // Unknown dialog: 481.
    let other = String::from_utf8(h.notify(&sub, 3, "active", "application/reginfo+xml", ""))
        .unwrap()
        .replace(sub.call_id(), "nope");
    assert_eq!(h.send_notify(other.as_bytes()).await.status(), Some(481));
    h.gw.stop().await;
}
