//! SIGHUP on a real gateway process (docs/configuration.md, "Reloading"): a configuration with
//! problems is refused as a whole (one log line per problem, the running configuration stays,
//! `regevent_config_reloads_total{result="error"}` moves); a good one applies its trunk groups
//! and profiles (`result="ok"`), names each restart-only key it changed in a warning, and the
//! gauges of a trunk group it removed disappear from `/metrics`.

mod ops_common;

use std::time::Duration;

use ops_common::{free_tcp_port, has_series, main_file, sample, start, write_config};

const RELOADS: &str = "regevent_config_reloads_total";
const REGISTRATIONS: &str = "regevent_registrations";

fn trunk_group(name: &str, profile: &str) -> String {
    format!("[[trunk_group]]\nname = \"{name}\"\nprofile = \"{profile}\"\n")
}

fn reloads(text: &str, result: &str) -> Option<f64> {
    sample(text, RELOADS, &[("result", result)])
}

#[test]
fn sighup_refuses_a_broken_configuration_and_applies_a_good_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let state = "[state]\nbackend = \"none\"\n";
    // T1 50 ms: the REGISTER below is forgotten after 64×T1 = 3.2 s, the core's first timer.
    let config = write_config(
        dir.path(),
        &main_file(
            &admin,
            "t1 = \"50ms\"",
            &format!("{state}{}", trunk_group("alpha", "p")),
        ),
        &[("p", "support_reg_event = true\n")],
    );
    let mut gw = start(dir.path(), &config, &admin, &[], &[]);
    gw.register_once();
    // Both reload counters exist from the start; the trunk group's gauges are published.
    gw.wait_metrics("alpha's gauges and both reload counters at 0", |m| {
        sample(m, REGISTRATIONS, &[("trunk_group", "alpha")]) == Some(0.0)
            && reloads(m, "ok") == Some(0.0)
            && reloads(m, "error") == Some(0.0)
    });

    // Broken: a bad duration in the main file and a bad value in a new profile (two problems),
    // next to a renamed trunk group that must not be applied either.
    std::fs::write(
        dir.path().join("profiles/q.toml"),
        "support_reg_event = \"yes\"\n",
    )
    .expect("write");
    std::fs::write(
        &config,
        main_file(
            &admin,
            "t1 = \"fast\"",
            &format!("{state}{}", trunk_group("beta", "q")),
        ),
    )
    .expect("write");
    gw.signal("HUP");
    let m = gw.wait_metrics("the error counter at 1", |m| {
        reloads(m, "error") == Some(1.0)
    });
    assert_eq!(reloads(&m, "ok"), Some(0.0));
    let log = gw.log_text();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("configuration refused"))
        .collect();
    assert_eq!(refused.len(), 2, "one line per problem:\n{log}");
    assert!(refused.iter().any(|l| l.contains("sip.t1")), "{log}");
    assert!(
        refused
            .iter()
            .any(|l| l.contains("q.toml") && l.contains("support_reg_event")),
        "{log}"
    );
    assert!(!log.contains("configuration reloaded"), "{log}");
    // The running configuration stays: the SIP task's own view (`/api/stats`, answered from
    // its live state after the refusal was logged) has alpha and no beta, and so do the gauges.
    let stats = regevent_gw::stats::client::http_get(&gw.admin, "/api/stats").expect("stats");
    assert!(stats.contains("\"alpha\""), "{stats}");
    assert!(!stats.contains("\"beta\""), "{stats}");
    let m = gw.metrics();
    assert_eq!(
        sample(&m, REGISTRATIONS, &[("trunk_group", "alpha")]),
        Some(0.0),
        "{m}"
    );
    assert!(!has_series(&m, REGISTRATIONS, "trunk_group", "beta"), "{m}");

    // Good: trunk group gamma instead of alpha, and t1 changed (restart only).
    std::fs::remove_file(dir.path().join("profiles/q.toml")).expect("rm");
    std::fs::write(
        &config,
        main_file(
            &admin,
            "t1 = \"1s\"",
            &format!("{state}{}", trunk_group("gamma", "p")),
        ),
    )
    .expect("write");
    gw.signal("HUP");
    let m = gw.wait_metrics("the ok counter at 1", |m| reloads(m, "ok") == Some(1.0));
    assert_eq!(reloads(&m, "error"), Some(1.0));
    let log = gw.wait_log("configuration reloaded");
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("applies only after a restart"))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(warned[0].contains("sip.t1"), "{log}");
    // The new trunk group's gauges appear; every gauge of the removed one disappears.
    let m = gw.wait_metrics("gamma's gauges without alpha's", |m| {
        sample(m, REGISTRATIONS, &[("trunk_group", "gamma")]) == Some(0.0)
            && !m.contains("trunk_group=\"alpha\"")
    });
    assert_eq!(
        sample(
            &m,
            "regevent_subscriptions",
            &[("trunk_group", "gamma"), ("state", "active")]
        ),
        Some(0.0),
        "{m}"
    );
    assert!(!m.contains("NaN"), "{m}");
    let stats = regevent_gw::stats::client::http_get(&gw.admin, "/api/stats").expect("stats");
    assert!(!stats.contains("\"alpha\""), "{stats}");

    gw.signal("TERM");
    let status = gw.wait_exit(Duration::from_secs(10)).expect("stopped");
    assert!(status.success(), "{status}");
}
