//! The command line as an operator meets it, with the built binary: `check-config` on the
//! shipped example where the documentation installs it, its warnings, the exit statuses (2 for
//! a bad configuration or command line, 1 for a failure at run time), and the client
//! sub-commands finding the admin API from `--config` or the environment.

mod ops_common;

use std::path::{Path, PathBuf};

use ops_common::{free_tcp_port, main_file, run_cli, start, write_config};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `DIR/etc/regevent-gw/gateway.toml` (deploy/gateway.toml) and
/// `DIR/etc/regevent-gw/profiles/*.toml` (profiles/*.toml), as the unit's comment installs them.
fn install_example(root: &Path) -> PathBuf {
    let etc = root.join("etc/regevent-gw");
    std::fs::create_dir_all(etc.join("profiles")).expect("mkdir");
    std::fs::copy(repo("deploy/gateway.toml"), etc.join("gateway.toml")).expect("copy");
    for entry in std::fs::read_dir(repo("profiles")).expect("profiles") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(
                &path,
                etc.join("profiles").join(path.file_name().expect("name")),
            )
            .expect("copy");
        }
    }
    etc.join("gateway.toml")
}

#[test]
fn check_config_accepts_the_shipped_example_where_the_docs_install_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let main = install_example(root.path());
    let main_arg = main.display().to_string();
    let (code, out, err) = run_cli(&["check-config", "--config", &main_arg], &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("OK (3 listeners, 2 trunk groups, 4 profiles)"),
        "{out}"
    );
    assert!(!out.contains("warning:"), "{out}");
    // It is the installed profiles directory that was read: without one of its files, the
    // trunk group naming it is refused, with the installed path.
    let visited = main
        .with_file_name("profiles")
        .join("regevent-visited.toml");
    std::fs::remove_file(&visited).expect("rm");
    let (code, _, err) = run_cli(&["check-config", "--config", &main_arg], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&visited.display().to_string()), "{err}");
    assert!(err.contains("trunk_group[1].profile"), "{err}");
}

#[test]
fn check_config_warns_about_a_trunk_group_that_never_matches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &main_file(
            "127.0.0.1:9464",
            "",
            "[[trunk_group]]\nname = \"any\"\nprofile = \"p\"\n\
             [[trunk_group]]\nname = \"late\"\nprofile = \"p\"\nsources = [\"10.0.0.0/8\"]\n",
        ),
        &[("p", "")],
    );
    let (code, out, err) = run_cli(
        &["check-config", "--config", &config.display().to_string()],
        &[],
    );
    assert_eq!(code, Some(0), "warnings do not fail the check: {out}{err}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(warnings[0].contains("key `trunk_group[1]`"), "{out}");
    assert!(warnings[0].contains("`late` never matches"), "{out}");
    assert!(
        out.lines().last().is_some_and(|l| l.ends_with("profiles)")),
        "{out}"
    );
}

#[test]
fn a_bad_configuration_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tg = "[[trunk_group]]\nname = \"a\"\nprofile = \"p\"\n";
    let config = write_config(
        dir.path(),
        &main_file("127.0.0.1:9464", "t1 = \"fast\"", tg),
        &[("p", "")],
    );
    let config_arg = config.display().to_string();
    let (code, _, err) = run_cli(&["check-config", "--config", &config_arg], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("key `sip.t1`"), "{err}");
    assert!(err.contains("1 configuration problem found"), "{err}");
    // `run` refuses to start with the same problem, and the same status.
    let (code, _, err) = run_cli(&["run", "--config", &config_arg], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("sip.t1"), "{err}");
    // TLS, until the gateway has it.
    std::fs::write(
        &config,
        format!("[sip]\ncore = \"sips:icscf.example.net\"\n{tg}"),
    )
    .expect("write");
    let (code, _, err) = run_cli(&["check-config", "--config", &config_arg], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("key `sip.core`: TLS is not supported yet"),
        "{err}"
    );
    // A file that is not there, a command line that is wrong.
    let (code, _, err) = run_cli(&["check-config", "--config", "/nonexistent/gw.toml"], &[]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = run_cli(&["check-config"], &[]);
    assert_eq!(code, Some(2), "missing --config: {err}");
    let (code, _, err) = run_cli(&["stats", "--config", "/nonexistent/gw.toml"], &[]);
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn a_failure_at_run_time_exits_1() {
    // The admin port is taken: the configuration is fine, the world is not.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let admin = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &main_file(
            &admin,
            "",
            "[state]\nbackend = \"none\"\n[[trunk_group]]\nname = \"a\"\nprofile = \"p\"\n",
        ),
        &[("p", "")],
    );
    let (code, _, err) = run_cli(&["run", "--config", &config.display().to_string()], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("admin.listen"), "{err}");
    // No gateway at the admin address.
    let closed = format!("127.0.0.1:{}", free_tcp_port());
    let (code, _, err) = run_cli(&["stats", "--admin", &closed], &[]);
    assert_eq!(code, Some(1), "{err}");
}

#[test]
fn client_commands_find_the_admin_api_from_config_or_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let config = write_config(
        dir.path(),
        &main_file(
            &admin,
            "",
            "[state]\nbackend = \"none\"\n[[trunk_group]]\nname = \"a\"\nprofile = \"p\"\n",
        ),
        &[("p", "support_reg_event = true\n")],
    );
    let config_arg = config.display().to_string();
    let _gw = start(dir.path(), &config, &admin, &[], &[]);
    let (code, out, err) = run_cli(&["stats", "--format", "json", "--config", &config_arg], &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("regevent_build_info"), "{out}");
    let (code, out, err) = run_cli(
        &["subscriptions", "--format", "json"],
        &[("REGEVENT_GW__ADMIN__LISTEN", &admin)],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\"total\""), "{out}");
    // --admin wins over both.
    let closed = format!("127.0.0.1:{}", free_tcp_port());
    let (code, _, err) = run_cli(
        &["stats", "--admin", &closed, "--config", &config_arg],
        &[("REGEVENT_GW__ADMIN__LISTEN", &admin)],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&closed), "{err}");
}

#[test]
fn help_shows_the_admin_default_9464() {
    for sub in ["stats", "subscriptions", "registration", "demo"] {
        let (code, out, err) = run_cli(&[sub, "--help"], &[]);
        assert_eq!(code, Some(0), "{sub}: {err}");
        assert!(out.contains("127.0.0.1:9464"), "{sub}: {out}");
        assert!(!out.contains("9090"), "{sub}: {out}");
    }
}
