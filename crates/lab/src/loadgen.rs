//! `regevent-gw loadgen`: offered load for a gateway running in another process. Runs the
//! emulated IMS core (registrar + notifier) on the address the gateway uses as `sip.core`, and
//! swarms of UEs registering at a target rate; reports offered and completed registrations/s,
//! registrations-with-subscription/s, failures, REGISTER→200 and SUBSCRIBE→NOTIFY-answered
//! latency percentiles, and (with `--gateway-pid`) the gateway's CPU time and RSS.
//!
//! It runs on one thread, so that on a 2-core machine the gateway keeps the other core.
//!
//! `--transport tcp` sends the UEs' REGISTERs over TCP: each swarm is one connection to the
//! gateway's TCP listener at `--gateway` carrying all its UEs (see [`super::ue`]), so
//! `--swarms` sets the number of connections. The core listens for UDP and TCP on `--core`;
//! the gateway's `sip.core` chooses (`sip:127.0.0.1:5070;transport=tcp` puts the gateway's
//! side toward the core on one TCP connection).
//! `--connection-per-ue` gives each TCP UE its own connection instead (as phones have).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::core::{CoreConfig, CoreStats, ImsCore};
use super::ue::{self, SwarmConfig, SwarmStats};
use regevent_proto::sip::Transport;

#[derive(Debug, Clone, clap::Args)]
pub struct LoadgenArgs {
    /// The gateway's SIP address (its UDP listener, or its TCP one with `--transport tcp`).
    #[arg(long, default_value = "127.0.0.1:5060")]
    pub gateway: SocketAddr,
    /// How the UEs reach the gateway. With tcp, each swarm is one connection.
    #[arg(long, default_value = "udp")]
    pub transport: Transport,
    /// With `--transport tcp`: every UE opens its own connection at its first REGISTER and
    /// keeps it (as phones do), instead of sharing its swarm's. One file descriptor per UE in
    /// both processes, and at most 28,000 UEs per swarm (the ephemeral ports of one address).
    #[arg(long)]
    pub connection_per_ue: bool,
    /// Where the emulated core listens, UDP and TCP (the gateway's `sip.core`).
    #[arg(long, default_value = "127.0.0.1:5070")]
    pub core: SocketAddr,
    /// Offered initial registrations per second (all swarms together).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// How long to offer load, seconds (users = rate × seconds unless --users is given).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Number of distinct users (default rate × seconds).
    #[arg(long)]
    pub users: Option<usize>,
    /// Number of UE sockets or TCP connections (swarms), each on its own loopback address
    /// 127.0.1.N.
    #[arg(long, default_value_t = 4)]
    pub swarms: usize,
    /// Registration expiry the UEs ask for.
    #[arg(long, default_value_t = 3600)]
    pub expires: u32,
    /// Keep every user registered (re-registering at half expiry) until Ctrl-C or --hold-seconds,
    /// printing the gateway's RSS: for memory measurements.
    #[arg(long)]
    pub hold: bool,
    /// With --hold: keep the users registered this many seconds after the offered load ends
    /// (default: until Ctrl-C).
    #[arg(long)]
    pub hold_seconds: Option<u64>,
    /// PID of the gateway, to report its CPU time and memory.
    #[arg(long)]
    pub gateway_pid: Option<u32>,
    /// Append "USER UNIX_MS" to this file for every initial registration's 200 OK (written once
    /// a second): to check, after a crash, which answered registrations the gateway kept.
    #[arg(long)]
    pub answered_log: Option<std::path::PathBuf>,
}

/// Local ports one address has for connections to one listener (Linux's default ephemeral
/// range, 32768–60999, with some to spare).
const PORTS_PER_ADDRESS: usize = 28_000;

/// Resident set size of a process (`"self"` or a PID), bytes, from /proc.
pub fn rss_bytes(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// CPU time a process used, seconds: in its own code (user) and in the kernel on its behalf
/// (system calls, and for loopback UDP the delivery of what it sends).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuTime {
    pub user: f64,
    pub system: f64,
}

impl CpuTime {
    pub fn total(self) -> f64 {
        self.user + self.system
    }
    fn since(self, before: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user - before.user,
            system: self.system - before.system,
        }
    }
    /// `"4.60 s (30.7 µs per registration: 12.1 user + 18.6 kernel)"`.
    fn per_registration(self, registrations: u64) -> String {
        let us = |s: f64| s * 1e6 / registrations.max(1) as f64;
        format!(
            "{:.2} s ({:.1} µs per registration: {:.1} user + {:.1} kernel)",
            self.total(),
            us(self.total()),
            us(self.user),
            us(self.system)
        )
    }
}

/// Process CPU time and RSS (bytes) from /proc (`utime`, `stime`: clock ticks of 1/100 s).
pub fn proc_usage(pid: &str) -> Option<(CpuTime, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| Some(f.get(i)?.parse::<f64>().ok()? / 100.0);
    let cpu = CpuTime {
        user: ticks(11)?,
        system: ticks(12)?,
    };
    Some((cpu, rss_bytes(pid)?))
}

/// `RcvbufErrors` of `/proc/net/snmp`'s `Udp:` lines: datagrams dropped machine-wide because a
/// receiving socket's buffer was full.
pub fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let at = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// Completions per second over the seconds in which load was offered, leaving out the first
/// (ramp-up): `per_tick[k]` is the count at the end of second k + 1.
fn sustained_rate(per_tick: &[u64], seconds: u64) -> Option<f64> {
    let end = usize::try_from(seconds).ok()?.min(per_tick.len());
    (end >= 2).then(|| (per_tick[end - 1] - per_tick[0]) as f64 / (end - 1) as f64)
}

fn pct(v: &[u32], q: f64) -> u32 {
    if v.is_empty() {
        return 0;
    }
    v[((v.len() - 1) as f64 * q) as usize]
}

/// Run the load generator (call inside a current-thread runtime).
pub async fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    let users = args
        .users
        .unwrap_or((args.rate * args.seconds as f64).ceil() as usize)
        .max(1);
    let core = ImsCore::start(
        args.core,
        CoreConfig {
            reg_expires_max: args.expires,
            sub_expires_max: args.expires + 60,
            expected_users: users,
            // A gateway whose `sip.core` says `;transport=tcp` connects to the same port.
            tcp: true,
            ..CoreConfig::default()
        },
    )
    .await?;
    let swarms = args.swarms.clamp(1, 200);
    let stats = Arc::new(SwarmStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let per = users.div_ceil(swarms);
    if args.connection_per_ue {
        anyhow::ensure!(
            args.transport == Transport::Tcp,
            "--connection-per-ue needs --transport tcp"
        );
        anyhow::ensure!(
            per <= PORTS_PER_ADDRESS,
            "--connection-per-ue: {per} UEs per swarm, but one loopback address has about \
             {PORTS_PER_ADDRESS} ephemeral ports; use more --swarms"
        );
        let files = regevent_udp::raise_fd_limit().unwrap_or(0);
        if users as u64 + 64 > files {
            eprintln!(
                "loadgen: {users} connections but an open-file limit of {files}: the rest will \
                 fail (raise `ulimit -n`, for the gateway too)"
            );
        }
    }
    let gw_pid = args.gateway_pid.map(|p| p.to_string());
    let self_before = proc_usage("self");
    let drops_before = udp_rcvbuf_errors();
    let gw_before = gw_pid.as_deref().and_then(proc_usage);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..swarms {
        let first = k * per;
        let n = per.min(users.saturating_sub(first));
        if n == 0 {
            break;
        }
        let cfg = SwarmConfig {
            gateway: args.gateway,
            local: SocketAddr::from(([127, 0, 1, (k % 250 + 1) as u8], 0)),
            transport: args.transport,
            users: n,
            first_user: first,
            expires: args.expires,
            rate: args.rate / swarms as f64,
            lifetime: None,
            reregister: args.hold,
            connection_per_ue: args.connection_per_ue,
            ..SwarmConfig::default()
        };
        let swarm = ue::run(cfg, stats.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            // Said when it happens (e.g. no TCP listener at --gateway); the swarm's users show
            // in the report as failures or never answered.
            if let Err(e) = swarm.await {
                eprintln!("loadgen: swarm {k}: {e}");
            }
        }));
    }
    println!(
        "loadgen: {users} users in {swarms} swarms at {:.0}/s → gateway {}:{} (core {})",
        args.rate,
        args.transport.name(),
        args.gateway,
        core.addr
    );
    let mut last = (0u64, 0u64);
    let mut last_rejected = 0u64;
    let mut per_tick: Vec<u64> = Vec::new();
    // When the last initial registration completed (tick granularity): the rate's time base.
    let mut last_progress = 0.0f64;
    let deadline = if args.hold {
        args.hold_seconds
            .map(|s| Duration::from_secs(args.seconds + s))
    } else {
        Some(Duration::from_secs(args.seconds + 10))
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut answered_log = match &args.answered_log {
        Some(path) => {
            stats.note_answers.store(true, Relaxed);
            Some(std::io::BufWriter::new(std::fs::File::create(path)?))
        }
        None => None,
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        if let Some(log) = answered_log.as_mut() {
            use std::io::Write;
            let answered = stats
                .answered
                .lock()
                .map(|mut a| std::mem::take(&mut *a))
                .unwrap_or_default();
            for (user, unix_ms) in answered {
                writeln!(log, "{user} {unix_ms}")?;
            }
            log.flush()?;
        }
        let ok = stats.initial_ok.load(Relaxed);
        let notified = CoreStats::get(&core.stats.subscriptions_notified);
        let mut gw = gw_pid
            .as_deref()
            .and_then(proc_usage)
            .map(|(_, rss)| format!(" gw_rss={:.1}MiB", rss as f64 / 1048576.0))
            .unwrap_or_default();
        if args.connection_per_ue {
            gw.push_str(&format!(
                " conns_opened={}",
                stats.connections_opened.load(Relaxed)
            ));
        }
        let rejected = stats.rejected_503.load(Relaxed);
        println!(
            "t={:>3}s sent={} registered={} (+{}/s) subscribed+notified={} (+{}/s) failures={} timeouts={} 503s={} (+{}/s){gw}",
            started.elapsed().as_secs(),
            stats.registers_sent.load(Relaxed),
            ok,
            ok - last.0,
            notified,
            notified - last.1,
            stats.failures.load(Relaxed),
            stats.timeouts.load(Relaxed),
            rejected,
            rejected - last_rejected,
        );
        last_rejected = rejected;
        per_tick.push(ok);
        if ok > last.0 {
            last_progress = started.elapsed().as_secs_f64();
        }
        last = (ok, notified);
        let all_done =
            !args.hold && ok + stats.failures.load(Relaxed) >= users as u64 && notified >= ok;
        if all_done || deadline.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let ok = stats.initial_ok.load(Relaxed);
    let notified = CoreStats::get(&core.stats.subscriptions_notified);
    let mut reg_lat = stats
        .latencies_us
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    reg_lat.sort_unstable();
    let mut sub_lat = core
        .stats
        .subscribe_to_notified_us
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    sub_lat.sort_unstable();
    let active = if last_progress > 0.0 {
        last_progress
    } else {
        elapsed
    }
    .max(0.001);
    println!("== loadgen report");
    println!(
        "offered:    {} REGISTERs at {:.0}/s target",
        stats.registers_sent.load(Relaxed),
        args.rate
    );
    println!("completed:  {ok} registrations ({:.0}/s over {active:.1} s), {notified} subscribed+notified", ok as f64 / active);
    if let Some(r) = sustained_rate(&per_tick, args.seconds) {
        println!(
            "sustained:  {r:.0}/s completed from t=1 s to t={} s (while load was offered)",
            args.seconds.min(per_tick.len() as u64)
        );
    }
    let deferred = stats.deferred_at_end.load(Relaxed);
    println!(
        "failures:   {} non-2xx, {} timeouts, {} never answered",
        stats.failures.load(Relaxed),
        stats.timeouts.load(Relaxed),
        (users as u64).saturating_sub(ok + stats.failures.load(Relaxed) + deferred)
    );
    let rejected = stats.rejected_503.load(Relaxed);
    if rejected > 0 {
        println!(
            "overload:   {rejected} answered 503 with Retry-After {}–{} s (mean {:.1} s), tried again then; {deferred} UEs answered 503 and still to register at the end",
            stats.retry_after_min.load(Relaxed),
            stats.retry_after_max.load(Relaxed),
            stats.retry_after_sum.load(Relaxed) as f64 / rejected as f64,
        );
    }
    println!(
        "re-registrations: {} answered 2xx",
        stats.reregister_ok.load(Relaxed)
    );
    let retx = stats.retransmissions.load(Relaxed);
    let drops = match (drops_before, udp_rcvbuf_errors()) {
        (Some(a), Some(b)) => format!(
            "; {} datagrams dropped on full receive buffers (machine-wide RcvbufErrors)",
            b.saturating_sub(a)
        ),
        _ => String::new(),
    };
    println!(
        "retransmitted: {retx} REGISTERs ({:.2} % of those sent){drops}",
        retx as f64 * 100.0 / stats.registers_sent.load(Relaxed).max(1) as f64
    );
    println!(
        "core saw:   {} REGISTER, {} initial SUBSCRIBE, {} refresh, {} unsubscribe; {} messages over TCP",
        CoreStats::get(&core.stats.registers),
        CoreStats::get(&core.stats.subscribes_initial),
        CoreStats::get(&core.stats.subscribes_refresh),
        CoreStats::get(&core.stats.unsubscribes),
        CoreStats::get(&core.stats.tcp_messages)
    );
    if args.connection_per_ue {
        println!(
            "connections: {} opened (one per UE)",
            stats.connections_opened.load(Relaxed)
        );
    }
    println!("latency:    REGISTER→200 p50 {} µs p99 {} µs; SUBSCRIBE→NOTIFY answered p50 {} µs p99 {} µs", pct(&reg_lat, 0.5), pct(&reg_lat, 0.99), pct(&sub_lat, 0.5), pct(&sub_lat, 0.99));
    if let (Some((c0, _)), Some((c1, _))) = (self_before, proc_usage("self")) {
        println!("loadgen cpu: {}", c1.since(c0).per_registration(ok));
    }
    if let (Some((c0, _)), Some((c1, rss))) = (gw_before, gw_pid.as_deref().and_then(proc_usage)) {
        println!(
            "gateway cpu: {}, rss {:.1} MiB",
            c1.since(c0).per_registration(ok),
            rss as f64 / 1048576.0
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sustained_rate_leaves_out_the_first_second_and_the_tail() {
        // 10 s offered; ticks 11 and 12 are the drain after the offer ended.
        let ticks = [
            900, 2900, 4900, 6900, 8900, 10900, 12900, 14900, 16900, 18900, 20000, 20000,
        ];
        assert_eq!(sustained_rate(&ticks, 10), Some(2000.0));
        assert_eq!(sustained_rate(&ticks[..3], 10), Some(2000.0));
        assert_eq!(sustained_rate(&ticks[..1], 10), None);
        assert_eq!(sustained_rate(&ticks, 1), None);
    }

    #[test]
    fn cpu_time_is_split_into_user_and_kernel_per_registration() {
        let before = CpuTime {
            user: 1.0,
            system: 2.0,
        };
        let after = CpuTime {
            user: 1.5,
            system: 3.5,
        };
        assert_eq!(
            after.since(before).per_registration(100_000),
            "2.00 s (20.0 µs per registration: 5.0 user + 15.0 kernel)"
        );
        let (own, _) = proc_usage("self").expect("this process's /proc/self/stat");
        assert!(own.user >= 0.0 && own.system >= 0.0 && own.total() >= own.user);
    }

    #[test]
    fn udp_drop_counter_is_read_from_proc() {
        // Linux always has the Udp: lines with RcvbufErrors.
        assert!(udp_rcvbuf_errors().is_some());
    }
}
