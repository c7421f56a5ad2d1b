//! # regevent-gw
//!
//! A P-CSCF/SBC reg-event subscription gateway (RFC 3680, RFC 6665, 3GPP TS 24.229).
//!
//! ```text
//!  UE ──REGISTER──▶ transport ──▶ gateway (sans-IO) ──▶ transport ──REGISTER──▶ IMS core
//!                                  │  registrar (bindings, implicit set, Service-Route)
//!                                  │  subscription engine ──SUBSCRIBE Event: reg──▶ S-CSCF
//!                                  │  ◀── NOTIFY reginfo+xml ── reginfo parser
//!                                  └─ stats (admin HTTP: /metrics, /api/...) ──▶ Prometheus
//! ```
//!
//! The protocol logic (`sip`, `transaction`, `registrar`, `subscription`, `reginfo`, `gateway`)
//! takes messages and the current time and returns what to send and when to wake; only
//! `transport` and `stats::admin` touch sockets.
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod demo;
pub mod gateway;
pub mod lab;
mod memory;
pub mod reginfo;
pub mod registrar;
pub mod sip;
pub mod stats;
pub mod subscription;
pub mod transaction;
pub mod transport;
