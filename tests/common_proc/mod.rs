//! Real processes for tests: a `redis-server` on a free loopback port (no persistence, in a
//! temporary directory) and `regevent-gw run` with a configuration file. Both are killed when
//! dropped, so a failed test leaves nothing running.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait (at most `within`) until `f` holds; panic with `what` otherwise.
pub fn wait_until(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `redis-server` without persistence: killed, it comes back empty.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut r = RedisServer {
            child: None,
            port: free_tcp_port(),
            dir: tempfile::tempdir().unwrap(),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server (Debian package redis-server) must be installed for this test");
        self.child = Some(child);
        let url = self.url();
        wait_until(Duration::from_secs(10), "redis-server answers PING", || {
            redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok()
        });
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn con(&self) -> redis::Connection {
        redis::Client::open(self.url().as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// SIGKILL: everything it held is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again, empty, on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `regevent-gw run` process; its log (stderr) goes to a file for assertions and is echoed
/// when the test fails.
pub struct Gw {
    pub child: Child,
    pub admin: String,
    pub log: PathBuf,
    pub name: String,
}

impl Gw {
    /// Start `regevent-gw run --config CONFIG`; do not wait for it.
    pub fn spawn(name: &str, config: &Path, admin: &str) -> Gw {
        Gw::spawn_bin(
            Path::new(env!("CARGO_BIN_EXE_regevent-gw")),
            name,
            config,
            admin,
        )
    }

    /// The same with another build of the binary (e.g. a release build for measurements).
    pub fn spawn_bin(bin: &Path, name: &str, config: &Path, admin: &str) -> Gw {
        Gw::spawn_args(bin, name, config, admin, &[])
    }

    /// `regevent-gw run --config CONFIG ARGS…` with the binary `bin`.
    pub fn spawn_args(bin: &Path, name: &str, config: &Path, admin: &str, args: &[&str]) -> Gw {
        let log = config.with_extension(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .args(["run", "--config"])
            .arg(config)
            .args(args)
            .env("REGEVENT_GW_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start regevent-gw");
        Gw {
            child,
            admin: admin.to_owned(),
            log,
            name: name.to_owned(),
        }
    }

    /// `/readyz` answers 200 (state restored, listeners open).
    pub fn ready(&self) -> bool {
        matches!(
            regevent_gw::stats::client::http_get_any(&self.admin, "/readyz"),
            Ok((200, _))
        )
    }

    pub fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.ready() {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "{} exited ({st}) before it was ready:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not become ready:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the process to end (at most `within`).
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Wait until the log has a line containing `text`.
    pub fn wait_log(&self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log_text().contains(text) {
            assert!(
                Instant::now() < deadline,
                "{}: no log line with {text:?}:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One sample of a metric from `/metrics` (the first series whose line starts with
    /// `series`, e.g. `regevent_state_connected{backend="redis"}`).
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (status, body) =
            regevent_gw::stats::client::http_get_any(&self.admin, "/metrics").ok()?;
        if status != 200 {
            return None;
        }
        body.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// The sum of every series of a metric (`None` when `/metrics` does not answer).
    pub fn metric_sum(&self, name: &str) -> Option<f64> {
        let (status, body) =
            regevent_gw::stats::client::http_get_any(&self.admin, "/metrics").ok()?;
        if status != 200 {
            return None;
        }
        Some(
            body.lines()
                .filter(|l| {
                    l.strip_prefix(name)
                        .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (a clean stop).
    pub fn term(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- log of {} ----\n{}", self.name, self.log_text());
        }
    }
}

/// A gateway configuration in `dir` with the Redis backend: `gw.toml` and a profile with
/// reg-event on. `extra_state` goes into `[state]`.
pub fn redis_config(
    dir: &Path,
    sip_port: u16,
    identity_port: u16,
    core: &str,
    admin: &str,
    redis_url: &str,
    extra_state: &str,
) -> PathBuf {
    std::fs::create_dir_all(dir.join("profiles")).unwrap();
    std::fs::write(
        dir.join("profiles/default.toml"),
        "support_reg_event = true\n",
    )
    .unwrap();
    let config = dir.join("gw.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = [\"udp:127.0.0.1:{sip_port}\"]\nidentity = \"sip:127.0.0.1:{identity_port}\"\n\
             core = \"sip:{core}\"\nt1 = \"100ms\"\n[admin]\nlisten = \"{admin}\"\n\
             [state]\nbackend = \"redis\"\nurl = \"{redis_url}\"\ncommit = \"20ms\"\n{extra_state}\n\
             [[trunk_group]]\nname = \"default\"\nprofile = \"default\"\nsources = [\"127.0.0.0/8\"]\n"
        ),
    )
    .unwrap();
    config
}
