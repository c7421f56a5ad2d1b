//! Our own SUBSCRIBEs: render the engine's `OutSubscribe`, route it, run its client transaction,
//! and hand responses back to the engine. Also applies the engine's registration actions.

use std::time::Instant;

use super::register::addr_uri;
use super::{uri_target, Gateway, TxUser};
use crate::names;
use crate::registrar::BindingMatch;
use crate::sip::{writer::RequestBuilder, HeaderName, Message};
use crate::subscription::{OutSubscribe, Output, RegAction, ResponseInput};

impl Gateway {
    /// Send everything the engine queued, and apply its registration actions.
    pub(super) fn drain_engine(&mut self, now: Instant) {
        let mut events = std::mem::take(&mut self.events);
        while let Some(out) = self.engine.poll_output() {
            match out {
                Output::Send(s) => self.send_subscribe(now, &s),
                Output::Reg(a) => {
                    self.apply_reg_action(now, &a, &mut events);
                    self.apply_reg_events(now, &mut events);
                }
            }
        }
        self.events = events;
    }

    fn apply_reg_action(
        &mut self,
        now: Instant,
        a: &RegAction,
        events: &mut Vec<crate::registrar::RegEvent>,
    ) {
        use crate::registrar::RemovalReason;
        let label = match a {
            RegAction::NetworkDeregistration { default_pui } => {
                self.registrar
                    .remove(default_pui, RemovalReason::Network, events);
                "network_deregistration"
            }
            RegAction::AddPui { default_pui, pui } => {
                self.registrar.add_pui(default_pui, pui);
                "add_pui"
            }
            RegAction::RemovePui { default_pui, pui } => {
                self.registrar.remove_pui(default_pui, pui);
                "remove_pui"
            }
            RegAction::RemoveBinding {
                default_pui,
                contact,
            } => {
                let m = BindingMatch {
                    uri: &contact.uri,
                    instance: contact.instance.as_deref(),
                    reg_id: contact.reg_id,
                };
                self.registrar.remove_binding(default_pui, m, events);
                "remove_binding"
            }
            RegAction::UpdateBindingExpiry {
                default_pui,
                contact,
                expires,
            } => {
                let m = BindingMatch {
                    uri: &contact.uri,
                    instance: contact.instance.as_deref(),
                    reg_id: contact.reg_id,
                };
                self.registrar
                    .update_binding_expiry(now, default_pui, m, *expires);
                "update_binding_expiry"
            }
        };
        // `regevent_registration_actions_total` is counted by the engine when it emits the action.
        tracing::debug!(action = label, "registration action from NOTIFY");
    }

    fn send_subscribe(&mut self, now: Instant, s: &OutSubscribe) {
        let first_hop = s
            .route
            .first()
            .map(String::as_str)
            .unwrap_or(&s.request_uri);
        let Some((t, dest)) = uri_target(first_hop) else {
            // Unroutable: behave as a transaction that failed at once (SPEC §4.2: no retry).
            tracing::warn!(uri = first_hop, "SUBSCRIBE next hop unroutable");
            metrics::counter!(names::SIP_DROPS, "reason" => "unroutable").increment(1);
            self.engine.on_transaction_timeout(now, s.sub, s.cseq);
            return;
        };
        let branch = self.new_branch();
        let bytes = render_subscribe(s, &self.our_via(t, &branch));
        self.counters.out_request("SUBSCRIBE");
        tracing::debug!(kind = s.kind.as_str(), call_id = %s.call_id, cseq = s.cseq, %dest, "SUBSCRIBE");
        self.client_tx.start(
            now,
            &branch,
            (t, dest.clone()),
            bytes.clone(),
            t == crate::sip::Transport::Tcp,
            TxUser {
                sub: s.sub,
                cseq: s.cseq,
                kind: s.kind,
            },
        );
        self.send(t, dest, bytes);
    }

    pub(super) fn on_subscribe_response(&mut self, now: Instant, user: TxUser, msg: &Message) {
        // `regevent_subscribe_responses_total` is counted by the engine (it knows stale responses).
        let status = msg.status().unwrap_or(0);
        let resp = ResponseInput {
            status,
            cseq: user.cseq,
            expires: msg.expires().ok().flatten(),
            to_tag: msg.to().tag().map(str::to_owned),
            record_route: record_route(msg),
            contact: first_contact(msg),
        };
        self.engine.on_response(now, user.sub, &resp);
        self.drain_engine(now);
    }
}

/// Record-Route URIs in the order received.
pub(super) fn record_route(msg: &Message) -> Vec<String> {
    msg.header_values(HeaderName::RecordRoute)
        .into_iter()
        .map(|v| addr_uri(v).to_owned())
        .collect()
}

pub(super) fn first_contact(msg: &Message) -> Option<String> {
    msg.header_values(HeaderName::Contact)
        .first()
        .map(|v| addr_uri(v).to_owned())
}

/// Render a SUBSCRIBE (SPEC §2.3).
pub fn render_subscribe(s: &OutSubscribe, via: &str) -> bytes::Bytes {
    let mut b = RequestBuilder::new("SUBSCRIBE", &s.request_uri);
    b.header("Via", via);
    b.header_num("Max-Forwards", s.max_forwards.into(), "");
    for r in &s.route {
        b.header_parts("Route", &["<", r, ">"]);
    }
    b.header_parts("From", &["<", &s.from, ">;tag=", &s.from_tag]);
    match &s.to_tag {
        Some(t) => b.header_parts("To", &["<", &s.to, ">;tag=", t]),
        None => b.header_parts("To", &["<", &s.to, ">"]),
    };
    b.header("Call-ID", &s.call_id);
    b.header_num("CSeq", s.cseq.into(), " SUBSCRIBE");
    b.header("Event", "reg");
    b.header("Accept", "application/reginfo+xml");
    b.header_num("Expires", s.expires.into(), "");
    b.header_parts("Contact", &["<", &s.contact, ">"]);
    if let Some(pai) = &s.p_asserted_identity {
        b.header_parts("P-Asserted-Identity", &["<", pai, ">"]);
    }
    b.header("Allow-Events", "reg");
    b.finish(None)
}
