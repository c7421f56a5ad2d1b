//! NOTIFYs for our subscriptions (SPEC §6): match the dialog, absorb retransmissions, check
//! Subscription-State and the body, hand the document to the engine, answer.

use std::time::Instant;

use super::subscribe::{first_contact, record_route};
use super::{Gateway, Inbound};
use crate::names;
use crate::reginfo;
use crate::sip::writer::push_decimal;
use crate::sip::Transport;
use crate::sip::{HeaderName, Message, SubscriptionState};
use crate::subscription::NotifyInput;
use crate::transaction::ServerLookup;

impl Gateway {
    pub(super) fn handle_notify(&mut self, now: Instant, inb: &Inbound, msg: &Message) {
        let sub = msg
            .to()
            .tag()
            .and_then(|tag| self.engine.find_dialog(msg.call_id(), tag));
        let Some(sub) = sub else {
            metrics::counter!(names::NOTIFYS, "outcome" => "unknown_dialog").increment(1);
            return self.answer(inb, msg, 481, "Subscription Does Not Exist", &[]);
        };
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
        match self
            .server_tx
            .on_request(now, &key, inb.transport == Transport::Tcp)
        {
            ServerLookup::New => {}
            ServerLookup::Proceeding => return,
            ServerLookup::Answered(bytes) => {
                metrics::counter!(names::NOTIFYS, "outcome" => "retransmission").increment(1);
                return self.send(inb.transport, super::Dest::Addr(inb.peer), bytes);
            }
        }
        let (code, reason, extra): (u16, String, &[(&str, &str)]) = match self
            .check_notify(now, sub, msg)
        {
            Ok((code, reason)) => (code, reason.to_string(), &[]),
            Err(NotifyReject::Malformed(r)) => {
                metrics::counter!(names::NOTIFYS, "outcome" => "malformed").increment(1);
                tracing::debug!(call_id = msg.call_id(), reason = %r, "NOTIFY rejected");
                (400, r, &[])
            }
            Err(NotifyReject::MediaType) => {
                metrics::counter!(names::NOTIFYS, "outcome" => "unsupported_media").increment(1);
                (
                    415,
                    "Unsupported Media Type".into(),
                    &[("Accept", "application/reginfo+xml")],
                )
            }
            Err(NotifyReject::Event) => {
                metrics::counter!(names::NOTIFYS, "outcome" => "bad_event").increment(1);
                (489, "Bad Event".into(), &[("Allow-Events", "reg")])
            }
        };
        let resp = crate::sip::writer::response(msg, code, &reason, None, extra);
        self.server_tx.respond(now, &key, resp.clone());
        self.counters.out_response("NOTIFY");
        self.send(inb.transport, super::Dest::Addr(inb.peer), resp);
        self.drain_engine(now);
    }

    fn check_notify(
        &mut self,
        now: Instant,
        sub: crate::subscription::SubId,
        msg: &Message,
    ) -> Result<(u16, &'static str), NotifyReject> {
        let event = msg.header(HeaderName::Event).unwrap_or("");
        let package = event.split(';').next().unwrap_or("").trim();
        if !package.eq_ignore_ascii_case("reg") {
            return Err(NotifyReject::Event);
        }
        let Some(ss) = msg.header(HeaderName::SubscriptionState) else {
            return Err(NotifyReject::Malformed(
                "Bad Request (Missing Subscription-State header)".into(),
            ));
        };
        let ss = SubscriptionState::parse(ss).map_err(|_| {
            NotifyReject::Malformed("Bad Request (Malformed Subscription-State header)".into())
        })?;
        let body = msg.body();
        let doc = if body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            let ct = msg.content_type().unwrap_or("");
            let media = ct.split(';').next().unwrap_or("").trim();
            if !media.eq_ignore_ascii_case("application/reginfo+xml") {
                return Err(NotifyReject::MediaType);
            }
            match reginfo::parse(body, &self.reginfo_limits) {
                Ok(d) => Some(d),
                Err(e) => return Err(NotifyReject::Malformed(format!("Bad Request ({e})"))),
            }
        };
        let state = ss.state.to_ascii_lowercase();
        let input = NotifyInput {
            cseq: msg.cseq().seq,
            remote_tag: msg.from().tag().unwrap_or(""),
            record_route: record_route(msg),
            contact: first_contact(msg),
            sub_state: &state,
            sub_expires: ss.expires,
            sub_reason: ss.reason,
            doc: doc.as_ref(),
        };
        let ans = self.engine.on_notify(now, sub, &input);
        Ok((ans.status, ans.reason))
    }
}

enum NotifyReject {
    Malformed(String),
    MediaType,
    Event,
}
