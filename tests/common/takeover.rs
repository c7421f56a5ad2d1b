//! What a gateway that comes back — restarted on its own state (tests/kill9.rs) or taken over
//! from Redis by another instance (tests/redis_takeover.rs) — must show its peers (SPEC §10):
//! NOTIFYs in the old dialogs get 200, requests through the old Paths reach the UEs, refreshes
//! and unsubscribes go out in the old dialogs, and no initial SUBSCRIBE is ever sent.
//!
//! The S-CSCF's messages are read in order and none is thrown away: a refresh that comes while
//! the NOTIFYs are answered is kept for the refresh check, so nothing depends on when it is due.

use std::collections::VecDeque;
use std::net::SocketAddr;

use regevent_gw::sip::{HeaderName, Message};
use regevent_lab::peer::UdpPeer;

use super::{next_of, notify, reginfo, register_bytes, register_ok, subscribe_ok, DOMAIN, WAIT};

/// The gateway's peers over real sockets, and where the gateway listens.
pub struct Peers<'a> {
    pub core: &'a UdpPeer,
    pub scscf: &'a UdpPeer,
    pub ue: &'a UdpPeer,
    pub gw: SocketAddr,
    pub port: u16,
    /// SUBSCRIBEs the S-CSCF received while something else was awaited.
    kept: VecDeque<(Message, SocketAddr)>,
}

/// The grant of every subscription: refreshes are due 10 s after it.
const GRANT: u32 = 20;

impl<'a> Peers<'a> {
    pub fn new(
        core: &'a UdpPeer,
        scscf: &'a UdpPeer,
        ue: &'a UdpPeer,
        gw: SocketAddr,
        port: u16,
    ) -> Peers<'a> {
        Peers {
            core,
            scscf,
            ue,
            gw,
            port,
            kept: VecDeque::new(),
        }
    }

    /// `n` UEs (`u0`…) registered, each subscription granted 20 s and notified (version 0).
    /// Returns the initial SUBSCRIBEs and the Path each REGISTER reached the core with.
    pub async fn register_and_subscribe(&mut self, n: usize) -> (Vec<Message>, Vec<String>) {
        let (mut subs, mut paths) = (Vec::new(), Vec::new());
        for i in 0..n {
            let user = format!("u{i}");
            self.ue
                .send(
                    self.gw,
                    &register_bytes(&user, self.ue.addr, "UDP", 1, 600, ""),
                )
                .await
                .unwrap();
            let (fwd, from) = next_of(self.core, "REGISTER", false)
                .await
                .expect("REGISTER");
            paths.push(fwd.header(HeaderName::Path).expect("Path").to_owned());
            self.core
                .send(from, &register_ok(&fwd, self.scscf.addr, 600, &[]))
                .await
                .unwrap();
            next_of(self.ue, "REGISTER", true)
                .await
                .expect("200 to the UE");
            let (sub, from) = next_of(self.scscf, "SUBSCRIBE", false)
                .await
                .expect("SUBSCRIBE");
            assert!(sub.to().tag().is_none(), "an initial SUBSCRIBE");
            self.scscf
                .send(from, &subscribe_ok(&sub, self.scscf.addr, GRANT))
                .await
                .unwrap();
            let resp = self
                .notify(&sub, 1, 0, &format!("sip:{user}@{DOMAIN}"))
                .await;
            assert_eq!(resp.status(), Some(200));
            subs.push(sub);
        }
        (subs, paths)
    }

    /// The S-CSCF's NOTIFY (CSeq `cseq`, reginfo `version`) in the dialog of `sub`; the
    /// gateway's answer. SUBSCRIBEs that come meanwhile are kept.
    async fn notify(&mut self, sub: &Message, cseq: u32, version: u64, pui: &str) -> Message {
        let n = notify(
            sub,
            self.port,
            self.scscf.addr,
            cseq,
            "active;expires=20",
            "application/reginfo+xml",
            &reginfo(version, pui, "active", "sip:x@127.0.0.1"),
        );
        self.scscf.send(self.gw, &n).await.unwrap();
        loop {
            let (m, from) = self.scscf.recv(WAIT).await.expect("answer to NOTIFY");
            if m.is_request() && m.method_str() == "SUBSCRIBE" {
                self.kept.push_back((m, from));
            } else if !m.is_request() && m.cseq().method == "NOTIFY" {
                return m;
            }
        }
    }

    /// The next SUBSCRIBE the S-CSCF got (kept ones first).
    async fn next_subscribe(&mut self) -> (Message, SocketAddr) {
        if let Some(k) = self.kept.pop_front() {
            return k;
        }
        loop {
            let (m, from) = self
                .scscf
                .recv(std::time::Duration::from_secs(60))
                .await
                .expect("a SUBSCRIBE");
            if m.is_request() && m.method_str() == "SUBSCRIBE" {
                return (m, from);
            }
        }
    }

    /// The gateway carries on in the old dialogs of `subs` (and through `paths`): a NOTIFY in
    /// each gets 200, a MESSAGE through each Path reaches the UE (Call-ID `{tag}{i}`), every
    /// subscription is refreshed in its old dialog, and a de-REGISTER of each UE unsubscribes
    /// in its old dialog. Never an initial SUBSCRIBE. Returns the refreshes, by UE.
    pub async fn old_dialogs_carry_on(
        &mut self,
        subs: &[Message],
        paths: &[String],
        tag: &str,
    ) -> Vec<Message> {
        for (i, sub) in subs.iter().enumerate() {
            let pui = format!("sip:u{i}@{DOMAIN}");
            // The S-CSCF's next NOTIFY in the old dialog: 200, not 481.
            let resp = self.notify(sub, 2, 1, &pui).await;
            assert_eq!(
                resp.status(),
                Some(200),
                "NOTIFY in the old dialog of {pui}"
            );
            // A terminating request through the Path the core learned reaches the UE.
            let msg = format!(
                "MESSAGE {pui} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK{tag}{i}\r\nMax-Forwards: 70\r\n\
                 Route: {}\r\nFrom: <sip:bob@{DOMAIN}>;tag=b\r\nTo: <{pui}>\r\nCall-ID: {tag}{i}\r\nCSeq: 1 MESSAGE\r\n\
                 Content-Length: 0\r\n\r\n",
                self.core.addr,
                paths[i].trim()
            );
            self.core.send(self.gw, msg.as_bytes()).await.unwrap();
            let (m, _) = next_of(self.ue, "MESSAGE", false)
                .await
                .expect("MESSAGE through the old Path");
            assert_eq!(m.call_id(), format!("{tag}{i}"));
        }

        // Every SUBSCRIBE from now on is in an old dialog: the refreshes (due 10 s after the
        // grant), then the unsubscribes after de-REGISTERs. None is initial.
        let old = |m: &Message| subs.iter().position(|s| s.call_id() == m.call_id());
        let mut refreshes: Vec<Option<Message>> = vec![None; subs.len()];
        while refreshes.iter().any(Option::is_none) {
            let (m, from) = self.next_subscribe().await;
            let i = old(&m).expect("a SUBSCRIBE in an old dialog, never an initial one");
            assert_eq!(m.to().tag(), Some("scscf-tag"));
            assert!(m.cseq().seq > subs[i].cseq().seq);
            self.scscf
                .send(from, &subscribe_ok(&m, self.scscf.addr, GRANT))
                .await
                .unwrap();
            refreshes[i] = Some(m);
        }
        for i in 0..subs.len() {
            let user = format!("u{i}");
            self.ue
                .send(
                    self.gw,
                    &register_bytes(&user, self.ue.addr, "UDP", 2, 0, ""),
                )
                .await
                .unwrap();
            let (fwd, from) = next_of(self.core, "REGISTER", false)
                .await
                .expect("de-REGISTER");
            self.core
                .send(from, &register_ok(&fwd, self.scscf.addr, 0, &[]))
                .await
                .unwrap();
            let unsub = loop {
                let (m, _) = self.next_subscribe().await;
                if m.expires().unwrap() == Some(0) {
                    break m;
                }
                // A retransmitted refresh: still in an old dialog.
                assert!(old(&m).is_some(), "a SUBSCRIBE in an old dialog");
            };
            assert_eq!(old(&unsub), Some(i), "the unsubscribe is in an old dialog");
            assert_eq!(unsub.to().tag(), Some("scscf-tag"));
        }
        refreshes.into_iter().flatten().collect()
    }
}
