//! The SUBSCRIBE side of the dialog: responses, transaction timeouts, dialog establishment and
//! in-dialog SUBSCRIBEs (refresh, full-state request, unsubscribe).
//!
//! The dialog is established by the first of {2xx to the SUBSCRIBE, a NOTIFY}: remote tag, route
//! set (Record-Route, reversed for a 2xx as a UAC does, as received for a NOTIFY as a UAS does —
//! RFC 3261 §12.1.1/§12.1.2) and remote target (Contact). Later 2xx and NOTIFYs only refresh the
//! remote target.

use std::time::Instant;

use super::engine::Engine;
use super::store::{Life, Request};
use super::types::*;
use crate::names;

/// Where the dialog comes from.
pub(super) enum Establish<'a> {
    /// A 2xx to our SUBSCRIBE: Record-Route is reversed.
    Response {
        to_tag: Option<&'a str>,
        record_route: &'a [String],
        contact: Option<&'a str>,
    },
    /// A NOTIFY: Record-Route as received.
    Notify {
        from_tag: &'a str,
        record_route: &'a [String],
        contact: Option<&'a str>,
    },
}

impl Engine {
    /// A final (or provisional) response to the SUBSCRIBE with `resp.cseq`.
    pub fn on_response(&mut self, now: Instant, sub: SubId, resp: &ResponseInput) {
        let t = self.clock.ms(now);
        self.response(t, sub, resp);
        self.drain_limiter(now);
        self.tidy();
    }

    fn response(&mut self, t: u64, id: SubId, resp: &ResponseInput) {
        let Some(s) = self.store.get_mut(id) else {
            return;
        };
        if resp.cseq == 0 || resp.cseq > s.cseq || resp.status < 200 {
            return;
        }
        let kind = kind_of(s, resp.cseq);
        metrics::counter!(names::SUBSCRIBE_RESPONSES, "class" => class(resp.status),
            "kind" => kind.as_str())
        .increment(1);
        let ok = (200..300).contains(&resp.status);
        if s.is_lingering() {
            // The response to the unsubscribe (or to an earlier request): no side effects,
            // except a deferred unsubscribe once a 2xx establishes the dialog.
            if ok && s.life == Life::LingeringUntilDialog && !s.is_established() {
                self.establish(id, from_response(resp));
                self.send_deferred_unsubscribe(t, id);
            }
            return;
        }
        if matches!(s.request, Request::InFlight { cseq, .. } if resp.cseq >= cseq) {
            s.request = Request::Idle;
        }
        if !ok {
            tracing::debug!(
                sub = id.0,
                status = resp.status,
                kind = kind.as_str(),
                "SUBSCRIBE refused"
            );
            self.remove(t, id, SubRemoval::ErrorResponse, false);
            return;
        }
        let (requested, established) = (s.requested, s.is_established());
        if !established {
            self.establish(id, from_response(resp));
        } else if let Some(c) = resp.contact.as_deref() {
            self.store.set_remote(id, None, Some(c));
        }
        if resp.expires.is_none() {
            tolerance("2xx_without_expires");
        }
        self.grant(t, id, resp.expires.unwrap_or(requested));
    }

    /// The client transaction of the SUBSCRIBE with `cseq` timed out (Timer F).
    pub fn on_transaction_timeout(&mut self, now: Instant, sub: SubId, cseq: u32) {
        let t = self.clock.ms(now);
        if let Some(s) = self.store.get(sub) {
            if cseq != 0 && cseq <= s.cseq {
                let kind = kind_of(s, cseq);
                metrics::counter!(names::SUBSCRIBE_TIMEOUTS, "kind" => kind.as_str()).increment(1);
                if !s.is_lingering() {
                    tracing::debug!(sub = sub.0, kind = kind.as_str(), "SUBSCRIBE timed out");
                    self.remove(t, sub, SubRemoval::Timeout, false);
                }
            }
        }
        self.tidy();
    }

    /// Establish the dialog of `id` (no-op when it already is).
    pub(super) fn establish(&mut self, id: SubId, from: Establish<'_>) {
        let (tag, record_route, reverse, contact) = match from {
            Establish::Response {
                to_tag,
                record_route,
                contact,
            } => {
                if to_tag.is_none() {
                    tolerance("2xx_without_to_tag");
                }
                (to_tag.unwrap_or(""), record_route, true, contact)
            }
            Establish::Notify {
                from_tag,
                record_route,
                contact,
            } => (from_tag, record_route, false, contact),
        };
        let Some(s) = self.store.get_mut(id) else {
            return;
        };
        if s.is_established() {
            return;
        }
        s.set_to_tag(tag);
        let pui = s.pui.clone();
        let mut route = record_route.to_vec();
        if reverse {
            route.reverse();
        }
        if contact.is_none() {
            // No Contact: fall back to the default PUI as remote target.
            tolerance("dialog_without_contact");
        }
        self.store
            .set_remote(id, Some(route), Some(contact.unwrap_or(&pui)));
    }

    /// Send the unsubscribe that waited for the dialog, and linger from now on.
    pub(super) fn send_deferred_unsubscribe(&mut self, t: u64, id: SubId) {
        let linger = self.cfg.linger;
        if let Some(s) = self.store.get_mut(id) {
            s.life = Life::Lingering;
            s.expires_at = super::timers::add_dur(t, linger);
        }
        self.send_in_dialog(id, SubscribeKind::Unsubscribe);
        self.reschedule(id);
    }

    /// Queue an in-dialog SUBSCRIBE of `kind` (CSeq + 1). Needs an established dialog.
    pub(super) fn send_in_dialog(&mut self, id: SubId, kind: SubscribeKind) {
        let Some(s) = self.store.get_mut(id) else {
            return;
        };
        if !s.is_established() {
            tracing::debug!(
                sub = id.0,
                kind = kind.as_str(),
                "no dialog yet, SUBSCRIBE not sent"
            );
            return;
        }
        s.cseq = s.cseq.saturating_add(1);
        let expires = if kind == SubscribeKind::Unsubscribe {
            0
        } else {
            s.request = Request::InFlight { kind, cseq: s.cseq };
            s.requested
        };
        let Some(s) = self.store.get(id) else { return };
        let to_tag = s.to_tag();
        let remote = s.remote.as_deref();
        let out = OutSubscribe {
            sub: id,
            kind,
            trunk_group: s.trunk_group.clone(),
            request_uri: remote.map_or(&*s.pui, |r| &r.target).to_owned(),
            route: remote
                .map_or(&[][..], |r| &r.route)
                .iter()
                .map(|r| r.to_string())
                .collect(),
            to: s.pui.to_string(),
            to_tag: (!to_tag.is_empty()).then(|| to_tag.to_owned()),
            from: self.cfg.identity.clone(),
            from_tag: s.local_tag(),
            call_id: self.store.call_id(id, s),
            cseq: s.cseq,
            expires,
            contact: self.cfg.contact.clone(),
            p_asserted_identity: self.cfg.p_asserted_identity.clone(),
            max_forwards: self.cfg.max_forwards,
        };
        self.count_sent(kind, &out.trunk_group);
        if kind == SubscribeKind::FullStateRequest {
            metrics::counter!(names::FULL_STATE_REQUESTS).increment(1);
        }
        self.out.push_back(Output::Send(out));
    }
}

fn from_response(resp: &ResponseInput) -> Establish<'_> {
    Establish::Response {
        to_tag: resp.to_tag.as_deref(),
        record_route: &resp.record_route,
        contact: resp.contact.as_deref(),
    }
}

/// Which of our SUBSCRIBEs a CSeq belongs to.
fn kind_of(s: &super::store::Sub, cseq: u32) -> SubscribeKind {
    if cseq == 1 {
        SubscribeKind::Initial
    } else if s.is_lingering() && cseq == s.cseq {
        SubscribeKind::Unsubscribe
    } else if let Request::InFlight { kind, cseq: c } = s.request {
        if c == cseq {
            kind
        } else {
            SubscribeKind::Refresh
        }
    } else {
        SubscribeKind::Refresh
    }
}

fn class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "6xx",
    }
}

/// Count (and log at debug) a tolerated oddity of a notifier.
pub(super) fn tolerance(kind: &'static str) {
    tracing::debug!(kind, "tolerated notifier oddity");
    metrics::counter!(names::NOTIFY_TOLERANCES, "kind" => kind).increment(1);
}
