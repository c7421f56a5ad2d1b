//! The CLI side of the admin API: `regevent-gw subscriptions` and `regevent-gw stats` fetch
//! JSON from a running gateway with a minimal blocking HTTP/1.1 GET client and print it as an
//! aligned table or as JSON.
//!
//! Owns: the client and the table layouts. Never: talking to the gateway in-process. Returns
//! `anyhow` errors, since its only caller is `main`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};

use super::http::percent_encode;
use super::{RegistrationView, SubscriptionFilter, SubscriptionPage, SubscriptionRow};
use crate::config::{Config, ConfigError, ConfigErrors};

/// Where the admin API listens unless told otherwise (SPEC §9; `admin.listen`'s default).
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9464";
/// The variable that overrides `admin.listen` (for the gateway and for these commands).
pub const ADMIN_ENV: &str = "REGEVENT_GW__ADMIN__LISTEN";
/// Rows per request when fetching a long list (the server's maximum `limit`).
const PAGE: usize = super::admin::MAX_LIMIT;
/// Largest response we read.
const MAX_RESPONSE: u64 = 512 * 1024 * 1024;

/// Output format of the sub-commands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

/// Where `subscriptions`, `stats` and `registration` find the gateway's admin API: `explicit`
/// (`--admin`) when given; else `admin.listen` of `config` (`--config FILE`, with the
/// environment overrides the gateway itself applies); else `REGEVENT_GW__ADMIN__LISTEN` (the
/// value of `env_admin`); else [`DEFAULT_ADMIN`]. A gateway listening on every address
/// (`0.0.0.0`, `[::]`) is reached on loopback.
pub fn admin_address(
    explicit: Option<&str>,
    config: Option<&Path>,
    env_admin: Option<&str>,
) -> Result<String, ConfigErrors> {
    if let Some(a) = explicit {
        return Ok(a.to_owned());
    }
    let listen = match (config, env_admin) {
        (Some(file), _) => Config::load(Some(file))?.admin.listen,
        (None, Some(v)) => v.trim().parse::<SocketAddr>().map_err(|_| {
            ConfigErrors(vec![ConfigError {
                file: format!("environment variable {ADMIN_ENV}"),
                key: "admin.listen".into(),
                position: None,
                problem: format!(
                    "invalid address {v:?}: expected IP:PORT such as `{DEFAULT_ADMIN}`"
                ),
            }])
        })?,
        (None, None) => return Ok(DEFAULT_ADMIN.to_owned()),
    };
    Ok(reachable(listen).to_string())
}

/// The address to connect to for a listener on `addr`: loopback for a wildcard address.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// `GET path` from `addr` (`host:port`, optionally `http://host:port`); the body of a 2xx
/// response, an error naming the status otherwise.
pub fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let (status, body) = http_get_any(addr, path)?;
    if !(200..300).contains(&status) {
        let detail = body.lines().next().unwrap_or("").trim();
        bail!("GET {path}: HTTP {status}: {detail}");
    }
    Ok(body)
}

/// `GET path` from `addr`: the status and body, whatever the status.
pub fn http_get_any(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let host = addr
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let targets: Vec<_> = host
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve admin address {host:?}"))?
        .collect();
    let mut last_err = None;
    let mut stream = None;
    for t in &targets {
        match TcpStream::connect_timeout(t, Duration::from_secs(5)) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let mut stream = match (stream, last_err) {
        (Some(s), _) => s,
        (None, Some(e)) => {
            return Err(e).with_context(|| format!("cannot connect to the admin API at {host}"))
        }
        (None, None) => bail!("admin address {host:?} resolves to nothing"),
    };
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: regevent-gw/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the response to GET {path}"))?;
    split_response(&raw)
}

/// Splits a `Connection: close` response into status and body.
fn split_response(raw: &[u8]) -> anyhow::Result<(u16, String)> {
    let end = super::http::head_end(raw).ok_or_else(|| anyhow!("truncated HTTP response"))?;
    let head = std::str::from_utf8(&raw[..end]).context("response head is not UTF-8")?;
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad HTTP status line {:?}", truncate(status_line, 60)))?;
    let mut body = &raw[end..];
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                let n: usize = v.trim().parse().context("bad Content-Length")?;
                if body.len() < n {
                    bail!("response body truncated ({} of {n} bytes)", body.len());
                }
                body = &body[..n];
            }
        }
    }
    let body = String::from_utf8(body.to_vec()).context("response body is not UTF-8")?;
    Ok((status, body))
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Fetches up to `limit` matching subscriptions (several requests when `limit` is above the
/// server's page size). The result has offset 0 and the server's `total`.
pub fn fetch_subscriptions(
    addr: &str,
    filter: &SubscriptionFilter,
    limit: usize,
) -> anyhow::Result<SubscriptionPage> {
    let mut result = SubscriptionPage::default();
    loop {
        let want = (limit - result.rows.len()).min(PAGE);
        let path = subscriptions_path(filter, result.rows.len(), want);
        let body = http_get(addr, &path)?;
        let page: SubscriptionPage =
            serde_json::from_str(&body).context("decoding /api/subscriptions")?;
        let got = page.rows.len();
        result.total = page.total;
        result.rows.extend(page.rows);
        if got < want || want == 0 || result.rows.len() >= limit.min(result.total) {
            return Ok(result);
        }
    }
}

fn subscriptions_path(filter: &SubscriptionFilter, offset: usize, limit: usize) -> String {
    let mut p = format!("/api/subscriptions?offset={offset}&limit={limit}");
    for (key, value) in [
        ("trunk_group", &filter.trunk_group),
        ("pui_prefix", &filter.pui_prefix),
        ("state", &filter.state),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            p.push('&');
            p.push_str(key);
            p.push('=');
            percent_encode(v, &mut p);
        }
    }
    p
}

/// Fetches `/api/stats` (see `exposition` for its shape).
pub fn fetch_stats(addr: &str) -> anyhow::Result<serde_json::Value> {
    let body = http_get(addr, "/api/stats")?;
    serde_json::from_str(&body).context("decoding /api/stats")
}

/// `regevent-gw subscriptions`: fetch and print.
pub fn subscriptions_command(
    addr: &str,
    filter: &SubscriptionFilter,
    limit: usize,
    format: OutputFormat,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let page = fetch_subscriptions(addr, filter, limit)?;
    match format {
        OutputFormat::Table => print_subscriptions_table(&page, out)?,
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &page)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

/// Fetches `/api/registrations?pui=`: `None` when there is no such registration (404).
pub fn fetch_registration(
    addr: &str,
    default_pui: &str,
) -> anyhow::Result<Option<RegistrationView>> {
    let mut path = String::from("/api/registrations?pui=");
    percent_encode(default_pui, &mut path);
    match http_get_any(addr, &path)? {
        (404, _) => Ok(None),
        (200, body) => Ok(Some(
            serde_json::from_str(&body).context("decoding /api/registrations")?,
        )),
        (status, body) => {
            let detail = body.lines().next().unwrap_or("").trim();
            bail!("GET {path}: HTTP {status}: {detail}")
        }
    }
}

/// `regevent-gw registration`: fetch and print one registration.
pub fn registration_command(
    addr: &str,
    default_pui: &str,
    format: OutputFormat,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let Some(reg) = fetch_registration(addr, default_pui)? else {
        writeln!(out, "no registration for {default_pui}")?;
        return Ok(false);
    };
    match format {
        OutputFormat::Json => serde_json::to_writer_pretty(&mut *out, &reg)?,
        OutputFormat::Table => {
            writeln!(out, "default PUI    {}", reg.default_pui)?;
            writeln!(out, "trunk group    {}", reg.trunk_group)?;
            writeln!(out, "implicit set   {}", reg.implicit_puis.join(", "))?;
            writeln!(out, "service route  {}", reg.service_route.join(", "))?;
            let now = now_unix();
            for b in &reg.bindings {
                let id = match (&b.instance, b.reg_id) {
                    (Some(i), Some(r)) => format!(" instance {i} reg-id {r}"),
                    (Some(i), None) => format!(" instance {i}"),
                    _ => String::new(),
                };
                writeln!(
                    out,
                    "binding        {}{id} via {} {} (listener {}), expires in {}",
                    b.contact,
                    b.transport,
                    b.source,
                    b.listener,
                    humanize(b.expires_at_unix - now)
                )?;
            }
        }
    }
    writeln!(out)?;
    Ok(true)
}

/// `regevent-gw stats`: fetch and print.
pub fn stats_command(addr: &str, format: OutputFormat, out: &mut impl Write) -> anyhow::Result<()> {
    let stats = fetch_stats(addr)?;
    match format {
        OutputFormat::Table => print_stats_table(&stats, out)?,
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &stats)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Prints the page as aligned columns, times relative to now.
pub fn print_subscriptions_table(
    page: &SubscriptionPage,
    out: &mut impl Write,
) -> std::io::Result<()> {
    write_subscriptions_table(page, now_unix(), out)
}

const SUB_HEADERS: [&str; 9] = [
    "PUI",
    "TRUNK GROUP",
    "STATE",
    "EXPIRES IN",
    "NEXT REFRESH IN",
    "VERSION",
    "IMPLICIT",
    "CALL-ID",
    "REGISTRAR",
];

fn write_subscriptions_table(
    page: &SubscriptionPage,
    now: f64,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let rel = |t: Option<f64>| t.map_or_else(|| "-".to_owned(), |t| humanize(t - now));
    let cells: Vec<[String; 9]> = page
        .rows
        .iter()
        .map(|r: &SubscriptionRow| {
            [
                r.default_pui.clone(),
                r.trunk_group.clone(),
                r.state.clone(),
                rel(r.expires_at_unix),
                rel(r.next_refresh_unix),
                r.last_notify_version
                    .map_or_else(|| "-".to_owned(), |v| v.to_string()),
                r.implicit_puis.to_string(),
                r.call_id.clone(),
                r.registrar.clone(),
            ]
        })
        .collect();
    write_table(&SUB_HEADERS, &cells, out)?;
    writeln!(
        out,
        "{} of {} subscription{} shown",
        page.rows.len(),
        page.total,
        if page.total == 1 { "" } else { "s" }
    )
}

/// Writes a table: columns separated by two spaces, padded to the widest cell (the last
/// column is not padded). Control characters in cells are shown as `?`.
fn write_table<const N: usize>(
    headers: &[&str; N],
    rows: &[[String; N]],
    out: &mut impl Write,
) -> std::io::Result<()> {
    let mut widths = headers.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = String::new();
    let mut emit = |cells: &mut dyn Iterator<Item = &str>, out: &mut dyn Write| {
        line.clear();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.extend(cell.chars().map(|c| if c.is_control() { '?' } else { c }));
            if i + 1 < N {
                let pad = widths[i] - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", line.trim_end())
    };
    emit(&mut headers.iter().copied(), out)?;
    for row in rows {
        emit(&mut row.iter().map(String::as_str), out)?;
    }
    Ok(())
}

/// `45s`, `9m30s`, `2h05m`, `3d04h`; negative durations as `12s ago`.
pub fn humanize(secs: f64) -> String {
    if !secs.is_finite() {
        return "-".to_owned();
    }
    let ago = secs < 0.0;
    let s = secs.abs().round() as u64;
    let text = match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    };
    if ago && s > 0 {
        format!("{text} ago")
    } else {
        text
    }
}

/// Prints `/api/stats` as one line per series: TYPE, NAME, LABELS, VALUE (histograms and
/// summaries as count, sum and mean).
pub fn print_stats_table(stats: &serde_json::Value, out: &mut impl Write) -> std::io::Result<()> {
    use serde_json::Value;
    let mut rows: Vec<[String; 4]> = Vec::new();
    let labels_of = |series: &Value| -> String {
        match series.get("labels").and_then(Value::as_object) {
            Some(m) if !m.is_empty() => {
                let parts: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect();
                parts.join(",")
            }
            _ => String::new(),
        }
    };
    for (section, kind) in [("counters", "counter"), ("gauges", "gauge")] {
        for (name, series) in families(stats, section) {
            for s in series {
                let value = s.get("value").and_then(Value::as_f64);
                rows.push([
                    kind.to_owned(),
                    name.clone(),
                    labels_of(s),
                    value.map_or_else(|| "NaN".to_owned(), number),
                ]);
            }
        }
    }
    for (section, kind) in [("histograms", "histogram"), ("summaries", "summary")] {
        for (name, series) in families(stats, section) {
            for s in series {
                let count = s.get("count").and_then(Value::as_f64).unwrap_or(0.0);
                let sum = s.get("sum").and_then(Value::as_f64).unwrap_or(0.0);
                let mean = if count > 0.0 { sum / count } else { 0.0 };
                rows.push([
                    kind.to_owned(),
                    name.clone(),
                    labels_of(s),
                    format!(
                        "count={} sum={} mean={}",
                        number(count),
                        number(sum),
                        number(mean)
                    ),
                ]);
            }
        }
    }
    write_table(&["TYPE", "NAME", "LABELS", "VALUE"], &rows, out)
}

fn families<'a>(
    stats: &'a serde_json::Value,
    section: &str,
) -> impl Iterator<Item = (&'a String, &'a Vec<serde_json::Value>)> {
    stats
        .get(section)
        .and_then(serde_json::Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, v)| Some((name, v.as_array()?)))
}

/// Integers without a fraction, other values with up to 6 significant decimals.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_address_precedence_and_wildcards() {
        assert_eq!(
            admin_address(Some("10.0.0.1:1"), None, Some("127.0.0.1:2")).ok(),
            Some("10.0.0.1:1".to_string())
        );
        assert_eq!(
            admin_address(None, None, None).ok(),
            Some(DEFAULT_ADMIN.to_string())
        );
        assert_eq!(
            admin_address(None, None, Some(" 192.0.2.1:9100 ")).ok(),
            Some("192.0.2.1:9100".to_string())
        );
        assert_eq!(
            admin_address(None, None, Some("0.0.0.0:9464")).ok(),
            Some("127.0.0.1:9464".to_string())
        );
        assert_eq!(
            admin_address(None, None, Some("[::]:9464")).ok(),
            Some("[::1]:9464".to_string())
        );
        let e = admin_address(None, None, Some("localhost")).expect_err("not IP:PORT");
        assert_eq!(e.0[0].key, "admin.listen");
        assert_eq!(e.0[0].file, format!("environment variable {ADMIN_ENV}"));
    }

    fn row(id: u64) -> SubscriptionRow {
        SubscriptionRow {
            id,
            package: "reg".into(),
            default_pui: format!("sip:user{id}@ims.example.net"),
            trunk_group: "access".into(),
            state: "active".into(),
            call_id: format!("call{id}"),
            registrar: "sip:scscf.example.net".into(),
            domain: "ims.example.net".into(),
            requested_expiry_s: 3660,
            granted_expiry_s: Some(3600),
            expires_at_unix: Some(1000.0 + 3600.0),
            next_refresh_unix: Some(1000.0 + 570.0),
            created_unix: 900.0,
            last_notify_version: Some(3),
            implicit_puis: 2,
        }
    }

    #[test]
    fn humanized_times() {
        assert_eq!(humanize(0.2), "0s");
        assert_eq!(humanize(45.0), "45s");
        assert_eq!(humanize(570.0), "9m30s");
        assert_eq!(humanize(3600.0 + 300.0), "1h05m");
        assert_eq!(humanize(2.0 * 86_400.0 + 7200.0), "2d02h");
        assert_eq!(humanize(-12.0), "12s ago");
    }

    #[test]
    fn subscription_table() {
        let mut r2 = row(2);
        r2.expires_at_unix = None;
        r2.last_notify_version = None;
        r2.default_pui = "tel:+1".into();
        let page = SubscriptionPage {
            total: 5,
            offset: 0,
            rows: vec![row(1), r2],
        };
        let mut out = Vec::new();
        write_subscriptions_table(&page, 1000.0, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let expected = "\
PUI                        TRUNK GROUP  STATE   EXPIRES IN  NEXT REFRESH IN  VERSION  IMPLICIT  CALL-ID  REGISTRAR
sip:user1@ims.example.net  access       active  1h00m       9m30s            3        2         call1    sip:scscf.example.net
tel:+1                     access       active  -           9m30s            -        2         call2    sip:scscf.example.net
2 of 5 subscriptions shown
";
        assert_eq!(text, expected);
    }

    #[test]
    fn stats_table() {
        let v = serde_json::json!({
            "counters": {"regevent_subscribes_sent_total": [
                {"labels": {"kind": "initial", "trunk_group": "access"}, "value": 3.0}]},
            "gauges": {"regevent_build_info": [{"labels": {"version": "0.1.0"}, "value": 1.0}]},
            "histograms": {"regevent_admin_scrape_duration_seconds": [
                {"labels": {}, "count": 4.0, "sum": 0.01, "buckets": []}]},
            "summaries": {}
        });
        let mut out = Vec::new();
        print_stats_table(&v, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("TYPE       NAME"), "{text}");
        assert!(text.contains(
            "counter    regevent_subscribes_sent_total          kind=initial,trunk_group=access  3\n"
        ), "{text}");
        assert!(text.contains("count=4 sum=0.01 mean=0.0025"), "{text}");
    }

    #[test]
    fn request_paths_and_responses() {
        let f = SubscriptionFilter {
            trunk_group: Some("a b".into()),
            pui_prefix: Some("sip:+1@".into()),
            state: Some(String::new()),
        };
        assert_eq!(
            subscriptions_path(&f, 10, 5),
            "/api/subscriptions?offset=10&limit=5&trunk_group=a%20b&pui_prefix=sip%3A%2B1%40"
        );
        let (status, body) =
            split_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA").unwrap();
        assert_eq!((status, body.as_str()), (200, "ok"));
        assert!(split_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok").is_err());
    }
}
