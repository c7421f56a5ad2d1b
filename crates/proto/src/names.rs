//! Every metric name, in one place (documented in docs/metrics.md).
//! Labels: `kind` (initial|refresh|unsubscribe|full_state), `trunk_group`, `class` (2xx..6xx),
//! `reason` (SubRemoval::as_str), `outcome`, `method`, `direction` (in|out), `state`.

/// SUBSCRIBEs we sent, by kind and trunk_group (retransmissions not counted).
pub const SUBSCRIBES_SENT: &str = "regevent_subscribes_sent_total";
/// Final responses to our SUBSCRIBEs, by class (2xx, 3xx, ...) and kind.
pub const SUBSCRIBE_RESPONSES: &str = "regevent_subscribe_responses_total";
/// SUBSCRIBE client transactions that timed out (Timer F), by kind.
pub const SUBSCRIBE_TIMEOUTS: &str = "regevent_subscribe_timeouts_total";
/// Subscriptions removed, by reason.
pub const SUBSCRIPTION_REMOVALS: &str = "regevent_subscription_removals_total";
/// Subscriptions created (initial SUBSCRIBE queued), by trunk_group.
pub const SUBSCRIPTIONS_CREATED: &str = "regevent_subscriptions_created_total";
/// NOTIFYs received for our subscriptions, by outcome (accepted, malformed, unsupported_media,
/// unknown_dialog, stale_version, version_gap, not_full_state, terminated).
pub const NOTIFYS: &str = "regevent_notifies_total";
/// In-dialog SUBSCRIBEs sent to re-request full state after a version gap.
pub const FULL_STATE_REQUESTS: &str = "regevent_full_state_requests_total";
/// Tolerated oddities from notifiers, by kind (see docs/metrics.md).
pub const NOTIFY_TOLERANCES: &str = "regevent_notify_tolerances_total";
/// Registration actions driven by NOTIFY, by action.
pub const REG_ACTIONS: &str = "regevent_registration_actions_total";
/// Live subscriptions, by trunk_group and state (gauge).
pub const SUBSCRIPTIONS_LIVE: &str = "regevent_subscriptions";
/// Live registrations by trunk_group (gauge).
pub const REGISTRATIONS_LIVE: &str = "regevent_registrations";
/// Registrations with no live subscription on a reg-event trunk (blind to network dereg), gauge.
pub const REGISTRATIONS_UNSUBSCRIBED: &str = "regevent_registrations_without_subscription";
/// Registration lifecycle events, by event (initial, reregistration, removed_*) and trunk_group.
pub const REGISTRATION_EVENTS: &str = "regevent_registration_events_total";
/// SIP messages in/out, by direction, method (responses: method of CSeq) and kind (request|response).
pub const SIP_MESSAGES: &str = "regevent_sip_messages_total";
/// Messages that failed to parse, by transport, and whether a 400 was sent (`answered`).
pub const SIP_PARSE_ERRORS: &str = "regevent_sip_parse_errors_total";
/// Messages dropped, by reason (oversize, unparseable, no_trunk_group, loop, ...).
pub const SIP_DROPS: &str = "regevent_sip_dropped_total";
/// Build info gauge (=1) with `version`.
pub const BUILD_INFO: &str = "regevent_build_info";
/// Per-subscription series on /metrics/subscriptions.
pub const SUB_INFO: &str = "regevent_subscription_info";
pub const SUB_EXPIRES: &str = "regevent_subscription_expires_timestamp_seconds";
pub const SUB_NEXT_REFRESH: &str = "regevent_subscription_next_refresh_timestamp_seconds";
pub const SUB_LISTED: &str = "regevent_subscription_series_listed";
pub const SUB_OMITTED: &str = "regevent_subscription_series_omitted";
pub const SUB_CAP: &str = "regevent_subscription_series_cap";
/// Scrape duration of the subscription list, seconds (histogram).
pub const SCRAPE_SECONDS: &str = "regevent_admin_scrape_duration_seconds";
/// Admin HTTP requests served, by route (metrics, subscriptions, api_subscriptions, api_stats,
/// healthz, readyz, other) and status code.
pub const ADMIN_REQUESTS: &str = "regevent_admin_requests_total";
/// Durable state (SPEC §10): group commits written (and made durable), by backend.
pub const STATE_COMMITS: &str = "regevent_state_commits_total";
/// Records (puts and deletes) written to the store, by backend.
pub const STATE_RECORDS: &str = "regevent_state_records_written_total";
/// Time from a commit's hand-over to the writer until it is durable, seconds (histogram).
pub const STATE_COMMIT_SECONDS: &str = "regevent_state_commit_duration_seconds";
/// Commits waiting for the writer (gauge).
pub const STATE_QUEUE: &str = "regevent_state_queue_depth";
/// Changed keys not yet handed to the writer because it is behind (gauge).
pub const STATE_PENDING: &str = "regevent_state_pending_changes";
/// 1 while the writer cannot keep up (changes wait in memory), else 0 (gauge).
pub const STATE_BACKLOG: &str = "regevent_state_backlogged";
/// Store errors, by operation (write, sync, snapshot, ...).
pub const STATE_ERRORS: &str = "regevent_state_errors_total";
/// Snapshots completed (after which older journals are removed).
pub const STATE_SNAPSHOTS: &str = "regevent_state_snapshots_total";
/// Bytes of the store on disk (gauge).
pub const STATE_BYTES: &str = "regevent_state_bytes";
/// Seconds the last start-up spent restoring state (gauge).
pub const STATE_RESTORE_SECONDS: &str = "regevent_state_restore_seconds";
/// Records restored at the last start-up, by kind (registration, subscription, ibcf_dialog) (gauge).
pub const STATE_RESTORED: &str = "regevent_state_records_restored";

/// Requests refused (503) and responses dropped by overload control, by `class` and `reason`.
pub const OVERLOAD_REJECTED: &str = "regevent_overload_rejected_total";
/// 1 while an overload episode runs (something refused in the last second), else 0.
pub const OVERLOAD_ACTIVE: &str = "regevent_overload_active";
/// How long the oldest waiting message has waited, as a fraction of `overload.max_delay`.
pub const OVERLOAD_LEVEL: &str = "regevent_overload_level";
/// Messages waiting to be served.
pub const OVERLOAD_QUEUED: &str = "regevent_overload_queued";
/// Seconds spent overloaded since start.
pub const OVERLOAD_SECONDS: &str = "regevent_overload_seconds";
/// 1 while the Redis backend gets answers from Redis, 0 while it does not (serving from memory),
/// by backend.
pub const STATE_CONNECTED: &str = "regevent_state_connected";
