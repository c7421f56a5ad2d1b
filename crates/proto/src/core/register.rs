//! REGISTER as a P-CSCF (SPEC §1): forward to the core with our Via and a Path that names the
//! UE's flow; relay responses back along the Via chain; learn the registration from the 2xx.

use std::net::IpAddr;
use std::time::Instant;

use super::{Gateway, Inbound, PendingRegister};
use crate::names;
use crate::registrar::{Flow, RegisterOutcome};
use crate::sip::Transport;
use crate::sip::{Contacts, HeaderName, Message, NameAddr, Via};

/// Default registration expiry when neither the contact nor the 2xx says (RFC 3261 §10.2.1.1).
const DEFAULT_EXPIRES: u32 = 3600;

impl Gateway {
    pub(super) fn handle_register(&mut self, now: Instant, inb: &Inbound, msg: &Message) {
        let Some(tg) = self.trunk_group_of(inb) else {
            metrics::counter!(names::SIP_DROPS, "reason" => "no_trunk_group").increment(1);
            return self.answer(
                inb,
                msg,
                403,
                "Forbidden: no trunk group for this source",
                &[],
            );
        };
        let trunk_group = match self.trunks.get_key_value(tg.name.as_str()) {
            Some((k, _)) => k.clone(),
            None => {
                return self.answer(
                    inb,
                    msg,
                    500,
                    "Server Internal Error: trunk group without profile",
                    &[],
                )
            }
        };
        let max_forwards = match msg.max_forwards() {
            Ok(v) => v.unwrap_or(70),
            Err(_) => {
                return self.answer(
                    inb,
                    msg,
                    400,
                    "Bad Request (Malformed Max-Forwards header)",
                    &[],
                )
            }
        };
        if max_forwards == 0 {
            return self.answer(inb, msg, 483, "Too Many Hops", &[]);
        }
        let contacts: Vec<Box<str>> = match msg.contacts() {
            Ok(Contacts::Star) => Vec::new(),
            Ok(Contacts::List(l)) => l.iter().map(|c| Box::from(c.uri)).collect(),
            Err(_) => {
                return self.answer(inb, msg, 400, "Bad Request (Malformed Contact header)", &[])
            }
        };
        let aor = msg.to().uri;

        let (out_t, core) = self.core.clone();
        let branch = self.derived_branch(msg);
        let flow = Flow {
            transport: inb.transport,
            peer: inb.peer,
            listener: inb.listener,
        };
        let via = self.our_via(out_t, &branch);
        let mut path = String::with_capacity(48 + self.me.hostport.len());
        for part in ["<sip:", &flow_token(&flow), "@", &self.me.hostport, ";lr>"] {
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
        if out_t == Transport::Tcp {
            ed.ensure_content_length();
        }
        let bytes = ed.finish();

        let key: Box<str> = branch.into();
        if self
            .pending
            .insert(
                key.clone(),
                PendingRegister {
                    trunk_group,
                    flow,
                    aor: aor.into(),
                    contacts,
                },
            )
            .is_none()
        {
            self.pending_order.push_back((now, key));
        }
        self.counters.out_request("REGISTER");
        self.send(out_t, core, bytes);
    }

    /// A response carrying our Via that is not one of our own transactions: when it answers a
    /// pending REGISTER, learn the registration. Relaying is `proxy.rs`'s `relay_response`.
    pub(super) fn on_register_response(&mut self, now: Instant, branch: &str, msg: &Message) {
        let status = msg.status().unwrap_or(0);
        let pending = if status >= 200 {
            self.pending.remove(branch)
        } else {
            None
        };
        if (200..300).contains(&status) && msg.cseq().method.eq_ignore_ascii_case("REGISTER") {
            if let Some(p) = &pending {
                self.learn(now, p, msg);
            }
        }
    }

    fn learn(&mut self, now: Instant, p: &PendingRegister, msg: &Message) {
        let expires_hdr = msg.expires().ok().flatten();
        let bindings = match msg.contacts() {
            Ok(Contacts::List(l)) => l
                .iter()
                .map(|c| {
                    let exp = c
                        .params
                        .get("expires")
                        .flatten()
                        .and_then(|v| v.trim().parse::<u32>().ok())
                        .or(expires_hdr)
                        .unwrap_or(DEFAULT_EXPIRES);
                    let inst = c.params.get("+sip.instance").flatten().map(strip_instance);
                    let reg_id = c
                        .params
                        .get("reg-id")
                        .flatten()
                        .and_then(|v| v.trim().parse().ok());
                    (c.uri, exp, inst, reg_id)
                })
                .collect(),
            _ => Vec::new(),
        };
        let associated: Vec<&str> = msg
            .header_values(HeaderName::PAssociatedUri)
            .into_iter()
            .map(addr_uri)
            .collect();
        let service_route: Vec<&str> = msg
            .header_values(HeaderName::ServiceRoute)
            .into_iter()
            .map(addr_uri)
            .collect();
        let outcome = RegisterOutcome {
            trunk_group: &p.trunk_group,
            flow: p.flow,
            aor: &p.aor,
            request_contacts: p.contacts.iter().map(|c| &**c).collect(),
            bindings,
            associated,
            service_route,
        };
        let mut events = std::mem::take(&mut self.events);
        self.registrar.on_register_ok(now, &outcome, &mut events);
        self.apply_reg_events(now, &mut events);
        self.events = events;
        self.drain_engine(now);
    }
}

/// The URI of a name-addr value (`<sip:a@b;lr>` → `sip:a@b;lr`); the text itself if unparseable.
pub(super) fn addr_uri(v: &str) -> &str {
    NameAddr::parse(v).map(|n| n.uri).unwrap_or(v.trim())
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

/// A Path user part naming the UE's flow: transport, listener, address (hex), so that
/// terminating requests can find the flow again.
pub(super) fn flow_token(f: &Flow) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(48);
    s.push(match f.transport {
        Transport::Udp => 'u',
        Transport::Tcp => 't',
    });
    let _ = write!(s, "{:x}-", f.listener);
    match f.peer.ip() {
        IpAddr::V4(a) => a.octets().iter().for_each(|b| {
            let _ = write!(s, "{b:02x}");
        }),
        IpAddr::V6(a) => a.octets().iter().for_each(|b| {
            let _ = write!(s, "{b:02x}");
        }),
    }
    let _ = write!(s, "-{:x}", f.peer.port());
    s
}
