//! SIP hot path micro-benchmarks:
//! - `parse`: `Message::parse` of a realistic IMS REGISTER (~1.2 KB) and of its 200 OK;
//! - `forward`: parse + splice-forward of the REGISTER (Via, Path, Max-Forwards,
//!   received/rport) and parse + remove top Via of the 200 OK, as `gateway/register.rs` does;
//! - `gateway`: the whole sans-IO gateway for one registration with its subscription
//!   (REGISTER, the core's 200 OK, the SUBSCRIBE's 200 OK, a full-state NOTIFY; 4 inbound and
//!   4 outbound messages), a new user per iteration, no sockets.
//!
//!     cargo bench --bench sip -- --warm-up-time 1 --measurement-time 3

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use regevent_gw::sip::{HeaderName, Limits, Message};
use regevent_lab::sim::{register, static_register_ok, Sim};

fn bench_parse(c: &mut Criterion) {
    let limits = Limits::default();
    let reg = Bytes::from(register(1234));
    let ok = Bytes::from(static_register_ok());
    eprintln!("REGISTER: {} bytes, 200 OK: {} bytes", reg.len(), ok.len());
    let mut g = c.benchmark_group("sip/parse");
    for (name, raw) in [("register", &reg), ("register_200", &ok)] {
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_with_input(BenchmarkId::new(name, raw.len()), raw, |b, raw| {
            b.iter(|| Message::parse(black_box(raw.clone()), &limits).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("sip/forward");
    g.throughput(Throughput::Elements(1));
    // As gateway/register.rs: received + rport on the UE's Via, our Via, Path, Max-Forwards.
    g.bench_function("register", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(reg.clone()), &limits).unwrap();
            let mf = m.max_forwards().unwrap().unwrap_or(70);
            let mut ed = m.edit();
            ed.set_top_via_received("10.20.30.41", Some(5060))
                .insert_header(
                    HeaderName::Via,
                    "Via",
                    "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKrp5f1d0c9a8b7e6f43;rport",
                )
                .insert_header(
                    HeaderName::Path,
                    "Path",
                    "<sip:u0-0a141e28-13c4@127.0.0.1:5060;lr>",
                )
                .set_max_forwards(mf - 1);
            ed.finish()
        })
    });
    g.bench_function("register_200", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(ok.clone()), &limits).unwrap();
            let mut ed = m.edit();
            ed.remove_top_via();
            ed.finish()
        })
    });
    g.finish();
}

/// Registrations per gateway before it is rebuilt (untimed), so the registrar and the engine
/// grow to this size and no registration expires or refreshes during a run.
const RESET_EVERY: u64 = 50_000;

fn bench_gateway(c: &mut Criterion) {
    // Check the scenario once: 4 outbound messages per registration.
    let mut sim = Sim::volte();
    let (_, sent) = sim.registration(0);
    assert_eq!(
        sent, 4,
        "REGISTER → core, 200 → UE, SUBSCRIBE, 200 to NOTIFY"
    );
    assert_eq!(sim.core.engine().len(), 1);

    let mut g = c.benchmark_group("sip/gateway");
    // Time per iteration = per registration; throughput in inbound messages (4 per
    // registration; the gateway sends 4 as well).
    g.throughput(Throughput::Elements(4));
    let mut sim = Sim::volte();
    let mut user = 1u64;
    g.bench_function("registration", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if user.is_multiple_of(RESET_EVERY) {
                    sim = Sim::volte();
                }
                total += sim.registration(user).0;
                user += 1;
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench_parse, bench_gateway);
criterion_main!(benches);
