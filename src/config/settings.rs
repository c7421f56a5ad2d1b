//! The main configuration file (SPEC §9). Key names are a contract.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use regevent_proto::settings::Settings;
pub use regevent_proto::settings::{Profile, Profiles, TrunkGroup};
pub use regevent_proto::sip::Transport;

/// `"udp:0.0.0.0:5060"`, `"tcp:[::]:5060"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The listener's name (its text as written in `sip.listen`, e.g. `udp:0.0.0.0:5060`).
    pub name: String,
    pub transport: Transport,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SipSettings {
    pub listen: Vec<Listener>,
    /// Our URI in Via/Path/Contact/From (`sip.identity`).
    pub identity: String,
    /// Next hop for REGISTER (`sip.core`).
    pub core: String,
    /// `sip.t1` (default 500ms); T2 = `sip.t2` (default 4s); Timer F = 64×T1.
    pub t1: Duration,
    pub t2: Duration,
    /// `sip.p_asserted_identity`: P-Asserted-Identity on our SUBSCRIBEs, if set.
    pub p_asserted_identity: Option<String>,
    /// `sip.max_forwards` on requests we originate (default 70).
    pub max_forwards: u32,
    /// `sip.coalesce` (default 2ms, at most 10ms, 0 = off): while UDP input arrives more often
    /// than every 2× this, the SIP thread waits until this long after a turn began before it
    /// reads again, so what arrived meanwhile is handled and answered as one batch.
    pub coalesce: Duration,
}

/// `admin.listen` without a file or key (SPEC §9): loopback, port 9464 — not 9090, which is
/// Prometheus' own port.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);

#[derive(Debug, Clone, PartialEq)]
pub struct AdminSettings {
    /// `admin.listen` (default 127.0.0.1:9464).
    pub listen: SocketAddr,
    /// `admin.subscription_series_cap`: max series on /metrics/subscriptions (default 10000).
    pub subscription_series_cap: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionSettings {
    /// `subscription.expiry_margin` (default 60s): added to the registration expiry.
    pub expiry_margin: Duration,
    /// `subscription.max_subscribe_rate` (default 2000/s): ceiling on SUBSCRIBEs sent per second
    /// (refreshes are spread, never late beyond their margin).
    pub max_subscribe_rate: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LimitsSettings {
    /// `limits.max_message` bytes (default 65535): the largest message over UDP.
    pub max_message: usize,
    /// `limits.max_message_tcp` bytes (default 1 MiB, at least `max_message`): the largest
    /// message over TCP, where a NOTIFY with a large implicit set comes.
    pub max_message_tcp: usize,
    /// `limits.reginfo_max_bytes` (default 1 MiB) and `limits.reginfo_max_depth` (default 16).
    pub reginfo_max_bytes: usize,
    pub reginfo_max_depth: usize,
    /// `limits.expected_registrations` (default 0): registration and subscription tables are
    /// sized for this many at start, so growing to it never stops SIP processing to rehash a
    /// large table (about 65 ms at 115,000 registrations, 140 ms at 230,000).
    pub expected_registrations: usize,
}

/// Where durable state is kept (`state.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateBackend {
    /// Files in `state.dir` (the default).
    Embedded,
    /// Redis or Valkey at `state.url`.
    Redis,
    /// Nothing is kept: a restart forgets every registration (for tests and measurements).
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StateSettings {
    pub backend: StateBackend,
    /// `state.dir` (default `data`), resolved against the config file's directory.
    pub dir: PathBuf,
    /// `state.commit` (default 50ms): the group-commit window, the most a crash may lose.
    pub commit: Duration,
    /// `state.url` (default `redis://127.0.0.1:6379/0`).
    pub url: String,
    /// `state.prefix`: the Redis key prefix of this gateway's records (default: from
    /// `sip.identity`, so one Redis can serve many gateways and a standby with the same
    /// identity finds them).
    pub prefix: Option<String>,
    /// `state.standby` (default false): wait for the active instance's lease to lapse before
    /// restoring and serving (Redis only).
    pub standby: bool,
    /// `state.lease` (default 5s): how long the active instance's lease lives without renewal
    /// (renewed every third of it).
    pub lease: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this came from (None = built-in defaults).
    pub file: Option<PathBuf>,
    pub sip: SipSettings,
    pub admin: AdminSettings,
    pub subscription: SubscriptionSettings,
    pub limits: LimitsSettings,
    /// `profiles.dir`.
    pub profiles_dir: PathBuf,
    pub trunk_groups: Vec<TrunkGroup>,
    pub profiles: Profiles,
    pub state: StateSettings,
    /// `[overload]` (SPEC §11).
    pub overload: regevent_proto::core::OverloadSettings,
}

/// One configuration problem: file, key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// Dotted key (`sip.t1`, `trunk_group[1].profile`), or `-` if the file as a whole.
    pub key: String,
    /// `line:column` when known.
    pub position: Option<String>,
    pub problem: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.position {
            Some(p) => write!(
                f,
                "{}:{}: key `{}`: {}",
                self.file, p, self.key, self.problem
            ),
            None => write!(f, "{}: key `{}`: {}", self.file, self.key, self.problem),
        }
    }
}

/// Every problem found, reported together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Load the main file (if any) with environment overrides, then the profiles directory it
    /// names; validate everything; report every problem at once. `None` = built-in defaults
    /// (SPEC §9: loopback 5060 UDP+TCP, core sip:127.0.0.1:5070, admin 127.0.0.1:9464,
    /// ./profiles, one trunk group `default` on profile `default` matching every source).
    /// Environment variables named `REGEVENT_GW__SECTION__KEY` override the file.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigErrors> {
        // `vars_os`: `vars` panics on a non-UTF-8 variable anywhere in the environment.
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with(super::load::ENV_PREFIX))
            .collect();
        Self::load_with_env(file, &env)
    }

    /// Like `load`, but with explicit environment variables (for tests) instead of the process'.
    /// Pairs whose name does not start with `REGEVENT_GW__` are ignored.
    pub fn load_with_env(
        file: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Config, ConfigErrors> {
        super::load::load(file, env)
    }

    /// The profile of the trunk group named `trunk_group`.
    pub fn profile_for(&self, trunk_group: &str) -> Option<&Profile> {
        let tg = self.trunk_groups.iter().find(|t| t.name == trunk_group)?;
        self.profiles.get(&tg.profile)
    }

    /// The first trunk group (in file order) that matches a message arriving on `listener` (its
    /// name as written in `sip.listen`) from `source`.
    pub fn trunk_group_for(&self, listener: &str, source: IpAddr) -> Option<&TrunkGroup> {
        self.trunk_groups
            .iter()
            .find(|t| t.matches(listener, source))
    }

    /// What the protocol core is configured with.
    pub fn core_settings(&self) -> Settings {
        Settings {
            identity: self.sip.identity.clone(),
            core: self.sip.core.clone(),
            t1: self.sip.t1,
            t2: self.sip.t2,
            p_asserted_identity: self.sip.p_asserted_identity.clone(),
            max_forwards: self.sip.max_forwards,
            listeners: self.sip.listen.iter().map(|l| l.name.clone()).collect(),
            trunk_groups: self.trunk_groups.clone(),
            profiles: self.profiles.clone(),
            expiry_margin: self.subscription.expiry_margin,
            max_subscribe_rate: self.subscription.max_subscribe_rate,
            max_message: self.limits.max_message,
            max_message_tcp: self.limits.max_message_tcp,
            reginfo_max_bytes: self.limits.reginfo_max_bytes,
            reginfo_max_depth: self.limits.reginfo_max_depth,
            expected_registrations: self.limits.expected_registrations,
            overload: self.overload.clone(),
        }
    }
}

impl Listener {
    /// Parse `udp:ADDR:PORT` / `tcp:ADDR:PORT` (IPv6 in brackets: `udp:[::]:5060`).
    pub fn parse(text: &str) -> Result<Listener, String> {
        let (proto, addr) = text
            .split_once(':')
            .ok_or_else(|| "expected `udp:ADDR:PORT` or `tcp:ADDR:PORT`".to_string())?;
        let transport = match proto {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            _ => return Err("transport must be `udp` or `tcp` (e.g. `udp:0.0.0.0:5060`)".into()),
        };
        let addr: SocketAddr = addr.parse().map_err(|_| {
            "expected an address and port after the transport, e.g. `udp:0.0.0.0:5060` or \
             `tcp:[::]:5060`"
                .to_string()
        })?;
        Ok(Listener {
            name: text.to_string(),
            transport,
            addr,
        })
    }
}

impl std::str::FromStr for Listener {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Listener::parse(s)
    }
}

/// The text the CLI prints for a failed load: one problem per line, then a count.
pub fn render_errors_for_cli(errs: &ConfigErrors) -> String {
    let n = errs.0.len();
    format!(
        "{errs}\n{n} configuration problem{} found",
        if n == 1 { "" } else { "s" }
    )
}
