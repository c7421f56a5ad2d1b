//! Byte-level scanning shared by the framer, the parser, the typed headers and the editor:
//! line ends, the end of the header section, LWS trimming, token classes, comma splitting and
//! small integer parsing. Pure functions over slices; never allocates, never panics.
//!
//! Line ends: CRLF is the rule (RFC 3261 §7); a bare LF is tolerated as a line end everywhere
//! (framer and parser agree), a bare CR inside the header section is rejected by the parser.

/// SP, HTAB, CR, LF: linear white space once folding is taken into account.
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 3261 §25.1 `token` characters, as a table (one load per byte; the scanners call this
/// for every byte of every header name and parameter).
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        b += 1;
    }
    t
};

/// RFC 3261 §25.1 `token` characters.
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

pub(crate) fn is_token_str(s: &str) -> bool {
    // Every byte is looked at (no early exit): names and parameters are short, and the loop
    // has no branch per byte.
    !s.is_empty() && s.bytes().fold(true, |ok, b| ok & is_token(b))
}

/// Whether `f` holds for any byte of `s`, looking at every byte: for character-class tests,
/// which the compiler turns into vector compares (an early-exit loop stays one byte at a time).
pub(crate) fn any_byte(s: &[u8], f: impl Fn(u8) -> bool) -> bool {
    s.iter().fold(false, |any, &b| any | f(b))
}

/// Trim LWS (including folded line ends) on both sides.
pub(crate) fn trim_lws(s: &str) -> &str {
    let (a, z) = trim_range(s.as_bytes(), 0, s.len());
    // LWS bytes are ASCII, so both ends are character boundaries.
    s.get(a..z).unwrap_or("")
}

/// `(start, end)` of `s` after trimming LWS, relative to `s`.
pub(crate) fn trim_range(s: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    while start < end && is_lws(s[start]) {
        start += 1;
    }
    while end > start && is_lws(s[end - 1]) {
        end -= 1;
    }
    (start, end)
}

/// Number of leading keep-alive bytes (CRLF pairs or bare LFs). A lone trailing CR is not
/// counted (it may be the first half of a CRLF still in flight).
pub(crate) fn leading_crlf(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        match buf.get(i) {
            Some(b'\n') => i += 1,
            Some(b'\r') if buf.get(i + 1) == Some(&b'\n') => i += 2,
            _ => return i,
        }
    }
}

/// Find the empty line ending the header section. Returns `(header_end, body_start)`:
/// `header_end` is just after the line end of the last header line (or of the start line),
/// `body_start` just after the empty line.
pub(crate) fn find_header_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        let lf = i + memchr::memchr(b'\n', &buf[i..])?;
        let next = lf + 1;
        match buf.get(next) {
            Some(b'\n') => return Some((next, next + 1)),
            Some(b'\r') if buf.get(next + 1) == Some(&b'\n') => return Some((next, next + 2)),
            _ => i = next,
        }
    }
    None
}

/// One physical line of `buf` starting at `start`: `(content_end, next_start)`; the content
/// excludes the CR LF (or bare LF). Without a line end the line runs to the end of `buf`.
pub fn line_at(buf: &[u8], start: usize) -> (usize, usize) {
    match memchr::memchr(b'\n', &buf[start..]) {
        Some(p) => {
            let lf = start + p;
            let end = if lf > start && buf[lf - 1] == b'\r' {
                lf - 1
            } else {
                lf
            };
            (end, lf + 1)
        }
        None => (buf.len(), buf.len()),
    }
}

/// [`line_at`] for the parser, in one pass: `None` if the line holds a CR that does not end
/// it (a bare CR is not a line end in SIP).
pub(crate) fn strict_line_at(buf: &[u8], start: usize) -> Option<(usize, usize)> {
    match memchr::memchr2(b'\r', b'\n', &buf[start..]) {
        None => Some((buf.len(), buf.len())),
        Some(p) => {
            let at = start + p;
            match (buf[at], buf.get(at + 1)) {
                (b'\n', _) => Some((at, at + 1)),
                (_, Some(b'\n')) => Some((at, at + 2)),
                _ => None,
            }
        }
    }
}

/// Parse an all-digit string (leading zeros allowed) into a u32. `None` if empty, not digits,
/// or out of range.
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    parse_u64(s).and_then(|v| u32::try_from(v).ok())
}

pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// Comma-separated values of a header value: ranges relative to the input, trimmed, empty
/// elements skipped. Commas inside quoted strings (with `\` escapes) and inside `<...>` do not
/// split.
#[derive(Debug, Clone)]
pub(crate) struct ValueSplit<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> ValueSplit<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        ValueSplit {
            s: s.as_bytes(),
            pos: 0,
        }
    }
}

impl Iterator for ValueSplit<'_> {
    type Item = (usize, usize);
    fn next(&mut self) -> Option<(usize, usize)> {
        while self.pos < self.s.len() {
            let start = self.pos;
            let end = next_unquoted(self.s, start, b',');
            self.pos = end + 1;
            let (a, b) = trim_range(self.s, start, end);
            if a < b {
                return Some((a, b));
            }
        }
        None
    }
}

/// Index of the first `b` in `s` (an ASCII byte, so the index is a char boundary).
pub(crate) fn byte_at(s: &str, b: u8) -> Option<usize> {
    memchr::memchr(b, s.as_bytes())
}

/// Index of the next `delim` at or after `start` that is outside quotes and `<...>`, or
/// `s.len()`.
pub(crate) fn next_unquoted(s: &[u8], start: usize, delim: u8) -> usize {
    let mut i = start;
    while i < s.len() {
        // Jump to the next byte that matters instead of walking byte by byte.
        let Some(p) = memchr::memchr3(delim, b'"', b'<', &s[i..]) else {
            return s.len();
        };
        let j = i + p;
        let b = s[j];
        if b == delim {
            return j;
        }
        let next = if b == b'"' {
            quoted_end(s, j)
        } else {
            memchr::memchr(b'>', &s[j + 1..]).map(|q| j + 1 + q + 1)
        };
        match next {
            Some(n) => i = n,
            None => return s.len(), // unterminated: nothing after it is outside
        }
    }
    s.len()
}

/// End (exclusive, index after the closing quote) of the quoted string starting at `s[start]`
/// (which must be `"`). `None` if unterminated.
pub(crate) fn quoted_end(s: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < s.len() {
        let j = i + memchr::memchr2(b'\\', b'"', &s[i..])?;
        if s[j] == b'"' {
            return Some(j + 1);
        }
        i = j + 2; // a quoted-pair: skip the escaped byte
    }
    None
}

/// Replace every folded line end (CRLF or LF followed by SP/HTAB) and the white space around it
/// with a single SP (RFC 3261 §7.3.1). Borrows when there is nothing to unfold.
pub fn unfold(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.bytes().any(|b| b == b'\n' || b == b'\r') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut in_ws = false;
    for c in s.chars() {
        if matches!(c, '\r' | '\n') {
            if !in_ws {
                while out.ends_with([' ', '\t']) {
                    out.pop();
                }
                out.push(' ');
                in_ws = true;
            }
        } else if in_ws && matches!(c, ' ' | '\t') {
        } else {
            in_ws = false;
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_line_at_is_line_at_without_bare_cr() {
        let cases: [&[u8]; 9] = [
            b"abc\r\ndef",
            b"abc\ndef",
            b"abc",
            b"",
            b"a\rb\r\n",
            b"abc\r",
            b"\r\n",
            b"\n",
            b"x\r\r\n",
        ];
        for buf in cases {
            let (end, next) = line_at(buf, 0);
            let bare_cr = buf[..end].contains(&b'\r');
            let want = (!bare_cr).then_some((end, next));
            assert_eq!(
                strict_line_at(buf, 0),
                want,
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn token_table_is_the_rfc_3261_token_set() {
        let marks = b"-.!%*_+`'~";
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || marks.contains(&b);
            assert_eq!(is_token(b), want, "byte {b}");
        }
    }

    #[test]
    fn header_end_crlf_and_lf() {
        assert_eq!(find_header_end(b"A\r\nB: c\r\n\r\nbody"), Some((9, 11)));
        assert_eq!(find_header_end(b"A\nB: c\n\nbody"), Some((7, 8)));
        assert_eq!(find_header_end(b"A\r\nB: c\r\n"), None);
    }

    #[test]
    fn split_respects_quotes_and_angles() {
        let s = r#""a, b" <sip:x;y=1,2>;p=1 , , sip:z"#;
        let v: Vec<&str> = ValueSplit::new(s).map(|(a, b)| &s[a..b]).collect();
        assert_eq!(v, [r#""a, b" <sip:x;y=1,2>;p=1"#, "sip:z"]);
    }

    #[test]
    fn numbers_and_unfold() {
        assert_eq!(parse_u32("0068"), Some(68));
        assert_eq!(parse_u32("4294967296"), None);
        assert_eq!(parse_u32("-1"), None);
        assert_eq!(unfold("a \r\n  b"), "a b");
        assert_eq!(leading_crlf(b"\r\n\r\nX"), 4);
        assert_eq!(leading_crlf(b"\r"), 0);
    }
}

#[cfg(test)]
mod memchr_equivalence {
    use super::*;
    use proptest::prelude::*;

    /// The byte-at-a-time versions these replaced: the oracle.
    fn next_unquoted_ref(s: &[u8], start: usize, delim: u8) -> usize {
        let (mut i, mut quoted, mut angle) = (start, false, false);
        while i < s.len() {
            let b = s[i];
            if quoted {
                match b {
                    b'\\' => i += 1,
                    b'"' => quoted = false,
                    _ => {}
                }
            } else if angle {
                angle = b != b'>';
            } else if b == delim {
                return i;
            } else if b == b'"' {
                quoted = true;
            } else if b == b'<' {
                angle = true;
            }
            i += 1;
        }
        s.len()
    }

    fn quoted_end_ref(s: &[u8], start: usize) -> Option<usize> {
        let mut i = start + 1;
        while i < s.len() {
            match s[i] {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
        None
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn same_results_as_the_byte_loops(
            v in proptest::collection::vec(prop_oneof![
                Just(b'"'), Just(b'\\'), Just(b'<'), Just(b'>'), Just(b','), Just(b';'),
                Just(b'a'), Just(b' '), Just(b'='),
            ], 0..40),
            start in 0usize..40,
        ) {
            let start = start.min(v.len());
            for delim in [b',', b';'] {
                prop_assert_eq!(next_unquoted(&v, start, delim), next_unquoted_ref(&v, start, delim));
            }
            if v.get(start) == Some(&b'"') {
                prop_assert_eq!(quoted_end(&v, start), quoted_end_ref(&v, start));
            }
        }
    }
}
