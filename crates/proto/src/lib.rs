//! # regevent-proto
//!
//! The sans-IO heart of regevent-gw, a P-CSCF/SBC reg-event subscription gateway (RFC 3680,
//! RFC 6665, 3GPP TS 24.229): SIP parsing and editing, reginfo, RFC 3261 transactions, the
//! registrar, the reg-event subscription engine, and the [`core::Core`] that ties them together.
//!
//! ```text
//!  Inbound (bytes, from, listener) ──▶ Core::handle(now, ..) ──▶ poll_transmit() ─▶ Transmit
//!                                       │ register / notify / proxy / ibcf roles
//!                                       │ registrar ⇄ subscription engine (run to quiescence)
//!  now ──────────────────────────────▶ Core::handle_timeout(now) ◀── poll_timeout()
//!                                       └─▶ poll_change(): what state changed (for a store)
//! ```
//!
//! Never: sockets, threads, the wall clock, an async runtime, a metrics exporter, files. Time
//! comes in as an `Instant` argument; counters go through the `metrics` facade only.
#![forbid(unsafe_code)]

pub mod core;
mod memory;
pub mod names;
pub mod reginfo;
pub mod registrar;
pub mod settings;
pub mod sip;
pub mod state;
pub mod subscription;
pub mod time;
pub mod transaction;
