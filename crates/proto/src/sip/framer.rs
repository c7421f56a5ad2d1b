//! Stream framing (TCP): find where one SIP message ends, by Content-Length, before parsing it.
//! Says `Incomplete` until a whole message is buffered (mini-redis `Frame::check` style).
//!
//! Owns only the framing decision: leading CRLF keep-alives, the end of the header section, the
//! Content-Length value (full or compact `l`, any case, folded), and the limits. Never parses
//! anything else and never copies. Line ends: CRLF, with a bare LF tolerated exactly as
//! `Message::parse` tolerates it, so the framer and the parser always agree on where headers end.

use super::scan::{find_header_end, leading_crlf, line_at, parse_u64, trim_lws};
use super::Limits;
use bytes::Bytes;

/// What the start of a stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Not enough bytes yet for a complete message.
    Incomplete,
    /// `n` bytes of CRLF keep-alive (RFC 5626 §3.5.1 "\r\n\r\n" ping or stray CRLFs) to skip.
    KeepAlive(usize),
    /// A complete message occupies the first `n` bytes.
    Message(usize),
}

/// Framing failed: the stream cannot be resynchronised; the connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("header section exceeds {0} bytes")]
    HeadersTooLarge(usize),
    #[error("message exceeds {0} bytes")]
    MessageTooLarge(usize),
    #[error("missing Content-Length on a stream transport")]
    MissingContentLength,
    #[error("invalid Content-Length: {0}")]
    BadContentLength(&'static str),
    #[error("more than {0} header lines")]
    TooManyHeaders(usize),
}

/// Examine the start of `buf` (a TCP receive buffer).
pub fn check_stream(buf: &[u8], limits: &Limits) -> Result<Frame, FrameError> {
    let keep = leading_crlf(buf);
    if keep > 0 {
        return Ok(Frame::KeepAlive(keep));
    }
    let Some((header_end, body_start)) = find_header_end(buf) else {
        if buf.len() > limits.max_header_bytes {
            return Err(FrameError::HeadersTooLarge(limits.max_header_bytes));
        }
        return Ok(Frame::Incomplete);
    };
    if header_end > limits.max_header_bytes {
        return Err(FrameError::HeadersTooLarge(limits.max_header_bytes));
    }
    let cl = content_length(&buf[..header_end], limits)?.ok_or(FrameError::MissingContentLength)?;
    let total = (body_start as u64).saturating_add(cl);
    if total > limits.max_message as u64 {
        return Err(FrameError::MessageTooLarge(limits.max_message));
    }
    let total = total as usize;
    Ok(if buf.len() < total {
        Frame::Incomplete
    } else {
        Frame::Message(total)
    })
}

/// The Content-Length of a header section (start line included); repeated equal values are
/// accepted here (the parser reports the duplicate), conflicting ones are an error.
fn content_length(head: &[u8], limits: &Limits) -> Result<Option<u64>, FrameError> {
    let (_, mut pos) = line_at(head, 0);
    let mut found: Option<u64> = None;
    let mut count = 0usize;
    while pos < head.len() {
        // Gather one header line with its continuation lines.
        let start = pos;
        let (mut end, mut next) = line_at(head, pos);
        while next < head.len() && matches!(head[next], b' ' | b'\t') {
            (end, next) = line_at(head, next);
        }
        pos = next;
        count += 1;
        if count > limits.max_headers {
            return Err(FrameError::TooManyHeaders(limits.max_headers));
        }
        let line = &head[start..end];
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii_end();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = std::str::from_utf8(&line[colon + 1..])
            .map_err(|_| FrameError::BadContentLength("not ASCII"))?;
        let n = parse_u64(trim_lws(value))
            .ok_or(FrameError::BadContentLength("not a non-negative integer"))?;
        if found.is_some_and(|f| f != n) {
            return Err(FrameError::BadContentLength("conflicting values"));
        }
        found = Some(n);
    }
    Ok(found)
}

/// A SIP stream's framing state between reads: only the start of a message that a read cut
/// off. A connection between messages holds no memory here. (The lab's TCP peers frame with it
/// too.)
#[derive(Debug)]
pub struct StreamFramer {
    partial: Vec<u8>,
    limits: Limits,
}

impl StreamFramer {
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            partial: Vec::new(),
            limits,
        }
    }

    /// Frame `data`, just read, after what was kept: each whole message is copied to `out`,
    /// and the start of an incomplete one is kept. An error is a stream that cannot be framed
    /// (the connection must close); the messages before it are in `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<Bytes>) -> Result<(), FrameError> {
        if self.partial.is_empty() {
            let used = split_frames(data, &self.limits, out)?;
            self.partial.extend_from_slice(&data[used..]);
        } else {
            self.partial.extend_from_slice(data);
            let used = split_frames(&self.partial, &self.limits, out)?;
            self.partial.drain(..used);
            if self.partial.is_empty() {
                self.partial = Vec::new(); // give the memory back
            }
        }
        Ok(())
    }
}

/// Split the whole messages (and keep-alives) off the front of `buf`; returns the bytes used.
fn split_frames(buf: &[u8], limits: &Limits, out: &mut Vec<Bytes>) -> Result<usize, FrameError> {
    let mut pos = 0;
    loop {
        match check_stream(&buf[pos..], limits)? {
            Frame::Incomplete => return Ok(pos),
            Frame::KeepAlive(n) => pos += n,
            Frame::Message(n) => {
                out.push(Bytes::copy_from_slice(&buf[pos..pos + n]));
                pos += n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_message: 65_535,
        max_header_bytes: 16_384,
        max_headers: 256,
    };
    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\nl : 4\r\n\r\nbodyNEXT";

    #[test]
    fn frames_by_content_length() {
        assert_eq!(check_stream(MSG, &L), Ok(Frame::Message(MSG.len() - 4)));
        for cut in 0..MSG.len() - 4 {
            assert_eq!(check_stream(&MSG[..cut], &L), Ok(Frame::Incomplete));
        }
    }

    #[test]
    fn keepalive_and_errors() {
        assert_eq!(check_stream(b"\r\n\r\nOPT", &L), Ok(Frame::KeepAlive(4)));
        assert_eq!(check_stream(b"\r", &L), Ok(Frame::Incomplete));
        let no_cl = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n";
        assert_eq!(
            check_stream(no_cl, &L),
            Err(FrameError::MissingContentLength)
        );
        let neg = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n";
        assert!(matches!(
            check_stream(neg, &L),
            Err(FrameError::BadContentLength(_))
        ));
        let two = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 13\r\nl: 5\r\n\r\n";
        assert!(matches!(
            check_stream(two, &L),
            Err(FrameError::BadContentLength(_))
        ));
        let same = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\nl: 0\r\n\r\n";
        assert_eq!(check_stream(same, &L), Ok(Frame::Message(same.len())));
        let small = Limits {
            max_message: 60,
            max_header_bytes: 20,
            max_headers: 1,
        };
        assert!(matches!(
            check_stream(&[b'A'; 30], &small),
            Err(FrameError::HeadersTooLarge(20))
        ));
        let big = b"A\r\nl: 100\r\n\r\n";
        assert_eq!(
            check_stream(big, &small),
            Err(FrameError::MessageTooLarge(60))
        );
        let many = b"A\r\nX: 1\r\nl: 0\r\n\r\n";
        assert_eq!(
            check_stream(many, &small),
            Err(FrameError::TooManyHeaders(1))
        );
    }

    #[test]
    fn folded_content_length_and_bare_lf() {
        let folded = b"A\r\nContent-Length:\r\n 2\r\n\r\nxy";
        assert_eq!(check_stream(folded, &L), Ok(Frame::Message(folded.len())));
        let lf = b"A\nl: 2\n\nxy";
        assert_eq!(check_stream(lf, &L), Ok(Frame::Message(lf.len())));
    }

    fn msg(i: usize) -> Vec<u8> {
        let body = "x".repeat(i % 7);
        format!(
            "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: c{i}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn the_framer_gets_every_message_whatever_the_reads_and_keeps_nothing_between_them() {
        let msgs: Vec<Vec<u8>> = (0..20).map(msg).collect();
        let mut stream = Vec::new();
        for m in &msgs {
            stream.extend_from_slice(m);
            stream.extend_from_slice(b"\r\n\r\n"); // a keep-alive between messages
        }
        for chunk in [1, 7, 64, 1000, stream.len()] {
            let mut f = StreamFramer::new(Limits::default());
            let mut out = Vec::new();
            for part in stream.chunks(chunk) {
                f.push(part, &mut out).unwrap();
            }
            let got: Vec<&[u8]> = out.iter().map(|b| &b[..]).collect();
            let want: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
            assert_eq!(got, want, "reads of {chunk} bytes");
            assert_eq!(
                f.partial.capacity(),
                0,
                "nothing held once the stream is whole"
            );
        }
    }

    #[test]
    fn the_framer_delivers_what_came_before_a_stream_it_cannot_frame() {
        let mut f = StreamFramer::new(Limits::default());
        let mut out = Vec::new();
        let mut data = msg(1);
        data.extend_from_slice(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: nope\r\n\r\n");
        assert!(f.push(&data, &mut out).is_err());
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0][..], &msg(1)[..]);
    }
}
