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
    /// A message whose header section (the first `head` bytes) is complete and readable but
    /// whose Content-Length takes it past the limit: `total` bytes in all. It can be answered
    /// (513) from its head and skipped without losing the stream.
    Oversize { head: usize, total: u64 },
}

/// Framing failed: the stream cannot be resynchronised; the connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("header section exceeds {0} bytes")]
    HeadersTooLarge(usize),
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
        return Ok(Frame::Oversize {
            head: body_start,
            total,
        });
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
    /// Bytes of an oversize message's body still to be skipped.
    skip: u64,
    /// Header sections of oversize messages (to be answered 513), see [`Self::take_oversize`].
    oversize: Vec<Bytes>,
}

impl StreamFramer {
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            partial: Vec::new(),
            limits,
            skip: 0,
            oversize: Vec::new(),
        }
    }

    /// Frame `data`, just read, after what was kept: each whole message is copied to `out`,
    /// and the start of an incomplete one is kept. A message over the size limit whose header
    /// section could be read is skipped (its head kept for [`Self::take_oversize`]) and the
    /// stream goes on. An error is a stream that cannot be framed (the connection must close);
    /// the messages before it are in `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<Bytes>) -> Result<(), FrameError> {
        let mut data = data;
        if self.skip > 0 {
            let n = usize::try_from(self.skip)
                .unwrap_or(usize::MAX)
                .min(data.len());
            self.skip -= n as u64;
            data = &data[n..];
        }
        if self.partial.is_empty() {
            let used = self.split_frames_of(data, out)?;
            self.partial.extend_from_slice(&data[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.partial);
            buf.extend_from_slice(data);
            let used = self.split_frames_of(&buf, out)?;
            buf.drain(..used);
            if !buf.is_empty() {
                self.partial = buf; // otherwise the memory goes back
            }
        }
        Ok(())
    }

    /// The header sections of the oversize messages skipped since the last call.
    pub fn take_oversize(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.oversize)
    }

    /// Split the whole messages (and keep-alives) off the front of `buf`; returns the bytes
    /// used (an oversize message's bytes in `buf` included; the rest of it is `skip`).
    fn split_frames_of(&mut self, buf: &[u8], out: &mut Vec<Bytes>) -> Result<usize, FrameError> {
        let mut pos = 0;
        loop {
            match check_stream(&buf[pos..], &self.limits)? {
                Frame::Incomplete => return Ok(pos),
                Frame::KeepAlive(n) => pos += n,
                Frame::Message(n) => {
                    out.push(Bytes::copy_from_slice(&buf[pos..pos + n]));
                    pos += n;
                }
                Frame::Oversize { head, total } => {
                    self.oversize
                        .push(Bytes::copy_from_slice(&buf[pos..pos + head]));
                    let here = (buf.len() - pos) as u64;
                    if total > here {
                        self.skip = total - here;
                        return Ok(buf.len());
                    }
                    pos += total as usize;
                }
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
        // Over the limit, its head readable: answerable (513) and skippable, not a dead stream.
        let big = b"A\r\nl: 100\r\n\r\n";
        assert_eq!(
            check_stream(big, &small),
            Ok(Frame::Oversize {
                head: 13,
                total: 113
            })
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

    #[test]
    fn an_oversize_message_is_skipped_with_its_head_kept_and_the_stream_goes_on() {
        let limits = Limits {
            max_message: 200,
            ..L
        };
        let big = format!(
            "NOTIFY sip:gw SIP/2.0\r\nCall-ID: big\r\nContent-Length: 1000\r\n\r\n{}",
            "x".repeat(1000)
        )
        .into_bytes();
        let mut stream = msg(1);
        stream.extend_from_slice(&big);
        stream.extend_from_slice(&msg(2));
        for chunk in [1, 7, 64, 300, stream.len()] {
            let mut f = StreamFramer::new(limits);
            let mut out = Vec::new();
            for part in stream.chunks(chunk) {
                f.push(part, &mut out).unwrap();
            }
            let got: Vec<&[u8]> = out.iter().map(|b| &b[..]).collect();
            assert_eq!(got, [&msg(1)[..], &msg(2)[..]], "reads of {chunk} bytes");
            let heads = f.take_oversize();
            assert_eq!(heads.len(), 1, "reads of {chunk} bytes");
            assert!(heads[0].starts_with(b"NOTIFY sip:gw SIP/2.0\r\nCall-ID: big"));
            assert!(heads[0].ends_with(b"\r\n\r\n"), "the head only");
            assert_eq!(f.skip, 0);
        }
    }
}
