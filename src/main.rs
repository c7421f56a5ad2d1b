//! `regevent-gw`: the command line. The only place for `anyhow`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use std::io::Write;

use clap::{Parser, Subcommand, ValueEnum};
use regevent_gw::config::{render_errors_for_cli, Config, ConfigErrors};
use regevent_gw::stats::{client, SubscriptionFilter};
use regevent_gw::transport::Event;
use tokio::signal::unix::{signal, SignalKind};

/// mimalloc instead of glibc malloc: the gateway allocates many small, short-lived buffers per
/// message next to a million long-lived records; glibc's free-list searches dominated a profile
/// of the subscription scrape (see docs/decisions.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "regevent-gw",
    version,
    about = "P-CSCF/SBC reg-event subscription gateway (RFC 3680, 3GPP TS 24.229)",
    after_help = "Exit status: 0 success; 1 a failure at run time (a socket that cannot be \
                  bound, a damaged state store, an admin API that cannot be reached); 2 a bad \
                  configuration or command line (a restart cannot fix it: systemd's \
                  RestartPreventExitStatus=2)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// Aligned columns for a person.
    Table,
    /// JSON, for scripts.
    Json,
}

/// How `run` writes its log lines (to stderr).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// One human-readable line per event; colours only on a terminal.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `message`, fields), for log shippers.
    Json,
}

/// Help of `--admin` and `--config` of the admin-client sub-commands (`subscriptions`, `stats`,
/// `registration`; see `client::admin_address`).
const ADMIN_HELP: &str = "Admin API of the gateway (IP:PORT). Default: admin.listen of --config \
                          FILE, else $REGEVENT_GW__ADMIN__LISTEN, else 127.0.0.1:9464";
const ADMIN_CONFIG_HELP: &str =
    "The gateway's main configuration file, to take its admin.listen when --admin is not given";

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway (built-in loopback defaults without --config). SIGHUP reloads trunk
    /// groups and profiles; SIGTERM/SIGINT commit the state and stop.
    Run {
        /// The main configuration file (TOML; docs/configuration.md). Without it: built-in
        /// defaults, SIP on 127.0.0.1:5060, admin API on 127.0.0.1:9464.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Log line format on stderr [default: $REGEVENT_GW_LOG_FORMAT, else text]. The level
        /// comes from $REGEVENT_GW_LOG (e.g. `debug`; default `info`).
        #[arg(long, value_enum, value_name = "FORMAT")]
        log_format: Option<LogFormat>,
        /// Start as a standby (the same as `state.standby = true`): with the Redis backend, wait
        /// for the active instance's lease to lapse, then restore its state and take over.
        #[arg(long)]
        standby: bool,
    },
    /// Validate the main file and every profile: exit 0 when valid (warnings on stdout as
    /// `warning: ...`), 2 with every problem on stderr otherwise.
    CheckConfig {
        /// The main configuration file to check (with its profiles directory).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// List live subscriptions of a running gateway.
    Subscriptions {
        #[arg(long, value_name = "ADDR", help = ADMIN_HELP)]
        admin: Option<String>,
        #[arg(long, value_name = "FILE", help = ADMIN_CONFIG_HELP)]
        config: Option<PathBuf>,
        /// Only subscriptions of this trunk group.
        #[arg(long)]
        trunk_group: Option<String>,
        /// Only subscriptions in this state (pending, active, refreshing, unsubscribing).
        #[arg(long)]
        state: Option<String>,
        /// Only subscriptions whose default PUI starts with this.
        #[arg(long)]
        pui_prefix: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Inspect the durable state in `state.dir` (read-only; safe while the gateway runs).
    State {
        #[command(subcommand)]
        cmd: StateCmd,
    },
    /// Show one registration of a running gateway (bindings, flows, implicit set, Service-Route).
    Registration {
        /// The registration's default public user identity.
        pui: String,
        #[arg(long, value_name = "ADDR", help = ADMIN_HELP)]
        admin: Option<String>,
        #[arg(long, value_name = "FILE", help = ADMIN_CONFIG_HELP)]
        config: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show the subscription count statistics of a running gateway.
    Stats {
        #[arg(long, value_name = "ADDR", help = ADMIN_HELP)]
        admin: Option<String>,
        #[arg(long, value_name = "FILE", help = ADMIN_CONFIG_HELP)]
        config: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// One-process lab: gateway + emulated IMS core + a swarm of UEs on loopback.
    #[cfg(feature = "lab")]
    Demo(regevent_lab::demo::DemoArgs),
    /// Load generator: emulated IMS core + UE swarms against a gateway in another process.
    #[cfg(feature = "lab")]
    Loadgen(regevent_lab::loadgen::LoadgenArgs),
}

#[derive(Subcommand)]
enum StateCmd {
    /// Check the store: what it holds, or the file and what is wrong with it (exit 1).
    Check {
        /// The configuration naming `state.dir` (default: built-in, `./data`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print every stored registration, subscription and IBCF dialog as JSON lines.
    Export {
        /// The configuration naming `state.dir` (default: built-in, `./data`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// Exit status of a failure at run time (a socket, the store, the admin API).
const EXIT_RUNTIME: u8 = 1;
/// Exit status of a bad configuration or command line (clap's usage errors are 2 too): a
/// restart cannot fix it, so systemd stops retrying (`RestartPreventExitStatus=2`).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        // The reader went away (`regevent-gw stats | head`): the output it wanted was written.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("regevent-gw: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// A configuration that cannot be used: every problem on stderr, exit status 2.
fn bad_config(errs: &ConfigErrors) -> ExitCode {
    eprintln!("{}", render_errors_for_cli(errs));
    ExitCode::from(EXIT_CONFIG)
}

/// Whether the error is (or was caused by) a write to a closed pipe.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn fmt(f: Format) -> client::OutputFormat {
    match f {
        Format::Table => client::OutputFormat::Table,
        Format::Json => client::OutputFormat::Json,
    }
}

/// The admin address of a client sub-command, or the exit status of a bad configuration.
fn admin_of(admin: Option<String>, config: Option<PathBuf>) -> Result<String, ExitCode> {
    let env = std::env::var(client::ADMIN_ENV).ok();
    client::admin_address(admin.as_deref(), config.as_deref(), env.as_deref())
        .map_err(|errs| bad_config(&errs))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::CheckConfig { config } => match Config::load(Some(&config)) {
            Ok(c) => {
                let mut out = std::io::stdout().lock();
                for w in c.warnings() {
                    writeln!(out, "warning: {w}")?;
                }
                writeln!(
                    out,
                    "{}: OK ({} listeners, {} trunk groups, {} profiles)",
                    config.display(),
                    c.sip.listen.len(),
                    c.trunk_groups.len(),
                    c.profiles.by_name.len()
                )?;
                Ok(ExitCode::SUCCESS)
            }
            Err(errs) => Ok(bad_config(&errs)),
        },
        Cmd::Subscriptions {
            admin,
            config,
            trunk_group,
            state,
            pui_prefix,
            limit,
            format,
        } => {
            let admin = match admin_of(admin, config) {
                Ok(a) => a,
                Err(code) => return Ok(code),
            };
            let filter = SubscriptionFilter {
                trunk_group,
                pui_prefix,
                state,
            };
            client::subscriptions_command(
                &admin,
                &filter,
                limit,
                fmt(format),
                &mut std::io::stdout().lock(),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::State { cmd } => {
            let (StateCmd::Check { config } | StateCmd::Export { config }) = &cmd;
            let cfg = match Config::load(config.as_deref()) {
                Ok(c) => c,
                Err(errs) => return Ok(bad_config(&errs)),
            };
            let dir = &cfg.state.dir;
            let mut out = std::io::stdout().lock();
            match cmd {
                StateCmd::Check { .. } => Ok(success_or_runtime(regevent_gw::store::cli::check(
                    dir, &mut out,
                )?)),
                StateCmd::Export { .. } => {
                    regevent_gw::store::cli::export(dir, &mut out)?;
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Cmd::Registration {
            pui,
            admin,
            config,
            format,
        } => {
            let admin = match admin_of(admin, config) {
                Ok(a) => a,
                Err(code) => return Ok(code),
            };
            let found = client::registration_command(
                &admin,
                &pui,
                fmt(format),
                &mut std::io::stdout().lock(),
            )?;
            Ok(success_or_runtime(found))
        }
        Cmd::Stats {
            admin,
            config,
            format,
        } => {
            let admin = match admin_of(admin, config) {
                Ok(a) => a,
                Err(code) => return Ok(code),
            };
            client::stats_command(&admin, fmt(format), &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            config,
            log_format,
            standby,
        } => {
            if standby {
                // Through the environment, so that a reload (which loads the files and the
                // environment again) keeps it too. Set before any other thread exists.
                std::env::set_var("REGEVENT_GW__STATE__STANDBY", "true");
            }
            let format = match log_format.map_or_else(log_format_from_env, Ok) {
                Ok(f) => f,
                Err(problem) => {
                    eprintln!("environment variable {LOG_FORMAT_ENV}: {problem}");
                    return Ok(ExitCode::from(EXIT_CONFIG));
                }
            };
            init_tracing("info", format);
            let cfg = match Config::load(config.as_deref()) {
                Ok(c) => Arc::new(c),
                Err(errs) => {
                    // One log line per problem (they may go to a log shipper as JSON).
                    for e in &errs.0 {
                        tracing::error!(problem = %e, "configuration invalid, not starting");
                    }
                    return Ok(ExitCode::from(EXIT_CONFIG));
                }
            };
            for w in cfg.warnings() {
                tracing::warn!(warning = %w, "configuration");
            }
            runtime()?.block_on(serve(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "lab")]
        Cmd::Loadgen(args) => {
            init_tracing("warn", log_format_from_env().unwrap_or(LogFormat::Text));
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(regevent_lab::loadgen::run(args))?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "lab")]
        Cmd::Demo(args) => {
            // The demo prints its own summary; per-registration log lines at warn and above only.
            init_tracing("warn", log_format_from_env().unwrap_or(LogFormat::Text));
            runtime()?.block_on(regevent_lab::demo::run(args, demo_gateway))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The SIP path runs on one thread (the gateway task owns all state; no cross-thread wake-ups
/// per message); the admin server has a thread of its own (see `app::start`).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The variable that chooses the log format when `--log-format` is not given.
const LOG_FORMAT_ENV: &str = "REGEVENT_GW_LOG_FORMAT";

/// Exit status 0 when `ok`, else the runtime-failure status (a damaged store, a registration
/// not found).
fn success_or_runtime(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RUNTIME)
    }
}

/// `REGEVENT_GW_LOG_FORMAT` (`text` or `json`); text when unset or empty.
fn log_format_from_env() -> Result<LogFormat, String> {
    match std::env::var(LOG_FORMAT_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(LogFormat::Text),
        Err(std::env::VarError::NotUnicode(_)) => Err("not valid UTF-8".into()),
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format {v:?}: expected text or json")),
        },
    }
}

/// Logs to stderr; `REGEVENT_GW_LOG` (e.g. `debug`, `regevent_proto=debug`) overrides the level.
/// Per-registration and per-subscription events are at DEBUG; INFO is the gateway's lifecycle.
fn init_tracing(default: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("REGEVENT_GW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            use std::io::IsTerminal;
            builder
                .with_target(false)
                // Colour codes only for a person at a terminal, never into a file or the journal.
                .with_ansi(std::io::stderr().is_terminal())
                .init()
        }
        // `level`, `message` and the event's fields at the top level of each object.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .init(),
    }
}

/// The gateway `regevent-gw demo` runs: built-in defaults, the demo's listeners, core and
/// profile.
#[cfg(feature = "lab")]
async fn demo_gateway(
    spec: regevent_lab::demo::GatewaySpec,
) -> anyhow::Result<regevent_lab::demo::DemoGateway> {
    use regevent_gw::config::{Listener, Transport};
    let mut cfg = Config::load(None).map_err(|e| anyhow::anyhow!("{e}"))?;
    cfg.sip.listen = vec![Listener {
        name: format!("udp:{}", spec.sip),
        transport: Transport::Udp,
        addr: spec.sip,
    }];
    cfg.sip.core = spec.core;
    cfg.admin.listen = spec.admin;
    // The demo starts from nothing every time and leaves nothing behind.
    cfg.state.backend = regevent_gw::config::StateBackend::None;
    cfg.subscription.expiry_margin = spec.expiry_margin;
    for tg in &cfg.trunk_groups {
        cfg.profiles
            .by_name
            .insert(tg.profile.clone(), spec.profile.clone());
    }
    let prom = regevent_gw::stats::recorder::global_handle()?;
    let running = regevent_gw::app::start(Arc::new(cfg), prom.clone(), spec.seed).await?;
    let sip = running
        .sip_addr(Transport::Udp)
        .ok_or_else(|| anyhow::anyhow!("no UDP listener"))?;
    Ok(regevent_lab::demo::DemoGateway {
        sip,
        admin: running.admin_addr,
        metrics: Box::new(move || regevent_gw::stats::recorder::render(&prom)),
        stop: Box::new(move || Box::pin(running.stop())),
    })
}

async fn serve(cfg: Arc<Config>) -> anyhow::Result<()> {
    let files = regevent_gw::transport::raise_fd_limit();
    tracing::debug!(?files, "open-file limit");
    let prom = regevent_gw::stats::recorder::global_handle()?;
    regevent_gw::stats::recorder::register_reload_counters();
    let running = regevent_gw::app::start(cfg.clone(), prom, None).await?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut current = cfg;
    loop {
        tokio::select! {
            _ = int.recv() => {
                tracing::info!("SIGINT: shutting down");
                break;
            }
            _ = term.recv() => {
                tracing::info!("SIGTERM: shutting down");
                break;
            }
            why = running.failed() => {
                // Fail loud: the process must not live on without its SIP task.
                anyhow::bail!("the SIP task {why}");
            }
            _ = hup.recv() => {
                let Some(applied) = reload(&current) else { continue };
                current = applied;
                if running.events.send(Event::Reload(current.clone())).await.is_err() {
                    tracing::error!("SIGHUP: the SIP task is gone; nothing reloaded");
                }
            }
        }
    }
    running.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP: load and validate the whole configuration again; on any problem keep the running
/// one (each problem logged on a line of its own). Otherwise the new trunk groups and profiles
/// apply, and each restart-only key the file changed is named in a warning.
fn reload(current: &Config) -> Option<Arc<Config>> {
    use regevent_gw::stats::recorder::count_reload;
    let reloaded = Config::load(current.file.as_deref()).and_then(|new| current.reload(new));
    let r = match reloaded {
        Ok(r) => r,
        Err(errs) => {
            for e in &errs.0 {
                tracing::error!(problem = %e, "SIGHUP: configuration refused, the running one stays");
            }
            count_reload(false);
            return None;
        }
    };
    for key in &r.restart_only_changed {
        tracing::warn!(
            key,
            "SIGHUP: `{key}` changed; it applies only after a restart (the running value stays)"
        );
    }
    for w in r.applied.warnings() {
        tracing::warn!(warning = %w, "configuration");
    }
    count_reload(true);
    tracing::info!(
        trunk_groups = r.applied.trunk_groups.len(),
        profiles = r.applied.profiles.by_name.len(),
        "SIGHUP: configuration reloaded (trunk groups and profiles)"
    );
    Some(Arc::new(r.applied))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sub-command and every argument has help text (`--help` explains everything).
    #[test]
    fn every_sub_command_and_argument_has_help() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} <{id}>"));
                }
            }
            for sub in cmd.get_subcommands() {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_name() != "help" && sub.get_about().is_none() {
                    missing.push(sub_path.clone());
                }
                walk(sub, &sub_path, missing);
            }
        }
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cmd, "regevent-gw", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
        // The walk sees the sub-commands and their arguments.
        let run = cmd.find_subcommand("run").expect("run");
        assert!(run.get_arguments().any(|a| a.get_id() == "log_format"));
    }

    #[test]
    fn a_closed_pipe_is_recognised_through_context() {
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(broken_pipe(&anyhow::Error::from(pipe)));
        let wrapped = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing the stats table");
        assert!(broken_pipe(&wrapped));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!broken_pipe(&anyhow::Error::from(refused)));
        assert!(!broken_pipe(&anyhow::anyhow!("cannot reach the admin API")));
    }
}
