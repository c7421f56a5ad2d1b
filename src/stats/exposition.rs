//! Reads the Prometheus text exposition (as rendered by our own `PrometheusHandle`) back into a
//! structured [`StatsSnapshot`] for `/api/stats` and `regevent-gw stats`.
//!
//! JSON shape (keys sorted):
//!
//! ```json
//! { "counters":   { "regevent_subscribes_sent_total": [ {"labels": {"kind": "initial"}, "value": 3} ] },
//!   "gauges":     { "regevent_subscriptions": [ {"labels": {"trunk_group": "access", "state": "active"}, "value": 2} ] },
//!   "histograms": { "regevent_admin_scrape_duration_seconds":
//!                     [ {"labels": {}, "count": 4, "sum": 0.012, "buckets": [ {"le": "0.001", "count": 1}, {"le": "+Inf", "count": 4} ] } ] },
//!   "summaries":  { } }
//! ```
//!
//! Owns: this parse. Never: parsing arbitrary third-party expositions perfectly — it handles what
//! the text format 0.0.4 allows (escaped label values, optional timestamps) and skips lines it
//! cannot read instead of failing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Label set of one series.
pub type Labels = BTreeMap<String, String>;

/// All metric families, by type, then by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub counters: BTreeMap<String, Vec<Sample>>,
    pub gauges: BTreeMap<String, Vec<Sample>>,
    pub histograms: BTreeMap<String, Vec<HistogramSample>>,
    pub summaries: BTreeMap<String, Vec<SummarySample>>,
}

/// One counter or gauge series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// One histogram series (cumulative buckets as in the exposition).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistogramSample {
    pub labels: Labels,
    pub count: f64,
    pub sum: f64,
    pub buckets: Vec<Bucket>,
}

/// Upper bound (`le`, kept as text so `+Inf` survives JSON) and cumulative count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub le: String,
    pub count: f64,
}

/// One summary series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SummarySample {
    pub labels: Labels,
    pub count: f64,
    pub sum: f64,
    /// quantile → value
    pub quantiles: BTreeMap<String, f64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

/// Parses an exposition text. Untyped samples are reported as gauges.
pub fn parse(text: &str) -> StatsSnapshot {
    let mut types: BTreeMap<&str, Kind> = BTreeMap::new();
    let mut snap = StatsSnapshot::default();
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (it.next(), it.next()) {
                let kind = match kind {
                    "counter" => Kind::Counter,
                    "histogram" => Kind::Histogram,
                    "summary" => Kind::Summary,
                    _ => Kind::Gauge,
                };
                types.insert(name, kind);
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, mut labels, value)) = parse_sample(line) else {
            continue;
        };
        let (family, kind) = match types.get(name) {
            Some(&k) => (name, k),
            None => match ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                match types.get(base) {
                    Some(&k @ (Kind::Histogram | Kind::Summary)) => Some((base, k)),
                    _ => None,
                }
            }) {
                Some(found) => found,
                None => (name, Kind::Gauge),
            },
        };
        match kind {
            Kind::Counter | Kind::Gauge => {
                let map = if kind == Kind::Counter {
                    &mut snap.counters
                } else {
                    &mut snap.gauges
                };
                map.entry(family.to_owned())
                    .or_default()
                    .push(Sample { labels, value });
            }
            Kind::Histogram => {
                let le = labels.remove("le");
                let series = snap.histograms.entry(family.to_owned()).or_default();
                let h = entry_for(
                    series,
                    labels,
                    |h| &h.labels,
                    |labels| HistogramSample {
                        labels,
                        ..Default::default()
                    },
                );
                if name.ends_with("_bucket") {
                    if let Some(le) = le {
                        h.buckets.push(Bucket { le, count: value });
                    }
                } else if name.ends_with("_sum") {
                    h.sum = value;
                } else if name.ends_with("_count") {
                    h.count = value;
                }
            }
            Kind::Summary => {
                let q = labels.remove("quantile");
                let series = snap.summaries.entry(family.to_owned()).or_default();
                let s = entry_for(
                    series,
                    labels,
                    |s| &s.labels,
                    |labels| SummarySample {
                        labels,
                        ..Default::default()
                    },
                );
                if name == family {
                    if let Some(q) = q {
                        s.quantiles.insert(q, value);
                    }
                } else if name.ends_with("_sum") {
                    s.sum = value;
                } else if name.ends_with("_count") {
                    s.count = value;
                }
            }
        }
    }
    snap
}

fn entry_for<T>(
    series: &mut Vec<T>,
    labels: Labels,
    key: impl Fn(&T) -> &Labels,
    new: impl FnOnce(Labels) -> T,
) -> &mut T {
    match series.iter().position(|s| *key(s) == labels) {
        Some(i) => &mut series[i],
        None => {
            series.push(new(labels));
            series.last_mut().expect("just pushed")
        }
    }
}

/// `name{a="x",b="y"} value [timestamp]`
fn parse_sample(line: &str) -> Option<(&str, Labels, f64)> {
    let name_end = line.find(['{', ' ', '\t'])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Labels::new();
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            r = r.trim_start_matches([' ', ',']);
            if let Some(after) = r.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = r.find('=')?;
            let key = r[..eq].trim();
            r = r[eq + 1..].trim_start().strip_prefix('"')?;
            let mut value = String::new();
            let mut chars = r.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key.to_owned(), value);
            r = &r[end + 1..];
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((name, labels, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP regevent_subscribes_sent_total SUBSCRIBEs sent.
# TYPE regevent_subscribes_sent_total counter
regevent_subscribes_sent_total{kind="initial",trunk_group="acc\"ess"} 3
regevent_subscribes_sent_total{kind="refresh",trunk_group="access"} 1

# TYPE regevent_build_info gauge
regevent_build_info{version="0.1.0"} 1
# TYPE regevent_admin_scrape_duration_seconds histogram
regevent_admin_scrape_duration_seconds_bucket{le="0.001"} 1
regevent_admin_scrape_duration_seconds_bucket{le="+Inf"} 2
regevent_admin_scrape_duration_seconds_sum 0.5
regevent_admin_scrape_duration_seconds_count 2
# TYPE lat summary
lat{quantile="0.5"} 0.1
lat_sum 1
lat_count 10
untyped_thing 4 1700000000
"#;

    #[test]
    fn parses_families() {
        let s = parse(TEXT);
        let sent = &s.counters["regevent_subscribes_sent_total"];
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].labels["trunk_group"], "acc\"ess");
        assert_eq!(sent[0].value, 3.0);
        assert_eq!(
            s.gauges["regevent_build_info"][0].labels["version"],
            "0.1.0"
        );
        assert_eq!(s.gauges["untyped_thing"][0].value, 4.0);
        let h = &s.histograms["regevent_admin_scrape_duration_seconds"][0];
        assert_eq!((h.count, h.sum, h.buckets.len()), (2.0, 0.5, 2));
        assert_eq!(h.buckets[1].le, "+Inf");
        let q = &s.summaries["lat"][0];
        assert_eq!((q.count, q.quantiles["0.5"]), (10.0, 0.1));
        // Serialises to plain JSON.
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["counters"]["regevent_subscribes_sent_total"][1]["value"],
            1.0
        );
    }
}
