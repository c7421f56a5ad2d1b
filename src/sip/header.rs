//! Typed views of the headers we read, borrowed from the message. Parsed on demand.

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a>(pub &'a str);

impl<'a> Params<'a> {
    /// `Some(Some(v))` for `name=v` (quotes kept), `Some(None)` for a flag, `None` if absent.
    /// Names compare case-insensitively.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        let _ = name;
        todo!()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        let _ = self;
        std::iter::empty()
    }
}

/// `display-name <uri>;params` or `uri;params` (addr-spec form: params after the URI belong to
/// the header, RFC 3261 §20.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    pub display: Option<&'a str>,
    /// The URI text without `<>`.
    pub uri: &'a str,
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>, HeaderError> {
        let _ = s;
        todo!()
    }
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }
    pub fn uri(&self) -> Result<Uri<'a>, super::UriError> {
        Uri::parse(self.uri)
    }
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
    pub fn parse(s: &'a str) -> Result<Via<'a>, HeaderError> {
        let _ = s;
        todo!()
    }
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }
    /// `None` absent, `Some(None)` bare `rport`, `Some(Some(p))` filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        todo!()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub seq: u32,
    pub method: &'a str,
}

/// The Contact header(s) of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts<'a> {
    /// `Contact: *` (only valid with Expires: 0 in REGISTER).
    Star,
    List(Vec<NameAddr<'a>>),
}

/// `Subscription-State: active;expires=600` (RFC 6665 §8.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionState<'a> {
    /// `active`, `pending`, `terminated` or an extension value, lower-cased comparison is up to
    /// the caller.
    pub state: &'a str,
    pub expires: Option<u32>,
    pub reason: Option<&'a str>,
    pub retry_after: Option<u32>,
}

impl<'a> SubscriptionState<'a> {
    pub fn parse(s: &'a str) -> Result<SubscriptionState<'a>, HeaderError> {
        let _ = s;
        todo!()
    }
}
