//! The subscription engine's NOTIFY handling (SPEC §6) with virtual time: full and partial
//! state, versions, registration actions.

use regevent_gw::reginfo::{ContactEvent, ContactState, DocState, RegState, Reginfo};
use regevent_gw::registrar::RemovalReason;
use regevent_gw::subscription::*;

mod sub_harness;
use sub_harness::*;

// ---------------------------------------------------------------------------------------------
// NOTIFY semantics (SPEC §6)

const WORK: &str = "sip:alice.work@ims.example.net";
const TEL: &str = "tel:+4912345";

fn full_two(version: u64) -> Reginfo {
    doc(
        version,
        DocState::Full,
        vec![
            reg(PUI, RegState::Active, vec![active_contact()]),
            reg(WORK, RegState::Active, vec![active_contact()]),
        ],
    )
}

#[test]
fn full_state_replaces_and_partial_applies() {
    let mut h = H::new();
    let s = h.subscribed(3660);
    // Known set: the default PUI only. Full state with WORK → AddPui.
    assert_eq!(
        h.notify(1.0, s.sub, &ni("active", Some(3600), Some(&full_two(0))))
            .status,
        200
    );
    let out = h.outputs();
    assert_eq!(
        regs_of(&out),
        [RegAction::AddPui {
            default_pui: PUI.into(),
            pui: WORK.into()
        }]
    );
    // Partial adds TEL.
    let p = doc(
        1,
        DocState::Partial,
        vec![reg(TEL, RegState::Active, vec![])],
    );
    h.notify(2.0, s.sub, &ni("active", Some(3600), Some(&p)));
    assert_eq!(
        regs_of(&h.outputs()),
        [RegAction::AddPui {
            default_pui: PUI.into(),
            pui: TEL.into()
        }]
    );
    assert_eq!(h.view()[0].implicit_puis, 3);
    // Full state without WORK and TEL → both removed.
    let f = doc(
        2,
        DocState::Full,
        vec![reg(PUI, RegState::Active, vec![active_contact()])],
    );
    h.notify(3.0, s.sub, &ni("active", Some(3600), Some(&f)));
    let mut got = regs_of(&h.outputs());
    got.sort_by_key(|a| format!("{a:?}"));
    assert_eq!(
        got,
        [
            RegAction::RemovePui {
                default_pui: PUI.into(),
                pui: WORK.into()
            },
            RegAction::RemovePui {
                default_pui: PUI.into(),
                pui: TEL.into()
            },
        ]
    );
    assert_eq!(h.view()[0].last_notify_version, Some(2));
}

#[test]
fn stale_version_is_ignored() {
    let mut h = H::new();
    let s = h.subscribed(3660);
    h.notify(1.0, s.sub, &ni("active", None, Some(&full_two(5))));
    h.outputs();
    let p = doc(
        5,
        DocState::Partial,
        vec![reg(WORK, RegState::Terminated, vec![])],
    );
    assert_eq!(
        h.notify(2.0, s.sub, &ni("active", None, Some(&p))).status,
        200
    );
    assert!(h.outputs().is_empty());
    assert_eq!(h.view()[0].last_notify_version, Some(5));
}

#[test]
fn version_gap_requests_full_state() {
    let mut h = H::new();
    let s = h.subscribed(3660);
    h.notify(1.0, s.sub, &ni("active", None, Some(&full_two(0))));
    h.outputs();
    let p = doc(
        3,
        DocState::Partial,
        vec![reg(WORK, RegState::Terminated, vec![])],
    );
    assert_eq!(
        h.notify(2.0, s.sub, &ni("active", None, Some(&p))).status,
        200
    );
    let f = h.one_send();
    assert_eq!(f.kind, SubscribeKind::FullStateRequest);
    assert_eq!((f.cseq, f.expires), (2, 660));
    assert_eq!(f.to_tag.as_deref(), Some("notifier-tag"));
    assert_eq!(f.call_id, s.call_id);
    // Partial documents are ignored until full state arrives.
    let p = doc(
        4,
        DocState::Partial,
        vec![reg(WORK, RegState::Terminated, vec![])],
    );
    h.notify(2.5, s.sub, &ni("active", None, Some(&p)));
    assert!(h.outputs().is_empty(), "no action and no second request");
    h.respond(2.6, &f, 200, Some(3660));
    let full = doc(
        5,
        DocState::Full,
        vec![reg(PUI, RegState::Active, vec![active_contact()])],
    );
    h.notify(2.7, s.sub, &ni("active", Some(3660), Some(&full)));
    assert_eq!(
        regs_of(&h.outputs()),
        [RegAction::RemovePui {
            default_pui: PUI.into(),
            pui: WORK.into()
        }]
    );
    let out = h.run_until(5000.0);
    assert_eq!(
        out[0].0, 3062.7,
        "the full-state request counts as a refresh"
    );
}

#[test]
fn partial_first_notify_requests_full_state() {
    let mut h = H::new();
    let s = h.subscribed(3660);
    let p = doc(
        0,
        DocState::Partial,
        vec![reg(WORK, RegState::Active, vec![])],
    );
    assert_eq!(
        h.notify(1.0, s.sub, &ni("active", None, Some(&p))).status,
        200
    );
    let out = h.outputs();
    assert!(regs_of(&out).is_empty());
    assert_eq!(h.one_send_from(out).kind, SubscribeKind::FullStateRequest);
}

#[test]
fn default_pui_terminated_is_network_deregistration() {
    for state in ["active", "terminated"] {
        let mut h = H::new();
        let s = h.subscribed(3660);
        h.notify(1.0, s.sub, &ni("active", None, Some(&full_two(0))));
        h.outputs();
        let p = doc(
            1,
            DocState::Partial,
            vec![reg(
                PUI,
                RegState::Terminated,
                vec![contact(
                    "sip:ue@10.0.0.1:5060",
                    ContactState::Terminated,
                    ContactEvent::Deactivated,
                    None,
                )],
            )],
        );
        assert_eq!(h.notify(2.0, s.sub, &ni(state, None, Some(&p))).status, 200);
        let out = h.outputs();
        assert_eq!(
            regs_of(&out),
            [RegAction::NetworkDeregistration {
                default_pui: PUI.into()
            }],
            "{state}"
        );
        let sends: Vec<_> = out
            .iter()
            .filter_map(|o| {
                if let Output::Send(s) = o {
                    Some(s)
                } else {
                    None
                }
            })
            .collect();
        if state == "active" {
            assert_eq!(sends.len(), 1);
            assert_eq!(
                (sends[0].kind, sends[0].expires),
                (SubscribeKind::Unsubscribe, 0)
            );
        } else {
            assert!(
                sends.is_empty(),
                "terminated by the notifier: no unsubscribe"
            );
        }
        assert_eq!(h.e.len(), 0);
        // The registrar then removes the registration: nothing more happens.
        h.removed(2.1, PUI, RemovalReason::Network);
        assert!(h.outputs().is_empty());
        assert_eq!(h.e.blind_registrations(), 0);
    }
}

#[test]
fn other_pui_terminated_is_remove_pui() {
    let mut h = H::new();
    let s = h.subscribed(3660);
    h.notify(1.0, s.sub, &ni("active", None, Some(&full_two(0))));
    h.outputs();
    let p = doc(
        1,
        DocState::Partial,
        vec![reg(WORK, RegState::Terminated, vec![])],
    );
    h.notify(2.0, s.sub, &ni("active", None, Some(&p)));
    assert_eq!(
        regs_of(&h.outputs()),
        [RegAction::RemovePui {
            default_pui: PUI.into(),
            pui: WORK.into()
        }]
    );
    assert_eq!(h.e.len(), 1);
}

#[test]
fn terminated_contacts_remove_bindings_for_every_event() {
    let events = [
        ContactEvent::Expired,
        ContactEvent::Deactivated,
        ContactEvent::Probation,
        ContactEvent::Unregistered,
        ContactEvent::Rejected,
        ContactEvent::Refreshed,
        ContactEvent::Other("gone-away".into()),
    ];
    for ev in events {
        let mut h = H::new();
        let s = h.subscribed(3660);
        h.notify(1.0, s.sub, &ni("active", None, Some(&full_two(0))));
        h.outputs();
        let c = contact(
            "sip:ue@10.0.0.1:5060",
            ContactState::Terminated,
            ev.clone(),
            None,
        );
        // The same binding under two PUIs of the implicit set: one action.
        let p = doc(
            1,
            DocState::Partial,
            vec![
                reg(PUI, RegState::Active, vec![c.clone()]),
                reg(WORK, RegState::Active, vec![c]),
            ],
        );
        h.notify(2.0, s.sub, &ni("active", None, Some(&p)));
        assert_eq!(
            regs_of(&h.outputs()),
            [RegAction::RemoveBinding {
                default_pui: PUI.into(),
                contact: BindingRef {
                    uri: "sip:ue@10.0.0.1:5060".into(),
                    instance: Some("urn:uuid:0000-1111".into()),
                    reg_id: Some(1),
                },
            }],
            "{ev:?}"
        );
    }
}

#[test]
fn shortened_and_refreshed_update_expiry() {
    let mut h = H::new();
    let s = h.subscribed(3660);
    h.notify(1.0, s.sub, &ni("active", None, Some(&full_two(0))));
    h.outputs();
    let short = contact(
        "sip:ue@10.0.0.1:5060",
        ContactState::Active,
        ContactEvent::Shortened,
        Some(120),
    );
    let mut other = contact(
        "sip:ue2@10.0.0.2",
        ContactState::Active,
        ContactEvent::Refreshed,
        Some(900),
    );
    other.unknown_params.clear();
    let no_exp = contact(
        "sip:ue3@10.0.0.3",
        ContactState::Active,
        ContactEvent::Shortened,
        None,
    );
    let p = doc(
        1,
        DocState::Partial,
        vec![reg(PUI, RegState::Active, vec![short, other, no_exp])],
    );
    h.notify(2.0, s.sub, &ni("active", None, Some(&p)));
    assert_eq!(
        regs_of(&h.outputs()),
        [
            RegAction::UpdateBindingExpiry {
                default_pui: PUI.into(),
                contact: BindingRef {
                    uri: "sip:ue@10.0.0.1:5060".into(),
                    instance: Some("urn:uuid:0000-1111".into()),
                    reg_id: Some(1),
                },
                expires: 120,
            },
            RegAction::UpdateBindingExpiry {
                default_pui: PUI.into(),
                contact: BindingRef {
                    uri: "sip:ue2@10.0.0.2".into(),
                    instance: None,
                    reg_id: None
                },
                expires: 900,
            },
        ]
    );
}

#[test]
fn notify_for_unknown_subscription_is_481() {
    let mut h = H::new();
    let a = h.notify(0.0, SubId(999), &ni("active", None, None));
    assert_eq!(a.status, 481);
}
