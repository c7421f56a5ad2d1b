//! The dashboard and the alerts tell the truth: every metric name and label that
//! `deploy/grafana/*.json` and `deploy/alerts.yml` use exists, on that metric (a `trunk_group`
//! filter on a metric without the label matches nothing, silently), and docs/metrics.md lists
//! every metric with the labels and label values the code emits.
//!
//! What the code emits is read two ways that check each other:
//! - statically, from every `counter!`/`gauge!`/`histogram!` call site in `src/` and
//!   `crates/proto/src/` (name constant, label keys, literal label values), names resolved
//!   through `crates/proto/src/names.rs` (and the few `pub const … = "regevent_…"` kept beside
//!   their only user);
//! - dynamically, by driving the sans-IO core through registrations, subscriptions, NOTIFYs of
//!   every kind, errors, timeouts and deregistrations in virtual time with a Prometheus recorder
//!   installed, and reading the rendered exposition back (plus the per-subscription series
//!   rendered from its subscription list).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::virt::Virt;
use common::{reginfo, DOMAIN};
use regevent_gw::settings::Profile;
use regevent_gw::stats::exposition;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

type Set = BTreeSet<String>;

// ---------------------------------------------------------------------------------------------
// Rust source: comments removed, string literals and macro call sites found.

/// `text` with `//` and `/* */` comments blanked (string and char literals respected).
fn strip_comments(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(b.len());
                out.push_str(&text[start..i]);
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            _ => {
                let ch = text[i..].chars().next().expect("char");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// Every `"…"` literal's contents in `code` (comments already stripped).
fn string_literals(code: &str) -> Vec<String> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            let start = i + 1;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            out.push(code[start..i.min(b.len())].to_string());
        }
        i += 1;
    }
    out
}

/// The text between the parenthesis at `open` and its match.
fn balanced(code: &str, open: usize) -> &str {
    let mut depth = 0;
    let mut in_str = false;
    let b = code.as_bytes();
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'(' | b'[' | b'{' if !in_str => depth += 1,
            b')' | b']' | b'}' if !in_str => {
                depth -= 1;
                if depth == 0 {
                    return &code[open + 1..i];
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced macro call at byte {open}");
}

/// `text` split at top-level commas.
fn split_args(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut in_str = false;
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_str => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                continue;
            }
            '"' => in_str = !in_str,
            '(' | '[' | '{' if !in_str => depth += 1,
            ')' | ']' | '}' if !in_str => depth -= 1,
            ',' if !in_str && depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

fn unquote(s: &str) -> Option<&str> {
    s.trim().strip_prefix('"')?.strip_suffix('"')
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// What the code emits for one metric, from its call sites.
#[derive(Debug, Default, Clone)]
struct Emitted {
    kind: String,
    keys: Set,
    /// Literal values per label key (a value computed at run time is not listed).
    literals: BTreeMap<String, Set>,
}

struct Code {
    /// Constant name → metric name (`SUBSCRIBES_SENT` → `regevent_subscribes_sent_total`).
    names: BTreeMap<String, String>,
    /// Metric name → what its call sites emit.
    metrics: BTreeMap<String, Emitted>,
    /// Every string literal of the emitting code.
    literals: Set,
}

/// `pub const NAME: &str = "value";` lines of a file.
fn name_constants(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("pub const ") else {
            continue;
        };
        let Some((name, value)) = rest.split_once(": &str = ") else {
            continue;
        };
        if let Some(v) = value.trim_end_matches(';').trim().strip_prefix('"') {
            if let Some(v) = v.strip_suffix('"') {
                if v.starts_with("regevent_") {
                    out.insert(name.to_string(), v.to_string());
                }
            }
        }
    }
    out
}

fn scan_code() -> Code {
    let mut files = Vec::new();
    rust_files(&repo("src"), &mut files);
    rust_files(&repo("crates/proto/src"), &mut files);
    // Names: crates/proto/src/names.rs, and the few defined beside their only user (the
    // binary's reload counter in src/stats/recorder.rs, …).
    let mut names = BTreeMap::new();
    for file in &files {
        names.extend(name_constants(
            &std::fs::read_to_string(file).expect("read"),
        ));
    }
    assert!(names.len() > 30, "names.rs not read: {names:?}");
    let mut metrics: BTreeMap<String, Emitted> = BTreeMap::new();
    let mut literals = Set::new();
    for file in &files {
        let code = strip_comments(&std::fs::read_to_string(file).expect("read"));
        literals.extend(string_literals(&code));
        for kind in ["counter", "gauge", "histogram"] {
            let pat = format!("{kind}!(");
            let mut from = 0;
            while let Some(at) = code[from..].find(&pat) {
                let start = from + at;
                from = start + pat.len();
                // `describe_counter!(` is a description, not an emission.
                let before = &code[..start];
                if before.ends_with('_') || before.ends_with(|c: char| c.is_alphanumeric()) {
                    continue;
                }
                let args = split_args(balanced(&code, start + pat.len() - 1));
                let first = args.first().map(String::as_str).unwrap_or_default();
                let name = match unquote(first) {
                    Some(literal) => literal.to_string(),
                    None => {
                        let constant = first.rsplit("::").next().unwrap_or(first);
                        names.get(constant).cloned().unwrap_or_else(|| {
                            panic!(
                                "{}: {kind}!({first}, …): not a name from names.rs",
                                file.display()
                            )
                        })
                    }
                };
                let e = metrics.entry(name.clone()).or_default();
                assert!(
                    e.kind.is_empty() || e.kind == kind,
                    "{name} is both a {} and a {kind}",
                    e.kind
                );
                e.kind = kind.to_string();
                for label in &args[1..] {
                    let (k, v) = label
                        .split_once("=>")
                        .unwrap_or_else(|| panic!("{}: {name}: label {label:?}", file.display()));
                    let key = unquote(k).expect("label keys are literals").to_string();
                    if let Some(v) = unquote(v) {
                        e.literals.entry(key.clone()).or_default().insert(v.into());
                    }
                    e.keys.insert(key);
                }
            }
        }
    }
    Code {
        names,
        metrics,
        literals,
    }
}

// ---------------------------------------------------------------------------------------------
// The core, run: every series it emits, with label keys and values.

/// Series seen: metric → label key → values.
type Seen = BTreeMap<String, BTreeMap<String, Set>>;

fn record(seen: &mut Seen, text: &str) {
    let snap = exposition::parse(text);
    let mut add = |name: &str, labels: &exposition::Labels| {
        let entry = seen.entry(name.to_string()).or_default();
        for (k, v) in labels {
            entry.entry(k.clone()).or_default().insert(v.clone());
        }
    };
    for (name, series) in snap.counters.iter().chain(&snap.gauges) {
        for s in series {
            add(name, &s.labels);
        }
    }
    for (name, series) in &snap.histograms {
        for s in series {
            add(name, &s.labels);
        }
    }
}

fn pui(user: &str) -> String {
    format!("sip:{user}@{DOMAIN}")
}

fn contact(v: &Virt, user: &str) -> String {
    format!("sip:{user}@{}", v.ue)
}

/// Drive the core through what operators watch, with a private recorder; what it emitted.
fn run_the_core() -> Seen {
    let recorder = regevent_gw::stats::recorder::recorder_builder()
        .expect("builder")
        .build_recorder();
    let handle = recorder.handle();
    let mut seen = Seen::new();
    metrics::with_local_recorder(&recorder, || {
        let mut v = Virt::start(Profile {
            support_reg_event: true,
            ..Profile::default()
        });
        let xml = "application/reginfo+xml";
        // alice: NOTIFYs of every outcome, then the network deregisters her.
        let sub = v.subscribed("alice", &[], 3600);
        let body = reginfo(0, &pui("alice"), "active", &contact(&v, "alice"));
        let first = v.notify(&sub, 1, "active;expires=3600", xml, &body);
        assert_eq!(v.send_notify(&first).status(), Some(200));
        v.sim.send(v.scscf, first.clone()); // a retransmission, absorbed
        let stale = v.notify(&sub, 2, "active;expires=3600", xml, &body);
        assert_eq!(v.send_notify(&stale).status(), Some(200));
        let gap = reginfo(5, &pui("alice"), "active", &contact(&v, "alice"))
            .replace("state=\"full\"", "state=\"partial\"");
        let gap = v.notify(&sub, 3, "active;expires=3600", xml, &gap);
        assert_eq!(v.send_notify(&gap).status(), Some(200));
        let full_again = v.next_subscribe().expect("full-state SUBSCRIBE");
        v.sim.send(v.scscf, v.subscribe_ok(&full_again, 3600));
        let bad = v.notify(&sub, 4, "active;expires=3600", xml, "<reginfo");
        assert_eq!(v.send_notify(&bad).status(), Some(400));
        let media = v.notify(&sub, 5, "active;expires=3600", "text/plain", "x");
        assert_eq!(v.send_notify(&media).status(), Some(415));
        let event = String::from_utf8(v.notify(&sub, 6, "active;expires=3600", xml, &body))
            .expect("utf-8")
            .replace("Event: reg", "Event: presence");
        assert_eq!(v.send_notify(event.as_bytes()).status(), Some(489));
        let terminated = reginfo(9, &pui("alice"), "terminated", &contact(&v, "alice"));
        let dereg = v.notify(&sub, 7, "active;expires=3600", xml, &terminated);
        assert_eq!(v.send_notify(&dereg).status(), Some(200));
        let unsub = v.next_subscribe().expect("unsubscribe");
        assert_eq!(unsub.expires().ok().flatten(), Some(0));
        v.sim.send(v.scscf, v.subscribe_ok(&unsub, 0));
        let last = v.notify(&sub, 8, "terminated;reason=timeout", xml, &terminated);
        assert_eq!(v.send_notify(&last).status(), Some(200));

        // bob: the S-CSCF refuses the SUBSCRIBE (he stays registered, without subscription).
        v.register("bob", 1, 600, &[]);
        let s = v.next_subscribe().expect("SUBSCRIBE");
        let refused = regevent_gw::sip::writer::response(&s, 403, "Forbidden", Some("x"), &[]);
        v.sim.send(v.scscf, refused);

        // carol: no answer at all (Timer F).
        v.register("carol", 1, 600, &[]);
        let s = v.next_subscribe().expect("SUBSCRIBE");
        assert!(s.is_request());
        v.sim.advance(Duration::from_secs(5));
        // Carol's retransmissions are still in the S-CSCF's inbox.
        v.sim.drain(v.scscf);

        // dave: re-registers, then deregisters (the unsubscribe goes out in the dialog).
        let s = v.subscribed("dave", &[], 3600);
        let ok = v.notify(
            &s,
            1,
            "active;expires=3600",
            xml,
            &reginfo(0, &pui("dave"), "active", &contact(&v, "dave")),
        );
        assert_eq!(v.send_notify(&ok).status(), Some(200));
        v.register("dave", 2, 600, &[]);
        v.register("dave", 3, 0, &[]);
        let unsub = v.next_subscribe().expect("unsubscribe");
        v.sim.send(v.scscf, v.subscribe_ok(&unsub, 0));

        // erin: a short grant is refreshed; then her registration expires.
        let s = v.subscribed("erin", &[], 100);
        let refresh = v
            .sim
            .recv_where(v.scscf, Duration::from_secs(200), |m| {
                m.is_request() && m.method_str() == "SUBSCRIBE"
            })
            .expect("refresh")
            .msg;
        assert!(refresh.cseq().seq > s.cseq().seq);
        v.sim.send(v.scscf, v.subscribe_ok(&refresh, 100));
        // The per-subscription series, rendered from the live list as the admin server does.
        let now = v.sim.now;
        let page = v.sim.core.subscription_page(
            &Default::default(),
            0,
            None,
            100,
            now,
            std::time::SystemTime::now(),
        );
        assert!(!page.rows.is_empty(), "erin is subscribed");
        let text = regevent_gw::stats::render::render_subscriptions(&page.rows, page.total, 10);
        record(&mut seen, &text);
        v.sim.advance(Duration::from_secs(700));

        // Something that is not SIP.
        v.sim.send(v.ue, b"this is not SIP\r\n\r\n".to_vec());
        v.sim.advance(Duration::from_secs(2));

        record(&mut seen, &handle.render());
    });
    seen
}

// ---------------------------------------------------------------------------------------------
// docs/metrics.md

struct Docs {
    /// Metric → (type, label keys) from the series tables.
    series: BTreeMap<String, (String, Set)>,
    /// (metric, label) → values from the label values table.
    values: BTreeMap<(String, String), Set>,
}

/// The `code` spans of a cell; a label written with its value (`package="reg"`) counts as the
/// label.
fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.split('=').next().unwrap_or(s).to_string())
        .collect()
}

fn cells(line: &str) -> Vec<&str> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect()
}

fn read_docs() -> Docs {
    let text = read("docs/metrics.md");
    let mut series = BTreeMap::new();
    let mut values = BTreeMap::new();
    let mut in_values = false;
    for line in text.lines() {
        if line.starts_with('#') {
            in_values = line.trim() == "### Label values";
            continue;
        }
        if !line.starts_with("| `") {
            continue;
        }
        let c = cells(line);
        if in_values {
            let label = backticked(c[0]).pop().expect("label");
            for metric in backticked(c[1]) {
                let vals: Set = backticked(c[2]).into_iter().collect();
                assert!(
                    values
                        .insert((metric.clone(), label.clone()), vals)
                        .is_none(),
                    "{metric} {label} listed twice"
                );
            }
        } else if c.len() == 4 && c[0].starts_with("`regevent_") {
            let name = backticked(c[0]).pop().expect("name");
            let keys: Set = backticked(c[2]).into_iter().collect();
            series.insert(name, (c[1].to_string(), keys));
        }
    }
    assert!(
        series.len() > 30 && values.len() > 15,
        "docs/metrics.md not read"
    );
    Docs { series, values }
}

// ---------------------------------------------------------------------------------------------
// PromQL, as far as the checks need it.

#[derive(Debug)]
struct Selector {
    metric: String,
    matchers: Vec<(String, String, String)>,
}

#[derive(Debug, Default)]
struct Query {
    selectors: Vec<Selector>,
    /// Labels of `by (…)` / `without (…)` / `on (…)` / `ignoring (…)` clauses.
    grouping: Vec<String>,
}

/// Aggregation operators: `sum by (x) (…)` has its clause between the name and the `(`.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
];

fn parse_promql(expr: &str) -> Query {
    let b = expr.as_bytes();
    let mut q = Query::default();
    let mut i = 0;
    let ident = |i: usize| {
        let mut j = i;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b':') {
            j += 1;
        }
        j
    };
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == b'[' {
            while i < b.len() && b[i] != b']' {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_digit() || c == b'.' {
            // A number (1e-9 included) or a duration.
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'-') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let end = ident(i);
            let word = &expr[i..end];
            let next = skip_ws(end);
            i = end;
            if KEYWORDS.contains(&word) {
                if matches!(word, "by" | "without" | "on" | "ignoring")
                    && b.get(next) == Some(&b'(')
                {
                    let close = expr[next..].find(')').expect("closing )") + next;
                    q.grouping.extend(
                        expr[next + 1..close]
                            .split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string),
                    );
                    i = close + 1;
                }
                continue;
            }
            if b.get(next) == Some(&b'(') || AGGREGATIONS.contains(&word) {
                continue; // a function or an aggregation
            }
            let mut sel = Selector {
                metric: word.to_string(),
                matchers: Vec::new(),
            };
            if b.get(next) == Some(&b'{') {
                let close = expr[next..].find('}').expect("closing }") + next;
                for m in split_args(&expr[next + 1..close]) {
                    let op_at = m.find(['=', '!']).expect("matcher operator");
                    let key = m[..op_at].trim().to_string();
                    let rest = &m[op_at..];
                    let op_len = if rest.starts_with("=~")
                        || rest.starts_with("!~")
                        || rest.starts_with("!=")
                    {
                        2
                    } else {
                        1
                    };
                    let value = unquote(&rest[op_len..]).expect("quoted value").to_string();
                    sel.matchers.push((key, rest[..op_len].to_string(), value));
                }
                i = close + 1;
            }
            q.selectors.push(sel);
        } else {
            i += 1;
        }
    }
    q
}

// ---------------------------------------------------------------------------------------------
// The checks.

/// Series Prometheus makes itself, and their labels.
const PROMETHEUS_SERIES: &[&str] = &["up", "scrape_duration_seconds", "scrape_samples_scraped"];
/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: &[&str] = &["job", "instance"];

struct Truth {
    code: Code,
    docs: Docs,
    jobs: Set,
}

impl Truth {
    /// The label keys a series name (with `_bucket`/`_sum`/`_count` for histograms) carries.
    fn labels_of(&self, series: &str) -> Result<Set, String> {
        if PROMETHEUS_SERIES.contains(&series) {
            return Ok(TARGET_LABELS.iter().map(|s| s.to_string()).collect());
        }
        let (base, extra) = match self.code.metrics.get(series) {
            Some(_) => (series, None),
            None => match ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| series.strip_suffix(s).map(|b| (b, *s)))
            {
                Some((base, suffix))
                    if self
                        .code
                        .metrics
                        .get(base)
                        .is_some_and(|e| e.kind == "histogram") =>
                {
                    (base, (suffix == "_bucket").then_some("le"))
                }
                _ => match self.docs.series.get(series) {
                    // Rendered at scrape time (/metrics/subscriptions), not by the recorder.
                    Some((_, keys)) if series.starts_with("regevent_subscription_") => {
                        let mut keys = keys.clone();
                        keys.extend(TARGET_LABELS.iter().map(|s| s.to_string()));
                        return Ok(keys);
                    }
                    _ => return Err(format!("no metric `{series}`")),
                },
            },
        };
        let mut keys = self.code.metrics[base].keys.clone();
        keys.extend(TARGET_LABELS.iter().map(|s| s.to_string()));
        keys.extend(extra.map(str::to_string));
        Ok(keys)
    }

    /// Problems with one PromQL expression; the labels its result can carry.
    fn check_expr(&self, place: &str, expr: &str, problems: &mut Vec<String>) -> Set {
        let q = parse_promql(expr);
        if q.selectors.is_empty() {
            problems.push(format!("{place}: no metric in `{expr}`"));
        }
        let mut all = Set::new();
        for sel in &q.selectors {
            let keys = match self.labels_of(&sel.metric) {
                Ok(k) => k,
                Err(e) => {
                    problems.push(format!("{place}: {e} in `{expr}`"));
                    continue;
                }
            };
            for (key, op, value) in &sel.matchers {
                if !keys.contains(key) {
                    problems.push(format!(
                        "{place}: `{}` has no label `{key}` (it has {keys:?})",
                        sel.metric
                    ));
                    continue;
                }
                if key == "job" {
                    if !self.jobs.contains(value) {
                        problems.push(format!("{place}: no scrape job `{value}`"));
                    }
                    continue;
                }
                if value.contains('$') {
                    continue; // a dashboard variable
                }
                let base = sel.metric.trim_end_matches("_bucket");
                let Some(documented) = self.docs.values.get(&(base.to_string(), key.clone()))
                else {
                    continue;
                };
                // Equality, and regexes that are plain alternatives: each value must exist.
                let plain = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                let words: Vec<&str> = if op == "=" || op == "!=" {
                    vec![value.as_str()]
                } else if value.split('|').all(plain) {
                    value.split('|').collect()
                } else {
                    Vec::new()
                };
                for w in words {
                    if !documented.contains(w) {
                        problems.push(format!(
                            "{place}: `{}{{{key}{op}\"{value}\"}}`: `{w}` is not a value of `{key}` ({documented:?})",
                            sel.metric
                        ));
                    }
                }
            }
            all.extend(keys);
        }
        for g in &q.grouping {
            if !all.contains(g) {
                problems.push(format!(
                    "{place}: grouping by `{g}`, which no metric of `{expr}` has"
                ));
            }
        }
        all
    }
}

fn truth() -> Truth {
    let prometheus = read("deploy/prometheus.yml");
    let jobs: Set = prometheus
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- job_name:"))
        .map(|j| j.trim().to_string())
        .collect();
    assert!(jobs.contains("regevent-gw"), "{jobs:?}");
    Truth {
        code: scan_code(),
        docs: read_docs(),
        jobs,
    }
}

/// `{{label}}` and `$labels.label` references in a template.
fn template_labels(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in text.split("{{").skip(1) {
        let inner = part.split("}}").next().unwrap_or("").trim();
        if let Some(l) = inner.strip_prefix("$labels.") {
            out.push(l.split_whitespace().next().unwrap_or("").to_string());
        } else if !inner.starts_with('$') && !inner.is_empty() {
            out.push(inner.to_string());
        }
    }
    out
}

fn panels(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    if let Some(ps) = v.get("panels").and_then(|p| p.as_array()) {
        for p in ps {
            out.push(p.clone());
            panels(p, out);
        }
    }
}

#[test]
fn dashboards_use_only_metrics_and_labels_that_exist() {
    let t = truth();
    let mut problems = Vec::new();
    let mut used = Set::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(repo("deploy/grafana")).expect("deploy/grafana") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|x| x == "json") {
            files.push(path);
        }
    }
    assert!(!files.is_empty());
    for file in &files {
        let d: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).expect("read")).expect("JSON");
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        // Template variables: label_values(metric, label).
        for var in d["templating"]["list"].as_array().into_iter().flatten() {
            let def = var["definition"].as_str().unwrap_or("");
            if let Some(args) = def
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
            {
                let (metric, label) = args.split_once(',').expect("label_values(m, l)");
                let place = format!("{name}: variable {}", var["name"]);
                let keys = t.check_expr(&place, metric.trim(), &mut problems);
                if !keys.contains(label.trim()) {
                    problems.push(format!("{place}: `{metric}` has no label `{label}`"));
                }
            }
        }
        let mut all = Vec::new();
        panels(&d, &mut all);
        for p in &all {
            let place = format!(
                "{name}: panel {} {:?}",
                p["id"],
                p["title"].as_str().unwrap_or("")
            );
            let mut panel_labels = Set::new();
            for target in p["targets"].as_array().into_iter().flatten() {
                let Some(expr) = target["expr"].as_str() else {
                    continue;
                };
                for s in parse_promql(expr).selectors {
                    used.insert(s.metric);
                }
                let labels = t.check_expr(&place, expr, &mut problems);
                for l in template_labels(target["legendFormat"].as_str().unwrap_or("")) {
                    if !labels.contains(&l) {
                        problems.push(format!(
                            "{place}: legend uses `{l}`, not a label of `{expr}`"
                        ));
                    }
                }
                panel_labels.extend(labels);
            }
            // Table columns named in transformations are labels of the panel's series.
            for tr in p["transformations"].as_array().into_iter().flatten() {
                for field in ["excludeByName", "indexByName", "renameByName"] {
                    for key in tr["options"][field]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, _)| k)
                    {
                        let builtin = matches!(key.as_str(), "Time" | "Value" | "__name__")
                            || key.starts_with("Value #");
                        if !builtin && !panel_labels.contains(key) {
                            problems.push(format!(
                                "{place}: column `{key}` is no label of its queries"
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // What operators need on the dashboard (network deregistrations are the point).
    for metric in [
        "regevent_registration_events_total",
        "regevent_registration_actions_total",
        "regevent_notifies_total",
        "regevent_subscribe_responses_total",
        "regevent_build_info",
        "regevent_config_reloads_total",
        "regevent_state_commits_total",
        "regevent_state_backlogged",
        "regevent_state_commit_duration_seconds_bucket",
    ] {
        assert!(used.contains(metric), "no panel shows {metric}");
    }
}

/// The `expr:` of every rule in alerts.yml (one line or a `|` block) and its annotations.
fn alert_rules(text: &str) -> Vec<(String, String, String)> {
    let mut rules = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    let mut current: Option<(String, String, String)> = None;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim();
        if let Some(name) = t.strip_prefix("- alert:") {
            if let Some(r) = current.take() {
                rules.push(r);
            }
            current = Some((name.trim().to_string(), String::new(), String::new()));
        } else if let Some(expr) = t.strip_prefix("expr:") {
            let r = current.as_mut().expect("expr inside a rule");
            if expr.trim() == "|" {
                let indent = line.len() - t.len();
                i += 1;
                while i < lines.len()
                    && (lines[i].trim().is_empty()
                        || lines[i].len() - lines[i].trim_start().len() > indent)
                {
                    r.1.push_str(lines[i].trim());
                    r.1.push(' ');
                    i += 1;
                }
                continue;
            }
            r.1 = expr.trim().to_string();
        } else if t.starts_with("summary:") || t.starts_with("description:") {
            if let Some(r) = current.as_mut() {
                r.2.push_str(t);
                r.2.push('\n');
            }
        }
        i += 1;
    }
    rules.extend(current);
    rules
}

#[test]
fn alerts_use_only_metrics_and_labels_that_exist() {
    let t = truth();
    let rules = alert_rules(&read("deploy/alerts.yml"));
    assert!(rules.len() >= 10, "{rules:?}");
    let mut problems = Vec::new();
    for (name, expr, annotations) in &rules {
        assert!(!expr.is_empty(), "{name}: no expr");
        let labels = t.check_expr(name, expr, &mut problems);
        for l in template_labels(annotations) {
            if !labels.contains(&l) {
                problems.push(format!(
                    "{name}: annotation uses `$labels.{l}`, not a label of `{expr}`"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Blind registrations as a share of registrations, not "more than none".
    let (_, blind, _) = rules
        .iter()
        .find(|(n, _, _)| n == "RegeventRegistrationsWithoutSubscription")
        .expect("the alert");
    assert!(
        blind.contains("regevent_registrations_without_subscription"),
        "{blind}"
    );
    assert!(blind.contains("/"), "{blind}");
    let denominator = blind.split('/').nth(1).unwrap_or("");
    let q = parse_promql(denominator);
    assert!(
        q.selectors
            .iter()
            .any(|s| s.metric == "regevent_registrations"),
        "{blind}"
    );
}

#[test]
fn the_checks_catch_what_they_are_for() {
    // The checker itself: a filter on a label the metric does not carry, a metric that does not
    // exist, an unknown label value and a grouping by a missing label are all reported.
    let t = truth();
    let mut problems = Vec::new();
    t.check_expr(
        "x",
        "sum(rate(regevent_notifies_total{trunk_group=~\"$trunk_group\"}[5m]))",
        &mut problems,
    );
    t.check_expr("x", "regevent_no_such_metric", &mut problems);
    t.check_expr(
        "x",
        "regevent_notifies_total{outcome=\"unknown_dialog\"}",
        &mut problems,
    );
    t.check_expr(
        "x",
        "sum by (reason) (regevent_notifies_total)",
        &mut problems,
    );
    t.check_expr("x", "up{job=\"prometheus\"}", &mut problems);
    assert_eq!(problems.len(), 5, "{problems:#?}");
    let mut none = Vec::new();
    t.check_expr(
        "x",
        "histogram_quantile(0.9, sum by (instance, le) (rate(regevent_admin_scrape_duration_seconds_bucket[15m]))) > 5",
        &mut none,
    );
    t.check_expr(
        "x",
        "sum by (trunk_group) (regevent_subscriptions{trunk_group=~\"$trunk_group\", state=\"active\"})",
        &mut none,
    );
    assert!(none.is_empty(), "{none:#?}");
}

#[test]
fn docs_list_every_metric_with_the_labels_and_values_the_code_emits() {
    let t = truth();
    let seen = run_the_core();
    let mut problems = Vec::new();

    // The core, run, emitted nothing the call sites do not say (the static scan is complete).
    for (name, labels) in &seen {
        let keys: Set = labels.keys().cloned().collect();
        match t.code.metrics.get(name) {
            Some(e) if keys.is_subset(&e.keys) => {}
            Some(e) => problems.push(format!(
                "{name}: emitted with {keys:?}, call sites say {:?}",
                e.keys
            )),
            None if name.starts_with("regevent_subscription_") => {}
            None => problems.push(format!("{name}: emitted, but no call site found")),
        }
    }
    for must in [
        "regevent_subscribes_sent_total",
        "regevent_notifies_total",
        "regevent_registration_events_total",
        "regevent_subscription_removals_total",
        "regevent_subscription_info",
    ] {
        assert!(
            seen.contains_key(must),
            "the run did not emit {must}: {seen:#?}"
        );
    }

    // Every metric of names.rs is emitted somewhere and documented with its type and labels.
    for name in t.code.names.values() {
        let Some((doc_type, doc_keys)) = t.docs.series.get(name) else {
            problems.push(format!("{name}: not in docs/metrics.md"));
            continue;
        };
        if name.starts_with("regevent_subscription_") {
            // Rendered at scrape time; its labels as the run rendered them.
            if let Some(labels) = seen.get(name) {
                let keys: Set = labels.keys().cloned().collect();
                if &keys != doc_keys {
                    problems.push(format!(
                        "{name}: rendered with {keys:?}, documented {doc_keys:?}"
                    ));
                }
            }
            continue;
        }
        let Some(e) = t.code.metrics.get(name) else {
            problems.push(format!("{name}: in names.rs, emitted nowhere"));
            continue;
        };
        if &e.kind != doc_type {
            problems.push(format!("{name}: a {}, documented as a {doc_type}", e.kind));
        }
        if &e.keys != doc_keys {
            problems.push(format!(
                "{name}: labels {:?}, documented {doc_keys:?}",
                e.keys
            ));
        }
        // Every label but the free-form ones has its values listed.
        for key in &e.keys {
            if matches!(key.as_str(), "trunk_group" | "version") {
                continue;
            }
            if !t.docs.values.contains_key(&(name.clone(), key.clone())) {
                problems.push(format!("{name}: the values of `{key}` are not listed"));
            }
        }
    }

    // The listed values are the emitted ones.
    for ((name, key), documented) in &t.docs.values {
        let Some(e) = t.code.metrics.get(name) else {
            problems.push(format!("label values of unknown metric {name}"));
            continue;
        };
        if !e.keys.contains(key) {
            problems.push(format!("{name} has no label `{key}`"));
        }
        for v in documented {
            if !t.code.literals.contains(v) {
                problems.push(format!("{name} {key}: `{v}` appears nowhere in the code"));
            }
        }
        for v in e.literals.get(key).into_iter().flatten() {
            if !documented.contains(v) {
                problems.push(format!("{name} {key}: `{v}` is emitted, not listed"));
            }
        }
        for v in seen
            .get(name)
            .and_then(|l| l.get(key))
            .into_iter()
            .flatten()
        {
            if !documented.contains(v) {
                problems.push(format!(
                    "{name} {key}: `{v}` was emitted by the run, not listed"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The run went where operators look: these values were seen, not just listed.
    let saw = |name: &str, key: &str, value: &str| {
        seen.get(name)
            .and_then(|l| l.get(key))
            .is_some_and(|v| v.contains(value))
    };
    for (name, key, value) in [
        ("regevent_notifies_total", "outcome", "accepted"),
        ("regevent_notifies_total", "outcome", "retransmission"),
        ("regevent_notifies_total", "outcome", "version_gap"),
        ("regevent_notifies_total", "outcome", "malformed"),
        ("regevent_notifies_total", "outcome", "unsupported_media"),
        ("regevent_notifies_total", "outcome", "bad_event"),
        (
            "regevent_subscription_removals_total",
            "reason",
            "error_response",
        ),
        ("regevent_subscription_removals_total", "reason", "timeout"),
        (
            "regevent_subscription_removals_total",
            "reason",
            "network_deregistration",
        ),
        (
            "regevent_subscription_removals_total",
            "reason",
            "user_deregistration",
        ),
        ("regevent_subscribes_sent_total", "kind", "refresh"),
        ("regevent_subscribes_sent_total", "kind", "full_state"),
        (
            "regevent_registration_events_total",
            "event",
            "reregistration",
        ),
        (
            "regevent_registration_events_total",
            "event",
            "network_deregistration",
        ),
        (
            "regevent_registration_actions_total",
            "action",
            "network_deregistration",
        ),
    ] {
        assert!(
            saw(name, key, value),
            "the run did not emit {name}{{{key}=\"{value}\"}}"
        );
    }
}
