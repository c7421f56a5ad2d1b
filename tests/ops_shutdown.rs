//! Stopping a real gateway process the way systemd (SIGTERM) and a person at a terminal
//! (SIGINT, Ctrl-C) do: exit status 0 within 10 s, with the durable state committed first
//! (`[state] backend = "embedded"`), and a store that the next start-up restores.

mod ops_common;

use std::time::Duration;

use ops_common::{free_tcp_port, main_file, start, write_config};

fn stops_cleanly_on(signal: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let config = write_config(
        dir.path(),
        &main_file(
            &admin,
            "",
            "[state]\nbackend = \"embedded\"\ndir = \"state\"\ncommit = \"20ms\"\n\
             [[trunk_group]]\nname = \"access\"\nprofile = \"p\"\n",
        ),
        &[("p", "support_reg_event = true\n")],
    );
    let mut gw = start(dir.path(), &config, &admin, &[], &[]);
    gw.wait_log("state restored");
    gw.signal(signal);
    let status = gw.wait_exit(Duration::from_secs(10));
    let log = gw.log_text();
    let status = status.unwrap_or_else(|| panic!("still running 10 s after SIG{signal}:\n{log}"));
    assert_eq!(status.code(), Some(0), "SIG{signal}: {status}\n{log}");
    assert!(
        log.contains(&format!("SIG{signal}: shutting down")),
        "SIG{signal}:\n{log}"
    );
    // The state was committed before the exit, and the log says so, in that order.
    let committed = log.find("state committed");
    let stopped = log.find("stopped");
    assert!(
        committed.is_some() && committed < stopped,
        "SIG{signal}: no 'state committed' before 'stopped':\n{log}"
    );
    // What was committed is a store the next start-up (and `state check`) reads.
    let (code, out, err) = ops_common::run_cli(
        &["state", "check", "--config", &config.display().to_string()],
        &[],
    );
    assert_eq!(code, Some(0), "state check after SIG{signal}: {out}{err}");
}

#[test]
fn sigterm_commits_the_state_and_exits_0() {
    stops_cleanly_on("TERM");
}

#[test]
fn sigint_commits_the_state_and_exits_0() {
    stops_cleanly_on("INT");
}
