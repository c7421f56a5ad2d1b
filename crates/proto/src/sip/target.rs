//! Where a message goes next: the transport and destination of a URI (a Route, a Request-URI,
//! `sip.core`) or of a Via (where a response goes). The one place that decides a next hop's
//! transport (RFC 3263 reduced to: `transport` parameter, `sips`, explicit port or 5060/5061,
//! IP literal or host name; RFC 3261 §18.2.2 and RFC 3581 for responses).
//!
//! Never resolves names: a host name leaves as [`Dest::Name`] for the transport to resolve.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::{Scheme, Uri, Via};

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// The Via sent-protocol's transport token (`SIP/2.0/UDP`).
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// Lower case: the URI `transport=` parameter value and the metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }

    /// Reliable (no retransmissions, Timers J and K are 0).
    pub fn is_reliable(self) -> bool {
        self == Transport::Tcp
    }
}

impl std::str::FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Ok(Transport::Udp),
            "tcp" => Ok(Transport::Tcp),
            _ => Err(format!("unknown transport `{s}` (udp or tcp)")),
        }
    }
}

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

/// A transport and a destination.
pub type Target = (Transport, Dest);

/// Why a URI gives no next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoHop {
    /// Not a SIP URI, or no host.
    Unroutable,
    /// A `sips:` URI: TLS is not supported, and nothing is sent in the clear instead.
    Sips,
    /// `transport=tls` on a `sip:` URI: the same.
    Tls,
}

/// The next hop of a parsed SIP URI. A URI that needs TLS (`sips:`, `transport=tls`) has none:
/// this gateway has no TLS, and sending such a request over plain TCP would be a silent
/// downgrade.
pub fn next_hop(uri: &Uri<'_>) -> Result<Target, NoHop> {
    let default_port = match uri.scheme {
        Scheme::Sip => 5060,
        Scheme::Sips => return Err(NoHop::Sips),
        _ => return Err(NoHop::Unroutable),
    };
    let transport = match uri.transport() {
        Some(t) if t.eq_ignore_ascii_case("tls") => return Err(NoHop::Tls),
        Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
        _ => Transport::Udp,
    };
    let port = uri.port.unwrap_or(default_port);
    let host = uri.host.trim_start_matches('[').trim_end_matches(']');
    let dest = match host.parse::<IpAddr>() {
        Ok(ip) => Dest::Addr(SocketAddr::new(ip, port)),
        Err(_) if host.eq_ignore_ascii_case("localhost") => {
            Dest::Addr(SocketAddr::from(([127, 0, 0, 1], port)))
        }
        Err(_) if host.is_empty() => return Err(NoHop::Unroutable),
        Err(_) => Dest::Name(Arc::from(host), port),
    };
    Ok((transport, dest))
}

/// [`next_hop`] of a URI written as text (with or without `<>`).
pub fn uri_next_hop(uri_text: &str) -> Result<Target, NoHop> {
    let text = uri_text.trim().trim_start_matches('<');
    let text = text.split('>').next().unwrap_or(text);
    next_hop(&Uri::parse(text).map_err(|_| NoHop::Unroutable)?)
}

/// The next hop of a URI written as text; `None` for other schemes, no host, or TLS.
pub fn uri_target(uri_text: &str) -> Option<Target> {
    uri_next_hop(uri_text).ok()
}

/// Where a response goes for this Via (RFC 3261 §18.2.2, RFC 3581 §4): `received`/`rport` when
/// present, else sent-by; `None` for an unusable address (unspecified, broadcast, empty).
pub fn via_target(via: &Via<'_>) -> Option<Target> {
    let t =
        if via.transport.eq_ignore_ascii_case("TCP") || via.transport.eq_ignore_ascii_case("TLS") {
            Transport::Tcp
        } else {
            Transport::Udp
        };
    let port = match via.rport() {
        Some(Some(p)) => p,
        _ => via.port.unwrap_or(5060),
    };
    let host = via.received().unwrap_or(via.host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let dest = match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() || ip == IpAddr::from([255, 255, 255, 255]) => return None,
        Ok(ip) => Dest::Addr(SocketAddr::new(ip, port)),
        Err(_) if host.is_empty() => return None,
        Err(_) => Dest::Name(host.into(), port),
    };
    Some((t, dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hops_by_scheme_and_transport_and_none_that_needs_tls() {
        let a = |s: &str| Dest::Addr(s.parse().unwrap());
        assert_eq!(
            uri_next_hop("<sip:10.0.0.1;lr>"),
            Ok((Transport::Udp, a("10.0.0.1:5060")))
        );
        assert_eq!(
            uri_next_hop("sip:[::1]:5070;transport=TCP"),
            Ok((Transport::Tcp, a("[::1]:5070")))
        );
        assert_eq!(
            uri_next_hop("sip:scscf.example.net"),
            Ok((Transport::Udp, Dest::Name("scscf.example.net".into(), 5060)))
        );
        assert_eq!(uri_next_hop("sips:10.0.0.1"), Err(NoHop::Sips));
        assert_eq!(uri_next_hop("<sips:bob@example.net;lr>"), Err(NoHop::Sips));
        assert_eq!(uri_next_hop("sip:10.0.0.1;transport=TLS"), Err(NoHop::Tls));
        assert_eq!(uri_next_hop("tel:+4912345"), Err(NoHop::Unroutable));
        assert_eq!(uri_target("sips:10.0.0.1"), None);
    }
}
