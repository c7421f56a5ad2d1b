//! Configuration loading: built-in defaults, the shipped examples, environment overrides, and
//! that every kind of mistake is reported with file, key (and position), all at once.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use regevent_gw::config::{Config, ConfigError, ConfigErrors, Network, Profile, Role, Transport};

const GOOD_PROFILE: &str = "support_reg_event = true\n";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A temp dir with `gateway.toml` = `main` and `profiles/NAME.toml` for each of `profiles`.
fn setup(main: &str, profiles: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("profiles")).expect("mkdir");
    for (name, text) in profiles {
        std::fs::write(
            dir.path().join("profiles").join(format!("{name}.toml")),
            text,
        )
        .expect("write");
    }
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, main).expect("write");
    (dir, file)
}

fn load_err(main: &str, profiles: &[(&str, &str)]) -> (ConfigErrors, PathBuf) {
    let (dir, file) = setup(main, profiles);
    let errs = Config::load_with_env(Some(&file), &[]).expect_err("must be rejected");
    let _ = dir;
    (errs, file)
}

fn find<'a>(errs: &'a ConfigErrors, key: &str) -> &'a ConfigError {
    errs.0
        .iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("no error for `{key}` in:\n{errs}"))
}

const MINIMAL: &str = "[[trunk_group]]\nname = \"a\"\nprofile = \"p\"\n";

#[test]
fn built_in_defaults_match_spec() {
    let c = Config::load_with_env(None, &[]).expect("built-in defaults load");
    assert_eq!(c.file, None);
    let listen: Vec<_> = c
        .sip
        .listen
        .iter()
        .map(|l| (l.name.as_str(), l.transport, l.addr))
        .collect();
    let lo: SocketAddr = "127.0.0.1:5060".parse().expect("addr");
    assert_eq!(
        listen,
        [
            ("udp:127.0.0.1:5060", Transport::Udp, lo),
            ("tcp:127.0.0.1:5060", Transport::Tcp, lo)
        ]
    );
    assert_eq!(c.sip.identity, "sip:127.0.0.1:5060");
    assert_eq!(c.sip.core, "sip:127.0.0.1:5070");
    assert_eq!(c.sip.t1, Duration::from_millis(500));
    assert_eq!(c.sip.t2, Duration::from_secs(4));
    assert_eq!(c.sip.p_asserted_identity, None);
    assert_eq!(c.sip.max_forwards, 70);
    assert_eq!(c.sip.coalesce, Duration::from_millis(2));
    assert_eq!(
        c.admin.listen,
        "127.0.0.1:9464".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(c.admin.subscription_series_cap, 10_000);
    assert_eq!(c.subscription.expiry_margin, Duration::from_secs(60));
    assert_eq!(c.subscription.max_subscribe_rate, 20_000);
    assert_eq!(c.limits.max_message, 65_535);
    assert_eq!(c.limits.reginfo_max_bytes, 1_048_576);
    assert_eq!(c.limits.reginfo_max_depth, 16);
    assert_eq!(c.limits.expected_registrations, 0);
    assert_eq!(c.profiles_dir, PathBuf::from("profiles"));
    assert_eq!(c.trunk_groups.len(), 1);
    assert_eq!(c.trunk_groups[0].name, "default");
    assert_eq!(c.trunk_groups[0].profile, "default");
    assert_eq!(
        c.profile_for("default").map(|p| p.support_reg_event),
        Some(false)
    );
    for ip in ["192.0.2.1", "2001:db8::1", "::ffff:10.0.0.1"] {
        let ip: IpAddr = ip.parse().expect("ip");
        let tg = c
            .trunk_group_for("udp:127.0.0.1:5060", ip)
            .map(|t| t.name.as_str());
        assert_eq!(tg, Some("default"), "{ip}");
    }
}

#[test]
fn built_in_defaults_without_profiles_dir_use_default_profile() {
    let e = env(&[(
        "REGEVENT_GW__PROFILES__DIR",
        "/nonexistent/regevent-gw-profiles",
    )]);
    let c = Config::load_with_env(None, &e).expect("loads without a profiles dir");
    assert_eq!(c.profile_for("default"), Some(&Profile::default()));
}

#[test]
fn shipped_gateway_toml_loads() {
    let c = Config::load_with_env(Some(&repo("deploy/gateway.toml")), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<_> = c.trunk_groups.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["access", "roaming"]);
    let home = c.profile_for("access").expect("access profile");
    assert!(home.support_reg_event);
    assert_eq!(home.network, Network::Home);
    let visited = c.profile_for("roaming").expect("roaming profile");
    assert_eq!(visited.network, Network::Visited);
    assert_eq!(visited.subscribe_route, ["sip:scscf.home.example.net;lr"]);
    assert_eq!(c.profiles.get("ibcf").map(|p| p.role), Some(Role::Ibcf));
    assert_eq!(
        c.profiles.get("default").map(|p| p.support_reg_event),
        Some(false)
    );
    assert_eq!(
        c.sip.p_asserted_identity.as_deref(),
        Some("sip:pcscf.example.net")
    );
    assert!(c.sip.listen.iter().any(|l| l.addr.is_ipv6()));
}

#[test]
fn env_overrides_t1_admin_listen_and_sip_listen() {
    let e = env(&[
        ("REGEVENT_GW__SIP__T1", "200ms"),
        ("REGEVENT_GW__ADMIN__LISTEN", "127.0.0.1:9191"),
        (
            "REGEVENT_GW__SIP__LISTEN",
            "udp:127.0.0.1:5062, tcp:[::1]:5062",
        ),
        ("REGEVENT_GW__SIP__MAX_FORWARDS", "20"),
        ("REGEVENT_GW__SIP__COALESCE", "0s"),
        ("UNRELATED", "ignored"),
    ]);
    let c = Config::load_with_env(None, &e).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.sip.t1, Duration::from_millis(200));
    assert_eq!(
        c.admin.listen,
        "127.0.0.1:9191".parse::<SocketAddr>().expect("addr")
    );
    let names: Vec<_> = c.sip.listen.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["udp:127.0.0.1:5062", "tcp:[::1]:5062"]);
    assert_eq!(c.sip.max_forwards, 20);
    assert_eq!(c.sip.coalesce, Duration::ZERO);
}

#[test]
fn env_overrides_the_file() {
    let (_dir, file) = setup(
        &format!("[sip]\nt1 = \"1s\"\nt2 = \"8s\"\n{MINIMAL}"),
        &[("p", GOOD_PROFILE)],
    );
    let e = env(&[("REGEVENT_GW__SIP__T1", "2s")]);
    let c = Config::load_with_env(Some(&file), &e).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.sip.t1, Duration::from_secs(2));
    assert_eq!(c.sip.t2, Duration::from_secs(8));
}

#[test]
fn bad_env_value_names_the_variable() {
    let e = env(&[
        ("REGEVENT_GW__SIP__T1", "soon"),
        ("REGEVENT_GW__SIP__T9", "1s"),
    ]);
    let errs = Config::load_with_env(None, &e).expect_err("rejected");
    assert_eq!(
        find(&errs, "sip.t1").file,
        "environment variable REGEVENT_GW__SIP__T1"
    );
    assert_eq!(
        find(&errs, "sip.t9").file,
        "environment variable REGEVENT_GW__SIP__T9"
    );
}

#[test]
fn durations_parse() {
    let main = format!(
        "[sip]\nt1 = \"250ms\"\nt2 = \"10s\"\n[subscription]\nexpiry_margin = \"10m\"\n{MINIMAL}"
    );
    let (_dir, file) = setup(&main, &[("p", GOOD_PROFILE)]);
    let c = Config::load_with_env(Some(&file), &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.sip.t1, Duration::from_millis(250));
    assert_eq!(c.sip.t2, Duration::from_secs(10));
    assert_eq!(c.subscription.expiry_margin, Duration::from_secs(600));
    assert_eq!(
        c.profiles_dir,
        file.parent().expect("parent").join("profiles")
    );
}

#[test]
fn bad_duration_names_file_key_and_position() {
    let (errs, file) = load_err(
        &format!("[sip]\nt1 = \"fast\"\n{MINIMAL}"),
        &[("p", GOOD_PROFILE)],
    );
    let e = find(&errs, "sip.t1");
    assert_eq!(e.file, file.display().to_string());
    assert_eq!(e.position.as_deref(), Some("2:6"));
    assert!(e.problem.contains("duration"), "{e}");
    let shown = errs.to_string();
    assert!(shown.contains("gateway.toml:2:6: key `sip.t1`"), "{shown}");
}

#[test]
fn bad_uri_names_key() {
    let (errs, file) = load_err(
        &format!("[sip]\ncore = \"icscf.example.net\"\n{MINIMAL}"),
        &[("p", GOOD_PROFILE)],
    );
    let e = find(&errs, "sip.core");
    assert_eq!(e.file, file.display().to_string());
    assert_eq!(e.position.as_deref(), Some("2:8"));
}

#[test]
fn unknown_key_names_key() {
    let (errs, file) = load_err(
        &format!("[sip]\ntimer_t1 = \"1s\"\n{MINIMAL}"),
        &[("p", GOOD_PROFILE)],
    );
    let e = find(&errs, "sip.timer_t1");
    assert_eq!(e.file, file.display().to_string());
    assert_eq!(e.position.as_deref(), Some("2:1"));
    assert_eq!(errs.0.len(), 1, "{errs}");
}

#[test]
fn expected_registrations_is_read_and_bounded() {
    let main = format!("[limits]\nexpected_registrations = 250000\n{MINIMAL}");
    let (dir, file) = setup(&main, &[("p", "")]);
    let c = Config::load_with_env(Some(&file), &[]).expect("loads");
    assert_eq!(c.limits.expected_registrations, 250_000);
    drop(dir);
    let main = format!("[limits]\nexpected_registrations = 20000000\n{MINIMAL}");
    let (errs, _) = load_err(&main, &[("p", "")]);
    let e = find(&errs, "limits.expected_registrations");
    assert!(e.to_string().contains("10000000"), "{e}");
}

#[test]
fn quoted_bool_is_an_error() {
    let (errs, file) = load_err(MINIMAL, &[("p", "support_reg_event = \"yes\"\n")]);
    let e = find(&errs, "support_reg_event");
    let profile = file
        .parent()
        .expect("parent")
        .join("profiles")
        .join("p.toml");
    assert_eq!(e.file, profile.display().to_string());
    assert_eq!(e.position.as_deref(), Some("1:21"));
    // The profile exists (it is wrong), so it is not also reported missing.
    assert_eq!(errs.0.len(), 1, "{errs}");
}

#[test]
fn wrong_types_in_main_file_are_errors() {
    let (errs, _) = load_err(
        &format!("[sip]\nt1 = 500\nmax_forwards = \"70\"\n{MINIMAL}"),
        &[("p", GOOD_PROFILE)],
    );
    assert_eq!(find(&errs, "sip.t1").position.as_deref(), Some("2:6"));
    find(&errs, "sip.max_forwards");
    assert_eq!(errs.0.len(), 2, "{errs}");
}

#[test]
fn coalesce_longer_than_ten_milliseconds_is_refused() {
    let (errs, _) = load_err(
        &format!("[sip]\ncoalesce = \"50ms\"\n{MINIMAL}"),
        &[("p", GOOD_PROFILE)],
    );
    let e = find(&errs, "sip.coalesce");
    assert!(e.problem.contains("at most 10ms"), "{e}");
    assert_eq!(errs.0.len(), 1, "{errs}");
}

#[test]
fn missing_profile_names_trunk_group() {
    let main = format!("{MINIMAL}[[trunk_group]]\nname = \"b\"\nprofile = \"nope\"\n");
    let (errs, file) = load_err(&main, &[("p", GOOD_PROFILE)]);
    let e = find(&errs, "trunk_group[1].profile");
    assert_eq!(e.file, file.display().to_string());
    assert_eq!(e.position.as_deref(), Some("6:11"));
    assert!(e.problem.contains("nope"), "{e}");
}

#[test]
fn missing_profiles_dir_with_a_file_is_an_error() {
    let (errs, _) = load_err(&format!("[profiles]\ndir = \"elsewhere\"\n{MINIMAL}"), &[]);
    find(&errs, "profiles.dir");
}

#[test]
fn visited_profile_without_route() {
    let (errs, file) = load_err(
        MINIMAL,
        &[("p", "support_reg_event = true\nnetwork = \"visited\"\n")],
    );
    let e = find(&errs, "subscribe_route");
    assert!(e.file.ends_with("p.toml"), "{e}");
    assert!(e
        .file
        .starts_with(&file.parent().expect("parent").display().to_string()));
    assert_eq!(errs.0.len(), 1, "{errs}");
}

#[test]
fn bad_route_uri_in_profile() {
    let profile = "network = \"visited\"\nsubscribe_route = [\"sip:ok\", \"scscf\"]\n";
    let (errs, _) = load_err(MINIMAL, &[("p", profile)]);
    assert_eq!(
        find(&errs, "subscribe_route[1]").position.as_deref(),
        Some("2:30")
    );
}

#[test]
fn duplicate_trunk_group_name() {
    let (errs, file) = load_err(&format!("{MINIMAL}{MINIMAL}"), &[("p", GOOD_PROFILE)]);
    let e = find(&errs, "trunk_group[1].name");
    assert_eq!(e.file, file.display().to_string());
    assert!(e.problem.contains("duplicate"), "{e}");
    assert_eq!(errs.0.len(), 1, "{errs}");
}

#[test]
fn no_trunk_group_in_a_file_is_an_error() {
    let (errs, _) = load_err("[sip]\nt1 = \"1s\"\n", &[("p", GOOD_PROFILE)]);
    find(&errs, "trunk_group");
}

#[test]
fn bad_listener_and_trunk_group_fields() {
    let main = "[sip]\nlisten = [\"udp:0.0.0.0:5060\", \"sctp:0.0.0.0:5060\", \"tcp:[::]\"]\n\
                [[trunk_group]]\nname = \"a\"\nprofile = \"p\"\nsources = [\"10.0.0.0/8\", \"10.0.0.0/40\"]\n\
                listener = \"tcp:0.0.0.0:5060\"\n";
    let (errs, _) = load_err(main, &[("p", GOOD_PROFILE)]);
    let keys: Vec<_> = errs.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "sip.listen[1]",
            "sip.listen[2]",
            "trunk_group[0].sources[1]",
            "trunk_group[0].listener"
        ],
        "{errs}"
    );
}

#[test]
fn several_problems_are_reported_at_once() {
    let main = "[sip]\nt1 = \"2s\"\nt2 = \"1s\"\ncore = \"tel:+123\"\nbogus = true\n\
                [admin]\nlisten = \"localhost\"\n\
                [[trunk_group]]\nname = \"a\"\nprofile = \"missing\"\n\
                [[trunk_group]]\nname = \"a\"\nprofile = \"v\"\n";
    let (errs, _) = load_err(main, &[("v", "network = \"visited\"\nextra = 1\n")]);
    let mut keys: Vec<_> = errs.0.iter().map(|e| e.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "admin.listen",
            "extra",
            "sip.bogus",
            "sip.core",
            "sip.t2",
            "trunk_group[0].profile",
            "trunk_group[1].name",
        ],
        "{errs}"
    );
    assert_eq!(errs.to_string().lines().count(), 7);
}

#[test]
fn syntax_error_has_position() {
    let (errs, file) = load_err("[sip\nt1 = \"1s\"\n", &[]);
    assert_eq!(errs.0.len(), 1);
    assert_eq!(errs.0[0].file, file.display().to_string());
    assert_eq!(
        errs.0[0].position.as_deref().map(|p| p.starts_with("1:")),
        Some(true),
        "{errs}"
    );
}

/// Copy the shipped examples into a temp dir laid out as installed (docs/configuration.md,
/// `deploy/regevent-gw.service`): `deploy/*.toml` → `DIR/`, `profiles/*.toml` → `DIR/profiles/`
/// (as in `/etc/regevent-gw`).
fn copy_examples() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    std::fs::create_dir(dir.path().join("profiles")).expect("mkdir");
    for (from, to_dir) in [
        ("deploy", dir.path().to_path_buf()),
        ("profiles", dir.path().join("profiles")),
    ] {
        for entry in std::fs::read_dir(repo(from)).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|x| x == "toml") && path.is_file() {
                let to = to_dir.join(path.file_name().expect("name"));
                std::fs::copy(&path, &to).expect("copy");
                files.push(to);
            }
        }
    }
    files.sort();
    (dir, files)
}

#[test]
fn unknown_key_in_every_shipped_example_is_rejected() {
    let (dir, files) = copy_examples();
    let main = dir.path().join("gateway.toml");
    Config::load_with_env(Some(&main), &[])
        .unwrap_or_else(|e| panic!("copied examples must load: {e}"));
    assert!(files.len() >= 5, "{files:?}");
    for file in &files {
        let original = std::fs::read_to_string(file).expect("read");
        // Top level: before any table header.
        std::fs::write(file, format!("injected_unknown_key = 1\n{original}")).expect("write");
        let errs =
            Config::load_with_env(Some(&main), &[]).expect_err("injected key must be rejected");
        let e = find(&errs, "injected_unknown_key");
        assert_eq!(e.file, file.display().to_string());
        assert_eq!(e.position.as_deref(), Some("1:1"));
        // Inside a section of the main file too.
        if file == &main {
            let text = original.replace("[sip]\n", "[sip]\nsip_injected = 1\n");
            std::fs::write(file, text).expect("write");
            let errs = Config::load_with_env(Some(&main), &[]).expect_err("rejected");
            find(&errs, "sip.sip_injected");
        }
        std::fs::write(file, original).expect("restore");
    }
}

#[test]
fn trunk_group_for_matches_listener_and_sources_first_wins() {
    let main = "[sip]\nlisten = [\"udp:0.0.0.0:5060\", \"udp:[::]:5060\", \"tcp:0.0.0.0:5061\"]\n\
        [[trunk_group]]\nname = \"peer\"\nprofile = \"p\"\nsources = [\"192.0.2.7\"]\n\
        [[trunk_group]]\nname = \"tcp-only\"\nprofile = \"p\"\nlistener = \"tcp:0.0.0.0:5061\"\n\
        [[trunk_group]]\nname = \"v4\"\nprofile = \"p\"\nsources = [\"0.0.0.0/0\"]\n\
        [[trunk_group]]\nname = \"v6\"\nprofile = \"p\"\nsources = [\"2001:db8::/32\"]\n";
    let (_dir, file) = setup(main, &[("p", GOOD_PROFILE)]);
    let c = Config::load_with_env(Some(&file), &[]).unwrap_or_else(|e| panic!("{e}"));
    let tg = |listener: &str, ip: &str| {
        let ip: IpAddr = ip.parse().expect("ip");
        c.trunk_group_for(listener, ip).map(|t| t.name.clone())
    };
    let udp = "udp:0.0.0.0:5060";
    assert_eq!(tg(udp, "192.0.2.7").as_deref(), Some("peer"));
    assert_eq!(
        tg("tcp:0.0.0.0:5061", "192.0.2.7").as_deref(),
        Some("peer"),
        "first match wins"
    );
    assert_eq!(
        tg("tcp:0.0.0.0:5061", "198.51.100.1").as_deref(),
        Some("tcp-only")
    );
    assert_eq!(tg(udp, "198.51.100.1").as_deref(), Some("v4"));
    assert_eq!(
        tg(udp, "::ffff:192.0.2.7").as_deref(),
        Some("peer"),
        "v4-mapped counts as v4"
    );
    assert_eq!(tg(udp, "::ffff:198.51.100.1").as_deref(), Some("v4"));
    assert_eq!(
        tg("udp:[::]:5060", "2001:db8::5").as_deref(),
        Some("v6"),
        "0.0.0.0/0 is IPv4 only"
    );
    assert_eq!(tg("udp:[::]:5060", "2001:db9::5"), None);
    assert_eq!(c.profile_for("v6").map(|p| p.support_reg_event), Some(true));
    assert_eq!(c.profile_for("nope"), None);
}

#[test]
fn profiles_load_dir_reports_every_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.toml"), "role = \"sbc\"\n").expect("write");
    std::fs::write(
        dir.path().join("b.toml"),
        "network = \"visited\"\nsubscribe_route = [\"sip:x;lr\"]\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("c.toml"),
        "support_reg_event = \"yes\"\nx = 1\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("notes.txt"), "not a profile").expect("write");
    let errs = regevent_gw::config::profile::load_dir(dir.path()).expect_err("rejected");
    let got: Vec<_> = errs
        .0
        .iter()
        .map(|e| {
            (
                Path::new(&e.file)
                    .file_name()
                    .and_then(|s| s.to_str())
                    .unwrap_or("")
                    .to_string(),
                e.key.clone(),
            )
        })
        .collect();
    let want = [
        ("a.toml", "role"),
        ("c.toml", "support_reg_event"),
        ("c.toml", "x"),
    ];
    assert_eq!(
        got,
        want.map(|(f, k)| (f.to_string(), k.to_string())),
        "{errs}"
    );
    std::fs::remove_file(dir.path().join("a.toml")).expect("rm");
    std::fs::remove_file(dir.path().join("c.toml")).expect("rm");
    let ok = regevent_gw::config::profile::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.by_name.keys().collect::<Vec<_>>(), ["b"]);
}

#[test]
fn cli_rendering_counts_problems() {
    let (errs, _) = load_err(&format!("{MINIMAL}{MINIMAL}"), &[("p", GOOD_PROFILE)]);
    let text = regevent_gw::config::render_errors_for_cli(&errs);
    assert!(text.ends_with("1 configuration problem found"), "{text}");
}

/// SPEC §9 and the issue "no silent TLS downgrade": until the gateway has TLS, a `sips:` URI or
/// `;transport=tls` where it would send (sip.core, a profile's subscribe_route) or advertise
/// itself (sip.identity) is refused, naming the file (or variable), the key and the reason.
#[test]
fn tls_uris_are_refused_naming_file_and_key() {
    let main = format!(
        "[sip]\nidentity = \"sip:pcscf.example.net;transport=TLS\"\n\
         core = \"sips:icscf.example.net\"\n{MINIMAL}"
    );
    let profile = "support_reg_event = true\nnetwork = \"visited\"\n\
                   subscribe_route = [\"sip:ok.example.net;lr\", \"sip:home.example.net;lr;transport=tls\"]\n";
    let (errs, file) = load_err(&main, &[("p", profile)]);
    let tls = "TLS is not supported yet: ";
    let identity = find(&errs, "sip.identity");
    assert_eq!(identity.file, file.display().to_string());
    assert_eq!(identity.position.as_deref(), Some("2:12"));
    assert!(identity.problem.starts_with(tls), "{identity}");
    let core = find(&errs, "sip.core");
    assert_eq!(core.position.as_deref(), Some("3:8"));
    assert!(core.problem.starts_with(tls), "{core}");
    assert!(core.problem.contains("`sips:icscf.example.net`"), "{core}");
    let route = find(&errs, "subscribe_route[1]");
    assert!(route.file.ends_with("p.toml"), "{route}");
    assert_eq!(route.position.as_deref(), Some("3:45"));
    assert!(route.problem.starts_with(tls), "{route}");
    assert_eq!(errs.0.len(), 3, "{errs}");
    // The rendered line says it all: file, position, key, reason.
    let shown = errs.to_string();
    assert!(
        shown.contains("gateway.toml:3:8: key `sip.core`: TLS is not supported yet: "),
        "{shown}"
    );
}

#[test]
fn tls_from_the_environment_names_the_variable() {
    let e = env(&[(
        "REGEVENT_GW__SIP__CORE",
        "sip:icscf.example.net:5061;transport=tls",
    )]);
    let errs = Config::load_with_env(None, &e).expect_err("refused");
    let core = find(&errs, "sip.core");
    assert_eq!(core.file, "environment variable REGEVENT_GW__SIP__CORE");
    assert!(
        core.problem.starts_with("TLS is not supported yet: "),
        "{core}"
    );
    // UDP and TCP stay fine, in any case.
    let e = env(&[(
        "REGEVENT_GW__SIP__CORE",
        "sip:icscf.example.net;transport=TCP",
    )]);
    Config::load_with_env(None, &e).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn an_unsupported_transport_is_refused_too() {
    let main = format!("[sip]\ncore = \"sip:icscf.example.net;transport=sctp\"\n{MINIMAL}");
    let (errs, _) = load_err(&main, &[("p", GOOD_PROFILE)]);
    let core = find(&errs, "sip.core");
    assert!(core.problem.contains("UDP and TCP only"), "{core}");
}

/// Two trunk groups on profile `p` (and a profile `q`) with the given `[sip]` table prefix.
fn reload_fixture(sip: &str, groups: &[(&str, &str)]) -> String {
    let mut s = format!("[sip]\n{sip}\n");
    for (name, profile) in groups {
        s.push_str(&format!(
            "[[trunk_group]]\nname = \"{name}\"\nprofile = \"{profile}\"\n"
        ));
    }
    s
}

#[test]
fn reload_applies_trunk_groups_and_profiles_and_keeps_restart_only_keys() {
    let (dir, file) = setup(
        &reload_fixture("t1 = \"500ms\"", &[("a", "p")]),
        &[("p", "support_reg_event = false\n"), ("q", GOOD_PROFILE)],
    );
    let running = Config::load_with_env(Some(&file), &[]).unwrap_or_else(|e| panic!("{e}"));
    // The operator changes a profile, the trunk groups, and two restart-only keys.
    std::fs::write(
        &file,
        reload_fixture(
            "t1 = \"200ms\"\nmax_forwards = 20",
            &[("b", "q"), ("a", "p")],
        ),
    )
    .expect("write");
    std::fs::write(dir.path().join("profiles/p.toml"), GOOD_PROFILE).expect("write");
    let new = Config::load_with_env(Some(&file), &[]).unwrap_or_else(|e| panic!("{e}"));
    let r = running.reload(new).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<_> = r
        .applied
        .trunk_groups
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["b", "a"]);
    assert_eq!(
        r.applied.profile_for("a").map(|p| p.support_reg_event),
        Some(true)
    );
    assert_eq!(
        r.applied.sip.t1,
        Duration::from_millis(500),
        "t1 needs a restart"
    );
    assert_eq!(r.applied.sip.max_forwards, 70);
    assert_eq!(r.restart_only_changed, ["sip.t1", "sip.max_forwards"]);
    // Nothing but trunk groups and profiles differs from the running configuration.
    let mut expected = running.clone();
    expected.trunk_groups = r.applied.trunk_groups.clone();
    expected.profiles = r.applied.profiles.clone();
    assert_eq!(r.applied, expected);
    // Every key of the schema is classified once.
    for key in regevent_gw::config::RESTART_ONLY {
        assert!(
            !regevent_gw::config::RELOADABLE.contains(key),
            "{key} both reloadable and restart-only"
        );
    }
}

#[test]
fn reload_refuses_a_trunk_group_on_a_listener_that_is_not_running() {
    let (_dir, file) = setup(
        &reload_fixture("listen = [\"udp:127.0.0.1:5060\"]", &[("a", "p")]),
        &[("p", GOOD_PROFILE)],
    );
    let running = Config::load_with_env(Some(&file), &[]).unwrap_or_else(|e| panic!("{e}"));
    let text = "[sip]\nlisten = [\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5070\"]\n\
                [[trunk_group]]\nname = \"a\"\nprofile = \"p\"\nlistener = \"tcp:127.0.0.1:5070\"\n";
    std::fs::write(&file, text).expect("write");
    let new = Config::load_with_env(Some(&file), &[]).unwrap_or_else(|e| panic!("{e}"));
    let errs = running.reload(new).expect_err("refused");
    let e = find(&errs, "trunk_group[0].listener");
    assert_eq!(e.file, file.display().to_string());
    assert!(e.problem.contains("restart"), "{e}");
}

#[test]
fn warnings_name_trunk_groups_that_never_match() {
    let main = "[sip]\nlisten = [\"udp:0.0.0.0:5060\", \"tcp:0.0.0.0:5060\"]\n\
        [[trunk_group]]\nname = \"all\"\nprofile = \"p\"\nsources = [\"0.0.0.0/0\"]\n\
        [[trunk_group]]\nname = \"shadowed\"\nprofile = \"p\"\nsources = [\"10.0.0.0/8\"]\n\
        [[trunk_group]]\nname = \"v6-only\"\nprofile = \"p\"\nsources = [\"2001:db8::/32\"]\n\
        [[trunk_group]]\nname = \"tcp-v6\"\nprofile = \"p\"\nlistener = \"tcp:0.0.0.0:5060\"\n";
    let (_dir, file) = setup(main, &[("p", GOOD_PROFILE)]);
    let c = Config::load_with_env(Some(&file), &[]).unwrap_or_else(|e| panic!("{e}"));
    let w = c.warnings();
    let keys: Vec<_> = w.iter().map(|e| e.key.as_str()).collect();
    // `tcp-v6` takes every source on its listener: IPv6 ones too, which `all` does not.
    assert_eq!(keys, ["trunk_group[1]", "trunk_group[2]"], "{w:?}");
    assert!(
        w[0].problem.contains("`shadowed` never matches"),
        "{}",
        w[0]
    );
    assert!(w[0].problem.contains("trunk_group[0] (`all`)"), "{}", w[0]);
    assert!(w[1].problem.contains("IPv6"), "{}", w[1]);
    assert_eq!(w[0].file, file.display().to_string());
    // The shipped example has none.
    let shipped = Config::load_with_env(Some(&repo("deploy/gateway.toml")), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shipped.warnings(), []);
}

#[test]
fn overload_and_tcp_limit_are_read_with_sane_defaults() {
    let c = Config::load_with_env(None, &[]).expect("defaults");
    assert!(c.overload.enabled, "overload control is on by default");
    assert_eq!(c.overload.max_delay, Duration::from_millis(200));
    assert_eq!(c.limits.max_message_tcp, 1 << 20);
    assert_eq!(c.core_settings().overload, c.overload);
    let main = format!(
        "[limits]\nmax_message_tcp = 4194304\n[overload]\nenabled = false\nmax_delay = \"50ms\"\n\
         max_queue = 5000\nmax_queue_bytes = 1000000\nmax_transactions = 777\n\
         retry_after_min = \"2s\"\nretry_after_max = \"9s\"\n{MINIMAL}"
    );
    let (dir, file) = setup(&main, &[("p", GOOD_PROFILE)]);
    let c = Config::load_with_env(
        Some(&file),
        &env(&[("REGEVENT_GW__OVERLOAD__MAX_QUEUE", "6000")]),
    )
    .expect("loads");
    let _ = dir;
    assert!(!c.overload.enabled);
    assert_eq!(c.overload.max_delay, Duration::from_millis(50));
    assert_eq!(c.overload.max_queue, 6000, "the environment wins");
    assert_eq!(c.overload.max_queue_bytes, 1_000_000);
    assert_eq!(c.overload.max_transactions, 777);
    assert_eq!(c.overload.retry_after_min, Duration::from_secs(2));
    assert_eq!(c.overload.retry_after_max, Duration::from_secs(9));
    assert_eq!(c.core_settings().max_message_tcp, 4 << 20);
}

#[test]
fn bad_overload_values_name_their_keys() {
    let main = format!(
        "[overload]\nmax_delay = \"0s\"\nmax_queue = 0\nretry_after_min = \"20s\"\n\
         retry_after_max = \"10s\"\nenabled = \"yes\"\n{MINIMAL}"
    );
    let (errs, _) = load_err(&main, &[("p", GOOD_PROFILE)]);
    assert!(find(&errs, "overload.max_delay")
        .problem
        .contains("between"));
    find(&errs, "overload.max_queue");
    assert!(find(&errs, "overload.retry_after_max")
        .problem
        .contains("retry_after_min"));
    find(&errs, "overload.enabled");
}
