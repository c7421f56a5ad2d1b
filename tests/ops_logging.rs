//! The log of a real gateway process whose stderr is a file (as under systemd or a container
//! runtime): no ANSI colour codes in any line, at any level; with `--log-format json` (or
//! `REGEVENT_GW_LOG_FORMAT=json`) every line is one JSON object with a level and a message.
//! The scenario produces lines at INFO (start, state, reload), WARN (a restart-only key
//! changed) and ERROR (a refused reload).

mod ops_common;

use std::time::Duration;

use ops_common::{free_tcp_port, main_file, run_cli, sample, start, write_config, Gateway};

/// Start a gateway, reload it once with a broken file and once with a good one that changes a
/// restart-only key, stop it; its log.
fn lifecycle(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let rest = "[state]\nbackend = \"embedded\"\ndir = \"state\"\n\
                [[trunk_group]]\nname = \"access\"\nprofile = \"p\"\n";
    let config = write_config(
        dir.path(),
        &main_file(&admin, "", rest),
        &[("p", "support_reg_event = true\n")],
    );
    let mut gw: Gateway = start(dir.path(), &config, &admin, args, env);
    let reloads =
        |m: &str, result: &str| sample(m, "regevent_config_reloads_total", &[("result", result)]);
    std::fs::write(&config, main_file(&admin, "t1 = \"soon\"", rest)).expect("write");
    gw.signal("HUP");
    gw.wait_metrics("a refused reload", |m| reloads(m, "error") == Some(1.0));
    std::fs::write(&config, main_file(&admin, "t1 = \"1s\"", rest)).expect("write");
    gw.signal("HUP");
    gw.wait_metrics("an applied reload", |m| reloads(m, "ok") == Some(1.0));
    gw.signal("TERM");
    let status = gw.wait_exit(Duration::from_secs(10)).expect("stopped");
    assert!(status.success(), "{status}");
    let log = gw.log_text();
    assert!(log.lines().count() >= 6, "{log}");
    log
}

fn assert_no_ansi(log: &str) {
    for (i, line) in log.lines().enumerate() {
        assert!(
            !line.contains('\u{1b}'),
            "line {} has an escape sequence: {line:?}",
            i + 1
        );
    }
}

/// Every line a JSON object with a string `level` and a non-empty string `message`; the levels
/// seen.
fn assert_json_lines(log: &str) -> Vec<String> {
    let mut levels = Vec::new();
    for (i, line) in log.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("line {} is not JSON ({e}): {line:?}", i + 1));
        let level = v
            .get("level")
            .and_then(|l| l.as_str())
            .unwrap_or_else(|| panic!("line {} has no level: {line}", i + 1));
        let message = v
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or_else(|| panic!("line {} has no message: {line}", i + 1));
        assert!(!message.is_empty(), "line {}: {line}", i + 1);
        levels.push(level.to_string());
    }
    levels
}

#[test]
fn text_log_into_a_file_has_no_colour_codes() {
    let log = lifecycle(&[], &[]);
    assert_no_ansi(&log);
    // The levels a colour would have been put on are there, as plain words.
    for level in ["INFO", "WARN", "ERROR"] {
        assert!(
            log.lines().any(|l| l.contains(&format!(" {level} "))),
            "no {level} line:\n{log}"
        );
    }
    assert!(log.contains("regevent-gw running"), "{log}");
}

#[test]
fn json_log_is_one_object_per_line_with_level_and_message() {
    let log = lifecycle(&["--log-format", "json"], &[]);
    assert_no_ansi(&log);
    let levels = assert_json_lines(&log);
    for level in ["INFO", "WARN", "ERROR"] {
        assert!(levels.iter().any(|l| l == level), "no {level}:\n{log}");
    }
    // Fields stay structured: the refused reload names its problem in a field of its own.
    let refused = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .find(|v| v["level"] == "ERROR")
        .expect("an ERROR line");
    let problem = refused["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("sip.t1"), "{refused}");
}

#[test]
fn json_log_from_the_environment() {
    let log = lifecycle(&[], &[("REGEVENT_GW_LOG_FORMAT", "json")]);
    assert_no_ansi(&log);
    let levels = assert_json_lines(&log);
    assert!(levels.iter().any(|l| l == "INFO"), "{log}");
}

#[test]
fn an_unknown_log_format_is_a_configuration_error() {
    let (code, _, err) = run_cli(&["run"], &[("REGEVENT_GW_LOG_FORMAT", "xml")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("REGEVENT_GW_LOG_FORMAT"), "{err}");
    let (code, _, err) = run_cli(&["run", "--log-format", "xml"], &[]);
    assert_eq!(code, Some(2), "usage error: {err}");
}
