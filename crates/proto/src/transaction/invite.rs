//! INVITE client transactions of a proxy (RFC 3261 §17.1.1, §16.6 step 11, §16.7), keyed by the
//! branch of our Via.
//!
//! Calling: Timer A retransmits over unreliable transports (T1, doubling), Timer B (64×T1)
//! gives up without any response (the proxy owes its caller a 408). A provisional response
//! stops the retransmissions and starts Timer C (180 s); a final response ends the
//! transaction (the proxy forwards the response and forgets it: 2xx retransmissions and the ACK
//! are end to end). One deadline queue for all transactions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::table::TxTable;
use crate::time::DeadlineQueue;

/// Timer C (RFC 3261 §16.6 step 11): how long a proceeding INVITE is remembered.
pub const TIMER_C: Duration = Duration::from_secs(180);

/// What the INVITE transactions report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteEvent<D, U> {
    /// Send the INVITE again (Timer A).
    Retransmit { dest: D, bytes: Bytes },
    /// Timer B fired before any response: answer the caller (408).
    Timeout { user: U },
}

#[derive(Debug)]
struct Tx<D, U> {
    serial: u64,
    user: U,
    dest: D,
    bytes: Bytes,
    /// The deadline in the queue: the next Timer A, Timer B, or Timer C once answered.
    next: Instant,
    interval: Duration,
    /// Timer B until a response arrives, then Timer C.
    deadline: Instant,
    answered: bool,
}

/// All INVITE client transactions.
#[derive(Debug)]
pub struct InviteTransactions<D, U> {
    t1: Duration,
    txs: TxTable<Tx<D, U>>,
    timers: DeadlineQueue<Instant, (u64, Arc<str>)>,
    serial: u64,
}

impl<D: Clone, U: Clone> InviteTransactions<D, U> {
    pub fn new(t1: Duration) -> Self {
        InviteTransactions {
            t1,
            txs: TxTable::default(),
            timers: DeadlineQueue::new(),
            serial: 0,
        }
    }

    /// Is there a transaction for this branch (a retransmitted INVITE)?
    pub fn contains(&self, branch: &str) -> bool {
        self.txs.get(branch).is_some()
    }

    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Start a transaction for an INVITE sent (first transmission done by the caller).
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
        let deadline = now + self.t1 * 64;
        let next = if reliable { deadline } else { now + self.t1 };
        let key: Arc<str> = branch.into();
        let tx = Tx {
            serial: self.serial,
            user,
            dest,
            bytes,
            next,
            interval: self.t1,
            deadline,
            answered: false,
        };
        self.txs.insert(key.clone(), tx);
        self.timers.push(next, (self.serial, key));
        self.tidy();
    }

    /// A response to the INVITE with this branch: a final one ends the transaction, the first
    /// provisional one stops retransmissions and starts Timer C.
    pub fn on_response(&mut self, now: Instant, branch: &str, status: u16) {
        if status >= 200 {
            self.txs.remove(branch);
        } else if let Some(key) = self.txs.get_key_value(branch).map(|(k, _)| k.clone()) {
            if let Some(tx) = self.txs.get_mut(&key).filter(|tx| !tx.answered) {
                tx.answered = true;
                tx.deadline = now + TIMER_C;
                tx.next = tx.deadline;
                tx.bytes = Bytes::new();
                self.timers.push(tx.next, (tx.serial, key));
            }
        }
        self.tidy();
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Run due timers; events are appended to `out`.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<InviteEvent<D, U>>) {
        loop {
            let txs = &self.txs;
            let due = self
                .timers
                .pop_due(now, |at, (serial, key)| is_current(txs, at, *serial, key));
            let Some((_, (serial, key))) = due else { break };
            let Some(tx) = self.txs.get_mut(&key) else {
                continue;
            };
            if now >= tx.deadline {
                if let Some(tx) = self.txs.remove(&key) {
                    if !tx.answered {
                        out.push(InviteEvent::Timeout { user: tx.user });
                    }
                }
                continue;
            }
            tx.interval *= 2;
            tx.next = (now + tx.interval).min(tx.deadline);
            out.push(InviteEvent::Retransmit {
                dest: tx.dest.clone(),
                bytes: tx.bytes.clone(),
            });
            self.timers.push(tx.next, (serial, key));
        }
        self.tidy();
    }

    fn tidy(&mut self) {
        let txs = &self.txs;
        self.timers
            .tidy(|at, (serial, key)| is_current(txs, at, *serial, key));
        self.timers.compact(txs.len(), |at, (serial, key)| {
            is_current(txs, at, *serial, key)
        });
    }
}

fn is_current<D, U>(txs: &TxTable<Tx<D, U>>, at: Instant, serial: u64, key: &str) -> bool {
    txs.get(key)
        .is_some_and(|t| t.serial == serial && t.next == at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        t: &mut InviteTransactions<u8, u32>,
        base: Instant,
        until: f64,
    ) -> Vec<(f64, InviteEvent<u8, u32>)> {
        let mut got = Vec::new();
        while let Some(at) = t.poll_timeout() {
            if (at - base).as_secs_f64() > until {
                break;
            }
            let mut out = Vec::new();
            t.handle_timeout(at, &mut out);
            got.extend(out.into_iter().map(|e| ((at - base).as_secs_f64(), e)));
        }
        got
    }

    #[test]
    fn timer_a_doubles_until_timer_b_gives_up_with_a_timeout() {
        let base = Instant::now();
        let mut t = InviteTransactions::new(Duration::from_millis(500));
        t.start(base, "b", 1u8, Bytes::from_static(b"INVITE"), false, 9u32);
        let got = run(&mut t, base, 100.0);
        let times: Vec<f64> = got.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, [0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 32.0]);
        assert_eq!(got.last().unwrap().1, InviteEvent::Timeout { user: 9 });
        assert!(t.is_empty());
    }

    #[test]
    fn a_provisional_stops_retransmissions_and_timer_c_forgets_without_a_timeout() {
        let base = Instant::now();
        let mut t = InviteTransactions::new(Duration::from_millis(500));
        t.start(base, "b", 1u8, Bytes::from_static(b"INVITE"), false, 9u32);
        t.on_response(base + Duration::from_millis(100), "b", 180);
        assert!(t.contains("b"));
        let got = run(&mut t, base, 1000.0);
        assert!(got.is_empty(), "{got:?}");
        assert!(t.is_empty(), "forgotten at Timer C");
    }

    #[test]
    fn reliable_transports_only_have_timer_b_and_a_final_ends_it() {
        let base = Instant::now();
        let mut t = InviteTransactions::new(Duration::from_millis(500));
        t.start(base, "b", 1u8, Bytes::new(), true, 9u32);
        assert_eq!(t.poll_timeout(), Some(base + Duration::from_secs(32)));
        t.start(base, "c", 1u8, Bytes::new(), true, 10u32);
        t.on_response(base, "c", 486);
        assert!(!t.contains("c"));
        t.on_response(base, "unknown", 180);
        assert_eq!(
            run(&mut t, base, 100.0),
            [(32.0, InviteEvent::Timeout { user: 9 })]
        );
    }
}
