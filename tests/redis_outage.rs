//! Redis killed and started again empty while the load generator registers users through a
//! gateway with `state.backend = "redis"` (real processes, docs/redis.md): the gateway keeps
//! answering from memory (every registration of the run completes, none fails), shows the
//! outage (`regevent_state_connected` 0, then 1), and once Redis is back it writes the whole
//! state again — registrations made before the outage, whose keys the restart lost, are in
//! Redis again, read back from Redis.

mod common_proc;

use std::process::{Command, Stdio};
use std::time::Duration;

use common_proc::{free_tcp_port, redis_config, wait_until, Gw, RedisServer};
use regevent_gw::state::Record;

const RATE: u32 = 200;
// Long enough that the load still runs through the outage below on a slow machine.
const SECONDS: u32 = 20;
const USERS: usize = (RATE * SECONDS) as usize;
const CONNECTED: &str = "regevent_state_connected{backend=\"redis\"}";

fn in_redis(url: &str, prefix: &str) -> (usize, usize, bool) {
    let Ok(records) = regevent_gw::store::redis::read_records(url, prefix) else {
        return (0, 0, false);
    };
    let regs = records
        .iter()
        .filter(|r| matches!(r, Record::Registration(_)))
        .count();
    let subs = records
        .iter()
        .filter(|r| matches!(r, Record::Subscription(_)))
        .count();
    let meta = records.iter().any(|r| matches!(r, Record::Meta(_)));
    (regs, subs, meta)
}

#[test]
fn redis_restarted_empty_under_load_gets_the_whole_state_back() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sip = free_tcp_port();
    let core = format!("127.0.0.1:{}", free_tcp_port());
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let config = redis_config(
        dir.path(),
        sip,
        sip,
        &core,
        &admin,
        &redis.url(),
        "lease = \"2s\"",
    );
    let mut gw = Gw::spawn("gw", &config, &admin);
    gw.wait_ready(Duration::from_secs(30));
    let prefix = regevent_gw::store::redis::default_prefix(&format!("sip:127.0.0.1:{sip}"));
    let url = redis.url();

    let out = dir.path().join("loadgen.out");
    let mut loadgen = Command::new(env!("CARGO_BIN_EXE_regevent-gw"))
        .args(["loadgen", "--gateway", &format!("127.0.0.1:{sip}")])
        .args(["--core", &core, "--rate", &RATE.to_string()])
        .args(["--seconds", &SECONDS.to_string(), "--swarms", "2"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the load generator");

    // Load reaches Redis.
    wait_until(Duration::from_secs(30), "registrations in Redis", || {
        in_redis(&url, &prefix).0 >= RATE as usize
    });
    assert_eq!(gw.metric(CONNECTED), Some(1.0));

    // Redis dies: the gateway says so, and keeps registering users.
    redis.kill();
    wait_until(Duration::from_secs(30), "connected 0", || {
        gw.metric(CONNECTED) == Some(0.0)
    });
    gw.wait_log("Redis does not answer", Duration::from_secs(5));
    let before = gw
        .metric_sum("regevent_registrations")
        .expect("metrics answer");
    wait_until(
        Duration::from_secs(30),
        "registrations served while Redis is down",
        || gw.metric_sum("regevent_registrations").unwrap_or(0.0) >= before + RATE as f64,
    );
    assert!(gw.running());

    // Back, empty.
    redis.restart();
    wait_until(Duration::from_secs(30), "connected 1", || {
        gw.metric(CONNECTED) == Some(1.0)
    });

    // The run completes without a failure.
    let status = loadgen.wait().unwrap();
    let report = std::fs::read_to_string(&out).unwrap();
    assert!(status.success(), "loadgen failed:\n{report}");
    assert!(
        report.contains("failures:   0 non-2xx, 0 timeouts, 0 never answered"),
        "{report}"
    );
    // (Gauges are published a little after the fact.)
    wait_until(Duration::from_secs(10), "every user registered", || {
        gw.metric_sum("regevent_registrations") == Some(USERS as f64)
    });

    // Redis holds the whole state again, including what the restart lost.
    wait_until(Duration::from_secs(60), "the whole state in Redis", || {
        in_redis(&url, &prefix) == (USERS, USERS, true)
    });
    gw.wait_log("resynchronised", Duration::from_secs(10));
    assert!(
        gw.metric_sum("regevent_state_snapshots_total")
            .unwrap_or(0.0)
            >= 1.0
    );
    assert!(gw.metric_sum("regevent_state_errors_total").unwrap_or(0.0) >= 1.0);

    // A resynchronisation also removes what the state no longer has: a stale record under the
    // prefix, then the lease key gone (as after a flush) — the gateway takes the lease again and
    // writes everything anew; the stale key goes.
    let mut con = redis.con();
    let ghost = format!("{prefix}:{{sip:ghost@ims.example.net}}:reg");
    let _: () = redis::cmd("SET")
        .arg(&ghost)
        .arg("stale")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}:lease"))
        .query(&mut con)
        .unwrap();
    gw.wait_log("the lease key was gone", Duration::from_secs(10));
    // The load is over: wake the idle SIP task (a CRLF keep-alive) so it starts the copy.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"\r\n\r\n", ("127.0.0.1", sip)).unwrap();
    wait_until(Duration::from_secs(30), "the stale key removed", || {
        !redis::cmd("EXISTS")
            .arg(&ghost)
            .query::<bool>(&mut con)
            .unwrap()
    });
    assert_eq!(in_redis(&url, &prefix), (USERS, USERS, true));
    let owner: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}:lease"))
        .query(&mut con)
        .unwrap();
    assert!(owner.is_some(), "the lease is held again");
    assert!(gw.running());
}
