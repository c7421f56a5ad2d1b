//! `regevent-gw demo` as a user runs it: the built binary, a fixed seed, a few seconds, loopback
//! ports picked at run time. Its once-a-second summary lines must show subscriptions created,
//! refreshed, notified and removed.

use std::collections::HashMap;
use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port free for UDP (the demo's SIP listener) and one free for TCP (admin).
fn free_ports() -> (u16, u16) {
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    (
        udp.local_addr().unwrap().port(),
        tcp.local_addr().unwrap().port(),
    )
}

/// `key=value` pairs of a summary line (`t=  8s registrations=5 ... | SUBSCRIBE initial=10 ...`).
/// Keys repeat across sections only as written, so the first occurrence wins.
fn fields(line: &str) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    let mut pending_key: Option<&str> = None;
    for tok in line.split_whitespace() {
        if let Some(k) = pending_key.take() {
            // `t=  8s`: the value was separated from its key by padding.
            if let Ok(v) = tok.trim_end_matches('s').parse() {
                m.entry(k.to_string()).or_insert(v);
            }
            continue;
        }
        let Some((k, v)) = tok.split_once('=') else {
            continue;
        };
        if v.is_empty() {
            pending_key = Some(k);
        } else if let Ok(v) = v.trim_end_matches('s').parse() {
            m.entry(k.to_string()).or_insert(v);
        }
    }
    m
}

#[test]
fn demo_creates_refreshes_notifies_and_removes_subscriptions() {
    let (sip, admin) = free_ports();
    let mut child = Command::new(env!("CARGO_BIN_EXE_regevent-gw"))
        .args(["demo", "--seconds", "8", "--seed", "1", "--ues", "10"])
        .args([
            "--admin",
            &format!("127.0.0.1:{admin}"),
            "--sip",
            &format!("127.0.0.1:{sip}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start regevent-gw demo");

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("demo did not stop within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        status.success(),
        "demo failed: {status}\nstdout:\n{out}\nstderr:\n{err}"
    );

    let summaries: Vec<&str> = out.lines().filter(|l| l.starts_with("t=")).collect();
    assert!(
        summaries.len() >= 7,
        "expected a summary line per second, got:\n{out}"
    );
    let last = fields(summaries.last().unwrap());
    let get = |k: &str| {
        *last
            .get(k)
            .unwrap_or_else(|| panic!("no `{k}=` in the last summary line:\n{out}"))
    };
    assert!(get("t") >= 8, "ran for {}s:\n{out}", get("t"));
    assert!(get("initial") > 0, "no initial SUBSCRIBE:\n{out}");
    assert!(get("refresh") > 0, "no refresh SUBSCRIBE:\n{out}");
    assert!(get("accepted") > 0, "no NOTIFY accepted:\n{out}");
    let removed: u64 = [
        "error",
        "timeout",
        "terminated",
        "user",
        "network",
        "expired",
    ]
    .iter()
    .map(|k| get(k))
    .sum();
    assert!(removed > 0, "no subscription removed:\n{out}");
    // A fixed seed and healthy peers: nothing was refused or timed out.
    assert_eq!(
        get("error") + get("timeout"),
        0,
        "errors or timeouts:\n{out}"
    );
    // The network deregisters a UE every 4 s (and half the UEs leave after 6 s): unsubscribes.
    assert!(get("unsubscribe") > 0, "no unsubscribe:\n{out}");

    let end = out
        .lines()
        .find(|l| l.starts_with("demo: UEs sent"))
        .unwrap_or_else(|| panic!("no final UE line:\n{out}"));
    let failures: u64 = end
        .rsplit_once(" failures")
        .and_then(|(a, _)| a.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot read failures from `{end}`"));
    assert_eq!(failures, 0, "UE failures: {end}");
}

#[test]
fn summary_fields_parse() {
    let f = fields("t=  8s registrations=5 subscriptions=4 | SUBSCRIBE initial=10 refresh=7 unsubscribe=3 | NOTIFY accepted=12 | removed error=0 timeout=0 terminated=1 user=3 network=1 expired=0");
    assert_eq!(f["t"], 8);
    assert_eq!(f["initial"], 10);
    assert_eq!(f["accepted"], 12);
    assert_eq!(f["network"], 1);
}
