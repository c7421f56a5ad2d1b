//! Fail loud (issue 20): a gateway whose SIP task dies must not live on answering `/healthz` and
//! `/readyz` with 200. The fault is injected with the debug-only hook (a message carrying
//! `X-Regevent-Test-Fault: panic`; release builds have no such code).
//!
//! In process: `Running::failed` resolves and both probes answer 503. As a real process: it
//! exits with the runtime-failure status (1), so systemd or Kubernetes restart it.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, profile, Harness};
use regevent_gw::stats::client::http_get_any;

fn faulty_options(to: SocketAddr) -> Vec<u8> {
    format!(
        "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKfault\r\nMax-Forwards: 70\r\n\
         From: <sip:t@x>;tag=1\r\nTo: <sip:{to}>\r\nCall-ID: fault\r\nCSeq: 1 OPTIONS\r\n\
         X-Regevent-Test-Fault: panic\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

async fn probe(admin: SocketAddr, path: &'static str) -> u16 {
    let admin = admin.to_string();
    tokio::task::spawn_blocking(move || http_get_any(&admin, path).expect("admin answers").0)
        .await
        .expect("probe")
}

#[tokio::test]
async fn a_dead_sip_task_turns_both_probes_503_and_is_reported() {
    let h = Harness::start(profile(true)).await;
    assert_eq!(probe(h.gw.admin_addr, "/healthz").await, 200);
    assert_eq!(probe(h.gw.admin_addr, "/readyz").await, 200);
    h.ue.send(h.gw_udp, &faulty_options(h.gw_udp))
        .await
        .unwrap();
    let why = tokio::time::timeout(Duration::from_secs(30), h.gw.failed())
        .await
        .expect("the SIP task's death is reported");
    assert_eq!(why, "panicked");
    assert_eq!(probe(h.gw.admin_addr, "/healthz").await, 503);
    assert_eq!(probe(h.gw.admin_addr, "/readyz").await, 503);
}

#[test]
fn the_process_exits_with_a_failure_status_when_its_sip_task_dies() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let admin = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    std::fs::create_dir_all(dir.path().join("profiles")).unwrap();
    std::fs::write(dir.path().join("profiles/default.toml"), "").unwrap();
    let config = dir.path().join("gw.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = [\"udp:127.0.0.1:{port}\"]\nidentity = \"sip:127.0.0.1:{port}\"\n\
             [admin]\nlisten = \"{admin}\"\n[state]\nbackend = \"none\"\n\
             [[trunk_group]]\nname = \"default\"\nprofile = \"default\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_regevent-gw"))
        .args(["run", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start regevent-gw");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http_get_any(&admin, "/readyz"), Ok((200, _))) {
        assert!(
            Instant::now() < deadline,
            "the gateway did not become ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let gw: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(&faulty_options(gw), gw).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the gateway lives on without its SIP task");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1), "runtime failure: {status:?}");
}
