//! URIs: `sip:`, `sips:` (user, host incl. IPv6 `[..]`, port, params, escaped headers) and
//! `tel:`; other schemes are kept as opaque text. Borrowed, zero-copy.
//!
//! Owns URI syntax only. Never unescapes `%HH` (comparison rules belong to the caller) and never
//! resolves hosts.

use super::header::Params;
use super::scan::{any_byte, byte_at, parse_u32};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    #[error("Malformed URI")]
    Malformed,
    #[error("Malformed URI host")]
    Host,
    #[error("Malformed URI port")]
    Port,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    pub scheme: Scheme,
    /// Userinfo without the password part (escapes kept as written). For `tel:` the number.
    pub user: Option<&'a str>,
    /// Host as written (IPv6 with brackets). Empty for `tel:`.
    pub host: &'a str,
    pub port: Option<u16>,
    /// URI parameters (`;lr;transport=tcp;gr=...`).
    pub params: Params<'a>,
    /// Escaped headers after `?`, as written.
    pub headers: Option<&'a str>,
    /// The whole URI text.
    pub text: &'a str,
}

/// Characters never allowed anywhere in a URI we accept: controls, white space, `"`, `<`, `>`.
/// Written without short-circuits so [`any_byte`] can test many bytes at once.
fn bad_char(b: u8) -> bool {
    (b <= b' ') | (b == 0x7f) | (b == b'"') | (b == b'<') | (b == b'>')
}

/// Not allowed in a hostname: anything but letters, digits, `-`, `.`, `_`.
fn bad_host_char(b: u8) -> bool {
    let lower = b | 0x20;
    let letter = lower.wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    !(letter | digit | (b == b'-') | (b == b'.') | (b == b'_'))
}

/// Host syntax: `[IPv6]`, IPv4 or a hostname (letters, digits, `-`, `.`, `_` tolerated).
pub(crate) fn check_host(h: &str) -> Result<(), UriError> {
    let b = h.as_bytes();
    if let Some(inner) = h.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(UriError::Host)?;
        let ok = inner.contains(':')
            && inner
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.');
        return if ok { Ok(()) } else { Err(UriError::Host) };
    }
    let ok = !b.is_empty()
        && !any_byte(b, bad_host_char)
        && !matches!(b[0], b'.' | b'-')
        && !b
            .iter()
            .zip(b.iter().skip(1))
            .fold(false, |dots, (&x, &y)| dots | ((x == b'.') & (y == b'.')));
    if ok {
        Ok(())
    } else {
        Err(UriError::Host)
    }
}

impl<'a> Uri<'a> {
    /// Parse a URI. For `sip:`/`sips:`, the userinfo runs to the first `@` (so `;` and `?` before
    /// it belong to the user part, RFC 4475 §3.1.1.9); the password is dropped from `user`.
    pub fn parse(s: &'a str) -> Result<Uri<'a>, UriError> {
        let colon = byte_at(s, b':').ok_or(UriError::Malformed)?;
        let scheme_txt = &s[..colon];
        let sb = scheme_txt.as_bytes();
        if sb.is_empty()
            || !sb[0].is_ascii_alphabetic()
            || !sb
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        {
            return Err(UriError::Malformed);
        }
        let rest = &s[colon + 1..];
        if rest.is_empty() || any_byte(rest.as_bytes(), bad_char) {
            return Err(UriError::Malformed);
        }
        let scheme = if scheme_txt.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_txt.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_txt.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other
        };
        let mut uri = Uri {
            scheme,
            user: None,
            host: "",
            port: None,
            params: Params(""),
            headers: None,
            text: s,
        };
        match scheme {
            Scheme::Other => Ok(uri),
            Scheme::Tel => {
                let semi = byte_at(rest, b';').unwrap_or(rest.len());
                let number = &rest[..semi];
                if number.is_empty() || number.contains(['?', '@', ',']) {
                    return Err(UriError::Malformed);
                }
                uri.user = Some(number);
                uri.params = Params::parse(&rest[semi..]).map_err(|_| UriError::Malformed)?;
                Ok(uri)
            }
            Scheme::Sip | Scheme::Sips => {
                let mut hp = rest;
                if let Some(at) = byte_at(rest, b'@') {
                    let userinfo = &rest[..at];
                    let user = &userinfo[..byte_at(userinfo, b':').unwrap_or(userinfo.len())];
                    if user.is_empty() {
                        return Err(UriError::Malformed);
                    }
                    uri.user = Some(user);
                    hp = &rest[at + 1..];
                }
                let host_end = if hp.starts_with('[') {
                    byte_at(hp, b']').map(|p| p + 1).ok_or(UriError::Host)?
                } else {
                    memchr::memchr3(b':', b';', b'?', hp.as_bytes()).unwrap_or(hp.len())
                };
                uri.host = &hp[..host_end];
                check_host(uri.host)?;
                let mut r = &hp[host_end..];
                if let Some(p) = r.strip_prefix(':') {
                    let e = p
                        .bytes()
                        .position(|c| matches!(c, b';' | b'?'))
                        .unwrap_or(p.len());
                    let port = parse_u32(&p[..e])
                        .and_then(|v| u16::try_from(v).ok())
                        .ok_or(UriError::Port)?;
                    uri.port = Some(port);
                    r = &p[e..];
                }
                let q = byte_at(r, b'?').unwrap_or(r.len());
                uri.params = Params::parse(&r[..q]).map_err(|_| UriError::Malformed)?;
                if q < r.len() {
                    uri.headers = Some(&r[q + 1..]);
                }
                Ok(uri)
            }
        }
    }
    /// Has the `lr` parameter (loose routing).
    pub fn is_loose_route(&self) -> bool {
        self.params.get("lr").is_some()
    }
    /// Transport param lower-cased comparison helper: `Some("tcp")` etc.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }
    /// `gr` parameter (GRUU, RFC 5627): `Some(None)` for a bare `gr`, `Some(Some(v))` with value.
    pub fn gruu(&self) -> Option<Option<&'a str>> {
        self.params.get("gr")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let u =
            Uri::parse("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?Subject=hi").unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.host, "[2001:db8::1]");
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.is_loose_route());
        assert_eq!(u.headers, Some("Subject=hi"));
    }

    #[test]
    fn ipv4_and_hostname() {
        let u = Uri::parse("sip:192.0.2.1:5060").unwrap();
        assert_eq!((u.user, u.host, u.port), (None, "192.0.2.1", Some(5060)));
        let u = Uri::parse("SIP:pcscf.ims.example.net;lr").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.host, "pcscf.ims.example.net");
    }

    #[test]
    fn tel_uri() {
        let u = Uri::parse("tel:+1-212-555-0100;phone-context=ims.example.net").unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user, Some("+1-212-555-0100"));
        assert_eq!(u.host, "");
        assert_eq!(u.params.get("phone-context"), Some(Some("ims.example.net")));
    }

    #[test]
    fn gruu_params() {
        let u =
            Uri::parse("sip:alice@example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
                .unwrap();
        assert_eq!(
            u.gruu(),
            Some(Some("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"))
        );
        let u = Uri::parse("sip:alice@example.com;gr").unwrap();
        assert_eq!(u.gruu(), Some(None));
    }

    #[test]
    fn escaped_and_semiuri_userinfo() {
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, "example.com");
        assert!(u.params.is_empty());
        let u = Uri::parse("sip:null-%00-null@example.com").unwrap();
        assert_eq!(u.user, Some("null-%00-null"));
        let u =
            Uri::parse("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31").unwrap();
        assert_eq!(u.params.get("%6c%72"), Some(None));
        assert_eq!(u.params.get("n%61me"), Some(Some("v%61lue%25%34%31")));
    }

    #[test]
    fn other_schemes_and_errors() {
        let u = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!((u.scheme, u.host), (Scheme::Other, ""));
        assert_eq!(
            Uri::parse("isbn:2983792873").unwrap().text,
            "isbn:2983792873"
        );
        assert!(Uri::parse("sip:user@example.com; lr").is_err());
        assert!(Uri::parse("<sip:a@b>").is_err());
        assert!(Uri::parse("sip:").is_err());
        assert!(Uri::parse("sip:@host").is_err());
        assert_eq!(Uri::parse("sip:h:99999"), Err(UriError::Port));
        assert_eq!(Uri::parse("sip:[::1"), Err(UriError::Host));
        assert!(Uri::parse("sip:a@b;;c").is_err());
        assert!(Uri::parse("nocolon").is_err());
    }
}
