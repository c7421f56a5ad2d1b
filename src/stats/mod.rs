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
pub mod query;
pub mod recorder;
pub mod render;

pub use regevent_proto::core::views::{
    BindingView, RegistrationView, SubscriptionFilter, SubscriptionPage, SubscriptionRow,
};
pub use regevent_proto::names;
use tokio::sync::oneshot;

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
    /// The registration of a default PUI (`/api/registrations?pui=`).
    Registration {
        default_pui: String,
        reply: oneshot::Sender<Option<RegistrationView>>,
    },
}
