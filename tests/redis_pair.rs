//! Two instances of one gateway identity on one Redis (real processes, docs/redis.md): the lease
//! lets exactly one be active. Started at once, one serves and the other refuses (active mode)
//! or waits (standby) and takes over when the first dies or stops; an instance whose lease
//! another has taken stops serving.

mod common_proc;

use std::path::Path;
use std::time::{Duration, Instant};

use common_proc::{free_tcp_port, redis_config, wait_until, Gw, RedisServer};

/// Two gateways with the same identity (so the same key prefix) on different SIP and admin ports.
fn pair(redis: &RedisServer, root: &Path, state: &str) -> (Gw, Gw) {
    pair_args(redis, root, state, &[])
}

/// [`pair`], each started with `args` after `run --config FILE`.
fn pair_args(redis: &RedisServer, root: &Path, state: &str, args: &[&str]) -> (Gw, Gw) {
    let identity = free_tcp_port();
    let core = format!("127.0.0.1:{}", free_tcp_port());
    let mut gws = Vec::new();
    for name in ["one", "two"] {
        let dir = root.join(name);
        let admin = format!("127.0.0.1:{}", free_tcp_port());
        let config = redis_config(
            &dir,
            free_tcp_port(),
            identity,
            &core,
            &admin,
            &redis.url(),
            state,
        );
        let bin = Path::new(env!("CARGO_BIN_EXE_regevent-gw"));
        gws.push(Gw::spawn_args(bin, name, &config, &admin, args));
    }
    let two = gws.pop().unwrap();
    (gws.pop().unwrap(), two)
}

/// Wait until one of the two is ready; (active, other).
fn first_ready(a: Gw, b: Gw) -> (Gw, Gw) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if a.ready() {
            return (a, b);
        }
        if b.ready() {
            return (b, a);
        }
        assert!(
            Instant::now() < deadline,
            "neither became ready:\n{}\n{}",
            a.log_text(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn started_at_once_one_serves_and_the_other_refuses() {
    let redis = RedisServer::start();
    let root = tempfile::tempdir().unwrap();
    let (a, b) = pair(&redis, root.path(), "lease = \"2s\"");
    let (active, mut other) = first_ready(a, b);
    let status = other.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "the second instance must not start");
    let log = other.log_text();
    assert!(
        log.contains("is held by another instance") && log.contains("state.standby"),
        "the refusal says why and what to do:\n{log}"
    );
    assert!(active.ready(), "the active one still serves");
}

#[test]
fn started_at_once_as_standbys_one_serves_and_the_other_takes_over_when_it_dies() {
    let redis = RedisServer::start();
    let root = tempfile::tempdir().unwrap();
    // Standby by the command line (`run --standby`); the test below sets the config key.
    let (a, b) = pair_args(&redis, root.path(), "lease = \"1s\"", &["--standby"]);
    let (mut active, mut standby) = first_ready(a, b);
    standby.wait_log(
        "waiting for the active instance's lease",
        Duration::from_secs(30),
    );
    assert!(standby.running());
    assert!(!standby.ready(), "two active instances");

    active.kill9();
    standby.wait_ready(Duration::from_secs(30));
    standby.wait_log("lease taken", Duration::from_secs(1));
}

#[test]
fn a_clean_stop_hands_the_lease_over_without_waiting_for_it_to_lapse() {
    let redis = RedisServer::start();
    let root = tempfile::tempdir().unwrap();
    // A long lease: a standby that had to wait for it to lapse would take 30 s.
    let (a, b) = pair(&redis, root.path(), "lease = \"30s\"\nstandby = true");
    let (mut active, mut standby) = first_ready(a, b);
    standby.wait_log(
        "waiting for the active instance's lease",
        Duration::from_secs(30),
    );

    let leases = || -> Vec<String> {
        redis::cmd("KEYS")
            .arg("*:lease")
            .query(&mut redis.con())
            .expect("KEYS")
    };
    assert_eq!(leases().len(), 1, "the active instance holds the lease");
    active.term();
    let status = active.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "a clean stop: {status}");
    active.wait_log("lease given up", Duration::from_secs(1));
    // Given up, not left to lapse: the key is gone now, 30 s before it would have expired.
    assert_eq!(leases(), Vec::<String>::new(), "the lease is deleted");
    // The standby takes it at its next poll (every lease/3, 10 s).
    standby.wait_ready(Duration::from_secs(60));
    standby.wait_log("lease taken", Duration::from_secs(1));
}

#[test]
fn an_instance_whose_lease_another_took_stops_serving() {
    let redis = RedisServer::start();
    let root = tempfile::tempdir().unwrap();
    let (a, b) = pair(&redis, root.path(), "lease = \"1s\"");
    let (mut active, mut other) = first_ready(a, b);
    other.wait_exit(Duration::from_secs(30));
    // Somebody else's lease (as after a partition in which it lapsed and another took it).
    let mut con = redis.con();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*:lease").query(&mut con).unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let _: () = redis::cmd("SET")
        .arg(&keys[0])
        .arg("another-host/1/0")
        .arg("PX")
        .arg(60_000)
        .query(&mut con)
        .unwrap();
    let status = active.wait_exit(Duration::from_secs(10));
    assert_eq!(
        status.code(),
        Some(regevent_gw::store::redis::EXIT_LEASE_LOST),
        "{}",
        active.log_text()
    );
    assert!(active.log_text().contains("another-host/1/0"));
    // It never gave the other's lease away.
    let owner: String = redis::cmd("GET").arg(&keys[0]).query(&mut con).unwrap();
    assert_eq!(owner, "another-host/1/0");
    wait_until(Duration::from_secs(5), "the admin port closed", || {
        !active.ready()
    });
}
