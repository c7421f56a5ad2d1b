//! The registrar's flow index (issue 6): a UE is found by the flow its messages arrive on, and
//! the index follows every binding change (re-registration from a new flow, binding removal,
//! expiry, deregistration, two registrations sharing one flow).

use std::sync::Arc;
use std::time::{Duration, Instant};

use regevent_gw::config::Transport;
use regevent_gw::registrar::{
    BindingMatch, Flow, Granted, RegisterOutcome, Registrar, RemovalReason,
};

fn flow(port: u16) -> Flow {
    Flow {
        transport: Transport::Udp,
        peer: format!("127.0.0.1:{port}").parse().unwrap(),
        listener: 0,
    }
}

fn register(r: &mut Registrar, now: Instant, pui: &str, f: Flow, contacts: &[(&str, u32)]) {
    let tg: Arc<str> = Arc::from("default");
    let o = RegisterOutcome {
        trunk_group: &tg,
        flow: f,
        aor: pui,
        request_contacts: contacts.iter().map(|(c, _)| named(c)).collect(),
        bindings: contacts.iter().map(|&(c, e)| granted(c, e)).collect(),
        associated: vec![pui],
        service_route: vec![],
    };
    r.on_register_ok(now, &o, &mut Vec::new());
}

#[test]
fn flow_index_follows_registration_changes() {
    let mut r = Registrar::new();
    let t0 = Instant::now();
    register(&mut r, t0, "sip:a@x", flow(1), &[("sip:a@1", 600)]);
    assert_eq!(
        r.by_flow(&flow(1)).map(|g| &*g.default_pui),
        Some("sip:a@x")
    );
    assert!(r.by_flow(&flow(2)).is_none());

    // Re-registration from another flow moves the binding.
    register(&mut r, t0, "sip:a@x", flow(2), &[("sip:a@1", 600)]);
    assert!(r.by_flow(&flow(1)).is_none(), "old flow forgotten");
    assert!(r.by_flow(&flow(2)).is_some());

    // A second registration on the same flow; removing one keeps the other findable.
    register(&mut r, t0, "sip:b@x", flow(2), &[("sip:b@1", 600)]);
    assert!(r.remove(
        "sip:a@x",
        RemovalReason::UserDeregistration,
        &mut Vec::new()
    ));
    assert_eq!(
        r.by_flow(&flow(2)).map(|g| &*g.default_pui),
        Some("sip:b@x")
    );

    // Binding removal.
    let m = BindingMatch {
        uri: "sip:b@1",
        instance: None,
        reg_id: None,
    };
    assert!(r.remove_binding("sip:b@x", m, &mut Vec::new()));
    assert!(r.by_flow(&flow(2)).is_none());

    // Two bindings on different flows, then expiry.
    register(&mut r, t0, "sip:c@x", flow(3), &[("sip:c@1", 10)]);
    let tg: Arc<str> = Arc::from("default");
    let o = RegisterOutcome {
        trunk_group: &tg,
        flow: flow(4),
        aor: "sip:c@x",
        request_contacts: vec![named("sip:c@2")],
        bindings: vec![granted("sip:c@1", 10), granted("sip:c@2", 600)],
        associated: vec!["sip:c@x"],
        service_route: vec![],
    };
    r.on_register_ok(t0, &o, &mut Vec::new());
    assert!(
        r.by_flow(&flow(3)).is_some(),
        "the unnamed binding keeps its flow"
    );
    assert!(r.by_flow(&flow(4)).is_some());
    // (The registrar reaps bindings when the registration's last expiry passes.)
    r.handle_timeout(t0 + Duration::from_secs(601), &mut Vec::new());
    assert!(
        r.by_flow(&flow(3)).is_none(),
        "expired binding's flow forgotten"
    );
    assert!(r.by_flow(&flow(4)).is_none());
    assert!(r.is_empty());
}

fn granted(uri: &str, expires: u32) -> Granted<'_> {
    Granted {
        uri,
        expires,
        instance: None,
        reg_id: None,
    }
}

fn named(uri: &str) -> BindingMatch<'_> {
    BindingMatch {
        uri,
        instance: None,
        reg_id: None,
    }
}

/// A REGISTER of flow `reg_id` of one device (same Contact URI for every flow), from `f`; the
/// 2xx lists `flows`.
fn register_flow(r: &mut Registrar, now: Instant, f: Flow, reg_id: u32, flows: &[u32]) {
    let tg: Arc<str> = Arc::from("default");
    let o = RegisterOutcome {
        trunk_group: &tg,
        flow: f,
        aor: "sip:ana@x",
        request_contacts: vec![BindingMatch {
            uri: "sip:ana@192.0.2.7;ob",
            instance: Some("urn:uuid:1"),
            reg_id: Some(reg_id),
        }],
        bindings: flows
            .iter()
            .map(|r| Granted {
                uri: "sip:ana@192.0.2.7;ob",
                expires: 600,
                instance: Some("urn:uuid:1"),
                reg_id: Some(*r),
            })
            .collect(),
        associated: vec!["sip:ana@x"],
        service_route: vec![],
    };
    r.on_register_ok(now, &o, &mut Vec::new());
}

fn flows_of(r: &Registrar) -> Vec<(Option<u32>, u16)> {
    let mut v: Vec<_> = r
        .get("sip:ana@x")
        .map(|g| {
            g.bindings
                .iter()
                .map(|b| (b.reg_id, b.flow.peer.port()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn each_reg_id_is_a_binding_of_its_own_with_its_own_flow() {
    let mut r = Registrar::new();
    let t0 = Instant::now();
    register_flow(&mut r, t0, flow(1), 1, &[1]);
    register_flow(&mut r, t0, flow(2), 2, &[1, 2]);
    assert_eq!(
        flows_of(&r),
        [(Some(1), 1), (Some(2), 2)],
        "flow 2 kept flow 1's socket"
    );
    // Flow 1 re-registers: its own binding moves, flow 2's stays.
    register_flow(&mut r, t0, flow(3), 1, &[1, 2]);
    assert_eq!(flows_of(&r), [(Some(1), 3), (Some(2), 2)]);
    assert!(r.by_flow(&flow(2)).is_some() && r.by_flow(&flow(1)).is_none());
}

#[test]
fn a_reginfo_contact_with_a_reg_id_removes_that_flow_only_and_without_one_every_flow() {
    let mut r = Registrar::new();
    let t0 = Instant::now();
    register_flow(&mut r, t0, flow(1), 1, &[1]);
    register_flow(&mut r, t0, flow(2), 2, &[1, 2]);
    let m = |reg_id| BindingMatch {
        uri: "sip:ana@192.0.2.7;ob",
        instance: Some("urn:uuid:1"),
        reg_id,
    };
    let mut ev = Vec::new();
    assert!(r.remove_binding("sip:ana@x", m(Some(2)), &mut ev));
    assert_eq!(flows_of(&r), [(Some(1), 1)]);
    assert!(r.by_flow(&flow(2)).is_none(), "the flow index follows");
    assert!(
        !r.remove_binding("sip:ana@x", m(Some(2)), &mut ev),
        "already gone"
    );
    assert!(
        !r.remove_binding("sip:ana@x", m(Some(3)), &mut ev),
        "no such flow"
    );
    assert!(r.get("sip:ana@x").is_some());
    // A notifier that names the Contact URI alone means every flow of it.
    register_flow(&mut r, t0, flow(2), 2, &[1, 2]);
    let uri_only = BindingMatch {
        uri: "sip:ana@192.0.2.7;ob",
        instance: None,
        reg_id: None,
    };
    ev.clear();
    assert!(r.remove_binding("sip:ana@x", uri_only, &mut ev));
    assert!(
        r.get("sip:ana@x").is_none(),
        "the last flow gone ends the registration"
    );
    assert!(ev
        .iter()
        .any(|e| matches!(e, regevent_gw::registrar::RegEvent::Removed { .. })));
}
