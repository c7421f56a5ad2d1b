//! Server non-INVITE transactions (RFC 3261 §17.2.2): absorb retransmitted requests.
//!
//! Trying (no response yet): retransmissions are ignored. Completed: the final response is re-sent
//! for every retransmission until Timer J (64×T1 unreliable; 0 reliable, i.e. forgotten at once).
//! A transaction never answered is forgotten after 64×T1 as well, so a caller that drops a
//! request cannot leak entries.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::table::TxTable;
use super::Timers;
use crate::time::DeadlineQueue;

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
struct Tx {
    serial: u64,
    reliable: bool,
    response: Option<Bytes>,
    deadline: Instant,
}

#[derive(Debug)]
pub struct ServerTransactions {
    config: Timers,
    txs: TxTable<Tx>,
    /// Each transaction's deadline, keyed by (serial, key); `Tx::serial` says which is current.
    timers: DeadlineQueue<Instant, (u64, Arc<str>)>,
    serial: u64,
}

impl ServerTransactions {
    pub fn new(timers: Timers) -> Self {
        ServerTransactions {
            config: timers,
            txs: TxTable::default(),
            timers: DeadlineQueue::new(),
            serial: 0,
        }
    }

    /// Room for `n` transactions in flight (table and timer heap), so that a burst does not
    /// pause SIP processing while they grow.
    pub fn reserve(&mut self, n: usize) {
        self.txs.reserve(n);
        self.timers.reserve(n);
    }

    /// Key: branch + sent-by + method (RFC 3261 §17.2.3).
    pub fn on_request(&mut self, now: Instant, key: &str, reliable: bool) -> ServerLookup {
        let serial = self.serial + 1;
        let deadline = now + self.config.t1 * 64;
        let make = || Tx {
            serial,
            reliable,
            response: None,
            deadline,
        };
        let Some((key, tx, inserted)) = self.txs.entry(key, make) else {
            return ServerLookup::New;
        };
        if !inserted {
            return match &tx.response {
                Some(b) => ServerLookup::Answered(b.clone()),
                None => ServerLookup::Proceeding,
            };
        }
        let key = key.clone();
        self.serial = serial;
        self.timers.push(deadline, (serial, key));
        self.tidy();
        ServerLookup::New
    }

    /// Record the final response for the transaction (starts Timer J).
    pub fn respond(&mut self, now: Instant, key: &str, response: Bytes) {
        let deadline = now + self.config.t1 * 64;
        // Answered without `on_request`: completed all the same (over an unreliable transport).
        let started = || Tx {
            serial: 0,
            reliable: false,
            response: None,
            deadline,
        };
        let Some((k, tx, _)) = self.txs.entry(key, started) else {
            return;
        };
        if tx.reliable {
            self.txs.remove(key);
            self.tidy();
            return;
        }
        self.serial += 1;
        tx.serial = self.serial;
        tx.response = Some(response);
        tx.deadline = deadline;
        let k = k.clone();
        self.timers.push(deadline, (self.serial, k));
        self.tidy();
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        loop {
            let txs = &self.txs;
            let due = self
                .timers
                .pop_due(now, |_, (serial, key)| is_current(txs, *serial, key));
            let Some((_, (_, key))) = due else { break };
            self.txs.remove(&key);
        }
        self.tidy();
    }

    pub fn len(&self) -> usize {
        self.txs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn tidy(&mut self) {
        let txs = &self.txs;
        self.timers
            .tidy(|_, (serial, key)| is_current(txs, *serial, key));
        self.timers
            .compact(txs.len(), |_, (serial, key)| is_current(txs, *serial, key));
    }
}

/// Whether a queued deadline is the transaction's current one (a transaction's serial changes
/// whenever its deadline does).
fn is_current(txs: &TxTable<Tx>, serial: u64, key: &str) -> bool {
    txs.get(key).is_some_and(|t| t.serial == serial)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retransmission_gets_same_bytes_until_timer_j() {
        let base = Instant::now();
        let s = |x: u64| base + Duration::from_secs(x);
        let mut st = ServerTransactions::new(Timers::default());
        assert_eq!(st.on_request(base, "k", false), ServerLookup::New);
        assert_eq!(st.on_request(base, "k", false), ServerLookup::Proceeding);
        let resp = Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n");
        st.respond(s(1), "k", resp.clone());
        assert_eq!(
            st.on_request(s(2), "k", false),
            ServerLookup::Answered(resp.clone())
        );
        assert_eq!(st.poll_timeout(), Some(s(33)));
        st.handle_timeout(s(32));
        assert_eq!(
            st.on_request(s(32), "k", false),
            ServerLookup::Answered(resp)
        );
        st.handle_timeout(s(33));
        assert!(st.is_empty());
        assert_eq!(st.poll_timeout(), None);
        assert_eq!(st.on_request(s(34), "k", false), ServerLookup::New);
    }

    #[test]
    fn reliable_forgets_at_once() {
        let base = Instant::now();
        let mut st = ServerTransactions::new(Timers::default());
        assert_eq!(st.on_request(base, "k", true), ServerLookup::New);
        st.respond(base, "k", Bytes::from_static(b"x"));
        assert!(st.is_empty());
        assert_eq!(st.poll_timeout(), None);
        assert_eq!(st.on_request(base, "k", true), ServerLookup::New);
    }

    #[test]
    fn unanswered_is_forgotten() {
        let base = Instant::now();
        let mut st = ServerTransactions::new(Timers::default());
        st.on_request(base, "k", false);
        st.handle_timeout(base + Duration::from_secs(32));
        assert!(st.is_empty());
    }
}
