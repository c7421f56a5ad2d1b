//! Loading the main file: strict walk of the TOML (unknown keys, wrong types, positions), merge
//! with the `REGEVENT_GW__SECTION__KEY` environment through the `config` crate, then validation
//! of every key into the public types, collecting every problem.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::Value;
use ipnet::IpNet;

use super::profile::{load_dir_partial, Profile, Profiles};
use super::schema;
use super::settings::{
    AdminSettings, Config, ConfigError, ConfigErrors, LimitsSettings, Listener, SipSettings,
    StateBackend, StateSettings, SubscriptionSettings, TrunkGroup, DEFAULT_ADMIN_LISTEN,
};
use super::values::{check_sip_uri, quote, Problems};
use regevent_proto::core::OverloadSettings;
use regevent_proto::settings::DEFAULT_MAX_MESSAGE_TCP;

/// Prefix of the environment variables that override keys (`REGEVENT_GW__SIP__T1`).
pub(crate) const ENV_PREFIX: &str = "REGEVENT_GW__";
/// What errors about built-in defaults (no file) name as their file.
const BUILT_IN: &str = "<built-in defaults>";

const DEFAULT_LISTEN: [&str; 2] = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"];
const DEFAULT_IDENTITY: &str = "sip:127.0.0.1:5060";
const DEFAULT_CORE: &str = "sip:127.0.0.1:5070";
const DEFAULT_PROFILES_DIR: &str = "profiles";
const DEFAULT_STATE_DIR: &str = "data";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    sip: RawSip,
    admin: RawAdmin,
    subscription: RawSubscription,
    limits: RawLimits,
    overload: RawOverload,
    profiles: RawProfiles,
    state: RawState,
    trunk_group: Option<Vec<RawTrunkGroup>>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawState {
    backend: Option<Value>,
    dir: Option<Value>,
    commit: Option<Value>,
    url: Option<Value>,
    prefix: Option<Value>,
    standby: Option<Value>,
    lease: Option<Value>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSip {
    listen: Option<Value>,
    identity: Option<Value>,
    core: Option<Value>,
    t1: Option<Value>,
    t2: Option<Value>,
    p_asserted_identity: Option<Value>,
    max_forwards: Option<Value>,
    coalesce: Option<Value>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAdmin {
    listen: Option<Value>,
    subscription_series_cap: Option<Value>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSubscription {
    expiry_margin: Option<Value>,
    max_subscribe_rate: Option<Value>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    max_message: Option<Value>,
    max_message_tcp: Option<Value>,
    reginfo_max_bytes: Option<Value>,
    reginfo_max_depth: Option<Value>,
    expected_registrations: Option<Value>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawOverload {
    enabled: Option<Value>,
    max_delay: Option<Value>,
    max_queue: Option<Value>,
    max_queue_bytes: Option<Value>,
    max_transactions: Option<Value>,
    retry_after_min: Option<Value>,
    retry_after_max: Option<Value>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawProfiles {
    dir: Option<Value>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTrunkGroup {
    name: Option<Value>,
    profile: Option<Value>,
    sources: Option<Value>,
    listener: Option<Value>,
}

/// Map the environment onto dotted keys; unknown variables are reported, known ones returned
/// (variable → value) along with dotted key → variable.
fn environment(
    env: &[(String, String)],
    errors: &mut Vec<ConfigError>,
) -> (config::Map<String, String>, HashMap<String, String>) {
    let known = schema::leaf_keys(schema::MAIN);
    let mut vars = config::Map::new();
    let mut keys = HashMap::new();
    for (var, value) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let dotted = rest
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
            .join(".");
        if known.contains(&dotted) {
            vars.insert(var.clone(), value.clone());
            keys.insert(dotted, var.clone());
        } else {
            errors.push(ConfigError {
                file: format!("environment variable {var}"),
                key: dotted,
                position: None,
                problem: format!(
                    "unknown key (variables are {ENV_PREFIX}SECTION__KEY for: {})",
                    known.join(", ")
                ),
            });
        }
    }
    (vars, keys)
}

/// Merge the checked file and the environment with the `config` crate.
fn merge(clean: &toml::Table, env: config::Map<String, String>) -> Result<RawConfig, String> {
    let text = toml::to_string(clean).map_err(|e| e.to_string())?;
    let env = config::Environment::with_prefix(ENV_PREFIX.trim_end_matches('_'))
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("sip.listen")
        .source(Some(env));
    config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Toml))
        .add_source(env)
        .build()
        .and_then(|c| c.try_deserialize::<RawConfig>())
        .map_err(|e| e.to_string())
}

/// How problems name the configuration: its file, or the built-in defaults.
pub(super) fn file_label(file: Option<&Path>) -> String {
    file.map_or_else(|| BUILT_IN.to_string(), |p| p.display().to_string())
}

pub(crate) fn load(file: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
    let file_name = file_label(file);
    let mut errors = Vec::new();
    let (clean, positions) = match file {
        None => (toml::Table::new(), HashMap::new()),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigErrors(vec![ConfigError {
                    file: file_name.clone(),
                    key: "-".into(),
                    position: None,
                    problem: format!("cannot read the file: {e}"),
                }])
            })?;
            let walked = schema::parse_and_walk(&file_name, &text, schema::MAIN)
                .map_err(|e| ConfigErrors(vec![e]))?;
            errors.extend(walked.errors);
            (walked.clean, walked.positions)
        }
    };
    let (vars, env_keys) = environment(env, &mut errors);
    let raw = merge(&clean, vars).map_err(|problem| {
        let mut errors = errors.clone();
        errors.push(ConfigError {
            file: file_name.clone(),
            key: "-".into(),
            position: None,
            problem,
        });
        ConfigErrors(errors)
    })?;
    let mut p = Problems {
        file: file_name,
        positions,
        env_keys,
        errors,
    };
    let config = build(&mut p, file, raw);
    if p.errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(p.errors))
    }
}

fn build(p: &mut Problems, file: Option<&Path>, raw: RawConfig) -> Config {
    let sip = sip(p, raw.sip);
    let admin = AdminSettings {
        listen: p
            .get("admin.listen", raw.admin.listen, |v| {
                let s = v
                    .into_string()
                    .map_err(|_| "expected a string".to_string())?;
                s.trim().parse::<SocketAddr>().map_err(|_| {
                    format!(
                        "invalid address {}: expected IP:PORT such as `127.0.0.1:9464`",
                        quote(&s)
                    )
                })
            })
            .unwrap_or(DEFAULT_ADMIN_LISTEN),
        subscription_series_cap: p.uint(
            "admin.subscription_series_cap",
            raw.admin.subscription_series_cap,
            10_000,
            0,
            u32::MAX.into(),
        ) as usize,
    };
    let subscription = SubscriptionSettings {
        expiry_margin: p.duration(
            "subscription.expiry_margin",
            raw.subscription.expiry_margin,
            Duration::from_secs(60),
        ),
        max_subscribe_rate: p.uint(
            "subscription.max_subscribe_rate",
            raw.subscription.max_subscribe_rate,
            regevent_proto::settings::DEFAULT_MAX_SUBSCRIBE_RATE.into(),
            1,
            u32::MAX.into(),
        ) as u32,
    };
    let big = u64::from(u32::MAX);
    let max_message = p.uint("limits.max_message", raw.limits.max_message, 65_535, 1, big) as usize;
    let limits = LimitsSettings {
        max_message,
        max_message_tcp: p.uint(
            "limits.max_message_tcp",
            raw.limits.max_message_tcp,
            DEFAULT_MAX_MESSAGE_TCP.max(max_message) as u64,
            1,
            big,
        ) as usize,
        reginfo_max_bytes: p.uint(
            "limits.reginfo_max_bytes",
            raw.limits.reginfo_max_bytes,
            1 << 20,
            1,
            big,
        ) as usize,
        reginfo_max_depth: p.uint(
            "limits.reginfo_max_depth",
            raw.limits.reginfo_max_depth,
            16,
            1,
            1024,
        ) as usize,
        expected_registrations: p.uint(
            "limits.expected_registrations",
            raw.limits.expected_registrations,
            0,
            0,
            10_000_000,
        ) as usize,
    };
    let dir = p
        .string("profiles.dir", raw.profiles.dir)
        .unwrap_or_else(|| DEFAULT_PROFILES_DIR.into());
    if dir.trim().is_empty() {
        p.push("profiles.dir", "must not be empty");
    }
    let profiles_dir = match file.and_then(Path::parent) {
        Some(base) if Path::new(&dir).is_relative() => normalize(&base.join(&dir)),
        _ => PathBuf::from(&dir),
    };
    let trunk_groups = trunk_groups(p, file.is_some(), raw.trunk_group, &sip.listen);
    let profiles = profiles(p, file.is_some(), &profiles_dir, &trunk_groups);
    let state = state(p, file, raw.state);
    let overload = overload(p, raw.overload);
    Config {
        file: file.map(Path::to_path_buf),
        sip,
        admin,
        subscription,
        limits,
        profiles_dir,
        trunk_groups,
        profiles,
        state,
        overload,
    }
}

/// `[overload]` (SPEC §11): on by default; see `docs/configuration.md`.
fn overload(p: &mut Problems, raw: RawOverload) -> OverloadSettings {
    let d = OverloadSettings::default();
    let enabled = p
        .get("overload.enabled", raw.enabled, |v| {
            v.into_bool()
                .map_err(|_| "expected true or false".to_string())
        })
        .unwrap_or(d.enabled);
    let max_delay = p.duration("overload.max_delay", raw.max_delay, d.max_delay);
    if max_delay < Duration::from_millis(1) || max_delay > Duration::from_secs(30) {
        p.push("overload.max_delay", "must be between 1ms and 30s");
    }
    let count = |p: &mut Problems, key: &str, v: Option<Value>, default: usize| {
        p.uint(key, v, default as u64, 1, u64::from(u32::MAX)) as usize
    };
    let max_queue = count(p, "overload.max_queue", raw.max_queue, d.max_queue);
    let max_queue_bytes = count(
        p,
        "overload.max_queue_bytes",
        raw.max_queue_bytes,
        d.max_queue_bytes,
    );
    let max_transactions = count(
        p,
        "overload.max_transactions",
        raw.max_transactions,
        d.max_transactions,
    );
    let retry_after_min = p.duration(
        "overload.retry_after_min",
        raw.retry_after_min,
        d.retry_after_min,
    );
    let retry_after_max = p.duration(
        "overload.retry_after_max",
        raw.retry_after_max,
        d.retry_after_max,
    );
    if retry_after_min < Duration::from_secs(1) {
        p.push(
            "overload.retry_after_min",
            "must be at least 1s (Retry-After is in whole seconds)",
        );
    }
    if retry_after_max < retry_after_min {
        p.push(
            "overload.retry_after_max",
            "must not be less than overload.retry_after_min",
        );
    }
    OverloadSettings {
        enabled,
        max_delay,
        max_queue,
        max_queue_bytes,
        max_transactions,
        retry_after_min,
        retry_after_max,
    }
}

/// `[state]` (SPEC §10): backend, directory (relative to the file's directory, or the working
/// directory without a file), commit window, Redis URL.
fn state(p: &mut Problems, file: Option<&Path>, raw: RawState) -> StateSettings {
    let backend = match p.string("state.backend", raw.backend).as_deref() {
        None | Some("embedded") => StateBackend::Embedded,
        Some("none") => StateBackend::None,
        Some("redis") => StateBackend::Redis,
        Some(other) => {
            p.push(
                "state.backend",
                format!(
                    "unknown backend {}: expected embedded, redis or none",
                    quote(other)
                ),
            );
            StateBackend::Embedded
        }
    };
    let dir = p
        .string("state.dir", raw.dir)
        .unwrap_or_else(|| DEFAULT_STATE_DIR.into());
    if dir.trim().is_empty() {
        p.push("state.dir", "must not be empty");
    }
    let dir = match file.and_then(Path::parent) {
        Some(base) if Path::new(&dir).is_relative() => normalize(&base.join(&dir)),
        _ => PathBuf::from(&dir),
    };
    let commit = p.duration("state.commit", raw.commit, Duration::from_millis(50));
    if commit.is_zero() || commit > Duration::from_secs(10) {
        p.push("state.commit", "must be between 1ms and 10s");
    }
    let url = p
        .string("state.url", raw.url)
        .unwrap_or_else(|| DEFAULT_REDIS_URL.into());
    if backend == StateBackend::Redis
        && !(url.starts_with("redis://") || url.starts_with("rediss://"))
    {
        p.push(
            "state.url",
            format!(
                "expected redis://HOST:PORT/DB or rediss://..., got {}",
                quote(&url)
            ),
        );
    }
    let prefix = p.string("state.prefix", raw.prefix);
    if let Some(bad) = prefix
        .as_deref()
        .filter(|x| x.is_empty() || x.contains(['{', '}']))
    {
        p.push(
            "state.prefix",
            format!(
                "{}: must be non-empty and without braces (they mark Redis Cluster hash tags)",
                quote(bad)
            ),
        );
    }
    let standby = p
        .get("state.standby", raw.standby, |v| {
            v.into_bool()
                .map_err(|_| "expected true or false".to_string())
        })
        .unwrap_or(false);
    let lease = p.duration("state.lease", raw.lease, Duration::from_secs(5));
    if lease < Duration::from_millis(500) || lease > Duration::from_secs(600) {
        p.push("state.lease", "must be between 500ms and 10m");
    }
    StateSettings {
        backend,
        dir,
        commit,
        url,
        prefix,
        standby,
        lease,
    }
}

fn sip(p: &mut Problems, raw: RawSip) -> SipSettings {
    let names = p
        .list("sip.listen", raw.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.iter().map(|s| s.to_string()).collect());
    if names.is_empty() {
        p.push("sip.listen", "at least one listener is required");
    }
    let mut listen: Vec<Listener> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let key = format!("sip.listen[{i}]");
        match Listener::parse(name) {
            Ok(_) if listen.iter().any(|l| &l.name == name) => {
                p.push(&key, format!("duplicate listener {}", quote(name)))
            }
            Ok(l) => listen.push(l),
            Err(problem) => p.push(&key, format!("invalid listener {}: {problem}", quote(name))),
        }
    }
    let t1 = p.duration("sip.t1", raw.t1, Duration::from_millis(500));
    if t1.is_zero() {
        p.push("sip.t1", "must be greater than zero");
    }
    let t2 = p.duration("sip.t2", raw.t2, Duration::from_secs(4));
    if t2 < t1 {
        p.push("sip.t2", "must not be less than sip.t1");
    }
    let pai = p
        .string("sip.p_asserted_identity", raw.p_asserted_identity)
        .filter(|s| !s.is_empty());
    if let Some(Err(problem)) = pai.as_deref().map(check_sip_uri) {
        p.push("sip.p_asserted_identity", problem);
    }
    let coalesce = p.duration("sip.coalesce", raw.coalesce, DEFAULT_COALESCE);
    if coalesce > MAX_COALESCE {
        p.push(
            "sip.coalesce",
            format!(
                "must be at most {}",
                humantime::format_duration(MAX_COALESCE)
            ),
        );
    }
    SipSettings {
        listen,
        identity: p.uri("sip.identity", raw.identity, DEFAULT_IDENTITY),
        core: p.uri("sip.core", raw.core, DEFAULT_CORE),
        t1,
        t2,
        p_asserted_identity: pai,
        max_forwards: p.uint("sip.max_forwards", raw.max_forwards, 70, 1, 255) as u32,
        coalesce,
    }
}

/// `sip.coalesce`: the default, and the most a message may wait for its batch.
const DEFAULT_COALESCE: Duration = Duration::from_millis(2);
const MAX_COALESCE: Duration = Duration::from_millis(10);

/// Remove `.` and `name/..` lexically, so that messages show `/etc/gw/profiles/x.toml` rather
/// than `/etc/gw/deploy/../profiles/x.toml`.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Parse a CIDR (`10.0.0.0/8`, `::/0`) or a bare address (a /32 or /128).
fn parse_source(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| {
            format!(
                "invalid source {}: expected a CIDR such as `10.0.0.0/8` or an IP address",
                quote(s)
            )
        })
}

fn trunk_groups(
    p: &mut Problems,
    from_file: bool,
    raw: Option<Vec<RawTrunkGroup>>,
    listen: &[Listener],
) -> Vec<TrunkGroup> {
    let Some(raw) = raw else {
        if !from_file {
            return vec![TrunkGroup {
                name: "default".into(),
                profile: "default".into(),
                sources: ["0.0.0.0/0", "::/0"]
                    .iter()
                    .filter_map(|s| s.parse().ok())
                    .collect(),
                listener: None,
            }];
        }
        // A `trunk_group` of the wrong shape was already reported by the walk.
        if !p.positions.contains_key("trunk_group") {
            p.push("trunk_group", "at least one [[trunk_group]] is required");
        }
        return Vec::new();
    };
    if raw.is_empty() {
        p.push("trunk_group", "at least one [[trunk_group]] is required");
    }
    let mut out: Vec<TrunkGroup> = Vec::new();
    for (i, tg) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("trunk_group[{i}].{k}");
        let name = p.string(&key("name"), tg.name).unwrap_or_default();
        if name.trim().is_empty() {
            p.push(&key("name"), "required: a non-empty name");
        } else if let Some(j) = out.iter().position(|t| t.name == name) {
            p.push(
                &key("name"),
                format!(
                    "duplicate trunk group name {} (also trunk_group[{j}])",
                    quote(&name)
                ),
            );
        }
        let profile = p.string(&key("profile"), tg.profile).unwrap_or_default();
        if profile.trim().is_empty() {
            p.push(
                &key("profile"),
                "required: the name of a profile (a file in the profiles directory)",
            );
        }
        let mut sources = Vec::new();
        for (j, s) in p
            .list(&key("sources"), tg.sources)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            match parse_source(s) {
                Ok(net) => sources.push(net),
                Err(problem) => p.push(&format!("trunk_group[{i}].sources[{j}]"), problem),
            }
        }
        let listener = p.string(&key("listener"), tg.listener);
        if let Some(l) = &listener {
            if !listen.iter().any(|x| &x.name == l) {
                let names: Vec<&str> = listen.iter().map(|x| x.name.as_str()).collect();
                p.push(
                    &key("listener"),
                    format!(
                        "{} is not one of sip.listen: {}",
                        quote(l),
                        names.join(", ")
                    ),
                );
            }
        }
        out.push(TrunkGroup {
            name,
            profile,
            sources,
            listener,
        });
    }
    out
}

fn profiles(p: &mut Problems, from_file: bool, dir: &Path, tgs: &[TrunkGroup]) -> Profiles {
    let (mut profiles, failed) = if dir.is_dir() {
        let (profiles, errors, failed) = load_dir_partial(dir);
        p.errors.extend(errors);
        (profiles, failed)
    } else {
        if from_file {
            p.push(
                "profiles.dir",
                format!("directory `{}` does not exist", dir.display()),
            );
            return Profiles::default();
        }
        (Profiles::default(), Default::default())
    };
    if !from_file && !profiles.by_name.contains_key("default") && !failed.contains("default") {
        profiles
            .by_name
            .insert("default".into(), Profile::default());
    }
    for (i, tg) in tgs.iter().enumerate() {
        if tg.profile.is_empty()
            || profiles.get(&tg.profile).is_some()
            || failed.contains(&tg.profile)
        {
            continue;
        }
        let path = dir.join(format!("{}.toml", tg.profile));
        p.push(
            &format!("trunk_group[{i}].profile"),
            format!(
                "profile {} not found (no file `{}`)",
                quote(&tg.profile),
                path.display()
            ),
        );
    }
    profiles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_paths() {
        assert_eq!(
            normalize(Path::new("/a/deploy/../profiles")),
            PathBuf::from("/a/profiles")
        );
        assert_eq!(
            normalize(Path::new("./profiles")),
            PathBuf::from("profiles")
        );
        assert_eq!(
            normalize(Path::new("../profiles")),
            PathBuf::from("../profiles")
        );
        assert_eq!(normalize(Path::new("a/./b")), PathBuf::from("a/b"));
    }

    #[test]
    fn config_crate_rejects_unknown_keys_too() {
        let mut sip = toml::Table::new();
        sip.insert("bogus".into(), toml::Value::Integer(1));
        let mut table = toml::Table::new();
        table.insert("sip".into(), toml::Value::Table(sip));
        assert!(merge(&table, config::Map::new()).is_err());
        assert!(merge(&toml::Table::new(), config::Map::new()).is_ok());
    }

    #[test]
    fn sources() {
        assert_eq!(parse_source("10.1.2.3").map(|n| n.prefix_len()), Ok(32));
        assert_eq!(parse_source("2001:db8::1").map(|n| n.prefix_len()), Ok(128));
        assert_eq!(
            parse_source("10.1.2.3/8").map(|n| n.to_string()),
            Ok("10.0.0.0/8".into())
        );
        assert!(parse_source("10.0.0.0/33").is_err());
        assert!(parse_source("any").is_err());
    }

    #[test]
    fn unknown_env_is_reported() {
        let mut errors = Vec::new();
        let env = [
            ("REGEVENT_GW__SIP__T1".to_string(), "1s".to_string()),
            ("REGEVENT_GW__SIP__NOPE".to_string(), "x".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let (vars, keys) = environment(&env, &mut errors);
        assert_eq!(vars.len(), 1);
        assert_eq!(
            keys.get("sip.t1").map(String::as_str),
            Some("REGEVENT_GW__SIP__T1")
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].key, "sip.nope");
        assert_eq!(
            errors[0].file,
            "environment variable REGEVENT_GW__SIP__NOPE"
        );
    }
}
