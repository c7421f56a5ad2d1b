//! Durable state, sans-IO, in virtual time: a gateway core runs random registrations,
//! subscriptions, NOTIFYs and time; its changes are written to a store (a map of records, as
//! a real store would hold them) after every step. At random points a fresh core is restored
//! from the store, and
//! - its state (every record) equals the original's;
//! - what it sends next (refreshes, unsubscribes, with their Call-ID, CSeq, Expires, and when)
//!   equals what the original sends next;
//! - after a downtime, it sends exactly the unsubscribes the original sent during that time
//!   (registrations that expired while the process was down).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use regevent_gw::settings::{Profile, Settings};
use regevent_gw::sip::{writer, HeaderName};
use regevent_gw::state::{self, Key, Record};
use regevent_lab::sim::Sim;

const CORE: &str = "127.0.0.3:5060";
const SCSCF: &str = "127.0.0.4:5060";
const DOMAIN: &str = "ims.example.net";

fn addr(a: &str) -> SocketAddr {
    a.parse().unwrap()
}

fn ue(user: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, user], 5060))
}

fn settings() -> Settings {
    Settings {
        identity: "sip:127.0.0.1:5060".into(),
        core: format!("sip:{CORE}"),
        // No SUBSCRIBE rate: the peers here answer whatever the core sends at the same instant
        // (a SUBSCRIBE waiting for a token is an in-flight one that a restore cannot tell from
        // a lost one; that case is the restored in-flight initial SUBSCRIBE, covered as such).
        max_subscribe_rate: 0,
        ..Settings::default()
    }
    .with_profile(Profile {
        support_reg_event: true,
        ..Profile::default()
    })
}

/// The S-CSCF's view of one subscription dialog (to NOTIFY in it).
#[derive(Debug, Clone)]
struct Dialog {
    call_id: String,
    our_tag: String,
    pui: String,
    version: u64,
    cseq: u32,
}

/// A core, the peers' state and the store.
#[derive(Clone)]
struct World {
    dialogs: BTreeMap<String, Dialog>,
    store: BTreeMap<Key, Record<'static>>,
    cseq: BTreeMap<u8, u32>,
}

/// The original core (tracking its changes, seed 7) and an empty world around it.
fn original() -> (Sim, World) {
    let mut a = Sim::new(settings(), 7);
    a.core.track_changes();
    let w = World {
        dialogs: BTreeMap::new(),
        store: BTreeMap::new(),
        cseq: BTreeMap::new(),
    };
    (a, w)
}

/// Unix time of the sim's clock: virtual time after a fixed origin.
fn wall(sim: &Sim) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000) + sim.elapsed()
}

/// What a store does after a step: write the record of every change (or delete the key).
fn persist(sim: &mut Sim, w: &mut World) {
    while let Some(c) = sim.core.poll_change() {
        let (k, r) = sim.core.record(&c, sim.now, wall(sim));
        match r {
            Some(r) => {
                assert_eq!(r.key(), k);
                w.store.insert(k, r.into_owned());
            }
            None => {
                w.store.remove(&k);
            }
        }
    }
}

fn register(user: u8, cseq: u32, expires: u32) -> Vec<u8> {
    let u = ue(user);
    format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {u};branch=z9hG4bKu{user}c{cseq}\r\nMax-Forwards: 70\r\n\
         From: <sip:u{user}@{DOMAIN}>;tag=t{user}\r\nTo: <sip:u{user}@{DOMAIN}>\r\nCall-ID: reg{user}\r\n\
         CSeq: {cseq} REGISTER\r\nContact: <sip:u{user}@{u}>;expires={expires}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The grant the S-CSCF gives: a function of the dialog and CSeq, so both worlds agree.
fn grant(call_id: &str, cseq: u32, asked: u32) -> u32 {
    let h = call_id
        .bytes()
        .fold(cseq, |h, b| h.wrapping_mul(31) ^ u32::from(b));
    [asked, asked, 1800, 300][(h % 4) as usize].min(asked)
}

fn notify(d: &mut Dialog, state: &str, reg_state: &str) -> Vec<u8> {
    d.version += 1;
    d.cseq += 1;
    let body = format!(
        "<?xml version=\"1.0\"?><reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"{}\" state=\"full\">\
         <registration aor=\"{}\" id=\"a\" state=\"{reg_state}\"><contact id=\"c\" state=\"active\" event=\"registered\">\
         <uri>sip:x@10.0.0.1</uri></contact></registration></reginfo>",
        d.version - 1,
        d.pui
    );
    format!(
        "NOTIFY sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {SCSCF};branch=z9hG4bKn{}x{}\r\nMax-Forwards: 70\r\n\
         From: <{}>;tag=scscf\r\nTo: <sip:127.0.0.1:5060>;tag={}\r\nCall-ID: {}\r\nCSeq: {} NOTIFY\r\n\
         Contact: <sip:notifier@{SCSCF}>\r\nEvent: reg\r\nSubscription-State: {state}\r\n\
         Content-Type: application/reginfo+xml\r\nContent-Length: {}\r\n\r\n{body}",
        d.cseq, d.call_id, d.pui, d.our_tag, d.call_id, d.cseq, body.len()
    )
    .into_bytes()
}

/// The peers answer everything the core sent, until it is quiet: the core registrar grants
/// what is asked, the S-CSCF answers SUBSCRIBEs 200 (and NOTIFYs full state after an initial
/// one), UEs take their responses. Returns the SUBSCRIBEs seen (for comparisons).
fn respond(sim: &mut Sim, w: &mut World, seen: &mut Vec<String>) {
    loop {
        let mut busy = false;
        for s in sim.drain(addr(CORE)) {
            busy = true;
            let m = s.msg;
            let contact = m.header(HeaderName::Contact).unwrap_or("").to_owned();
            let to = m.to().uri.to_owned();
            let sr = format!("<sip:scscf@{SCSCF};lr>");
            let pau = format!(
                "<{to}>, <sip:{}.alias@{DOMAIN}>",
                to.trim_start_matches("sip:")
            );
            let mut extra = vec![
                ("Service-Route", sr.as_str()),
                ("P-Associated-URI", pau.as_str()),
            ];
            let expires0 = contact.contains("expires=0");
            if !expires0 {
                extra.push(("Contact", contact.as_str()));
            }
            let ok = writer::response(&m, 200, "OK", Some("core"), &extra);
            sim.send(addr(CORE), ok);
        }
        for s in sim.drain(addr(SCSCF)) {
            busy = true;
            let m = s.msg;
            if !m.is_request() {
                continue;
            }
            let call_id = m.call_id().to_owned();
            let asked = m.expires().ok().flatten().unwrap_or(0);
            seen.push(format!(
                "{:.3} {} cseq={} expires={} to_tag={:?}",
                sim.elapsed().as_secs_f64(),
                call_id,
                m.cseq().seq,
                asked,
                m.to().tag()
            ));
            let g = grant(&call_id, m.cseq().seq, asked).to_string();
            let contact = format!("<sip:notifier@{SCSCF}>");
            let ok = writer::response(
                &m,
                200,
                "OK",
                Some("scscf"),
                &[("Expires", &g), ("Contact", &contact)],
            );
            sim.send(addr(SCSCF), ok);
            if m.to().tag().is_none() {
                let mut d = Dialog {
                    call_id: call_id.clone(),
                    our_tag: m.from().tag().unwrap_or("").to_owned(),
                    pui: m.to().uri.to_owned(),
                    version: 0,
                    cseq: 0,
                };
                let n = notify(&mut d, &format!("active;expires={g}"), "active");
                w.dialogs.insert(call_id, d);
                sim.send(addr(SCSCF), n);
            } else if asked == 0 {
                w.dialogs.remove(&call_id);
            }
        }
        for u in 1..=8 {
            if !sim.drain(ue(u)).is_empty() {
                busy = true;
            }
        }
        if !busy {
            return;
        }
    }
}

/// Let `d` pass, the peers answering at once whenever the core sends.
fn pass(sim: &mut Sim, w: &mut World, d: Duration, seen: &mut Vec<String>) {
    let until = sim.now + d;
    while let Some(t) = sim.core.poll_timeout().filter(|t| *t <= until) {
        sim.advance(t.saturating_duration_since(sim.now));
        respond(sim, w, seen);
        persist(sim, w);
    }
    sim.advance(until.saturating_duration_since(sim.now));
    respond(sim, w, seen);
    persist(sim, w);
}

#[derive(Debug, Clone)]
enum Op {
    Register(u8, u32),
    Deregister(u8),
    NetworkDeregister(u8),
    Notify(u8),
    Pass(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..=8, prop::sample::select(vec![40u32, 600, 3600])).prop_map(|(u, e)| Op::Register(u, e)),
        1 => (1u8..=8).prop_map(Op::Deregister),
        1 => (1u8..=8).prop_map(Op::NetworkDeregister),
        1 => (1u8..=8).prop_map(Op::Notify),
        3 => (1u64..1500).prop_map(Op::Pass),
    ]
}

fn dialog_of(w: &World, user: u8) -> Option<String> {
    let pui = format!("sip:u{user}@{DOMAIN}");
    w.dialogs
        .iter()
        .find(|(_, d)| d.pui == pui)
        .map(|(k, _)| k.clone())
}

fn apply(sim: &mut Sim, w: &mut World, op: &Op, seen: &mut Vec<String>) {
    match *op {
        Op::Register(u, _) | Op::Deregister(u) => {
            let e = if let Op::Register(_, e) = *op { e } else { 0 };
            let c = w.cseq.entry(u).or_insert(0);
            *c += 1;
            let bytes = register(u, *c, e);
            sim.send(ue(u), bytes);
        }
        Op::NetworkDeregister(u) | Op::Notify(u) => {
            if let Some(k) = dialog_of(w, u) {
                let reg_state = if matches!(op, Op::NetworkDeregister(_)) {
                    "terminated"
                } else {
                    "active"
                };
                let d = w.dialogs.get_mut(&k).expect("dialog");
                let n = notify(d, "active;expires=600", reg_state);
                sim.send(addr(SCSCF), n);
            }
        }
        Op::Pass(s) => return pass(sim, w, Duration::from_secs(s), seen),
    }
    respond(sim, w, seen);
    persist(sim, w);
}

/// Every record of a core, by key.
fn records(sim: &Sim) -> BTreeMap<Key, Record<'static>> {
    sim.core
        .changes_of_everything()
        .iter()
        .filter_map(|c| sim.core.record(c, sim.now, wall(sim)).1)
        .map(|r| (r.key(), r.into_owned()))
        .collect()
}

/// A fresh core restored from the store at the original's time.
fn restored(orig: &Sim, w: &World, at: Duration) -> Sim {
    let mut b = Sim::new(settings(), 99);
    b.core.track_changes();
    b.t0 = orig.t0;
    b.now = orig.t0 + at;
    let wall = wall(&b);
    // As start-up does: from the encoded values, decoded one by one as they are put back.
    let values = encoded(w);
    let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    b.core
        .restore_encoded(b.now, wall, &values)
        .expect("every record decodes");
    b
}

/// The store's values as the store keeps them.
fn encoded(w: &World) -> Vec<Vec<u8>> {
    w.store
        .values()
        .map(|r| {
            let mut v = Vec::new();
            state::encode(r, &mut v);
            v
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The random point is the end of a random prefix of operations.
    #[test]
    fn a_restored_core_has_the_same_state_and_sends_the_same_next(ops in prop::collection::vec(op(), 1..40)) {
        let (mut a, mut w) = original();
        let mut seen = Vec::new();
        for op in &ops {
            apply(&mut a, &mut w, op, &mut seen);
        }
        // The store holds exactly the core's state.
        let mine = records(&a);
        prop_assert_eq!(&w.store, &mine, "store and core differ");
        let mut b = restored(&a, &w, a.elapsed());
        prop_assert_eq!(records(&b), mine, "restored state differs");
        prop_assert_eq!(b.core.blind_registrations(), a.core.blind_registrations());
        prop_assert_eq!(b.core.registrar().len(), a.core.registrar().len());
        prop_assert_eq!(b.core.engine().len(), a.core.engine().len());
        // The next hour: the same SUBSCRIBEs at the same times.
        let (mut wa, mut wb) = (w.clone(), w);
        let (mut sa, mut sb) = (Vec::new(), Vec::new());
        pass(&mut a, &mut wa, Duration::from_secs(3700), &mut sa);
        pass(&mut b, &mut wb, Duration::from_secs(3700), &mut sb);
        // Simultaneous SUBSCRIBEs may leave in either order.
        sa.sort();
        sb.sort();
        prop_assert_eq!(sa, sb, "next SUBSCRIBEs differ");
        prop_assert_eq!(records(&a), records(&b), "states differ an hour later");
    }
}

#[test]
fn registrations_that_expire_while_down_get_exactly_the_unsubscribes_they_would_have() {
    let (mut a, mut w) = original();
    let mut seen = Vec::new();
    // Three short registrations, three long ones, subscribed.
    for u in 1..=6 {
        let e = if u <= 3 { 600 } else { 3600 };
        apply(&mut a, &mut w, &Op::Register(u, e), &mut seen);
    }
    apply(&mut a, &mut w, &Op::Pass(100), &mut seen);
    let down_at = a.elapsed();
    let store_at_crash = w.clone();
    // The original stays up through the downtime: what it sends in those 20 minutes.
    let mut during = Vec::new();
    pass(&mut a, &mut w, Duration::from_secs(1200), &mut during);
    let unsubscribed = |v: &[String]| {
        let mut u: Vec<String> = v
            .iter()
            .filter(|l| l.contains("expires=0"))
            .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
            .collect();
        u.sort();
        u
    };
    let expected = unsubscribed(&during);
    assert_eq!(
        expected.len(),
        3,
        "the three 600 s registrations expired: {during:?}"
    );
    // The restarted one, 20 minutes later, from the store as it was at the crash.
    let mut b = restored(&a, &store_at_crash, down_at + Duration::from_secs(1200));
    let mut wb = store_at_crash.clone();
    let mut after = Vec::new();
    pass(&mut b, &mut wb, Duration::from_secs(1), &mut after);
    assert_eq!(unsubscribed(&after), expected, "{after:?}");
    assert_eq!(b.core.registrar().len(), 3);
    assert_eq!(b.core.engine().len(), 3);
    // Nothing but those unsubscribes and the (overdue) refreshes of the live ones: no initial
    // SUBSCRIBE for a registration that has a subscription.
    assert!(
        after.iter().all(|l| !l.contains("to_tag=None")),
        "no initial SUBSCRIBE: {after:?}"
    );
}

#[test]
fn a_record_that_does_not_decode_stops_the_restore_with_its_index() {
    let (mut a, mut w) = original();
    let mut seen = Vec::new();
    for user in 0..3 {
        apply(&mut a, &mut w, &Op::Register(user, 600), &mut seen);
    }
    let mut values = encoded(&w);
    assert!(values.len() >= 4, "registrations, subscriptions and meta");
    let bad = values.len() / 2;
    let half = values[bad].len() / 2;
    values[bad].truncate(half);
    let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let mut b = Sim::new(settings(), 99);
    let wall = wall(&b);
    let now = b.now;
    match b.core.restore_encoded(now, wall, &values) {
        Err((i, e)) => {
            assert_eq!(i, bad);
            assert!(!e.to_string().is_empty());
        }
        Ok(r) => panic!("a cut record was restored: {r:?}"),
    }
}
