//! Writing the messages we originate (SUBSCRIBE, responses). Small, allocation-light builders.

use bytes::Bytes;

use super::message::Message;

/// Build a request: start line, headers in the order given, Content-Length computed.
#[derive(Debug)]
pub struct RequestBuilder {
    buf: Vec<u8>,
}

impl RequestBuilder {
    pub fn new(method: &str, request_uri: &str) -> Self {
        let _ = (method, request_uri);
        todo!()
    }
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        let _ = (name, value, &self.buf);
        todo!()
    }
    /// Finish with a body (Content-Type + Content-Length) or none (Content-Length: 0).
    pub fn finish(&mut self, body: Option<(&str, &[u8])>) -> Bytes {
        let _ = body;
        todo!()
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
    let _ = (req, code, reason, to_tag, extra);
    todo!()
}

/// Best-effort error response for bytes that did not parse (RFC 3261 §16.3/§8.2): scans the raw
/// lines for Via, From, To, Call-ID and CSeq (full or compact names). `None` when any of them is
/// missing or the start line is not a request — then the message is dropped and counted.
pub fn error_response_from_raw(raw: &[u8], code: u16, reason: &str) -> Option<Bytes> {
    let _ = (raw, code, reason);
    todo!()
}
