//! Conformance over real sockets, as a peer S-CSCF sees the gateway:
//! - a NOTIFY with a large implicit set (500 registrations, ~210 KB of reginfo) over TCP is
//!   answered 200 and applied;
//! - a message over the TCP limit gets `513 Message Too Large` on its connection, which stays
//!   usable (the next NOTIFY on it is answered);
//! - contradictory reginfo over UDP (the same AOR twice; a version beyond 32 bits) gets 400 with
//!   a reason and changes nothing.

mod common;

use common::{profile, reginfo, Harness, DOMAIN};
use regevent_gw::sip::Message;
use regevent_lab::peer::TcpPeer;

/// A full-state reginfo for `pui` with `n - 1` more registrations of the implicit set, each
/// with a contact (the shape of a large enterprise or multi-line user).
fn big_reginfo(version: u64, pui: &str, n: usize) -> String {
    let contact = |i: usize| {
        format!(
            "<contact id=\"c{i}\" state=\"active\" event=\"registered\" expires=\"600\" q=\"0.5\" \
             callid=\"a84b4c76e66710{i}@pc33.example.com\" cseq=\"{i}\">\
             <uri>sip:u{i}@[2001:db8::{i:x}]:5060;transport=tcp</uri>\
             <unknown-param name=\"+sip.instance\">\"&lt;urn:gsma:imei:35209900176140{i:03}&gt;\"</unknown-param>\
             <unknown-param name=\"reg-id\">1</unknown-param></contact>"
        )
    };
    let mut s = format!(
        "<?xml version=\"1.0\"?><reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"{version}\" state=\"full\">\
         <registration aor=\"{pui}\" id=\"r0\" state=\"active\">{}</registration>",
        contact(0)
    );
    for i in 1..n {
        s.push_str(&format!(
            "<registration aor=\"sip:+1555{i:07}@{DOMAIN}\" id=\"r{i}\" state=\"active\">{}</registration>",
            contact(i)
        ));
    }
    s.push_str("</reginfo>");
    s
}

async fn notify_over_tcp(conn: &mut TcpPeer, bytes: &[u8]) -> Message {
    conn.send(bytes).await.unwrap();
    loop {
        let m = conn
            .recv(common::WAIT)
            .await
            .expect("an answer on the connection");
        if !m.is_request() {
            return m;
        }
    }
}

#[tokio::test]
async fn a_large_notify_over_tcp_is_answered_and_an_oversize_one_gets_513() {
    let h = Harness::start(profile(true)).await;
    let pui = format!("sip:big@{DOMAIN}");
    let sub = h.subscribed("big", &[], 600).await;
    let mut conn = TcpPeer::connect(h.gw_tcp).await.unwrap();

    let body = big_reginfo(0, &pui, 500);
    assert!(body.len() > 200_000, "{} bytes", body.len());
    let n = h.reginfo_notify(&sub, 1, &body);
    let resp = notify_over_tcp(&mut conn, &n).await;
    assert_eq!(resp.status(), Some(200), "{:?}", resp.reason());
    let reg = h.registered(&pui).await.expect("registered");
    assert_eq!(
        reg.implicit_puis.len(),
        500,
        "the implicit set learned from the NOTIFY"
    );

    // Over the TCP limit (1 MiB by default): 513 from its head, and the stream goes on.
    let huge = "x".repeat(1_100_000);
    let n = h.reginfo_notify(&sub, 2, &huge);
    let resp = notify_over_tcp(&mut conn, &n).await;
    assert_eq!(resp.status(), Some(513));
    assert_eq!(
        resp.call_id(),
        sub.call_id(),
        "the answer is to that NOTIFY"
    );
    let body = big_reginfo(1, &pui, 2);
    let n = h.reginfo_notify(&sub, 3, &body);
    let resp = notify_over_tcp(&mut conn, &n).await;
    assert_eq!(resp.status(), Some(200), "the connection is still usable");
    let reg = h.registered(&pui).await.expect("registered");
    assert_eq!(reg.implicit_puis.len(), 2);
    h.gw.stop().await;
}

#[tokio::test]
async fn contradictory_reginfo_over_udp_gets_400_and_changes_nothing() {
    let h = Harness::start(profile(true)).await;
    let pui = format!("sip:twice@{DOMAIN}");
    let sub = h
        .subscribed("twice", &["sip:twice-2@ims.example.net"], 600)
        .await;
    let good = reginfo(0, &pui, "active", "sip:twice@127.0.0.1");
    let n = h.reginfo_notify(&sub, 1, &good);
    assert_eq!(h.send_notify(&n).await.status(), Some(200));
    let before = h.registered(&pui).await.expect("registered");

    let same_aor_twice = format!(
        "<?xml version=\"1.0\"?><reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"1\" state=\"full\">\
         <registration aor=\"{pui}\" id=\"a1\" state=\"active\"><contact id=\"c1\" state=\"active\" event=\"registered\">\
         <uri>sip:twice@127.0.0.1</uri></contact></registration>\
         <registration aor=\"{pui}\" id=\"a2\" state=\"terminated\"><contact id=\"c2\" state=\"terminated\" event=\"deactivated\">\
         <uri>sip:twice@127.0.0.1</uri></contact></registration></reginfo>"
    );
    let n = h.reginfo_notify(&sub, 2, &same_aor_twice);
    let resp = h.send_notify(&n).await;
    assert_eq!(resp.status(), Some(400));
    assert!(
        resp.reason().unwrap_or("").contains("aor twice"),
        "{:?}",
        resp.reason()
    );

    let version_over_32_bits = reginfo(4_294_967_296, &pui, "terminated", "sip:twice@127.0.0.1");
    let n = h.reginfo_notify(&sub, 3, &version_over_32_bits);
    let resp = h.send_notify(&n).await;
    assert_eq!(resp.status(), Some(400));
    assert!(
        resp.reason().unwrap_or("").contains("version"),
        "{:?}",
        resp.reason()
    );

    // Nothing changed: the registration as it was, the subscription alive, and the next good
    // NOTIFY (version 1: the rejected ones did not count) applies.
    assert_eq!(h.registered(&pui).await, Some(before));
    assert_eq!(h.subscriptions().await, 1);
    let next = reginfo(1, &pui, "active", "sip:twice@127.0.0.1");
    let n = h.reginfo_notify(&sub, 4, &next);
    assert_eq!(h.send_notify(&n).await.status(), Some(200));
    h.gw.stop().await;
}
