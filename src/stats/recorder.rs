//! The process-wide `metrics` recorder: a `metrics-exporter-prometheus` recorder with our
//! histogram buckets, every metric of `names` described with help text, the build-info gauge,
//! and the periodic upkeep task.
//!
//! Owns: recorder configuration. Never: serving HTTP (see `admin`) — we drive the handle
//! ourselves; the exporter's own listener feature is disabled.

use std::time::Duration;

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use super::names;

/// Configuration reloads (SIGHUP), by `result`: `ok` (the new trunk groups and profiles apply)
/// or `error` (the new configuration had a problem; the running one stays). Counted by the
/// binary's signal handler, which is why the name lives here and not with the core's names.
pub const CONFIG_RELOADS: &str = "regevent_config_reloads_total";

/// Buckets of the scrape-duration histogram, seconds.
pub const SCRAPE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of any other histogram, seconds.
pub const GENERIC_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// How often [`spawn_upkeep`] runs the recorder's upkeep (histogram bucket draining).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Failure to set the recorder up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecorderError {
    /// A recorder is already installed in this process, or the builder refused our settings.
    #[error("cannot install the Prometheus recorder: {0}")]
    Build(#[from] BuildError),
}

/// A builder configured with our buckets (not installed). Tests can call
/// `recorder_builder()?.build_recorder()` to get a private recorder and its handle.
pub fn recorder_builder() -> Result<PrometheusBuilder, RecorderError> {
    Ok(PrometheusBuilder::new()
        .set_buckets(GENERIC_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(names::SCRAPE_SECONDS.into()), SCRAPE_BUCKETS)?)
}

/// Installs the global recorder (once per process), describes every metric and sets
/// `regevent_build_info{version} 1`. Call from within the runtime before anything records.
pub fn install_recorder() -> Result<PrometheusHandle, RecorderError> {
    let handle = recorder_builder()?.install_recorder()?;
    describe_metrics();
    set_build_info();
    Ok(handle)
}

/// Sets `regevent_build_info{version="<crate version>"} 1` on the global recorder.
pub fn set_build_info() {
    metrics::gauge!(names::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Counts one configuration reload (`regevent_config_reloads_total{result}`).
pub fn count_reload(ok: bool) {
    let result = if ok { "ok" } else { "error" };
    metrics::counter!(CONFIG_RELOADS, "result" => result).increment(1);
}

/// Makes both `regevent_config_reloads_total` series exist (at 0) before the first reload, so
/// that `increase()` sees the first one.
pub fn register_reload_counters() {
    for result in ["ok", "error"] {
        metrics::counter!(CONFIG_RELOADS, "result" => result).increment(0);
    }
}

/// The recorder's `/metrics` text without retired series: a gauge set to NaN no longer
/// describes anything (the core retires the per-trunk-group gauges of a trunk group that a
/// reload removed, once nothing live is left on it; see `regevent_proto`'s `core::gauges`), and
/// the exporter has no way to forget a series, so its samples are left out here. Prometheus
/// then marks the series stale; it disappears from queries and dashboards.
pub fn render(handle: &PrometheusHandle) -> String {
    without_retired(handle.render())
}

/// `text` without the NaN samples of gauge families.
pub fn without_retired(text: String) -> String {
    if !text.contains(" NaN\n") {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut gauge = false;
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            gauge = rest.split_whitespace().nth(1) == Some("gauge");
        } else if gauge && !line.starts_with('#') && line.trim_end().ends_with(" NaN") {
            continue;
        }
        out.push_str(line);
    }
    out
}

/// Runs `handle.run_upkeep()` every [`UPKEEP_INTERVAL`] until the runtime stops (or the
/// returned handle is aborted).
pub fn spawn_upkeep(handle: PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}

/// Registers help text (and units) for every metric in `names` with the global recorder.
pub fn describe_metrics() {
    use names::*;
    describe_counter!(
        SUBSCRIBES_SENT,
        "SUBSCRIBE requests sent, by kind (initial, refresh, unsubscribe, full_state) and trunk_group; retransmissions not counted."
    );
    describe_counter!(
        SUBSCRIBE_RESPONSES,
        "Final responses received to our SUBSCRIBEs, by class (2xx..6xx) and kind."
    );
    describe_counter!(
        SUBSCRIBE_TIMEOUTS,
        "SUBSCRIBE client transactions that got no final response (Timer F), by kind."
    );
    describe_counter!(
        SUBSCRIPTION_REMOVALS,
        "Subscriptions removed, by reason (error_response, timeout, notify_terminated, user_deregistration, network_deregistration, registration_expired, subscription_expired)."
    );
    describe_counter!(
        SUBSCRIPTIONS_CREATED,
        "Subscriptions created (initial SUBSCRIBE queued), by trunk_group."
    );
    describe_counter!(NOTIFYS, "NOTIFY requests received, by outcome.");
    describe_counter!(
        FULL_STATE_REQUESTS,
        "In-dialog SUBSCRIBEs sent to re-request full reginfo state after a version gap."
    );
    describe_counter!(
        NOTIFY_TOLERANCES,
        "Oddities in NOTIFYs that were tolerated rather than rejected, by kind."
    );
    describe_counter!(
        REG_ACTIONS,
        "Registration changes driven by reginfo NOTIFYs, by action."
    );
    describe_gauge!(
        SUBSCRIPTIONS_LIVE,
        "Live reg-event subscriptions, by trunk_group and state."
    );
    describe_gauge!(REGISTRATIONS_LIVE, "Live registrations, by trunk_group.");
    describe_gauge!(
        REGISTRATIONS_UNSUBSCRIBED,
        "Registrations on reg-event trunk groups with no live subscription (blind to network-initiated deregistration), by trunk_group."
    );
    describe_counter!(
        REGISTRATION_EVENTS,
        "Registration lifecycle events, by event and trunk_group."
    );
    describe_counter!(
        SIP_MESSAGES,
        "SIP messages received and sent, by direction (in, out), method and kind (request, response)."
    );
    describe_counter!(
        SIP_PARSE_ERRORS,
        "SIP messages that failed to parse, by transport and whether a 400 was sent (answered)."
    );
    describe_counter!(SIP_DROPS, "SIP messages dropped, by reason.");
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label carries the gateway's version."
    );
    describe_histogram!(
        SCRAPE_SECONDS,
        Unit::Seconds,
        "Time to collect and render /metrics/subscriptions, seconds."
    );
    describe_counter!(
        ADMIN_REQUESTS,
        "Admin HTTP requests served, by route and status code."
    );
    describe_counter!(
        CONFIG_RELOADS,
        "Configuration reloads (SIGHUP), by result: ok (new trunk groups and profiles apply) or error (the running configuration stays)."
    );
    describe_counter!(
        STATE_COMMITS,
        "Group commits of the durable state written and made durable, by backend."
    );
    describe_counter!(
        STATE_RECORDS,
        "Records (puts and deletes) written to the durable state, by backend."
    );
    describe_histogram!(
        STATE_COMMIT_SECONDS,
        Unit::Seconds,
        "Time from a commit's hand-over to the writer until it is durable, seconds."
    );
    describe_gauge!(STATE_QUEUE, "Commits waiting for the state writer.");
    describe_gauge!(
        STATE_PENDING,
        "Changed keys not yet handed to the state writer because it is behind."
    );
    describe_gauge!(
        STATE_BACKLOG,
        "1 while the state writer cannot keep up (changes wait in memory; a crash may lose more than one commit window), else 0."
    );
    describe_counter!(STATE_ERRORS, "Durable state errors, by operation (op).");
    describe_counter!(
        STATE_SNAPSHOTS,
        "Snapshots of the durable state completed (older journals are removed after each)."
    );
    describe_gauge!(STATE_BYTES, "Bytes of the durable state on disk.");
    describe_gauge!(
        STATE_RESTORE_SECONDS,
        "Seconds the last start-up spent restoring the durable state."
    );
    describe_gauge!(
        STATE_RESTORED,
        "Records restored at the last start-up, by kind (registration, subscription, ibcf_dialog)."
    );
}

static GLOBAL: std::sync::Mutex<Option<PrometheusHandle>> = std::sync::Mutex::new(None);

/// The process-wide handle: installs the recorder on first use, then returns clones (so the
/// gateway, the demo and tests in one process share one recorder).
pub fn global_handle() -> Result<PrometheusHandle, RecorderError> {
    let mut g = GLOBAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(h) = g.as_ref() {
        return Ok(h.clone());
    }
    let h = install_recorder()?;
    *g = Some(h.clone());
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_gauge_samples_are_dropped_and_nothing_else() {
        let text = "# HELP g A gauge.\n# TYPE g gauge\ng{t=\"a\"} 1\ng{t=\"b\"} NaN\n\n\
                    # TYPE c counter\nc{t=\"b\"} 2\n\n# TYPE h histogram\nh_sum NaN\nh_count 0\n";
        let out = without_retired(text.to_string());
        assert_eq!(
            out,
            "# HELP g A gauge.\n# TYPE g gauge\ng{t=\"a\"} 1\n\n\
             # TYPE c counter\nc{t=\"b\"} 2\n\n# TYPE h histogram\nh_sum NaN\nh_count 0\n"
        );
        // Nothing to drop: the text as it was.
        let plain = "# TYPE g gauge\ng 1\n".to_string();
        assert_eq!(without_retired(plain.clone()), plain);
    }
}
