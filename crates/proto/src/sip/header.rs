//! Typed views of the headers we read, borrowed from the message. Parsed on demand.
//!
//! Owns the grammar of parameters, name-addr / addr-spec values, Via, CSeq, Contact lists and
//! Subscription-State. Never copies: every field borrows the header text. Folded line ends
//! inside a value count as white space. Never unescapes (quoted display names and escaped URI
//! parts are returned as written).

use super::scan::{any_byte, is_lws, is_token, is_token_str, parse_u32, quoted_end, trim_lws};
use super::uri::Uri;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    #[error("Malformed {0} header")]
    Malformed(&'static str),
    #[error("{0} value out of range")]
    Range(&'static str),
}

/// `;name=value;flag` parameters (after a URI in `<>`, on Via, on Subscription-State...).
/// The text starts at the first `;` (leading white space allowed) or is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a>(pub &'a str);

/// One `;name[=value]` segment, as byte ranges relative to the `Params` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParamSpan {
    /// From the `;` to the end of the segment (before the next `;` or the end).
    pub(crate) whole: (usize, usize),
    pub(crate) name: (usize, usize),
    pub(crate) value: Option<(usize, usize)>,
}

/// Iterates the segments of a parameter list (empty segments included, with an empty name).
pub(crate) struct ParamSpans<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> ParamSpans<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        let s = s.as_bytes();
        let pos = next_semi(s, 0);
        ParamSpans { s, pos }
    }
}

/// Next `;` outside a quoted string at or after `from`, or `s.len()`.
fn next_semi(s: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < s.len() {
        let Some(p) = memchr::memchr2(b';', b'"', &s[i..]) else {
            return s.len();
        };
        let j = i + p;
        if s[j] == b';' {
            return j;
        }
        match quoted_end(s, j) {
            Some(e) => i = e,
            None => return s.len(),
        }
    }
    s.len()
}

fn trim(s: &[u8], a: usize, b: usize) -> (usize, usize) {
    super::scan::trim_range(s, a, b)
}

impl Iterator for ParamSpans<'_> {
    type Item = ParamSpan;
    fn next(&mut self) -> Option<ParamSpan> {
        if self.pos >= self.s.len() {
            return None;
        }
        let semi = self.pos;
        let end = next_semi(self.s, semi + 1);
        self.pos = end;
        let seg = &self.s[semi + 1..end];
        let eq = memchr::memchr(b'=', seg).map(|p| p + semi + 1);
        let (name, value) = match eq {
            Some(eq) => (trim(self.s, semi + 1, eq), Some(trim(self.s, eq + 1, end))),
            None => (trim(self.s, semi + 1, end), None),
        };
        Some(ParamSpan {
            whole: (semi, end),
            name,
            value,
        })
    }
}

fn sub(s: &str, r: (usize, usize)) -> &str {
    s.get(r.0..r.1).unwrap_or("")
}

impl<'a> Params<'a> {
    /// Validate the parameter list: only white space before the first `;`, no empty segment
    /// (`;;`), token names, non-empty values that are a whole quoted string or contain no white
    /// space, quote, comma or angle bracket.
    pub fn parse(s: &'a str) -> Result<Params<'a>, HeaderError> {
        Params::validate(s, "parameters")
    }

    pub(crate) fn validate(s: &'a str, what: &'static str) -> Result<Params<'a>, HeaderError> {
        Params::validate_with(s, what, |_, _| true)
    }

    /// [`Params::validate`], also handing each parameter (name, value) to `check`, in order, in
    /// the same pass; `check` returning false makes the list malformed.
    pub(crate) fn validate_with(
        s: &'a str,
        what: &'static str,
        mut check: impl FnMut(&'a str, Option<&'a str>) -> bool,
    ) -> Result<Params<'a>, HeaderError> {
        let bad = HeaderError::Malformed(what);
        let first = next_semi(s.as_bytes(), 0);
        if !trim_lws(&s[..first]).is_empty() {
            return Err(bad);
        }
        for sp in ParamSpans::new(s) {
            let name = sub(s, sp.name);
            if !is_token_str(name) || !check(name, sp.value.map(|v| sub(s, v))) {
                return Err(bad);
            }
            if let Some(v) = sp.value {
                let v = sub(s, v);
                let ok = if v.starts_with('"') {
                    quoted_end(v.as_bytes(), 0) == Some(v.len())
                } else {
                    !v.is_empty()
                        && !any_byte(v.as_bytes(), |b| {
                            (b <= b' ')
                                | (b == 0x7f)
                                | (b == b'"')
                                | (b == b',')
                                | (b == b'<')
                                | (b == b'>')
                        })
                };
                if !ok {
                    return Err(bad);
                }
            }
        }
        Ok(Params(s))
    }

    /// `Some(Some(v))` for `name=v` (quotes kept), `Some(None)` for a flag, `None` if absent.
    /// Names compare case-insensitively.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        let s = self.0;
        ParamSpans::new(s)
            .filter(|sp| sp.name.0 < sp.name.1)
            .map(move |sp| (sub(s, sp.name), sp.value.map(|v| sub(s, v))))
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// `display-name <uri>;params` or `uri;params` (addr-spec form: params after the URI belong to
/// the header, RFC 3261 §20.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name: inside the quotes for a quoted string (escapes kept as written), or the
    /// token sequence as written. `None` when absent.
    pub display: Option<&'a str>,
    /// The URI text without `<>`.
    pub uri: &'a str,
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Strict parse: rejects unterminated quotes, unquoted display names with characters other
    /// than tokens and white space (e.g. `,`), white space inside `<>` around the URI, an
    /// addr-spec holding `?` or `,` (it must be enclosed in `<>`), an invalid URI and malformed
    /// parameters.
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>, HeaderError> {
        let bad = HeaderError::Malformed("name-addr");
        let s = trim_lws(s);
        let b = s.as_bytes();
        let (display, rest) = if b.first() == Some(&b'"') {
            let end = quoted_end(b, 0).ok_or(bad.clone())?;
            let rest = trim_lws(&s[end..]);
            if !rest.starts_with('<') {
                return Err(bad);
            }
            (Some(&s[1..end - 1]), rest)
        } else if let Some(lt) = super::scan::byte_at(s, b'<') {
            let d = trim_lws(&s[..lt]);
            if !d.bytes().all(|c| is_token(c) || is_lws(c)) {
                return Err(bad);
            }
            (if d.is_empty() { None } else { Some(d) }, &s[lt..])
        } else {
            // addr-spec: the URI runs to the first `;` or white space.
            let end = s
                .bytes()
                .position(|c| c == b';' || is_lws(c))
                .unwrap_or(s.len());
            let uri = &s[..end];
            let forbidden = |c| (c == b'?') | (c == b',') | (c == b'"') | (c == b'>');
            if uri.is_empty() || any_byte(uri.as_bytes(), forbidden) {
                return Err(bad);
            }
            Uri::parse(uri).map_err(|_| bad.clone())?;
            let params = Params::validate(&s[end..], "name-addr")?;
            return Ok(NameAddr {
                display: None,
                uri,
                params,
            });
        };
        // rest starts with '<'
        let gt = super::scan::byte_at(rest, b'>').ok_or(bad.clone())?;
        let uri = &rest[1..gt];
        if uri.is_empty() || any_byte(uri.as_bytes(), is_lws) {
            return Err(bad);
        }
        Uri::parse(uri).map_err(|_| bad.clone())?;
        let params = Params::validate(&rest[gt + 1..], "name-addr")?;
        Ok(NameAddr {
            display,
            uri,
            params,
        })
    }
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }
    pub fn uri(&self) -> Result<Uri<'a>, super::UriError> {
        Uri::parse(self.uri)
    }
    /// `expires` header parameter (Contact), if present and numeric.
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        match self.params.get("expires") {
            None => Ok(None),
            Some(v) => parse_u32(v.unwrap_or(""))
                .map(Some)
                .ok_or(HeaderError::Range("expires")),
        }
    }
}

/// Skip LWS from `i`.
fn skip_lws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_lws(b[i]) {
        i += 1;
    }
    i
}

fn token_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_token(b[i]) {
        i += 1;
    }
    i
}

/// One Via value: `SIP/2.0/UDP host:port;branch=...;rport;received=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// Transport token as written (`UDP`, `TCP`, `TLS`, `SCTP`, extension).
    pub transport: &'a str,
    /// Host (IPv6 with brackets as written).
    pub host: &'a str,
    pub port: Option<u16>,
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parses `SIP / 2.0 / transport LWS host [: port] *(; param)` with LWS allowed around `/`,
    /// `:`, `;` and `=`. Rejects other protocols/versions, empty parameters and an `rport`
    /// value that is not a port.
    pub fn parse(s: &'a str) -> Result<Via<'a>, HeaderError> {
        let bad = HeaderError::Malformed("Via");
        let s = trim_lws(s);
        let b = s.as_bytes();
        let mut i = 0;
        let mut parts = [(0usize, 0usize); 3];
        for (n, part) in parts.iter_mut().enumerate() {
            if n > 0 {
                i = skip_lws(b, i);
                if b.get(i) != Some(&b'/') {
                    return Err(bad);
                }
                i = skip_lws(b, i + 1);
            }
            let e = token_end(b, i);
            if e == i {
                return Err(bad);
            }
            *part = (i, e);
            i = e;
        }
        if !sub(s, parts[0]).eq_ignore_ascii_case("SIP") || sub(s, parts[1]) != "2.0" {
            return Err(bad);
        }
        let transport = sub(s, parts[2]);
        let h = skip_lws(b, i);
        if h == i {
            return Err(bad);
        }
        let host_end = if b.get(h) == Some(&b'[') {
            s[h..].find(']').map(|p| h + p + 1).ok_or(bad.clone())?
        } else {
            let mut e = h;
            while e < b.len()
                && (b[e].is_ascii_alphanumeric() || matches!(b[e], b'.' | b'-' | b'_'))
            {
                e += 1;
            }
            e
        };
        let host = &s[h..host_end];
        if host.is_empty() || super::uri::check_host(host).is_err() {
            return Err(bad);
        }
        i = skip_lws(b, host_end);
        let mut port = None;
        if b.get(i) == Some(&b':') {
            let p = skip_lws(b, i + 1);
            let e = p + b[p..].iter().take_while(|c| c.is_ascii_digit()).count();
            port = Some(
                parse_u32(&s[p..e])
                    .and_then(|v| u16::try_from(v).ok())
                    .ok_or(bad.clone())?,
            );
            i = e;
        }
        // The first `rport` with a value must hold a port; checked in the validating pass.
        let mut rport_seen = false;
        let params = Params::validate_with(&s[i..], "Via", |name, value| {
            if rport_seen || !name.eq_ignore_ascii_case("rport") {
                return true;
            }
            rport_seen = true;
            value.is_none_or(|v| parse_u32(v).is_some_and(|v| u16::try_from(v).is_ok()))
        })?;
        Ok(Via {
            transport,
            host,
            port,
            params,
        })
    }
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }
    /// `None` absent, `Some(None)` bare `rport`, `Some(Some(p))` filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|v| parse_u32(v).and_then(|v| u16::try_from(v).ok())))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub seq: u32,
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    /// The method, typed (case-sensitive, RFC 3261 §7.1).
    pub fn kind(&self) -> super::Method {
        super::Method::from_text(self.method)
    }

    /// `1*DIGIT LWS Method`; the number must fit a u32 (leading zeros allowed).
    pub fn parse(s: &'a str) -> Result<CSeq<'a>, HeaderError> {
        let s = trim_lws(s);
        let b = s.as_bytes();
        let d = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let m = skip_lws(b, d);
        if d == 0 || m == d || token_end(b, m) != b.len() || m == b.len() {
            return Err(HeaderError::Malformed("CSeq"));
        }
        let seq = parse_u32(&s[..d]).ok_or(HeaderError::Range("CSeq"))?;
        Ok(CSeq {
            seq,
            method: &s[m..],
        })
    }
}

/// The Contact header(s) of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts<'a> {
    /// `Contact: *` (only valid with Expires: 0 in REGISTER).
    Star,
    List(Vec<NameAddr<'a>>),
}

impl<'a> Contacts<'a> {
    /// From the comma-split Contact values of a message. `*` must be the only value.
    pub fn from_values(values: &[&'a str]) -> Result<Contacts<'a>, HeaderError> {
        if values.contains(&"*") {
            return if values.len() == 1 {
                Ok(Contacts::Star)
            } else {
                Err(HeaderError::Malformed("Contact"))
            };
        }
        values
            .iter()
            .map(|v| NameAddr::parse(v).map_err(|_| HeaderError::Malformed("Contact")))
            .collect::<Result<Vec<_>, _>>()
            .map(Contacts::List)
    }
}

/// Parse a delta-seconds header value (Expires, Max-Forwards...).
pub(crate) fn delta_seconds(s: &str, what: &'static str) -> Result<u32, HeaderError> {
    let s = trim_lws(s);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderError::Malformed(what));
    }
    parse_u32(s).ok_or(HeaderError::Range(what))
}

/// The substate-value of a Subscription-State header (RFC 6665 §8.4), case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionStatus {
    Active,
    Pending,
    Terminated,
    /// An extension value (to be treated as unknown, not as an error).
    Other,
}

impl SubscriptionStatus {
    pub fn from_text(s: &str) -> SubscriptionStatus {
        if s.eq_ignore_ascii_case("active") {
            SubscriptionStatus::Active
        } else if s.eq_ignore_ascii_case("pending") {
            SubscriptionStatus::Pending
        } else if s.eq_ignore_ascii_case("terminated") {
            SubscriptionStatus::Terminated
        } else {
            SubscriptionStatus::Other
        }
    }
}

/// `Subscription-State: active;expires=600` (RFC 6665 §8.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionState<'a> {
    pub status: SubscriptionStatus,
    /// The substate-value as written.
    pub state: &'a str,
    pub expires: Option<u32>,
    pub reason: Option<&'a str>,
    pub retry_after: Option<u32>,
}

impl<'a> SubscriptionState<'a> {
    pub fn parse(s: &'a str) -> Result<SubscriptionState<'a>, HeaderError> {
        const W: &str = "Subscription-State";
        let s = trim_lws(s);
        let e = token_end(s.as_bytes(), 0);
        if e == 0 {
            return Err(HeaderError::Malformed(W));
        }
        let params = Params::validate(&s[e..], W)?;
        let num = |name: &str| -> Result<Option<u32>, HeaderError> {
            match params.get(name) {
                None => Ok(None),
                Some(v) => delta_seconds(v.unwrap_or(""), W).map(Some),
            }
        };
        Ok(SubscriptionState {
            status: SubscriptionStatus::from_text(&s[..e]),
            state: &s[..e],
            expires: num("expires")?,
            reason: params.get("reason").flatten(),
            retry_after: num("retry-after")?,
        })
    }
}

#[cfg(test)]
#[path = "header_tests.rs"]
mod tests;
