//! Multi-registration (RFC 5626): one device (`+sip.instance`) registers two flows with the same
//! Contact URI, `reg-id` 1 and 2, from two sockets. Each (instance, reg-id) is a binding of its
//! own: flow 2 never replaces flow 1; a NOTIFY that terminates flow 2's contact removes flow 2
//! only; the UE's de-REGISTER of flow 2 removes flow 2 only; the registration and its one
//! subscription stay until the last flow is gone, and then the unsubscribe goes out. Over real
//! UDP sockets, in both orders (NOTIFY first, de-REGISTER first).

mod common;

use std::net::SocketAddr;

use common::{next_of, profile, subscribe_ok, Harness, DOMAIN};
use regevent_gw::sip::{writer, HeaderName, Message};
use regevent_lab::peer::UdpPeer;

const INSTANCE: &str = "urn:uuid:00000000-0000-1000-8000-000A95A0E128";
const CONTACT: &str = "sip:ana@192.0.2.7:5060;ob";

fn register(from: SocketAddr, reg_id: u32, cseq: u32, expires: u32) -> Vec<u8> {
    format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKmf{reg_id}c{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:ana@{DOMAIN}>;tag=ana{reg_id}\r\nTo: <sip:ana@{DOMAIN}>\r\n\
         Call-ID: ana-flow{reg_id}\r\nCSeq: {cseq} REGISTER\r\nSupported: outbound, path\r\n\
         Contact: <{CONTACT}>;+sip.instance=\"<{INSTANCE}>\";reg-id={reg_id};expires={expires}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The core's 200 OK listing the flows still registered (RFC 3261 §10.3: every binding).
fn register_ok(req: &Message, scscf: SocketAddr, flows: &[u32]) -> bytes::Bytes {
    let contacts: Vec<String> = flows
        .iter()
        .map(|r| format!("<{CONTACT}>;+sip.instance=\"<{INSTANCE}>\";reg-id={r};expires=600"))
        .collect();
    let contacts = contacts.join(", ");
    let sr = format!("<sip:scscf@{scscf};lr>");
    let pau = format!("<sip:ana@{DOMAIN}>");
    let mut extra = vec![
        ("Service-Route", sr.as_str()),
        ("P-Associated-URI", pau.as_str()),
    ];
    if !flows.is_empty() {
        extra.push(("Contact", contacts.as_str()));
    }
    writer::response(req, 200, "OK", Some("core1"), &extra)
}

/// reginfo for the default PUI with the flows in `active` active and those in `gone` terminated.
fn reginfo(version: u64, active: &[u32], gone: &[u32]) -> String {
    let contact = |r: u32, state: &str, event: &str| {
        format!(
            "<contact id=\"c{r}\" state=\"{state}\" event=\"{event}\" expires=\"600\"><uri>{CONTACT}</uri>\
             <unknown-param name=\"+sip.instance\">\"&lt;{INSTANCE}&gt;\"</unknown-param>\
             <unknown-param name=\"reg-id\">{r}</unknown-param></contact>"
        )
    };
    let mut body = format!(
        "<?xml version=\"1.0\"?><reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"{version}\" state=\"full\">\
         <registration aor=\"sip:ana@{DOMAIN}\" id=\"a1\" state=\"active\">"
    );
    for r in active {
        body.push_str(&contact(*r, "active", "registered"));
    }
    for r in gone {
        body.push_str(&contact(*r, "terminated", "deactivated"));
    }
    body.push_str("</registration></reginfo>");
    body
}

struct Flows {
    h: Harness,
    ue1: UdpPeer,
    ue2: UdpPeer,
    sub: Message,
    cseq: u32,
}

impl Flows {
    /// Both flows registered and the (one) subscription established and notified.
    async fn start() -> Flows {
        let h = Harness::start(profile(true)).await;
        let ue1 = UdpPeer::bind().await.unwrap();
        let ue2 = UdpPeer::bind().await.unwrap();
        let mut f = Flows {
            h,
            ue1,
            ue2,
            sub: Message::parse(bytes::Bytes::from_static(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\r\nFrom: <sip:x>;tag=1\r\nTo: <sip:x>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n"), &Default::default()).unwrap(),
            cseq: 1,
        };
        f.flow_register(1, 600, &[1]).await;
        let (sub, from) = f.h.next_subscribe().await.expect("one SUBSCRIBE");
        assert!(sub.to().tag().is_none());
        f.h.scscf
            .send(from, &subscribe_ok(&sub, f.h.scscf.addr, 600))
            .await
            .unwrap();
        f.sub = sub;
        f.flow_register(2, 600, &[1, 2]).await;
        f.notify(&[1, 2], &[]).await;
        let reg = f.registration().await.expect("registered");
        let mut ids: Vec<_> = reg.bindings.iter().map(|b| b.reg_id).collect();
        ids.sort();
        assert_eq!(ids, [Some(1), Some(2)], "flow 2 did not replace flow 1");
        let source = |r: u32| {
            reg.bindings
                .iter()
                .find(|b| b.reg_id == Some(r))
                .map(|b| b.source.clone())
        };
        assert_eq!(source(1), Some(f.ue1.addr.to_string()));
        assert_eq!(source(2), Some(f.ue2.addr.to_string()));
        assert_eq!(
            f.h.subscriptions().await,
            1,
            "one subscription for both flows"
        );
        f
    }

    fn ue(&self, reg_id: u32) -> &UdpPeer {
        if reg_id == 1 {
            &self.ue1
        } else {
            &self.ue2
        }
    }

    /// A REGISTER of flow `reg_id`; the core's 200 lists `remaining`; returns the Path.
    async fn flow_register(&mut self, reg_id: u32, expires: u32, remaining: &[u32]) -> String {
        self.cseq += 1;
        let ue = self.ue(reg_id);
        ue.send(
            self.h.gw_udp,
            &register(ue.addr, reg_id, self.cseq, expires),
        )
        .await
        .unwrap();
        let (fwd, from) = next_of(&self.h.core, "REGISTER", false)
            .await
            .expect("forwarded");
        let path = fwd.header(HeaderName::Path).expect("Path").to_owned();
        self.h
            .core
            .send(from, &register_ok(&fwd, self.h.scscf.addr, remaining))
            .await
            .unwrap();
        let ue = self.ue(reg_id);
        let (ok, _) = next_of(ue, "REGISTER", true)
            .await
            .expect("200 to the flow");
        assert_eq!(ok.status(), Some(200));
        path
    }

    async fn notify(&mut self, active: &[u32], gone: &[u32]) {
        self.cseq += 1;
        let body = reginfo(u64::from(self.cseq), active, gone);
        let n = self.h.reginfo_notify(&self.sub, self.cseq, &body);
        assert_eq!(self.h.send_notify(&n).await.status(), Some(200));
    }

    async fn registration(&self) -> Option<regevent_gw::stats::RegistrationView> {
        self.h.registered(&format!("sip:ana@{DOMAIN}")).await
    }

    async fn flows(&self) -> Vec<Option<u32>> {
        let mut v: Vec<_> = self
            .registration()
            .await
            .map(|r| r.bindings.iter().map(|b| b.reg_id).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Flow 1 is alone and reachable; then its de-REGISTER ends the registration and the
    /// first SUBSCRIBE since the initial one is the unsubscribe, in the dialog.
    async fn finish(mut self) {
        assert_eq!(self.flows().await, [Some(1)]);
        assert_eq!(self.h.subscriptions().await, 1, "the subscription stays");
        // A terminating request through flow 1's Path reaches flow 1's socket.
        let reg = self.registration().await.unwrap();
        assert_eq!(reg.bindings[0].source, self.ue1.addr.to_string());
        self.flow_register(1, 0, &[]).await;
        assert!(
            self.registration().await.is_none(),
            "the last flow gone ends it"
        );
        let (unsub, _) = self.h.next_subscribe().await.expect("unsubscribe");
        assert_eq!(unsub.call_id(), self.sub.call_id(), "in the one dialog");
        assert_eq!(unsub.expires().unwrap(), Some(0));
        assert_eq!(self.h.subscriptions().await, 0);
        self.h.gw.stop().await;
    }
}

#[tokio::test]
async fn a_notify_terminates_flow_2_then_the_ue_deregisters_it() {
    let mut f = Flows::start().await;
    f.notify(&[1], &[2]).await;
    assert_eq!(f.flows().await, [Some(1)], "the NOTIFY removed flow 2 only");
    f.flow_register(2, 0, &[1]).await;
    assert_eq!(f.flows().await, [Some(1)]);
    f.finish().await;
}

#[tokio::test]
async fn the_ue_deregisters_flow_2_then_a_notify_terminates_it() {
    let mut f = Flows::start().await;
    f.flow_register(2, 0, &[1]).await;
    assert_eq!(
        f.flows().await,
        [Some(1)],
        "the de-REGISTER removed flow 2 only"
    );
    f.notify(&[1], &[2]).await;
    assert_eq!(
        f.flows().await,
        [Some(1)],
        "the NOTIFY changed nothing more"
    );
    f.finish().await;
}

#[tokio::test]
async fn a_request_through_each_flows_path_reaches_that_flow() {
    let mut f = Flows::start().await;
    let path1 = f.flow_register(1, 600, &[1, 2]).await;
    let path2 = f.flow_register(2, 600, &[1, 2]).await;
    assert_ne!(path1, path2, "each flow has its own Path");
    for (path, ue) in [(&path1, &f.ue1), (&path2, &f.ue2)] {
        let msg = format!(
            "MESSAGE sip:ana@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKp{}\r\nMax-Forwards: 70\r\n\
             Route: {path}\r\nFrom: <sip:bob@{DOMAIN}>;tag=b\r\nTo: <sip:ana@{DOMAIN}>\r\nCall-ID: p{}\r\n\
             CSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
            f.h.core.addr,
            ue.addr.port(),
            ue.addr.port()
        );
        f.h.core.send(f.h.gw_udp, msg.as_bytes()).await.unwrap();
        let (m, _) = next_of(ue, "MESSAGE", false)
            .await
            .expect("through its own flow");
        assert_eq!(m.call_id(), format!("p{}", ue.addr.port()));
    }
    f.h.gw.stop().await;
}
