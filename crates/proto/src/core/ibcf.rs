//! IBCF / IPX Contact translation (SPEC §7): reg-event SUBSCRIBE and NOTIFY (and their 2xx)
//! pass through with the Contact replaced by `<sip:cTOKEN@us>`; the token maps back to the
//! original Contact URI and the flow it came from, so in-dialog requests sent to the translated
//! Contact reach the original peer.
//!
//! Owns the token table and its lifetime: one entry per dialog (Call-ID), kept until the
//! subscription ends (`Expires: 0`, `Subscription-State: terminated`) plus a linger for the last
//! transaction, or until its expiry passes without traffic. Tokens are a keyed hash of Call-ID and
//! Contact, so a refresh carrying the same Contact reuses its token. Never generates requests and
//! never touches the body.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use hashbrown::HashMap;

use super::ctx::{fnv, mix};
use crate::sip::{
    Dest, HeaderName, Message, NameAddr, SubscriptionState, SubscriptionStatus, Transport,
};
use crate::state::{DestRecord, IbcfDialogRecord, IbcfTokenRecord};
use crate::time::DeadlineQueue;

/// Where a translated Contact leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mapped {
    /// The original Contact URI (without `<>`).
    pub uri: Box<str>,
    pub transport: Transport,
    pub dest: Dest,
    call_id: Box<str>,
}

#[derive(Debug)]
struct DialogEntry {
    tokens: Vec<Box<str>>,
    expires_at: Instant,
}

/// The translation table.
#[derive(Debug, Default)]
pub(super) struct ContactMap {
    /// Keys the token hash (tokens are not guessable from Call-ID and Contact).
    secret: u64,
    by_token: HashMap<Box<str>, Mapped>,
    dialogs: HashMap<Box<str>, DialogEntry>,
    /// (deadline, Call-ID); stale entries are skipped (the dialog's `expires_at` decides).
    timers: DeadlineQueue<Instant, Box<str>>,
    /// Call-IDs of the dialogs changed (or dropped) since the last [`ContactMap::take_changed`].
    changed: Vec<Box<str>>,
}

/// Subscription lifetime a message announces: `Some(0)` when the subscription ends.
pub(super) fn announced_lifetime(msg: &Message) -> Option<u32> {
    if msg.method_str() == "NOTIFY" && msg.is_request() {
        let ss = SubscriptionState::parse(msg.header(HeaderName::SubscriptionState)?).ok()?;
        if ss.status == SubscriptionStatus::Terminated {
            return Some(0);
        }
        return ss.expires;
    }
    msg.expires().ok().flatten()
}

/// `Event: reg` (any parameters).
pub(super) fn is_reg_event(msg: &Message) -> bool {
    let ev = msg.header(HeaderName::Event).unwrap_or("");
    ev.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("reg")
}

impl ContactMap {
    pub fn new(secret: u64) -> Self {
        ContactMap {
            secret,
            ..Self::default()
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// Look a token up and keep its dialog alive for at least `linger`.
    pub fn resolve(&mut self, now: Instant, token: &str, linger: Duration) -> Option<Mapped> {
        let m = self.by_token.get(token)?.clone();
        self.extend(now, &m.call_id, linger);
        Some(m)
    }

    /// Is this Call-ID a dialog we translate?
    pub fn knows_dialog(&self, call_id: &str) -> bool {
        self.dialogs.contains_key(call_id)
    }

    /// Map `contact_uri` (from `msg`'s dialog) to a token reaching `(transport, dest)`; returns
    /// the token. `lifetime`: the subscription's announced expiry (0 = ending → only `linger`).
    pub fn translate(
        &mut self,
        now: Instant,
        call_id: &str,
        contact_uri: &str,
        target: (Transport, Dest),
        lifetime: Option<u32>,
        linger: Duration,
    ) -> String {
        let h = mix(self.secret
            ^ fnv(call_id.as_bytes())
            ^ fnv(contact_uri.as_bytes()).rotate_left(17));
        let token = format!("c{h:016x}");
        let mapped = Mapped {
            uri: contact_uri.into(),
            transport: target.0,
            dest: target.1,
            call_id: call_id.into(),
        };
        self.by_token.insert(token.as_str().into(), mapped);
        let d = self
            .dialogs
            .entry(call_id.into())
            .or_insert_with(|| DialogEntry {
                tokens: Vec::with_capacity(2),
                expires_at: now,
            });
        if !d.tokens.iter().any(|t| **t == *token) {
            d.tokens.push(token.as_str().into());
            self.changed.push(call_id.into());
        }
        self.set_lifetime(now, call_id, lifetime, linger);
        token
    }

    /// Apply a lifetime announced in the dialog (SUBSCRIBE Expires, NOTIFY Subscription-State,
    /// 2xx Expires): `Some(0)` ends the dialog after `linger`; `Some(n)` keeps it `n` s + linger;
    /// `None` only makes sure it lives `linger` more.
    pub fn set_lifetime(
        &mut self,
        now: Instant,
        call_id: &str,
        lifetime: Option<u32>,
        linger: Duration,
    ) {
        let Some(d) = self.dialogs.get_mut(call_id) else {
            return;
        };
        let at = match lifetime {
            Some(0) => now + linger,
            Some(n) => now + Duration::from_secs(u64::from(n)) + linger,
            None => d.expires_at.max(now + linger),
        };
        if at != d.expires_at {
            d.expires_at = at;
            self.timers.push(at, call_id.into());
            self.changed.push(call_id.into());
        }
    }

    fn extend(&mut self, now: Instant, call_id: &str, linger: Duration) {
        self.set_lifetime(now, call_id, None, linger);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Drop dialogs whose lifetime passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        loop {
            let dialogs = &self.dialogs;
            let due = self.timers.pop_due(now, |at, c| is_current(dialogs, at, c));
            let Some((_, call_id)) = due else { break };
            if let Some(d) = self.dialogs.remove(&call_id) {
                for tok in d.tokens {
                    self.by_token.remove(&tok);
                }
            }
            self.changed.push(call_id);
        }
        let dialogs = &self.dialogs;
        self.timers.tidy(|at, c| is_current(dialogs, at, c));
        self.timers
            .compact(dialogs.len(), |at, c| is_current(dialogs, at, c));
    }

    /// The key of the tokens (kept across restarts so a dialog translated again keeps its token).
    pub fn secret(&self) -> u64 {
        self.secret
    }

    /// The durable record of a dialog's mappings.
    pub fn export(
        &self,
        call_id: &str,
        unix: &dyn Fn(Instant) -> u64,
    ) -> Option<IbcfDialogRecord<'_>> {
        let (call_id, d) = self.dialogs.get_key_value(call_id)?;
        let tokens = d
            .tokens
            .iter()
            .filter_map(|t| {
                let m = self.by_token.get(t)?;
                Some(IbcfTokenRecord {
                    token: Cow::Borrowed(&**t),
                    uri: Cow::Borrowed(&*m.uri),
                    transport: m.transport,
                    dest: match &m.dest {
                        Dest::Addr(a) => DestRecord::Addr(*a),
                        Dest::Name(n, p) => DestRecord::Name(Cow::Borrowed(&**n), *p),
                    },
                })
            })
            .collect();
        Some(IbcfDialogRecord {
            call_id: Cow::Borrowed(&**call_id),
            expires_at: unix(d.expires_at),
            tokens,
        })
    }

    /// Put back a dialog's mappings (at start-up); `secret` from the stored identifiers.
    pub fn restore(&mut self, rec: &IbcfDialogRecord<'_>, at: Instant) {
        let call_id: Box<str> = (*rec.call_id).into();
        let mut tokens = Vec::with_capacity(rec.tokens.len());
        for t in &rec.tokens {
            let dest = match &t.dest {
                DestRecord::Addr(a) => Dest::Addr(*a),
                DestRecord::Name(n, p) => Dest::Name((**n).into(), *p),
            };
            let m = Mapped {
                uri: (*t.uri).into(),
                transport: t.transport,
                dest,
                call_id: call_id.clone(),
            };
            self.by_token.insert((*t.token).into(), m);
            tokens.push((*t.token).into());
        }
        self.timers.push(at, call_id.clone());
        self.dialogs.insert(
            call_id,
            DialogEntry {
                tokens,
                expires_at: at,
            },
        );
    }

    /// Every dialog with mappings.
    pub fn call_ids(&self) -> impl Iterator<Item = &str> {
        self.dialogs.keys().map(|k| &**k)
    }

    pub fn set_secret(&mut self, secret: u64) {
        self.secret = secret;
    }

    /// Call-IDs of the dialogs changed or dropped since the last call (with repeats).
    pub fn take_changed(&mut self, out: &mut Vec<Box<str>>) {
        out.append(&mut self.changed);
    }
}

/// Whether a queued deadline is the dialog's current one.
fn is_current(dialogs: &HashMap<Box<str>, DialogEntry>, at: Instant, call_id: &str) -> bool {
    dialogs.get(call_id).is_some_and(|d| d.expires_at == at)
}

/// The Contact value with its URI replaced by `new_uri` (display name and parameters kept).
/// `None` when the first Contact value does not parse or is `*`.
pub(super) fn replace_contact_uri(value: &str, new_uri: &str) -> Option<(String, Box<str>)> {
    let na = NameAddr::parse(value).ok()?;
    let off = (na.uri.as_ptr() as usize).checked_sub(value.as_ptr() as usize)?;
    let end = off.checked_add(na.uri.len())?;
    let (head, tail) = (value.get(..off)?, value.get(end..)?);
    let mut out = String::with_capacity(value.len() + new_uri.len());
    out.push_str(head);
    out.push_str(new_uri);
    out.push_str(tail);
    Some((out, na.uri.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_uri_is_replaced_keeping_display_and_params() {
        let (v, orig) = replace_contact_uri(
            "\"P\" <sip:p@10.0.0.1:5070;transport=tcp>;expires=60",
            "sip:cx@gw",
        )
        .unwrap();
        assert_eq!(v, "\"P\" <sip:cx@gw>;expires=60");
        assert_eq!(&*orig, "sip:p@10.0.0.1:5070;transport=tcp");
        let (v, _) = replace_contact_uri("sip:p@h;expires=5", "sip:cx@gw").unwrap();
        assert_eq!(v, "sip:cx@gw;expires=5");
        assert!(replace_contact_uri("<sip:p@h", "sip:cx@gw").is_none());
    }

    #[test]
    fn tokens_are_stable_per_dialog_and_expire_with_the_subscription() {
        let mut m = ContactMap::new(7);
        let t0 = Instant::now();
        let linger = Duration::from_secs(32);
        let dest = (Transport::Udp, Dest::Addr("10.0.0.1:5060".parse().unwrap()));
        let a = m.translate(
            t0,
            "call1",
            "sip:p@10.0.0.1",
            dest.clone(),
            Some(600),
            linger,
        );
        let b = m.translate(
            t0,
            "call1",
            "sip:p@10.0.0.1",
            dest.clone(),
            Some(600),
            linger,
        );
        assert_eq!(a, b);
        let c = m.translate(
            t0,
            "call2",
            "sip:p@10.0.0.1",
            dest.clone(),
            Some(600),
            linger,
        );
        assert_ne!(a, c);
        assert_eq!(
            m.resolve(t0, &a, linger).unwrap().uri.as_ref(),
            "sip:p@10.0.0.1"
        );
        // Subscription ends: gone after the linger.
        m.set_lifetime(t0, "call1", Some(0), linger);
        m.handle_timeout(t0 + Duration::from_secs(31));
        assert!(m
            .resolve(t0 + Duration::from_secs(31), &a, Duration::ZERO)
            .is_some());
        m.handle_timeout(t0 + Duration::from_secs(33));
        assert!(m.resolve(t0, &a, linger).is_none());
        assert_eq!(m.len(), 1);
        m.handle_timeout(t0 + Duration::from_secs(633));
        assert_eq!(m.len(), 0);
        assert!(!m.knows_dialog("call2"));
    }
}
