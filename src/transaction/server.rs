//! Server non-INVITE transactions: absorb retransmitted requests.

use std::time::Instant;

use bytes::Bytes;

use super::Timers;

/// Result of looking up an incoming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLookup {
    /// First time seen: process it, then call `respond`.
    New,
    /// A retransmission while we are still working on it: ignore.
    Proceeding,
    /// A retransmission after we answered: send these bytes again, do not process.
    Answered(Bytes),
}

#[derive(Debug)]
pub struct ServerTransactions {
    _t: Timers,
}

impl ServerTransactions {
    pub fn new(timers: Timers) -> Self {
        ServerTransactions { _t: timers }
    }
    /// Key: branch + sent-by + method (RFC 3261 §17.2.3).
    pub fn on_request(&mut self, now: Instant, key: &str, reliable: bool) -> ServerLookup {
        let _ = (now, key, reliable);
        todo!("subscription helper")
    }
    /// Record the final response for the transaction (starts Timer J).
    pub fn respond(&mut self, now: Instant, key: &str, response: Bytes) {
        let _ = (now, key, response);
        todo!()
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }
    pub fn len(&self) -> usize {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
