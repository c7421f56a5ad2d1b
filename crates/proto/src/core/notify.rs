//! NOTIFYs of our own subscriptions (SPEC §6): absorb retransmissions, check Event,
//! Subscription-State and the body, hand the document to the engine, answer.
//!
//! Owns: the NOTIFY server transactions (Timer J) and the reginfo limits. Never: subscription
//! state (the engine decides), the registrar (the engine's actions reach it through the core).

use std::time::Instant;

use super::ctx::Ctx;
use super::subscribe::{first_contact, record_route};
use super::Inbound;
use crate::names;
use crate::reginfo;
use crate::sip::writer::push_decimal;
use crate::sip::{Dest, HeaderName, Message, SubscriptionState};
use crate::subscription::{Engine, NotifyInput, SubId};
use crate::transaction::{ServerLookup, ServerTransactions, Timers};

/// The NOTIFY-receiving role.
#[derive(Debug)]
pub(super) struct Notifies {
    tx: ServerTransactions,
    reginfo_limits: reginfo::Limits,
}

enum Reject {
    Malformed(String),
    MediaType,
    Event,
}

impl Notifies {
    pub fn new(timers: Timers, reginfo_limits: reginfo::Limits, expected: usize) -> Self {
        let mut tx = ServerTransactions::new(timers);
        // A registration burst at R per second keeps ≈ 64·R server transactions (the UE's
        // REGISTER and the NOTIFY, each until Timer J = 64×T1). Sized for a burst of N/128 per
        // second (7,800/s at 1M); beyond it the table grows.
        tx.reserve(expected / 2);
        Notifies { tx, reginfo_limits }
    }

    /// A NOTIFY in the dialog of subscription `sub`.
    pub fn handle(
        &mut self,
        now: Instant,
        ctx: &mut Ctx,
        engine: &mut Engine,
        sub: SubId,
        inb: &Inbound,
        msg: &Message,
    ) {
        let via = msg.top_via();
        // Server transaction key (RFC 3261 §17.2.3: branch and sent-by).
        let mut key = String::with_capacity(64);
        for part in [via.branch().unwrap_or(""), "|", via.host, ":"] {
            key.push_str(part);
        }
        if let Some(p) = via.port {
            push_decimal(&mut key, p.into());
        }
        key.push_str("|NOTIFY");
        match self.tx.on_request(now, &key, inb.transport.is_reliable()) {
            ServerLookup::New => {}
            ServerLookup::Proceeding => return,
            ServerLookup::Answered(bytes) => {
                metrics::counter!(names::NOTIFYS, "outcome" => "retransmission").increment(1);
                return ctx.send(inb.transport, Dest::Addr(inb.peer), bytes);
            }
        }
        let (code, reason, extra): (u16, String, &[(&str, &str)]) = match self
            .check(now, engine, sub, msg)
        {
            Ok((code, reason)) => (code, reason.to_string(), &[]),
            Err(Reject::Malformed(r)) => {
                metrics::counter!(names::NOTIFYS, "outcome" => "malformed").increment(1);
                tracing::debug!(call_id = msg.call_id(), reason = %r, "NOTIFY rejected");
                (400, r, &[])
            }
            Err(Reject::MediaType) => {
                metrics::counter!(names::NOTIFYS, "outcome" => "unsupported_media").increment(1);
                (
                    415,
                    "Unsupported Media Type".into(),
                    &[("Accept", "application/reginfo+xml")],
                )
            }
            Err(Reject::Event) => {
                metrics::counter!(names::NOTIFYS, "outcome" => "bad_event").increment(1);
                (489, "Bad Event".into(), &[("Allow-Events", "reg")])
            }
        };
        let resp = crate::sip::writer::response(msg, code, &reason, None, extra);
        self.tx.respond(now, &key, resp.clone());
        ctx.counters.out_response("NOTIFY");
        ctx.send(inb.transport, Dest::Addr(inb.peer), resp);
    }

    /// Check the NOTIFY; a good one goes to the engine, which says how to answer. A rejected one
    /// never reaches the engine, so nothing changes.
    fn check(
        &self,
        now: Instant,
        engine: &mut Engine,
        sub: SubId,
        msg: &Message,
    ) -> Result<(u16, &'static str), Reject> {
        let event = msg.header(HeaderName::Event).unwrap_or("");
        let package = event.split(';').next().unwrap_or("").trim();
        if !package.eq_ignore_ascii_case("reg") {
            return Err(Reject::Event);
        }
        let Some(ss) = msg.header(HeaderName::SubscriptionState) else {
            return Err(Reject::Malformed(
                "Bad Request (Missing Subscription-State header)".into(),
            ));
        };
        let ss = SubscriptionState::parse(ss).map_err(|_| {
            Reject::Malformed("Bad Request (Malformed Subscription-State header)".into())
        })?;
        let body = msg.body();
        let doc = if body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            let ct = msg.content_type().unwrap_or("");
            let media = ct.split(';').next().unwrap_or("").trim();
            if !media.eq_ignore_ascii_case("application/reginfo+xml") {
                return Err(Reject::MediaType);
            }
            match reginfo::parse(body, &self.reginfo_limits) {
                Ok(d) => Some(d),
                Err(e) => return Err(Reject::Malformed(format!("Bad Request ({e})"))),
            }
        };
        let input = NotifyInput {
            cseq: msg.cseq().seq,
            remote_tag: msg.from().tag().unwrap_or(""),
            record_route: record_route(msg),
            contact: first_contact(msg),
            sub_state: ss.status,
            sub_expires: ss.expires,
            sub_reason: ss.reason,
            doc: doc.as_ref(),
        };
        let ans = engine.on_notify(now, sub, &input);
        Ok((ans.status, ans.reason))
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.tx.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.tx.handle_timeout(now);
    }
}
