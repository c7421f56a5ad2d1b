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

use common::free_port;
use common::takeover::Peers;
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
    let mut peers = Peers::new(&core, &scscf, &ue, gw_addr, port);
    let (subs, paths) = peers.register_and_subscribe(USERS).await;
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

    let refreshes = peers.old_dialogs_carry_on(&subs, &paths, "k9m").await;
    for r in &refreshes {
        // The refresh asks for what the first SUBSCRIBE asked.
        assert_eq!(r.expires().unwrap(), Some(660));
    }
    drop(gw);
}
