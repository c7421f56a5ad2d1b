//! `regevent-gw`: the command line. The only place for `anyhow`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use regevent_gw::config::Config;
use regevent_gw::stats::{client, SubscriptionFilter};

/// mimalloc instead of glibc malloc: the gateway allocates many small, short-lived buffers per
/// message next to a million long-lived records; glibc's free-list searches dominated a profile
/// of the subscription scrape (see docs/decisions.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "regevent-gw",
    version,
    about = "P-CSCF/SBC reg-event subscription gateway (RFC 3680, 3GPP TS 24.229)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway (built-in loopback defaults without --config).
    Run {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate the main file and every profile; exit 0 when valid, 1 otherwise.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// List live subscriptions of a running gateway.
    Subscriptions {
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: String,
        #[arg(long)]
        trunk_group: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        pui_prefix: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
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
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show the subscription count statistics of a running gateway.
    Stats {
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: String,
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
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print every stored registration, subscription and IBCF dialog as JSON lines.
    Export {
        /// The configuration naming `state.dir` (default: built-in, `./data`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        // The reader went away (`regevent-gw stats | head`): the output it wanted was written.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("regevent-gw: {e:#}");
            ExitCode::FAILURE
        }
    }
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

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::CheckConfig { config } => match Config::load(Some(&config)) {
            Ok(c) => {
                println!(
                    "{}: OK ({} listeners, {} trunk groups, {} profiles)",
                    config.display(),
                    c.sip.listen.len(),
                    c.trunk_groups.len(),
                    c.profiles.by_name.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(errs) => {
                eprintln!("{errs}");
                Ok(ExitCode::FAILURE)
            }
        },
        Cmd::Subscriptions {
            admin,
            trunk_group,
            state,
            pui_prefix,
            limit,
            format,
        } => {
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
                Err(errs) => {
                    eprintln!("{errs}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let dir = &cfg.state.dir;
            let mut out = std::io::stdout().lock();
            match cmd {
                StateCmd::Check { .. } => {
                    let ok = regevent_gw::store::cli::check(dir, &mut out)?;
                    Ok(if ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    })
                }
                StateCmd::Export { .. } => {
                    regevent_gw::store::cli::export(dir, &mut out)?;
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Cmd::Registration { pui, admin, format } => {
            let found = client::registration_command(
                &admin,
                &pui,
                fmt(format),
                &mut std::io::stdout().lock(),
            )?;
            Ok(if found {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Stats { admin, format } => {
            client::stats_command(&admin, fmt(format), &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run { config } => {
            init_tracing("info");
            let cfg = match Config::load(config.as_deref()) {
                Ok(c) => Arc::new(c),
                Err(errs) => {
                    eprintln!("{errs}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            runtime()?.block_on(serve(cfg, config))?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "lab")]
        Cmd::Loadgen(args) => {
            init_tracing("warn");
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(regevent_lab::loadgen::run(args))?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "lab")]
        Cmd::Demo(args) => {
            // The demo prints its own summary; per-registration log lines at warn and above only.
            init_tracing("warn");
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

/// Logs to stderr; `REGEVENT_GW_LOG` (e.g. `debug`, `regevent_gw::gateway=debug`) overrides.
fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("REGEVENT_GW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colour codes only for a person at a terminal, never into a file or the journal.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
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
        metrics: Box::new(move || prom.render()),
        stop: Box::new(move || Box::pin(running.stop())),
    })
}

async fn serve(cfg: Arc<Config>, file: Option<PathBuf>) -> anyhow::Result<()> {
    let files = regevent_gw::transport::raise_fd_limit();
    tracing::debug!(?files, "open-file limit");
    let prom = regevent_gw::stats::recorder::global_handle()?;
    let running = regevent_gw::app::start(cfg, prom, None).await?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => match Config::load(file.as_deref()) {
                Ok(c) => {
                    tracing::info!(profiles = c.profiles.by_name.len(), "SIGHUP: profiles reloaded");
                    let _ = running.events.send(regevent_gw::transport::Event::Reload(Arc::new(c))).await;
                }
                Err(errs) => tracing::error!(%errs, "SIGHUP: configuration invalid, keeping the running one"),
            },
        }
    }
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
