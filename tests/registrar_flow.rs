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
        request_contacts: contacts.iter().map(|(c, _)| *c).collect(),
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
        request_contacts: vec!["sip:c@2"],
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
