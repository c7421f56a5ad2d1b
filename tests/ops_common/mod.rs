//! What the operations tests (`tests/ops_*.rs`) share: a real `regevent-gw` process started from
//! a configuration in a temporary directory, its stderr in a file (not a terminal, as under
//! systemd), its admin API, and signals sent to it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The built binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_regevent-gw");
/// How long anything a test waits for may take (a busy 2-core machine, a debug build).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A loopback TCP port nobody listens on now (racy, but loopback in tests).
pub fn free_tcp_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A main file with its SIP listeners on port 0 (the OS picks), the admin API on `admin`, no
/// durable state unless `extra` says otherwise, `extra` appended (more sections, trunk groups).
pub fn main_file(admin: &str, sip_extra: &str, extra: &str) -> String {
    format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:0\", \"tcp:127.0.0.1:0\"]\nidentity = \"sip:127.0.0.1:5060\"\n\
         core = \"sip:127.0.0.1:9\"\n{sip_extra}\n[admin]\nlisten = \"{admin}\"\n{extra}"
    )
}

/// Write `gateway.toml` = `main` and `profiles/NAME.toml` for each of `profiles` into `dir`.
pub fn write_config(dir: &Path, main: &str, profiles: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir.join("profiles")).expect("mkdir profiles");
    for (name, text) in profiles {
        std::fs::write(dir.join("profiles").join(format!("{name}.toml")), text)
            .expect("write profile");
    }
    let file = dir.join("gateway.toml");
    std::fs::write(&file, main).expect("write gateway.toml");
    file
}

/// A running gateway process. Dropping it kills it (a failed test leaves nothing running).
pub struct Gateway {
    pub child: Child,
    pub log: PathBuf,
    pub admin: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `regevent-gw run --config FILE ARGS…` with stderr into `DIR/gateway.log` and `env` set;
/// returns once `/readyz` answers 200.
pub fn start(
    dir: &Path,
    config: &Path,
    admin: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Gateway {
    let log = dir.join("gateway.log");
    let stderr = std::fs::File::create(&log).expect("create log");
    let mut cmd = Command::new(BIN);
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("REGEVENT_GW_LOG_FORMAT")
        .env("REGEVENT_GW_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("start regevent-gw");
    let mut gw = Gateway {
        child,
        log,
        admin: admin.to_string(),
    };
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok((200, _)) = regevent_gw::stats::client::http_get_any(admin, "/readyz") {
            return gw;
        }
        if let Ok(Some(status)) = gw.child.try_wait() {
            panic!(
                "the gateway exited ({status}) before it was ready:\n{}",
                gw.log_text()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not become ready:\n{}",
            gw.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Gateway {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal by name (`HUP`, `TERM`, `INT`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Everything the gateway logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log has a line containing `needle`; the whole log.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?} in:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The bound UDP SIP address, from the start-up line of a text log
    /// (`regevent-gw running sip=[(Udp, 127.0.0.1:PORT), …]`).
    pub fn sip_udp(&self) -> std::net::SocketAddr {
        let log = self.wait_log("regevent-gw running");
        let at = log
            .find("(Udp, ")
            .expect("a UDP listener in the start-up line")
            + 6;
        let end = log[at..].find(')').expect(")") + at;
        log[at..end].parse().expect("address")
    }

    /// Wake the gateway's core with one REGISTER from a UE socket (forwarded to `sip.core`,
    /// remembered for 64×T1): its timers then run, and with them the once-a-second gauges,
    /// which an idle core that never had a timer does not publish.
    pub fn register_once(&self) {
        let ue = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let me = ue.local_addr().expect("addr");
        let msg = format!(
            "REGISTER sip:ims.example.net SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKops{};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:ops@ims.example.net>;tag=1\r\nTo: <sip:ops@ims.example.net>\r\n\
             Call-ID: ops-{}@127.0.0.1\r\nCSeq: 1 REGISTER\r\nContact: <sip:ops@{me}>;expires=600\r\n\
             Content-Length: 0\r\n\r\n",
            me.port(),
            me.port()
        );
        ue.send_to(msg.as_bytes(), self.sip_udp())
            .expect("send REGISTER");
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        regevent_gw::stats::client::http_get(&self.admin, "/metrics").expect("GET /metrics")
    }

    /// Wait until `/metrics` satisfies `ok`; that text.
    pub fn wait_metrics(&self, what: &str, mut ok: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.metrics();
            if ok(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "/metrics never showed {what}:\n{text}\nlog:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for the process to end, at most `limit`; its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The value of the counter or gauge `name` with exactly these labels in a `/metrics` text.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let snap = regevent_gw::stats::exposition::parse(text);
    let want: regevent_gw::stats::exposition::Labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    snap.counters
        .get(name)
        .into_iter()
        .chain(snap.gauges.get(name))
        .flatten()
        .find(|s| s.labels == want)
        .map(|s| s.value)
}

/// Whether any series of `name` has `label` = `value` in a `/metrics` text.
pub fn has_series(text: &str, name: &str, label: &str, value: &str) -> bool {
    let snap = regevent_gw::stats::exposition::parse(text);
    snap.counters
        .get(name)
        .into_iter()
        .chain(snap.gauges.get(name))
        .flatten()
        .any(|s| s.labels.get(label).map(String::as_str) == Some(value))
}

/// Run the binary with `args` (and `env`) to completion, killed after [`PATIENCE`] (then the
/// code is `None`): (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("REGEVENT_GW_LOG_FORMAT")
        .env_remove("REGEVENT_GW__ADMIN__LISTEN")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("create"))
        .stderr(std::fs::File::create(&err).expect("create"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run regevent-gw");
    let deadline = Instant::now() + PATIENCE;
    let code = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (code, read(&out), read(&err))
}
