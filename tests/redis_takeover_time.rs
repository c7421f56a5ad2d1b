//! The takeover time of docs/redis.md, measured (ignored by default: run it with a release build
//! through `scripts/redis-takeover.sh`). Instance A (`state.backend = "redis"`) takes
//! `REDIS_TAKEOVER_USERS` registrations with subscriptions from the lab's UEs and core; B, a
//! standby with the same identity and SIP address, waits. Once Redis holds everything A is
//! killed with SIGKILL, and from that moment the core sends a NOTIFY in the dialog of one of A's
//! subscriptions every 20 ms: the figure is the time from the kill to the first 200 OK (from B).
//! B's log gives the parts: the wait for A's lease to lapse, and the restore.

mod common;
mod common_proc;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common_proc::{free_tcp_port, redis_config, wait_until, Gw, RedisServer};
use regevent_lab::core::{CoreCmd, CoreConfig, CoreStats, ImsCore};
use regevent_lab::ue::{self, SwarmConfig, SwarmStats};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: scripts/redis-takeover.sh runs it with a release build"]
async fn takeover_time_from_kill_to_the_first_notify_answered() {
    let users: usize = env_or("REDIS_TAKEOVER_USERS", 100_000);
    let rate: f64 = env_or("REDIS_TAKEOVER_RATE", 10_000.0);
    let lease: String = env_or("REDIS_TAKEOVER_LEASE", "5s".to_string());
    let bin: PathBuf = std::env::var_os("REGEVENT_GW_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_regevent-gw").into());

    let redis = RedisServer::start();
    let core = ImsCore::start(
        "127.0.0.1:0".parse().unwrap(),
        CoreConfig {
            expected_users: users,
            ..CoreConfig::default()
        },
    )
    .await
    .unwrap();
    let sip = free_tcp_port();
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let state = format!("lease = \"{lease}\"\nstandby = true");
    let core_addr = core.addr.to_string();
    let mut configs = Vec::new();
    for dir in [&dir_a, &dir_b] {
        let c = redis_config(
            dir.path(),
            sip,
            sip,
            &core_addr,
            &admin,
            &redis.url(),
            &state,
        );
        // The tables sized for the run, as in docs/performance.md.
        let text = std::fs::read_to_string(&c).unwrap().replace(
            "[admin]",
            &format!("[limits]\nexpected_registrations = {users}\n[admin]"),
        );
        let text = text
            .replace("t1 = \"100ms\"\n", "")
            .replace("commit = \"20ms\"", "commit = \"50ms\"");
        std::fs::write(&c, text).unwrap();
        configs.push(c);
    }
    let mut a = Gw::spawn_bin(&bin, "A", &configs[0], &admin);
    a.wait_ready(Duration::from_secs(60));
    let b = Gw::spawn_bin(&bin, "B", &configs[1], &admin);
    b.wait_log(
        "waiting for the active instance's lease",
        Duration::from_secs(30),
    );

    // Register everyone through A.
    let stats = Arc::new(SwarmStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let swarms = 4;
    let per = users.div_ceil(swarms);
    for k in 0..swarms {
        let cfg = SwarmConfig {
            gateway: format!("127.0.0.1:{sip}").parse().unwrap(),
            local: std::net::SocketAddr::from(([127, 0, 1, (k + 1) as u8], 0)),
            users: per.min(users - k * per),
            first_user: k * per,
            expires: 3600,
            rate: rate / swarms as f64,
            ..SwarmConfig::default()
        };
        tokio::spawn(ue::run(cfg, stats.clone(), stop.clone()));
    }
    let began = Instant::now();
    let (s, c) = (stats.clone(), core.stats.clone());
    tokio::task::spawn_blocking(move || {
        wait_until(
            Duration::from_secs(600),
            "every user registered and notified",
            || {
                s.initial_ok.load(Relaxed) as usize >= users
                    && CoreStats::get(&c.subscriptions_notified) as usize >= users
            },
        )
    })
    .await
    .unwrap();
    eprintln!(
        "registered {users} in {:.1} s ({} failures, {} timeouts)",
        began.elapsed().as_secs_f64(),
        stats.failures.load(Relaxed),
        stats.timeouts.load(Relaxed)
    );
    let (url, prefix) = (
        redis.url(),
        regevent_gw::store::redis::default_prefix(&format!("sip:127.0.0.1:{sip}")),
    );
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(120), "the state in Redis", || {
            regevent_gw::store::redis::read_records(&url, &prefix)
                .is_ok_and(|r| r.len() > 2 * users)
        })
    })
    .await
    .unwrap();

    // One probe NOTIFY answered by A first (the probe works).
    let pui = format!("sip:ue{}@{}", users / 2, common::DOMAIN);
    let probe = |version: u64| CoreCmd::RawNotify {
        pui: pui.clone(),
        content_type: "application/reginfo+xml".into(),
        body: common::reginfo(version, &pui, "active", "sip:probe@127.0.0.1"),
    };
    let answered = || CoreStats::get(&core.stats.notify_responses_2xx);
    let before = answered();
    core.cmd.send(probe(1000)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while answered() == before {
        assert!(
            Instant::now() < deadline,
            "the probe NOTIFY was not answered by A"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    a.kill9();
    let killed = Instant::now();
    let before = answered();
    let mut version = 1001;
    let mut next = Instant::now();
    while answered() == before {
        if Instant::now() >= next {
            core.cmd.send(probe(version)).await.unwrap();
            version += 1;
            next += Duration::from_millis(20);
        }
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "no NOTIFY answered after the kill:\n{}",
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = killed.elapsed();
    stop.store(true, Relaxed);
    let log = b.log_text();
    let line = |what: &str| {
        log.lines()
            .find(|l| l.contains(what))
            .unwrap_or("")
            .to_owned()
    };
    println!(
        "TAKEOVER users={users} lease={lease} kill→first NOTIFY answered by B: {} ms",
        took.as_millis()
    );
    println!("B: {}", line("lease taken"));
    println!("B: {}", line("read from Redis"));
    println!("B: {}", line("state restored"));
    println!("B: {}", line("regevent-gw running"));
    assert!(b.ready());
}
