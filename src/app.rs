//! Wiring: bind the SIP listeners, start the gateway task and the admin HTTP server. Used by
//! `regevent-gw run`, the demo, the load generator and the socket-level tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::{mpsc, watch};

use std::time::{Instant, SystemTime};

use crate::config::{Config, StateBackend};
use crate::core::Core;
use crate::names;
use crate::sip::Transport;
use crate::stats::{admin, AdminQuery};
use crate::store::{self, Persister};
use crate::transport::{self, Event};

/// A running gateway.
#[derive(Debug)]
pub struct Running {
    pub events: mpsc::Sender<Event>,
    /// Bound SIP addresses in `sip.listen` order.
    pub sip_addrs: Vec<(Transport, SocketAddr)>,
    pub admin_addr: SocketAddr,
    pub ready: Arc<AtomicBool>,
    shutdown: watch::Sender<bool>,
    /// Watches the SIP task; ends with it.
    monitor: tokio::task::JoinHandle<()>,
    /// Set by `stop`: the SIP task ending is then expected.
    stopping: Arc<AtomicBool>,
    /// Why the SIP task ended on its own (it panicked, or returned), once it has.
    died: watch::Receiver<Option<&'static str>>,
}

impl Running {
    /// The first bound address of a transport.
    pub fn sip_addr(&self, t: Transport) -> Option<SocketAddr> {
        self.sip_addrs
            .iter()
            .find(|(x, _)| *x == t)
            .map(|(_, a)| *a)
    }
    /// Stop: `/readyz` turns 503, the SIP task commits the state and ends (given at most
    /// `SHUTDOWN_GRACE`), then the admin server stops.
    pub async fn stop(self) {
        self.ready.store(false, Ordering::Relaxed);
        self.stopping.store(true, Ordering::Relaxed);
        let _ = self.events.send(Event::Shutdown).await;
        let mut task = self.monitor;
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
            .await
            .is_err()
        {
            tracing::error!("the SIP task did not stop in time");
            task.abort();
        }
        let _ = self.shutdown.send(true);
    }

    /// Resolves if the SIP task ends without [`Running::stop`] (a panic, say), with what
    /// happened to it. By then `/readyz` and `/healthz` answer 503: the caller must end the
    /// process with a failure status (SPEC: fail loud; systemd or Kubernetes restart it, and
    /// the durable state makes that a short blip), not live on without SIP.
    pub async fn failed(&self) -> &'static str {
        let mut died = self.died.clone();
        let why = match died.wait_for(Option::is_some).await {
            Ok(why) => *why,
            // The monitor is gone without a verdict: only after `stop`.
            Err(_) => None,
        };
        match why {
            Some(why) => why,
            None => std::future::pending().await,
        }
    }
}

/// Await the SIP task; if it ends while nobody stopped it, say so: `/readyz` and `/healthz`
/// turn 503, an error is logged, and `died` carries why.
fn monitor(
    task: tokio::task::JoinHandle<()>,
    stopping: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
    alive: Arc<AtomicBool>,
) -> (
    tokio::task::JoinHandle<()>,
    watch::Receiver<Option<&'static str>>,
) {
    let (tx, rx) = watch::channel(None);
    let handle = tokio::spawn(async move {
        let why = match task.await {
            Ok(()) => "ended",
            Err(e) if e.is_panic() => "panicked",
            Err(_) => "was cancelled",
        };
        if stopping.load(Ordering::Relaxed) {
            return;
        }
        ready.store(false, Ordering::Relaxed);
        alive.store(false, Ordering::Relaxed);
        tracing::error!("the SIP task {why}: no SIP is served any more; stopping");
        let _ = tx.send(Some(why));
    });
    (handle, rx)
}

/// The most `Running::stop` waits for the SIP task: what is in flight finishes (at most 2 s),
/// then the state's last commit (at most 2.5 s); SIGTERM to exit stays under 5 s (SPEC §10).
/// Only a task that ignores both bounds meets this one.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Bind and start. `seed` fixes tags/Call-IDs (tests); `None` takes one from the OS.
pub async fn start(
    cfg: Arc<Config>,
    prom: PrometheusHandle,
    seed: Option<u64>,
) -> anyhow::Result<Running> {
    let seed = seed.unwrap_or_else(os_seed);
    let mut gw = Core::new(cfg.core_settings(), seed).map_err(anyhow::Error::msg)?;
    // State first: everything is back before the listeners open.
    let persister = restore(&cfg, &mut gw)?;
    let bound = transport::bind(&cfg).await?;
    let sip_addrs = bound.local_addrs.clone();
    let (handle, gateway_task) = transport::start(bound, gw, cfg.sip.coalesce, persister);

    let (qtx, mut qrx) = mpsc::channel::<AdminQuery>(64);
    let events = handle.events.clone();
    tokio::spawn(async move {
        while let Some(q) = qrx.recv().await {
            if events.send(Event::Admin(q)).await.is_err() {
                return;
            }
        }
    });
    // The admin server runs on a thread of its own: rendering a large scrape never delays SIP
    // processing (the gateway task only fills pages of rows between messages).
    let listener = std::net::TcpListener::bind(cfg.admin.listen)
        .map_err(|e| anyhow::anyhow!("cannot bind admin.listen {}: {e}", cfg.admin.listen))?;
    listener.set_nonblocking(true)?;
    let admin_addr = listener.local_addr()?;
    let state = admin::AdminState::new(prom, qtx, cfg.admin.subscription_series_cap);
    let ready = state.ready.clone();
    let alive = state.alive.clone();
    let (shutdown, mut rx) = watch::channel(false);
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return tracing::error!(error = %e, "admin runtime"),
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => return tracing::error!(error = %e, "admin listener"),
                };
                admin::spawn_upkeep(state.handle.clone());
                admin::serve(listener, state, async move {
                    let _ = rx.changed().await;
                })
                .await;
            });
        })?;
    ready.store(true, Ordering::Relaxed);
    tracing::info!(sip = ?sip_addrs, admin = %admin_addr, core = %cfg.sip.core, "regevent-gw running");
    let stopping = Arc::new(AtomicBool::new(false));
    let (monitor, died) = monitor(gateway_task, stopping.clone(), ready.clone(), alive);
    Ok(Running {
        events: handle.events,
        sip_addrs,
        admin_addr,
        ready,
        shutdown,
        monitor,
        stopping,
        died,
    })
}

/// Open the configured store and put its state back into `core`; the persister that keeps the
/// store up to date from then on (`None` with `state.backend = "none"`).
pub fn restore(cfg: &Config, core: &mut Core) -> anyhow::Result<Option<Persister>> {
    match cfg.state.backend {
        StateBackend::None => Ok(None),
        StateBackend::Redis => restore_redis(cfg, core).map(Some),
        StateBackend::Embedded => {
            let began = Instant::now();
            let opened = store::open(&cfg.state.dir)?;
            restore_opened(core, opened, cfg.state.commit, began).map(Some)
        }
    }
}

/// `state.backend = "redis"`: take the lease (a standby waits here, before anything is restored
/// or any listener opens, until the active instance's lease lapses), load every record under the
/// prefix, put them back into `core`.
fn restore_redis(cfg: &Config, core: &mut Core) -> anyhow::Result<Persister> {
    let s = &cfg.state;
    let target =
        store::redis::Target::new(&s.url, s.prefix.as_deref(), &cfg.sip.identity, s.lease)?;
    let lease = store::redis::take_lease(&target, s.standby)?;
    let began = Instant::now();
    let opened = store::redis::open(lease)?;
    restore_opened(core, opened, cfg.state.commit, began)
}

/// Put what `opened` loaded back into `core` (any backend), let the loaded bytes go, start
/// tracking changes, and say what was restored (gauges, one INFO line); the persister that
/// keeps the store up to date from then on.
fn restore_opened(
    core: &mut Core,
    mut opened: store::Opened,
    commit: std::time::Duration,
    began: Instant,
) -> anyhow::Result<Persister> {
    let place = opened.store.place().to_owned();
    let n = opened.loaded.len();
    let restored = restore_loaded(core, &opened.loaded, std::path::Path::new(&place))?;
    // The records borrowed the loaded bytes; restored, those can go.
    opened.loaded.release();
    core.track_changes();
    // Records the core did not take (duplicates, registrations without bindings) would stay in
    // the store for ever: a full copy (a snapshot; in Redis, with the stale keys removed)
    // leaves them behind.
    if restored.skipped > 0 {
        opened.store.want_snapshot();
    }
    let took = began.elapsed();
    metrics::gauge!(names::STATE_RESTORE_SECONDS).set(took.as_secs_f64());
    for (kind, count) in [
        ("registration", restored.registrations),
        ("subscription", restored.subscriptions),
        ("ibcf_dialog", restored.ibcf_dialogs),
    ] {
        metrics::gauge!(names::STATE_RESTORED, "kind" => kind).set(count as f64);
    }
    tracing::info!(
        store = %place,
        records = n,
        registrations = restored.registrations,
        subscriptions = restored.subscriptions,
        ibcf_dialogs = restored.ibcf_dialogs,
        skipped = restored.skipped,
        ms = took.as_millis() as u64,
        "state restored"
    );
    Ok(Persister::new(opened.store, commit))
}

/// Put the stored records back into `core`, decoding each as it goes; the first bad one stops
/// start-up with its key and the problem.
fn restore_loaded(
    core: &mut Core,
    loaded: &store::journal::Loaded,
    place: &std::path::Path,
) -> Result<regevent_proto::core::Restored, store::StoreError> {
    let (keys, values): (Vec<&[u8]>, Vec<&[u8]>) = loaded.entries().unzip();
    core.restore_encoded(transport::now(), SystemTime::now(), &values)
        .map_err(|(i, e)| store::StoreError::record(place, keys[i], &e))
}

/// A seed from the OS (hash-map randomness; no extra crate).
pub fn os_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}
