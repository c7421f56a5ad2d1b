//! Unit tests for the request builder and the response writers.

use super::*;
use crate::sip::Limits;

#[test]
fn request_builder() {
    let mut b = RequestBuilder::new("SUBSCRIBE", "sip:alice@ims.example.net");
    b.header("Via", "SIP/2.0/UDP gw;branch=z9hG4bK1")
        .header("Event", "reg");
    let out = b.finish(Some(("text/plain", b"hi")));
    assert_eq!(
        out,
        &b"SUBSCRIBE sip:alice@ims.example.net SIP/2.0\r\nVia: SIP/2.0/UDP gw;branch=z9hG4bK1\r\nEvent: reg\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"[..]
    );
    let out = RequestBuilder::new("OPTIONS", "sip:x").finish(None);
    assert!(out.ends_with(b"Content-Length: 0\r\n\r\n"));
}

#[test]
fn header_parts_and_numbers_write_one_clean_line_each() {
    let mut b = RequestBuilder::new("SUBSCRIBE", "sip:a");
    b.header_parts("To", &["<", "sip:a", ">;tag=", "x\r\ny"])
        .header_num("CSeq", 42, " SUBSCRIBE")
        .header_num("Expires", 0, "");
    let out = b.finish(None);
    assert_eq!(
        out,
        &b"SUBSCRIBE sip:a SIP/2.0\r\nTo: <sip:a>;tag=x  y\r\nCSeq: 42 SUBSCRIBE\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n"[..]
    );
}

const REQ: &str = "REGISTER sip:r SIP/2.0\r\nv: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b\r\nVia: SIP/2.0/UDP c\r\n\
f: <sip:u@r>;tag=9\r\nt: <sip:u@r>\r\ni: cid\r\nCSeq: 3 REGISTER\r\nl: 0\r\n\r\n";

#[test]
fn response_copies_mandatory_headers() {
    let req = Message::parse(Bytes::from_static(REQ.as_bytes()), &Limits::default()).unwrap();
    let out = response(&req, 200, "OK", Some("gw1"), &[("Expires", "600")]);
    let exp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b\r\nVia: SIP/2.0/UDP c\r\n\
From: <sip:u@r>;tag=9\r\nTo: <sip:u@r>;tag=gw1\r\nCall-ID: cid\r\nCSeq: 3 REGISTER\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(out, exp.as_bytes());
    let parsed = Message::parse(out, &Limits::default()).unwrap();
    assert_eq!(parsed.to().tag(), Some("gw1"));
    let trying = response(&req, 100, "Trying", Some("gw1"), &[]);
    assert!(!std::str::from_utf8(&trying).unwrap().contains("tag=gw1"));
}

#[test]
fn error_response_from_garbage() {
    let broken = REQ.replace("l: 0", "l: 9999");
    let out = error_response_from_raw(broken.as_bytes(), 400, "Bad Request").unwrap();
    let m = Message::parse(out, &Limits::default()).unwrap();
    assert_eq!(m.status(), Some(400));
    assert_eq!(m.call_id(), "cid");
    assert_eq!(m.header_values(HeaderName::Via).len(), 3);
    assert!(m.to().tag().is_some());
    assert!(error_response_from_raw(REQ.replace("i: cid\r\n", "").as_bytes(), 400, "x").is_none());
    assert!(error_response_from_raw(b"SIP/2.0 200 OK\r\n\r\n", 400, "x").is_none());
    assert!(error_response_from_raw(b"", 400, "x").is_none());
}

#[test]
fn push_hex_writes_what_format_writes() {
    let values = [
        0u64,
        1,
        9,
        10,
        15,
        16,
        255,
        4096,
        0xdead_beef,
        u64::MAX >> 4,
        u64::MAX,
    ];
    for v in values {
        for w in [0usize, 1, 4, 16, 20] {
            let mut s = String::from("x");
            push_hex(&mut s, v, w);
            assert_eq!(s, format!("x{v:0w$x}"), "v={v} w={w}");
        }
    }
}

#[test]
fn push_decimal_writes_what_format_writes() {
    for n in [0u64, 7, 10, 99, 5060, 65_535, 1 << 32, u64::MAX] {
        let mut s = String::from("x");
        push_decimal(&mut s, n);
        assert_eq!(s, format!("x{n}"));
    }
}
