//! Engine inputs and outputs.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Engine settings (from `config`).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Our SIP URI: From of our SUBSCRIBEs (`sip.identity`).
    pub identity: String,
    /// Our Contact URI.
    pub contact: String,
    /// P-Asserted-Identity to put on SUBSCRIBEs, if configured.
    pub p_asserted_identity: Option<String>,
    pub max_forwards: u32,
    /// Added to the registration's granted expiry (SPEC §2.2: 60 s).
    pub expiry_margin: Duration,
    /// Ceiling on SUBSCRIBEs sent per second (refresh storm guard). 0 = unlimited.
    pub max_subscribe_rate: u32,
    /// Seed for Call-IDs and tags (tests fix it; production takes it from the OS).
    pub seed: u64,
    /// How long a subscription we unsubscribed stays recognisable after it left the live list,
    /// so that the final NOTIFY (Subscription-State: terminated) and the response to the
    /// unsubscribe are absorbed (200 OK, not 481). Default 32 s (64×T1).
    pub linger: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            identity: "sip:pcscf.invalid".to_owned(),
            contact: "sip:pcscf.invalid".to_owned(),
            p_asserted_identity: None,
            max_forwards: 70,
            expiry_margin: Duration::from_secs(60),
            max_subscribe_rate: 0,
            seed: 0,
            linger: Duration::from_secs(32),
        }
    }
}

/// What the trunk group's profile says for this registration, resolved by the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribePolicy {
    /// `support_reg_event && role == pcscf`.
    pub enabled: bool,
    /// Route for the initial SUBSCRIBE: home → the registration's Service-Route; visited → the
    /// routing policy's answer (profile `subscribe_route`).
    pub route: Vec<String>,
    /// Profile `resubscribe_on_reregistration`.
    pub resubscribe_on_reregistration: bool,
}

/// Engine-wide subscription identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscribeKind {
    Initial,
    Refresh,
    Unsubscribe,
    /// In-dialog SUBSCRIBE asking for full state after a version gap (RFC 3680 §5.2).
    FullStateRequest,
}

impl SubscribeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscribeKind::Initial => "initial",
            SubscribeKind::Refresh => "refresh",
            SubscribeKind::Unsubscribe => "unsubscribe",
            SubscribeKind::FullStateRequest => "full_state",
        }
    }
}

/// A SUBSCRIBE to send: everything the gateway needs to render and route it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutSubscribe {
    pub sub: SubId,
    pub kind: SubscribeKind,
    pub trunk_group: Arc<str>,
    /// Initial: the default PUI. In dialog: the remote target (Contact of the dialog).
    pub request_uri: String,
    /// Route set: initial → policy route; in dialog → the dialog's route set.
    pub route: Vec<String>,
    /// To URI (default PUI) and, in dialog, the remote tag.
    pub to: String,
    pub to_tag: Option<String>,
    /// From URI (our identity) and our tag.
    pub from: String,
    pub from_tag: String,
    pub call_id: String,
    pub cseq: u32,
    pub expires: u32,
    pub contact: String,
    pub p_asserted_identity: Option<String>,
    pub max_forwards: u32,
}

/// An action on registration state driven by a NOTIFY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegAction {
    /// The default PUI's registration is terminated: remove the whole registration (SPEC §5.2).
    NetworkDeregistration {
        default_pui: Arc<str>,
    },
    /// A PUI joins / leaves the implicit set.
    AddPui {
        default_pui: Arc<str>,
        pui: String,
    },
    RemovePui {
        default_pui: Arc<str>,
        pui: String,
    },
    /// A contact (binding) is gone. Match by URI, and by instance + reg-id where present.
    RemoveBinding {
        default_pui: Arc<str>,
        contact: BindingRef,
    },
    /// `shortened` / `refreshed`: the binding now expires in `expires` seconds.
    UpdateBindingExpiry {
        default_pui: Arc<str>,
        contact: BindingRef,
        expires: u32,
    },
}

/// Identifies a binding from a reginfo `<contact>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRef {
    pub uri: String,
    /// `+sip.instance` (quotes and `<>` stripped) and `reg-id`, when present.
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
}

/// What the engine wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send(OutSubscribe),
    Reg(RegAction),
}

/// A response to one of our SUBSCRIBEs (matched by the gateway through the client transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseInput {
    pub status: u16,
    pub cseq: u32,
    /// Expires header of a 2xx.
    pub expires: Option<u32>,
    pub to_tag: Option<String>,
    /// Record-Route values in the order received.
    pub record_route: Vec<String>,
    /// Contact URI (without `<>`).
    pub contact: Option<String>,
}

/// A NOTIFY already matched to a subscription and parsed by the gateway.
#[derive(Debug, Clone)]
pub struct NotifyInput<'a> {
    pub cseq: u32,
    /// The notifier's tag (From tag of the NOTIFY).
    pub remote_tag: &'a str,
    pub record_route: Vec<String>,
    pub contact: Option<String>,
    /// Subscription-State: state, expires, reason.
    pub sub_state: crate::sip::SubscriptionStatus,
    pub sub_expires: Option<u32>,
    pub sub_reason: Option<&'a str>,
    /// The reginfo document, if the NOTIFY had a body (the gateway answers 400/415 itself for
    /// malformed bodies and wrong types and never calls the engine then).
    pub doc: Option<&'a crate::reginfo::Reginfo>,
}

/// How the gateway must answer a NOTIFY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyAnswer {
    pub status: u16,
    pub reason: &'static str,
}

/// Subscription states shown to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubState {
    Pending,
    Active,
    Refreshing,
    Unsubscribing,
}

impl SubState {
    pub fn as_str(self) -> &'static str {
        match self {
            SubState::Pending => "pending",
            SubState::Active => "active",
            SubState::Refreshing => "refreshing",
            SubState::Unsubscribing => "unsubscribing",
        }
    }
}

/// Why a subscription left the engine (metric label `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubRemoval {
    ErrorResponse,
    Timeout,
    NotifyTerminated,
    UserDeregistration,
    NetworkDeregistration,
    RegistrationExpired,
    /// The granted expiry ran out without a successful refresh (e.g. the refresh waited too long
    /// behind the rate limiter), or a 2xx granted 0 seconds.
    Expired,
}

impl SubRemoval {
    pub fn as_str(self) -> &'static str {
        match self {
            SubRemoval::ErrorResponse => "error_response",
            SubRemoval::Timeout => "timeout",
            SubRemoval::NotifyTerminated => "notify_terminated",
            SubRemoval::UserDeregistration => "user_deregistration",
            SubRemoval::NetworkDeregistration => "network_deregistration",
            SubRemoval::RegistrationExpired => "registration_expired",
            SubRemoval::Expired => "subscription_expired",
        }
    }
}

/// A read-only view of one live subscription (SPEC §8), for the admin API and scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionView {
    pub id: SubId,
    pub default_pui: Arc<str>,
    pub trunk_group: Arc<str>,
    pub state: SubState,
    pub call_id: String,
    /// Where it went: the first Route entry (or the Request-URI) of the initial SUBSCRIBE.
    pub registrar: String,
    pub requested_expiry: u32,
    pub granted_expiry: Option<u32>,
    pub expires_at: Option<Instant>,
    pub next_refresh: Option<Instant>,
    pub created: Instant,
    pub last_notify_version: Option<u64>,
    pub implicit_puis: usize,
}
