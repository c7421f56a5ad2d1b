//! RFC 4475 torture messages, driven by `MANIFEST.tsv`: every `valid=yes` message parses and
//! survives a forwarding edit byte for byte; every `valid=no` message gets the verdict in
//! [`INVALID`]; nothing panics, as a datagram or as a TCP stream fed one byte at a time.
//!
//! The corpus is found at `$CARGO_MANIFEST_DIR/../shared/sip-torture`, else `$SIP_TORTURE_DIR`,
//! else the byte-exact copy in `tests/data/sip-torture/`.
//!
//! What our message layer does with each invalid message (the proxy core acts on the verdict):
//!
//! | file       | verdict                          | note                                                  |
//! |------------|----------------------------------|-------------------------------------------------------|
//! | badinv01   | `Malformed("Via")`               | `;;` empty Via params                                 |
//! | clerr      | `ContentLength`                  | 9999 > body (stream: `Incomplete`)                    |
//! | ncl        | `ContentLength`                  | -999 (stream: `BadContentLength`)                     |
//! | scalar02   | `Malformed("CSeq")`              | CSeq > 2^32-1                                         |
//! | scalarlg   | `Malformed("CSeq")`              | response: caller drops it                             |
//! | quotbal    | `Malformed("To")`                | unterminated quote                                    |
//! | ltgtruri   | `StartLine`                      | `<>` around the Request-URI                           |
//! | lwsruri    | `StartLine`                      | SP inside the Request-URI                             |
//! | lwsstart   | `StartLine`                      | strict: doubled SPs rejected (RFC allows lenient)     |
//! | trws       | `StartLine`                      | strict: trailing SPs rejected (RFC allows lenient)    |
//! | escruri    | `StartLine`                      | strict: `?headers` not allowed in a Request-URI       |
//! | baddate    | accepted                         | semantic: Date is never interpreted, forwarded as is  |
//! | regbadct   | accepted; `contacts()` is `Err`  | semantic: the registrar answers 400                   |
//! | badaspec   | `Malformed("To")`                | strict: SP inside `<>`                                |
//! | baddn      | `HeaderLine`                     | no empty line ends the headers; From/To also rejected |
//! | badvers    | `Version`                        | → 505                                                 |
//! | mismatch01 | `CSeqMismatch`                   |                                                       |
//! | mismatch02 | `CSeqMismatch`                   | 400 (allowed); 501 for NEWMETHOD is application-level |
//! | bigcode    | `StartLine`                      | status code out of 100..=699: drop                    |
//! | insuf      | `Missing("From")`                | no From/To/Call-ID                                    |
//! | multi01    | `Duplicate("CSeq")`              | first repeated single-valued header                   |
//! | mcl01      | `Duplicate("Content-Length")`    | stream: `BadContentLength`                            |
//! | test       | `StartLine`                      | no SIP-Version                                        |

use std::path::{Path, PathBuf};

use bytes::Bytes;
use regevent_gw::sip::framer::check_stream;
use regevent_gw::sip::{
    Frame, FrameError, HeaderName, Limits, Message, Method, NameAddr, ParseError, Uri,
};

/// `None`: accepted by the message layer (semantic problem, see the table above).
const INVALID: &[(&str, Option<ParseError>)] = &[
    ("badinv01.dat", Some(ParseError::Malformed("Via"))),
    ("clerr.dat", Some(ParseError::ContentLength)),
    ("ncl.dat", Some(ParseError::ContentLength)),
    ("scalar02.dat", Some(ParseError::Malformed("CSeq"))),
    ("scalarlg.dat", Some(ParseError::Malformed("CSeq"))),
    ("quotbal.dat", Some(ParseError::Malformed("To"))),
    ("ltgtruri.dat", Some(ParseError::StartLine)),
    ("lwsruri.dat", Some(ParseError::StartLine)),
    ("lwsstart.dat", Some(ParseError::StartLine)),
    ("trws.dat", Some(ParseError::StartLine)),
    ("escruri.dat", Some(ParseError::StartLine)),
    ("baddate.dat", None),
    ("regbadct.dat", None),
    ("badaspec.dat", Some(ParseError::Malformed("To"))),
    ("baddn.dat", Some(ParseError::HeaderLine)),
    ("badvers.dat", Some(ParseError::Version)),
    ("mismatch01.dat", Some(ParseError::CSeqMismatch)),
    ("mismatch02.dat", Some(ParseError::CSeqMismatch)),
    ("bigcode.dat", Some(ParseError::StartLine)),
    ("insuf.dat", Some(ParseError::Missing("From"))),
    ("multi01.dat", Some(ParseError::Duplicate("CSeq"))),
    ("mcl01.dat", Some(ParseError::Duplicate("Content-Length"))),
    ("test.dat", Some(ParseError::StartLine)),
];

fn dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/sip-torture");
    if shared.join("MANIFEST.tsv").is_file() {
        return shared;
    }
    if let Some(d) = std::env::var_os("SIP_TORTURE_DIR").map(PathBuf::from) {
        if d.join("MANIFEST.tsv").is_file() {
            return d;
        }
    }
    root.join("tests/data/sip-torture")
}

struct Row {
    file: String,
    valid: bool,
}

fn manifest() -> Vec<Row> {
    let text = std::fs::read_to_string(dir().join("MANIFEST.tsv")).expect("MANIFEST.tsv");
    let rows: Vec<Row> = text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() >= 4, "bad manifest row {l}");
            Row {
                file: cols[0].to_string(),
                valid: cols[2] == "yes",
            }
        })
        .collect();
    assert_eq!(rows.len(), 50);
    rows
}

fn load(file: &str) -> Bytes {
    Bytes::from(std::fs::read(dir().join(file)).expect(file))
}

fn parse(file: &str) -> Result<Message, ParseError> {
    Message::parse(load(file), &Limits::default())
}

const GW_VIA: &str = "SIP/2.0/UDP gw.test:5060;branch=z9hG4bKtorture";

/// Offset of `s` (a header value of `m`) in the message's bytes: values are slices of
/// `m.head()`, which is the bytes up to the header section's end.
fn offset(m: &Message, s: &str) -> usize {
    s.as_ptr() as usize - m.head().as_ptr() as usize
}

/// Insert our Via and decrement Max-Forwards (or add one); check that removing exactly what we
/// inserted gives back the input bytes.
fn check_forwarding_edit(file: &str, m: &Message) {
    let raw = m.raw();
    let mf = m
        .max_forwards()
        .unwrap_or_else(|e| panic!("{file}: Max-Forwards {e}"));
    let mut ed = m.edit();
    ed.insert_header(HeaderName::Via, "Via", GW_VIA);
    if m.is_request() {
        ed.set_max_forwards(mf.map_or(70, |n| n.saturating_sub(1)));
    }
    let out = ed.finish();

    let line = format!("Via: {GW_VIA}\r\n");
    let at = out
        .windows(line.len())
        .position(|w| w == line.as_bytes())
        .expect("inserted Via");
    let mut back = out[..at].to_vec();
    back.extend_from_slice(&out[at + line.len()..]);
    let mut expected = raw.to_vec();
    if m.is_request() {
        match (m.header(HeaderName::MaxForwards), mf) {
            (Some(v), Some(n)) => {
                let o = offset(m, v);
                let new = n.saturating_sub(1).to_string();
                expected.splice(o..o + v.len(), new.bytes());
            }
            _ => {
                let ins = b"Max-Forwards: 70\r\n";
                let p = back
                    .windows(ins.len())
                    .position(|w| w == ins)
                    .expect("inserted Max-Forwards");
                back.drain(p..p + ins.len());
            }
        }
    }
    assert_eq!(back, expected, "{file}: bytes outside the edits changed");

    let again =
        Message::parse(out, &Limits::default()).unwrap_or_else(|e| panic!("{file}: reparse {e}"));
    assert_eq!(again.call_id(), m.call_id());
    assert_eq!(again.top_via().host, "gw.test");
    assert_eq!(
        again.header_values(HeaderName::Via).len(),
        m.header_values(HeaderName::Via).len() + 1
    );
    assert_eq!(again.body(), m.body());
}

#[test]
fn manifest_verdicts_and_byte_exact_forwarding() {
    for row in manifest() {
        let res = parse(&row.file);
        if row.valid {
            let m = res.unwrap_or_else(|e| panic!("{} must parse: {e:?}", row.file));
            check_forwarding_edit(&row.file, &m);
        } else {
            let (_, want) = INVALID
                .iter()
                .find(|(f, _)| *f == row.file)
                .unwrap_or_else(|| panic!("{} not in table", row.file));
            match want {
                Some(err) => assert_eq!(res.err().as_ref(), Some(err), "{}", row.file),
                None => {
                    let m = res
                        .unwrap_or_else(|e| panic!("{} accepted by this layer: {e:?}", row.file));
                    check_forwarding_edit(&row.file, &m);
                }
            }
        }
    }
}

#[test]
fn wsinv_odd_spacing_folding_and_compact_names() {
    let m = parse("wsinv.dat").unwrap();
    assert_eq!(m.max_forwards(), Ok(Some(68)));
    assert_eq!(m.cseq().seq, 9);
    assert_eq!(m.cseq().method, "INVITE");
    assert_eq!(m.header_values(HeaderName::Via).len(), 3);
    assert_eq!(m.top_via().host, "192.0.2.2");
    assert_eq!(m.to().tag(), Some("1918181833n"));
    assert_eq!(m.from().tag(), Some("98asjd8"));
    assert_eq!(m.from().display, Some(r#"J Rosenberg \\\""#));
    assert_eq!(m.vias().unwrap()[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(m.vias().unwrap()[2].branch(), Some("z9hG4bK30239"));
    let out = m.edit().set_max_forwards(67).finish();
    let s = String::from_utf8_lossy(&out);
    assert!(s.contains("MaX-fOrWaRdS: 67\r\n"));
    assert!(s.contains("NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n"));
    assert!(s.contains("UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n"));
    let regevent_gw::sip::Contacts::List(c) = m.contacts().unwrap() else {
        panic!("contacts")
    };
    assert_eq!(c[0].params.get("newparam"), Some(Some("newvalue")));
    assert_eq!(c[0].params.get("q"), Some(Some("0.33")));
}

#[test]
fn specific_valid_messages() {
    let m = parse("dblreq.dat").unwrap();
    let raw = load("dblreq.dat");
    assert!(m.raw().len() < raw.len());
    assert!(m.raw().ends_with(b"Content-Length: 0\r\n\r\n"));
    assert!(!m.raw().windows(6).any(|w| w == b"INVITE"));
    assert!(!m
        .edit()
        .insert_header(HeaderName::Via, "Via", GW_VIA)
        .finish()
        .windows(6)
        .any(|w| w == b"INVITE"));
    assert_eq!(m.method(), Some(Method::Register));

    let m = parse("mpart01.dat").unwrap();
    assert_eq!(m.body().len(), 553);

    let m = parse("escnull.dat").unwrap();
    assert_eq!(
        m.header_values(HeaderName::Contact),
        [
            "<sip:%00@host5.example.com>",
            "<sip:%00%00@host5.example.com>"
        ]
    );

    let m = parse("esc02.dat").unwrap();
    assert_eq!(m.method(), Some(Method::Other));
    assert_eq!(m.method_str(), "RE%47IST%45R");
    assert_eq!(m.header_values(HeaderName::Contact).len(), 2);

    let m = parse("semiuri.dat").unwrap();
    let uri = Uri::parse(m.request_uri().unwrap()).unwrap();
    assert_eq!(uri.user, Some("user;par=u%40example.net"));
    assert_eq!(uri.host, "example.com");
    assert!(uri.params.get("par").is_none());

    let m = parse("noreason.dat").unwrap();
    assert_eq!((m.status(), m.reason()), (Some(100), Some("")));

    let m = parse("unreason.dat").unwrap();
    assert_eq!(m.status(), Some(200));
    assert!(m.reason().unwrap().starts_with("= 2**3 * 5**2 "));

    let m = parse("longreq.dat").unwrap();
    assert_eq!(m.header_values(HeaderName::Via).len(), 34);

    let m = parse("transports.dat").unwrap();
    let t: Vec<&str> = m.vias().unwrap().iter().map(|v| v.transport).collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);

    let m = parse("intmeth.dat").unwrap();
    assert_eq!(m.method(), Some(Method::Other));
    assert!(m.to().display.unwrap().contains('\0'));

    let m = parse("cparam01.dat").unwrap();
    let regevent_gw::sip::Contacts::List(c) = m.contacts().unwrap() else {
        panic!()
    };
    assert_eq!(c[0].params.get("unknownparam"), Some(None));
    let m = parse("cparam02.dat").unwrap();
    let regevent_gw::sip::Contacts::List(c) = m.contacts().unwrap() else {
        panic!()
    };
    assert!(c[0].params.is_empty());
    assert_eq!(c[0].uri().unwrap().params.get("unknownparam"), Some(None));

    let m = parse("regescrt.dat").unwrap();
    let regevent_gw::sip::Contacts::List(c) = m.contacts().unwrap() else {
        panic!()
    };
    assert_eq!(
        c[0].uri().unwrap().headers,
        Some("Route=%3Csip:sip.example.com%3E")
    );

    let m = parse("inv2543.dat").unwrap();
    assert_eq!(m.max_forwards(), Ok(None));
    assert_eq!(m.top_via().branch(), None);
    assert!(!m.body().is_empty());

    let m = parse("unkscm.dat").unwrap();
    assert_eq!(
        Uri::parse(m.request_uri().unwrap()).unwrap().scheme,
        regevent_gw::sip::Scheme::Other
    );
    assert_eq!(parse("zeromf.dat").unwrap().max_forwards(), Ok(Some(0)));
    assert_eq!(
        parse("badbranch.dat").unwrap().top_via().branch(),
        Some("z9hG4bK")
    );
}

#[test]
fn specific_invalid_messages() {
    // regbadct: the message is fine for a proxy; the Contact addr-spec with '?' is rejected.
    assert!(parse("regbadct.dat").unwrap().contacts().is_err());
    // baddn: beyond the missing empty line, its display names are rejected too.
    let raw = load("baddn.dat");
    let text = String::from_utf8_lossy(&raw);
    for name in ["From:", "To:"] {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        assert!(NameAddr::parse(&line[name.len()..]).is_err(), "{line}");
    }
    let m = parse("baddate.dat").unwrap();
    assert!(m.header_by_name("Date").unwrap().ends_with("EST"));
}

#[test]
fn stream_framing_agrees_with_datagrams() {
    let limits = Limits::default();
    for row in manifest() {
        let raw = load(&row.file);
        let full = check_stream(&raw, &limits);
        match row.file.as_str() {
            "clerr.dat" | "baddn.dat" => assert_eq!(full, Ok(Frame::Incomplete), "{}", row.file),
            "ncl.dat" | "mcl01.dat" => {
                assert!(
                    matches!(full, Err(FrameError::BadContentLength(_))),
                    "{}",
                    row.file
                )
            }
            "inv2543.dat" => assert_eq!(full, Err(FrameError::MissingContentLength)),
            _ => {
                let Ok(Frame::Message(n)) = full else {
                    panic!("{}: {full:?}", row.file)
                };
                let d = Message::parse(raw.clone(), &limits).map(|m| m.raw().clone());
                let s = Message::parse(raw.slice(..n), &limits).map(|m| m.raw().clone());
                assert_eq!(d, s, "{}", row.file);
                for k in 0..n {
                    let r = check_stream(&raw[..k], &limits);
                    assert!(
                        matches!(r, Ok(Frame::Incomplete)),
                        "{} prefix {k}: {r:?}",
                        row.file
                    );
                }
            }
        }
    }
}

#[test]
fn nothing_panics_on_truncations() {
    let limits = Limits::default();
    for row in manifest() {
        let raw = load(&row.file);
        for k in (0..raw.len()).step_by(7) {
            let _ = Message::parse(raw.slice(..k), &limits);
            let _ =
                regevent_gw::sip::writer::error_response_from_raw(&raw[..k], 400, "Bad Request");
        }
        if let Ok(m) = Message::parse(raw.clone(), &limits) {
            let _ = (
                m.vias(),
                m.contacts(),
                m.expires(),
                m.from().uri(),
                m.to().uri(),
            );
            let _ = m.request_uri().map(Uri::parse);
        }
    }
}

/// `from()`/`to()` come from spans cached by the parser: for every torture message that parses
/// they must equal a fresh parse of the header (quoted and unquoted display names, addr-specs,
/// compact forms, folding, escapes).
#[test]
fn cached_from_to_equal_a_fresh_parse() {
    let (mut checked, rows) = (0, manifest());
    let valid = rows.iter().filter(|r| r.valid).count();
    for row in rows {
        let Ok(m) = parse(&row.file) else { continue };
        for (cached, name) in [(m.from(), HeaderName::From), (m.to(), HeaderName::To)] {
            let fresh = NameAddr::parse(m.header(name).unwrap()).unwrap();
            assert_eq!(cached.display, fresh.display, "{}", row.file);
            assert_eq!(cached.uri, fresh.uri, "{}", row.file);
            assert_eq!(cached.params.0, fresh.params.0, "{}", row.file);
            assert_eq!(cached.tag(), fresh.tag(), "{}", row.file);
        }
        checked += 1;
    }
    assert!(
        checked >= valid && valid > 10,
        "{checked} checked, {valid} valid"
    );
}
