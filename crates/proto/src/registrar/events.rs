//! Registration lifecycle events.

use std::sync::Arc;
use std::time::Duration;

/// Why a registration went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemovalReason {
    /// REGISTER Expires 0 / `Contact: *` removed the last binding.
    UserDeregistration,
    /// The last binding expired without re-registration.
    Expired,
    /// NOTIFY reginfo showed the default PUI's registration terminated (or its last contact gone).
    Network,
}

impl RemovalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalReason::UserDeregistration => "user_deregistration",
            RemovalReason::Expired => "registration_expired",
            RemovalReason::Network => "network_deregistration",
        }
    }
}

/// What happened to a registration. `default_pui` identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegEvent {
    /// A successful REGISTER with at least one binding remaining.
    Registered {
        default_pui: Arc<str>,
        trunk_group: Arc<str>,
        /// No live registration existed for this default PUI before this 2xx.
        initial: bool,
        /// Implicit registration set (P-Associated-URI), default PUI first. The registration's
        /// own list, shared (the subscription engine keeps it instead of a copy).
        associated: Arc<[Arc<str>]>,
        /// Service-Route of this 2xx, in order.
        service_route: Vec<String>,
        /// Expiry granted to the binding(s) this REGISTER touched (the longest of them).
        granted: Duration,
        /// Number of bindings now.
        bindings: usize,
    },
    /// A binding (contact) added or removed, registration still alive.
    BindingAdded {
        default_pui: Arc<str>,
        contact: String,
    },
    BindingRemoved {
        default_pui: Arc<str>,
        contact: String,
    },
    /// The registration is gone (all bindings).
    Removed {
        default_pui: Arc<str>,
        trunk_group: Arc<str>,
        reason: RemovalReason,
    },
}
