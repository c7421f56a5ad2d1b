//! The few bits of HTTP/1.1 the admin server needs, without I/O: finding the end of a request
//! head in a buffer, parsing the request line and the headers we care about, query-string
//! parsing with percent-decoding, and writing a response head.
//!
//! Owns: limits on what a request head may look like. Never: sockets, timeouts, routing
//! (see `admin`). Requests bodies are not supported (admin routes are GET/HEAD only).

use std::fmt::Write as _;

/// Largest request head (request line + headers) we accept.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Most headers we accept in one request.
pub const MAX_HEADERS: usize = 64;

/// Why a request head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The head did not end within [`MAX_HEAD_BYTES`] (431).
    #[error("request head larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    /// More than [`MAX_HEADERS`] header lines (431).
    #[error("more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    /// The request line or a header line is malformed (400).
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// Not HTTP/1.0 or HTTP/1.1 (505).
    #[error("unsupported HTTP version")]
    Version,
}

impl RequestError {
    /// The status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::HeadTooLarge | RequestError::TooManyHeaders => 431,
            RequestError::Malformed(_) => 400,
            RequestError::Version => 505,
        }
    }
}

/// A parsed request head (owned; heads are small and short-lived).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// Path without the query string, not percent-decoded (our routes are plain ASCII).
    pub path: String,
    /// The raw query string (after `?`), if any.
    pub query: Option<String>,
    /// HTTP/1.1 (true) or HTTP/1.0.
    pub http11: bool,
    /// Whether the client wants the connection kept open after this response.
    pub keep_alive: bool,
    /// Declared body length (`Content-Length`), or `None`; `Transfer-Encoding` counts as a body.
    pub has_body: bool,
}

/// Where the request head ends in `buf`: `Some(n)` with `n` the head length including the
/// blank line, `None` while incomplete. Accepts bare-LF line ends as RFC 9112 §2.2 allows.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(pos) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + pos;
        let rest = &buf[nl + 1..];
        if rest.first() == Some(&b'\n') {
            return Some(nl + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

/// Parses a complete request head (as delimited by [`head_end`]).
pub fn parse_head(head: &[u8]) -> Result<RequestHead, RequestError> {
    let text = std::str::from_utf8(head).map_err(|_| RequestError::Malformed("not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    // RFC 9112 §2.2: ignore at least one empty line before the request line.
    let mut line = lines.next().unwrap_or("");
    if line.is_empty() {
        line = lines.next().unwrap_or("");
    }
    let mut parts = line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if !m.is_empty() && !t.is_empty() => (m, t, v),
        _ => return Err(RequestError::Malformed("bad request line")),
    };
    if !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(RequestError::Malformed("bad method"));
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.starts_with("HTTP/") => return Err(RequestError::Version),
        _ => return Err(RequestError::Malformed("bad request line")),
    };
    // Origin form only; accept absolute form by dropping scheme and authority.
    let target = match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(RequestError::Malformed("bad request target"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (target, None),
    };

    let mut keep_alive = http11;
    let mut has_body = false;
    let mut count = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        count += 1;
        if count > MAX_HEADERS {
            return Err(RequestError::TooManyHeaders);
        }
        if line.starts_with([' ', '\t']) {
            return Err(RequestError::Malformed("obsolete line folding"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(RequestError::Malformed("header line without colon"))?;
        if name.is_empty() || name.ends_with([' ', '\t']) {
            return Err(RequestError::Malformed("bad header name"));
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value
                .parse()
                .map_err(|_| RequestError::Malformed("bad Content-Length"))?;
            has_body |= n > 0;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            has_body = true;
        }
    }
    Ok(RequestHead {
        method: method.to_owned(),
        path: path.to_owned(),
        query,
        http11,
        keep_alive,
        has_body,
    })
}

/// Why a query string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    #[error("bad percent-encoding in query string")]
    BadEncoding,
    #[error("unknown query parameter {0:?}")]
    UnknownParameter(String),
    #[error("parameter {name} must be a non-negative integer")]
    NotANumber { name: &'static str },
}

/// Splits `a=1&b=x%20y` into decoded `(key, value)` pairs (`+` means space).
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, QueryError> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+`; the result must be UTF-8.
pub fn percent_decode(s: &str) -> Result<String, QueryError> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(QueryError::BadEncoding)?;
                let hi = hex_val(hex[0]).ok_or(QueryError::BadEncoding)?;
                let lo = hex_val(hex[1]).ok_or(QueryError::BadEncoding)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| QueryError::BadEncoding)
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for query values).
pub fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The reason phrase for the status codes we send.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Core Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Writes a response head with `Content-Length`, `Content-Type` and `Connection`.
pub fn response_head(
    status: u16,
    content_type: &str,
    content_length: usize,
    keep_alive: bool,
    extra: &[(&str, &str)],
) -> String {
    let mut h = String::with_capacity(160);
    let _ = write!(
        h,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {content_length}\r\nCache-Control: no-store\r\nConnection: {}\r\n",
        reason(status),
        if keep_alive { "keep-alive" } else { "close" },
    );
    for (k, v) in extra {
        let _ = write!(h, "{k}: {v}\r\n");
    }
    h.push_str("\r\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_head_end() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: x\n\n"), Some(24));
    }

    #[test]
    fn parses_heads() {
        let h =
            parse_head(b"GET /api/x?a=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").unwrap();
        assert_eq!(h.method, "GET");
        assert_eq!(h.path, "/api/x");
        assert_eq!(h.query.as_deref(), Some("a=1"));
        assert!(h.http11 && !h.keep_alive && !h.has_body);

        let h = parse_head(b"HEAD /metrics HTTP/1.0\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
        let h = parse_head(b"GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(h.keep_alive);
        let h =
            parse_head(b"GET http://h:1/healthz HTTP/1.1\r\nContent-Length: 3\r\n\r\n").unwrap();
        assert_eq!(h.path, "/healthz");
        assert!(h.has_body);

        assert_eq!(
            parse_head(b"GET / HTTP/2.0\r\n\r\n"),
            Err(RequestError::Version)
        );
        assert!(matches!(
            parse_head(b"GET  / HTTP/1.1\r\n\r\n"),
            Err(RequestError::Malformed(_))
        ));
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nNoColon\r\n\r\n"),
            Err(RequestError::Malformed(_))
        ));
        let many: String = std::iter::once("GET / HTTP/1.1\r\n".to_owned())
            .chain((0..=MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")))
            .chain(std::iter::once("\r\n".to_owned()))
            .collect();
        assert_eq!(
            parse_head(many.as_bytes()),
            Err(RequestError::TooManyHeaders)
        );
    }

    #[test]
    fn query_strings() {
        let q = parse_query("trunk_group=access&pui_prefix=sip%3Aalice%40&x=&y&s=a+b").unwrap();
        assert_eq!(
            q,
            vec![
                ("trunk_group".into(), "access".into()),
                ("pui_prefix".into(), "sip:alice@".into()),
                ("x".into(), "".into()),
                ("y".into(), "".into()),
                ("s".into(), "a b".into()),
            ]
        );
        assert_eq!(percent_decode("%zz"), Err(QueryError::BadEncoding));
        assert_eq!(percent_decode("%4"), Err(QueryError::BadEncoding));
        assert_eq!(percent_decode("%ff"), Err(QueryError::BadEncoding));
        assert_eq!(percent_decode("%C3%A9").unwrap(), "é");

        let mut enc = String::new();
        percent_encode("sip:\"a b\"@x+é", &mut enc);
        assert_eq!(percent_decode(&enc).unwrap(), "sip:\"a b\"@x+é");
    }
}
