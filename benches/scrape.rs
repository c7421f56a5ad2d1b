//! Rendering cost of `/metrics/subscriptions`: the pure renderer, and a whole scrape through the
//! `AdminQuery` channel (pages of 1000 rows from a static responder), for 10,000 and 100,000
//! live subscriptions.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use regevent_gw::stats::admin::{self, AdminState};
use regevent_gw::stats::query::spawn_static_responder;
use regevent_gw::stats::render::render_subscriptions;
use regevent_gw::stats::SubscriptionRow;

fn rows(n: u64) -> Vec<SubscriptionRow> {
    (1..=n)
        .map(|id| SubscriptionRow {
            id,
            package: "reg".into(),
            default_pui: format!("sip:+4930{id:08}@ims.mnc001.mcc262.3gppnetwork.org"),
            trunk_group: format!("access-{}", id % 4),
            state: "active".into(),
            call_id: format!(
                "{:016x}-{id}@pcscf.example.net",
                id.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ),
            registrar: "sip:scscf1.ims.mnc001.mcc262.3gppnetwork.org:5060;lr".into(),
            domain: "ims.mnc001.mcc262.3gppnetwork.org".into(),
            requested_expiry_s: 3660,
            granted_expiry_s: Some(3600),
            expires_at_unix: Some(1_760_000_000.0 + id as f64),
            next_refresh_unix: Some(1_759_999_400.0 + id as f64),
            created_unix: 1_759_996_400.0,
            last_notify_version: Some(1),
            implicit_puis: 3,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let handle = admin::recorder_builder().unwrap().build_recorder().handle();

    let mut group = c.benchmark_group("scrape");
    group.sample_size(10);
    for n in [10_000u64, 100_000] {
        let data = rows(n);
        let bytes = render_subscriptions(&data, n as usize, n as usize).len();
        eprintln!(
            "{n} rows render to {bytes} bytes ({} bytes/row)",
            bytes / n as usize
        );
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::new("render", n), &data, |b, data| {
            b.iter(|| black_box(render_subscriptions(data, data.len(), data.len())))
        });

        let state = rt.block_on(async {
            AdminState::new(
                handle.clone(),
                spawn_static_responder(data.clone()),
                n as usize,
            )
        });
        group.bench_function(BenchmarkId::new("via_admin_query", n), |b| {
            b.iter(|| black_box(rt.block_on(admin::scrape_subscriptions(&state)).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
