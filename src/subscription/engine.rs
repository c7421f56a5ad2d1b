//! The engine (filled in by the subscription helper).

use std::time::Instant;

use super::types::*;
use crate::registrar::RegEvent;

#[derive(Debug)]
pub struct Engine {
    _cfg: EngineConfig,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Engine { _cfg: cfg }
    }
    /// A registration lifecycle event. `policy` is the trunk group's resolved policy.
    pub fn on_registration(&mut self, now: Instant, ev: &RegEvent, policy: &SubscribePolicy) {
        let _ = (now, ev, policy);
        todo!("subscription helper")
    }
    /// Find our subscription for an incoming NOTIFY: Call-ID and our tag (the NOTIFY's To tag).
    pub fn find_dialog(&self, call_id: &str, local_tag: &str) -> Option<SubId> {
        let _ = (call_id, local_tag);
        todo!()
    }
    /// A final (or provisional) response to the SUBSCRIBE with `resp.cseq`.
    pub fn on_response(&mut self, now: Instant, sub: SubId, resp: &ResponseInput) {
        let _ = (now, sub, resp);
        todo!()
    }
    /// The client transaction of the SUBSCRIBE with `cseq` timed out (Timer F).
    pub fn on_transaction_timeout(&mut self, now: Instant, sub: SubId, cseq: u32) {
        let _ = (now, sub, cseq);
        todo!()
    }
    /// A NOTIFY for `sub`. Returns the answer; queues outputs (RegActions, full-state SUBSCRIBE).
    pub fn on_notify(&mut self, now: Instant, sub: SubId, n: &NotifyInput<'_>) -> NotifyAnswer {
        let _ = (now, sub, n);
        todo!()
    }
    /// Network-initiated deregistration of `default_pui` signalled from outside the NOTIFY path.
    pub fn network_deregistration(&mut self, now: Instant, default_pui: &str) {
        let _ = (now, default_pui);
        todo!()
    }
    pub fn poll_output(&mut self) -> Option<Output> {
        todo!()
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }
    /// Number of live subscriptions.
    pub fn len(&self) -> usize {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Has `default_pui` a live subscription?
    pub fn has_subscription(&self, default_pui: &str) -> bool {
        let _ = default_pui;
        todo!()
    }
    /// Visit live subscriptions (for the admin API / scrape), in id order.
    pub fn for_each_view(&self, f: &mut dyn FnMut(SubscriptionView)) {
        let _ = f;
        todo!()
    }
    /// Live subscriptions by (trunk group, state), for gauges.
    pub fn counts(&self) -> Vec<(std::sync::Arc<str>, SubState, usize)> {
        todo!()
    }
}
