//! The socket [`Harness`](super::Harness) in virtual time: the gateway's sans-IO core on
//! [`Sim`], with the UE, the core (registrar) and the S-CSCF (notifier) as plain addresses. The
//! helpers mirror the socket ones (same names, same messages: the bytes come from the shared
//! builders in `common`), so that a test reads the same on either; but here time passes only
//! when the test lets it (`recv` with a wait, `sim.advance`), and "nothing was sent within N" is
//! exact.

use std::net::SocketAddr;
use std::time::Duration;

use regevent_gw::registrar::Registration;
use regevent_gw::settings::{Profile, Settings};
use regevent_gw::sip::Message;
use regevent_lab::sim::Sim;

use super::{notify, register_bytes, register_ok, subscribe_ok, WAIT};

/// The gateway: its identity (`sip:127.0.0.1:5060`) and its UDP and TCP listeners.
pub const GW: &str = "127.0.0.1:5060";
pub const UE: &str = "127.0.0.2:5060";
/// The core (registrar), `sip.core`.
pub const CORE: &str = "127.0.0.3:5060";
/// The S-CSCF (notifier), named by the core's Service-Route.
pub const SCSCF: &str = "127.0.0.4:5060";
/// T1 as in the socket harness: UDP retransmissions at 20, 60, 140 ms…, Timer F = 64×T1 = 1.28 s.
pub const T1: Duration = Duration::from_millis(20);

pub fn addr(a: &str) -> SocketAddr {
    a.parse().expect("literal address")
}

/// The gateway's core in virtual time with a UE, a core and an S-CSCF around it.
pub struct Virt {
    pub sim: Sim,
    /// The gateway's listener address (UDP and TCP).
    pub gw: SocketAddr,
    pub port: u16,
    pub ue: SocketAddr,
    pub core: SocketAddr,
    pub scscf: SocketAddr,
}

impl Virt {
    pub fn start(p: Profile) -> Virt {
        Self::start_with(p, |_| {})
    }

    /// Every trunk group on profile `p`, then `tweak` (as
    /// [`Harness::start_with`](super::Harness::start_with) does with the configuration).
    pub fn start_with(p: Profile, tweak: impl FnOnce(&mut Settings)) -> Virt {
        let gw = addr(GW);
        let mut settings = Settings {
            identity: format!("sip:{gw}"),
            core: format!("sip:{CORE}"),
            t1: T1,
            listeners: vec![format!("udp:{gw}"), format!("tcp:{gw}")],
            ..Settings::default()
        }
        .with_profile(p);
        tweak(&mut settings);
        Virt {
            sim: Sim::new(settings, 7),
            gw,
            port: gw.port(),
            ue: addr(UE),
            core: addr(CORE),
            scscf: addr(SCSCF),
        }
    }

    /// The next message the gateway sends to `at` within `wait` of virtual time (`None`: none
    /// was sent by then).
    pub fn recv(&mut self, at: SocketAddr, wait: Duration) -> Option<Message> {
        self.sim.recv(at, wait).map(|s| s.msg)
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

    /// The core's 200 OK to a forwarded REGISTER, Service-Route towards our S-CSCF
    /// ([`register_ok`]).
    pub fn register_ok(&self, req: &Message, expires: u32, implicit: &[&str]) -> bytes::Bytes {
        register_ok(req, self.scscf, expires, implicit)
    }

    /// Full UDP registration: UE → gw → core → 200 → gw → UE. Returns (forwarded REGISTER,
    /// 200 OK as the UE got it).
    pub fn register(
        &mut self,
        user: &str,
        cseq: u32,
        expires: u32,
        implicit: &[&str],
    ) -> (Message, Message) {
        self.register_with(user, cseq, expires, implicit, "")
    }

    pub fn register_with(
        &mut self,
        user: &str,
        cseq: u32,
        expires: u32,
        implicit: &[&str],
        params: &str,
    ) -> (Message, Message) {
        let req = self.register_bytes(user, self.ue, "UDP", cseq, expires, params);
        self.sim.send(self.ue, req);
        let fwd = self.recv(self.core, WAIT).expect("core got REGISTER");
        let ok = self.register_ok(&fwd, expires, implicit);
        self.sim.send(self.core, ok);
        let resp = self.recv(self.ue, WAIT).expect("UE got 200");
        (fwd, resp)
    }

    /// Next SUBSCRIBE at the S-CSCF within [`WAIT`] (anything else on the way is dropped).
    pub fn next_subscribe(&mut self) -> Option<Message> {
        self.recv_where(self.scscf, |m| {
            m.is_request() && m.method_str() == "SUBSCRIBE"
        })
    }

    /// Let `wait` pass at the S-CSCF after each arrival: only retransmissions of `first` may
    /// arrive (T1 is 20 ms, so an unanswered SUBSCRIBE is retransmitted). Returns how many did.
    pub fn only_retransmissions_of(&mut self, first: &Message, wait: Duration) -> usize {
        let mut n = 0;
        while let Some(m) = self.recv(self.scscf, wait) {
            assert_eq!(m.call_id(), first.call_id(), "a second subscription");
            assert_eq!(m.cseq().seq, first.cseq().seq);
            n += 1;
        }
        n
    }

    /// Register `user` and answer the gateway's SUBSCRIBE with a 200 granting `grant` seconds;
    /// returns the SUBSCRIBE.
    pub fn subscribed(&mut self, user: &str, implicit: &[&str], grant: u32) -> Message {
        self.register(user, 1, 600, implicit);
        let sub = self.next_subscribe().expect("SUBSCRIBE");
        let ok = self.subscribe_ok(&sub, grant);
        self.sim.send(self.scscf, ok);
        sub
    }

    /// The S-CSCF's 200 OK to a SUBSCRIBE ([`subscribe_ok`]).
    pub fn subscribe_ok(&self, sub: &Message, expires: u32) -> bytes::Bytes {
        subscribe_ok(sub, self.scscf, expires)
    }

    /// A NOTIFY from the S-CSCF in the dialog of `sub` ([`notify`]).
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
            self.scscf,
            cseq,
            sub_state,
            content_type,
            body,
        )
    }

    /// The S-CSCF sends a NOTIFY; returns the gateway's response.
    pub fn send_notify(&mut self, bytes: &[u8]) -> Message {
        self.sim.send(self.scscf, bytes.to_vec());
        self.next_of(self.scscf, "NOTIFY", true)
            .expect("response to NOTIFY")
    }

    /// Next message at `at` within [`WAIT`] that is a request of `method` (or, with `response`,
    /// a response whose CSeq method is `method`), dropping everything else on the way.
    pub fn next_of(&mut self, at: SocketAddr, method: &str, response: bool) -> Option<Message> {
        self.recv_where(at, |m| {
            m.is_request() != response && m.cseq().method == method
        })
    }

    /// Next message at `at` within [`WAIT`] satisfying `want`; others on the way are dropped.
    pub fn recv_where(
        &mut self,
        at: SocketAddr,
        want: impl FnMut(&Message) -> bool,
    ) -> Option<Message> {
        self.sim.recv_where(at, WAIT, want).map(|s| s.msg)
    }

    /// The registration of this default PUI, now.
    pub fn registered(&self, pui: &str) -> Option<Registration> {
        self.sim.core.registrar().get(pui).cloned()
    }

    /// Live subscriptions, now.
    pub fn subscriptions(&self) -> usize {
        self.sim.core.engine().len()
    }
}
