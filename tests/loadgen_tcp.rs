//! The load generator's TCP UEs against the real gateway: an in-process gateway with UDP and
//! TCP listeners, the emulated IMS core as its `sip.core`, and one swarm of UEs sharing one TCP
//! connection. Every registration must complete, and the core must see every subscription
//! through to an answered NOTIFY. The second test puts the gateway's side toward the core on
//! TCP too (`sip.core` with `;transport=tcp`).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{profile, Harness};
use regevent_gw::config::Transport;
use regevent_lab::core::{CoreConfig, CoreStats, ImsCore};
use regevent_lab::ue::{self, SwarmConfig, SwarmStats};

const USERS: usize = 50;

/// The emulated core (also on TCP with `core_on_tcp`) and a gateway with UDP and TCP listeners
/// whose `sip.core` is that core, over TCP with `core_on_tcp`.
async fn start(core_on_tcp: bool) -> (Harness, ImsCore) {
    let cfg = CoreConfig {
        tcp: core_on_tcp,
        ..CoreConfig::default()
    };
    let core = ImsCore::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .expect("core");
    let core_addr = core.addr;
    let transport = if core_on_tcp { ";transport=tcp" } else { "" };
    let h = Harness::start_with(profile(true), |cfg| {
        cfg.sip.core = format!("sip:{core_addr}{transport}");
    })
    .await;
    (h, core)
}

#[tokio::test]
async fn a_tcp_swarm_of_50_registers_and_every_subscription_is_notified() {
    let (h, core) = start(false).await;
    register_50_over_tcp(&h, &core, false).await;
    assert_eq!(
        CoreStats::get(&core.stats.tcp_messages),
        0,
        "core link on UDP"
    );
}

#[tokio::test]
async fn with_a_connection_per_ue_each_ue_is_bound_to_its_own_flow() {
    let (h, core) = start(false).await;
    let stats = register_50_over_tcp(&h, &core, true).await;
    assert_eq!(stats.connections_opened.load(Relaxed), USERS as u64);
    let mut flows = std::collections::HashSet::new();
    for i in 0..USERS {
        let reg = h
            .registered(&format!("sip:ue{i}@ims.example.net"))
            .await
            .expect("registered");
        flows.insert(reg.bindings[0].source.clone());
    }
    assert_eq!(flows.len(), USERS, "one connection (source port) per UE");
}

#[tokio::test]
async fn with_the_core_link_on_tcp_too_every_subscription_is_notified() {
    let (h, core) = start(true).await;
    register_50_over_tcp(&h, &core, false).await;
    // Per user, on the gateway's one connection: the REGISTER, the SUBSCRIBE and the 200 OK to
    // the NOTIFY.
    assert_eq!(
        CoreStats::get(&core.stats.tcp_messages),
        3 * USERS as u64,
        "everything reached the core over TCP"
    );
    assert_eq!(CoreStats::get(&core.stats.notify_retransmissions), 0);
}

/// One swarm of [`USERS`] UEs over TCP (sharing one connection, or each with its own): every
/// registration completes, every subscription is notified, and the UEs are bound to their TCP
/// flow.
async fn register_50_over_tcp(
    h: &Harness,
    core: &ImsCore,
    connection_per_ue: bool,
) -> Arc<SwarmStats> {
    assert_eq!(
        h.gw.sip_addr(Transport::Tcp),
        Some(h.gw_tcp),
        "the harness has a TCP listener"
    );
    let stats = Arc::new(SwarmStats::default());
    let cfg = SwarmConfig {
        gateway: h.gw_tcp,
        // Bound, then connected: the loadgen's swarms each have their own 127.0.1.N.
        local: SocketAddr::from(([127, 0, 1, 9], 0)),
        transport: Transport::Tcp,
        users: USERS,
        rate: 500.0,
        reregister: false,
        connection_per_ue,
        ..SwarmConfig::default()
    };
    tokio::time::timeout(
        Duration::from_secs(20),
        ue::run(cfg, stats.clone(), Arc::new(AtomicBool::new(false))),
    )
    .await
    .expect("every UE answered well before Timer F")
    .expect("the connection held");

    assert_eq!(stats.initial_ok.load(Relaxed), USERS as u64);
    assert_eq!(stats.registers_sent.load(Relaxed), USERS as u64);
    assert_eq!(stats.failures.load(Relaxed), 0);
    assert_eq!(stats.timeouts.load(Relaxed), 0);
    assert_eq!(stats.retransmissions.load(Relaxed), 0, "no Timer E on TCP");

    // NOTIFYs go on after the last 200 OK reached its UE.
    let deadline = Instant::now() + Duration::from_secs(10);
    while CoreStats::get(&core.stats.subscriptions_notified) < USERS as u64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(CoreStats::get(&core.stats.registers), USERS as u64);
    assert_eq!(CoreStats::get(&core.stats.subscribes_initial), USERS as u64);
    assert_eq!(
        CoreStats::get(&core.stats.subscriptions_notified),
        USERS as u64
    );

    // The gateway bound the UEs to their TCP flow, not to a UDP address.
    let reg = h
        .registered("sip:ue0@ims.example.net")
        .await
        .expect("ue0 registered");
    let b = &reg.bindings[0];
    assert_eq!(b.transport, Transport::Tcp.name());
    let peer: std::net::SocketAddr = b.source.parse().expect("source address");
    assert_eq!(peer.ip(), std::net::IpAddr::from([127, 0, 1, 9]));
    assert!(b.contact.ends_with(";transport=tcp"), "{}", b.contact);
    stats
}
