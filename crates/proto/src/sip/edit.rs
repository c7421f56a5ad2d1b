//! Splice editing for forwarding: record byte-range edits against the original message and
//! produce new bytes in one pass; everything not edited is copied as it came.
//!
//! Owns the edits a proxy makes (push/pop Via, Route, Max-Forwards, Request-URI, received/rport,
//! Content-Length). Never re-serialises a header it does not edit: unknown headers, odd spacing,
//! compact names, folded lines and binary bodies leave byte for byte. Inserted lines are written
//! as `Name: value\r\n`; CR/LF inside an inserted value become SP (no header injection).
//!
//! Edits always refer to the original message. At one position, insertions come before a
//! replacement, in call order; an edit that starts inside a range already replaced by an
//! earlier (sorted) edit is dropped.

use bytes::Bytes;

use super::header::{ParamSpans, Via};
use super::message::{HeaderName, Message, Span};
use super::writer::push_decimal;

#[derive(Debug, Clone, Copy)]
struct Op {
    start: u32,
    end: u32,
    /// Replacement text: range in `Editor::text`.
    text: (u32, u32),
}

/// Collects edits; `finish` applies them in one copy.
#[derive(Debug)]
pub struct Editor<'m> {
    msg: &'m Message,
    /// Sorted by `(start, is_replacement)`, stable.
    ops: Vec<Op>,
    text: String,
}

fn push_clean(out: &mut String, s: &str) {
    if s.contains(['\r', '\n']) {
        out.extend(
            s.chars()
                .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
        );
    } else {
        out.push_str(s);
    }
}

impl<'m> Editor<'m> {
    pub fn new(msg: &'m Message) -> Self {
        Editor {
            msg,
            ops: Vec::with_capacity(4),
            text: String::with_capacity(128),
        }
    }

    /// Record a splice replacing `[start, end)` by the text written by `f`.
    fn splice(&mut self, start: usize, end: usize, f: impl FnOnce(&mut String)) -> &mut Self {
        let t0 = self.text.len();
        f(&mut self.text);
        let op = Op {
            start: start as u32,
            end: end as u32,
            text: (t0 as u32, self.text.len() as u32),
        };
        let key = |o: &Op| (o.start, o.end > o.start);
        let at = self.ops.partition_point(|o| key(o) <= key(&op));
        self.ops.insert(at, op);
        self
    }
    fn insert_line(&mut self, pos: usize, name: &str, value: &str) -> &mut Self {
        self.splice(pos, pos, |t| {
            push_clean(t, name);
            t.push_str(": ");
            push_clean(t, value);
            t.push_str("\r\n");
        })
    }
    fn replace(&mut self, span: Span, value: &str) -> &mut Self {
        self.splice(span.0 as usize, span.1 as usize, |t| push_clean(t, value))
    }
    fn first_entry(&self, name: HeaderName) -> Option<super::message::Entry> {
        self.msg.entries().iter().find(|e| e.kind == name).copied()
    }

    /// Add a header line `Name: value` before the first occurrence of `before` (or, if absent,
    /// before the first header line). Used for our Via (before the first Via), Path, Record-Route.
    pub fn insert_header(&mut self, before: HeaderName, name: &str, value: &str) -> &mut Self {
        let pos = match self.first_entry(before) {
            Some(e) if before != HeaderName::Other => e.line.0 as usize,
            _ => self.msg.headers_start(),
        };
        self.insert_line(pos, name, value)
    }
    /// Add a header line at the top of the header section.
    pub fn prepend_header(&mut self, name: &str, value: &str) -> &mut Self {
        let pos = self.msg.headers_start();
        self.insert_line(pos, name, value)
    }
    /// Add a header line at the end of the header section (after the last header line).
    pub fn append_header(&mut self, name: &str, value: &str) -> &mut Self {
        let pos = self.msg.header_end();
        self.insert_line(pos, name, value)
    }
    /// Remove the first value of `name`: the whole line when it holds one value, else the value
    /// and the separator up to the next value.
    pub fn remove_first_value(&mut self, name: HeaderName) -> &mut Self {
        let mut it = self.msg.value_spans(name);
        let Some((entry, first)) = it.next() else {
            return self;
        };
        let second = it.next().filter(|(e, _)| *e == entry);
        let line = self.msg.entries()[entry].line;
        match second {
            Some((_, next)) => self.replace((first.0, next.0), ""),
            None => self.replace(line, ""),
        }
    }
    /// Remove the first Via value (only that value, if the line holds several).
    pub fn remove_top_via(&mut self) -> &mut Self {
        self.remove_first_value(HeaderName::Via)
    }
    /// Remove the first Route value (only that value, if the line holds several).
    pub fn remove_first_route(&mut self) -> &mut Self {
        self.remove_first_value(HeaderName::Route)
    }
    /// Replace Max-Forwards' value (insert `Max-Forwards: n` if absent).
    pub fn set_max_forwards(&mut self, n: u32) -> &mut Self {
        match self.first_entry(HeaderName::MaxForwards) {
            Some(e) => self.splice(e.value.0 as usize, e.value.1 as usize, |t| {
                push_decimal(t, n.into())
            }),
            None => {
                let pos = self.msg.header_end();
                self.splice(pos, pos, |t| {
                    t.push_str("Max-Forwards: ");
                    push_decimal(t, n.into());
                    t.push_str("\r\n");
                })
            }
        }
    }
    /// Replace the Request-URI (no-op on a response).
    pub fn set_request_uri(&mut self, uri: &str) -> &mut Self {
        match self.msg.request_uri_span() {
            Some(span) => self.replace(span, uri),
            None => self,
        }
    }
    /// Set parameters on the top Via (`received=`, `rport=`), replacing a bare `rport`.
    /// An existing `received` is replaced; with `rport == None` an existing `rport` is left alone.
    pub fn set_top_via_received(&mut self, received: &str, rport: Option<u16>) -> &mut Self {
        let Some((_, span)) = self.msg.value_spans(HeaderName::Via).next() else {
            return self;
        };
        let text = self.msg.span_str(span);
        let Ok(via) = Via::parse(text) else {
            return self;
        };
        let base = span.1 as usize - via.params.0.len();
        let (mut rec, mut rp) = (None, None);
        for p in ParamSpans::new(via.params.0) {
            let name = via.params.0.get(p.name.0..p.name.1).unwrap_or("");
            let whole = (base + p.whole.0, base + p.whole.1);
            if name.eq_ignore_ascii_case("received") && rec.is_none() {
                rec = Some(whole);
            } else if name.eq_ignore_ascii_case("rport") && rp.is_none() {
                rp = Some(whole);
            }
        }
        let end = span.1 as usize;
        let (a, b) = rec.unwrap_or((end, end));
        self.splice(a, b, |t| {
            t.push_str(";received=");
            push_clean(t, received);
        });
        if let Some(port) = rport {
            let (a, b) = rp.unwrap_or((end, end));
            self.splice(a, b, |t| {
                t.push_str(";rport=");
                push_decimal(t, port.into());
            });
        }
        self
    }
    /// Replace the whole value of the n-th value (0-based, across lines) of a header.
    pub fn replace_value(&mut self, name: HeaderName, index: usize, value: &str) -> &mut Self {
        match self.msg.value_spans(name).nth(index) {
            Some((_, span)) => self.replace(span, value),
            None => self,
        }
    }
    /// Ensure a Content-Length header equal to the body length is present (stream transports).
    pub fn ensure_content_length(&mut self) -> &mut Self {
        let len = self.msg.body().len() as u64;
        match self.first_entry(HeaderName::ContentLength) {
            Some(e) if super::scan::parse_u64(self.msg.span_str(e.value)) == Some(len) => self,
            Some(e) => self.splice(e.value.0 as usize, e.value.1 as usize, |t| {
                push_decimal(t, len)
            }),
            None => {
                let pos = self.msg.header_end();
                self.splice(pos, pos, |t| {
                    t.push_str("Content-Length: ");
                    push_decimal(t, len);
                    t.push_str("\r\n");
                })
            }
        }
    }
    /// The edits that `finish` applies, in order (overlapping ones removed).
    fn applied(&self) -> impl Iterator<Item = &Op> + '_ {
        let mut cursor = 0u32;
        self.ops.iter().filter(move |op| {
            if op.start < cursor {
                return false;
            }
            cursor = op.end;
            true
        })
    }
    /// Apply the edits: one allocation, one pass.
    pub fn finish(&self) -> Bytes {
        let raw = self.msg.raw();
        let mut len = raw.len();
        for op in self.applied() {
            len = len + (op.text.1 - op.text.0) as usize - (op.end - op.start) as usize;
        }
        let mut out = Vec::with_capacity(len);
        let mut cursor = 0usize;
        let text = self.text.as_bytes();
        for op in self.applied() {
            out.extend_from_slice(&raw[cursor..op.start as usize]);
            out.extend_from_slice(&text[op.text.0 as usize..op.text.1 as usize]);
            cursor = op.end as usize;
        }
        out.extend_from_slice(&raw[cursor..]);
        Bytes::from(out)
    }
}

#[cfg(test)]
#[path = "edit_tests.rs"]
mod tests;
