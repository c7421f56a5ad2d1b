//! Wiring: bind the SIP listeners, start the gateway task and the admin HTTP server. Used by
//! `regevent-gw run`, the demo, the load generator and the socket-level tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::core::Core;
use crate::sip::Transport;
use crate::stats::{admin, AdminQuery};
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
    gateway_task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// The first bound address of a transport.
    pub fn sip_addr(&self, t: Transport) -> Option<SocketAddr> {
        self.sip_addrs
            .iter()
            .find(|(x, _)| *x == t)
            .map(|(_, a)| *a)
    }
    /// Stop the admin server and the gateway task.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        self.gateway_task.abort();
        let _ = self.gateway_task.await;
    }
}

/// Bind and start. `seed` fixes tags/Call-IDs (tests); `None` takes one from the OS.
pub async fn start(
    cfg: Arc<Config>,
    prom: PrometheusHandle,
    seed: Option<u64>,
) -> anyhow::Result<Running> {
    let seed = seed.unwrap_or_else(os_seed);
    let gw = Core::new(cfg.core_settings(), seed).map_err(anyhow::Error::msg)?;
    let bound = transport::bind(&cfg).await?;
    let sip_addrs = bound.local_addrs.clone();
    let (handle, gateway_task) = transport::start(bound, gw, cfg.sip.coalesce);

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
    Ok(Running {
        events: handle.events,
        sip_addrs,
        admin_addr,
        ready,
        shutdown,
        gateway_task,
    })
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
