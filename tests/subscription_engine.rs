//! The subscription engine driven with virtual time (no sockets, no sleeps): refresh timing,
//! dialog handling, removal, unsubscribe, NOTIFY semantics, the refresh storm guard.

use std::sync::Arc;

use regevent_gw::reginfo::{DocState, RegState};
use regevent_gw::registrar::RemovalReason;
use regevent_gw::subscription::*;

mod sub_harness;
use sub_harness::*;

// ---------------------------------------------------------------------------------------------
// Subscribing and refresh timing

#[test]
fn initial_subscribe_contents() {
    let mut h = H::new();
    h.registered(0.0, PUI, 600, true, &policy());
    let s = h.one_send();
    assert_eq!(s.kind, SubscribeKind::Initial);
    assert_eq!((s.request_uri.as_str(), s.to.as_str()), (PUI, PUI));
    assert_eq!(s.from, "sip:pcscf.example.net:5060");
    assert_eq!(s.to_tag, None);
    assert!(!s.from_tag.is_empty());
    assert!(s.call_id.ends_with("@pcscf.example.net"), "{}", s.call_id);
    assert_eq!((s.cseq, s.expires, s.max_forwards), (1, 660, 70));
    assert_eq!(s.route, policy().route);
    assert_eq!(s.contact, "<sip:pcscf.example.net:5060>");
    assert_eq!(
        s.p_asserted_identity.as_deref(),
        Some("<sip:pcscf.example.net>")
    );
    assert_eq!(&*s.trunk_group, "access");
    // Fresh identifiers per subscription.
    h.registered(0.0, "sip:bob@ims.example.net", 600, true, &policy());
    let b = h.one_send();
    assert_ne!(b.call_id, s.call_id);
    assert_ne!(b.from_tag, s.from_tag);
    let v = h.view();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].state, SubState::Pending);
    assert_eq!(v[0].registrar, "<sip:scscf1.ims.example.net;lr>");
}

#[test]
fn refresh_timing_table() {
    // (registration expiry, requested, granted by the 2xx, refresh at)
    let table: &[(u64, u32, Option<u32>, f64)] = &[
        (600, 660, Some(660), 330.0),
        (3600, 3660, Some(3660), 3060.0),
        (3600, 3660, Some(1201), 601.0),
        (3600, 3660, Some(1200), 600.0),
        (3600, 3660, Some(30), 15.0),
        (600, 660, None, 330.0), // no Expires in the 2xx: the requested value
    ];
    for &(reg_expiry, requested, granted, refresh_at) in table {
        let mut h = H::new();
        h.registered(0.0, PUI, reg_expiry, true, &policy());
        let s = h.one_send();
        assert_eq!(s.expires, requested);
        h.respond(0.0, &s, 200, granted);
        assert_eq!(
            h.e.poll_timeout().map(|t| h.secs(t)),
            Some(refresh_at),
            "{granted:?}"
        );
        let out = h.run_until(refresh_at + 1.0);
        assert_eq!(out.len(), 1, "{granted:?}: {out:?}");
        let (t, Output::Send(r)) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(*t, refresh_at);
        assert_eq!(r.kind, SubscribeKind::Refresh);
        assert_eq!(
            r.expires, requested,
            "a refresh asks for the initial duration"
        );
        let v = h.view();
        assert_eq!(v[0].state, SubState::Refreshing);
        assert_eq!(v[0].granted_expiry, Some(granted.unwrap_or(requested)));
    }
}

#[test]
fn refresh_after_refresh_times_from_the_second_grant() {
    let mut h = H::new();
    h.subscribed(660);
    let out = h.run_until(400.0);
    let (330.0, Output::Send(r)) = &out[0] else {
        panic!("{out:?}")
    };
    h.respond(331.0, r, 200, Some(600));
    let out = h.run_until(900.0);
    let times: Vec<f64> = out.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        times,
        [631.0],
        "second refresh 300 s after the second grant"
    );
    assert_eq!(h.e.len(), 1);
}

#[test]
fn notify_expires_newer_than_the_2xx_wins() {
    let mut h = H::new();
    let s = h.subscribed(3660);
    let d = doc(
        0,
        DocState::Full,
        vec![reg(PUI, RegState::Active, vec![active_contact()])],
    );
    assert_eq!(
        h.notify(100.0, s.sub, &ni("active", Some(1000), Some(&d)))
            .status,
        200
    );
    let v = h.view();
    assert_eq!(v[0].granted_expiry, Some(1000));
    assert_eq!(v[0].state, SubState::Active);
    assert_eq!(v[0].last_notify_version, Some(0));
    let out = h.run_until(5000.0);
    assert_eq!(out[0].0, 600.0, "100 + 1000/2");
}

#[test]
fn one_subscription_for_an_implicit_set() {
    let mut h = H::new();
    let set = [PUI, "sip:alice.work@ims.example.net", "tel:+4912345"];
    h.registered_set(0.0, PUI, &set, 600, true, &policy());
    h.registered_set(0.0, PUI, &set, 600, false, &policy());
    let s = h.one_send();
    assert_eq!(s.to, PUI);
    let v = h.view();
    assert_eq!((v.len(), v[0].implicit_puis), (1, 3));
}

#[test]
fn one_subscription_for_two_reg_id_bindings() {
    let mut h = H::new();
    h.registered(0.0, PUI, 600, true, &policy());
    h.registered(1.0, PUI, 600, false, &policy());
    // Even a registrar that says "initial" again does not create a second one.
    h.registered(2.0, PUI, 600, true, &policy());
    let sends = h.sends();
    assert_eq!(
        sends
            .iter()
            .filter(|s| s.kind == SubscribeKind::Initial)
            .count(),
        1
    );
    assert_eq!(sends.len(), 1);
    assert!(h.e.has_subscription(PUI));
    assert_eq!(h.e.len(), 1);
}

#[test]
fn disabled_policy_never_subscribes() {
    let mut h = H::new();
    let off = SubscribePolicy {
        enabled: false,
        ..policy()
    };
    h.registered(0.0, PUI, 600, true, &off);
    h.registered(1.0, PUI, 600, false, &off);
    assert!(h.outputs().is_empty());
    assert_eq!((h.e.len(), h.e.blind_registrations()), (0, 0));
    assert_eq!(h.e.poll_timeout(), None);
}

// ---------------------------------------------------------------------------------------------
// Dialog

#[test]
fn refresh_goes_in_dialog() {
    let mut h = H::new();
    let s = h.subscribed(660);
    let out = h.run_until(330.0);
    let Output::Send(r) = &out[0].1 else { panic!() };
    assert_eq!(
        (r.call_id.as_str(), r.from_tag.as_str()),
        (s.call_id.as_str(), s.from_tag.as_str())
    );
    assert_eq!(r.to_tag.as_deref(), Some("notifier-tag"));
    assert_eq!(r.cseq, 2);
    assert_eq!(
        r.route,
        ["<sip:p2.example;lr>", "<sip:p1.example;lr>"],
        "reversed Record-Route"
    );
    assert_eq!(r.request_uri, NOTIFIER);
    assert_eq!(r.to, PUI);
    h.respond(330.0, r, 200, Some(660));
    let out = h.run_until(660.0);
    let Output::Send(r2) = &out[0].1 else {
        panic!()
    };
    assert_eq!(r2.cseq, 3);
}

#[test]
fn notify_before_2xx_establishes_the_dialog() {
    let mut h = H::new();
    h.registered(0.0, PUI, 600, true, &policy());
    let s = h.one_send();
    assert_eq!(h.e.find_dialog(&s.call_id, &s.from_tag), Some(s.sub));
    assert_eq!(h.e.find_dialog(&s.call_id, "other"), None);
    let mut n = ni("active", Some(660), None);
    n.remote_tag = "from-notify";
    n.contact = Some("sip:scscf9.example".into());
    assert_eq!(h.notify(0.1, s.sub, &n).status, 200);
    // The 2xx arrives later: it grants, but the dialog stays as the NOTIFY made it.
    let r = ResponseInput {
        status: 200,
        cseq: 1,
        expires: Some(660),
        to_tag: Some("from-notify".into()),
        record_route: vec!["<sip:x;lr>".into()],
        contact: None,
    };
    h.e.on_response(h.at(0.2), s.sub, &r);
    let out = h.run_until(400.0);
    let Output::Send(r) = &out[0].1 else { panic!() };
    assert_eq!(out[0].0, 330.2);
    assert_eq!(
        r.route,
        ["<sip:p1.example;lr>", "<sip:p2.example;lr>"],
        "as received"
    );
    assert_eq!(r.to_tag.as_deref(), Some("from-notify"));
    assert_eq!(r.request_uri, "sip:scscf9.example");
}

// ---------------------------------------------------------------------------------------------
// Removal without unsubscribe (SPEC §4)

fn assert_gone_quietly(h: &mut H) {
    assert_eq!(h.e.len(), 0);
    assert!(h.view().is_empty());
    assert!(!h.e.has_subscription(PUI));
    assert!(h.run_until(1e6).is_empty(), "never sent again");
    assert!(h.outputs().is_empty());
}

#[test]
fn error_to_initial_removes() {
    let mut h = H::new();
    h.registered(0.0, PUI, 600, true, &policy());
    let s = h.one_send();
    h.respond(0.5, &s, 403, None);
    assert_gone_quietly(&mut h);
    assert_eq!(h.e.blind_registrations(), 1);
    assert_eq!(h.e.blind_by_trunk_group(), [(Arc::from("access"), 1)]);
    // Re-registrations do not re-subscribe by default.
    h.registered(600.0, PUI, 600, false, &policy());
    assert!(h.outputs().is_empty());
    // The registration goes: no longer blind.
    h.removed(700.0, PUI, RemovalReason::Expired);
    assert!(h.outputs().is_empty());
    assert_eq!(h.e.blind_registrations(), 0);
}

#[test]
fn error_to_refresh_removes() {
    let mut h = H::new();
    h.subscribed(660);
    let out = h.run_until(330.0);
    let Output::Send(r) = &out[0].1 else { panic!() };
    h.respond(331.0, r, 481, None);
    assert_gone_quietly(&mut h);
}

#[test]
fn transaction_timeout_removes() {
    let mut h = H::new();
    h.subscribed(30);
    let out = h.run_until(15.0);
    let Output::Send(r) = &out[0].1 else { panic!() };
    // The refresh is in flight at expiry (30 s): the transaction decides, not the clock.
    assert!(h.run_until(40.0).is_empty());
    assert_eq!(h.e.len(), 1);
    h.e.on_transaction_timeout(h.at(47.0), r.sub, r.cseq);
    assert_gone_quietly(&mut h);
    assert_eq!(h.e.blind_registrations(), 1);
}

#[test]
fn initial_timeout_removes() {
    let mut h = H::new();
    h.registered(0.0, PUI, 600, true, &policy());
    let s = h.one_send();
    h.e.on_transaction_timeout(h.at(32.0), s.sub, 1);
    assert_gone_quietly(&mut h);
}

#[test]
fn notify_terminated_removes() {
    let mut h = H::new();
    let s = h.subscribed(660);
    let n = NotifyInput {
        sub_reason: Some("noresource"),
        ..ni("terminated", None, None)
    };
    assert_eq!(
        h.notify(10.0, s.sub, &n),
        NotifyAnswer {
            status: 200,
            reason: "OK"
        }
    );
    assert_gone_quietly(&mut h);
    assert_eq!(h.e.find_dialog(&s.call_id, &s.from_tag), None);
}

#[test]
fn expiry_without_refresh_removes() {
    // A 2xx granting 0 seconds ends the subscription at once, without unsubscribe.
    let mut h = H::new();
    h.subscribed(0);
    assert_gone_quietly(&mut h);
}

// ---------------------------------------------------------------------------------------------
// Unsubscribe (SPEC §5)

fn unsubscribe_case(reason: Option<RemovalReason>) {
    let mut h = H::new();
    let s = h.subscribed(660);
    match reason {
        Some(r) => h.removed(100.0, PUI, r),
        None => h.e.network_deregistration(h.at(100.0), PUI),
    }
    let u = h.one_send();
    assert_eq!(u.kind, SubscribeKind::Unsubscribe);
    assert_eq!(u.expires, 0);
    assert_eq!(
        (u.call_id.as_str(), u.from_tag.as_str()),
        (s.call_id.as_str(), s.from_tag.as_str())
    );
    assert_eq!(u.to_tag.as_deref(), Some("notifier-tag"));
    assert_eq!(u.cseq, 2);
    assert_eq!(u.request_uri, NOTIFIER);
    assert!(
        h.view().is_empty(),
        "an unsubscribed subscription leaves the list"
    );
    assert_eq!(h.e.len(), 0);
    assert_eq!(h.e.blind_registrations(), 0);
    // The response to the unsubscribe and the final NOTIFY are absorbed.
    h.respond(100.1, &u, 200, Some(0));
    let id = h.e.find_dialog(&s.call_id, &s.from_tag).expect("lingers");
    let n = ni("terminated", None, None);
    assert_eq!(h.notify(100.2, id, &n).status, 200);
    assert!(h.outputs().is_empty());
    assert!(h.run_until(1e6).is_empty());
    assert_eq!(h.e.find_dialog(&s.call_id, &s.from_tag), None);
}

#[test]
fn user_deregistration_unsubscribes() {
    unsubscribe_case(Some(RemovalReason::UserDeregistration));
}

#[test]
fn registration_expiry_unsubscribes() {
    unsubscribe_case(Some(RemovalReason::Expired));
}

#[test]
fn network_deregistration_unsubscribes() {
    unsubscribe_case(Some(RemovalReason::Network));
    unsubscribe_case(None);
}

#[test]
fn lingering_dialog_is_forgotten_after_linger() {
    let mut h = H::new();
    let s = h.subscribed(660);
    h.removed(100.0, PUI, RemovalReason::UserDeregistration);
    h.one_send();
    assert!(h.run_until(131.0).is_empty());
    assert!(h.e.find_dialog(&s.call_id, &s.from_tag).is_some());
    h.run_until(132.0);
    assert_eq!(h.e.find_dialog(&s.call_id, &s.from_tag), None);
    assert_eq!(h.e.poll_timeout(), None);
}

#[test]
fn unsubscribe_before_the_dialog_waits_for_it() {
    let mut h = H::new();
    h.registered(0.0, PUI, 600, true, &policy());
    let s = h.one_send();
    h.removed(1.0, PUI, RemovalReason::UserDeregistration);
    assert!(h.outputs().is_empty(), "no dialog yet: nothing to send");
    assert_eq!(h.e.len(), 0);
    h.respond(2.0, &s, 200, Some(660));
    let u = h.one_send();
    assert_eq!(
        (u.kind, u.expires, u.cseq),
        (SubscribeKind::Unsubscribe, 0, 2)
    );
    assert_eq!(u.to_tag.as_deref(), Some("notifier-tag"));
    assert!(h.run_until(1e6).is_empty());
}

// ---------------------------------------------------------------------------------------------
// resubscribe_on_reregistration

#[test]
fn resubscribe_on_reregistration_after_an_error() {
    for on in [false, true] {
        let mut h = H::new();
        let p = SubscribePolicy {
            resubscribe_on_reregistration: on,
            ..policy()
        };
        h.registered(0.0, PUI, 600, true, &p);
        let s = h.one_send();
        h.respond(0.1, &s, 403, None);
        assert_eq!(h.e.blind_registrations(), 1);
        h.registered(300.0, PUI, 600, false, &p);
        let sends = h.sends();
        if on {
            assert_eq!(sends.len(), 1);
            assert_eq!(sends[0].kind, SubscribeKind::Initial);
            assert_ne!(sends[0].call_id, s.call_id);
            assert_eq!(h.e.blind_registrations(), 0);
            // And only once.
            h.registered(301.0, PUI, 600, false, &p);
            assert!(h.sends().is_empty());
        } else {
            assert!(sends.is_empty());
            assert_eq!(h.e.blind_registrations(), 1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Refresh storm guard

#[test]
fn rate_limiter_spreads_a_refresh_storm() {
    const N: usize = 100_000;
    const RATE: u32 = 1000;
    let mut h = H::with(EngineConfig {
        max_subscribe_rate: RATE,
        ..cfg()
    });
    let p = policy();
    for i in 0..N {
        h.registered(0.0, &format!("sip:u{i}@ims.example.net"), 3540, true, &p);
    }
    let initial = h.sends();
    assert_eq!(initial.len(), N, "initial SUBSCRIBEs are never delayed");
    for s in &initial {
        h.respond(0.0, s, 200, Some(3600));
    }
    let mut per_second = std::collections::HashMap::<u64, usize>::new();
    let mut refreshed = 0;
    while let Some(at) = h.e.poll_timeout() {
        let t = h.secs(at);
        if t > 3700.0 {
            break;
        }
        h.e.handle_timeout(at);
        for o in h.outputs() {
            let Output::Send(r) = o else { continue };
            assert_eq!(r.kind, SubscribeKind::Refresh);
            assert!(t < 3600.0, "refresh at {t} after expiry");
            *per_second.entry(t as u64).or_default() += 1;
            refreshed += 1;
            h.respond(t, &r, 200, Some(3600));
        }
    }
    assert_eq!(refreshed, N);
    assert_eq!(h.e.len(), N, "nothing expired");
    let max = per_second.values().max().copied().unwrap_or(0);
    assert!(max <= RATE as usize, "{max} in one second");
    assert_eq!(per_second.keys().min(), Some(&3000), "E − 600");
    assert_eq!(per_second.keys().max(), Some(&3099), "100 s at 1000/s");
}

#[test]
fn refreshes_that_cannot_make_it_expire() {
    // 100 subscriptions granted 30 s at once, 1 refresh per second: from 15 s to 30 s only
    // 15 refreshes go out (none answered); the rest expire at 30 s without unsubscribe.
    let mut h = H::with(EngineConfig {
        max_subscribe_rate: 1,
        ..cfg()
    });
    for i in 0..100 {
        h.registered(0.0, &format!("sip:u{i}@x"), 600, true, &policy());
    }
    for s in h.sends() {
        h.respond(0.0, &s, 200, Some(30));
    }
    let out = h.run_until(31.0);
    assert_eq!(out.len(), 15);
    assert!(out.iter().all(|(t, _)| (15.0..30.0).contains(t)));
    assert_eq!(
        h.e.len(),
        15,
        "the in-flight refreshes wait for their transactions"
    );
    assert_eq!(h.e.waiting_for_rate_limit(), 0);
    assert_eq!(h.e.blind_registrations(), 85);
    assert!(h.run_until(1e5).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Memory

#[test]
fn memory_estimate_100k() {
    const N: usize = 100_000;
    let mut h = H::new();
    for i in 0..N {
        h.registered(
            0.0,
            &format!("sip:user{i}@ims.example.net"),
            3600,
            true,
            &policy(),
        );
    }
    for s in h.sends() {
        h.respond(0.0, &s, 200, Some(3660));
    }
    assert_eq!(h.e.len(), N);
    assert_eq!(
        h.e.interned_values(),
        (1, 1),
        "route sets and remotes are shared"
    );
    let per = h.e.memory_estimate() / N;
    println!("engine estimate: {per} bytes/subscription (default PUI strings not counted)");
    assert!(per <= 400, "{per} bytes/subscription");
    assert_eq!(h.e.counts(), [(Arc::from("access"), SubState::Active, N)]);
    let mut n = 0;
    h.e.for_each_view(&mut |_| n += 1);
    assert_eq!(n, N);
}
