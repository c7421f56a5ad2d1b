//! Prometheus text-format (0.0.4) rendering of the per-subscription list served on
//! `/metrics/subscriptions` (SPEC §8).
//!
//! Owns: the series layout (`regevent_subscription_info`, `..._expires_timestamp_seconds`,
//! `..._next_refresh_timestamp_seconds`, and the `..._series_listed/omitted/cap` gauges), label
//! escaping, and keeping each metric family contiguous even though rows arrive in chunks.
//! Never: fetching rows, deciding the cap, or registering anything with the `metrics` recorder —
//! the list is formatted straight from the gateway's state at scrape time, one pass per chunk,
//! into pre-sized `String`s without per-row allocations.

use std::fmt::Write as _;

use super::names;
use super::SubscriptionRow;

/// Content type of the Prometheus text exposition format.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bytes one row with typical PUI / Call-ID / registrar lengths produces in the info family and
/// in each timestamp family (measured ~380 and ~130); used to pre-size buffers.
const INFO_BYTES_HINT: usize = 400;
const TIME_BYTES_HINT: usize = 144;

/// Renders the subscription families incrementally: feed rows with [`push_rows`] (chunk after
/// chunk, in id order), then [`finish`] to get the exposition text.
///
/// Each family is kept in its own buffer so that, in the output, all samples of a family follow
/// their `# HELP`/`# TYPE` lines as the text format requires.
///
/// [`push_rows`]: SubscriptionRenderer::push_rows
/// [`finish`]: SubscriptionRenderer::finish
#[derive(Debug)]
pub struct SubscriptionRenderer {
    info: String,
    expires: String,
    refresh: String,
    listed: usize,
}

impl SubscriptionRenderer {
    /// A renderer expecting about `rows` rows (only a capacity hint).
    pub fn with_capacity(rows: usize) -> Self {
        let time_bytes = rows.saturating_mul(TIME_BYTES_HINT);
        // The info buffer becomes the output: room for everything, its header written first.
        let mut info = String::with_capacity(
            rows.saturating_mul(INFO_BYTES_HINT)
                .saturating_add(time_bytes.saturating_mul(2))
                .saturating_add(2048),
        );
        push_header(
            &mut info,
            names::SUB_INFO,
            "gauge",
            "One series per live reg-event subscription (value always 1); labels carry its identity and state.",
        );
        Self {
            info,
            expires: String::with_capacity(time_bytes),
            refresh: String::with_capacity(time_bytes),
            listed: 0,
        }
    }

    /// How many rows have been rendered so far.
    pub fn listed(&self) -> usize {
        self.listed
    }

    /// Renders one more row.
    pub fn push_row(&mut self, row: &SubscriptionRow) {
        self.listed += 1;

        let info = &mut self.info;
        info.push_str(names::SUB_INFO);
        info.push_str("{id=\"");
        push_u64(info, row.id);
        push_label(info, "default_pui", &row.default_pui);
        push_label(info, "trunk_group", &row.trunk_group);
        push_label(info, "state", &row.state);
        push_label(info, "call_id", &row.call_id);
        push_label(info, "registrar", &row.registrar);
        push_label(info, "domain", &row.domain);
        push_label(info, "package", &row.package);
        info.push_str("\"} 1\n");

        if let Some(at) = row.expires_at_unix {
            push_minimal(&mut self.expires, names::SUB_EXPIRES, row, at);
        }
        if let Some(at) = row.next_refresh_unix {
            push_minimal(&mut self.refresh, names::SUB_NEXT_REFRESH, row, at);
        }
    }

    /// Renders a chunk of rows.
    pub fn push_rows(&mut self, rows: &[SubscriptionRow]) {
        for row in rows {
            self.push_row(row);
        }
    }

    /// The complete exposition: the three per-subscription families, then the
    /// listed / omitted / cap gauges. `total` is how many live subscriptions exist in all.
    pub fn finish(self, total: usize, cap: usize) -> String {
        let mut out = self.info;
        out.reserve(self.expires.len() + self.refresh.len() + 2048);
        push_header(
            &mut out,
            names::SUB_EXPIRES,
            "gauge",
            "When the subscription expires unless refreshed, Unix seconds (absent until granted).",
        );
        out.push_str(&self.expires);
        push_header(
            &mut out,
            names::SUB_NEXT_REFRESH,
            "gauge",
            "When the next refresh SUBSCRIBE is due, Unix seconds (absent when none is scheduled).",
        );
        out.push_str(&self.refresh);

        let omitted = total.saturating_sub(self.listed);
        push_header(
            &mut out,
            names::SUB_LISTED,
            "gauge",
            "Subscriptions listed as regevent_subscription_info series in this scrape.",
        );
        let _ = writeln!(out, "{} {}", names::SUB_LISTED, self.listed);
        push_header(
            &mut out,
            names::SUB_OMITTED,
            "gauge",
            "Live subscriptions left out of this scrape because of the series cap.",
        );
        let _ = writeln!(out, "{} {}", names::SUB_OMITTED, omitted);
        push_header(
            &mut out,
            names::SUB_CAP,
            "gauge",
            "Configured maximum number of per-subscription series per scrape.",
        );
        let _ = writeln!(out, "{} {}", names::SUB_CAP, cap);
        out
    }
}

/// Renders a whole list in one go (rows beyond `cap` are not listed; `total` is the number of
/// live subscriptions, which may be larger than `rows.len()`).
pub fn render_subscriptions(rows: &[SubscriptionRow], total: usize, cap: usize) -> String {
    let rows = &rows[..rows.len().min(cap)];
    let mut r = SubscriptionRenderer::with_capacity(rows.len());
    r.push_rows(rows);
    r.finish(total, cap)
}

fn push_header(out: &mut String, name: &str, kind: &str, help: &str) {
    // Help texts are our own constants: no backslashes or newlines to escape.
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

/// `name{id="..",default_pui="..",trunk_group=".."} value`
fn push_minimal(out: &mut String, name: &str, row: &SubscriptionRow, value: f64) {
    out.push_str(name);
    out.push_str("{id=\"");
    push_u64(out, row.id);
    push_label(out, "default_pui", &row.default_pui);
    push_label(out, "trunk_group", &row.trunk_group);
    out.push_str("\"} ");
    push_f64(out, value);
    out.push('\n');
}

/// Appends `",key="value` — closes the previous label value and opens this one (the caller
/// closes the last one).
fn push_label(out: &mut String, key: &str, value: &str) {
    out.push_str("\",");
    out.push_str(key);
    out.push_str("=\"");
    escape_label_value(out, value);
}

/// Escapes a label value per the text format: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub fn escape_label_value(out: &mut String, value: &str) {
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = match b {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            b'\n' => "\\n",
            _ => continue,
        };
        // `i` is at an ASCII byte, so both slices end on char boundaries.
        out.push_str(&value[start..i]);
        out.push_str(esc);
        start = i + 1;
    }
    out.push_str(&value[start..]);
}

/// "000001002...999": three-digit fractions, indexed by `n * 3`.
const THOUSANDTHS: &str = {
    const BYTES: [u8; 3000] = {
        let mut b = [0u8; 3000];
        let mut n = 0;
        while n < 1000 {
            b[n * 3] = b'0' + (n / 100) as u8;
            b[n * 3 + 1] = b'0' + (n / 10 % 10) as u8;
            b[n * 3 + 2] = b'0' + (n % 10) as u8;
            n += 1;
        }
        b
    };
    match std::str::from_utf8(&BYTES) {
        Ok(s) => s,
        Err(_) => panic!("digits are ASCII"),
    }
};

fn push_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

/// Whole seconds print as integers; otherwise millisecond precision is plenty for timestamps.
fn push_f64(out: &mut String, v: f64) {
    if !v.is_finite() {
        out.push_str(if v.is_nan() {
            "NaN"
        } else if v > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        });
    } else if v.abs() < 9.0e12 {
        // Fixed point with millisecond precision, integers printed bare.
        let millis = (v.abs() * 1000.0).round() as u64;
        if v < 0.0 && millis != 0 {
            out.push('-');
        }
        push_u64(out, millis / 1000);
        let frac = millis % 1000;
        if frac != 0 {
            out.push('.');
            out.push_str(&THOUSANDTHS[frac as usize * 3..frac as usize * 3 + 3]);
        }
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, pui: &str) -> SubscriptionRow {
        SubscriptionRow {
            id,
            package: "reg".into(),
            default_pui: pui.into(),
            trunk_group: "access".into(),
            state: "active".into(),
            call_id: format!("c{id}@gw"),
            registrar: "sip:scscf.ims.example.net".into(),
            domain: "ims.example.net".into(),
            requested_expiry_s: 3660,
            granted_expiry_s: Some(3600),
            expires_at_unix: Some(1_700_003_600.0),
            next_refresh_unix: Some(1_700_003_000.5),
            created_unix: 1_700_000_000.0,
            last_notify_version: Some(0),
            implicit_puis: 2,
        }
    }

    #[test]
    fn format_of_one_row() {
        let out = render_subscriptions(&[row(7, "sip:alice@ims.example.net")], 1, 10);
        let expected = "\
# HELP regevent_subscription_info One series per live reg-event subscription (value always 1); labels carry its identity and state.
# TYPE regevent_subscription_info gauge
regevent_subscription_info{id=\"7\",default_pui=\"sip:alice@ims.example.net\",trunk_group=\"access\",state=\"active\",call_id=\"c7@gw\",registrar=\"sip:scscf.ims.example.net\",domain=\"ims.example.net\",package=\"reg\"} 1
# HELP regevent_subscription_expires_timestamp_seconds When the subscription expires unless refreshed, Unix seconds (absent until granted).
# TYPE regevent_subscription_expires_timestamp_seconds gauge
regevent_subscription_expires_timestamp_seconds{id=\"7\",default_pui=\"sip:alice@ims.example.net\",trunk_group=\"access\"} 1700003600
# HELP regevent_subscription_next_refresh_timestamp_seconds When the next refresh SUBSCRIBE is due, Unix seconds (absent when none is scheduled).
# TYPE regevent_subscription_next_refresh_timestamp_seconds gauge
regevent_subscription_next_refresh_timestamp_seconds{id=\"7\",default_pui=\"sip:alice@ims.example.net\",trunk_group=\"access\"} 1700003000.500
# HELP regevent_subscription_series_listed Subscriptions listed as regevent_subscription_info series in this scrape.
# TYPE regevent_subscription_series_listed gauge
regevent_subscription_series_listed 1
# HELP regevent_subscription_series_omitted Live subscriptions left out of this scrape because of the series cap.
# TYPE regevent_subscription_series_omitted gauge
regevent_subscription_series_omitted 0
# HELP regevent_subscription_series_cap Configured maximum number of per-subscription series per scrape.
# TYPE regevent_subscription_series_cap gauge
regevent_subscription_series_cap 10
";
        assert_eq!(out, expected);
    }

    #[test]
    fn escaping_of_label_values() {
        let mut s = String::new();
        escape_label_value(&mut s, "a\"b\\c\nd é");
        assert_eq!(s, "a\\\"b\\\\c\\nd é");

        let out = render_subscriptions(&[row(1, "sip:\"odd\"\\x@ex\n")], 1, 10);
        assert!(
            out.contains("default_pui=\"sip:\\\"odd\\\"\\\\x@ex\\n\""),
            "{out}"
        );
        // Every sample line is one line: the newline in the value did not leak.
        assert!(out
            .lines()
            .all(|l| l.starts_with('#') || l.starts_with("regevent_")));
    }

    #[test]
    fn cap_and_omitted_and_missing_times() {
        let mut rows: Vec<_> = (1..=5).map(|i| row(i, "sip:x@y")).collect();
        rows[0].expires_at_unix = None;
        rows[0].next_refresh_unix = None;
        let out = render_subscriptions(&rows, 9, 3);
        assert_eq!(out.matches("regevent_subscription_info{").count(), 3);
        assert_eq!(
            out.matches("regevent_subscription_expires_timestamp_seconds{")
                .count(),
            2
        );
        assert!(out.contains("\nregevent_subscription_series_listed 3\n"));
        assert!(out.contains("\nregevent_subscription_series_omitted 6\n"));
        assert!(out.contains("\nregevent_subscription_series_cap 3\n"));
    }

    #[test]
    fn families_stay_contiguous_across_chunks() {
        let rows: Vec<_> = (1..=4).map(|i| row(i, "sip:x@y")).collect();
        let mut r = SubscriptionRenderer::with_capacity(4);
        r.push_rows(&rows[..2]);
        r.push_rows(&rows[2..]);
        let out = r.finish(4, 100);
        let mut seen = Vec::new();
        for l in out.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            if seen.last() != Some(&name) {
                assert!(!seen.contains(&name), "family {name} split");
                seen.push(name);
            }
        }
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn floats() {
        let mut s = String::new();
        push_f64(&mut s, 12.0);
        s.push(' ');
        push_f64(&mut s, 0.25);
        s.push(' ');
        push_f64(&mut s, f64::NAN);
        s.push(' ');
        push_f64(&mut s, -1.0005);
        s.push(' ');
        push_f64(&mut s, 1_700_000_000.040_1);
        s.push(' ');
        push_f64(&mut s, 1e20);
        s.push(' ');
        push_u64(&mut s, 0);
        s.push(' ');
        push_u64(&mut s, u64::MAX);
        assert_eq!(
            s,
            "12 0.250 NaN -1.001 1700000000.040 100000000000000000000 0 18446744073709551615"
        );
    }
}
