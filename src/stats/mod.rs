//! Statistics (SPEC §8): metric names, the admin HTTP server (`/metrics`,
//! `/metrics/subscriptions`, `/api/subscriptions`, `/api/stats`, `/healthz`, `/readyz`) and the
//! CLI client for it.
//!
//! Counters go through the `metrics` macros (names in `names`). The per-subscription list is
//! rendered at scrape time from the gateway's own state, asked for over a channel
//! (`AdminQuery`), bounded by a cap — never one registered gauge per subscription.
//! Never: SIP processing; the gateway task answers queries between messages.

pub mod admin;
pub mod client;
pub mod exposition;
pub mod http;
pub mod names;
pub mod query;
pub mod recorder;
pub mod render;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// One live subscription as operators see it (SPEC §8), times as Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionRow {
    pub id: u64,
    /// Always `reg`.
    pub package: String,
    pub default_pui: String,
    pub trunk_group: String,
    /// pending | active | refreshing | unsubscribing
    pub state: String,
    pub call_id: String,
    /// The S-CSCF (first Route or Request-URI) the SUBSCRIBE went to.
    pub registrar: String,
    /// The domain of the default PUI.
    pub domain: String,
    pub requested_expiry_s: u32,
    pub granted_expiry_s: Option<u32>,
    pub expires_at_unix: Option<f64>,
    pub next_refresh_unix: Option<f64>,
    pub created_unix: f64,
    pub last_notify_version: Option<u64>,
    pub implicit_puis: u32,
}

/// Filters of `/api/subscriptions` and the CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionFilter {
    pub trunk_group: Option<String>,
    pub pui_prefix: Option<String>,
    pub state: Option<String>,
}

/// One page of the list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionPage {
    /// How many live subscriptions match the filter in all.
    pub total: usize,
    pub offset: usize,
    pub rows: Vec<SubscriptionRow>,
}

/// Questions the admin server asks the gateway task.
#[derive(Debug)]
pub enum AdminQuery {
    /// Rows `offset..offset+limit` of the matching live subscriptions, in id order; with
    /// `after`, the first `limit` rows whose id is greater (`offset` ignored) — the cursor the
    /// scrape uses, so a page costs O(page), not O(table).
    Subscriptions {
        filter: SubscriptionFilter,
        offset: usize,
        after: Option<u64>,
        limit: usize,
        reply: oneshot::Sender<SubscriptionPage>,
    },
}
