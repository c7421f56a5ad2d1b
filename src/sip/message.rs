//! Zero-copy message view: start line + header index (ranges into the original `Bytes`) + body.
//! Typed header parsing is lazy: only the headers someone asks for are parsed.

use bytes::Bytes;

use super::header::{CSeq, Contacts, HeaderError, NameAddr, Via};
use super::Limits;

/// Request methods. Extension methods are kept as `Other` (their text is in the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Register,
    Subscribe,
    Notify,
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Message,
    Prack,
    Update,
    Info,
    Refer,
    Publish,
    Other,
}

/// Header names the gateway reads. Lookup accepts full and compact forms in any case
/// (`Via`/`v`, `Contact`/`m`, `From`/`f`, `To`/`t`, `Call-ID`/`i`, `Content-Length`/`l`,
/// `Content-Type`/`c`, `Event`/`o`, `Supported`/`k`, `Subject`/`s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    Expires,
    MaxForwards,
    Route,
    RecordRoute,
    Path,
    ServiceRoute,
    PAssociatedUri,
    PAssertedIdentity,
    Event,
    SubscriptionState,
    ContentType,
    ContentLength,
    Accept,
    Require,
    ProxyRequire,
    Supported,
    Allow,
    Unsupported,
    Other,
}

/// Why a message was rejected. `Display` is short and safe to put into a 400 reason phrase
/// (it never echoes the hostile input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("Malformed start line")]
    StartLine,
    #[error("SIP version not supported")]
    Version,
    #[error("Malformed header line")]
    HeaderLine,
    #[error("Missing {0} header")]
    Missing(&'static str),
    #[error("Duplicate {0} header")]
    Duplicate(&'static str),
    #[error("Malformed {0} header")]
    Malformed(&'static str),
    #[error("CSeq method does not match request method")]
    CSeqMismatch,
    #[error("Content-Length does not match body")]
    ContentLength,
    #[error("Message too large")]
    TooLarge,
    #[error("Too many headers")]
    TooManyHeaders,
    #[error("Header section is not UTF-8")]
    Encoding,
}

/// A parsed SIP message. Cheap to clone (reference-counted bytes + small index).
#[derive(Debug, Clone)]
pub struct Message {
    _priv: (),
}

impl Message {
    /// Parse one message from a datagram (UDP) or a frame cut by `framer::check_stream` (TCP).
    /// Without Content-Length the body is the rest of the datagram; with it, trailing bytes after
    /// the body are discarded (RFC 3261 §18.3). Validates: start line, SIP/2.0, header syntax,
    /// mandatory headers (Via, From, To, Call-ID, CSeq; Max-Forwards is optional), single-valued
    /// headers not repeated, CSeq method = request method, Content-Length sane and ≤ body.
    pub fn parse(raw: Bytes, limits: &Limits) -> Result<Message, ParseError> {
        let _ = (raw, limits);
        todo!("sip helper")
    }
    /// The bytes this message was parsed from (only the message: trailing datagram bytes excluded).
    pub fn raw(&self) -> &Bytes {
        todo!()
    }
    pub fn is_request(&self) -> bool {
        todo!()
    }
    /// Request method; `None` for responses.
    pub fn method(&self) -> Option<Method> {
        todo!()
    }
    /// Method text of a request, or of the CSeq for a response (for extension methods too).
    pub fn method_str(&self) -> &str {
        todo!()
    }
    pub fn request_uri(&self) -> Option<&str> {
        todo!()
    }
    pub fn status(&self) -> Option<u16> {
        todo!()
    }
    /// First occurrence's value (trimmed; folded lines joined as the raw text allows).
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        let _ = name;
        todo!()
    }
    /// Every comma-separated value across all occurrences of the header, in order (comma splitting
    /// respects quotes and `<...>`). Use for Via, Route, Record-Route, Path, Service-Route,
    /// P-Associated-URI, Contact.
    pub fn header_values(&self, name: HeaderName) -> Vec<&str> {
        let _ = name;
        todo!()
    }
    /// First occurrence of any header by its name (case-insensitive; no compact-form mapping).
    pub fn header_by_name(&self, name: &str) -> Option<&str> {
        let _ = name;
        todo!()
    }
    pub fn call_id(&self) -> &str {
        todo!()
    }
    pub fn cseq(&self) -> CSeq<'_> {
        todo!()
    }
    pub fn from(&self) -> NameAddr<'_> {
        todo!()
    }
    pub fn to(&self) -> NameAddr<'_> {
        todo!()
    }
    pub fn top_via(&self) -> Via<'_> {
        todo!()
    }
    pub fn vias(&self) -> Result<Vec<Via<'_>>, HeaderError> {
        todo!()
    }
    pub fn contacts(&self) -> Result<Contacts<'_>, HeaderError> {
        todo!()
    }
    /// `Expires` header as seconds (saturating at u32::MAX is an error, not a clamp).
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        todo!()
    }
    pub fn max_forwards(&self) -> Result<Option<u32>, HeaderError> {
        todo!()
    }
    pub fn content_type(&self) -> Option<&str> {
        todo!()
    }
    pub fn body(&self) -> &[u8] {
        todo!()
    }
    /// Start an edit (splice) of this message for forwarding.
    pub fn edit(&self) -> super::Editor<'_> {
        super::Editor::new(self)
    }
}
