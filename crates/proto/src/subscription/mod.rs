//! The reg-event subscription engine (SPEC §2–§6): a deterministic, sans-IO state machine.
//!
//! Inputs: registration lifecycle events (`registrar::RegEvent`), responses to our SUBSCRIBEs,
//! client-transaction timeouts, NOTIFYs (already parsed: Subscription-State + reginfo document),
//! and the current time. Outputs (`poll_output`): SUBSCRIBEs to send (structured; the gateway
//! renders them with `sip::writer`) and actions on registrations; `poll_timeout` says when to call
//! `handle_timeout` next. One timer heap for all subscriptions.
//!
//! ```text
//!  RegEvent ──▶ on_registration ──▶ Initial SUBSCRIBE ─┐
//!  2xx/4xx  ──▶ on_response ──────▶ grant / remove      ├──▶ poll_output: Send(OutSubscribe)
//!  Timer F  ──▶ on_transaction_timeout ─▶ remove        │                 Reg(RegAction)
//!  NOTIFY   ──▶ on_notify ───────▶ RegActions, full-state request
//!  time     ──▶ handle_timeout ──▶ refresh ─▶ rate limiter ─┘
//! ```
//!
//! Files: `engine` (API, registration events, removal, timers), `dialog` (responses, in-dialog
//! SUBSCRIBEs), `notify` (NOTIFY and reginfo), `store` (records and indexes), `timers` (clock and
//! heap), `limiter` (refresh storm guard), `refresh` (the SPEC §3 rule).
//!
//! Never: sockets, the wall clock, SIP parsing or rendering, the registrar's data.

mod dialog;
mod engine;
mod limiter;
mod notify;
mod persist;
mod refresh;
mod store;
mod timers;
mod types;

pub use engine::Engine;
pub use refresh::refresh_delay;
pub use types::*;
