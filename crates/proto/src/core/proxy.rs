//! Proxying every non-REGISTER request of registered UEs (RFC 3261 §16, TS 24.229 P-CSCF) and
//! relaying responses back along the Via chain.
//!
//! ```text
//!  request ─▶ Max-Forwards ─▶ route ─▶ Plan ─▶ forward (one splice) ─▶ next hop
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
//! INVITE keeps a client transaction (`transaction::InviteTransactions`): `100 Trying`
//! upstream, Timer A retransmissions over UDP, `408` upstream at Timer B without any response,
//! forgotten at the final response or Timer C. The ACK of a non-2xx final response is forwarded
//! like the INVITE (same Route set, same derived branch) instead of being generated hop by hop;
//! CANCEL is forwarded the same way and answered by the next hop, not by us.
//!
//! Owns: the INVITE transactions. Never: touches bodies or headers it does not own (only Via,
//! Route, Record-Route, Max-Forwards, the Request-URI and — IBCF only — the Contact URI), changes
//! registrations, or answers an ACK.

use std::time::Instant;

use bytes::Bytes;

use super::ctx::Ctx;
use super::flow::{classify, flow_token, Leg, OurUri, RR_PARAM};
use super::ibcf::{announced_lifetime, is_reg_event, replace_contact_uri, ContactMap};
use super::register::{addr_uri, needs_received};
use super::Inbound;
use crate::names;
use crate::registrar::{Flow, Registrar};
use crate::sip::{
    uri_next_hop, uri_target, via_target, Dest, HeaderName, Message, Method, NoHop, Target, Via,
};
use crate::transaction::{InviteEvent, InviteTransactions};

/// Which of our Record-Route entries to add.
#[derive(Debug, Clone, Copy)]
enum Rr {
    /// The UE's flow, on the originating or terminating leg.
    Ue(Flow, Leg),
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
    next: Target,
}

type Refusal = (u16, &'static str);

/// What an INVITE transaction needs to answer its caller at Timer B.
#[derive(Debug, Clone)]
struct Caller {
    /// The INVITE as received.
    req: Message,
    upstream: Target,
}

/// The proxy role.
#[derive(Debug)]
pub(super) struct Proxy {
    invites: InviteTransactions<Target, Caller>,
}

impl Proxy {
    pub fn new(t1: std::time::Duration) -> Self {
        Proxy {
            invites: InviteTransactions::new(t1),
        }
    }

    /// INVITE transactions in progress.
    pub fn in_flight(&self) -> usize {
        self.invites.len()
    }

    /// Every request that is neither a REGISTER nor a NOTIFY of our own subscriptions.
    pub fn request(
        &mut self,
        now: Instant,
        ctx: &mut Ctx,
        registrar: &Registrar,
        ibcf: &mut ContactMap,
        inb: &Inbound,
        msg: &Message,
    ) {
        let max_forwards = match msg.max_forwards() {
            Ok(v) => v.unwrap_or(70),
            Err(_) => {
                return refuse(
                    ctx,
                    inb,
                    msg,
                    (400, "Bad Request (Malformed Max-Forwards header)"),
                )
            }
        };
        if max_forwards == 0 {
            return refuse(ctx, inb, msg, (483, "Too Many Hops"));
        }
        let branch = ctx.derived_branch(msg);
        if msg.method() == Some(Method::Invite) && self.invites.contains(&branch) {
            // A retransmission: we retransmit downstream ourselves.
            return ctx.answer(inb, msg, 100, "Trying", &[]);
        }
        match route(now, ctx, registrar, ibcf, inb, msg) {
            Ok(plan) => {
                let (t, dest) = plan.next.clone();
                let bytes = splice(ctx, registrar, inb, msg, max_forwards, &branch, &plan);
                if msg.method() == Some(Method::Invite) {
                    ctx.answer(inb, msg, 100, "Trying", &[]);
                    let caller = Caller {
                        req: msg.clone(),
                        upstream: (inb.transport, Dest::Addr(inb.peer)),
                    };
                    let reliable = t.is_reliable();
                    let out = (t, dest.clone());
                    self.invites
                        .start(now, &branch, out, bytes.clone(), reliable, caller);
                }
                ctx.counters.out_request(msg.method_str());
                tracing::debug!(method = msg.method_str(), call_id = msg.call_id(), %dest, "proxied");
                ctx.send(t, dest, bytes);
            }
            Err(r) => refuse(ctx, inb, msg, r),
        }
    }

    /// A response carrying our Via that is not one of our own transactions: remove our Via and
    /// send it to the next one (RFC 3261 §16.7); `100 Trying` is hop-by-hop and stops here.
    /// IBCF dialogs get the Contact of their 2xx translated.
    pub fn relay_response(
        &mut self,
        now: Instant,
        ctx: &mut Ctx,
        ibcf: &mut ContactMap,
        branch: &str,
        msg: &Message,
    ) {
        let status = msg.status().unwrap_or(0);
        let method = msg.cseq().kind();
        if method == Method::Invite {
            self.invites.on_response(now, branch, status);
        }
        if status == 100 {
            return;
        }
        let next = match msg.value_spans(HeaderName::Via).nth(1) {
            Some((_, s)) => Via::parse(msg.span_str(s)).ok(),
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
            && matches!(method, Method::Subscribe | Method::Notify)
            && ibcf.knows_dialog(msg.call_id())
        {
            translate_contact(now, ctx, ibcf, msg, None)
        } else {
            None
        };
        let mut ed = msg.edit();
        ed.remove_top_via();
        if let Some(c) = &contact {
            ed.replace_value(HeaderName::Contact, 0, c);
        }
        if t.is_reliable() {
            ed.ensure_content_length();
        }
        let bytes = ed.finish();
        ctx.counters.out_response(msg.method_str());
        ctx.send(t, dest, bytes);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.invites.poll_timeout()
    }

    /// INVITE retransmissions (Timer A) and the 408 we owe upstream at Timer B.
    pub fn handle_timeout(&mut self, now: Instant, ctx: &mut Ctx) {
        let mut events = Vec::new();
        self.invites.handle_timeout(now, &mut events);
        for ev in events {
            match ev {
                InviteEvent::Retransmit {
                    dest: (t, d),
                    bytes,
                } => {
                    ctx.counters.out_request("INVITE");
                    ctx.send(t, d, bytes);
                }
                InviteEvent::Timeout { user } => {
                    metrics::counter!(names::SIP_DROPS, "reason" => "invite_timeout").increment(1);
                    let tag = ctx.make_tag(&user.req);
                    let resp = crate::sip::writer::response(
                        &user.req,
                        408,
                        "Request Timeout",
                        Some(&tag),
                        &[],
                    );
                    ctx.counters.out_response("INVITE");
                    ctx.send(user.upstream.0, user.upstream.1, resp);
                }
            }
        }
    }
}

/// Answer with an error (an ACK is never answered: dropped and counted).
fn refuse(ctx: &mut Ctx, inb: &Inbound, msg: &Message, (code, reason): Refusal) {
    if msg.method() == Some(Method::Ack) {
        metrics::counter!(names::SIP_DROPS, "reason" => "ack_not_forwarded").increment(1);
        return;
    }
    let allow = [(
        "Allow",
        "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, SUBSCRIBE, NOTIFY, REFER, PRACK, UPDATE, INFO",
    )];
    let extra: &[(&str, &str)] = if code == 200 { &allow } else { &[] };
    tracing::debug!(
        method = msg.method_str(),
        code,
        reason,
        "request answered by the proxy"
    );
    ctx.answer(inb, msg, code, reason, extra);
}

/// Decide where a request goes (first match wins; see the module docs).
fn route(
    now: Instant,
    ctx: &Ctx,
    registrar: &Registrar,
    ibcf: &mut ContactMap,
    inb: &Inbound,
    msg: &Message,
) -> Result<Plan, Refusal> {
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
    let ours = |h: &str, p: Option<u16>| ctx.is_ours(h, p);
    let top_ours = top.and_then(|u| classify(u, ours));
    let pop_route = top_ours.is_some();
    // The next Route entry once ours is removed.
    let next_route = if pop_route { routes.next() } else { top };
    let ruri = msg.request_uri().unwrap_or("");
    let ruri_ours = classify(ruri, ours);
    let next_is_ours = next_route.is_some_and(|r| classify(r, ours).is_some());
    let to_route = |r: &str| hop(r, (400, "Bad Request (Route not routable)"));
    let plan = |next, rr| Plan {
        pop_route,
        preload_from: None,
        rr,
        request_uri: None,
        contact: None,
        next,
    };
    let ue = |f: Flow| (f.transport, Dest::Addr(f.peer));
    let linger = ctx.cfg.t1 * 64;

    // 1. A translated Contact (IBCF/IPX), whichever side the request comes from.
    if let Some(OurUri::Contact(token)) = ruri_ours {
        let Some(m) = ibcf.resolve(now, token, linger) else {
            return Err((404, "Not Found (unknown or expired contact token)"));
        };
        let next = match next_route {
            Some(r) => to_route(r)?,
            None => (m.transport, m.dest.clone()),
        };
        let mut p = plan(next, initial.then_some(Rr::Plain));
        p.request_uri = Some(m.uri);
        p.contact = ibcf_contact(now, ctx, ibcf, msg, (inb.transport, Dest::Addr(inb.peer)));
        return Ok(p);
    }

    // 2. Our Path or Record-Route entry naming a UE flow.
    if let Some(OurUri::Flow { flow, rr }) = top_ours {
        let flow = flow.ok_or((404, "Not Found (unknown flow token)"))?;
        if flow == src {
            // From the UE itself (in-dialog, through our Record-Route): on towards the core.
            let next = match next_route {
                Some(r) => to_route(r)?,
                None => hop(ruri, (404, "Not Found (Request-URI not routable)"))?,
            };
            return Ok(plan(
                next,
                initial.then_some(Rr::Ue(flow, Leg::Originating)),
            ));
        }
        if let Some(r) = next_route.filter(|_| !next_is_ours) {
            return Ok(plan(to_route(r)?, None));
        }
        if !rr && registrar.by_flow(&flow).is_none() {
            return Err((
                480,
                "Temporarily Unavailable (no registration on this flow)",
            ));
        }
        return Ok(plan(
            ue(flow),
            initial.then_some(Rr::Ue(flow, Leg::Terminating)),
        ));
    }

    // 3. A registered UE originates (or continues a dialog without our Record-Route).
    let reg = registrar.by_flow(&src).filter(|_| !ctx.is_ibcf_trunk(inb));
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
                hop(ruri, (404, "Not Found (Request-URI not routable)"))?
            }
            _ => ctx.core.clone(),
        };
        let mut p = plan(next, initial.then_some(Rr::Ue(src, Leg::Originating)));
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
            if !rr && registrar.by_flow(&flow).is_none() {
                return Err((
                    480,
                    "Temporarily Unavailable (no registration on this flow)",
                ));
            }
            return Ok(plan(
                ue(flow),
                initial.then_some(Rr::Ue(flow, Leg::Terminating)),
            ));
        }
        Some(OurUri::Plain { .. }) if next_route.is_none() => return Err(addressed_to_us(msg)),
        _ => {}
    }
    if let Some((_, b)) = registrar.by_contact(ruri) {
        let flow = b.flow;
        return Ok(plan(
            ue(flow),
            initial.then_some(Rr::Ue(flow, Leg::Terminating)),
        ));
    }

    // 6. IBCF / IPX trunk: transparent towards the core.
    if ctx.is_ibcf_trunk(inb) {
        let next = match next_route {
            Some(r) => to_route(r)?,
            None => ctx.core.clone(),
        };
        let mut p = plan(next, initial.then_some(Rr::Plain));
        p.contact = ibcf_contact(now, ctx, ibcf, msg, (inb.transport, Dest::Addr(inb.peer)));
        return Ok(p);
    }
    metrics::counter!(names::SIP_DROPS, "reason" => "not_registered").increment(1);
    Err((403, "Forbidden (not registered from this address)"))
}

/// IBCF: the translated Contact value for a reg-event SUBSCRIBE/NOTIFY (request) whose sender
/// is reachable at `from`; also applies the lifetime the message announces.
fn ibcf_contact(
    now: Instant,
    ctx: &Ctx,
    ibcf: &mut ContactMap,
    msg: &Message,
    from: Target,
) -> Option<String> {
    if !matches!(msg.method(), Some(Method::Subscribe | Method::Notify)) || !is_reg_event(msg) {
        if ibcf.knows_dialog(msg.call_id()) {
            ibcf.set_lifetime(now, msg.call_id(), None, ctx.cfg.t1 * 64);
        }
        return None;
    }
    translate_contact(now, ctx, ibcf, msg, Some(from))
}

/// Replace the first Contact's URI by a token; `target` None = reach the original URI.
fn translate_contact(
    now: Instant,
    ctx: &Ctx,
    ibcf: &mut ContactMap,
    msg: &Message,
    target: Option<Target>,
) -> Option<String> {
    let linger = ctx.cfg.t1 * 64;
    let lifetime = announced_lifetime(msg);
    let value = msg
        .value_spans(HeaderName::Contact)
        .next()
        .map(|(_, s)| msg.span_str(s));
    let Some((value, target)) =
        value.and_then(|v| Some((v, target.or_else(|| uri_target(addr_uri(v)))?)))
    else {
        // Nothing to translate; the lifetime still counts for a dialog we know.
        ibcf.set_lifetime(now, msg.call_id(), lifetime, linger);
        return None;
    };
    let token = ibcf.translate(
        now,
        msg.call_id(),
        addr_uri(value),
        target,
        lifetime,
        linger,
    );
    replace_contact_uri(value, &format!("sip:{token}@{}", ctx.hostport)).map(|(v, _)| v)
}

/// Build the forwarded request in one splice.
fn splice(
    ctx: &Ctx,
    registrar: &Registrar,
    inb: &Inbound,
    msg: &Message,
    max_forwards: u32,
    branch: &str,
    plan: &Plan,
) -> Bytes {
    let t = plan.next.0;
    let via = ctx.our_via(t, branch);
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
        .and_then(|f| registrar.by_flow(&f))
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
        Rr::Ue(f, leg) => format!(
            "<sip:{}@{};lr;{RR_PARAM}={}>",
            flow_token(&f),
            ctx.hostport,
            leg.param()
        ),
        Rr::Plain => format!("<sip:{};lr;{RR_PARAM}={}>", ctx.hostport, Leg::Ibcf.param()),
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
    if t.is_reliable() {
        ed.ensure_content_length();
    }
    ed.finish()
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

/// The next hop of a Route or Request-URI, or the answer when there is none: `unroutable` for
/// what is not a SIP URI; `416` for a `sips:` URI and `502` for `transport=tls`, since this
/// gateway has no TLS and does not send such a request in the clear.
fn hop(uri: &str, unroutable: (u16, &'static str)) -> Result<Target, (u16, &'static str)> {
    uri_next_hop(uri).map_err(|e| match e {
        NoHop::Unroutable => unroutable,
        NoHop::Sips => (
            416,
            "Unsupported URI Scheme (sips: needs TLS, which this gateway does not have)",
        ),
        NoHop::Tls => (
            502,
            "Bad Gateway (the next hop needs TLS, which this gateway does not have)",
        ),
    })
}
