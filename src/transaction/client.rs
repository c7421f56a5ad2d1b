//! Client non-INVITE transactions keyed by Via branch.

use std::time::Instant;

use bytes::Bytes;

use super::Timers;

/// What the client transactions report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent<D, U> {
    /// Send (a retransmission) again.
    Retransmit { dest: D, bytes: Bytes },
    /// Timer F fired without a final response.
    Timeout { user: U },
}

/// All client transactions (one timer heap).
#[derive(Debug)]
pub struct ClientTransactions<D, U> {
    _t: Timers,
    _p: std::marker::PhantomData<(D, U)>,
}

impl<D: Clone, U: Clone> ClientTransactions<D, U> {
    pub fn new(timers: Timers) -> Self {
        ClientTransactions {
            _t: timers,
            _p: std::marker::PhantomData,
        }
    }
    /// Start a transaction for a request we sent (first transmission done by the caller).
    pub fn start(
        &mut self,
        now: Instant,
        branch: &str,
        dest: D,
        bytes: Bytes,
        reliable: bool,
        user: U,
    ) {
        let _ = (now, branch, dest, bytes, reliable, user);
        todo!("subscription helper")
    }
    /// A response with this top-Via branch arrived. Returns the user data when it matches a live
    /// transaction (provisional: stays live; final: completes). Late retransmitted finals → None.
    pub fn on_response(&mut self, now: Instant, branch: &str, status: u16) -> Option<U> {
        let _ = (now, branch, status);
        todo!()
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
    /// Run due timers; events are appended to `out`.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<ClientEvent<D, U>>) {
        let _ = (now, out);
        todo!()
    }
    pub fn len(&self) -> usize {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
