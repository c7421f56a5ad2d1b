//! # regevent-gw
//!
//! A P-CSCF/SBC reg-event subscription gateway (RFC 3680, RFC 6665, 3GPP TS 24.229): the server
//! around the sans-IO protocol core of [`regevent_proto`].
//!
//! ```text
//!  UE ──REGISTER──▶ transport ──▶ core (regevent-proto, sans-IO) ──▶ transport ──REGISTER──▶ IMS core
//!                                  │  registrar (bindings, implicit set, Service-Route)
//!                                  │  subscription engine ──SUBSCRIBE Event: reg──▶ S-CSCF
//!                                  │  ◀── NOTIFY reginfo+xml ── reginfo parser
//!                                  └─ stats (admin HTTP: /metrics, /api/...) ──▶ Prometheus
//! ```
//!
//! This crate owns what touches the world: sockets (`transport`), the admin HTTP server and CLI
//! client (`stats`), configuration files and the environment (`config`), and the wiring (`app`).
//! The protocol logic is re-exported from `regevent_proto` under its own names.
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod stats;
pub mod store;
pub mod transport;

pub use regevent_proto::{
    core, names, reginfo, registrar, settings, sip, state, subscription, transaction,
};
