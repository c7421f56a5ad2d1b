//! Unit tests for `Message::parse` and its accessors.

use super::*;

const REGISTER: &str = "REGISTER sip:ims.example.net SIP/2.0\r\n\
Via: SIP/2.0/UDP [2001:db8::5]:5060;branch=z9hG4bK1;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:+15551234@ims.example.net>;tag=f1\r\n\
To: <sip:+15551234@ims.example.net>\r\n\
Call-ID: reg1@2001:db8::5\r\n\
CSeq: 7 REGISTER\r\n\
Contact: <sip:ue@[2001:db8::5]:5060>;+sip.instance=\"<urn:uuid:1>\";reg-id=1, <sip:ue2@[2001:db8::5]>\r\n\
Expires: 600000\r\n\
Route: <sip:pcscf.ims.example.net;lr>\r\n\
Content-Length: 0\r\n\
\r\n";

fn parse(s: &str) -> Result<Message, ParseError> {
    Message::parse(Bytes::copy_from_slice(s.as_bytes()), &Limits::default())
}

#[test]
fn register_accessors() {
    let m = parse(REGISTER).unwrap();
    assert!(m.is_request());
    assert_eq!(m.method(), Some(Method::Register));
    assert_eq!(m.method_str(), "REGISTER");
    assert_eq!(m.request_uri(), Some("sip:ims.example.net"));
    assert_eq!(m.status(), None);
    assert_eq!(m.call_id(), "reg1@2001:db8::5");
    assert_eq!(
        m.cseq(),
        CSeq {
            seq: 7,
            method: "REGISTER"
        }
    );
    assert_eq!(m.from().tag(), Some("f1"));
    assert_eq!(m.to().tag(), None);
    assert_eq!(m.top_via().host, "[2001:db8::5]");
    assert_eq!(m.top_via().rport(), Some(None));
    assert_eq!(m.vias().unwrap().len(), 1);
    assert_eq!(m.expires(), Ok(Some(600000)));
    assert_eq!(m.max_forwards(), Ok(Some(70)));
    assert_eq!(m.header_values(HeaderName::Contact).len(), 2);
    let Ok(Contacts::List(c)) = m.contacts() else {
        panic!("contacts")
    };
    assert_eq!(c[0].params.get("reg-id"), Some(Some("1")));
    assert_eq!(
        m.header_by_name("route"),
        Some("<sip:pcscf.ims.example.net;lr>")
    );
    assert_eq!(m.header(HeaderName::Other), None);
    assert!(m.body().is_empty());
    assert_eq!(m.raw().len(), REGISTER.len());
}

#[test]
fn response_and_empty_reason() {
    let r = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nFrom: <sip:a@b>;tag=1\r\n\
To: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 SUBSCRIBE\r\nExpires: 600\r\nl: 2\r\n\r\nxyTRAILING";
    let m = parse(r).unwrap();
    assert_eq!(m.status(), Some(200));
    assert_eq!(m.reason(), Some("OK"));
    assert_eq!(m.method_str(), "SUBSCRIBE");
    assert_eq!(m.body(), b"xy");
    assert!(m.raw().ends_with(b"xy"));
    let m = parse(&r.replace("200 OK", "100 ")).unwrap();
    assert_eq!(m.reason(), Some(""));
}

#[test]
fn start_line_errors() {
    let ok = REGISTER;
    assert_eq!(
        parse(&ok.replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia")).unwrap_err(),
        ParseError::Version
    );
    assert_eq!(
        parse(&ok.replace("sip:ims.example.net SIP", "<sip:ims.example.net> SIP")).unwrap_err(),
        ParseError::StartLine
    );
    assert_eq!(
        parse(&ok.replace("REGISTER sip", "REGISTER  sip")).unwrap_err(),
        ParseError::StartLine
    );
    assert_eq!(
        parse(&ok.replace("SIP/2.0\r\nVia", "SIP/2.0 \r\nVia")).unwrap_err(),
        ParseError::StartLine
    );
    assert_eq!(
        parse(&ok.replace("sip:ims.example.net SIP", "sip:ims.example.net?a=b SIP")).unwrap_err(),
        ParseError::StartLine
    );
    let resp = "SIP/2.0 99 X\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 A\r\n\r\n";
    assert_eq!(parse(resp).unwrap_err(), ParseError::StartLine);
    assert_eq!(
        parse(&resp.replace(" 99 ", " 700 ")).unwrap_err(),
        ParseError::StartLine
    );
    assert!(parse(&resp.replace(" 99 ", " 699 ")).is_ok());
}

#[test]
fn header_errors() {
    let ok = REGISTER;
    assert_eq!(
        parse(&ok.replace("Call-ID: reg1@2001:db8::5\r\n", "")).unwrap_err(),
        ParseError::Missing("Call-ID")
    );
    assert_eq!(
        parse(&ok.replace(
            "Via: SIP/2.0/UDP [2001:db8::5]:5060;branch=z9hG4bK1;rport\r\n",
            ""
        ))
        .unwrap_err(),
        ParseError::Missing("Via")
    );
    assert_eq!(
        parse(&ok.replace(
            "CSeq: 7 REGISTER\r\n",
            "CSeq: 7 REGISTER\r\ncseq: 8 REGISTER\r\n"
        ))
        .unwrap_err(),
        ParseError::Duplicate("CSeq")
    );
    assert_eq!(
        parse(&ok.replace("CSeq: 7 REGISTER", "CSeq: 7 INVITE")).unwrap_err(),
        ParseError::CSeqMismatch
    );
    assert_eq!(
        parse(&ok.replace("CSeq: 7 REGISTER", "CSeq: 4294967296 REGISTER")).unwrap_err(),
        ParseError::Malformed("CSeq")
    );
    assert_eq!(
        parse(&ok.replace("Content-Length: 0", "Content-Length: 1")).unwrap_err(),
        ParseError::ContentLength
    );
    assert_eq!(
        parse(&ok.replace("Content-Length: 0", "Content-Length: 0, 0")).unwrap_err(),
        ParseError::ContentLength
    );
    assert_eq!(
        parse(&ok.replace("Max-Forwards: 70", "Max-Forwards 70")).unwrap_err(),
        ParseError::HeaderLine
    );
    assert_eq!(
        parse(&ok.replace(
            "
Via:", "
 Via:"
        ))
        .unwrap_err(),
        ParseError::HeaderLine
    );
    assert_eq!(
        parse(&ok.replace("From: <sip:", "From: \"x <sip:")).unwrap_err(),
        ParseError::Malformed("From")
    );
    assert_eq!(
        parse(&ok.replace("\r\n\r\n", "\r\n")).unwrap_err(),
        ParseError::HeaderLine
    );
    assert_eq!(
        parse(&ok.replace("Max-Forwards: 70", "Max-Forwards: 7\r0")).unwrap_err(),
        ParseError::HeaderLine
    );
    let mut bad = REGISTER.as_bytes().to_vec();
    bad[50] = 0xff;
    assert_eq!(
        Message::parse(Bytes::from(bad), &Limits::default()).unwrap_err(),
        ParseError::Encoding
    );
}

#[test]
fn limits() {
    let raw = Bytes::from_static(REGISTER.as_bytes());
    let l = Limits {
        max_headers: 5,
        ..Limits::default()
    };
    assert_eq!(
        Message::parse(raw.clone(), &l).unwrap_err(),
        ParseError::TooManyHeaders
    );
    let l = Limits {
        max_header_bytes: 100,
        ..Limits::default()
    };
    assert_eq!(
        Message::parse(raw.clone(), &l).unwrap_err(),
        ParseError::TooLarge
    );
    let l = Limits {
        max_message: 100,
        ..Limits::default()
    };
    assert_eq!(Message::parse(raw, &l).unwrap_err(), ParseError::TooLarge);
}

#[test]
fn folding_compact_and_leading_crlf() {
    let s = "\r\nSUBSCRIBE sip:a@b SIP/2.0\r\nv: SIP/2.0/TCP h;branch=z9hG4bK2,\r\n SIP/2.0/UDP g\r\nf: <sip:a@b>;tag=1\r\nt: <sip:a@b>\r\n\
i: x\r\nCSeq: 1\r\n  SUBSCRIBE\r\no: reg\r\nSubscription-State: active\r\nNotify-Ext: a,\r\n\tb\r\n\r\n";
    let m = parse(s).unwrap();
    assert_eq!(m.header_values(HeaderName::Via).len(), 2);
    assert_eq!(m.header(HeaderName::Event), Some("reg"));
    assert_eq!(m.cseq().method, "SUBSCRIBE");
    assert_eq!(
        crate::sip::unfold(m.header_by_name("notify-ext").unwrap()),
        "a, b"
    );
    assert!(m.raw().starts_with(b"SUBSCRIBE"));
    assert_eq!(m.headers().count(), 8);
}

#[test]
fn header_values_are_slices_of_head_which_is_the_raw_header_section() {
    let m = parse(&format!("\r\n{REGISTER}Body!")).unwrap();
    let head = m.head();
    assert!(head.starts_with("REGISTER sip:"), "leading CRLF skipped");
    assert_eq!(head.as_bytes(), &m.raw()[..head.len()]);
    assert!(
        m.raw()[head.len()..].starts_with(b"\r\n"),
        "head ends where the empty line starts"
    );
    let range = head.as_ptr() as usize..head.as_ptr() as usize + head.len();
    for v in [m.call_id(), m.header(HeaderName::Via).unwrap(), m.to().uri] {
        assert!(range.contains(&(v.as_ptr() as usize)), "{v}");
    }
}
