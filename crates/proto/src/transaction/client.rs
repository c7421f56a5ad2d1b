//! Client non-INVITE transactions keyed by Via branch (RFC 3261 §17.1.2).
//!
//! Trying/Proceeding: Timer E retransmits over unreliable transports (T1, 2T1, … capped at T2;
//! T2 once a provisional arrived), Timer F (64×T1) reports a timeout. Completed: Timer K (T4
//! unreliable, 0 reliable) absorbs retransmitted final responses. One heap for all transactions,
//! stale entries dropped lazily.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::table::TxTable;
use super::Timers;
use crate::time::DeadlineQueue;

/// What the client transactions report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent<D, U> {
    /// Send (a retransmission) again.
    Retransmit { dest: D, bytes: Bytes },
    /// Timer F fired without a final response.
    Timeout { user: U },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Trying,
    Proceeding,
    Completed,
}

#[derive(Debug)]
struct Tx<D, U> {
    serial: u64,
    dest: D,
    bytes: Bytes,
    user: U,
    state: State,
    /// Next Timer E (None on reliable transports) and its current interval.
    next_e: Option<Instant>,
    interval: Duration,
    timer_f: Instant,
    timer_k: Option<Instant>,
    /// The deadline currently in the heap.
    deadline: Instant,
}

impl<D, U> Tx<D, U> {
    fn next_deadline(&self) -> Instant {
        match self.state {
            State::Completed => self.timer_k.unwrap_or(self.timer_f),
            _ => self.next_e.map_or(self.timer_f, |e| e.min(self.timer_f)),
        }
    }
}

/// All client transactions (one timer heap).
#[derive(Debug)]
pub struct ClientTransactions<D, U> {
    config: Timers,
    txs: TxTable<Tx<D, U>>,
    timers: DeadlineQueue<Instant, (u64, Arc<str>)>,
    serial: u64,
}

impl<D: Clone, U: Clone> ClientTransactions<D, U> {
    pub fn new(timers: Timers) -> Self {
        ClientTransactions {
            config: timers,
            txs: TxTable::default(),
            timers: DeadlineQueue::new(),
            serial: 0,
        }
    }

    /// Room for `n` transactions in flight (see [`super::ServerTransactions::reserve`]).
    pub fn reserve(&mut self, n: usize) {
        self.txs.reserve(n);
        self.timers.reserve(n);
    }

    /// Start a transaction for a request we sent (first transmission done by the caller).
    /// A live transaction with the same branch is replaced.
    pub fn start(
        &mut self,
        now: Instant,
        branch: &str,
        dest: D,
        bytes: Bytes,
        reliable: bool,
        user: U,
    ) {
        self.serial += 1;
        let t1 = self.config.t1;
        let tx = Tx {
            serial: self.serial,
            dest,
            bytes,
            user,
            state: State::Trying,
            next_e: (!reliable).then(|| now + t1),
            interval: t1,
            timer_f: now + t1 * 64,
            timer_k: None,
            deadline: now,
        };
        let key: Arc<str> = branch.into();
        self.txs.insert(key.clone(), tx);
        self.schedule(&key);
    }

    /// A response with this top-Via branch arrived. Returns the user data when it matches a live
    /// transaction (provisional: stays live; final: completes). Late retransmitted finals → None.
    pub fn on_response(&mut self, now: Instant, branch: &str, status: u16) -> Option<U> {
        let tx = self.txs.get_mut(branch)?;
        if tx.state == State::Completed {
            return None;
        }
        let user = tx.user.clone();
        if status < 200 {
            tx.state = State::Proceeding;
            return Some(user);
        }
        if tx.next_e.is_none() {
            // Reliable transport: Timer K = 0.
            self.txs.remove(branch);
            self.tidy();
            return Some(user);
        }
        tx.state = State::Completed;
        tx.timer_k = Some(now + self.config.t4);
        // Nothing is retransmitted after a final response: the request's bytes go now, not at
        // Timer K (at 15,000 registrations/s that is 5 s × 2 requests × ~1 KB each held for
        // nothing, ~150 MB of memory touched for the first time during a burst).
        tx.bytes = Bytes::new();
        if let Some((key, _)) = self.txs.get_key_value(branch) {
            let key = key.clone();
            self.schedule(&key);
        }
        Some(user)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        // Stale fronts are dropped after every change: this is the earliest live deadline.
        self.timers.next_deadline()
    }

    /// Run due timers; events are appended to `out`.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<ClientEvent<D, U>>) {
        loop {
            let txs = &self.txs;
            let due = self
                .timers
                .pop_due(now, |at, (serial, key)| is_current(txs, at, *serial, key));
            let Some((_, (_, key))) = due else { break };
            let Some(tx) = self.txs.get_mut(&key) else {
                continue;
            };
            if tx.state == State::Completed {
                self.txs.remove(&key);
                continue;
            }
            if tx.timer_f <= now {
                out.push(ClientEvent::Timeout {
                    user: tx.user.clone(),
                });
                self.txs.remove(&key);
                continue;
            }
            if let Some(e) = tx.next_e.filter(|e| *e <= now) {
                out.push(ClientEvent::Retransmit {
                    dest: tx.dest.clone(),
                    bytes: tx.bytes.clone(),
                });
                tx.interval = match tx.state {
                    State::Proceeding => self.config.t2,
                    _ => (tx.interval * 2).min(self.config.t2),
                };
                let next = e + tx.interval;
                tx.next_e = Some(if next <= now { now + tx.interval } else { next });
            }
            self.schedule(&key);
        }
        self.tidy();
    }

    pub fn len(&self) -> usize {
        self.txs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn schedule(&mut self, key: &Arc<str>) {
        let Some(tx) = self.txs.get_mut(key) else {
            return;
        };
        let at = tx.next_deadline();
        tx.deadline = at;
        self.timers.push(at, (tx.serial, key.clone()));
        self.tidy();
    }

    /// Drop stale entries from the front of the queue.
    fn tidy(&mut self) {
        let txs = &self.txs;
        self.timers
            .tidy(|at, (serial, key)| is_current(txs, at, *serial, key));
        self.timers.compact(txs.len(), |at, (serial, key)| {
            is_current(txs, at, *serial, key)
        });
    }
}

/// Whether a queued deadline is the transaction's current one.
fn is_current<D, U>(txs: &TxTable<Tx<D, U>>, at: Instant, serial: u64, key: &str) -> bool {
    txs.get(key)
        .is_some_and(|t| t.serial == serial && t.deadline == at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(base: Instant, at: Instant) -> f64 {
        (at - base).as_secs_f64()
    }

    /// Drive to `until`, returning (time, event) pairs.
    fn run(
        c: &mut ClientTransactions<u8, u32>,
        base: Instant,
        until: f64,
    ) -> Vec<(f64, ClientEvent<u8, u32>)> {
        let mut got = Vec::new();
        while let Some(at) = c.poll_timeout() {
            if secs(base, at) > until {
                break;
            }
            let mut out = Vec::new();
            c.handle_timeout(at, &mut out);
            got.extend(out.into_iter().map(|e| (secs(base, at), e)));
        }
        got
    }

    #[test]
    fn udp_retransmissions_then_timeout() {
        let base = Instant::now();
        let mut c = ClientTransactions::new(Timers::default());
        c.start(
            base,
            "z9hG4bK1",
            7u8,
            Bytes::from_static(b"SUBSCRIBE"),
            false,
            42u32,
        );
        let got = run(&mut c, base, 100.0);
        let times: Vec<f64> = got
            .iter()
            .filter(|(_, e)| matches!(e, ClientEvent::Retransmit { .. }))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(
            times,
            [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
        );
        assert_eq!(got.last(), Some(&(32.0, ClientEvent::Timeout { user: 42 })));
        assert!(c.is_empty());
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn a_final_response_releases_the_request_bytes() {
        let base = Instant::now();
        let mut c = ClientTransactions::new(Timers::default());
        let request = Bytes::from(b"SUBSCRIBE sip:a@b SIP/2.0\r\n".to_vec());
        c.start(base, "b", 1u8, request.clone(), false, 5u32);
        assert!(!request.is_unique(), "kept for Timer E");
        assert_eq!(
            c.on_response(base + Duration::from_millis(20), "b", 200),
            Some(5)
        );
        assert!(request.is_unique(), "not kept through Timer K");
        assert_eq!(
            c.on_response(base + Duration::from_millis(30), "b", 200),
            None
        );
    }

    #[test]
    fn tcp_no_retransmissions_same_timeout() {
        let base = Instant::now();
        let mut c = ClientTransactions::new(Timers::default());
        c.start(base, "b", 1u8, Bytes::new(), true, 9u32);
        assert_eq!(
            run(&mut c, base, 100.0),
            [(32.0, ClientEvent::Timeout { user: 9 })]
        );
    }

    #[test]
    fn provisional_switches_to_t2_and_final_completes() {
        let base = Instant::now();
        let ms = |m: u64| base + Duration::from_millis(m);
        let mut c = ClientTransactions::new(Timers::default());
        c.start(base, "b", 1u8, Bytes::new(), false, 5u32);
        assert_eq!(c.on_response(ms(100), "b", 100), Some(5));
        // E at 0.5 still, then every T2 = 4 s.
        let got = run(&mut c, base, 9.0);
        let times: Vec<f64> = got.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, [0.5, 4.5, 8.5]);
        assert_eq!(c.on_response(ms(9000), "b", 200), Some(5));
        assert_eq!(
            c.on_response(ms(9100), "b", 200),
            None,
            "late final absorbed"
        );
        assert_eq!(c.on_response(ms(9100), "other", 200), None);
        assert!(
            run(&mut c, base, 100.0).is_empty(),
            "no retransmission, no timeout after final"
        );
        assert!(c.is_empty(), "Timer K removed it");
    }

    #[test]
    fn reliable_final_removes_at_once() {
        let base = Instant::now();
        let mut c = ClientTransactions::new(Timers::default());
        c.start(base, "b", 1u8, Bytes::new(), true, 5u32);
        assert_eq!(c.on_response(base, "b", 403), Some(5));
        assert!(c.is_empty());
        assert_eq!(c.on_response(base, "b", 403), None);
        assert_eq!(c.poll_timeout(), None);
    }
}
