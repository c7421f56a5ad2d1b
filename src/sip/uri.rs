//! URIs: `sip:`, `sips:` (user, host incl. IPv6 `[..]`, port, params, escaped headers) and
//! `tel:`; other schemes are kept as opaque text. Borrowed, zero-copy.

use super::header::Params;

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

impl<'a> Uri<'a> {
    pub fn parse(s: &'a str) -> Result<Uri<'a>, UriError> {
        let _ = s;
        todo!("sip helper")
    }
    /// Has the `lr` parameter (loose routing).
    pub fn is_loose_route(&self) -> bool {
        self.params.get("lr").is_some()
    }
    /// Transport param lower-cased comparison helper: `Some("tcp")` etc.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }
}
