//! Where messages go: URI → destination, and the pluggable SUBSCRIBE routing policy for the
//! visited network (SPEC §2.4; stands in for an external policy server).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::config::{Profile, Transport};
use crate::sip::{Scheme, Uri};

/// A next hop: an address, or a host name the transport resolves (and caches).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dest {
    Addr(SocketAddr),
    Name(Arc<str>, u16),
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Addr(a) => write!(f, "{a}"),
            Dest::Name(n, p) => write!(f, "{n}:{p}"),
        }
    }
}

/// Transport and destination of a SIP URI (RFC 3263 reduced to: `transport` param, explicit port
/// or 5060/5061, IP literal or name).
pub fn uri_target(uri_text: &str) -> Option<(Transport, Dest)> {
    let text = uri_text.trim().trim_start_matches('<');
    let text = text.split('>').next().unwrap_or(text);
    let uri = Uri::parse(text).ok()?;
    let default_port = match uri.scheme {
        Scheme::Sip => 5060,
        Scheme::Sips => 5061,
        _ => return None,
    };
    let transport = match uri.transport() {
        Some(t) if t.eq_ignore_ascii_case("tcp") || t.eq_ignore_ascii_case("tls") => Transport::Tcp,
        _ if uri.scheme == Scheme::Sips => Transport::Tcp,
        _ => Transport::Udp,
    };
    let port = uri.port.unwrap_or(default_port);
    let host = uri.host.trim_start_matches('[').trim_end_matches(']');
    let dest = match host.parse::<IpAddr>() {
        Ok(ip) => Dest::Addr(SocketAddr::new(ip, port)),
        Err(_) if host.eq_ignore_ascii_case("localhost") => {
            Dest::Addr(SocketAddr::from(([127, 0, 0, 1], port)))
        }
        Err(_) if host.is_empty() => return None,
        Err(_) => Dest::Name(Arc::from(host), port),
    };
    Some((transport, dest))
}

/// Routing policy for SUBSCRIBEs of a visited-network trunk group. The default returns the
/// profile's static `subscribe_route`; an operator's policy server plugs in here.
pub trait RoutePolicy: Send + Sync + std::fmt::Debug {
    fn subscribe_route(
        &self,
        trunk_group: &str,
        profile: &Profile,
        default_pui: &str,
    ) -> Vec<String>;
}

/// The profile's `subscribe_route`, as configured.
#[derive(Debug, Default, Clone, Copy)]
pub struct StaticRoutePolicy;

impl RoutePolicy for StaticRoutePolicy {
    fn subscribe_route(
        &self,
        _trunk_group: &str,
        profile: &Profile,
        _default_pui: &str,
    ) -> Vec<String> {
        profile.subscribe_route.clone()
    }
}
