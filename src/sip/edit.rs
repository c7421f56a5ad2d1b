//! Splice editing for forwarding: record byte-range edits against the original message and
//! produce new bytes in one pass; everything not edited is copied as it came.

use bytes::Bytes;

use super::message::{HeaderName, Message};

/// Collects edits; `finish` applies them in one copy.
#[derive(Debug)]
pub struct Editor<'m> {
    msg: &'m Message,
}

impl<'m> Editor<'m> {
    pub fn new(msg: &'m Message) -> Self {
        Editor { msg }
    }
    /// Add a header line `Name: value` before the first occurrence of `before` (or, if absent,
    /// before the first header line). Used for our Via (before the first Via), Path, Record-Route.
    pub fn insert_header(&mut self, before: HeaderName, name: &str, value: &str) -> &mut Self {
        let _ = (before, name, value, self.msg);
        todo!()
    }
    /// Add a header line at the top of the header section.
    pub fn prepend_header(&mut self, name: &str, value: &str) -> &mut Self {
        let _ = (name, value);
        todo!()
    }
    /// Remove the first Via value (only that value, if the line holds several).
    pub fn remove_top_via(&mut self) -> &mut Self {
        todo!()
    }
    /// Remove the first Route value (only that value, if the line holds several).
    pub fn remove_first_route(&mut self) -> &mut Self {
        todo!()
    }
    /// Replace Max-Forwards' value (insert `Max-Forwards: n` if absent).
    pub fn set_max_forwards(&mut self, n: u32) -> &mut Self {
        let _ = n;
        todo!()
    }
    /// Replace the Request-URI.
    pub fn set_request_uri(&mut self, uri: &str) -> &mut Self {
        let _ = uri;
        todo!()
    }
    /// Set parameters on the top Via (`received=`, `rport=`), replacing a bare `rport`.
    pub fn set_top_via_received(&mut self, received: &str, rport: Option<u16>) -> &mut Self {
        let _ = (received, rport);
        todo!()
    }
    /// Replace the whole value of the n-th value (0-based, across lines) of a header.
    pub fn replace_value(&mut self, name: HeaderName, index: usize, value: &str) -> &mut Self {
        let _ = (name, index, value);
        todo!()
    }
    /// Ensure a Content-Length header equal to the body length is present (stream transports).
    pub fn ensure_content_length(&mut self) -> &mut Self {
        todo!()
    }
    /// Apply the edits: one allocation, one pass.
    pub fn finish(&self) -> Bytes {
        todo!()
    }
}
