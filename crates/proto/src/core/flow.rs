//! Our own URIs and what their user part names: a UE flow (Path and Record-Route entries,
//! encoded by [`flow_token`]) or a translated IBCF Contact (`c…` tokens owned by `ibcf.rs`). Pure functions over text: decoding never panics on hostile input and never
//! allocates.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::registrar::Flow;
use crate::sip::Transport;
use crate::sip::Uri;

/// Record-Route parameter naming the leg we record-routed (see [`Leg`]).
pub(super) const RR_PARAM: &str = "rr";

/// Which leg of a dialog one of our Record-Route entries is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Leg {
    /// The UE originated the dialog (`rr=mo`).
    Originating,
    /// The core sent it towards the UE (`rr=mt`).
    Terminating,
    /// IBCF/IPX pass-through (`rr=ib`).
    Ibcf,
}

impl Leg {
    /// The `rr` parameter value.
    pub fn param(self) -> &'static str {
        match self {
            Leg::Originating => "mo",
            Leg::Terminating => "mt",
            Leg::Ibcf => "ib",
        }
    }
}

/// A Path user part naming the UE's flow: transport, listener, address (hex), so that
/// terminating requests can find the flow again. [`parse_flow_token`] reads it back.
pub(super) fn flow_token(f: &Flow) -> String {
    use crate::sip::writer::push_hex;
    let mut s = String::with_capacity(48);
    s.push(match f.transport {
        Transport::Udp => 'u',
        Transport::Tcp => 't',
    });
    push_hex(&mut s, f.listener.into(), 0);
    s.push('-');
    match f.peer.ip() {
        IpAddr::V4(a) => push_hex(&mut s, u32::from(a).into(), 8),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            push_hex(&mut s, (v >> 64) as u64, 16);
            push_hex(&mut s, v as u64, 16);
        }
    }
    s.push('-');
    push_hex(&mut s, f.peer.port().into(), 0);
    s
}

/// What one of our URIs names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OurUri<'a> {
    /// Our bare address (no user part we understand).
    Plain { rr: bool },
    /// A UE flow; `rr` when the URI is one of our Record-Route entries (not a Path).
    Flow { flow: Option<Flow>, rr: bool },
    /// A translated Contact (IBCF/IPX).
    Contact(&'a str),
}

/// Classify `uri` (text without `<>`) when its host:port is ours (`is_ours`), else `None`.
pub(super) fn classify<'a>(
    uri: &'a str,
    is_ours: impl Fn(&str, Option<u16>) -> bool,
) -> Option<OurUri<'a>> {
    let u = Uri::parse(uri).ok()?;
    if !is_ours(u.host, u.port) {
        return None;
    }
    let rr = u.params.get(RR_PARAM).is_some();
    Some(match u.user {
        Some(user) if user.starts_with('c') && user.len() > 1 => OurUri::Contact(user),
        Some(user) if user.starts_with(['u', 't']) => OurUri::Flow {
            flow: parse_flow_token(user),
            rr,
        },
        _ => OurUri::Plain { rr },
    })
}

/// Decode `{u|t}{listener hex}-{ip hex}-{port hex}` (8 hex digits for IPv4, 32 for IPv6).
pub(super) fn parse_flow_token(s: &str) -> Option<Flow> {
    let transport = match s.as_bytes().first()? {
        b'u' => Transport::Udp,
        b't' => Transport::Tcp,
        _ => return None,
    };
    let mut parts = s.get(1..)?.split('-');
    let listener = u16::from_str_radix(parts.next()?, 16).ok()?;
    let ip_hex = parts.next()?;
    let port = u16::from_str_radix(parts.next()?, 16).ok()?;
    if parts.next().is_some() {
        return None;
    }
    let ip = match ip_hex.len() {
        8 => IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(ip_hex, 16).ok()?)),
        32 => IpAddr::V6(Ipv6Addr::from(u128::from_str_radix(ip_hex, 16).ok()?)),
        _ => return None,
    };
    if !ip_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None; // from_str_radix accepts a leading '+'
    }
    Some(Flow {
        transport,
        peer: SocketAddr::new(ip, port),
        listener,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_tokens_round_trip_v4_and_v6() {
        for (t, peer, listener) in [
            (Transport::Udp, "127.0.0.1:5060", 0u16),
            (Transport::Tcp, "[2001:db8::1]:40000", 3),
            (Transport::Tcp, "10.1.2.3:1", 0xffff),
        ] {
            let f = Flow {
                transport: t,
                peer: peer.parse().unwrap(),
                listener,
            };
            assert_eq!(parse_flow_token(&flow_token(&f)), Some(f));
        }
    }

    #[test]
    fn hostile_tokens_are_rejected() {
        for s in [
            "",
            "u",
            "x0-7f000001-1",
            "u0-7f00001-1",
            "u0-+f000001-1",
            "u0-7f000001-1-2",
            "u0-7f000001-",
            "t-7f000001-1",
            "u0-7f000001-10000",
        ] {
            assert_eq!(parse_flow_token(s), None, "{s}");
        }
    }

    #[test]
    fn classify_our_uris() {
        let ours = |h: &str, p: Option<u16>| h == "gw" && p.unwrap_or(5060) == 5060;
        assert_eq!(
            classify("sip:gw;lr", ours),
            Some(OurUri::Plain { rr: false })
        );
        assert_eq!(classify("sip:other;lr", ours), None);
        assert_eq!(
            classify("sip:cabc@gw:5060", ours),
            Some(OurUri::Contact("cabc"))
        );
        let f = Flow {
            transport: Transport::Udp,
            peer: "127.0.0.1:9".parse().unwrap(),
            listener: 0,
        };
        let uri = format!("sip:{}@gw;lr;rr=mo", flow_token(&f));
        assert_eq!(
            classify(&uri, ours),
            Some(OurUri::Flow {
                flow: Some(f),
                rr: true
            })
        );
        assert_eq!(
            classify("sip:u0-zz@gw;lr", ours),
            Some(OurUri::Flow {
                flow: None,
                rr: false
            })
        );
    }
}
