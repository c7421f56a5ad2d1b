//! Shared harness for socket-level tests: a gateway on loopback with a scripted UE, a scripted
//! core (registrar) and a scripted S-CSCF (notifier), all real UDP/TCP sockets. The messages the
//! scripted peers send are built by free functions ([`register_bytes`], [`register_ok`],
//! [`subscribe_ok`], [`notify`], [`reginfo`]) shared with [`virt`], the same peers around the
//! sans-IO core in virtual time.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::sync::Arc;
use std::time::Duration;

use regevent_gw::app::{self, Running};
use regevent_gw::config::{Config, Listener, Network, Profile, Transport};
use regevent_gw::sip::{writer, HeaderName, Message};
use regevent_lab::peer::UdpPeer;

pub mod takeover;
pub mod virt;

pub const WAIT: Duration = Duration::from_secs(3);
pub const DOMAIN: &str = "ims.example.net";

/// A port free on both UDP and TCP (racy but fine on loopback in tests).
pub fn free_port() -> u16 {
    loop {
        let u = StdUdp::bind("127.0.0.1:0").expect("bind");
        let p = u.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

pub struct Harness {
    pub gw: Running,
    pub gw_udp: SocketAddr,
    pub gw_tcp: SocketAddr,
    pub port: u16,
    pub ue: UdpPeer,
    pub core: UdpPeer,
    pub scscf: UdpPeer,
    pub cfg: Arc<Config>,
}

pub fn profile(enabled: bool) -> Profile {
    Profile {
        support_reg_event: enabled,
        ..Profile::default()
    }
}

pub fn visited(route: &str) -> Profile {
    Profile {
        support_reg_event: true,
        network: Network::Visited,
        subscribe_route: vec![route.into()],
        ..Profile::default()
    }
}

impl Harness {
    pub async fn start(p: Profile) -> Harness {
        Self::start_with(p, |_| {}).await
    }

    pub async fn start_with(p: Profile, tweak: impl FnOnce(&mut Config)) -> Harness {
        let core = UdpPeer::bind().await.expect("core");
        let scscf = UdpPeer::bind().await.expect("scscf");
        let ue = UdpPeer::bind().await.expect("ue");
        let port = free_port();
        let mut cfg = Config::load(None).expect("defaults");
        let a: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        cfg.sip.listen = vec![
            Listener {
                name: format!("udp:{a}"),
                transport: Transport::Udp,
                addr: a,
            },
            Listener {
                name: format!("tcp:{a}"),
                transport: Transport::Tcp,
                addr: a,
            },
        ];
        cfg.sip.identity = format!("sip:127.0.0.1:{port}");
        cfg.sip.core = format!("sip:{}", core.addr);
        cfg.sip.t1 = Duration::from_millis(20);
        cfg.admin.listen = "127.0.0.1:0".parse().expect("addr");
        cfg.state.backend = regevent_gw::config::StateBackend::None;
        for tg in cfg.trunk_groups.clone() {
            cfg.profiles.by_name.insert(tg.profile.clone(), p.clone());
        }
        tweak(&mut cfg);
        let cfg = Arc::new(cfg);
        let prom = regevent_gw::stats::recorder::global_handle().expect("recorder");
        let gw = app::start(cfg.clone(), prom, Some(7)).await.expect("start");
        let gw_udp = gw.sip_addr(Transport::Udp).expect("udp");
        let gw_tcp = gw.sip_addr(Transport::Tcp).unwrap_or(gw_udp);
        Harness {
            gw,
            gw_udp,
            gw_tcp,
            port,
            ue,
            core,
            scscf,
            cfg,
        }
    }

    /// Stop the gateway (as SIGTERM does) and start a new one with the same configuration and
    /// peers, another seed (a new process).
    pub async fn restart(self) -> Harness {
        let Harness {
            gw,
            port,
            ue,
            core,
            scscf,
            cfg,
            ..
        } = self;
        gw.stop().await;
        let prom = regevent_gw::stats::recorder::global_handle().expect("recorder");
        let gw = app::start(cfg.clone(), prom, Some(8))
            .await
            .expect("restart");
        let gw_udp = gw.sip_addr(Transport::Udp).expect("udp");
        let gw_tcp = gw.sip_addr(Transport::Tcp).unwrap_or(gw_udp);
        Harness {
            gw,
            gw_udp,
            gw_tcp,
            port,
            ue,
            core,
            scscf,
            cfg,
        }
    }

    /// The REGISTER a UE on `local` sends ([`register_bytes`]).
    pub fn register_bytes(
        &self,
        user: &str,
        local: SocketAddr,
        transport: &str,
        cseq: u32,
        expires: u32,
        contact_params: &str,
    ) -> Vec<u8> {
        register_bytes(user, local, transport, cseq, expires, contact_params)
    }

    /// The core's 200 OK to a forwarded REGISTER, Service-Route towards our S-CSCF peer
    /// ([`register_ok`]).
    pub fn register_ok(&self, req: &Message, expires: u32, implicit: &[&str]) -> bytes::Bytes {
        register_ok(req, self.scscf.addr, expires, implicit)
    }

    /// Full UDP registration: UE → gw → core → 200 → gw → UE. Returns (forwarded REGISTER,
    /// 200 OK as the UE got it).
    pub async fn register(
        &self,
        user: &str,
        cseq: u32,
        expires: u32,
        implicit: &[&str],
    ) -> (Message, Message) {
        self.register_with(user, cseq, expires, implicit, "").await
    }

    pub async fn register_with(
        &self,
        user: &str,
        cseq: u32,
        expires: u32,
        implicit: &[&str],
        params: &str,
    ) -> (Message, Message) {
        let req = self.register_bytes(user, self.ue.addr, "UDP", cseq, expires, params);
        self.ue.send(self.gw_udp, &req).await.expect("send");
        let (fwd, from) = self.core.recv(WAIT).await.expect("core got REGISTER");
        let ok = self.register_ok(&fwd, expires, implicit);
        self.core.send(from, &ok).await.expect("send 200");
        let (resp, _) = self.ue.recv(WAIT).await.expect("UE got 200");
        (fwd, resp)
    }

    /// Next SUBSCRIBE at the S-CSCF peer.
    pub async fn next_subscribe(&self) -> Option<(Message, SocketAddr)> {
        loop {
            let (m, from) = self.scscf.recv(WAIT).await?;
            if m.method_str() == "SUBSCRIBE" {
                return Some((m, from));
            }
        }
    }

    /// Drain the S-CSCF for `wait`: only retransmissions of `first` may arrive (T1 is 20 ms in
    /// these tests, so an unanswered SUBSCRIBE is retransmitted). Returns how many arrived.
    pub async fn only_retransmissions_of(&self, first: &Message, wait: Duration) -> usize {
        let mut n = 0;
        while let Some((m, _)) = self.scscf.recv(wait).await {
            assert_eq!(m.call_id(), first.call_id(), "a second subscription");
            assert_eq!(m.cseq().seq, first.cseq().seq);
            n += 1;
        }
        n
    }

    /// Register `user` and answer the gateway's SUBSCRIBE with a 200 granting `grant` seconds;
    /// returns the SUBSCRIBE.
    pub async fn subscribed(&self, user: &str, implicit: &[&str], grant: u32) -> Message {
        self.register(user, 1, 600, implicit).await;
        let (sub, from) = self.next_subscribe().await.expect("SUBSCRIBE");
        self.scscf
            .send(from, &self.subscribe_ok(&sub, grant))
            .await
            .expect("send 200");
        sub
    }

    /// Answer a SUBSCRIBE 200 OK from our S-CSCF peer ([`subscribe_ok`]).
    pub fn subscribe_ok(&self, sub: &Message, expires: u32) -> bytes::Bytes {
        subscribe_ok(sub, self.scscf.addr, expires)
    }

    /// A NOTIFY from our S-CSCF peer in the dialog of `sub` ([`notify`]).
    pub fn notify(
        &self,
        sub: &Message,
        cseq: u32,
        sub_state: &str,
        content_type: &str,
        body: &str,
    ) -> Vec<u8> {
        notify(
            sub,
            self.port,
            self.scscf.addr,
            cseq,
            sub_state,
            content_type,
            body,
        )
    }

    /// A reginfo NOTIFY (`active;expires=600`) in the dialog of `sub`.
    pub fn reginfo_notify(&self, sub: &Message, cseq: u32, body: &str) -> Vec<u8> {
        self.notify(
            sub,
            cseq,
            "active;expires=600",
            "application/reginfo+xml",
            body,
        )
    }

    /// Send a NOTIFY and return the gateway's response.
    pub async fn send_notify(&self, bytes: &[u8]) -> Message {
        self.scscf.send(self.gw_udp, bytes).await.expect("send");
        loop {
            let (m, _) = self.scscf.recv(WAIT).await.expect("response to NOTIFY");
            if !m.is_request() && m.cseq().method == "NOTIFY" {
                return m;
            }
        }
    }

    /// The registration of a default PUI, as the admin API shows it (`/api/registrations`).
    pub async fn registered(&self, pui: &str) -> Option<regevent_gw::stats::RegistrationView> {
        let (admin, pui) = (self.gw.admin_addr.to_string(), pui.to_string());
        tokio::task::spawn_blocking(move || {
            regevent_gw::stats::client::fetch_registration(&admin, &pui).expect("admin API")
        })
        .await
        .expect("admin query")
    }

    /// Live subscriptions, as the admin API counts them (`/api/subscriptions`).
    pub async fn subscriptions(&self) -> usize {
        let admin = self.gw.admin_addr.to_string();
        tokio::task::spawn_blocking(move || {
            let all = regevent_gw::stats::SubscriptionFilter::default();
            regevent_gw::stats::client::fetch_subscriptions(&admin, &all, 1)
                .expect("admin API")
                .total
        })
        .await
        .expect("admin query")
    }
}

/// The REGISTER a UE on `local` sends over `transport` (`UDP`/`TCP`).
pub fn register_bytes(
    user: &str,
    local: SocketAddr,
    transport: &str,
    cseq: u32,
    expires: u32,
    contact_params: &str,
) -> Vec<u8> {
    format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bK{user}{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{DOMAIN}>;tag=ue{user}\r\n\
         To: <sip:{user}@{DOMAIN}>\r\n\
         Call-ID: reg-{user}@{local}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@{local};transport={}>;expires={expires}{contact_params}\r\n\
         X-Unknown-Header:   kept   as is  \r\n\
         Content-Length: 0\r\n\r\n",
        transport.to_ascii_lowercase()
    )
    .into_bytes()
}

/// The core's 200 OK to a forwarded REGISTER: echoes the contacts with `expires`, adds
/// Service-Route (towards the S-CSCF at `scscf`) and P-Associated-URI (default + `implicit`).
pub fn register_ok(
    req: &Message,
    scscf: SocketAddr,
    expires: u32,
    implicit: &[&str],
) -> bytes::Bytes {
    let user_uri = regevent_gw::sip::NameAddr::parse(req.header(HeaderName::To).expect("to"))
        .expect("to")
        .uri
        .to_string();
    let mut assoc = vec![format!("<{user_uri}>")];
    assoc.extend(implicit.iter().map(|p| format!("<{p}>")));
    let contacts: Vec<String> = req
        .header_values(HeaderName::Contact)
        .iter()
        .map(|c| {
            let na = regevent_gw::sip::NameAddr::parse(c).expect("contact");
            let mut s = format!("<{}>;expires={expires}", na.uri);
            if let Some(Some(i)) = na.params.get("+sip.instance") {
                s.push_str(&format!(";+sip.instance={i}"));
            }
            if let Some(Some(r)) = na.params.get("reg-id") {
                s.push_str(&format!(";reg-id={r}"));
            }
            s
        })
        .collect();
    let sr = format!("<sip:scscf@{scscf};lr>");
    let assoc = assoc.join(", ");
    let mut extra: Vec<(&str, &str)> = vec![("Service-Route", &sr), ("P-Associated-URI", &assoc)];
    let joined = contacts.join(", ");
    if expires > 0 && !contacts.is_empty() {
        extra.push(("Contact", &joined));
    }
    writer::response(req, 200, "OK", Some("core1"), &extra)
}

/// The S-CSCF at `scscf` answers a SUBSCRIBE: 200 OK with Expires, a To tag, a Record-Route and
/// a Contact.
pub fn subscribe_ok(sub: &Message, scscf: SocketAddr, expires: u32) -> bytes::Bytes {
    let exp = expires.to_string();
    let rr = format!("<sip:rr2@{scscf};lr>, <sip:rr1@{scscf};lr>");
    let contact = format!("<sip:notifier@{scscf}>");
    writer::response(
        sub,
        200,
        "OK",
        Some("scscf-tag"),
        &[
            ("Expires", &exp),
            ("Record-Route", &rr),
            ("Contact", &contact),
        ],
    )
}

/// A NOTIFY from the S-CSCF at `scscf` in the dialog of `sub`, to the gateway on 127.0.0.1:`port`.
pub fn notify(
    sub: &Message,
    port: u16,
    scscf: SocketAddr,
    cseq: u32,
    sub_state: &str,
    content_type: &str,
    body: &str,
) -> Vec<u8> {
    let from_tag = sub.from().tag().expect("from tag");
    let pui = sub.to().uri;
    format!(
        "NOTIFY sip:127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {scscf};branch=z9hG4bKnotify{cseq}x{}x{from_tag}\r\n\
         Max-Forwards: 70\r\n\
         From: <{pui}>;tag=scscf-tag\r\n\
         To: <{}>;tag={from_tag}\r\n\
         Call-ID: {}\r\n\
         CSeq: {cseq} NOTIFY\r\n\
         Contact: <sip:notifier@{scscf}>\r\n\
         Event: reg\r\n\
         Subscription-State: {sub_state}\r\n\
         Content-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len(),
        sub.from().uri,
        sub.call_id(),
        body.len()
    )
    .into_bytes()
}

/// A full-state reginfo for one PUI with one active contact.
pub fn reginfo(version: u64, pui: &str, reg_state: &str, contact: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"{version}\" state=\"full\">\n\
         <registration aor=\"{pui}\" id=\"a1\" state=\"{reg_state}\">\n\
         <contact id=\"c1\" state=\"active\" event=\"registered\" expires=\"600\"><uri>{contact}</uri></contact>\n\
         </registration>\n</reginfo>\n"
    )
}

/// Next message at `peer` that is a request of `method` (or, with `response`, a response whose
/// CSeq method is `method`), skipping everything else (retransmissions, our own SUBSCRIBEs).
pub async fn next_of(
    peer: &UdpPeer,
    method: &str,
    response: bool,
) -> Option<(Message, SocketAddr)> {
    loop {
        let (m, from) = peer.recv(WAIT).await?;
        if m.is_request() != response && m.cseq().method == method {
            return Some((m, from));
        }
    }
}
