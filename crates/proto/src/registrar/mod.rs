//! Registration state learned from REGISTER and its 2xx (SPEC §1): bindings, Service-Route,
//! implicit set (P-Associated-URI), trunk group and UE flow. Emits lifecycle events that the
//! subscription engine consumes. Sans-IO: time is passed in.
//!
//! Never: sockets, clocks, SIP transactions.

pub mod events;
mod store;

pub use events::{RegEvent, RemovalReason};
pub use store::*;
