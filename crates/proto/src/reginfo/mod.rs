//! `application/reginfo+xml` (RFC 3680) with the 3GPP TS 24.229 extensions and RFC 5628 GRUU
//! elements, parsed namespace-aware with quick-xml's `NsReader` (namespace URI + local name, never
//! the prefix). Hostile input is refused: any DOCTYPE, entity references other than the five
//! predefined ones and character references, bodies over the size limit, nesting beyond the depth
//! limit. Unknown elements and attributes are ignored.
//!
//! Owns: bytes → typed document. Never: registration or subscription state (see `subscription`).
//!
//! ```text
//!  body ──▶ size / UTF-8 checks ──▶ cursor (NsReader events, depth, DOCTYPE, entities)
//!                                     └──▶ parse (reginfo ▶ registration ▶ contact) ──▶ Reginfo
//! ```

mod cursor;
mod parse;
mod value;

pub use parse::parse;

/// RFC 3680 reginfo namespace.
pub const NS_REGINFO: &str = "urn:ietf:params:xml:ns:reginfo";
/// RFC 5628 GRUU extension namespace.
pub const NS_GRUU: &str = "urn:ietf:params:xml:ns:gruuinfo";
/// 3GPP TS 24.229 §7.10.2 wildcarded public user identity extension namespace.
pub const NS_EXT_REG_EXP: &str = "urn:3gpp:ns:extRegExp:1.0";

/// Parser limits (config `limits.reginfo_max_bytes`, `limits.reginfo_max_depth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted body, checked before anything else.
    pub max_bytes: usize,
    /// Deepest accepted element nesting, the root element being depth 1 (a normal document
    /// needs 4: reginfo, registration, contact, uri).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1 << 20,
            max_depth: 16,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocState {
    Full,
    Partial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegState {
    Init,
    Active,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactState {
    Active,
    Terminated,
}

/// RFC 3680 contact `event` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactEvent {
    Registered,
    Created,
    Refreshed,
    Shortened,
    Expired,
    Deactivated,
    Probation,
    Unregistered,
    Rejected,
    /// An event name outside RFC 3680 (kept; a terminated contact with it is still gone).
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reginfo {
    pub version: u64,
    pub state: DocState,
    pub registrations: Vec<Registration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub aor: String,
    pub id: String,
    pub state: RegState,
    pub contacts: Vec<Contact>,
    /// 3GPP TS 24.229 §7.10.2 `<ere:wildcardedIdentity>` (the `aor` is then one example
    /// identity out of the wildcarded range).
    pub wildcarded_identity: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: String,
    pub state: ContactState,
    pub event: ContactEvent,
    pub expires: Option<u32>,
    pub retry_after: Option<u32>,
    pub duration_registered: Option<u32>,
    pub q: Option<String>,
    pub callid: Option<String>,
    pub cseq: Option<u32>,
    pub uri: String,
    pub display_name: Option<String>,
    /// `<unknown-param name="+sip.instance">"<urn:...>"</unknown-param>`, `reg-id`, ...
    pub unknown_params: Vec<(String, Option<String>)>,
    /// RFC 5628 `<gr:pub-gruu uri=.../>`.
    pub pub_gruu: Option<String>,
    /// RFC 5628 `<gr:temp-gruu uri=... first-cseq=.../>`.
    pub temp_gruu: Option<String>,
    /// The `first-cseq` attribute of the temp-gruu, when present.
    pub temp_gruu_first_cseq: Option<u32>,
}

impl Contact {
    /// Value of an unknown-param by name (case-insensitive), `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.unknown_params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }
}

/// Why a document was refused. `Display` is a short reason phrase fit for a 400 (it never echoes
/// the input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReginfoError {
    #[error("reginfo body too large")]
    TooLarge,
    #[error("reginfo nesting too deep")]
    TooDeep,
    #[error("reginfo DOCTYPE not allowed")]
    Doctype,
    #[error("reginfo entity not allowed")]
    Entity,
    #[error("reginfo not well-formed XML")]
    Xml,
    #[error("reginfo encoding not UTF-8")]
    Encoding,
    #[error("reginfo root element is not reginfo")]
    Root,
    #[error("reginfo missing {0}")]
    Missing(&'static str),
    #[error("reginfo invalid {0}")]
    Invalid(&'static str),
    #[error("reginfo contradictory: {0}")]
    Contradictory(&'static str),
}
