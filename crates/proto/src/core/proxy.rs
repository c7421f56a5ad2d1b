//! Proxying every non-REGISTER request of registered UEs (RFC 3261 §16, TS 24.229 P-CSCF) and
//! relaying responses back along the Via chain.
//!
//! ```text
//!  request ─▶ Max-Forwards ─▶ route_request ─▶ Plan ─▶ forward (one splice) ─▶ next hop
//!   R-URI = our cTOKEN ............ IBCF mapping (ibcf.rs): R-URI back, to the original peer
//!   top Route = our flow token .... Path / Record-Route: to the UE's flow (or on, from the UE)
//!   source = a registered flow .... originating: Service-Route pre-loaded, Record-Route mo
//!   R-URI = our flow / a contact .. terminating: to the UE's flow, Record-Route mt
//!   ibcf/ipx trunk ................ transparent towards the core, Contact translated
//!   otherwise ..................... 403 (not registered)
//! ```
//!
//! Mostly stateless: our Via branch is derived from the incoming top Via (retransmissions, the
//! CANCEL and the ACK of a non-2xx all get the INVITE's branch, so they follow it without state).
//! INVITE keeps a small client transaction: `100 Trying` upstream, Timer A retransmissions over
//! UDP, `408` upstream at Timer B without any response, forgotten at the final response or Timer
//! C. The ACK of a non-2xx final response is forwarded like the INVITE (same Route set, same
//! derived branch) instead of being generated hop by hop; CANCEL is forwarded the same way and
//! answered by the next hop, not by us.
//!
//! Never: touches bodies or headers it does not own (only Via, Route, Record-Route,
//! Max-Forwards, the Request-URI and — IBCF only — the Contact URI), takes a lock, or answers
//! an ACK.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashbrown::HashMap;

use super::flow::{classify, OurUri, RR_PARAM};
use super::ibcf::{announced_lifetime, is_reg_event, replace_contact_uri, ContactMap};
use super::register::{addr_uri, flow_token, needs_received};
use super::{mix, uri_target, Dest, Gateway, Inbound};
use crate::names;
use crate::registrar::Flow;
use crate::settings::Role;
use crate::sip::via_target;
use crate::sip::Transport;
use crate::sip::{HeaderName, Message, Method};

/// Timer C (RFC 3261 §16.6 step 11): how long a proceeding INVITE is remembered.
const TIMER_C: Duration = Duration::from_secs(180);

/// State the proxy keeps: INVITE client transactions and the IBCF Contact map.
#[derive(Debug, Default)]
pub(super) struct ProxyState {
    invites: HashMap<Box<str>, InviteTx>,
    /// (when, our branch); stale when the transaction's `next` differs.
    timers: BinaryHeap<Reverse<(Instant, Box<str>)>>,
    pub(super) contacts: ContactMap,
}

#[derive(Debug)]
struct InviteTx {
    /// The INVITE as received (for the 408 we may owe upstream).
    req: Message,
    upstream: (Transport, Dest),
    out: (Transport, Dest),
    bytes: Bytes,
    next: Instant,
    interval: Duration,
    /// Timer B until a response arrives, then Timer C.
    deadline: Instant,
    answered: bool,
}

impl ProxyState {
    pub(super) fn new(secret: u64) -> Self {
        ProxyState {
            contacts: ContactMap::new(mix(secret ^ 0x1bcf)),
            ..Self::default()
        }
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let a = self.timers.peek().map(|Reverse((t, _))| *t);
        [a, self.contacts.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// A response to an INVITE we forwarded: stop retransmitting; forget it when final.
    fn on_invite_response(&mut self, now: Instant, branch: &str, status: u16) {
        if status >= 200 {
            self.invites.remove(branch);
        } else if let Some(tx) = self.invites.get_mut(branch) {
            if !tx.answered {
                tx.answered = true;
                tx.deadline = now + TIMER_C;
                tx.next = tx.deadline;
                self.timers.push(Reverse((tx.next, branch.into())));
            }
        }
    }
}

/// Which of our Record-Route entries to add.
#[derive(Debug, Clone, Copy)]
enum Rr {
    /// The UE's flow, `mo` (it originated) or `mt` (terminating towards it).
    Ue(Flow, &'static str),
    /// IBCF pass-through.
    Plain,
}

/// How to forward one request.
#[derive(Debug)]
struct Plan {
    pop_route: bool,
    /// Pre-load the Service-Route of the registration on this flow.
    preload_from: Option<Flow>,
    rr: Option<Rr>,
    request_uri: Option<Box<str>>,
    contact: Option<String>,
    next: (Transport, Dest),
}

type Refusal = (u16, &'static str);

impl Gateway {
    /// Every request that is neither a REGISTER nor a NOTIFY of our own subscriptions.
    pub(super) fn proxy_request(&mut self, now: Instant, inb: &Inbound, msg: &Message) {
        let max_forwards = match msg.max_forwards() {
            Ok(v) => v.unwrap_or(70),
            Err(_) => {
                return self.refuse(
                    inb,
                    msg,
                    (400, "Bad Request (Malformed Max-Forwards header)"),
                )
            }
        };
        if max_forwards == 0 {
            return self.refuse(inb, msg, (483, "Too Many Hops"));
        }
        let branch = self.derived_branch(msg);
        if msg.method() == Some(Method::Invite) && self.proxy.invites.contains_key(branch.as_str())
        {
            // A retransmission: we retransmit downstream ourselves.
            return self.answer(inb, msg, 100, "Trying", &[]);
        }
        match self.route_request(now, inb, msg) {
            Ok(plan) => self.forward(now, inb, msg, max_forwards, branch, plan),
            Err(r) => self.refuse(inb, msg, r),
        }
    }

    /// Answer with an error (an ACK is never answered: dropped and counted).
    fn refuse(&mut self, inb: &Inbound, msg: &Message, (code, reason): Refusal) {
        if msg.method() == Some(Method::Ack) {
            metrics::counter!(names::SIP_DROPS, "reason" => "ack_not_forwarded").increment(1);
            return;
        }
        let allow = [("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, SUBSCRIBE, NOTIFY, REFER, PRACK, UPDATE, INFO")];
        let extra: &[(&str, &str)] = if code == 200 { &allow } else { &[] };
        tracing::debug!(
            method = msg.method_str(),
            code,
            reason,
            "request answered by the proxy"
        );
        self.answer(inb, msg, code, reason, extra);
    }

    fn route_request(
        &mut self,
        now: Instant,
        inb: &Inbound,
        msg: &Message,
    ) -> Result<Plan, Refusal> {
        let hostport = self.me.hostport.as_str();
        let ours = move |h: &str, p: Option<u16>| is_our_host(hostport, h, p);
        let src = Flow {
            transport: inb.transport,
            peer: inb.peer,
            listener: inb.listener,
        };
        let initial =
            msg.to().tag().is_none() && !matches!(msg.method(), Some(Method::Ack | Method::Cancel));
        let mut routes = msg
            .value_spans(HeaderName::Route)
            .map(|(_, s)| addr_uri(msg.span_str(s)));
        let top = routes.next();
        let top_ours = top.and_then(|u| classify(u, ours));
        let pop_route = top_ours.is_some();
        // The next Route entry once ours is removed.
        let next_route = if pop_route { routes.next() } else { top };
        let ruri = msg.request_uri().unwrap_or("");
        let ruri_ours = classify(ruri, ours);
        let to_route = |r: &str| uri_target(r).ok_or((400, "Bad Request (Route not routable)"));
        let plan = |next, rr| Plan {
            pop_route,
            preload_from: None,
            rr,
            request_uri: None,
            contact: None,
            next,
        };
        let ue = |f: Flow| (f.transport, Dest::Addr(f.peer));

        // 1. A translated Contact (IBCF/IPX), whichever side the request comes from.
        if let Some(OurUri::Contact(token)) = ruri_ours {
            let linger = self.cfg.t1 * 64;
            let Some(m) = self.proxy.contacts.resolve(now, token, linger) else {
                return Err((404, "Not Found (unknown or expired contact token)"));
            };
            let next = match next_route {
                Some(r) => to_route(r)?,
                None => (m.transport, m.dest.clone()),
            };
            let mut p = plan(next, initial.then_some(Rr::Plain));
            p.request_uri = Some(m.uri);
            p.contact = self.ibcf_contact(now, msg, (inb.transport, Dest::Addr(inb.peer)));
            return Ok(p);
        }

        // 2. Our Path or Record-Route entry naming a UE flow.
        if let Some(OurUri::Flow { flow, rr }) = top_ours {
            let flow = flow.ok_or((404, "Not Found (unknown flow token)"))?;
            if flow == src {
                // From the UE itself (in-dialog, through our Record-Route): on towards the core.
                let next = match next_route {
                    Some(r) => to_route(r)?,
                    None => {
                        uri_target(ruri).ok_or((404, "Not Found (Request-URI not routable)"))?
                    }
                };
                return Ok(plan(next, initial.then_some(Rr::Ue(flow, "mo"))));
            }
            if let Some(r) = next_route.filter(|r| classify(r, ours).is_none()) {
                return Ok(plan(to_route(r)?, None));
            }
            if !rr && self.registrar.by_flow(&flow).is_none() {
                return Err((
                    480,
                    "Temporarily Unavailable (no registration on this flow)",
                ));
            }
            return Ok(plan(ue(flow), initial.then_some(Rr::Ue(flow, "mt"))));
        }

        // 3. A registered UE originates (or continues a dialog without our Record-Route).
        let reg = self
            .registrar
            .by_flow(&src)
            .filter(|_| !self.is_ibcf_trunk(inb));
        if let Some(reg) = reg {
            let first_sr = reg.service_route.first().map(|s| &**s);
            let preloaded = next_route
                .zip(first_sr)
                .is_some_and(|(r, sr)| r.eq_ignore_ascii_case(sr));
            let preload = msg.to().tag().is_none() && !preloaded && first_sr.is_some();
            let next = match (preload, first_sr, next_route) {
                (true, Some(sr), _) => to_route(sr)?,
                (_, _, Some(r)) => to_route(r)?,
                _ if msg.to().tag().is_some() => {
                    uri_target(ruri).ok_or((404, "Not Found (Request-URI not routable)"))?
                }
                _ => self.core.clone(),
            };
            let mut p = plan(next, initial.then_some(Rr::Ue(src, "mo")));
            p.preload_from = preload.then_some(src);
            return Ok(p);
        }

        // 4. Loose routing through us (our plain Record-Route, IBCF dialogs).
        if let Some(r) = next_route {
            if matches!(top_ours, Some(OurUri::Plain { .. })) {
                return Ok(plan(to_route(r)?, None));
            }
        }

        // 5. Terminating: our Path URI as Request-URI, or a registered contact.
        match ruri_ours {
            Some(OurUri::Flow { flow, rr }) => {
                let flow = flow.ok_or((404, "Not Found (unknown flow token)"))?;
                if !rr && self.registrar.by_flow(&flow).is_none() {
                    return Err((
                        480,
                        "Temporarily Unavailable (no registration on this flow)",
                    ));
                }
                return Ok(plan(ue(flow), initial.then_some(Rr::Ue(flow, "mt"))));
            }
            Some(OurUri::Plain { .. }) if next_route.is_none() => return Err(addressed_to_us(msg)),
            _ => {}
        }
        if let Some((_, b)) = self.registrar.by_contact(ruri) {
            let flow = b.flow;
            return Ok(plan(ue(flow), initial.then_some(Rr::Ue(flow, "mt"))));
        }

        // 6. IBCF / IPX trunk: transparent towards the core.
        if self.is_ibcf_trunk(inb) {
            let next = match next_route {
                Some(r) => to_route(r)?,
                None => self.core.clone(),
            };
            let mut p = plan(next, initial.then_some(Rr::Plain));
            p.contact = self.ibcf_contact(now, msg, (inb.transport, Dest::Addr(inb.peer)));
            return Ok(p);
        }
        metrics::counter!(names::SIP_DROPS, "reason" => "not_registered").increment(1);
        Err((403, "Forbidden (not registered from this address)"))
    }

    /// Does the request arrive on an IBCF / IPX trunk group?
    fn is_ibcf_trunk(&self, inb: &Inbound) -> bool {
        let role = self
            .trunk_group_of(inb)
            .and_then(|tg| self.trunks.get(tg.name.as_str()))
            .map(|t| t.profile.role);
        matches!(role, Some(Role::Ibcf | Role::Ipx))
    }

    /// IBCF: the translated Contact value for a reg-event SUBSCRIBE/NOTIFY (request) whose
    /// sender is reachable at `from`; also applies the lifetime the message announces.
    fn ibcf_contact(
        &mut self,
        now: Instant,
        msg: &Message,
        from: (Transport, Dest),
    ) -> Option<String> {
        if !matches!(msg.method(), Some(Method::Subscribe | Method::Notify)) || !is_reg_event(msg) {
            if self.proxy.contacts.knows_dialog(msg.call_id()) {
                self.proxy
                    .contacts
                    .set_lifetime(now, msg.call_id(), None, self.cfg.t1 * 64);
            }
            return None;
        }
        self.translate_contact(now, msg, Some(from))
    }

    /// Replace the first Contact's URI by a token; `target` None = reach the original URI.
    fn translate_contact(
        &mut self,
        now: Instant,
        msg: &Message,
        target: Option<(Transport, Dest)>,
    ) -> Option<String> {
        let linger = self.cfg.t1 * 64;
        let lifetime = announced_lifetime(msg);
        let value = msg
            .value_spans(HeaderName::Contact)
            .next()
            .map(|(_, s)| msg.span_str(s));
        let Some((value, target)) =
            value.and_then(|v| Some((v, target.or_else(|| uri_target(addr_uri(v)))?)))
        else {
            // Nothing to translate; the lifetime still counts for a dialog we know.
            self.proxy
                .contacts
                .set_lifetime(now, msg.call_id(), lifetime, linger);
            return None;
        };
        let token = self.proxy.contacts.translate(
            now,
            msg.call_id(),
            addr_uri(value),
            target,
            lifetime,
            linger,
        );
        replace_contact_uri(value, &format!("sip:{token}@{}", self.me.hostport)).map(|(v, _)| v)
    }

    /// Build the forwarded request in one splice and send it.
    fn forward(
        &mut self,
        now: Instant,
        inb: &Inbound,
        msg: &Message,
        max_forwards: u32,
        branch: String,
        plan: Plan,
    ) {
        let (t, dest) = plan.next.clone();
        let bytes = {
            let via = self.our_via(t, &branch);
            let mut ed = msg.edit();
            let top = msg.top_via();
            if needs_received(&top, inb.peer.ip()) {
                ed.set_top_via_received(
                    &inb.peer.ip().to_string(),
                    top.rport().map(|_| inb.peer.port()),
                );
            }
            ed.insert_header(HeaderName::Via, "Via", &via);
            if plan.pop_route {
                ed.remove_first_route();
            }
            let preload = plan
                .preload_from
                .and_then(|f| self.registrar.by_flow(&f))
                .map(|r| &r.service_route[..])
                .unwrap_or(&[]);
            let route_line;
            if !preload.is_empty() {
                let mut s = String::with_capacity(preload.iter().map(|r| r.len() + 4).sum());
                for (i, r) in preload.iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    s.push('<');
                    s.push_str(r);
                    s.push('>');
                }
                route_line = s;
                ed.insert_header(HeaderName::Route, "Route", &route_line);
            }
            let rr_line = plan.rr.map(|rr| match rr {
                Rr::Ue(f, dir) => format!(
                    "<sip:{}@{};lr;{RR_PARAM}={dir}>",
                    flow_token(&f),
                    self.me.hostport
                ),
                Rr::Plain => format!("<sip:{};lr;{RR_PARAM}=ib>", self.me.hostport),
            });
            if let Some(rr) = &rr_line {
                ed.insert_header(HeaderName::RecordRoute, "Record-Route", rr);
            }
            if let Some(u) = &plan.request_uri {
                ed.set_request_uri(u);
            }
            if let Some(c) = &plan.contact {
                ed.replace_value(HeaderName::Contact, 0, c);
            }
            ed.set_max_forwards(max_forwards - 1);
            if t == Transport::Tcp {
                ed.ensure_content_length();
            }
            ed.finish()
        };
        if msg.method() == Some(Method::Invite) {
            self.answer(inb, msg, 100, "Trying", &[]);
            self.start_invite(now, inb, msg, branch, (t, dest.clone()), bytes.clone());
        }
        self.counters.out_request(msg.method_str());
        tracing::debug!(method = msg.method_str(), call_id = msg.call_id(), %dest, "proxied");
        self.send(t, dest, bytes);
    }

    fn start_invite(
        &mut self,
        now: Instant,
        inb: &Inbound,
        msg: &Message,
        branch: String,
        out: (Transport, Dest),
        bytes: Bytes,
    ) {
        let t1 = self.cfg.t1;
        let deadline = now + t1 * 64;
        let next = if out.0 == Transport::Udp {
            now + t1
        } else {
            deadline
        };
        let key: Box<str> = branch.into();
        self.proxy.timers.push(Reverse((next, key.clone())));
        let tx = InviteTx {
            req: msg.clone(),
            upstream: (inb.transport, Dest::Addr(inb.peer)),
            out,
            bytes,
            next,
            interval: t1,
            deadline,
            answered: false,
        };
        self.proxy.invites.insert(key, tx);
    }

    /// INVITE retransmissions (Timer A), Timer B (408 upstream), Timer C; IBCF map expiry.
    pub(super) fn proxy_timeout(&mut self, now: Instant) {
        self.proxy.contacts.handle_timeout(now);
        while let Some(Reverse((t, _))) = self.proxy.timers.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((t, branch))) = self.proxy.timers.pop() else {
                break;
            };
            let Some(tx) = self.proxy.invites.get_mut(&branch) else {
                continue;
            };
            if tx.next != t {
                continue;
            }
            if now >= tx.deadline {
                if let Some(tx) = self.proxy.invites.remove(&branch) {
                    if !tx.answered {
                        metrics::counter!(names::SIP_DROPS, "reason" => "invite_timeout")
                            .increment(1);
                        let resp = crate::sip::writer::response(
                            &tx.req,
                            408,
                            "Request Timeout",
                            Some(&self.make_tag(&tx.req)),
                            &[],
                        );
                        self.counters.out_response("INVITE");
                        self.send(tx.upstream.0, tx.upstream.1, resp);
                    }
                }
                continue;
            }
            tx.interval *= 2;
            tx.next = (now + tx.interval).min(tx.deadline);
            let (out, bytes) = (tx.out.clone(), tx.bytes.clone());
            self.proxy.timers.push(Reverse((tx.next, branch)));
            self.counters.out_request("INVITE");
            self.send(out.0, out.1, bytes);
        }
    }

    /// A response carrying our Via that is not one of our own transactions: remove our Via and
    /// send it to the next one (RFC 3261 §16.7); `100 Trying` is hop-by-hop and stops here.
    /// IBCF dialogs get the Contact of their 2xx translated.
    pub(super) fn relay_response(&mut self, now: Instant, branch: &str, msg: &Message) {
        let status = msg.status().unwrap_or(0);
        let method = msg.cseq().method;
        if method == "INVITE" {
            self.proxy.on_invite_response(now, branch, status);
        }
        if status == 100 {
            return;
        }
        let next = match msg.value_spans(HeaderName::Via).nth(1) {
            Some((_, s)) => crate::sip::Via::parse(msg.span_str(s)).ok(),
            None => {
                metrics::counter!(names::SIP_DROPS, "reason" => "no_next_via").increment(1);
                return;
            }
        };
        let Some((t, dest)) = next.as_ref().and_then(via_target) else {
            metrics::counter!(names::SIP_DROPS, "reason" => "bad_via").increment(1);
            return;
        };
        let contact = if (200..300).contains(&status)
            && (method == "SUBSCRIBE" || method == "NOTIFY")
            && self.proxy.contacts.knows_dialog(msg.call_id())
        {
            self.translate_contact(now, msg, None)
        } else {
            None
        };
        let mut ed = msg.edit();
        ed.remove_top_via();
        if let Some(c) = &contact {
            ed.replace_value(HeaderName::Contact, 0, c);
        }
        if t == Transport::Tcp {
            ed.ensure_content_length();
        }
        let bytes = ed.finish();
        self.counters.out_response(msg.method_str());
        self.send(t, dest, bytes);
    }
}

/// Is `host[:port]` our own address (`hostport` = our `host:port`)?
fn is_our_host(hostport: &str, host: &str, port: Option<u16>) -> bool {
    let (h, p) = super::split_hostport(hostport);
    host.eq_ignore_ascii_case(h) && port.unwrap_or(5060) == p
}

/// A request for us (Request-URI ours, nothing left to route).
fn addressed_to_us(msg: &Message) -> Refusal {
    match msg.method() {
        Some(Method::Options) => (200, "OK"),
        Some(Method::Notify) => (481, "Subscription Does Not Exist"),
        _ if msg.to().tag().is_some() => (481, "Call/Transaction Does Not Exist"),
        _ => (404, "Not Found"),
    }
}
