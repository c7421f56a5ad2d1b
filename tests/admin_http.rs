//! The admin HTTP server over real loopback sockets, with a fake gateway answering
//! `AdminQuery::Subscriptions` from a fixed list. The global recorder is installed once for the
//! whole test binary.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use regevent_gw::stats::admin::{self, AdminState};
use regevent_gw::stats::query::spawn_static_responder;
use regevent_gw::stats::{client, names, SubscriptionFilter, SubscriptionPage, SubscriptionRow};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| admin::install_recorder().expect("first install"))
        .clone()
}

fn row(id: u64) -> SubscriptionRow {
    SubscriptionRow {
        id,
        package: "reg".into(),
        default_pui: format!("sip:user{id:04}@ims.example.net"),
        trunk_group: if id.is_multiple_of(2) { "even" } else { "odd" }.into(),
        state: if id.is_multiple_of(3) {
            "pending"
        } else {
            "active"
        }
        .into(),
        call_id: format!("c{id}@gw"),
        registrar: "sip:scscf.ims.example.net".into(),
        domain: "ims.example.net".into(),
        requested_expiry_s: 3660,
        granted_expiry_s: Some(3600),
        expires_at_unix: Some(1_700_003_600.0 + id as f64),
        next_refresh_unix: Some(1_700_003_000.0 + id as f64),
        created_unix: 1_700_000_000.0,
        last_notify_version: Some(id),
        implicit_puis: 1,
    }
}

fn rows(n: u64) -> Vec<SubscriptionRow> {
    (1..=n).map(row).collect()
}

/// Serves `rows` with the given cap; returns the address and the state (for `ready`).
async fn start(
    rows: Vec<SubscriptionRow>,
    cap: usize,
    tweak: impl FnOnce(&mut AdminState),
) -> (SocketAddr, AdminState) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut state = AdminState::new(handle(), spawn_static_responder(rows), cap);
    state.limits.chunk_rows = 37;
    tweak(&mut state);
    tokio::spawn(admin::serve(
        listener,
        state.clone(),
        std::future::pending::<()>(),
    ));
    (addr, state)
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

async fn request(addr: SocketAddr, raw: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .unwrap();
    parse_reply(&buf)
}

fn parse_reply(buf: &[u8]) -> Reply {
    let text = String::from_utf8(buf.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head[9..12].parse().unwrap();
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    request(addr, req.as_bytes()).await
}

fn info_lines(body: &str) -> Vec<&str> {
    body.lines()
        .filter(|l| l.starts_with("regevent_subscription_info{"))
        .collect()
}

fn gauge(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

#[tokio::test]
async fn metrics_has_build_info_and_descriptions() {
    let (addr, _) = start(vec![], 10, |_| {}).await;
    let r = get(addr, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.head.contains("Content-Type: text/plain; version=0.0.4"),
        "{}",
        r.head
    );
    let line = format!(
        "{}{{version=\"{}\"}} 1",
        names::BUILD_INFO,
        env!("CARGO_PKG_VERSION")
    );
    assert!(r.body.contains(&line), "{}", r.body);
    assert!(r.body.contains("# HELP regevent_build_info "), "{}", r.body);
}

/// A gauge set to NaN is retired (the core does so for a trunk group a reload removed, once
/// nothing lives on it): `/metrics` and `/api/stats` leave it out, other series of the same
/// gauge stay.
#[tokio::test]
async fn retired_gauges_are_left_out() {
    let (addr, _) = start(vec![], 10, |_| {}).await;
    let name = names::REGISTRATIONS_LIVE;
    metrics::gauge!(name, "trunk_group" => "admin-http-kept").set(3.0);
    metrics::gauge!(name, "trunk_group" => "admin-http-gone").set(5.0);
    let r = get(addr, "/metrics").await;
    assert!(
        r.body.contains("trunk_group=\"admin-http-gone\"} 5"),
        "{}",
        r.body
    );
    metrics::gauge!(name, "trunk_group" => "admin-http-gone").set(f64::NAN);
    let r = get(addr, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("trunk_group=\"admin-http-kept\"} 3"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("admin-http-gone"), "{}", r.body);
    assert!(!r.body.contains("NaN"), "{}", r.body);
    let r = get(addr, "/api/stats").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("admin-http-kept"), "{}", r.body);
    assert!(!r.body.contains("admin-http-gone"), "{}", r.body);
    // Set again, it is back.
    metrics::gauge!(name, "trunk_group" => "admin-http-gone").set(0.0);
    let r = get(addr, "/metrics").await;
    assert!(
        r.body.contains("trunk_group=\"admin-http-gone\"} 0"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn subscription_series_under_the_cap() {
    let (addr, _) = start(rows(100), 1000, |_| {}).await;
    let r = get(addr, "/metrics/subscriptions").await;
    assert_eq!(r.status, 200);
    let info = info_lines(&r.body);
    assert_eq!(info.len(), 100);
    assert!(info[0].starts_with("regevent_subscription_info{id=\"1\",default_pui=\"sip:user0001@ims.example.net\",trunk_group=\"odd\",state=\"active\",call_id=\"c1@gw\",registrar=\"sip:scscf.ims.example.net\",domain=\"ims.example.net\",package=\"reg\"} 1"), "{}", info[0]);
    assert_eq!(
        r.body
            .matches("\nregevent_subscription_expires_timestamp_seconds{")
            .count(),
        100
    );
    assert_eq!(gauge(&r.body, names::SUB_LISTED), 100.0);
    assert_eq!(gauge(&r.body, names::SUB_OMITTED), 0.0);
    assert_eq!(gauge(&r.body, names::SUB_CAP), 1000.0);
    assert!(r.body.contains("# TYPE regevent_subscription_info gauge\n"));

    // The scrape was timed into the histogram on /metrics.
    let m = get(addr, "/metrics").await;
    assert!(
        m.body
            .contains("regevent_admin_scrape_duration_seconds_bucket{le=\"0.001\"}"),
        "{}",
        m.body
    );
}

#[tokio::test]
async fn subscription_series_over_the_cap() {
    let (addr, _) = start(rows(250), 100, |_| {}).await;
    let r = get(addr, "/metrics/subscriptions").await;
    assert_eq!(r.status, 200);
    let info = info_lines(&r.body);
    assert_eq!(info.len(), 100);
    assert!(info[99].starts_with("regevent_subscription_info{id=\"100\","));
    assert_eq!(gauge(&r.body, names::SUB_LISTED), 100.0);
    assert_eq!(gauge(&r.body, names::SUB_OMITTED), 150.0);
    assert_eq!(gauge(&r.body, names::SUB_CAP), 100.0);
}

#[tokio::test]
async fn label_values_are_escaped() {
    let mut r1 = row(1);
    r1.default_pui = "sip:\"quoted\"\\x@ims.example.net".into();
    r1.call_id = "a\nb".into();
    let (addr, _) = start(vec![r1.clone()], 10, |_| {}).await;
    let r = get(addr, "/metrics/subscriptions").await;
    assert!(
        r.body
            .contains("default_pui=\"sip:\\\"quoted\\\"\\\\x@ims.example.net\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("call_id=\"a\\nb\""), "{}", r.body);
    // JSON carries the value unchanged.
    let j = get(addr, "/api/subscriptions").await;
    let page: SubscriptionPage = serde_json::from_str(&j.body).unwrap();
    assert_eq!(page.rows, vec![r1]);
}

#[tokio::test]
async fn api_subscriptions_filters_and_pages() {
    let (addr, _) = start(rows(300), 10, |_| {}).await;
    let page = |path: &'static str| async move {
        let r = get(addr, path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(r.head.contains("Content-Type: application/json"));
        serde_json::from_str::<SubscriptionPage>(&r.body).unwrap()
    };
    // Defaults: offset 0, limit 100.
    let all = page("/api/subscriptions").await;
    assert_eq!((all.total, all.offset, all.rows.len()), (300, 0, 100));

    let even = page("/api/subscriptions?trunk_group=even&limit=1000").await;
    assert_eq!((even.total, even.rows.len()), (150, 150));
    assert!(even.rows.iter().all(|r| r.trunk_group == "even"));

    let pending = page("/api/subscriptions?state=pending&trunk_group=odd&limit=1000").await;
    assert_eq!(pending.total, 50); // odd multiples of 3 up to 300
    assert!(pending
        .rows
        .iter()
        .all(|r| r.state == "pending" && r.id % 2 == 1));

    // Percent-encoded prefix "sip:user01" → ids 100..=199.
    let prefix = page("/api/subscriptions?pui_prefix=sip%3Auser01&offset=90&limit=20").await;
    assert_eq!((prefix.total, prefix.offset), (100, 90));
    assert_eq!(
        prefix.rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        (190..=199).collect::<Vec<_>>()
    );

    let r = get(addr, "/api/subscriptions?limit=abc").await;
    assert_eq!(r.status, 400);
    let r = get(addr, "/api/subscriptions?nope=1").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("unknown query parameter"), "{}", r.body);
}

#[tokio::test]
async fn api_stats_is_structured_json() {
    let (addr, _) = start(vec![], 10, |_| {}).await;
    metrics::counter!(names::SUBSCRIBES_SENT, "kind" => "initial", "trunk_group" => "t")
        .increment(2);
    let r = get(addr, "/api/stats").await;
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["gauges"][names::BUILD_INFO][0]["value"], 1.0);
    let sent = v["counters"][names::SUBSCRIBES_SENT].as_array().unwrap();
    assert!(sent
        .iter()
        .any(|s| s["labels"]["trunk_group"] == "t" && s["value"].as_f64().unwrap() >= 2.0));
}

#[tokio::test]
async fn health_and_readiness() {
    let (addr, state) = start(vec![], 10, |_| {}).await;
    let h = get(addr, "/healthz").await;
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    assert_eq!(get(addr, "/readyz").await.status, 503);
    state.ready.store(true, Ordering::Relaxed);
    assert_eq!(get(addr, "/readyz").await.status, 200);
}

#[tokio::test]
async fn errors_404_405_400_431() {
    let (addr, _) = start(vec![], 10, |_| {}).await;
    assert_eq!(get(addr, "/nope").await.status, 404);

    let r = request(
        addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    )
    .await;
    assert_eq!(r.status, 405);
    assert!(r.head.contains("Allow: GET, HEAD"));

    let r = request(addr, b"GET /metrics\r\n\r\n").await;
    assert_eq!(r.status, 400);

    let mut big = b"GET /metrics HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..400 {
        big.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(20)).as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    assert!(big.len() > 8192);
    let r = request(addr, &big).await;
    assert_eq!(r.status, 431);
}

#[tokio::test]
async fn registration_lookup_answers_404_for_an_unknown_pui_and_400_without_one() {
    let (addr, _) = start(vec![], 10, |_| {}).await;
    let r = get(
        addr,
        "/api/registrations?pui=sip%3Anobody%40ims.example.net",
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("no registration"), "{}", r.body);
    let r = get(addr, "/api/registrations").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("pui"), "{}", r.body);
    let r = get(addr, "/api/registrations?pui=x&bogus=1").await;
    assert_eq!(r.status, 400);
    let admin = addr.to_string();
    let found = tokio::task::spawn_blocking(move || {
        client::fetch_registration(&admin, "sip:nobody@ims.example.net")
    })
    .await
    .unwrap()
    .expect("a 404 is an answer, not an error");
    assert_eq!(found, None);
}

#[tokio::test]
async fn head_and_keep_alive() {
    let (addr, _) = start(rows(3), 10, |_| {}).await;
    let r = request(
        addr,
        b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.head.contains("Content-Length: 3"));
    assert_eq!(r.body, "");

    // Two pipelined requests on one connection, the second closing it.
    let r = request(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.head.contains("Connection: keep-alive"));
    assert!(
        r.body.starts_with("ok\n") && r.body.contains("HTTP/1.1 503"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn silent_client_times_out_without_blocking_others() {
    let (addr, _) = start(vec![], 10, |s| {
        s.limits.read_timeout = Duration::from_millis(3000);
    })
    .await;
    let silent = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial.write_all(b"GET /metr").await.unwrap();

    // Others are served meanwhile: the answer comes while the silent client is still waiting
    // for its read timeout (its connection open, nothing to read).
    let r = get(addr, "/healthz").await;
    assert_eq!(r.status, 200);
    let mut probe = [0u8; 1];
    assert!(
        matches!(silent.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the silent client was dropped before /healthz was served (blocked behind it?)"
    );

    // The silent one is closed without a response, the partial one gets 408.
    let mut silent = silent;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), silent.read_to_end(&mut buf))
        .await
        .expect("silent client closed")
        .unwrap();
    assert!(buf.is_empty());
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), partial.read_to_end(&mut buf))
        .await
        .expect("partial client closed")
        .unwrap();
    assert_eq!(parse_reply(&buf).status, 408);
}

#[tokio::test]
async fn gateway_gone_is_503() {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(rx);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AdminState::new(handle(), tx, 10);
    tokio::spawn(admin::serve(listener, state, std::future::pending::<()>()));
    assert_eq!(get(addr, "/metrics/subscriptions").await.status, 503);
    assert_eq!(get(addr, "/api/subscriptions").await.status, 503);
    assert_eq!(get(addr, "/metrics").await.status, 200);
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AdminState::new(handle(), spawn_static_responder(vec![]), 10);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(admin::serve(listener, state, stopped));
    assert_eq!(get(addr, "/healthz").await.status, 200);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(3), server)
        .await
        .expect("server stops")
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_client_fetches_and_prints() {
    let (addr, _) = start(rows(120), 10, |_| {}).await;
    let addr = addr.to_string();
    tokio::task::spawn_blocking(move || {
        let filter = SubscriptionFilter {
            trunk_group: Some("even".into()),
            ..Default::default()
        };
        let page = client::fetch_subscriptions(&addr, &filter, 1000).unwrap();
        assert_eq!((page.total, page.rows.len()), (60, 60));
        let first = client::fetch_subscriptions(&addr, &SubscriptionFilter::default(), 7).unwrap();
        assert_eq!((first.total, first.rows.len()), (120, 7));

        let mut out = Vec::new();
        client::print_subscriptions_table(&first, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("PUI "), "{text}");
        assert_eq!(text.lines().count(), 1 + 7 + 1);

        let stats = client::fetch_stats(&addr).unwrap();
        let mut out = Vec::new();
        client::print_stats_table(&stats, &mut out).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("regevent_build_info"));

        let err = client::http_get(&addr, "/nope").unwrap_err();
        assert!(err.to_string().contains("404"), "{err}");
    })
    .await
    .unwrap();
}
