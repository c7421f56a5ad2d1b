//! The admin HTTP server: a deliberately small HTTP/1.1 server on tokio (GET and HEAD only,
//! keep-alive, bounded request heads, read deadlines) serving
//!
//! | route                    | what                                                           |
//! |--------------------------|----------------------------------------------------------------|
//! | `/metrics`               | the `metrics` recorder, Prometheus text format                 |
//! | `/metrics/subscriptions` | one series per live subscription, up to the cap (`render`)     |
//! | `/api/subscriptions`     | JSON [`SubscriptionPage`]; `trunk_group`, `pui_prefix`, `state`, `offset`, `limit` |
//! | `/api/stats`             | JSON [`StatsSnapshot`](super::exposition::StatsSnapshot) of `/metrics` |
//! | `/healthz`, `/readyz`    | liveness (200 while the SIP task lives) and readiness (200 once `ready` is set) |
//!
//! Owns: admin sockets, HTTP framing and routing. Never: subscription state — rows are asked
//! for over the [`AdminQuery`] channel, a page at a time, so the gateway task answers between
//! SIP messages and never holds a lock for us.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use tokio::time::timeout_at;

use super::http::{self, QueryError, RequestHead};
use super::render::{SubscriptionRenderer, TEXT_FORMAT};
use super::{exposition, names, AdminQuery, SubscriptionFilter, SubscriptionPage};

pub use super::recorder::{
    describe_metrics, install_recorder, recorder_builder, set_build_info, spawn_upkeep,
    RecorderError,
};

/// Default number of rows per `AdminQuery` page while rendering `/metrics/subscriptions`.
pub const CHUNK_ROWS: usize = 10_000;
/// Default and maximum `limit` of `/api/subscriptions`.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

const JSON: &str = "application/json";
const PLAIN: &str = "text/plain; charset=utf-8";

/// Timeouts and bounds of the admin server.
#[derive(Debug, Clone)]
pub struct AdminLimits {
    /// Deadline for a whole request head to arrive (also the keep-alive idle timeout).
    pub read_timeout: Duration,
    /// Deadline for writing one response.
    pub write_timeout: Duration,
    /// How long to wait for the gateway to answer one `AdminQuery`.
    pub query_timeout: Duration,
    /// Connections served at once; further ones are closed on accept.
    pub max_connections: usize,
    /// Requests on one keep-alive connection before we close it.
    pub max_requests_per_connection: usize,
    /// Rows per `AdminQuery` page while rendering `/metrics/subscriptions`.
    pub chunk_rows: usize,
}

impl Default for AdminLimits {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
            query_timeout: Duration::from_secs(5),
            max_connections: 128,
            max_requests_per_connection: 1000,
            chunk_rows: CHUNK_ROWS,
        }
    }
}

/// Everything the server needs.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// Handle of the installed recorder (see [`install_recorder`]).
    pub handle: PrometheusHandle,
    /// Where to ask the gateway for subscription rows.
    pub queries: mpsc::Sender<AdminQuery>,
    /// Most per-subscription series on `/metrics/subscriptions`.
    pub cap: usize,
    /// `/readyz` answers 200 once this is true.
    pub ready: Arc<AtomicBool>,
    /// `/healthz` answers 200 while this is true: it turns false when the SIP task died.
    pub alive: Arc<AtomicBool>,
    pub limits: AdminLimits,
}

impl AdminState {
    /// State with default limits and `ready` false.
    pub fn new(handle: PrometheusHandle, queries: mpsc::Sender<AdminQuery>, cap: usize) -> Self {
        Self {
            handle,
            queries,
            cap,
            ready: Arc::new(AtomicBool::new(false)),
            alive: Arc::new(AtomicBool::new(true)),
            limits: AdminLimits::default(),
        }
    }
}

/// Why the gateway could not answer an admin query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The query channel or the reply was dropped: the gateway task is gone (503).
    #[error("the gateway task is not running")]
    GatewayGone,
    /// No answer within `query_timeout` (504).
    #[error("the gateway did not answer within {0:?}")]
    GatewayTimeout(Duration),
}

impl AdminError {
    fn status(&self) -> u16 {
        match self {
            AdminError::GatewayGone => 503,
            AdminError::GatewayTimeout(_) => 504,
        }
    }
}

/// Serves admin HTTP on `listener` until `shutdown` completes; connections still open then get
/// one second to finish.
pub async fn serve(listener: TcpListener, state: AdminState, shutdown: impl Future) {
    let state = Arc::new(state);
    let permits = Arc::new(Semaphore::new(state.limits.max_connections.max(1)));
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "admin: too many connections, closing");
                        continue;
                    };
                    let state = state.clone();
                    conns.spawn(async move {
                        connection(stream, &state).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "admin: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
}

enum HeadOutcome {
    Head(usize),
    /// EOF or idle timeout before any byte of a request: close quietly.
    Closed,
    /// Part of a request arrived, then the deadline passed (408).
    Timeout,
    TooLarge,
}

async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>, limit: Duration) -> HeadOutcome {
    let deadline = tokio::time::Instant::now() + limit;
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(n) = http::head_end(buf) {
            return HeadOutcome::Head(n);
        }
        if buf.len() > http::MAX_HEAD_BYTES {
            return HeadOutcome::TooLarge;
        }
        match timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return HeadOutcome::Closed,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) if buf.iter().all(u8::is_ascii_whitespace) => return HeadOutcome::Closed,
            Err(_) => return HeadOutcome::Timeout,
        }
    }
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
    allow: bool,
}

impl Response {
    fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type,
            body: body.into(),
            allow: false,
        }
    }

    fn error(status: u16, detail: impl std::fmt::Display) -> Self {
        Self::new(
            status,
            PLAIN,
            format!("{} {}: {detail}\n", status, http::reason(status)),
        )
    }
}

async fn connection(mut stream: TcpStream, state: &AdminState) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    for served in 1.. {
        let (resp, head_only, keep_alive) =
            match read_head(&mut stream, &mut buf, state.limits.read_timeout).await {
                HeadOutcome::Closed => return,
                HeadOutcome::Timeout => (
                    Response::error(408, "request head incomplete"),
                    false,
                    false,
                ),
                HeadOutcome::TooLarge => (
                    Response::error(431, http::RequestError::HeadTooLarge),
                    false,
                    false,
                ),
                HeadOutcome::Head(n) => {
                    let parsed = http::parse_head(&buf[..n]);
                    buf.drain(..n);
                    match parsed {
                        Err(e) => (Response::error(e.status(), &e), false, false),
                        Ok(head) => {
                            let resp = route(state, &head).await;
                            // Request bodies are never read: close rather than misframe.
                            let keep = head.keep_alive
                                && !head.has_body
                                && served < state.limits.max_requests_per_connection;
                            (resp, head.method == "HEAD", keep)
                        }
                    }
                }
            };
        let extra: &[(&str, &str)] = if resp.allow {
            &[("Allow", "GET, HEAD")]
        } else {
            &[]
        };
        let head = http::response_head(
            resp.status,
            resp.content_type,
            resp.body.len(),
            keep_alive,
            extra,
        );
        let write = async {
            stream.write_all(head.as_bytes()).await?;
            if !head_only {
                stream.write_all(resp.body.as_bytes()).await?;
            }
            stream.flush().await
        };
        match tokio::time::timeout(state.limits.write_timeout, write).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        if !keep_alive {
            linger_close(stream).await;
            return;
        }
    }
}

/// Half-closes and drains briefly, so a client that sent more than we read still gets the
/// response instead of a reset.
async fn linger_close(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let mut drained = 0;
        while drained < 64 * 1024 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

async fn route(state: &AdminState, head: &RequestHead) -> Response {
    let name = match head.path.as_str() {
        "/metrics" => "metrics",
        "/metrics/subscriptions" => "subscriptions",
        "/api/subscriptions" => "api_subscriptions",
        "/api/registrations" => "api_registrations",
        "/api/stats" => "api_stats",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        _ => "other",
    };
    let resp = if name == "other" {
        Response::error(404, "no such resource")
    } else if head.method != "GET" && head.method != "HEAD" {
        Response {
            allow: true,
            ..Response::error(405, "only GET and HEAD")
        }
    } else {
        match name {
            "metrics" => Response::new(200, TEXT_FORMAT, super::recorder::render(&state.handle)),
            "subscriptions" => match scrape_subscriptions(state).await {
                Ok(body) => Response::new(200, TEXT_FORMAT, body),
                Err(e) => Response::error(e.status(), e),
            },
            "api_subscriptions" => api_subscriptions(state, head.query.as_deref()).await,
            "api_registrations" => api_registrations(state, head.query.as_deref()).await,
            "api_stats" => {
                let snap = exposition::parse(&super::recorder::render(&state.handle));
                json(&snap)
            }
            "healthz" if state.alive.load(Ordering::Relaxed) => Response::new(200, PLAIN, "ok\n"),
            "healthz" => Response::new(503, PLAIN, "the SIP task is dead\n"),
            _ => {
                if state.ready.load(Ordering::Relaxed) {
                    // Still 200 while Redis does not answer: the gateway serves from memory, and
                    // moving the address would not help (the other node uses the same Redis).
                    let body = match crate::store::redis::connected() {
                        Some(true) => "ready\nstate: redis connected\n",
                        Some(false) => "ready\nstate: redis not answering; serving from memory\n",
                        None => "ready\n",
                    };
                    Response::new(200, PLAIN, body)
                } else {
                    Response::new(503, PLAIN, "not ready\n")
                }
            }
        }
    };
    metrics::counter!(names::ADMIN_REQUESTS, "route" => name, "status" => status_label(resp.status))
        .increment(1);
    resp
}

fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        404 => "404",
        405 => "405",
        503 => "503",
        504 => "504",
        _ => "other",
    }
}

fn json<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(mut body) => {
            body.push('\n');
            Response::new(200, JSON, body)
        }
        Err(e) => Response::error(500, e),
    }
}

/// Asks the gateway for one page.
async fn ask(
    state: &AdminState,
    filter: SubscriptionFilter,
    offset: usize,
    after: Option<u64>,
    limit: usize,
) -> Result<SubscriptionPage, AdminError> {
    query(state, |reply| AdminQuery::Subscriptions {
        filter,
        offset,
        after,
        limit,
        reply,
    })
    .await
}

/// Asks the gateway task a question and waits (bounded) for the answer.
async fn query<T>(
    state: &AdminState,
    make: impl FnOnce(oneshot::Sender<T>) -> AdminQuery,
) -> Result<T, AdminError> {
    let deadline = tokio::time::Instant::now() + state.limits.query_timeout;
    let (reply, rx) = oneshot::channel();
    let query = make(reply);
    let timeout = AdminError::GatewayTimeout(state.limits.query_timeout);
    match timeout_at(deadline, state.queries.send(query)).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return Err(AdminError::GatewayGone),
        Err(_) => return Err(timeout),
    }
    match timeout_at(deadline, rx).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(_)) => Err(AdminError::GatewayGone),
        Err(_) => Err(timeout),
    }
}

/// Collects up to `cap` rows page by page and renders them (SPEC §8), recording the time taken
/// in the scrape-duration histogram.
pub async fn scrape_subscriptions(state: &AdminState) -> Result<String, AdminError> {
    let started = Instant::now();
    let cap = state.cap;
    let chunk = state.limits.chunk_rows.max(1);
    let mut renderer: Option<SubscriptionRenderer> = None;
    let mut offset = 0;
    let mut total;
    let mut last_id: Option<u64> = None;
    loop {
        let listed = renderer.as_ref().map_or(0, SubscriptionRenderer::listed);
        let want = chunk.min(cap - listed);
        let page = ask(state, SubscriptionFilter::default(), offset, last_id, want).await?;
        total = page.total;
        let r = renderer.get_or_insert_with(|| SubscriptionRenderer::with_capacity(total.min(cap)));
        let got = page.rows.len();
        for row in &page.rows {
            // Pages are in id order; skipping non-increasing ids keeps series unique when the
            // set changed between pages.
            if r.listed() < cap && last_id.is_none_or(|last| row.id > last) {
                r.push_row(row);
                last_id = Some(row.id);
            }
        }
        offset += got;
        if got < want || want == 0 || offset >= total || r.listed() >= cap {
            break;
        }
    }
    let body = renderer
        .unwrap_or_else(|| SubscriptionRenderer::with_capacity(0))
        .finish(total, cap);
    metrics::histogram!(names::SCRAPE_SECONDS).record(started.elapsed().as_secs_f64());
    Ok(body)
}

/// Parameters of `/api/subscriptions`.
fn list_params(query: Option<&str>) -> Result<(SubscriptionFilter, usize, usize), QueryError> {
    let mut filter = SubscriptionFilter::default();
    let (mut offset, mut limit) = (0, DEFAULT_LIMIT);
    for (k, v) in http::parse_query(query.unwrap_or(""))? {
        let number = |name: &'static str| -> Result<usize, QueryError> {
            v.trim()
                .parse()
                .map_err(|_| QueryError::NotANumber { name })
        };
        match k.as_str() {
            "trunk_group" => filter.trunk_group = Some(v.clone()).filter(|s| !s.is_empty()),
            "pui_prefix" => filter.pui_prefix = Some(v.clone()).filter(|s| !s.is_empty()),
            "state" => filter.state = Some(v.clone()).filter(|s| !s.is_empty()),
            "offset" => offset = number("offset")?,
            "limit" => limit = number("limit")?.min(MAX_LIMIT),
            _ => return Err(QueryError::UnknownParameter(k.chars().take(40).collect())),
        }
    }
    Ok((filter, offset, limit))
}

async fn api_subscriptions(state: &AdminState, query: Option<&str>) -> Response {
    let (filter, offset, limit) = match list_params(query) {
        Ok(p) => p,
        Err(e) => return Response::error(400, e),
    };
    match ask(state, filter, offset, None, limit).await {
        Ok(page) => json(&page),
        Err(e) => Response::error(e.status(), e),
    }
}

/// `/api/registrations?pui=<default PUI>`: one registration, or 404.
async fn api_registrations(state: &AdminState, q: Option<&str>) -> Response {
    let pairs = match http::parse_query(q.unwrap_or("")) {
        Ok(p) => p,
        Err(e) => return Response::error(400, e),
    };
    let mut pui = None;
    for (k, v) in pairs {
        match k.as_str() {
            "pui" => pui = Some(v),
            _ => {
                let name = k.chars().take(40).collect();
                return Response::error(400, QueryError::UnknownParameter(name));
            }
        }
    }
    let Some(default_pui) = pui.filter(|p| !p.is_empty()) else {
        return Response::error(
            400,
            "missing parameter `pui` (the default public user identity)",
        );
    };
    match query(state, |reply| AdminQuery::Registration {
        default_pui,
        reply,
    })
    .await
    {
        Ok(Some(reg)) => json(&reg),
        Ok(None) => Response::error(404, "no registration for this default PUI"),
        Err(e) => Response::error(e.status(), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_parameters() {
        let (f, o, l) = list_params(Some("trunk_group=a%20b&state=&offset=5&limit=99999")).unwrap();
        assert_eq!(f.trunk_group.as_deref(), Some("a b"));
        assert_eq!(f.state, None);
        assert_eq!((o, l), (5, MAX_LIMIT));
        assert_eq!(list_params(None).unwrap().2, DEFAULT_LIMIT);
        assert!(matches!(
            list_params(Some("limit=-1")),
            Err(QueryError::NotANumber { name: "limit" })
        ));
        assert!(matches!(
            list_params(Some("trunkgroup=x")),
            Err(QueryError::UnknownParameter(_))
        ));
    }
}
