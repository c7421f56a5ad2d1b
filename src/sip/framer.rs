//! Stream framing (TCP): find where one SIP message ends, by Content-Length, before parsing it.
//! Says `Incomplete` until a whole message is buffered (mini-redis `Frame::check` style).

use super::Limits;

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
}

/// Examine the start of `buf` (a TCP receive buffer).
pub fn check_stream(buf: &[u8], limits: &Limits) -> Result<Frame, FrameError> {
    let _ = (buf, limits);
    todo!("sip helper")
}
