//! Our thin, zero-copy SIP layer (RFC 3261).
//!
//! Owns: framing (Content-Length, limits), a header index over `bytes::Bytes`, lazy typed parsing
//! of the headers the gateway reads, URIs (sip, sips, tel, IPv6, GRUU params), splice editing for
//! forwarding (every byte we do not edit leaves as it came) and a small writer for the requests and
//! responses we originate.
//! Never: sockets, clocks, a copy of the message on the read path beyond its header section
//! (kept once as checked text, since the crate forbids the `unsafe` that would let a checked
//! slice of the `Bytes` be read as `&str`; the body is never copied).

pub mod edit;
pub mod framer;
pub mod header;
pub mod message;
mod names;
pub mod scan;
pub mod target;
pub mod uri;
pub mod writer;

pub use edit::Editor;
pub use framer::{Frame, FrameError, StreamFramer};
pub use header::{
    CSeq, Contacts, HeaderError, NameAddr, Params, SubscriptionState, SubscriptionStatus, Via,
};
pub use message::{HeaderName, Message, Method, ParseError};
pub use scan::unfold;
pub use target::{next_hop, uri_next_hop, uri_target, via_target, Dest, NoHop, Target, Transport};
pub use uri::{Scheme, Uri, UriError};

/// Limits enforced by the framer and the parser. Messages beyond them are rejected, never truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole message (start line + headers + body), bytes.
    pub max_message: usize,
    /// Start line + header section, bytes.
    pub max_header_bytes: usize,
    /// Number of header lines (after unfolding).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: 65_535,
            max_header_bytes: 16_384,
            max_headers: 256,
        }
    }
}
