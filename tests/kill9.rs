//! A real gateway process, killed with SIGKILL and started again on the same state directory
//! (SPEC §10), against scripted peers over real sockets: afterwards a NOTIFY in each old dialog
//! gets 200, a request through the old Path reaches the UE, the refresh goes out in the old
//! dialog, a de-REGISTER unsubscribes in the old dialog, and no initial SUBSCRIBE is sent.
//! The kill comes only after the store has written the state (its commit counter is read from
//! `/metrics`), so nothing here depends on timing.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    free_port, next_of, notify, reginfo, register_bytes, register_ok, subscribe_ok, DOMAIN, WAIT,
};
use regevent_gw::sip::{HeaderName, Message};
use regevent_lab::peer::UdpPeer;

const USERS: usize = 5;

struct Gw {
    child: Child,
    admin: String,
    port: u16,
}

impl Drop for Gw {
    /// A failed test must not leave a gateway running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(config: &std::path::Path, admin: &str, port: u16) -> Gw {
    let child = Command::new(env!("CARGO_BIN_EXE_regevent-gw"))
        .args(["run", "--config"])
        .arg(config)
        .env("REGEVENT_GW_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start regevent-gw");
    let gw = Gw {
        child,
        admin: admin.to_owned(),
        port,
    };
    // Ready once the admin API says so (state restored, listeners open).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, _)) = regevent_gw::stats::client::http_get_any(&gw.admin, "/readyz") {
            return gw;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not become ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until the store on disk (read as `regevent-gw state export` reads it, while the
/// gateway runs) holds every registration and every subscription with its first NOTIFY applied.
fn durable(state: &std::path::Path) {
    use regevent_gw::state::Record;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((_, records)) = regevent_gw::store::cli::read(state) {
            let regs = records
                .iter()
                .filter(|r| matches!(r, Record::Registration(_)))
                .count();
            let notified = records
                .iter()
                .filter(|r| matches!(r, Record::Subscription(s) if s.version == Some(0)))
                .count();
            if regs == USERS && notified == USERS {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the store did not get the state: {:?}",
            regevent_gw::store::cli::read(state).map(|(s, r)| (s, r.len()))
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_restart_carries_on_in_every_old_dialog() {
    let dir = tempfile::tempdir().unwrap();
    let core = UdpPeer::bind().await.unwrap();
    let scscf = UdpPeer::bind().await.unwrap();
    let ue = UdpPeer::bind().await.unwrap();
    let port = free_port();
    let admin_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let admin = format!("127.0.0.1:{admin_port}");
    std::fs::create_dir_all(dir.path().join("profiles")).unwrap();
    std::fs::write(
        dir.path().join("profiles/default.toml"),
        "support_reg_event = true\n",
    )
    .unwrap();
    let config = dir.path().join("gw.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = [\"udp:127.0.0.1:{port}\"]\nidentity = \"sip:127.0.0.1:{port}\"\n\
             core = \"sip:{}\"\nt1 = \"100ms\"\n[admin]\nlisten = \"{admin}\"\n\
             [state]\ndir = \"state\"\ncommit = \"20ms\"\n\
             [[trunk_group]]\nname = \"default\"\nprofile = \"default\"\nsources = [\"127.0.0.0/8\"]\n",
            core.addr
        ),
    )
    .unwrap();
    let gw_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut gw = spawn(&config, &admin, port);

    // UEs registered, each subscription granted 20 s (refresh at 10 s) and notified.
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
    let state = dir.path().join("state");
    tokio::task::spawn_blocking(move || durable(&state))
        .await
        .unwrap();

    // kill -9, and a new process on the same state.
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    let port_again = gw.port;
    drop(gw);
    let gw = spawn(&config, &admin, port_again);

    for (i, sub) in subs.iter().enumerate() {
        let pui = format!("sip:u{i}@{DOMAIN}");
        // The S-CSCF's next NOTIFY in the old dialog: 200, not 481.
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
        // A terminating request through the Path the core learned reaches the UE.
        let msg = format!(
            "MESSAGE {pui} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKk9m{i}\r\nMax-Forwards: 70\r\n\
             Route: {}\r\nFrom: <sip:bob@{DOMAIN}>;tag=b\r\nTo: <{pui}>\r\nCall-ID: k9m{i}\r\nCSeq: 1 MESSAGE\r\n\
             Content-Length: 0\r\n\r\n",
            core.addr,
            paths[i].trim()
        );
        core.send(gw_addr, msg.as_bytes()).await.unwrap();
        let (m, _) = next_of(&ue, "MESSAGE", false)
            .await
            .expect("MESSAGE through the old Path");
        assert_eq!(m.call_id(), format!("k9m{i}"));
    }

    // Every SUBSCRIBE from now on is in an old dialog: the refreshes (granted 20 s: due 10 s
    // after the grant), then the unsubscribes after de-REGISTERs. None is initial.
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
        assert_eq!(m.expires().unwrap(), Some(660));
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
        let j = old(&unsub).expect("the unsubscribe is in an old dialog");
        assert_eq!(j, i);
        assert_eq!(unsub.to().tag(), Some("scscf-tag"));
    }
    let _ = WAIT;
    drop(gw);
}
