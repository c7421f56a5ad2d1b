//! Writing the messages we originate (SUBSCRIBE, responses). Small, allocation-light builders.
//!
//! Owns the text layout of what we send: `Name: value\r\n` lines, full header names,
//! Content-Length always present. Never parses or validates caller-supplied values beyond
//! turning CR/LF into SP (no header injection).

use bytes::Bytes;

use super::header::NameAddr;
use super::message::{HeaderName, Message};
use super::scan::{find_header_end, line_at, trim_lws};

/// Append `v` in lowercase hex, zero-padded to at least `width` digits: what
/// `format!("{v:0width$x}")` writes, without the formatting machinery (it runs several times
/// per registration: branches, tags, Call-IDs).
pub fn push_hex(out: &mut String, v: u64, width: usize) {
    let digits = ((64 - v.leading_zeros()).div_ceil(4) as usize).max(1);
    for _ in digits..width {
        out.push('0');
    }
    for i in (0..digits).rev() {
        out.push(char::from(
            b"0123456789abcdef"[((v >> (4 * i)) & 15) as usize],
        ));
    }
}

/// Append `n` in decimal (what `format!("{n}")` writes, without the formatting machinery).
pub fn push_decimal(out: &mut String, n: u64) {
    let mut tmp = [0u8; 20];
    out.extend(decimal(n, &mut tmp).iter().map(|&d| char::from(d)));
}

fn push_clean(buf: &mut Vec<u8>, s: &str) {
    buf.extend(
        s.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
}

fn push_num(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(decimal(n, &mut [0u8; 20]));
}

/// `n` in decimal, written at the end of `tmp` (no formatting machinery).
pub fn decimal(mut n: u64, tmp: &mut [u8; 20]) -> &[u8] {
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &tmp[i..]
}

/// `name: <what value writes>\r\n`.
fn push_header_with(buf: &mut Vec<u8>, name: &str, value: impl FnOnce(&mut Vec<u8>)) {
    push_clean(buf, name);
    buf.extend_from_slice(b": ");
    value(buf);
    buf.extend_from_slice(b"\r\n");
}

fn push_header(buf: &mut Vec<u8>, name: &str, value: &str) {
    push_header_with(buf, name, |b| push_clean(b, value));
}

/// Build a request: start line, headers in the order given, Content-Length computed.
#[derive(Debug)]
pub struct RequestBuilder {
    buf: Vec<u8>,
}

impl RequestBuilder {
    pub fn new(method: &str, request_uri: &str) -> Self {
        let mut buf = Vec::with_capacity(1024);
        push_clean(&mut buf, method);
        buf.push(b' ');
        push_clean(&mut buf, request_uri);
        buf.extend_from_slice(b" SIP/2.0\r\n");
        RequestBuilder { buf }
    }
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        push_header(&mut self.buf, name, value);
        self
    }
    /// A header whose value is `parts` joined (no intermediate string).
    pub fn header_parts(&mut self, name: &str, parts: &[&str]) -> &mut Self {
        push_header_with(&mut self.buf, name, |b| {
            parts.iter().for_each(|p| push_clean(b, p))
        });
        self
    }
    /// A header whose value is `n` followed by `suffix` (`CSeq: 7 SUBSCRIBE`, `Expires: 600`).
    pub fn header_num(&mut self, name: &str, n: u64, suffix: &str) -> &mut Self {
        push_header_with(&mut self.buf, name, |b| {
            push_num(b, n);
            push_clean(b, suffix);
        });
        self
    }
    /// Finish with a body (Content-Type + Content-Length) or none (Content-Length: 0).
    /// The builder is left empty.
    pub fn finish(&mut self, body: Option<(&str, &[u8])>) -> Bytes {
        let mut buf = std::mem::take(&mut self.buf);
        let body = match body {
            Some((ct, b)) => {
                push_header(&mut buf, "Content-Type", ct);
                b
            }
            None => &[],
        };
        buf.extend_from_slice(b"Content-Length: ");
        push_num(&mut buf, body.len() as u64);
        buf.extend_from_slice(b"\r\n\r\n");
        buf.extend_from_slice(body);
        Bytes::from(buf)
    }
}

fn status_line(buf: &mut Vec<u8>, code: u16, reason: &str) {
    buf.extend_from_slice(b"SIP/2.0 ");
    push_num(buf, code.into());
    buf.push(b' ');
    push_clean(buf, reason);
    buf.extend_from_slice(b"\r\n");
}

/// `To` value with `;tag=` and `add_tag` appended (the caller knows the value has no tag).
fn push_to(buf: &mut Vec<u8>, to: &str, add_tag: Option<&str>) {
    buf.extend_from_slice(b"To: ");
    push_clean(buf, to);
    if let Some(tag) = add_tag {
        buf.extend_from_slice(b";tag=");
        push_clean(buf, tag);
    }
    buf.extend_from_slice(b"\r\n");
}

/// A raw To value (not checked by the parser) has a tag parameter.
fn raw_to_has_tag(to: &str) -> bool {
    match NameAddr::parse(to) {
        Ok(na) => na.params.get("tag").is_some(),
        Err(_) => to.to_ascii_lowercase().contains(";tag="),
    }
}

/// A response to `req` (RFC 3261 §8.2.6): copies every Via, From, To (adding `to_tag` when the
/// request's To has no tag and code > 100), Call-ID, CSeq; then `extra` headers; Content-Length 0.
pub fn response(
    req: &Message,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(&str, &str)],
) -> Bytes {
    // Sized from the request's header section (its body is not copied): the buffer becomes the
    // response's `Bytes` and may be kept for Timer J (32 s), so no slack.
    let head = req.raw().len() - req.body().len();
    let extra_len: usize = extra.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
    let mut buf = Vec::with_capacity(head.min(2048) + extra_len + 64);
    status_line(&mut buf, code, reason);
    for e in req.entries().iter().filter(|e| e.kind == HeaderName::Via) {
        push_header(&mut buf, "Via", req.span_str(e.value));
    }
    push_header(&mut buf, "From", req.header(HeaderName::From).unwrap_or(""));
    // The parser checked To and keeps its parameters: no second parse for the tag.
    let untagged = req.to().params.get("tag").is_none();
    push_to(
        &mut buf,
        req.header(HeaderName::To).unwrap_or(""),
        to_tag.filter(|_| code > 100 && untagged),
    );
    push_header(&mut buf, "Call-ID", req.call_id());
    push_header(&mut buf, "CSeq", req.header(HeaderName::CSeq).unwrap_or(""));
    for (n, v) in extra {
        push_header(&mut buf, n, v);
    }
    buf.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Bytes::from(buf)
}

/// Tag derived from the Call-ID and top Via (stateless: the same request gets the same tag).
fn derived_tag(call_id: &str, via: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in call_id.bytes().chain(via.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Best-effort error response for bytes that did not parse (RFC 3261 §16.3/§8.2): scans the raw
/// lines for Via, From, To, Call-ID and CSeq (full or compact names). `None` when any of them is
/// missing or the start line is not a request — then the message is dropped and counted.
/// A To without tag gets a tag derived from Call-ID and top Via (code > 100). Header lines that
/// are not UTF-8 are ignored.
pub fn error_response_from_raw(raw: &[u8], code: u16, reason: &str) -> Option<Bytes> {
    let raw = &raw[super::scan::leading_crlf(raw)..];
    let head_end = find_header_end(raw).map_or(raw.len(), |(h, _)| h);
    let head = &raw[..head_end];
    let (sl_end, mut pos) = line_at(head, 0);
    let sl = std::str::from_utf8(&head[..sl_end]).ok()?;
    let mut parts = sl.split(' ');
    let (method, uri, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !super::scan::is_token_str(method)
        || uri.is_empty()
        || !version.to_ascii_uppercase().starts_with("SIP/")
    {
        return None;
    }
    let mut vias: Vec<&str> = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    while pos < head.len() {
        let start = pos;
        let (mut end, mut next) = line_at(head, pos);
        while next < head.len() && matches!(head[next], b' ' | b'\t') {
            (end, next) = line_at(head, next);
        }
        pos = next;
        let Ok(line) = std::str::from_utf8(&head[start..end]) else {
            continue;
        };
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = trim_lws(value);
        let slot = match HeaderName::from_name(name.trim_end_matches([' ', '\t'])) {
            HeaderName::Via => {
                vias.push(value);
                continue;
            }
            HeaderName::From => &mut from,
            HeaderName::To => &mut to,
            HeaderName::CallId => &mut call_id,
            HeaderName::CSeq => &mut cseq,
            _ => continue,
        };
        slot.get_or_insert(value);
    }
    let (from, to, call_id, cseq) = (from?, to?, call_id?, cseq?);
    if vias.is_empty() {
        return None;
    }
    let mut buf = Vec::with_capacity(512);
    status_line(&mut buf, code, reason);
    for v in &vias {
        push_header(&mut buf, "Via", v);
    }
    push_header(&mut buf, "From", from);
    let tag = derived_tag(call_id, vias[0]);
    push_to(
        &mut buf,
        to,
        Some(tag.as_str()).filter(|_| code > 100 && !raw_to_has_tag(to)),
    );
    push_header(&mut buf, "Call-ID", call_id);
    push_header(&mut buf, "CSeq", cseq);
    buf.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Some(Bytes::from(buf))
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
