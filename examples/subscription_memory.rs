//! Memory per subscription: creates N subscriptions (default 1,000,000) with established dialogs
//! and prints the process RSS delta (from /proc/self/statm) per subscription.
//!
//!     cargo run --example subscription_memory [-- N]
//!
//! The default PUIs are allocated here (in the gateway they are shared with the registrar), so the
//! figure is reported with and without them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use regevent_gw::registrar::RegEvent;
use regevent_gw::subscription::{Engine, EngineConfig, Output, ResponseInput, SubscribePolicy};
use regevent_lab::loadgen::rss_bytes;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let now = Instant::now();
    let policy = SubscribePolicy {
        enabled: true,
        route: vec!["<sip:scscf1.ims.example.net;lr;orig>".into()],
        resubscribe_on_reregistration: false,
    };
    let cfg = EngineConfig {
        identity: "sip:pcscf.example.net:5060".into(),
        contact: "<sip:pcscf.example.net:5060>".into(),
        ..EngineConfig::default()
    };
    let puis: Vec<Arc<str>> = (0..n)
        .map(|i| Arc::from(format!("sip:+4917{i:08}@ims.mnc001.mcc262.3gppnetwork.org")))
        .collect();
    let tg: Arc<str> = "access".into();
    let before = rss_bytes("self").unwrap_or(0);
    let mut e = Engine::new(cfg);
    for chunk in puis.chunks(10_000) {
        for pui in chunk {
            let ev = RegEvent::Registered {
                default_pui: pui.clone(),
                trunk_group: tg.clone(),
                initial: true,
                associated: Arc::from([pui.clone()]),
                service_route: policy.route.clone(),
                granted: Duration::from_secs(3600),
                bindings: 1,
            };
            e.on_registration(now, &ev, &policy);
        }
        while let Some(o) = e.poll_output() {
            let Output::Send(s) = o else { continue };
            let r = ResponseInput {
                status: 200,
                cseq: s.cseq,
                expires: Some(3660),
                to_tag: Some(format!("{:x}", s.sub.0 * 7919)),
                record_route: vec!["<sip:scscf1.ims.example.net:5060;lr>".into()],
                contact: Some("sip:scscf1.ims.example.net:5060".into()),
            };
            e.on_response(now, s.sub, &r);
        }
    }
    let after = rss_bytes("self").unwrap_or(0);
    let pui_bytes: usize = puis
        .iter()
        .map(|p| p.len() + 16)
        .map(|b| b.div_ceil(16) * 16 + 16)
        .sum();
    let per = (after.saturating_sub(before)) as f64 / n as f64;
    println!("subscriptions: {}", e.len());
    println!(
        "RSS delta: {:.1} MiB, {per:.0} bytes/subscription",
        (after - before) as f64 / 1048576.0
    );
    println!(
        "(default PUI strings are allocated before the measurement: ~{} bytes each would add)",
        pui_bytes / n
    );
}
