//! Zero-copy message view: start line + header index (ranges into the original `Bytes`) + body.
//! Typed header parsing is lazy: only the headers someone asks for are parsed.
//!
//! Owns the validation done once per message (start line, UTF-8 of the header section, header
//! line syntax, mandatory and single-valued headers, CSeq, Content-Length). Never copies the
//! message: the index holds byte offsets, accessors re-slice (`&str` views of a section that was
//! validated as UTF-8 at parse time). Folded values are returned as written (their line ends
//! count as white space for every typed parser); use [`unfold`](super::scan::unfold) for a
//! single-line copy.

use std::sync::Arc;

use bytes::Bytes;

use super::header::{delta_seconds, CSeq, Contacts, HeaderError, NameAddr, Params, Via};
use super::names::{single_name, KINDS};
use super::scan::{self, find_header_end, leading_crlf, strict_line_at, trim_range, ValueSplit};
use super::uri::{Scheme, Uri};
use super::Limits;

pub use super::names::{HeaderName, Method};

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

/// Byte range `[0, 1)` into the message.
pub(crate) type Span = (u32, u32);

/// One header line (after unfolding: continuation lines belong to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) kind: HeaderName,
    /// Start of the line to just after its last line end (continuation lines included).
    pub(crate) line: Span,
    pub(crate) name: Span,
    /// Trimmed value (may span folded line ends).
    pub(crate) value: Span,
}

#[derive(Debug, Clone, Copy)]
enum StartLine {
    Request {
        method: Method,
        method_text: Span,
        uri: Span,
    },
    Response {
        status: u16,
        reason: Span,
    },
}

const NONE: u16 = u16::MAX;

/// A parsed SIP message. Cheap to clone (reference-counted bytes + small index).
#[derive(Debug, Clone)]
pub struct Message {
    raw: Bytes,
    /// The start line and headers (`raw[..header_end]`), checked as UTF-8 once: header values
    /// are read as `&str` many times per message, and slicing this costs a bounds check where
    /// `str::from_utf8` on the raw bytes would scan every value again.
    head: Arc<str>,
    start: StartLine,
    headers: Vec<Entry>,
    /// Index of the first entry of each known kind, `NONE` if absent.
    first: [u16; KINDS],
    /// Just after the line end of the last header line (where the empty line starts).
    header_end: u32,
    body_start: u32,
    cseq_seq: u32,
    cseq_method: Span,
    /// From and To as parsed by `validate` (absolute spans), so `from()`/`to()` do not parse
    /// them again: the handlers ask for them several times per message.
    from_to: [NameAddrSpans; 2],
    /// The top Via as parsed by `validate` (absolute spans): every handler reads it (branch,
    /// rport, received, sent-by), so `top_via()` rebuilds it from these instead of parsing.
    top_via: ViaSpans,
}

/// A parsed Via as spans of the raw message.
#[derive(Debug, Clone, Copy, Default)]
struct ViaSpans {
    transport: Span,
    host: Span,
    port: Option<u16>,
    params: Span,
}

/// A parsed name-addr as spans of the raw message.
#[derive(Debug, Clone, Copy, Default)]
struct NameAddrSpans {
    display: Option<Span>,
    uri: Span,
    params: Span,
}

/// Span of `part`, a sub-slice of `whole`, whose first byte is at `at` in the raw message.
fn span_within(whole: &str, at: u32, part: &str) -> Span {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    if p < w || p + part.len() > w + whole.len() {
        return (at, at); // not a sub-slice (cannot happen for parser output): empty
    }
    let off = (p - w) as u32;
    (at + off, at + off + part.len() as u32)
}

fn sp(a: usize, b: usize) -> Span {
    (a as u32, b as u32)
}

fn check_version(v: &str) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        return Ok(());
    }
    let numeric = v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
        && v[4..].split_once('.').is_some_and(|(a, b)| {
            !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
        });
    Err(if numeric {
        ParseError::Version
    } else {
        ParseError::StartLine
    })
}

fn parse_start(line: &str) -> Result<StartLine, ParseError> {
    let (first, rest) = line.split_once(' ').ok_or(ParseError::StartLine)?;
    if first
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        check_version(first)?;
        let (code, reason_at) = match rest.split_once(' ') {
            Some((c, _)) => (c, first.len() + 1 + c.len() + 1),
            None => (rest, line.len()),
        };
        if code.len() != 3 {
            return Err(ParseError::StartLine);
        }
        let status = scan::parse_u32(code)
            .filter(|c| (100..=699).contains(c))
            .ok_or(ParseError::StartLine)?;
        return Ok(StartLine::Response {
            status: status as u16,
            reason: sp(reason_at, line.len()),
        });
    }
    if !scan::is_token_str(first) {
        return Err(ParseError::StartLine);
    }
    let (uri, version) = rest.split_once(' ').ok_or(ParseError::StartLine)?;
    if version.contains([' ', '\t']) || uri.contains('\t') {
        return Err(ParseError::StartLine);
    }
    check_version(version)?;
    let parsed = Uri::parse(uri).map_err(|_| ParseError::StartLine)?;
    if matches!(parsed.scheme, Scheme::Sip | Scheme::Sips) && parsed.headers.is_some() {
        // RFC 3261 §19.1.1: headers are not allowed in a Request-URI.
        return Err(ParseError::StartLine);
    }
    let m0 = first.len() + 1;
    Ok(StartLine::Request {
        method: Method::from_text(first),
        method_text: sp(0, first.len()),
        uri: sp(m0, m0 + uri.len()),
    })
}

impl Message {
    /// Parse one message from a datagram (UDP) or a frame cut by `framer::check_stream` (TCP).
    /// Without Content-Length the body is the rest of the datagram; with it, trailing bytes after
    /// the body are discarded (RFC 3261 §18.3). Validates: start line, SIP/2.0, header syntax,
    /// mandatory headers (Via, From, To, Call-ID, CSeq; Max-Forwards is optional), single-valued
    /// headers not repeated, CSeq method = request method, Content-Length sane and ≤ body.
    ///
    /// Leading CRLFs are skipped; a bare LF is accepted as a line end (a bare CR is not); the
    /// empty line ending the header section is required. A status line without reason phrase
    /// (`SIP/2.0 100` or `SIP/2.0 100 `) has an empty reason. Via is required in responses too (RFC 3261 §20 table 2).
    pub fn parse(raw: Bytes, limits: &Limits) -> Result<Message, ParseError> {
        if raw.len() > limits.max_message || raw.len() > u32::MAX as usize {
            return Err(ParseError::TooLarge);
        }
        let skip = leading_crlf(&raw);
        let raw = raw.slice(skip..);
        let (header_end, body_start) = match find_header_end(&raw) {
            Some(e) => e,
            None if raw.len() > limits.max_header_bytes => return Err(ParseError::TooLarge),
            None => return Err(ParseError::HeaderLine),
        };
        if header_end > limits.max_header_bytes {
            return Err(ParseError::TooLarge);
        }
        let text = std::str::from_utf8(&raw[..header_end]).map_err(|_| ParseError::Encoding)?;
        let b = text.as_bytes();
        let (sl_end, mut pos) = strict_line_at(b, 0).ok_or(ParseError::StartLine)?;
        let start = parse_start(&text[..sl_end])?;

        let mut headers: Vec<Entry> = Vec::with_capacity(32);
        let mut first = [NONE; KINDS];
        while pos < header_end {
            let (end, next) = strict_line_at(b, pos).ok_or(ParseError::HeaderLine)?;
            if matches!(b[pos], b' ' | b'\t') {
                let last = headers.last_mut().ok_or(ParseError::HeaderLine)?;
                last.line.1 = next as u32;
                last.value.1 = end as u32;
            } else {
                let colon = pos
                    + b[pos..end]
                        .iter()
                        .position(|&c| c == b':')
                        .ok_or(ParseError::HeaderLine)?;
                let (n0, n1) = trim_range(b, pos, colon);
                let name = &text[n0..n1];
                if n0 != pos || !scan::is_token_str(name) {
                    return Err(ParseError::HeaderLine);
                }
                if headers.len() >= limits.max_headers || headers.len() >= usize::from(NONE) {
                    return Err(ParseError::TooManyHeaders);
                }
                let kind = HeaderName::from_name(name);
                let slot = &mut first[kind as usize];
                if kind != HeaderName::Other {
                    if *slot != NONE {
                        if let Some(n) = single_name(kind) {
                            return Err(ParseError::Duplicate(n));
                        }
                    } else {
                        *slot = headers.len() as u16;
                    }
                }
                headers.push(Entry {
                    kind,
                    line: sp(pos, next),
                    name: sp(n0, n1),
                    value: sp(colon + 1, end),
                });
            }
            pos = next;
        }
        for e in &mut headers {
            let (a, z) = trim_range(b, e.value.0 as usize, e.value.1 as usize);
            e.value = sp(a, z);
        }
        let mut msg = Message {
            head: Arc::from(text),
            raw,
            start,
            headers,
            first,
            header_end: header_end as u32,
            body_start: body_start as u32,
            cseq_seq: 0,
            cseq_method: (0, 0),
            from_to: [NameAddrSpans::default(); 2],
            top_via: ViaSpans::default(),
        };
        msg.validate()?;
        Ok(msg)
    }

    /// Mandatory headers, CSeq, From/To/top Via syntax, Content-Length; cuts trailing bytes.
    fn validate(&mut self) -> Result<(), ParseError> {
        use HeaderName as H;
        for (kind, name) in [
            (H::From, "From"),
            (H::To, "To"),
            (H::CallId, "Call-ID"),
            (H::CSeq, "CSeq"),
            (H::Via, "Via"),
        ] {
            if self.first[kind as usize] == NONE {
                return Err(ParseError::Missing(name));
            }
        }
        if self.call_id().is_empty() {
            return Err(ParseError::Malformed("Call-ID"));
        }
        for (i, (kind, name)) in [(H::From, "From"), (H::To, "To")].into_iter().enumerate() {
            let span = self.entry(kind).map_or((0, 0), |e| e.value);
            let (at, value) = (span.0, self.span_str(span));
            let na = NameAddr::parse(value).map_err(|_| ParseError::Malformed(name))?;
            self.from_to[i] = NameAddrSpans {
                display: na.display.map(|d| span_within(value, at, d)),
                uri: span_within(value, at, na.uri),
                params: span_within(value, at, na.params.0),
            };
        }
        let cseq_entry = *self.entry(H::CSeq).ok_or(ParseError::Missing("CSeq"))?;
        let cseq = CSeq::parse(self.span_str(cseq_entry.value))
            .map_err(|_| ParseError::Malformed("CSeq"))?;
        if let StartLine::Request { method_text, .. } = self.start {
            if cseq.method != self.span_str(method_text) {
                return Err(ParseError::CSeqMismatch);
            }
        }
        let (seq, mlen) = (cseq.seq, cseq.method.len() as u32);
        self.cseq_seq = seq;
        self.cseq_method = (cseq_entry.value.1 - mlen, cseq_entry.value.1);
        let span = self.value_spans(H::Via).next().map_or((0, 0), |(_, s)| s);
        let (at, top) = (span.0, self.span_str(span));
        let via = Via::parse(top).map_err(|_| ParseError::Malformed("Via"))?;
        self.top_via = ViaSpans {
            transport: span_within(top, at, via.transport),
            host: span_within(top, at, via.host),
            port: via.port,
            params: span_within(top, at, via.params.0),
        };
        let avail = self.raw.len() - self.body_start as usize;
        if let Some(cl) = self.header(H::ContentLength) {
            let n = scan::parse_u64(cl).ok_or(ParseError::ContentLength)?;
            if n > avail as u64 {
                return Err(ParseError::ContentLength);
            }
            self.raw.truncate(self.body_start as usize + n as usize);
        }
        Ok(())
    }

    pub(crate) fn span_str(&self, s: Span) -> &str {
        self.head.get(s.0 as usize..s.1 as usize).unwrap_or("")
    }
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.headers
    }
    fn entry(&self, name: HeaderName) -> Option<&Entry> {
        self.first
            .get(name as usize)
            .and_then(|&i| self.headers.get(usize::from(i)))
    }
    /// Just after the last header line's line end (where the empty line starts).
    pub(crate) fn header_end(&self) -> usize {
        self.header_end as usize
    }
    /// Start of the first header line (= end of the start line).
    pub(crate) fn headers_start(&self) -> usize {
        self.headers
            .first()
            .map_or(self.header_end as usize, |e| e.line.0 as usize)
    }
    pub(crate) fn request_uri_span(&self) -> Option<Span> {
        match self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }
    /// Absolute spans of every comma-separated value of `name`, with the index of its entry.
    pub(crate) fn value_spans(&self, name: HeaderName) -> impl Iterator<Item = (usize, Span)> + '_ {
        self.headers
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.kind == name && name != HeaderName::Other)
            .flat_map(move |(i, e)| {
                let base = e.value.0;
                ValueSplit::new(self.span_str(e.value))
                    .map(move |(a, z)| (i, (base + a as u32, base + z as u32)))
            })
    }

    /// The start line and header section as text (`raw()` up to the empty line); every header
    /// value returned by this message is a slice of it.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// The bytes this message was parsed from (only the message: trailing datagram bytes excluded).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }
    /// Request method; `None` for responses.
    pub fn method(&self) -> Option<Method> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }
    /// Method text of a request, or of the CSeq for a response (for extension methods too).
    pub fn method_str(&self) -> &str {
        match self.start {
            StartLine::Request { method_text, .. } => self.span_str(method_text),
            StartLine::Response { .. } => self.span_str(self.cseq_method),
        }
    }
    pub fn request_uri(&self) -> Option<&str> {
        self.request_uri_span().map(|s| self.span_str(s))
    }
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { status, .. } => Some(status),
            StartLine::Request { .. } => None,
        }
    }
    /// Reason phrase of a response as written (may be empty).
    pub fn reason(&self) -> Option<&str> {
        match self.start {
            StartLine::Response { reason, .. } => Some(self.span_str(reason)),
            StartLine::Request { .. } => None,
        }
    }
    /// First occurrence's value (trimmed; folded lines joined as the raw text allows).
    /// `HeaderName::Other` never matches: use [`Message::header_by_name`].
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        if name == HeaderName::Other {
            return None;
        }
        self.entry(name).map(|e| self.span_str(e.value))
    }
    /// Every comma-separated value across all occurrences of the header, in order (comma splitting
    /// respects quotes and `<...>`). Use for Via, Route, Record-Route, Path, Service-Route,
    /// P-Associated-URI, Contact. Empty elements are skipped.
    pub fn header_values(&self, name: HeaderName) -> Vec<&str> {
        self.value_spans(name)
            .map(|(_, s)| self.span_str(s))
            .collect()
    }
    /// First occurrence of any header by its name (case-insensitive; no compact-form mapping).
    pub fn header_by_name(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|e| self.span_str(e.name).eq_ignore_ascii_case(name))
            .map(|e| self.span_str(e.value))
    }
    /// Every header line as `(name as written, value)`, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.headers
            .iter()
            .map(|e| (self.span_str(e.name), self.span_str(e.value)))
    }
    pub fn call_id(&self) -> &str {
        self.header(HeaderName::CallId).unwrap_or("")
    }
    pub fn cseq(&self) -> CSeq<'_> {
        CSeq {
            seq: self.cseq_seq,
            method: self.span_str(self.cseq_method),
        }
    }
    pub fn from(&self) -> NameAddr<'_> {
        self.cached_name_addr(0)
    }
    pub fn to(&self) -> NameAddr<'_> {
        self.cached_name_addr(1)
    }
    fn cached_name_addr(&self, i: usize) -> NameAddr<'_> {
        let c = &self.from_to[i];
        NameAddr {
            display: c.display.map(|d| self.span_str(d)),
            uri: self.span_str(c.uri),
            params: Params(self.span_str(c.params)),
        }
    }
    /// The top Via, as `validate` parsed it (a parsed message always has a valid one).
    pub fn top_via(&self) -> Via<'_> {
        let v = &self.top_via;
        Via {
            transport: self.span_str(v.transport),
            host: self.span_str(v.host),
            port: v.port,
            params: Params(self.span_str(v.params)),
        }
    }
    pub fn vias(&self) -> Result<Vec<Via<'_>>, HeaderError> {
        self.value_spans(HeaderName::Via)
            .map(|(_, s)| Via::parse(self.span_str(s)))
            .collect()
    }
    pub fn contacts(&self) -> Result<Contacts<'_>, HeaderError> {
        Contacts::from_values(&self.header_values(HeaderName::Contact))
    }
    /// `Expires` header as seconds (saturating at u32::MAX is an error, not a clamp).
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        self.header(HeaderName::Expires)
            .map(|v| delta_seconds(v, "Expires"))
            .transpose()
    }
    pub fn max_forwards(&self) -> Result<Option<u32>, HeaderError> {
        self.header(HeaderName::MaxForwards)
            .map(|v| delta_seconds(v, "Max-Forwards"))
            .transpose()
    }
    pub fn content_type(&self) -> Option<&str> {
        self.header(HeaderName::ContentType)
    }
    pub fn body(&self) -> &[u8] {
        self.raw.get(self.body_start as usize..).unwrap_or(&[])
    }
    /// Start an edit (splice) of this message for forwarding.
    pub fn edit(&self) -> super::Editor<'_> {
        super::Editor::new(self)
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
