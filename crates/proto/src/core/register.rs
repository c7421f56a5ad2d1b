//! REGISTER as a P-CSCF (SPEC §1): forward to the core with our Via and a Path that names the
//! UE's flow, remember the REGISTER until its final response, and read what the 2xx grants.
//!
//! Owns: the REGISTERs in flight (by our branch, forgotten after 64×T1). Never: registration
//! state (the registrar learns from what [`Registering::on_response`] hands back), responses'
//! relaying (the proxy's).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashMap;

use super::ctx::Ctx;
use super::flow::flow_token;
use super::Inbound;
use crate::names;
use crate::registrar::{BindingMatch, Flow, Granted, RegisterOutcome};
use crate::sip::{Contacts, HeaderName, Message, Method, NameAddr, Via};
use crate::time::DeadlineQueue;

/// Default registration expiry when neither the contact nor the 2xx says (RFC 3261 §10.2.1.1).
const DEFAULT_EXPIRES: u32 = 3600;

/// A REGISTER we forwarded and whose final response we have not seen yet.
#[derive(Debug, Clone)]
pub(super) struct PendingRegister {
    pub trunk_group: Arc<str>,
    pub flow: Flow,
    pub aor: Box<str>,
    /// The contacts the REGISTER named.
    pub contacts: Vec<NamedContact>,
    /// When it is forgotten without a final response.
    forget_at: Instant,
}

/// A contact a REGISTER named: URI, `+sip.instance`, `reg-id`.
#[derive(Debug, Clone)]
pub(super) struct NamedContact {
    uri: Box<str>,
    instance: Option<Box<str>>,
    reg_id: Option<u32>,
}

impl NamedContact {
    fn id(&self) -> BindingMatch<'_> {
        BindingMatch {
            uri: &self.uri,
            instance: self.instance.as_deref(),
            reg_id: self.reg_id,
        }
    }
}

/// The REGISTER-forwarding role.
#[derive(Debug)]
pub(super) struct Registering {
    pending: HashMap<Box<str>, PendingRegister>,
    timers: DeadlineQueue<Instant, Box<str>>,
    ttl: Duration,
}

impl Registering {
    pub fn new(ttl: Duration) -> Self {
        Registering {
            pending: HashMap::new(),
            timers: DeadlineQueue::new(),
            ttl,
        }
    }

    /// REGISTERs forwarded and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// A REGISTER from a UE: checks, then forward it to the core.
    pub fn forward(&mut self, now: Instant, ctx: &mut Ctx, inb: &Inbound, msg: &Message) {
        let Some(trunk) = ctx.trunk_of(inb) else {
            let known = ctx.trunk_group_of(inb).is_some();
            return if known {
                ctx.answer(
                    inb,
                    msg,
                    500,
                    "Server Internal Error: trunk group without profile",
                    &[],
                )
            } else {
                metrics::counter!(names::SIP_DROPS, "reason" => "no_trunk_group").increment(1);
                ctx.answer(
                    inb,
                    msg,
                    403,
                    "Forbidden: no trunk group for this source",
                    &[],
                )
            };
        };
        let trunk_group = trunk.name.clone();
        let max_forwards = match msg.max_forwards() {
            Ok(v) => v.unwrap_or(70),
            Err(_) => {
                return ctx.answer(
                    inb,
                    msg,
                    400,
                    "Bad Request (Malformed Max-Forwards header)",
                    &[],
                )
            }
        };
        if max_forwards == 0 {
            return ctx.answer(inb, msg, 483, "Too Many Hops", &[]);
        }
        let contacts: Vec<_> = match msg.contacts() {
            Ok(Contacts::Star) => Vec::new(),
            Ok(Contacts::List(l)) => l
                .iter()
                .map(|c| {
                    let (instance, reg_id) = flow_of(&c.params);
                    NamedContact {
                        uri: c.uri.into(),
                        instance: instance.map(Box::from),
                        reg_id,
                    }
                })
                .collect(),
            Err(_) => {
                return ctx.answer(inb, msg, 400, "Bad Request (Malformed Contact header)", &[])
            }
        };
        let aor = msg.to().uri;

        let (out_t, core) = ctx.core.clone();
        let branch = ctx.derived_branch(msg);
        let flow = Flow {
            transport: inb.transport,
            peer: inb.peer,
            listener: inb.listener,
        };
        let via = ctx.our_via(out_t, &branch);
        let mut path = String::with_capacity(48 + ctx.hostport.len());
        for part in ["<sip:", &flow_token(&flow), "@", &ctx.hostport, ";lr>"] {
            path.push_str(part);
        }
        let top = msg.top_via();
        let mut ed = msg.edit();
        if needs_received(&top, inb.peer.ip()) {
            let rport = top.rport().map(|_| inb.peer.port());
            ed.set_top_via_received(&inb.peer.ip().to_string(), rport);
        }
        ed.insert_header(HeaderName::Via, "Via", &via)
            .insert_header(HeaderName::Path, "Path", &path)
            .set_max_forwards(max_forwards - 1);
        if out_t.is_reliable() {
            ed.ensure_content_length();
        }
        let bytes = ed.finish();

        let key: Box<str> = branch.into();
        if !self.pending.contains_key(&key) {
            let forget_at = now + self.ttl;
            self.timers.push(forget_at, key.clone());
            self.pending.insert(
                key,
                PendingRegister {
                    trunk_group,
                    flow,
                    aor: aor.into(),
                    contacts,
                    forget_at,
                },
            );
        }
        ctx.counters.out_request("REGISTER");
        ctx.send(out_t, core, bytes);
    }

    /// A response carrying our Via: a final one ends the pending REGISTER; a 2xx to it is
    /// returned to be learned. (Relaying it is the proxy's.)
    pub fn on_response(&mut self, branch: &str, msg: &Message) -> Option<PendingRegister> {
        let status = msg.status().unwrap_or(0);
        if status < 200 {
            return None;
        }
        let pending = self.pending.remove(branch)?;
        let ok = (200..300).contains(&status) && msg.cseq().kind() == Method::Register;
        ok.then_some(pending)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Forget REGISTERs never answered.
    pub fn handle_timeout(&mut self, now: Instant) {
        loop {
            let pending = &self.pending;
            let due = self.timers.pop_due(now, |at, k| {
                pending.get(k).is_some_and(|p| p.forget_at == at)
            });
            let Some((_, k)) = due else { break };
            self.pending.remove(&k);
        }
        let pending = &self.pending;
        self.timers
            .tidy(|at, k| pending.get(k).is_some_and(|p| p.forget_at == at));
        self.timers.compact(pending.len(), |at, k| {
            pending.get(k).is_some_and(|p| p.forget_at == at)
        });
    }
}

/// What the 2xx to a pending REGISTER says, for the registrar.
pub(super) fn outcome<'a>(p: &'a PendingRegister, msg: &'a Message) -> RegisterOutcome<'a> {
    let expires_hdr = msg.expires().ok().flatten();
    let bindings = match msg.contacts() {
        Ok(Contacts::List(l)) => l
            .iter()
            .map(|c| {
                let (instance, reg_id) = flow_of(&c.params);
                Granted {
                    uri: c.uri,
                    expires: c
                        .params
                        .get("expires")
                        .flatten()
                        .and_then(|v| v.trim().parse::<u32>().ok())
                        .or(expires_hdr)
                        .unwrap_or(DEFAULT_EXPIRES),
                    instance,
                    reg_id,
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    let uris = |h| {
        msg.header_values(h)
            .into_iter()
            .map(addr_uri)
            .collect::<Vec<&str>>()
    };
    RegisterOutcome {
        trunk_group: &p.trunk_group,
        flow: p.flow,
        aor: &p.aor,
        request_contacts: p.contacts.iter().map(NamedContact::id).collect(),
        bindings,
        associated: uris(HeaderName::PAssociatedUri),
        service_route: uris(HeaderName::ServiceRoute),
    }
}

/// The URI of a name-addr value (`<sip:a@b;lr>` → `sip:a@b;lr`); the text itself if unparseable.
pub(super) fn addr_uri(v: &str) -> &str {
    NameAddr::parse(v).map(|n| n.uri).unwrap_or(v.trim())
}

/// A Contact's `+sip.instance` (quotes and `<>` stripped) and `reg-id` (RFC 5626).
fn flow_of<'a>(params: &crate::sip::Params<'a>) -> (Option<&'a str>, Option<u32>) {
    let instance = params.get("+sip.instance").flatten().map(strip_instance);
    let reg_id = params
        .get("reg-id")
        .flatten()
        .and_then(|v| v.trim().parse().ok());
    (instance, reg_id)
}

/// `"<urn:uuid:...>"` → `urn:uuid:...`.
pub(super) fn strip_instance(v: &str) -> &str {
    v.trim()
        .trim_matches('"')
        .trim_start_matches('<')
        .trim_end_matches('>')
}

/// RFC 3261 §18.2.1 / RFC 3581: add `received` when the sent-by host is not the source IP, or
/// when `rport` was asked for.
pub(super) fn needs_received(via: &Via<'_>, src: IpAddr) -> bool {
    let host = via.host.trim_start_matches('[').trim_end_matches(']');
    via.rport().is_some() || !host.parse::<IpAddr>().is_ok_and(|h| h == src)
}
