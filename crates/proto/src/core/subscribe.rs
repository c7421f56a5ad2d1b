//! Our own SUBSCRIBEs: render what the engine asks for ([`OutSubscribe`]), route it to its
//! first hop and run its client transaction (Timers E/F/K); responses and timeouts go back to
//! the engine through the core.
//!
//! Owns: the SUBSCRIBE client transactions. Never: subscription state (the engine's).

use std::collections::VecDeque;
use std::time::Instant;

use super::ctx::Ctx;
use super::register::addr_uri;
use crate::names;
use crate::sip::{uri_target, writer::RequestBuilder, HeaderName, Message, Target};
use crate::subscription::{OutSubscribe, ResponseInput, SubId, SubscribeKind};
use crate::transaction::{ClientEvent, ClientTransactions, Timers};

/// What a SUBSCRIBE client transaction belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TxUser {
    pub sub: SubId,
    pub cseq: u32,
    pub kind: SubscribeKind,
}

/// The SUBSCRIBE-sending role.
#[derive(Debug)]
pub(super) struct Subscriber {
    tx: ClientTransactions<Target, TxUser>,
    /// Initial SUBSCRIBEs and unsubscribes waiting for a token of
    /// `subscription.max_subscribe_rate`, in the order the engine asked for them.
    paced: VecDeque<OutSubscribe>,
    /// Most that may wait: one minute of SUBSCRIBEs at the configured rate (at least 10,000).
    paced_cap: usize,
}

impl Subscriber {
    pub fn new(timers: Timers, expected_registrations: usize, max_subscribe_rate: u32) -> Self {
        let mut tx = ClientTransactions::new(timers);
        // A registration burst at R per second keeps ≈ 10·R client transactions (the REGISTER
        // to the core and the SUBSCRIBE, until Timer K = T4 after the answer). Sized for a burst
        // of N/128 per second (7,800/s at 1M); beyond it the table grows.
        tx.reserve(expected_registrations / 12);
        Subscriber {
            tx,
            paced: VecDeque::new(),
            paced_cap: (max_subscribe_rate as usize).saturating_mul(60).max(10_000),
        }
    }

    /// Whether no more SUBSCRIBEs may wait for a token.
    pub fn pace_full(&self) -> bool {
        self.paced.len() >= self.paced_cap
    }

    /// Queue a SUBSCRIBE until a token is free (the caller checked [`Subscriber::pace_full`]).
    pub fn pace(&mut self, s: OutSubscribe) {
        self.paced.push_back(s);
    }

    /// SUBSCRIBEs waiting for a token.
    pub fn paced(&self) -> usize {
        self.paced.len()
    }

    /// Put back the SUBSCRIBE [`Subscriber::next_paced`] gave (still no token for it).
    pub fn unpop(&mut self, s: OutSubscribe) {
        self.paced.push_front(s);
    }

    /// The oldest SUBSCRIBE waiting for a token.
    pub fn next_paced(&mut self) -> Option<OutSubscribe> {
        self.paced.pop_front()
    }

    /// Send a SUBSCRIBE. `Err(())` when its first hop cannot be routed: the caller treats it as
    /// a transaction that failed at once (SPEC §4.2: no retry).
    pub fn send(&mut self, now: Instant, ctx: &mut Ctx, s: &OutSubscribe) -> Result<(), ()> {
        let first_hop = s
            .route
            .first()
            .map(String::as_str)
            .unwrap_or(&s.request_uri);
        let Some((t, dest)) = uri_target(first_hop) else {
            tracing::debug!(uri = first_hop, "SUBSCRIBE next hop unroutable");
            metrics::counter!(names::SIP_DROPS, "reason" => "unroutable").increment(1);
            return Err(());
        };
        let branch = ctx.new_branch();
        let bytes = render_subscribe(s, &ctx.our_via(t, &branch));
        ctx.counters.out_request("SUBSCRIBE");
        tracing::debug!(kind = s.kind.as_str(), call_id = %s.call_id, cseq = s.cseq, %dest, "SUBSCRIBE");
        let user = TxUser {
            sub: s.sub,
            cseq: s.cseq,
            kind: s.kind,
        };
        self.tx.start(
            now,
            &branch,
            (t, dest.clone()),
            bytes.clone(),
            t.is_reliable(),
            user,
        );
        ctx.send(t, dest, bytes);
        Ok(())
    }

    /// A response with our Via: the transaction's user when it is one of ours.
    pub fn on_response(&mut self, now: Instant, branch: &str, status: u16) -> Option<TxUser> {
        self.tx.on_response(now, branch, status)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.tx.poll_timeout()
    }

    /// Retransmit what is due; the transactions that timed out are appended to `timeouts`.
    pub fn handle_timeout(&mut self, now: Instant, ctx: &mut Ctx, timeouts: &mut Vec<TxUser>) {
        let mut events = Vec::new();
        self.tx.handle_timeout(now, &mut events);
        for ev in events {
            match ev {
                ClientEvent::Retransmit {
                    dest: (t, d),
                    bytes,
                } => ctx.send(t, d, bytes),
                ClientEvent::Timeout { user } => timeouts.push(user),
            }
        }
    }
}

/// A response to one of our SUBSCRIBEs, for the engine.
pub(super) fn response_input(user: TxUser, msg: &Message) -> ResponseInput {
    ResponseInput {
        status: msg.status().unwrap_or(0),
        cseq: user.cseq,
        expires: msg.expires().ok().flatten(),
        to_tag: msg.to().tag().map(str::to_owned),
        record_route: record_route(msg),
        contact: first_contact(msg),
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
