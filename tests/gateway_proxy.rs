//! Issue 6: proxying the traffic of registered UEs (originating with the Service-Route
//! pre-loaded, terminating through the Path, in-dialog through our Record-Route), UE reg-event
//! subscriptions beside our own, the IBCF mode with Contact translation, and the proxy's
//! refusals (403, 483, 404/480). The routing rules run in virtual time on the sans-IO core
//! (`common::virt`); over real loopback sockets only a request through the Path to the UE's TCP
//! connection.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::virt::{addr, Virt};
use common::{next_of, profile, reginfo, Harness, DOMAIN, WAIT};
use regevent_gw::config::{Profile, Role};
use regevent_gw::sip::{writer, HeaderName, Message};
use regevent_lab::peer::TcpPeer;

/// A request from `from` (Via, Contact) with optional Route values and body.
#[allow(clippy::too_many_arguments)]
fn request(
    method: &str,
    ruri: &str,
    from: SocketAddr,
    transport: &str,
    call_id: &str,
    cseq: u32,
    from_hdr: &str,
    to_hdr: &str,
    routes: &[&str],
    extra: &str,
    body: &str,
) -> Vec<u8> {
    let mut s = format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/{transport} {from};branch=z9hG4bK{call_id}{cseq}{method};rport\r\n\
         Max-Forwards: 70\r\nFrom: {from_hdr}\r\nTo: {to_hdr}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
    );
    for r in routes {
        s.push_str(&format!("Route: {r}\r\n"));
    }
    s.push_str(extra);
    s.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.into_bytes()
}

fn rr_of(m: &Message) -> String {
    m.header_values(HeaderName::RecordRoute).join(", ")
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

#[test]
fn invite_gets_service_route_and_record_route_and_the_bye_follows_the_dialog() {
    let mut h = Virt::start(profile(false));
    h.register("alice", 1, 600, &[]);
    let contact = format!("sip:alice@{};transport=udp", h.ue);
    let alice = format!("<sip:alice@{DOMAIN}>;tag=a1");
    let inv = request(
        "INVITE",
        &format!("sip:bob@{DOMAIN}"),
        h.ue,
        "UDP",
        "call1",
        1,
        &alice,
        &format!("<sip:bob@{DOMAIN}>"),
        &[],
        &format!("Contact: <{contact}>\r\nContent-Type: application/sdp\r\nX-Odd:  spaced \r\n"),
        SDP,
    );
    h.sim.send(h.ue, inv);
    let trying = h.next_of(h.ue, "INVITE", true).expect("100 Trying");
    assert_eq!(trying.status(), Some(100));

    let fwd = h
        .next_of(h.scscf, "INVITE", false)
        .expect("INVITE at the S-CSCF");
    assert_eq!(
        fwd.header_values(HeaderName::Route),
        vec![format!("<sip:scscf@{};lr>", h.scscf)],
        "Route = Service-Route"
    );
    let rr = rr_of(&fwd);
    assert!(
        rr.contains(&format!("@127.0.0.1:{};lr;rr=mo>", h.port)),
        "{rr}"
    );
    assert_eq!(fwd.max_forwards().unwrap(), Some(69));
    let vias = fwd.vias().unwrap();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[0].port, Some(h.port));
    assert_eq!(
        vias[1].rport(),
        Some(Some(h.ue.port())),
        "the UE's Via gets rport"
    );
    assert_eq!(fwd.body(), SDP.as_bytes());
    assert!(std::str::from_utf8(fwd.raw())
        .unwrap()
        .contains("X-Odd:  spaced \r\n"));
    assert_eq!(
        fwd.request_uri(),
        Some(format!("sip:bob@{DOMAIN}").as_str())
    );

    // 180 and 200 go back along the Via.
    let bob_contact = format!("<sip:bob@{}>", h.scscf);
    let ringing = writer::response(
        &fwd,
        180,
        "Ringing",
        Some("b1"),
        &[("Record-Route", &rr), ("Contact", &bob_contact)],
    );
    h.sim.send(h.scscf, ringing);
    let ok = writer::response(
        &fwd,
        200,
        "OK",
        Some("b1"),
        &[("Record-Route", &rr), ("Contact", &bob_contact)],
    );
    h.sim.send(h.scscf, ok);
    let r180 = h.next_of(h.ue, "INVITE", true).unwrap();
    assert_eq!(r180.status(), Some(180));
    let r200 = h.next_of(h.ue, "INVITE", true).unwrap();
    assert_eq!(r200.status(), Some(200));
    assert_eq!(r200.vias().unwrap().len(), 1, "our Via removed");

    // The UE's ACK (in-dialog, through our Record-Route) reaches the S-CSCF without our Route.
    let bob = format!("<sip:bob@{DOMAIN}>;tag=b1");
    let ack = request(
        "ACK",
        &format!("sip:bob@{}", h.scscf),
        h.ue,
        "UDP",
        "call1",
        1,
        &alice,
        &bob,
        &[&rr],
        "",
        "",
    );
    h.sim.send(h.ue, ack);
    let ack_fwd = h.next_of(h.scscf, "ACK", false).expect("ACK forwarded");
    assert!(
        ack_fwd.header(HeaderName::Route).is_none(),
        "our Route entry popped"
    );
    assert_eq!(
        ack_fwd.request_uri(),
        Some(format!("sip:bob@{}", h.scscf).as_str())
    );

    // The BYE from the core side follows our Record-Route to the UE.
    let bye = request(
        "BYE",
        &contact,
        h.scscf,
        "UDP",
        "call1",
        2,
        &bob,
        &alice,
        &[&rr],
        "",
        "",
    );
    h.sim.send(h.scscf, bye);
    let bye_fwd = h.next_of(h.ue, "BYE", false).expect("BYE at the UE");
    assert_eq!(
        bye_fwd.request_uri(),
        Some(contact.as_str()),
        "Request-URI kept"
    );
    assert!(bye_fwd.header(HeaderName::Route).is_none());
    assert_eq!(bye_fwd.max_forwards().unwrap(), Some(69));
    assert_eq!(bye_fwd.vias().unwrap()[0].port, Some(h.port));
    h.sim
        .send(h.ue, writer::response(&bye_fwd, 200, "OK", None, &[]));
    let bye_ok = h
        .next_of(h.scscf, "BYE", true)
        .expect("200 to BYE at the core");
    assert_eq!(bye_ok.status(), Some(200));
    assert_eq!(bye_ok.vias().unwrap().len(), 1);
}

#[test]
fn invite_is_retransmitted_and_cancel_follows_with_the_same_branch() {
    let mut h = Virt::start(profile(false));
    h.register("carl", 1, 600, &[]);
    let carl = format!("<sip:carl@{DOMAIN}>;tag=c1");
    let bob = format!("<sip:bob@{DOMAIN}>");
    let inv = request(
        "INVITE",
        &format!("sip:bob@{DOMAIN}"),
        h.ue,
        "UDP",
        "call2",
        1,
        &carl,
        &bob,
        &[],
        "",
        "",
    );
    h.sim.send(h.ue, inv.clone());
    let a = h.next_of(h.scscf, "INVITE", false).unwrap();
    let b = h
        .next_of(h.scscf, "INVITE", false)
        .expect("Timer A retransmission");
    assert_eq!(a.raw(), b.raw());
    assert_eq!(h.next_of(h.ue, "INVITE", true).unwrap().status(), Some(100));
    // A retransmission from the UE is absorbed: answered 100 again (we retransmit downstream).
    h.sim.send(h.ue, inv);
    assert_eq!(h.next_of(h.ue, "INVITE", true).unwrap().status(), Some(100));
    h.sim.send(
        h.scscf,
        writer::response(&a, 180, "Ringing", Some("b2"), &[]),
    );
    assert_eq!(h.next_of(h.ue, "INVITE", true).unwrap().status(), Some(180));
    while h.recv(h.scscf, Duration::from_millis(150)).is_some() {}
    let cancel = request(
        "CANCEL",
        &format!("sip:bob@{DOMAIN}"),
        h.ue,
        "UDP",
        "call2",
        1,
        &carl,
        &bob,
        &[],
        "",
        "",
    );
    // Same top Via branch as the INVITE (RFC 3261 §9.1).
    let cancel = String::from_utf8(cancel)
        .unwrap()
        .replace("call21CANCEL", "call21INVITE");
    h.sim.send(h.ue, cancel.into_bytes());
    let c = h
        .next_of(h.scscf, "CANCEL", false)
        .expect("CANCEL forwarded");
    assert_eq!(
        c.top_via().branch(),
        a.top_via().branch(),
        "CANCEL on the INVITE's branch"
    );
    assert_eq!(
        c.header_values(HeaderName::Route),
        a.header_values(HeaderName::Route)
    );
    assert!(c.header(HeaderName::RecordRoute).is_none());
}

#[tokio::test]
async fn core_message_to_the_path_reaches_the_ue_tcp_connection() {
    let h = Harness::start(profile(false)).await;
    let mut ue = TcpPeer::connect(h.gw_tcp).await.unwrap();
    ue.send(&h.register_bytes("erin", ue.local, "TCP", 1, 600, ""))
        .await
        .unwrap();
    let (fwd, gw) = h.core.recv(WAIT).await.expect("REGISTER");
    let path = fwd.header(HeaderName::Path).unwrap().to_string();
    h.core
        .send(gw, &h.register_ok(&fwd, 600, &[]))
        .await
        .unwrap();
    assert_eq!(ue.recv(WAIT).await.unwrap().status(), Some(200));

    let contact = format!("sip:erin@{};transport=tcp", ue.local);
    let from = format!("<sip:bob@{DOMAIN}>;tag=m1");
    let msg = request(
        "MESSAGE",
        &contact,
        h.core.addr,
        "UDP",
        "msg1",
        1,
        &from,
        &format!("<sip:erin@{DOMAIN}>"),
        &[&path],
        "Content-Type: text/plain\r\n",
        "hello over tcp",
    );
    h.core.send(h.gw_udp, &msg).await.unwrap();
    let got = ue.recv(WAIT).await.expect("MESSAGE on the UE's connection");
    assert_eq!(got.method_str(), "MESSAGE");
    assert_eq!(got.request_uri(), Some(contact.as_str()));
    assert_eq!(got.body(), b"hello over tcp");
    assert!(got.header(HeaderName::Route).is_none());
    assert_eq!(got.top_via().transport, "TCP");
    assert!(rr_of(&got).contains(";rr=mt>"));
    ue.send(&writer::response(&got, 200, "OK", Some("e1"), &[]))
        .await
        .unwrap();
    let (ok, _) = next_of(&h.core, "MESSAGE", true)
        .await
        .expect("200 back to the core");
    assert_eq!(ok.status(), Some(200));
    h.gw.stop().await;
}

#[test]
fn refusals_unregistered_403_max_forwards_483_unknown_flow_404_and_480() {
    let mut h = Virt::start(profile(false));
    let from = format!("<sip:zed@{DOMAIN}>;tag=z");
    let to = format!("<sip:bob@{DOMAIN}>");
    let inv = request(
        "INVITE",
        &format!("sip:bob@{DOMAIN}"),
        h.ue,
        "UDP",
        "r1",
        1,
        &from,
        &to,
        &[],
        "",
        "",
    );
    h.sim.send(h.ue, inv);
    let r = h.next_of(h.ue, "INVITE", true).unwrap();
    assert_eq!(r.status(), Some(403));
    assert!(
        r.reason().unwrap().contains("not registered"),
        "{:?}",
        r.reason()
    );

    h.register("zed", 1, 600, &[]);
    let zero = String::from_utf8(request(
        "MESSAGE",
        &format!("sip:bob@{DOMAIN}"),
        h.ue,
        "UDP",
        "r2",
        1,
        &from,
        &to,
        &[],
        "",
        "",
    ))
    .unwrap()
    .replace("Max-Forwards: 70", "Max-Forwards: 0");
    h.sim.send(h.ue, zero.into_bytes());
    assert_eq!(
        h.next_of(h.ue, "MESSAGE", true).unwrap().status(),
        Some(483)
    );

    let bogus = format!("<sip:u0-nothex-1@127.0.0.1:{};lr>", h.port);
    let m = request(
        "MESSAGE",
        "sip:zed@10.9.9.9",
        h.core,
        "UDP",
        "r3",
        1,
        &from,
        &to,
        &[&bogus],
        "",
        "",
    );
    h.sim.send(h.core, m);
    let r = h.next_of(h.core, "MESSAGE", true).unwrap();
    assert_eq!(r.status(), Some(404));
    // A well-formed token for a flow nobody registered from.
    let stale = format!("<sip:u0-7f000001-1@127.0.0.1:{};lr>", h.port);
    let m = request(
        "MESSAGE",
        "sip:zed@10.9.9.9",
        h.core,
        "UDP",
        "r4",
        1,
        &from,
        &to,
        &[&stale],
        "",
        "",
    );
    h.sim.send(h.core, m);
    let r = h.next_of(h.core, "MESSAGE", true).unwrap();
    assert_eq!(r.status(), Some(480));
    assert!(
        h.recv(h.scscf, Duration::from_millis(200)).is_none(),
        "nothing forwarded"
    );
}

#[test]
fn ue_reg_event_subscription_passes_untouched_beside_ours() {
    let mut h = Virt::start(profile(true));
    h.register("uma", 1, 600, &[]);
    let ours = h.next_subscribe().expect("our SUBSCRIBE");
    let ok = h.subscribe_ok(&ours, 600);
    h.sim.send(h.scscf, ok);

    let pui = format!("sip:uma@{DOMAIN}");
    let contact = format!("sip:uma@{};transport=udp", h.ue);
    let uma = format!("<{pui}>;tag=u1");
    let sub = request(
        "SUBSCRIBE",
        &pui,
        h.ue,
        "UDP",
        "uesub",
        1,
        &uma,
        &format!("<{pui}>"),
        &[],
        &format!("Contact: <{contact}>\r\nEvent: reg\r\nExpires: 600\r\nAccept: application/reginfo+xml\r\n"),
        "",
    );
    h.sim.send(h.ue, sub);
    let fwd = loop {
        let m = h.next_subscribe().expect("the UE's SUBSCRIBE");
        if m.call_id() == "uesub" {
            break m;
        }
    };
    assert_eq!(
        fwd.header(HeaderName::Contact),
        Some(format!("<{contact}>").as_str()),
        "Contact untouched"
    );
    assert_eq!(fwd.header_values(HeaderName::Route).len(), 1);
    let rr = rr_of(&fwd);
    h.sim.send(
        h.scscf,
        writer::response(
            &fwd,
            200,
            "OK",
            Some("s9"),
            &[("Record-Route", &rr), ("Expires", "600")],
        ),
    );
    assert_eq!(
        h.next_of(h.ue, "SUBSCRIBE", true).unwrap().status(),
        Some(200)
    );

    let body = reginfo(0, &pui, "active", &contact);
    let notify = request(
        "NOTIFY",
        &contact,
        h.scscf,
        "UDP",
        "uesub",
        1,
        &format!("<{pui}>;tag=s9"),
        &uma,
        &[&rr],
        "Event: reg\r\nSubscription-State: active;expires=600\r\nContent-Type: application/reginfo+xml\r\n",
        &body,
    );
    h.sim.send(h.scscf, notify);
    let got = h
        .next_of(h.ue, "NOTIFY", false)
        .expect("the core's NOTIFY reaches the UE");
    assert_eq!(got.body(), body.as_bytes(), "body bytes identical");
    h.sim
        .send(h.ue, writer::response(&got, 200, "OK", None, &[]));
    assert_eq!(
        h.next_of(h.scscf, "NOTIFY", true).unwrap().status(),
        Some(200)
    );

    // Our own subscription is still the only one, and its NOTIFY is still ours.
    assert_eq!(h.subscriptions(), 1);
    let ours_body = reginfo(0, &pui, "active", &contact);
    let notify = h.notify(
        &ours,
        1,
        "active;expires=600",
        "application/reginfo+xml",
        &ours_body,
    );
    let resp = h.send_notify(&notify);
    assert_eq!(resp.status(), Some(200));
    assert!(
        h.recv(h.ue, Duration::from_millis(200)).is_none(),
        "our NOTIFY is not proxied to the UE"
    );
}

#[test]
fn ibcf_translates_the_contact_of_a_reg_event_dialog_and_never_subscribes() {
    let ibcf = Profile {
        support_reg_event: true,
        role: Role::Ibcf,
        ..Profile::default()
    };
    let mut h = Virt::start(ibcf);
    // A registration through an IBCF trunk generates no subscription.
    h.register("ida", 1, 600, &[]);
    assert!(
        h.recv(h.scscf, Duration::from_millis(300)).is_none(),
        "no SUBSCRIBE"
    );
    assert_eq!(h.subscriptions(), 0);

    let peer = addr("127.0.0.5:5060");
    let pui = format!("sip:ida@{DOMAIN}");
    let peer_contact = format!("sip:pcscf@{peer}");
    let watcher = "<sip:pcscf@visited.example>;tag=w1".to_string();
    let sub = request(
        "SUBSCRIBE",
        &pui,
        peer,
        "UDP",
        "ibsub",
        1,
        &watcher,
        &format!("<{pui}>"),
        &[],
        &format!("Contact: \"v\" <{peer_contact}>;+g.x\r\nEvent: reg\r\nExpires: 600\r\n"),
        "",
    );
    h.sim.send(peer, sub);
    let fwd = h
        .next_of(h.core, "SUBSCRIBE", false)
        .expect("SUBSCRIBE towards the core");
    let ours = format!("@127.0.0.1:{}>", h.port);
    let c = fwd.header(HeaderName::Contact).unwrap().to_string();
    assert!(
        c.starts_with("\"v\" <sip:c") && c.ends_with(&format!("{ours};+g.x")),
        "translated: {c}"
    );
    let translated = regevent_gw::sip::NameAddr::parse(&c)
        .unwrap()
        .uri
        .to_string();
    let rr = rr_of(&fwd);
    assert!(rr.contains(";rr=ib>"), "{rr}");

    // The 2xx's Contact (the notifier) is translated too.
    let notifier = format!("<sip:notifier@{}>", h.core);
    h.sim.send(
        h.core,
        writer::response(
            &fwd,
            200,
            "OK",
            Some("n1"),
            &[
                ("Record-Route", &rr),
                ("Contact", &notifier),
                ("Expires", "600"),
            ],
        ),
    );
    let ok = h.next_of(peer, "SUBSCRIBE", true).expect("200 at the peer");
    let ok_contact = ok.header(HeaderName::Contact).unwrap().to_string();
    assert!(
        ok_contact.starts_with("<sip:c") && ok_contact.ends_with(&ours),
        "{ok_contact}"
    );
    let notifier_token = ok_contact.trim_matches(['<', '>']).to_string();

    // The NOTIFY to the translated Contact reaches the original peer, body untouched.
    let body = reginfo(0, &pui, "active", "sip:ida@10.0.0.1");
    let notify = request(
        "NOTIFY",
        &translated,
        h.core,
        "UDP",
        "ibsub",
        1,
        &format!("<{pui}>;tag=n1"),
        &watcher,
        &[&rr],
        &format!("Contact: {notifier}\r\nEvent: reg\r\nSubscription-State: active;expires=600\r\nContent-Type: application/reginfo+xml\r\n"),
        &body,
    );
    h.sim.send(h.core, notify);
    let n = h
        .next_of(peer, "NOTIFY", false)
        .expect("NOTIFY at the peer");
    assert_eq!(
        n.request_uri(),
        Some(peer_contact.as_str()),
        "Request-URI back to the original Contact"
    );
    assert_eq!(n.body(), body.as_bytes());
    assert_eq!(
        n.header(HeaderName::Contact),
        Some(ok_contact.as_str()),
        "same token as in the 2xx"
    );
    assert!(n.header(HeaderName::Route).is_none());
    h.sim.send(peer, writer::response(&n, 200, "OK", None, &[]));
    assert_eq!(
        h.next_of(h.core, "NOTIFY", true).unwrap().status(),
        Some(200)
    );

    // The peer's refresh to the translated notifier Contact reaches the notifier.
    let refresh = request(
        "SUBSCRIBE",
        &notifier_token,
        peer,
        "UDP",
        "ibsub",
        2,
        &watcher,
        &format!("<{pui}>;tag=n1"),
        &[&rr],
        &format!("Contact: <{peer_contact}>\r\nEvent: reg\r\nExpires: 600\r\n"),
        "",
    );
    h.sim.send(peer, refresh);
    let r = h
        .next_of(h.core, "SUBSCRIBE", false)
        .expect("refresh at the notifier");
    assert_eq!(r.request_uri(), Some(notifier.trim_matches(['<', '>'])));
    assert_eq!(
        r.header(HeaderName::Contact)
            .map(|c| c.trim_matches(['<', '>'])),
        Some(translated.as_str()),
        "same token"
    );
    assert_eq!(h.subscriptions(), 0);
}

/// No silent TLS downgrade (issue 22.6): this gateway has no TLS, so a request whose next hop
/// needs it is answered — `416` for a `sips:` URI, `502` for `transport=tls` — and nothing is
/// sent in the clear.
#[test]
fn a_next_hop_that_needs_tls_is_refused_not_sent_in_the_clear() {
    let mut h = Virt::start(profile(false));
    h.register("alice", 1, 600, &[]);
    let alice = format!("<sip:alice@{DOMAIN}>;tag=a1");
    let bob = format!("<sip:bob@{DOMAIN}>;tag=b1");
    // In a dialog, towards the Request-URI.
    let m = request(
        "MESSAGE",
        &format!("sips:bob@{DOMAIN}"),
        h.ue,
        "UDP",
        "tls1",
        2,
        &alice,
        &bob,
        &[],
        "",
        "",
    );
    h.sim.send(h.ue, m);
    let r = h.next_of(h.ue, "MESSAGE", true).unwrap();
    assert_eq!(r.status(), Some(416));
    assert!(r.reason().unwrap().contains("TLS"), "{:?}", r.reason());
    // Towards a Route with transport=tls.
    let m = request(
        "MESSAGE",
        &format!("sip:bob@{DOMAIN}"),
        h.ue,
        "UDP",
        "tls2",
        3,
        &alice,
        &bob,
        &["<sip:10.9.9.9:5061;transport=tls;lr>"],
        "",
        "",
    );
    h.sim.send(h.ue, m);
    let r = h.next_of(h.ue, "MESSAGE", true).unwrap();
    assert_eq!(r.status(), Some(502));
    assert!(r.reason().unwrap().contains("TLS"), "{:?}", r.reason());
    for peer in [h.scscf, h.core] {
        assert!(
            h.recv(peer, Duration::from_millis(200)).is_none(),
            "nothing forwarded"
        );
    }
    let elsewhere: SocketAddr = "10.9.9.9:5061".parse().unwrap();
    assert!(h.recv(elsewhere, Duration::from_millis(200)).is_none());
}
