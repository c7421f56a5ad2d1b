//! Issue 2: REGISTER forwarding as a P-CSCF, the registration learned from the 2xx,
//! deregistration and expiry, malformed requests. The rules run in virtual time on the sans-IO
//! core (`common::virt`); over real loopback sockets only what needs them: one UDP
//! registration and subscription end to end, TCP (UE connection and core), IPv6 and the
//! oversize datagram the receive slot cuts.

mod common;

use std::time::Duration;

use common::virt::Virt;
use common::{profile, reginfo, Harness, DOMAIN, WAIT};
use regevent_gw::sip::HeaderName;
use regevent_lab::peer::{TcpPeer, UdpPeer};

/// Socket smoke test: one plain UDP registration and its subscription end to end over loopback
/// (UE → gateway → core → gateway → UE, then gateway → S-CSCF, and the S-CSCF's 200 and NOTIFY
/// back). It awaits only messages that must arrive; the rules themselves are checked in virtual
/// time by the other tests.
#[tokio::test]
async fn udp_smoke_registration_and_subscription_end_to_end() {
    let h = Harness::start(profile(true)).await;
    let req = h.register_bytes("sam", h.ue.addr, "UDP", 1, 600, "");
    h.ue.send(h.gw_udp, &req).await.unwrap();
    let (fwd, from) = h.core.recv(WAIT).await.expect("forwarded");
    assert_eq!(from, h.gw_udp, "sent from the gateway's listener");
    let vias = fwd.vias().unwrap();
    assert_eq!(vias[0].port, Some(h.port));
    assert_eq!(vias[1].rport(), Some(Some(h.ue.addr.port())));
    let ok = h.register_ok(&fwd, 600, &[]);
    h.core.send(from, &ok).await.unwrap();
    let (resp, _) = h.ue.recv(WAIT).await.expect("200 reaches the UE");
    assert_eq!(resp.status(), Some(200));

    let (sub, from) = h.next_subscribe().await.expect("SUBSCRIBE at the S-CSCF");
    assert_eq!(from, h.gw_udp, "sent from the gateway's listener");
    let pui = format!("sip:sam@{DOMAIN}");
    assert_eq!(sub.request_uri(), Some(pui.as_str()));
    assert_eq!(
        sub.header_values(HeaderName::Route),
        vec![format!("<sip:scscf@{};lr>", h.scscf.addr)]
    );
    h.scscf
        .send(from, &h.subscribe_ok(&sub, 600))
        .await
        .unwrap();
    let body = reginfo(0, &pui, "active", &format!("sip:sam@{}", h.ue.addr));
    let resp = h.send_notify(&h.reginfo_notify(&sub, 1, &body)).await;
    assert_eq!(resp.status(), Some(200));
    assert!(h.registered(&pui).await.is_some());
    assert_eq!(h.subscriptions().await, 1);
    h.gw.stop().await;
}

#[test]
fn udp_register_is_forwarded_with_path_via_and_max_forwards_and_learned() {
    let mut h = Virt::start(profile(false));
    let req = h.register_bytes(
        "alice",
        h.ue,
        "UDP",
        1,
        600,
        ";+sip.instance=\"<urn:uuid:a1>\";reg-id=1",
    );
    h.sim.send(h.ue, req);
    // "Sent from the gateway's listener" needs a socket: in
    // udp_smoke_registration_and_subscription_end_to_end.
    let fwd = h.recv(h.core, WAIT).expect("forwarded");

    // Our Via on top, the UE's below it with received/rport filled in.
    let vias = fwd.vias().unwrap();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[0].host, "127.0.0.1");
    assert_eq!(vias[0].port, Some(h.port));
    assert!(vias[0].branch().unwrap().starts_with("z9hG4bK"));
    assert_eq!(vias[1].rport(), Some(Some(h.ue.port())));
    assert_eq!(fwd.max_forwards().unwrap(), Some(69));
    let path = fwd.header(HeaderName::Path).expect("Path added");
    assert!(
        path.contains(&format!("@127.0.0.1:{};lr", h.port)),
        "{path}"
    );
    // Everything we did not edit leaves as it came.
    let raw = std::str::from_utf8(fwd.raw()).unwrap();
    assert!(raw.contains("X-Unknown-Header:   kept   as is  \r\n"));
    assert!(raw.contains("Contact: <sip:alice@"));

    let ok = h.register_ok(&fwd, 600, &["sip:alice-2@ims.example.net", "tel:+15550001"]);
    h.sim.send(h.core, ok);
    let resp = h.recv(h.ue, WAIT).expect("200 reaches the UE");
    assert_eq!(resp.status(), Some(200));
    let vias = resp.vias().unwrap();
    assert_eq!(vias.len(), 1, "our Via removed");
    assert!(vias[0].branch().unwrap().starts_with("z9hG4bKalice"));

    let pui = format!("sip:alice@{DOMAIN}");
    let reg = h.registered(&pui).expect("registration learned");
    assert_eq!(&*reg.default_pui, pui);
    assert_eq!(reg.associated.len(), 3);
    assert_eq!(&*reg.associated[2], "tel:+15550001");
    assert_eq!(reg.service_route.len(), 1);
    assert!(reg.service_route[0].starts_with("sip:scscf@"));
    assert_eq!(reg.bindings.len(), 1);
    assert_eq!(reg.bindings[0].reg_id, Some(1));
    assert_eq!(reg.bindings[0].instance.as_deref(), Some("urn:uuid:a1"));
    assert_eq!(&*reg.trunk_group, "default");
}

#[test]
fn two_reg_id_bindings_then_deregistration_removes_the_registration() {
    let mut h = Virt::start(profile(false));
    h.register_with(
        "bob",
        1,
        600,
        &[],
        ";+sip.instance=\"<urn:uuid:b1>\";reg-id=1",
    );
    // A second flow of the same device (reg-id 2) from another contact.
    let second = String::from_utf8(h.register_bytes(
        "bob",
        h.ue,
        "UDP",
        2,
        600,
        ";+sip.instance=\"<urn:uuid:b1>\";reg-id=2",
    ))
    .unwrap()
    .replace("Contact: <sip:bob@", "Contact: <sip:bob2@");
    h.sim.send(h.ue, second.into_bytes());
    let fwd = h.recv(h.core, WAIT).unwrap();
    // The core's 200 lists both bindings (RFC 3261 §10.3 step 8).
    let both = format!(
        "<sip:bob@{0};transport=udp>;expires=600;+sip.instance=\"<urn:uuid:b1>\";reg-id=1, <sip:bob2@{0};transport=udp>;expires=600;+sip.instance=\"<urn:uuid:b1>\";reg-id=2",
        h.ue
    );
    let ok = regevent_gw::sip::writer::response(&fwd, 200, "OK", Some("c"), &[("Contact", &both)]);
    h.sim.send(h.core, ok);
    assert_eq!(h.recv(h.ue, WAIT).unwrap().status(), Some(200));
    let pui = format!("sip:bob@{DOMAIN}");
    let reg = h.registered(&pui).unwrap();
    assert_eq!(reg.bindings.len(), 2);
    assert_eq!(reg.bindings.iter().filter_map(|b| b.reg_id).sum::<u32>(), 3);

    // Contact: * with Expires 0 removes everything.
    let dereg = format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {0};branch=z9hG4bKd3;rport\r\nMax-Forwards: 70\r\nFrom: <sip:bob@{DOMAIN}>;tag=x\r\nTo: <sip:bob@{DOMAIN}>\r\nCall-ID: reg-bob@{0}\r\nCSeq: 3 REGISTER\r\nContact: *\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n",
        h.ue
    );
    h.sim.send(h.ue, dereg.into_bytes());
    let fwd = h.recv(h.core, WAIT).unwrap();
    let ok = regevent_gw::sip::writer::response(&fwd, 200, "OK", Some("c"), &[]);
    h.sim.send(h.core, ok);
    assert_eq!(h.recv(h.ue, WAIT).unwrap().status(), Some(200));
    assert!(h.registered(&pui).is_none(), "deregistration removed it");
}

/// The registrar counts whole seconds from its first registration, this one: the 1 s binding is
/// there until exactly 1 s, and gone at 1 s.
#[test]
fn binding_expiry_removes_the_registration() {
    let mut h = Virt::start(profile(false));
    h.register("carol", 1, 1, &[]);
    assert_eq!(h.sim.elapsed(), Duration::ZERO);
    let pui = format!("sip:carol@{DOMAIN}");
    assert!(h.registered(&pui).is_some());
    h.sim.advance(Duration::from_millis(999));
    assert!(h.registered(&pui).is_some(), "not expired before 1 s");
    h.sim.advance(Duration::from_millis(1));
    assert_eq!(h.sim.elapsed(), Duration::from_secs(1));
    assert!(
        h.registered(&pui).is_none(),
        "expired binding removed the registration"
    );
}

#[tokio::test]
async fn tcp_register_reaches_a_tcp_core_and_the_answer_returns_on_the_ue_connection() {
    let core = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let core_addr = core.local_addr().unwrap();
    let h = Harness::start_with(profile(false), |c| {
        c.sip.core = format!("sip:{core_addr};transport=tcp")
    })
    .await;
    let mut ue = TcpPeer::connect(h.gw_tcp).await.unwrap();
    let req = h.register_bytes("dave", ue.local, "TCP", 1, 600, "");
    ue.send(&req).await.unwrap();
    let (stream, _) = tokio::time::timeout(WAIT, core.accept())
        .await
        .unwrap()
        .unwrap();
    let mut core_conn = TcpPeer::from_stream(stream).unwrap();
    let fwd = core_conn.recv(WAIT).await.expect("REGISTER over TCP");
    let vias = fwd.vias().unwrap();
    assert_eq!(vias[0].transport, "TCP");
    assert_eq!(fwd.max_forwards().unwrap(), Some(69));
    assert!(fwd.header(HeaderName::Path).is_some());
    let ok = h.register_ok(&fwd, 600, &[]);
    core_conn.send(&ok).await.unwrap();
    let resp = ue.recv(WAIT).await.expect("200 on the UE's own connection");
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.vias().unwrap().len(), 1);
    let reg = h
        .registered(&format!("sip:dave@{DOMAIN}"))
        .await
        .expect("learned");
    assert_eq!(reg.bindings[0].transport, "tcp");
    h.gw.stop().await;
}

#[test]
fn malformed_request_gets_400_with_a_reason_and_max_forwards_zero_gets_483() {
    let mut h = Virt::start(profile(false));
    let bad = format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {0};branch=z9hG4bKbad\r\nFrom: <sip:e@{DOMAIN}>;tag=1\r\nTo: <sip:e@{DOMAIN}>\r\nCall-ID: bad1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        h.ue
    );
    h.sim.send(h.ue, bad.into_bytes());
    let resp = h.recv(h.ue, WAIT).expect("400");
    assert_eq!(resp.status(), Some(400));
    let raw = String::from_utf8_lossy(resp.raw()).to_string();
    assert!(
        raw.starts_with("SIP/2.0 400 Bad Request (CSeq method"),
        "{raw}"
    );

    let zero = String::from_utf8(h.register_bytes("e", h.ue, "UDP", 1, 600, ""))
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    h.sim.send(h.ue, zero.into_bytes());
    let resp = h.recv(h.ue, WAIT).expect("483");
    assert_eq!(resp.status(), Some(483));
    assert!(
        h.recv(h.core, Duration::from_millis(200)).is_none(),
        "nothing forwarded"
    );
}

#[test]
fn source_outside_every_trunk_group_gets_403() {
    let mut h = Virt::start_with(profile(false), |s| {
        s.trunk_groups[0].sources = vec!["10.0.0.0/8".parse().unwrap()];
    });
    let req = h.register_bytes("frank", h.ue, "UDP", 1, 600, "");
    h.sim.send(h.ue, req);
    let resp = h.recv(h.ue, WAIT).expect("403");
    assert_eq!(resp.status(), Some(403));
}

#[test]
fn udp_retransmission_is_forwarded_with_the_same_branch_and_learned_once() {
    let mut h = Virt::start(profile(true));
    let req = h.register_bytes("gina", h.ue, "UDP", 1, 600, "");
    h.sim.send(h.ue, req.clone());
    h.sim.send(h.ue, req);
    let a = h.recv(h.core, WAIT).unwrap();
    let b = h.recv(h.core, WAIT).unwrap();
    assert_eq!(a.top_via().branch(), b.top_via().branch());
    let ok = h.register_ok(&a, 600, &[]);
    h.sim.send(h.core, ok.clone());
    h.sim.send(h.core, ok);
    let first = h.next_subscribe().expect("SUBSCRIBE");
    // Only retransmissions of the same SUBSCRIBE follow (T1 = 20 ms, unanswered): one subscription.
    while let Some(m) = h.recv(h.scscf, Duration::from_millis(300)) {
        assert_eq!(m.call_id(), first.call_id(), "one subscription only");
        assert_eq!(m.top_via().branch(), first.top_via().branch());
    }
    assert_eq!(h.subscriptions(), 1);
}

/// The registrar counts whole seconds from its first registration (the 600 s one, at 0): the
/// second binding's 1 s is up at exactly 1 s.
#[test]
fn a_shorter_binding_expires_on_its_own_while_the_registration_stays() {
    let mut h = Virt::start(profile(false));
    h.register("hugo", 1, 600, &[]);
    // Second binding with a 1 s expiry.
    let second = String::from_utf8(h.register_bytes("hugo", h.ue, "UDP", 2, 1, ""))
        .unwrap()
        .replace("Contact: <sip:hugo@", "Contact: <sip:hugo2@");
    h.sim.send(h.ue, second.into_bytes());
    let fwd = h.recv(h.core, WAIT).unwrap();
    let both = format!(
        "<sip:hugo@{0};transport=udp>;expires=600, <sip:hugo2@{0};transport=udp>;expires=1",
        h.ue
    );
    let ok = regevent_gw::sip::writer::response(&fwd, 200, "OK", Some("c"), &[("Contact", &both)]);
    h.sim.send(h.core, ok);
    h.recv(h.ue, WAIT).unwrap();
    assert_eq!(h.sim.elapsed(), Duration::ZERO);
    let pui = format!("sip:hugo@{DOMAIN}");
    assert_eq!(h.registered(&pui).unwrap().bindings.len(), 2);
    h.sim.advance(Duration::from_millis(999));
    assert_eq!(
        h.registered(&pui).unwrap().bindings.len(),
        2,
        "not expired before 1 s"
    );
    h.sim.advance(Duration::from_millis(1));
    assert_eq!(h.sim.elapsed(), Duration::from_secs(1));
    let reg = h.registered(&pui).expect("still registered");
    assert_eq!(reg.bindings.len(), 1, "the 1 s binding expired on its own");
    assert!(reg.bindings[0].uri.starts_with("sip:hugo@"));
}

/// IPv6 over real sockets: a UE on `[::1]` registers through a gateway listening only on
/// `[::1]` towards a core on `[::1]`. The forwarded REGISTER carries our bracketed IPv6 Via and a
/// Path naming our IPv6 listener, `rport` gets the UE's port, the 200 OK finds its way back and
/// the registration is learned with the UE's IPv6 flow. Skipped, with a message, on a host
/// without an IPv6 loopback.
#[tokio::test]
async fn ipv6_register_round_trip_over_udp() {
    let any6: std::net::SocketAddr = "[::1]:0".parse().unwrap();
    let Ok(core6) = UdpPeer::bind_on(any6).await else {
        eprintln!("no IPv6 loopback on this host: skipped");
        return;
    };
    let ue6 = UdpPeer::bind_on(any6).await.expect("ue on [::1]");
    let port6 = std::net::UdpSocket::bind(any6)
        .and_then(|s| s.local_addr())
        .expect("free [::1] port")
        .port();
    let core_addr = core6.addr;
    let h = Harness::start_with(profile(false), move |cfg| {
        let a = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port6));
        cfg.sip.listen = vec![regevent_gw::config::Listener {
            name: format!("udp:{a}"),
            transport: regevent_gw::config::Transport::Udp,
            addr: a,
        }];
        cfg.sip.identity = format!("sip:[::1]:{port6}");
        cfg.sip.core = format!("sip:{core_addr}");
    })
    .await;
    assert!(h.gw_udp.is_ipv6(), "listening on {}", h.gw_udp);

    let req = h.register_bytes("v6user", ue6.addr, "UDP", 1, 600, "");
    ue6.send(h.gw_udp, &req).await.unwrap();
    let (fwd, from) = core6.recv(WAIT).await.expect("forwarded over IPv6");
    assert_eq!(from, h.gw_udp);
    let vias = fwd.vias().unwrap();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[0].host, "[::1]");
    assert_eq!(vias[0].port, Some(port6));
    assert_eq!(vias[1].rport(), Some(Some(ue6.addr.port())));
    let path = fwd.header(HeaderName::Path).expect("Path added");
    assert!(path.contains(&format!("@[::1]:{port6};lr")), "{path}");

    let ok = h.register_ok(&fwd, 600, &[]);
    core6.send(from, &ok).await.unwrap();
    let (resp, _) = ue6.recv(WAIT).await.expect("200 back to the IPv6 UE");
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.vias().unwrap().len(), 1, "our Via removed");

    let reg = h
        .registered(&format!("sip:v6user@{DOMAIN}"))
        .await
        .expect("registration learned");
    assert_eq!(reg.bindings.len(), 1);
    assert_eq!(reg.bindings[0].source, ue6.addr.to_string());
    h.gw.stop().await;
}

/// A datagram longer than `limits.max_message` arrives cut in the gateway's receive slot
/// (`max + 1` bytes) and is dropped, not forwarded in part; the next one goes through. Nothing
/// is awaited to not arrive: one gateway task reads the UE's datagrams in order and sends what
/// each causes before it reads the next, so anything the oversize one caused (a forward to the
/// core, an answer to the UE) would arrive before what the next one causes.
#[tokio::test]
async fn oversize_datagram_is_dropped_whole_and_the_next_is_forwarded() {
    let h = Harness::start_with(profile(false), |cfg| cfg.limits.max_message = 1500).await;
    let req = String::from_utf8(h.register_bytes("big", h.ue.addr, "UDP", 1, 600, "")).unwrap();
    let padded = req.replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nX-Pad: {}\r\n", "p".repeat(1600)),
        1,
    );
    assert!(padded.len() > 1501);
    h.ue.send(h.gw_udp, padded.as_bytes()).await.unwrap();
    let ok = h.register_bytes("small", h.ue.addr, "UDP", 1, 600, "");
    h.ue.send(h.gw_udp, &ok).await.unwrap();
    let (fwd, from) = h
        .core
        .recv(WAIT)
        .await
        .expect("the next datagram is forwarded");
    assert!(
        fwd.to().uri.starts_with("sip:small@"),
        "nothing of the oversize REGISTER is forwarded"
    );
    h.core
        .send(from, &h.register_ok(&fwd, 600, &[]))
        .await
        .unwrap();
    let (resp, _) = h.ue.recv(WAIT).await.expect("the next one is answered");
    assert!(
        resp.status() == Some(200) && resp.to().uri.starts_with("sip:small@"),
        "and nothing answered"
    );
    h.gw.stop().await;
}
