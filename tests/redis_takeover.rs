//! Takeover through Redis (SPEC §10, docs/redis.md), real processes: UEs register and subscribe
//! through instance A (`state.backend = "redis"`); A is killed with SIGKILL; B — the same
//! identity and SIP address (a floating address moves so), another directory, no local state,
//! started as a standby — takes the lease once A's lapses, restores from Redis and carries on:
//! NOTIFYs in the old dialogs get 200, the old Paths reach the UEs, refreshes and unsubscribes
//! go out in the old dialogs, and no initial SUBSCRIBE is sent. A is killed only once Redis
//! holds the state (read back from Redis), so nothing here depends on timing.

mod common;
mod common_proc;

use std::net::SocketAddr;
use std::time::Duration;

use common::free_port;
use common::takeover::Peers;
use common_proc::{free_tcp_port, redis_config, wait_until, Gw, RedisServer};
use regevent_lab::peer::UdpPeer;

const USERS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_every_dialog_and_path_from_redis() {
    let redis = RedisServer::start();
    let core = UdpPeer::bind().await.unwrap();
    let scscf = UdpPeer::bind().await.unwrap();
    let ue = UdpPeer::bind().await.unwrap();
    let port = free_port();
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let gw_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let core_addr = core.addr.to_string();
    let config_a = redis_config(
        dir_a.path(),
        port,
        port,
        &core_addr,
        &admin,
        &redis.url(),
        "lease = \"1s\"",
    );
    let config_b = redis_config(
        dir_b.path(),
        port,
        port,
        &core_addr,
        &admin,
        &redis.url(),
        "lease = \"1s\"\nstandby = true",
    );
    let mut a = Gw::spawn("A", &config_a, &admin);
    a.wait_ready(Duration::from_secs(30));

    let mut peers = Peers::new(&core, &scscf, &ue, gw_addr, port);
    let (subs, paths) = peers.register_and_subscribe(USERS).await;

    // Redis holds every registration and every subscription with its first NOTIFY applied,
    // under the prefix derived from the identity.
    let url = redis.url();
    let prefix = regevent_gw::store::redis::default_prefix(&format!("sip:127.0.0.1:{port}"));
    tokio::task::spawn_blocking(move || {
        use regevent_gw::state::Record;
        wait_until(Duration::from_secs(30), "the state in Redis", || {
            let Ok(records) = regevent_gw::store::redis::read_records(&url, &prefix) else {
                return false;
            };
            let regs = records
                .iter()
                .filter(|r| matches!(r, Record::Registration(_)))
                .count();
            let notified = records
                .iter()
                .filter(|r| matches!(r, Record::Subscription(s) if s.version == Some(0)))
                .count();
            regs == USERS && notified == USERS
        });
    })
    .await
    .unwrap();

    // A dies; B (nothing local) takes over on the same address once A's lease lapses.
    a.kill9();
    drop(a);
    let mut b = Gw::spawn("B", &config_b, &admin);
    b.wait_log("lease taken", Duration::from_secs(30));
    b.wait_ready(Duration::from_secs(30));
    b.wait_log(
        &format!("registrations={USERS} subscriptions={USERS}"),
        Duration::from_secs(5),
    );
    assert!(
        !dir_b.path().join("data").exists(),
        "B keeps no local state"
    );

    peers.old_dialogs_carry_on(&subs, &paths, "rt").await;
    drop(b);
}
