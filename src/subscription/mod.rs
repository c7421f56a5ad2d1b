//! The reg-event subscription engine (SPEC §2–§6): a deterministic, sans-IO state machine.
//!
//! Inputs: registration lifecycle events (`registrar::RegEvent`), responses to our SUBSCRIBEs,
//! client-transaction timeouts, NOTIFYs (already parsed: Subscription-State + reginfo document),
//! and the current time. Outputs (`poll_output`): SUBSCRIBEs to send (structured; the gateway
//! renders them with `sip::writer`) and actions on registrations; `poll_timeout` says when to call
//! `handle_timeout` next. One timer heap for all subscriptions.
//!
//! Never: sockets, the wall clock, SIP parsing or rendering, the registrar's data.

mod engine;
mod refresh;
mod types;

pub use engine::Engine;
pub use refresh::refresh_delay;
pub use types::*;
