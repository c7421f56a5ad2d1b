//! A stand-in gateway for exercising the admin API and the Prometheus/Grafana files without SIP:
//! installs the real recorder, bumps every counter family with plausible labels, sets the live
//! gauges to match N fake subscriptions, and serves the admin API with a static `AdminQuery`
//! responder.
//!
//! ```text
//! cargo run --example admin_fake -- [N=50] [ADDR=127.0.0.1:9464] [CAP=10000]
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use regevent_gw::stats::admin::{self, AdminState};
use regevent_gw::stats::names::*;
use regevent_gw::stats::query::spawn_static_responder;
use regevent_gw::stats::SubscriptionRow;

const TRUNKS: [&str; 3] = ["access", "roaming", "enterprise"];
const STATES: [&str; 4] = ["active", "active", "pending", "refreshing"];

fn rows(n: u64, now: f64) -> Vec<SubscriptionRow> {
    (1..=n)
        .map(|id| SubscriptionRow {
            id,
            package: "reg".into(),
            default_pui: format!("sip:+1555{id:07}@ims.example.net"),
            trunk_group: TRUNKS[(id % 3) as usize].into(),
            state: STATES[(id % 4) as usize].into(),
            call_id: format!("fake-{id}@pcscf.example.net"),
            registrar: "sip:scscf.ims.example.net;lr".into(),
            domain: "ims.example.net".into(),
            requested_expiry_s: 3660,
            granted_expiry_s: Some(3600),
            expires_at_unix: Some(now + 3600.0 - id as f64),
            next_refresh_unix: Some(now + 3000.0 - id as f64),
            created_unix: now - 60.0,
            last_notify_version: Some(0),
            implicit_puis: 2,
        })
        .collect()
}

fn bump_counters(rows: &[SubscriptionRow]) {
    for r in rows {
        let tg = r.trunk_group.clone();
        metrics::counter!(SUBSCRIPTIONS_CREATED, "trunk_group" => tg.clone()).increment(1);
        metrics::counter!(SUBSCRIBES_SENT, "kind" => "initial", "trunk_group" => tg.clone())
            .increment(1);
        metrics::counter!(REGISTRATION_EVENTS, "event" => "initial", "trunk_group" => tg)
            .increment(1);
    }
    metrics::counter!(SUBSCRIBES_SENT, "kind" => "refresh", "trunk_group" => "access").increment(3);
    metrics::counter!(SUBSCRIBE_RESPONSES, "class" => "2xx", "kind" => "initial")
        .increment(rows.len() as u64);
    metrics::counter!(SUBSCRIBE_RESPONSES, "class" => "4xx", "kind" => "initial").increment(1);
    metrics::counter!(SUBSCRIBE_TIMEOUTS, "kind" => "initial").increment(1);
    metrics::counter!(SUBSCRIPTION_REMOVALS, "reason" => "error_response").increment(1);
    metrics::counter!(SUBSCRIPTION_REMOVALS, "reason" => "timeout").increment(1);
    metrics::counter!(NOTIFYS, "outcome" => "accepted").increment(rows.len() as u64);
    metrics::counter!(NOTIFYS, "outcome" => "malformed").increment(1);
    metrics::counter!(FULL_STATE_REQUESTS).increment(0);
    metrics::counter!(SIP_MESSAGES, "direction" => "in", "method" => "REGISTER", "kind" => "request").increment(10);
    metrics::counter!(SIP_MESSAGES, "direction" => "out", "method" => "SUBSCRIBE", "kind" => "request").increment(10);
    metrics::counter!(SIP_PARSE_ERRORS, "transport" => "udp", "answered" => "false").increment(1);
    metrics::counter!(SIP_DROPS, "reason" => "oversize").increment(1);
}

fn set_gauges(rows: &[SubscriptionRow]) {
    let mut by: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut regs: BTreeMap<String, f64> = BTreeMap::new();
    for r in rows {
        *by.entry((r.trunk_group.clone(), r.state.clone()))
            .or_default() += 1.0;
        *regs.entry(r.trunk_group.clone()).or_default() += 1.0;
    }
    for ((tg, state), n) in by {
        metrics::gauge!(SUBSCRIPTIONS_LIVE, "trunk_group" => tg, "state" => state).set(n);
    }
    for (tg, n) in regs {
        metrics::gauge!(REGISTRATIONS_LIVE, "trunk_group" => tg.clone()).set(n);
        metrics::gauge!(REGISTRATIONS_UNSUBSCRIBED, "trunk_group" => tg).set(0.0);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(50), |s| s.parse())?;
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9464".into());
    let cap: usize = args.next().map_or(Ok(10_000), |s| s.parse())?;

    let handle = admin::install_recorder()?;
    admin::spawn_upkeep(handle.clone());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64();
    let rows = rows(n, now);
    bump_counters(&rows);
    set_gauges(&rows);

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!(
        "admin_fake: {n} subscriptions, cap {cap}, serving on http://{}",
        listener.local_addr()?
    );
    let state = AdminState::new(handle, spawn_static_responder(rows), cap);
    state.ready.store(true, Ordering::Relaxed);
    admin::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
