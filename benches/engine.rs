//! The subscription engine at 1,000,000 subscriptions, in virtual time. Not a criterion bench:
//! building a million subscriptions once per sample would not fit criterion's model, so this
//! `harness = false` main builds them once and times each phase with `Instant`:
//!
//! 1. insert: `RegEvent::Registered { initial: true }` with an enabled policy, then the drain of
//!    `poll_output` (the initial SUBSCRIBE) — per insert; registrations arrive evenly over
//!    `SPREAD` of virtual time;
//! 2. establish: a 2xx (Expires 3660, To tag, Record-Route, Contact) through `on_response`;
//! 3. refresh: virtual time advances in 1 s steps through the window where every refresh falls
//!    due (3060 s after each grant); per step `handle_timeout` + drain of the refresh SUBSCRIBEs,
//!    then their 2xx (timed apart);
//! 4. removal: `RegEvent::Removed` (user deregistration) for all → unsubscribe + drain; then the
//!    `handle_timeout` that purges the lingering records.
//!
//!     cargo bench --bench engine            # N = 1,000,000 (ENGINE_BENCH_N to change)
//!
//! Under `cargo test --benches` (no `--bench` argument) it runs with N = 10,000 as a smoke test.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regevent_gw::registrar::{RegEvent, RemovalReason};
use regevent_gw::subscription::{
    Engine, EngineConfig, Output, ResponseInput, SubId, SubscribeKind, SubscribePolicy,
};
use regevent_lab::loadgen::rss_bytes;

/// Registrations arrive evenly over this much virtual time (shorter than the 3060 s to the first
/// refresh, so the insert phase never has refreshes due).
const SPREAD: Duration = Duration::from_secs(1800);
const GRANTED: u32 = 3660;
const CHUNK: usize = 1000;

fn ok(sub: SubId, cseq: u32) -> ResponseInput {
    ResponseInput {
        status: 200,
        cseq,
        expires: Some(GRANTED),
        to_tag: Some(format!("{:x}", sub.0.wrapping_mul(7919))),
        record_route: vec!["<sip:scscf1.ims.mnc001.mcc262.3gppnetwork.org:5060;lr>".into()],
        contact: Some("sip:scscf1.ims.mnc001.mcc262.3gppnetwork.org:5060".into()),
    }
}

/// Drain the engine's outputs, keeping (sub, cseq) of the SUBSCRIBEs of `kind`.
fn drain(e: &mut Engine, kind: SubscribeKind, sent: &mut Vec<(SubId, u32)>) {
    while let Some(o) = e.poll_output() {
        if let Output::Send(s) = &o {
            if s.kind == kind {
                sent.push((s.sub, s.cseq));
            }
        }
        black_box(o);
    }
}

struct Row {
    name: &'static str,
    ops: usize,
    spent: Duration,
}

impl Row {
    fn print(&self) {
        let ns = self.spent.as_nanos() as f64 / self.ops.max(1) as f64;
        println!(
            "{:<34} {:>10} {:>11.1} {:>10.0} {:>12.0}",
            self.name,
            self.ops,
            self.spent.as_secs_f64() * 1e3,
            ns,
            1e9 / ns
        );
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("ENGINE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|_| full)
        .unwrap_or(if full { 1_000_000 } else { 10_000 });

    let policy = SubscribePolicy {
        enabled: true,
        route: vec!["<sip:orig@scscf1.ims.mnc001.mcc262.3gppnetwork.org:5060;lr>".into()],
        resubscribe_on_reregistration: false,
    };
    let cfg = EngineConfig {
        identity: "sip:pcscf1.ims.mnc001.mcc262.3gppnetwork.org:5060".into(),
        contact: "<sip:pcscf1.ims.mnc001.mcc262.3gppnetwork.org:5060>".into(),
        p_asserted_identity: Some("<sip:pcscf1.ims.mnc001.mcc262.3gppnetwork.org>".into()),
        seed: 7,
        ..EngineConfig::default()
    };
    let linger = cfg.linger;
    // Shared with the registrar in the gateway: allocated outside the measurement.
    let puis: Vec<Arc<str>> = (0..n)
        .map(|i| Arc::from(format!("sip:+4917{i:08}@ims.mnc001.mcc262.3gppnetwork.org")))
        .collect();
    let tg: Arc<str> = "access".into();
    let t0 = Instant::now();
    let at = |i: usize| t0 + SPREAD.mul_f64(i as f64 / n as f64);

    let rss0 = rss_bytes("self").unwrap_or(0);
    let mut e = Engine::new(cfg);
    let mut rows = Vec::new();
    let (mut ins, mut est) = (Duration::ZERO, Duration::ZERO);
    let mut sent = Vec::with_capacity(CHUNK);
    let mut resp = Vec::with_capacity(CHUNK);
    for (c, chunk) in puis.chunks(CHUNK).enumerate() {
        let base = c * CHUNK;
        let evs: Vec<RegEvent> = chunk
            .iter()
            .map(|pui| RegEvent::Registered {
                default_pui: pui.clone(),
                trunk_group: tg.clone(),
                initial: true,
                associated: Arc::from([pui.clone()]),
                service_route: policy.route.clone(),
                granted: Duration::from_secs(3600),
                bindings: 1,
            })
            .collect();
        sent.clear();
        let t = Instant::now();
        for (j, ev) in evs.iter().enumerate() {
            e.on_registration(at(base + j), ev, &policy);
            drain(&mut e, SubscribeKind::Initial, &mut sent);
        }
        ins += t.elapsed();
        drop(evs);
        let now = at(base + chunk.len() - 1);
        resp.clear();
        resp.extend(sent.iter().map(|&(s, cseq)| (s, ok(s, cseq))));
        let t = Instant::now();
        for (s, r) in &resp {
            e.on_response(now, *s, r);
        }
        est += t.elapsed();
    }
    assert_eq!(e.len(), n);
    rows.push(Row {
        name: "insert (Registered + drain)",
        ops: n,
        spent: ins,
    });
    rows.push(Row {
        name: "establish (2xx on_response)",
        ops: n,
        spent: est,
    });
    let rss = rss_bytes("self").unwrap_or(0).saturating_sub(rss0);
    let estimate = e.memory_estimate();

    // Refreshes: every subscription's falls due in [3060 s, SPREAD + 3060 s] (the second one,
    // 3060 s after the first, lies beyond).
    let (mut fire, mut answer, mut refreshes) = (Duration::ZERO, Duration::ZERO, 0usize);
    let mut now = at(n - 1);
    let end = t0 + SPREAD + Duration::from_secs(3060 + 2);
    let mut steps = 0usize;
    while now < end {
        now += Duration::from_secs(1);
        steps += 1;
        sent.clear();
        let t = Instant::now();
        e.handle_timeout(now);
        drain(&mut e, SubscribeKind::Refresh, &mut sent);
        fire += t.elapsed();
        refreshes += sent.len();
        resp.clear();
        resp.extend(sent.iter().map(|&(s, cseq)| (s, ok(s, cseq))));
        let t = Instant::now();
        for (s, r) in &resp {
            e.on_response(now, *s, r);
        }
        answer += t.elapsed();
    }
    assert_eq!(refreshes, n, "one refresh per subscription in the window");
    assert_eq!(e.len(), n);
    rows.push(Row {
        name: "refresh (handle_timeout + drain)",
        ops: refreshes,
        spent: fire,
    });
    rows.push(Row {
        name: "refresh 2xx (on_response)",
        ops: refreshes,
        spent: answer,
    });

    // Removal: the registrations end (user deregistration) → unsubscribe each.
    let evs: Vec<RegEvent> = puis
        .iter()
        .map(|pui| RegEvent::Removed {
            default_pui: pui.clone(),
            trunk_group: tg.clone(),
            reason: RemovalReason::UserDeregistration,
        })
        .collect();
    let mut unsubs = Vec::with_capacity(n);
    let t = Instant::now();
    for ev in &evs {
        e.on_registration(now, ev, &policy);
        drain(&mut e, SubscribeKind::Unsubscribe, &mut unsubs);
    }
    rows.push(Row {
        name: "removal (Removed + unsubscribe)",
        ops: n,
        spent: t.elapsed(),
    });
    assert_eq!((unsubs.len(), e.len()), (n, 0));
    drop(evs);
    let t = Instant::now();
    e.handle_timeout(now + linger + Duration::from_secs(1));
    drain(&mut e, SubscribeKind::Unsubscribe, &mut unsubs);
    rows.push(Row {
        name: "linger purge (handle_timeout)",
        ops: n,
        spent: t.elapsed(),
    });
    assert_eq!(e.poll_timeout(), None, "every record gone");

    println!();
    println!(
        "subscription engine, N = {n} (virtual time: inserts over {} s, {steps} refresh steps of 1 s)",
        SPREAD.as_secs()
    );
    println!(
        "{:<34} {:>10} {:>11} {:>10} {:>12}",
        "phase", "ops", "total ms", "ns/op", "ops/s"
    );
    for r in &rows {
        r.print();
    }
    println!(
        "memory at N live (established): RSS +{:.1} MiB ({:.0} B/subscription), \
         memory_estimate {:.1} MiB ({:.0} B/subscription)",
        rss as f64 / 1048576.0,
        rss as f64 / n as f64,
        estimate as f64 / 1048576.0,
        estimate as f64 / n as f64
    );
}
