//! The operator's view of the live subscriptions (SPEC §8): one row per subscription, a filter,
//! a page. Built by [`super::Core::subscription_page`]; served by the admin API and the CLI.
//!
//! Owns: what a [`SubscriptionFilter`] means (exact trunk group, exact state, PUI prefix; empty
//! strings match everything).

use serde::{Deserialize, Serialize};

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

impl SubscriptionFilter {
    /// Whether `row` passes the filter. Empty or absent fields match everything.
    pub fn matches(&self, row: &SubscriptionRow) -> bool {
        self.matches_fields(&row.default_pui, &row.trunk_group, &row.state)
    }

    /// The same test on the fields themselves (the core filters before building rows).
    pub fn matches_fields(&self, default_pui: &str, trunk_group: &str, state: &str) -> bool {
        fn set(v: &Option<String>) -> Option<&str> {
            v.as_deref().filter(|s| !s.is_empty())
        }
        set(&self.trunk_group).is_none_or(|t| trunk_group == t)
            && set(&self.state).is_none_or(|s| state == s)
            && set(&self.pui_prefix).is_none_or(|p| default_pui.starts_with(p))
    }

    /// Whether the filter selects everything.
    pub fn is_empty(&self) -> bool {
        [&self.trunk_group, &self.state, &self.pui_prefix]
            .iter()
            .all(|f| f.as_deref().is_none_or(str::is_empty))
    }
}

/// One registration as operators see it (`/api/registrations?pui=`), times as Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistrationView {
    pub default_pui: String,
    pub trunk_group: String,
    /// The implicit registration set, default PUI first.
    pub implicit_puis: Vec<String>,
    pub service_route: Vec<String>,
    pub bindings: Vec<BindingView>,
}

/// One contact binding of a registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingView {
    pub contact: String,
    /// `+sip.instance` and `reg-id` (RFC 5626), when registered with them.
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
    pub expires_at_unix: f64,
    /// The UE's flow: `udp` or `tcp`, its address, the listener index it arrived on.
    pub transport: String,
    pub source: String,
    pub listener: u16,
}
