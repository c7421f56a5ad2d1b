//! RFC 3261 transactions, sans-IO: non-INVITE client (§17.1.2) and server (§17.2.2), and the
//! INVITE client transactions a proxy keeps (§17.1.1, §16.6).
//!
//! Client: Timer E retransmits over unreliable transports (T1, doubling to T2), Timer F (64×T1)
//! times out, Timer K (T4 / 0 on reliable) absorbs late retransmitted responses.
//! Server: the last response is cached and re-sent for a retransmitted request until Timer J
//! (64×T1 unreliable, 0 reliable), so a retransmitted NOTIFY is not processed twice.
//! Never: sockets, clocks.

mod client;
mod invite;
mod server;
mod table;

pub use client::{ClientEvent, ClientTransactions};
pub use invite::{InviteEvent, InviteTransactions, TIMER_C};
pub use server::{ServerLookup, ServerTransactions};

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}
