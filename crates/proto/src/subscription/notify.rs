//! NOTIFY handling (SPEC §6): dialog, Subscription-State, reginfo version tracking and the
//! registration actions a document implies.
//!
//! Version rules (RFC 3680 §5.2 / §4.1.2 of RFC 6665):
//! - a document whose version is not newer than the last applied one is ignored (`stale_version`);
//! - the first document must be full state; a partial first document, or partial documents while
//!   full state is awaited, are ignored (`not_full_state`) and full state is requested;
//! - a partial document that skips versions (`version > last + 1`) is not applied: state was lost,
//!   an in-dialog SUBSCRIBE (`FullStateRequest`, through the rate limiter) asks for full state
//!   (`version_gap`). A refresh already queued or in flight serves as that request, since the
//!   NOTIFY a SUBSCRIBE triggers carries full state.
//!
//! What a document implies:
//! - the default PUI's `<registration>` terminated → `NetworkDeregistration` (and, unless the
//!   NOTIFY itself terminates the subscription, the engine unsubscribes); nothing else of that
//!   document is acted upon;
//! - another registration active and not known → `AddPui`; known and terminated, or (full state)
//!   absent → `RemovePui`. `init` registrations change nothing;
//! - a terminated contact (any event) → `RemoveBinding`; an active contact with event
//!   `shortened`/`refreshed` and `expires` → `UpdateBindingExpiry`. Contacts are taken from the
//!   default PUI's registration and active ones, deduplicated (the implicit set shares bindings).
//!   Bindings are not tracked here: a contact missing from a full-state document changes nothing
//!   (the registrar's own expiry covers it).

use std::sync::Arc;
use std::time::Instant;

use super::dialog::{tolerance, Establish};
use super::engine::Engine;
use super::limiter::Kind;
use super::store::{Life, Request};
use super::types::*;
use crate::names;
use crate::reginfo::{Contact, ContactEvent, ContactState, DocState, RegState, Reginfo};
use crate::sip::SubscriptionStatus;

const OK: NotifyAnswer = NotifyAnswer {
    status: 200,
    reason: "OK",
};
const NO_SUCH: NotifyAnswer = NotifyAnswer {
    status: 481,
    reason: "Subscription Does Not Exist",
};

impl Engine {
    /// A NOTIFY for `sub`. Returns the answer; queues outputs (RegActions, full-state SUBSCRIBE).
    pub fn on_notify(&mut self, now: Instant, sub: SubId, n: &NotifyInput<'_>) -> NotifyAnswer {
        let t = self.clock.ms(now);
        let answer = self.notify(t, sub, n);
        self.drain_limiter(now);
        self.tidy();
        answer
    }

    fn notify(&mut self, t: u64, id: SubId, n: &NotifyInput<'_>) -> NotifyAnswer {
        let Some(s) = self.store.get(id) else {
            return NO_SUCH;
        };
        let terminated = n.sub_state == SubscriptionStatus::Terminated;
        let establish = Establish::Notify {
            from_tag: n.remote_tag,
            record_route: &n.record_route,
            contact: n.contact.as_deref(),
        };
        if s.is_lingering() {
            // Unsubscribed: absorb (the final NOTIFY), act on nothing.
            if s.life == Life::LingeringUntilDialog && !s.is_established() {
                self.establish(id, establish);
                if !terminated {
                    self.send_deferred_unsubscribe(t, id);
                }
            }
            if terminated {
                self.store.remove(id);
            }
            count(if terminated { "terminated" } else { "accepted" });
            return OK;
        }
        if !s.is_established() {
            if s.in_flight() == Some(SubscribeKind::Initial) {
                tolerance("notify_before_2xx");
            }
            self.establish(id, establish);
        } else {
            if s.to_tag() != n.remote_tag {
                tolerance("remote_tag_mismatch");
            }
            if let Some(c) = n.contact.as_deref() {
                self.store.set_remote(id, None, Some(c));
            }
        }
        let (mut outcome, network_dereg) = match n.doc {
            Some(doc) => self.apply_doc(t, id, doc),
            None => ("accepted", false),
        };
        if terminated {
            tracing::debug!(
                sub = id.0,
                reason = n.sub_reason,
                "subscription terminated by notifier"
            );
            self.remove(t, id, SubRemoval::NotifyTerminated, false);
            outcome = "terminated";
        } else {
            let active = n.sub_state == SubscriptionStatus::Active;
            let pending = n.sub_state == SubscriptionStatus::Pending;
            if !active && !pending {
                tolerance("unknown_subscription_state");
            }
            if let Some(s) = self.store.get_mut(id) {
                s.notifier_pending = pending;
            }
            if network_dereg {
                if active {
                    tolerance("active_with_terminated_registration");
                }
                self.unsubscribe(t, id, SubRemoval::NetworkDeregistration);
            } else {
                match n.sub_expires {
                    Some(0) => tolerance("zero_expires_not_terminated"),
                    Some(e) => self.grant(t, id, e),
                    None => tolerance("subscription_state_without_expires"),
                }
            }
        }
        count(outcome);
        OK
    }

    /// Version checks, then act on the document. Returns (outcome, default PUI terminated).
    fn apply_doc(&mut self, t: u64, id: SubId, doc: &Reginfo) -> (&'static str, bool) {
        let Some(s) = self.store.get_mut(id) else {
            return ("accepted", false);
        };
        if s.version.is_some_and(|v| doc.version <= v) {
            return ("stale_version", false);
        }
        let full = doc.state == DocState::Full;
        if !full {
            if s.version.is_none() || s.await_full {
                if s.version.is_none() {
                    tolerance("partial_before_full");
                }
                s.await_full = true;
                self.request_full_state(t, id);
                return ("not_full_state", false);
            }
            let last = s.version.unwrap_or(0);
            if doc.version > last.saturating_add(1) {
                tracing::debug!(sub = id.0, last, got = doc.version, "reginfo version gap");
                s.await_full = true;
                self.request_full_state(t, id);
                return ("version_gap", false);
            }
        }
        s.version = Some(doc.version);
        if full {
            s.await_full = false;
        }
        let dereg = self.apply_reginfo(id, doc, full);
        ("accepted", dereg)
    }

    /// Queue a full-state request unless a SUBSCRIBE that will bring full state is on its way.
    fn request_full_state(&mut self, t: u64, id: SubId) {
        let Some(s) = self.store.get_mut(id) else {
            return;
        };
        if s.request != Request::Idle || !s.is_established() {
            return;
        }
        s.request = Request::Queued(Kind::FullState);
        self.limiter.enqueue(t, id, Kind::FullState);
    }

    /// Registration actions for an accepted document. Returns true when the default PUI's
    /// registration is terminated.
    fn apply_reginfo(&mut self, id: SubId, doc: &Reginfo, full: bool) -> bool {
        let Some(s) = self.store.get_mut(id) else {
            return false;
        };
        let pui: Arc<str> = s.pui.clone();
        let regs = &doc.registrations;
        if regs
            .iter()
            .any(|r| *r.aor == *pui && r.state == RegState::Terminated)
        {
            push(
                &mut self.out,
                RegAction::NetworkDeregistration { default_pui: pui },
            );
            return true;
        }
        let mut actions = Vec::new();
        for r in regs.iter().filter(|r| *r.aor != *pui) {
            match r.state {
                RegState::Active if !s.has_other(&r.aor) => {
                    s.add_other(&r.aor);
                    actions.push(RegAction::AddPui {
                        default_pui: pui.clone(),
                        pui: r.aor.clone(),
                    });
                }
                RegState::Terminated if s.has_other(&r.aor) => {
                    s.remove_other(&r.aor);
                    let a = RegAction::RemovePui {
                        default_pui: pui.clone(),
                        pui: r.aor.clone(),
                    };
                    actions.push(a);
                }
                _ => {}
            }
        }
        if full {
            let gone: Vec<String> = s
                .others()
                .filter(|o| !regs.iter().any(|r| r.aor == *o))
                .map(str::to_owned)
                .collect();
            for g in gone {
                s.remove_other(&g);
                actions.push(RegAction::RemovePui {
                    default_pui: pui.clone(),
                    pui: g,
                });
            }
            if !regs.iter().any(|r| *r.aor == *pui) {
                tolerance("full_state_without_default_pui");
            }
        }
        let mut seen: Vec<BindingRef> = Vec::new();
        let relevant = regs
            .iter()
            .filter(|r| *r.aor == *pui || r.state == RegState::Active);
        for c in relevant.flat_map(|r| r.contacts.iter()) {
            if let Some(a) = contact_action(&pui, c, &mut seen) {
                actions.push(a);
            }
        }
        for a in actions {
            push(&mut self.out, a);
        }
        false
    }
}

/// The action for one `<contact>`, deduplicated through `seen`.
fn contact_action(pui: &Arc<str>, c: &Contact, seen: &mut Vec<BindingRef>) -> Option<RegAction> {
    if c.expires.is_none() {
        tolerance("contact_without_expires");
    }
    let update = matches!(c.event, ContactEvent::Shortened | ContactEvent::Refreshed);
    match c.state {
        ContactState::Terminated => {
            let expected = matches!(
                c.event,
                ContactEvent::Expired
                    | ContactEvent::Deactivated
                    | ContactEvent::Probation
                    | ContactEvent::Unregistered
                    | ContactEvent::Rejected
            );
            if !expected {
                tolerance("terminated_contact_event");
            }
        }
        ContactState::Active if update && c.expires.is_some() => {}
        ContactState::Active => return None,
    }
    let b = binding_ref(c);
    if seen.contains(&b) {
        return None;
    }
    seen.push(b.clone());
    let default_pui = pui.clone();
    Some(match (c.state, c.expires) {
        (ContactState::Active, Some(expires)) => RegAction::UpdateBindingExpiry {
            default_pui,
            contact: b,
            expires,
        },
        _ => RegAction::RemoveBinding {
            default_pui,
            contact: b,
        },
    })
}

/// The binding a `<contact>` names: URI, `+sip.instance` (quotes and `<>` stripped), `reg-id`.
pub(super) fn binding_ref(c: &Contact) -> BindingRef {
    let instance = c
        .param("+sip.instance")
        .flatten()
        .map(unquote)
        .filter(|s| !s.is_empty());
    let reg_id = c
        .param("reg-id")
        .flatten()
        .and_then(|v| unquote(v).parse().ok());
    BindingRef {
        uri: c.uri.trim().to_owned(),
        instance: instance.map(str::to_owned),
        reg_id,
    }
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    let v = v
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v)
        .trim();
    v.strip_prefix('<')
        .and_then(|x| x.strip_suffix('>'))
        .unwrap_or(v)
}

fn push(out: &mut std::collections::VecDeque<Output>, a: RegAction) {
    let name = match &a {
        RegAction::NetworkDeregistration { .. } => "network_deregistration",
        RegAction::AddPui { .. } => "add_pui",
        RegAction::RemovePui { .. } => "remove_pui",
        RegAction::RemoveBinding { .. } => "remove_binding",
        RegAction::UpdateBindingExpiry { .. } => "update_binding_expiry",
    };
    metrics::counter!(names::REG_ACTIONS, "action" => name).increment(1);
    out.push_back(Output::Reg(a));
}

fn count(outcome: &'static str) {
    metrics::counter!(names::NOTIFYS, "outcome" => outcome).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(params: Vec<(&str, Option<&str>)>) -> Contact {
        Contact {
            id: "c1".into(),
            state: ContactState::Terminated,
            event: ContactEvent::Expired,
            expires: None,
            retry_after: None,
            duration_registered: None,
            q: None,
            callid: None,
            cseq: None,
            uri: " sip:ue@10.0.0.1:5060 ".into(),
            display_name: None,
            unknown_params: params
                .into_iter()
                .map(|(n, v)| (n.into(), v.map(Into::into)))
                .collect(),
            pub_gruu: None,
            temp_gruu: None,
            temp_gruu_first_cseq: None,
        }
    }

    #[test]
    fn binding_ref_strips_instance() {
        let c = contact(vec![
            (
                "+sip.instance",
                Some("\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\""),
            ),
            ("reg-id", Some("2")),
        ]);
        let b = binding_ref(&c);
        assert_eq!(b.uri, "sip:ue@10.0.0.1:5060");
        assert_eq!(
            b.instance.as_deref(),
            Some("urn:uuid:00000000-0000-1000-8000-000A95A0E128")
        );
        assert_eq!(b.reg_id, Some(2));
        let b = binding_ref(&contact(vec![
            ("+SIP.INSTANCE", None),
            ("reg-id", Some("\"x\"")),
        ]));
        assert_eq!((b.instance, b.reg_id), (None, None));
    }
}
