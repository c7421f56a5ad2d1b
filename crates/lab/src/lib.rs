//! Emulated IMS core (registrar + reg-event notifier) and emulated UEs, over real loopback
//! sockets. Used by the integration tests, `regevent-gw demo` and `regevent-gw loadgen`.
//! Never used by the gateway itself.

pub mod core;
pub mod demo;
pub mod loadgen;
pub mod peer;
pub mod reginfo_doc;
pub mod sim;
pub mod ue;
