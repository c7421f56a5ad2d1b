//! `regevent-gw demo`: the gateway, an emulated IMS core and a swarm of UEs in one process on
//! loopback, with short expiries so that subscriptions are created, refreshed, notified and ended
//! within seconds. Prints a one-line summary every second.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::core::{CoreCmd, CoreConfig, ImsCore};
use crate::ue::{self, SwarmConfig, SwarmStats};
use regevent_proto::names;
use regevent_proto::settings::Profile;

/// The gateway the demo asks for. The lab never depends on the server crate: the caller
/// (`regevent-gw demo`) starts it and hands back a [`DemoGateway`].
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    /// SIP UDP listener.
    pub sip: SocketAddr,
    /// Admin HTTP listener.
    pub admin: SocketAddr,
    /// `sip.core`: the emulated IMS core.
    pub core: String,
    /// `subscription.expiry_margin`.
    pub expiry_margin: Duration,
    /// The profile of every trunk group.
    pub profile: Profile,
    pub seed: Option<u64>,
}

/// A gateway started for the demo.
pub struct DemoGateway {
    /// Bound SIP UDP and admin addresses.
    pub sip: SocketAddr,
    pub admin: SocketAddr,
    /// The gateway's metrics in Prometheus text.
    pub metrics: Box<dyn Fn() -> String + Send>,
    /// Stops it.
    pub stop: Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Number of emulated UEs.
    #[arg(long, default_value_t = 40)]
    pub ues: usize,
    /// Seed for tags and Call-IDs.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Admin HTTP address (/metrics, /api/subscriptions).
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub admin: SocketAddr,
    /// SIP UDP address of the gateway.
    #[arg(long, default_value = "127.0.0.1:5060")]
    pub sip: SocketAddr,
    /// No churn: every UE stays registered and no network deregistration happens, so the
    /// number of live subscriptions settles at the number of UEs (for scrape checks).
    #[arg(long)]
    pub steady: bool,
}

/// Run the demo.
pub async fn run<F, Fut>(args: DemoArgs, start: F) -> anyhow::Result<()>
where
    F: FnOnce(GatewaySpec) -> Fut,
    Fut: Future<Output = anyhow::Result<DemoGateway>>,
{
    let core = ImsCore::start(
        "127.0.0.1:0".parse()?,
        CoreConfig {
            reg_expires_max: 10,
            sub_expires_max: 6,
            ..CoreConfig::default()
        },
    )
    .await?;
    let running = start(GatewaySpec {
        sip: args.sip,
        admin: args.admin,
        core: format!("sip:{}", core.addr),
        expiry_margin: Duration::from_secs(2),
        profile: Profile {
            support_reg_event: true,
            ..Profile::default()
        },
        seed: args.seed,
    })
    .await?;
    let gw = running.sip;
    println!(
        "demo: gateway sip:{gw}  admin http://{}/metrics  core {}  ({} UEs)",
        running.admin, core.addr, args.ues
    );

    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(SwarmStats::default());
    // Half the UEs stay and re-register; the other half deregister after 6 s.
    let half = if args.steady { 0 } else { args.ues / 2 };
    let stay = SwarmConfig {
        gateway: gw,
        users: args.ues - half,
        expires: 10,
        rate: 50.0,
        ..SwarmConfig::default()
    };
    let leave = SwarmConfig {
        first_user: args.ues - half,
        users: half,
        lifetime: Some(Duration::from_secs(6)),
        ..stay.clone()
    };
    tokio::spawn(ue::run(stay, stats.clone(), stop.clone()));
    if half > 0 {
        tokio::spawn(ue::run(leave, stats.clone(), stop.clone()));
    }
    // Every 4 s the network deregisters one of the staying UEs.
    let cmd = core.cmd.clone();
    let netdereg_users = if args.steady { 0 } else { args.ues - half };
    tokio::spawn(async move {
        let mut i = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(4)).await;
            if i >= netdereg_users {
                return;
            }
            let pui = format!("sip:ue{i}@ims.example.net");
            if cmd
                .send(CoreCmd::NetworkDeregister {
                    pui,
                    terminate_subscription: false,
                })
                .await
                .is_err()
            {
                return;
            }
            i += 1;
        }
    });

    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let text = (running.metrics)();
        let m = |name: &str, label: Option<(&str, &str)>| metric_sum(&text, name, label) as u64;
        println!(
            "t={:>3}s registrations={} subscriptions={} | SUBSCRIBE initial={} refresh={} unsubscribe={} | NOTIFY accepted={} | removed error={} timeout={} terminated={} user={} network={} expired={}",
            start.elapsed().as_secs(),
            m(names::REGISTRATIONS_LIVE, None),
            m(names::SUBSCRIPTIONS_LIVE, None),
            m(names::SUBSCRIBES_SENT, Some(("kind", "initial"))),
            m(names::SUBSCRIBES_SENT, Some(("kind", "refresh"))),
            m(names::SUBSCRIBES_SENT, Some(("kind", "unsubscribe"))),
            m(names::NOTIFYS, Some(("outcome", "accepted"))),
            m(names::SUBSCRIPTION_REMOVALS, Some(("reason", "error_response"))),
            m(names::SUBSCRIPTION_REMOVALS, Some(("reason", "timeout"))),
            m(names::SUBSCRIPTION_REMOVALS, Some(("reason", "notify_terminated"))),
            m(names::SUBSCRIPTION_REMOVALS, Some(("reason", "user_deregistration"))),
            m(names::SUBSCRIPTION_REMOVALS, Some(("reason", "network_deregistration"))),
            m(names::SUBSCRIPTION_REMOVALS, Some(("reason", "registration_expired"))),
        );
        if args
            .seconds
            .is_some_and(|s| start.elapsed() >= Duration::from_secs(s))
        {
            break;
        }
    }
    stop.store(true, Relaxed);
    println!(
        "demo: UEs sent {} REGISTERs, {} initial OK, {} re-registrations, {} deregistrations, {} failures",
        stats.registers_sent.load(Relaxed),
        stats.initial_ok.load(Relaxed),
        stats.reregister_ok.load(Relaxed),
        stats.deregister_ok.load(Relaxed),
        stats.failures.load(Relaxed)
    );
    (running.stop)().await;
    Ok(())
}

/// Sum of every sample of `name` in Prometheus text (optionally only where `label` has a value).
pub fn metric_sum(text: &str, name: &str, label: Option<(&str, &str)>) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            if let Some((k, v)) = label {
                if !labels.contains(&format!("{k}=\"{v}\"")) {
                    return None;
                }
            }
            value.parse::<f64>().ok()
        })
        .sum()
}
