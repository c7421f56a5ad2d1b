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

use common::{
    free_port, next_of, notify, reginfo, register_bytes, register_ok, subscribe_ok, DOMAIN,
};
use common_proc::{free_tcp_port, redis_config, wait_until, Gw, RedisServer};
use regevent_gw::sip::{HeaderName, Message};
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

    let mut subs: Vec<Message> = Vec::new();
    let mut paths: Vec<String> = Vec::new();
    for i in 0..USERS {
        let user = format!("u{i}");
        ue.send(gw_addr, &register_bytes(&user, ue.addr, "UDP", 1, 600, ""))
            .await
            .unwrap();
        let (fwd, from) = next_of(&core, "REGISTER", false).await.expect("REGISTER");
        paths.push(fwd.header(HeaderName::Path).expect("Path").to_owned());
        core.send(from, &register_ok(&fwd, scscf.addr, 600, &[]))
            .await
            .unwrap();
        next_of(&ue, "REGISTER", true).await.expect("200 to the UE");
        let (sub, from) = next_of(&scscf, "SUBSCRIBE", false)
            .await
            .expect("SUBSCRIBE");
        assert!(sub.to().tag().is_none(), "an initial SUBSCRIBE");
        scscf
            .send(from, &subscribe_ok(&sub, scscf.addr, 20))
            .await
            .unwrap();
        let pui = format!("sip:{user}@{DOMAIN}");
        let n = notify(
            &sub,
            port,
            scscf.addr,
            1,
            "active;expires=20",
            "application/reginfo+xml",
            &reginfo(0, &pui, "active", "sip:x@127.0.0.1"),
        );
        scscf.send(gw_addr, &n).await.unwrap();
        let (resp, _) = next_of(&scscf, "NOTIFY", true)
            .await
            .expect("200 to NOTIFY");
        assert_eq!(resp.status(), Some(200));
        subs.push(sub);
    }

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

    for (i, sub) in subs.iter().enumerate() {
        let pui = format!("sip:u{i}@{DOMAIN}");
        let n = notify(
            sub,
            port,
            scscf.addr,
            2,
            "active;expires=20",
            "application/reginfo+xml",
            &reginfo(1, &pui, "active", "sip:x@127.0.0.1"),
        );
        scscf.send(gw_addr, &n).await.unwrap();
        let (resp, _) = next_of(&scscf, "NOTIFY", true)
            .await
            .expect("answer to NOTIFY");
        assert_eq!(
            resp.status(),
            Some(200),
            "NOTIFY in the old dialog of {pui}"
        );
        let msg = format!(
            "MESSAGE {pui} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKrt{i}\r\nMax-Forwards: 70\r\n\
             Route: {}\r\nFrom: <sip:bob@{DOMAIN}>;tag=b\r\nTo: <{pui}>\r\nCall-ID: rt{i}\r\nCSeq: 1 MESSAGE\r\n\
             Content-Length: 0\r\n\r\n",
            core.addr,
            paths[i].trim()
        );
        core.send(gw_addr, msg.as_bytes()).await.unwrap();
        let (m, _) = next_of(&ue, "MESSAGE", false)
            .await
            .expect("MESSAGE through the old Path");
        assert_eq!(m.call_id(), format!("rt{i}"));
    }

    // Every SUBSCRIBE from B is in an old dialog: the refreshes (granted 20 s by A's peer: due
    // 10 s after the grant), then the unsubscribes after de-REGISTERs. None is initial.
    let old = |m: &Message| subs.iter().position(|s| s.call_id() == m.call_id());
    let mut refreshed = [false; USERS];
    while refreshed.iter().any(|r| !r) {
        let (m, from) = scscf.recv(Duration::from_secs(60)).await.expect("refresh");
        if !m.is_request() || m.method_str() != "SUBSCRIBE" {
            continue;
        }
        let i = old(&m).expect("a SUBSCRIBE in an old dialog, never an initial one");
        assert_eq!(m.to().tag(), Some("scscf-tag"));
        assert!(m.cseq().seq > subs[i].cseq().seq);
        refreshed[i] = true;
        scscf
            .send(from, &subscribe_ok(&m, scscf.addr, 20))
            .await
            .unwrap();
    }
    for i in 0..USERS {
        let user = format!("u{i}");
        ue.send(gw_addr, &register_bytes(&user, ue.addr, "UDP", 2, 0, ""))
            .await
            .unwrap();
        let (fwd, from) = next_of(&core, "REGISTER", false)
            .await
            .expect("de-REGISTER");
        core.send(from, &register_ok(&fwd, scscf.addr, 0, &[]))
            .await
            .unwrap();
        let unsub = loop {
            let (m, _) = next_of(&scscf, "SUBSCRIBE", false)
                .await
                .expect("unsubscribe");
            if m.expires().unwrap() == Some(0) {
                break m;
            }
        };
        assert_eq!(old(&unsub), Some(i), "the unsubscribe is in an old dialog");
        assert_eq!(unsub.to().tag(), Some("scscf-tag"));
    }
    drop(b);
}
