//! Unit tests for the splice editor.

use super::*;
use crate::sip::Limits;

fn msg(s: &str) -> Message {
    Message::parse(Bytes::copy_from_slice(s.as_bytes()), &Limits::default()).unwrap()
}

const M: &str = "INVITE sip:b@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1;rport , SIP/2.0/TCP b.example.com;branch=z9hG4bK0\r\n\
Via: SIP/2.0/UDP c.example.com;branch=z9hG4bKc\r\n\
Route: <sip:p1;lr>\r\n\
Route: <sip:p2;lr>,<sip:p3;lr>\r\n\
MaX-fOrWaRdS: 0068\r\n\
f: <sip:a@example.com>;tag=1\r\n\
t: <sip:b@example.com>\r\n\
i: abc\r\n\
CSeq: 1 INVITE\r\n\
\r\n\
BODY\0\r\n";

#[test]
fn insert_via_and_decrement_max_forwards() {
    let m = msg(M);
    let out = m
        .edit()
        .insert_header(HeaderName::Via, "Via", "SIP/2.0/UDP gw;branch=z9hG4bKgw")
        .set_max_forwards(67)
        .finish();
    let exp = M
        .replacen(
            "Via: SIP/2.0/UDP a",
            "Via: SIP/2.0/UDP gw;branch=z9hG4bKgw\r\nVia: SIP/2.0/UDP a",
            1,
        )
        .replace("0068", "67");
    assert_eq!(out, exp.as_bytes());
}

#[test]
fn remove_values_and_lines() {
    let m = msg(M);
    let out = m.edit().remove_top_via().remove_first_route().finish();
    let exp = M
        .replace("SIP/2.0/UDP a.example.com;branch=z9hG4bK1;rport , ", "")
        .replace("Route: <sip:p1;lr>\r\n", "");
    assert_eq!(out, exp.as_bytes());
    let m2 = msg(std::str::from_utf8(&out).unwrap());
    let out = m2.edit().remove_first_route().remove_top_via().finish();
    let exp = exp
        .replace("<sip:p2;lr>,", "")
        .replace("Via: SIP/2.0/TCP b.example.com;branch=z9hG4bK0\r\n", "");
    assert_eq!(out, exp.as_bytes());
}

#[test]
fn received_rport_uri_and_values() {
    let m = msg(M);
    let out = m
        .edit()
        .set_top_via_received("192.0.2.7", Some(5062))
        .set_request_uri("sip:b@10.0.0.2:5070")
        .finish();
    let exp = M
        .replace(
            "branch=z9hG4bK1;rport ,",
            "branch=z9hG4bK1;rport=5062;received=192.0.2.7 ,",
        )
        .replace("INVITE sip:b@example.com", "INVITE sip:b@10.0.0.2:5070");
    assert_eq!(out, exp.as_bytes());
    let m2 = msg(std::str::from_utf8(&out).unwrap());
    assert_eq!(m2.top_via().rport(), Some(Some(5062)));
    assert_eq!(m2.top_via().received(), Some("192.0.2.7"));
    let out = m2
        .edit()
        .set_top_via_received("198.51.100.1", None)
        .finish();
    assert_eq!(
        msg(std::str::from_utf8(&out).unwrap()).top_via().received(),
        Some("198.51.100.1")
    );

    let out = m
        .edit()
        .replace_value(HeaderName::Route, 2, "<sip:new;lr>")
        .finish();
    assert_eq!(out, M.replace("<sip:p3;lr>", "<sip:new;lr>").as_bytes());
    let out = m.edit().replace_value(HeaderName::Route, 9, "x").finish();
    assert_eq!(out, M.as_bytes());
}

#[test]
fn content_length_and_missing_max_forwards() {
    let m = msg(M);
    let out = m.edit().ensure_content_length().finish();
    assert_eq!(
        out,
        M.replace(
            "CSeq: 1 INVITE\r\n",
            "CSeq: 1 INVITE\r\nContent-Length: 7\r\n"
        )
        .as_bytes()
    );
    let with_cl = msg(std::str::from_utf8(&out).unwrap());
    assert_eq!(with_cl.edit().ensure_content_length().finish(), out);
    let no_mf = M.replace("MaX-fOrWaRdS: 0068\r\n", "");
    let out = msg(&no_mf).edit().set_max_forwards(70).finish();
    assert_eq!(
        out,
        no_mf
            .replace(
                "CSeq: 1 INVITE\r\n",
                "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
            )
            .as_bytes()
    );
}

#[test]
fn order_and_injection() {
    let m = msg(M);
    let out = m
        .edit()
        .remove_top_via()
        .insert_header(HeaderName::Via, "Via", "SIP/2.0/UDP x")
        .prepend_header("P", "1\r\nEvil: 1")
        .finish();
    let s = std::str::from_utf8(&out).unwrap();
    assert!(s.starts_with("INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP x\r\nP: 1  Evil: 1\r\nVia: SIP/2.0/TCP b"));
    assert!(msg(s).call_id() == "abc");
    assert_eq!(m.edit().finish(), M.as_bytes());
}
