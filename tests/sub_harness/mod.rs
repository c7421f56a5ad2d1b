//! Shared harness for the subscription engine tests: a virtual clock, a fake notifier's
//! responses and NOTIFY inputs, reginfo builders.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use regevent_gw::reginfo::{
    Contact, ContactEvent, ContactState, DocState, RegState, Reginfo, Registration,
};
use regevent_gw::registrar::{RegEvent, RemovalReason};
use regevent_gw::subscription::*;

pub const PUI: &str = "sip:alice@ims.example.net";
pub const NOTIFIER: &str = "sip:scscf1.ims.example.net:5060";

pub fn cfg() -> EngineConfig {
    EngineConfig {
        identity: "sip:pcscf.example.net:5060".into(),
        contact: "<sip:pcscf.example.net:5060>".into(),
        p_asserted_identity: Some("<sip:pcscf.example.net>".into()),
        max_forwards: 70,
        expiry_margin: Duration::from_secs(60),
        max_subscribe_rate: 0,
        seed: 7,
        linger: Duration::from_secs(32),
    }
}

pub fn policy() -> SubscribePolicy {
    SubscribePolicy {
        enabled: true,
        route: vec!["<sip:scscf1.ims.example.net;lr>".into()],
        resubscribe_on_reregistration: false,
    }
}

pub struct H {
    pub e: Engine,
    pub base: Instant,
}

impl H {
    pub fn new() -> Self {
        Self::with(cfg())
    }
    pub fn with(c: EngineConfig) -> Self {
        H {
            e: Engine::new(c),
            base: Instant::now(),
        }
    }
    pub fn at(&self, secs: f64) -> Instant {
        self.base + Duration::from_secs_f64(secs)
    }
    pub fn secs(&self, at: Instant) -> f64 {
        (at - self.base).as_secs_f64()
    }
    pub fn registered(
        &mut self,
        t: f64,
        pui: &str,
        granted: u64,
        initial: bool,
        p: &SubscribePolicy,
    ) {
        self.registered_set(t, pui, &[pui], granted, initial, p)
    }
    pub fn registered_set(
        &mut self,
        t: f64,
        pui: &str,
        set: &[&str],
        granted: u64,
        initial: bool,
        p: &SubscribePolicy,
    ) {
        let ev = RegEvent::Registered {
            default_pui: pui.into(),
            trunk_group: "access".into(),
            initial,
            associated: set.iter().map(|s| std::sync::Arc::from(*s)).collect(),
            service_route: p.route.clone(),
            granted: Duration::from_secs(granted),
            bindings: 1,
        };
        self.e.on_registration(self.at(t), &ev, p);
    }
    pub fn removed(&mut self, t: f64, pui: &str, reason: RemovalReason) {
        let ev = RegEvent::Removed {
            default_pui: pui.into(),
            trunk_group: "access".into(),
            reason,
        };
        self.e.on_registration(self.at(t), &ev, &policy());
    }
    pub fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.e.poll_output()).collect()
    }
    pub fn sends(&mut self) -> Vec<OutSubscribe> {
        self.outputs()
            .into_iter()
            .filter_map(|o| match o {
                Output::Send(s) => Some(s),
                Output::Reg(_) => None,
            })
            .collect()
    }
    pub fn one_send(&mut self) -> OutSubscribe {
        let mut v = self.sends();
        assert_eq!(v.len(), 1, "expected exactly one SUBSCRIBE: {v:?}");
        v.remove(0)
    }
    pub fn respond(&mut self, t: f64, s: &OutSubscribe, status: u16, expires: Option<u32>) {
        let r = ResponseInput {
            status,
            cseq: s.cseq,
            expires,
            to_tag: Some("notifier-tag".into()),
            record_route: vec!["<sip:p1.example;lr>".into(), "<sip:p2.example;lr>".into()],
            contact: Some(NOTIFIER.into()),
        };
        self.e.on_response(self.at(t), s.sub, &r);
    }
    /// Advance virtual time to `until`, collecting (time, output).
    pub fn run_until(&mut self, until: f64) -> Vec<(f64, Output)> {
        let mut got = Vec::new();
        while let Some(at) = self.e.poll_timeout() {
            if self.secs(at) > until + 1e-9 {
                break;
            }
            self.e.handle_timeout(at);
            let t = self.secs(at);
            got.extend(self.outputs().into_iter().map(|o| (t, o)));
        }
        got
    }
    pub fn notify(&mut self, t: f64, sub: SubId, n: &NotifyInput<'_>) -> NotifyAnswer {
        self.e.on_notify(self.at(t), sub, n)
    }
    pub fn view(&self) -> Vec<SubscriptionView> {
        let mut v = Vec::new();
        self.e.for_each_view(&mut |x| v.push(x));
        v
    }
    /// Register, answer the initial SUBSCRIBE with 2xx granting `grant`.
    pub fn subscribed(&mut self, grant: u32) -> OutSubscribe {
        self.registered(0.0, PUI, 600, true, &policy());
        let s = self.one_send();
        self.respond(0.0, &s, 200, Some(grant));
        s
    }
}

pub fn ni<'a>(state: &'a str, expires: Option<u32>, doc: Option<&'a Reginfo>) -> NotifyInput<'a> {
    NotifyInput {
        cseq: 1,
        remote_tag: "notifier-tag",
        record_route: vec!["<sip:p1.example;lr>".into(), "<sip:p2.example;lr>".into()],
        contact: Some(NOTIFIER.into()),
        sub_state: regevent_gw::sip::SubscriptionStatus::from_text(state),
        sub_expires: expires,
        sub_reason: None,
        doc,
    }
}

pub fn contact(
    uri: &str,
    state: ContactState,
    event: ContactEvent,
    expires: Option<u32>,
) -> Contact {
    Contact {
        id: format!("c-{uri}"),
        state,
        event,
        expires,
        retry_after: None,
        duration_registered: None,
        q: None,
        callid: None,
        cseq: None,
        uri: uri.into(),
        display_name: None,
        unknown_params: vec![
            (
                "+sip.instance".into(),
                Some("\"<urn:uuid:0000-1111>\"".into()),
            ),
            ("reg-id".into(), Some("1".into())),
        ],
        pub_gruu: None,
        temp_gruu: None,
        temp_gruu_first_cseq: None,
    }
}

pub fn reg(aor: &str, state: RegState, contacts: Vec<Contact>) -> Registration {
    Registration {
        aor: aor.into(),
        id: format!("r-{aor}"),
        state,
        contacts,
        wildcarded_identity: None,
    }
}

pub fn active_contact() -> Contact {
    contact(
        "sip:ue@10.0.0.1:5060",
        ContactState::Active,
        ContactEvent::Registered,
        Some(600),
    )
}

pub fn doc(version: u64, state: DocState, registrations: Vec<Registration>) -> Reginfo {
    Reginfo {
        version,
        state,
        registrations,
    }
}

pub fn regs_of(out: &[Output]) -> Vec<RegAction> {
    out.iter()
        .filter_map(|o| match o {
            Output::Reg(a) => Some(a.clone()),
            Output::Send(_) => None,
        })
        .collect()
}

impl H {
    pub fn one_send_from(&self, out: Vec<Output>) -> OutSubscribe {
        let mut v: Vec<OutSubscribe> = out
            .into_iter()
            .filter_map(|o| {
                if let Output::Send(s) = o {
                    Some(s)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }
}
