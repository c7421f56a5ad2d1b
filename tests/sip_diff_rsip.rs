//! Differential test against `rsip` 0.4: for every message both parsers accept, the fields a
//! proxy relies on must agree (method/status, Call-ID, CSeq number, From/To tags, number of Via
//! values, body length). Messages only one side accepts are listed (printed), not failures:
//! rsip is more lenient in places (no mandatory-header checks) and stricter in others (unknown
//! URI schemes, odd spacing).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use regevent_gw::sip::{HeaderName, Limits, Message};
use rsip::prelude::*;

#[derive(Debug, PartialEq, Eq)]
struct Summary {
    start: String,
    call_id: String,
    cseq: u32,
    from_tag: Option<String>,
    to_tag: Option<String>,
    vias: usize,
    body_len: usize,
}

fn ours(raw: &[u8]) -> Option<Summary> {
    let m = Message::parse(Bytes::copy_from_slice(raw), &Limits::default()).ok()?;
    Some(Summary {
        start: m
            .status()
            .map_or_else(|| m.method_str().to_string(), |s| s.to_string()),
        call_id: m.call_id().to_string(),
        cseq: m.cseq().seq,
        from_tag: m.from().tag().map(str::to_string),
        to_tag: m.to().tag().map(str::to_string),
        vias: m.header_values(HeaderName::Via).len(),
        body_len: m.body().len(),
    })
}

fn theirs(raw: &[u8]) -> Result<Summary, String> {
    let msg = rsip::SipMessage::try_from(raw).map_err(|e| e.to_string())?;
    let start = match &msg {
        rsip::SipMessage::Request(r) => r.method().to_string(),
        rsip::SipMessage::Response(r) => r.status_code().code().to_string(),
    };
    let e = |e: rsip::Error| e.to_string();
    let vias = msg
        .headers()
        .iter()
        .filter_map(|h| match h {
            rsip::Header::Via(v) => Some(
                v.value()
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .count(),
            ),
            _ => None,
        })
        .sum();
    Ok(Summary {
        start,
        call_id: msg.call_id_header().map_err(e)?.value().trim().to_string(),
        cseq: msg.cseq_header().map_err(e)?.typed().map_err(e)?.seq,
        from_tag: msg
            .from_header()
            .map_err(e)?
            .typed()
            .map_err(e)?
            .tag()
            .map(|t| t.to_string()),
        to_tag: msg
            .to_header()
            .map_err(e)?
            .typed()
            .map_err(e)?
            .tag()
            .map(|t| t.to_string()),
        vias,
        body_len: msg.body().len(),
    })
}

const IMS: &[(&str, &str)] = &[
    (
        "ims-register",
        "REGISTER sip:ims.mnc001.mcc001.3gppnetwork.org SIP/2.0\r\n\
Via: SIP/2.0/UDP [2001:db8:0:1::5]:5060;branch=z9hG4bK-524287-1---a1b2c3;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:001010000000001@[2001:db8:0:1::5]:5060>;+sip.instance=\"<urn:gsma:imei:35209900-176148-0>\";+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel\";reg-id=1;expires=600000\r\n\
To: <sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org>\r\n\
From: <sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org>;tag=4fa3\r\n\
Call-ID: 3c26700e-ce9a-4d8e@2001:db8:0:1::5\r\n\
CSeq: 1 REGISTER\r\n\
Expires: 600000\r\n\
Supported: path, gruu, sec-agree\r\n\
Require: sec-agree\r\n\
Proxy-Require: sec-agree\r\n\
Authorization: Digest username=\"001010000000001@ims.mnc001.mcc001.3gppnetwork.org\", realm=\"ims.mnc001.mcc001.3gppnetwork.org\", nonce=\"\", uri=\"sip:ims.mnc001.mcc001.3gppnetwork.org\", response=\"\"\r\n\
Security-Client: ipsec-3gpp;alg=hmac-sha-1-96;spi-c=1111;spi-s=2222;port-c=5062;port-s=5064\r\n\
User-Agent: TestUE/1.0\r\n\
Content-Length: 0\r\n\r\n",
    ),
    (
        "ims-register-200",
        "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP [2001:db8:0:1::5]:5060;branch=z9hG4bK-524287-1---a1b2c3;rport=5060;received=2001:db8:0:1::5\r\n\
Path: <sip:term@pcscf.ims.mnc001.mcc001.3gppnetwork.org;lr>\r\n\
Service-Route: <sip:orig@scscf.ims.mnc001.mcc001.3gppnetwork.org:6060;lr>\r\n\
P-Associated-URI: <sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org>, <tel:+15551234567>\r\n\
To: <sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org>;tag=a6b1-28\r\n\
From: <sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org>;tag=4fa3\r\n\
Call-ID: 3c26700e-ce9a-4d8e@2001:db8:0:1::5\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:001010000000001@[2001:db8:0:1::5]:5060>;expires=600000;+sip.instance=\"<urn:gsma:imei:35209900-176148-0>\";pub-gruu=\"sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org;gr=urn:gsma:imei:35209900-176148-0\"\r\n\
Date: Sat, 01 Nov 2025 10:00:00 GMT\r\n\
Content-Length: 0\r\n\r\n",
    ),
    (
        "ims-subscribe-reg",
        "SUBSCRIBE sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org SIP/2.0\r\n\
Via: SIP/2.0/TCP 10.0.0.10:5060;branch=z9hG4bKgw1\r\n\
Max-Forwards: 70\r\n\
Route: <sip:orig@scscf.ims.mnc001.mcc001.3gppnetwork.org:6060;lr>\r\n\
From: <sip:pcscf.ims.mnc001.mcc001.3gppnetwork.org>;tag=gw-77\r\n\
To: <sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org>\r\n\
Call-ID: sub-1@10.0.0.10\r\n\
CSeq: 1 SUBSCRIBE\r\n\
Event: reg\r\n\
Accept: application/reginfo+xml\r\n\
Expires: 600000\r\n\
Contact: <sip:10.0.0.10:5060;transport=tcp>\r\n\
P-Asserted-Identity: <sip:pcscf.ims.mnc001.mcc001.3gppnetwork.org>\r\n\
Content-Length: 0\r\n\r\n",
    ),
    (
        "ims-notify-reginfo",
        "NOTIFY sip:10.0.0.10:5060;transport=tcp SIP/2.0\r\n\
Via: SIP/2.0/TCP 10.0.0.20:6060;branch=z9hG4bKscscf9\r\n\
Max-Forwards: 70\r\n\
From: <sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org>;tag=s-1\r\n\
To: <sip:pcscf.ims.mnc001.mcc001.3gppnetwork.org>;tag=gw-77\r\n\
Call-ID: sub-1@10.0.0.10\r\n\
CSeq: 10 NOTIFY\r\n\
Event: reg\r\n\
Subscription-State: active;expires=600000\r\n\
Contact: <sip:10.0.0.20:6060;transport=tcp>\r\n\
Content-Type: application/reginfo+xml\r\n\
Content-Length: 150\r\n\r\n\
<?xml version=\"1.0\"?>\n<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"0\" state=\"full\"><registration aor=\"sip:a@b\" id=\"a\" state=\"active\"/>\n</reginfo>\n",
    ),
    (
        "ims-401",
        "SIP/2.0 401 Unauthorized\r\n\
Via: SIP/2.0/UDP 10.0.0.10:5060;branch=z9hG4bKfwd1, SIP/2.0/UDP [2001:db8:0:1::5]:5060;branch=z9hG4bK-1;rport=5060\r\n\
To: <sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org>;tag=x9\r\n\
From: <sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org>;tag=4fa3\r\n\
Call-ID: 3c26700e-ce9a-4d8e@2001:db8:0:1::5\r\n\
CSeq: 1 REGISTER\r\n\
WWW-Authenticate: Digest realm=\"ims.mnc001.mcc001.3gppnetwork.org\", nonce=\"cmFuZG9tX25vbmNl\", algorithm=AKAv1-MD5, qop=\"auth\"\r\n\
Content-Length: 0\r\n\r\n",
    ),
];

fn torture_dir() -> PathBuf {
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

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = IMS
        .iter()
        .map(|(n, m)| (n.to_string(), m.as_bytes().to_vec()))
        .collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(torture_dir())
        .expect("torture dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "dat"))
        .collect();
    files.sort();
    for p in files {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        v.push((name, std::fs::read(&p).expect("read")));
    }
    v
}

#[test]
fn ims_messages_parse_on_both_sides() {
    for (name, raw) in IMS {
        assert!(ours(raw.as_bytes()).is_some(), "{name}: ours rejects");
        assert!(theirs(raw.as_bytes()).is_ok(), "{name}: rsip rejects");
    }
}

#[test]
fn both_parsers_agree_on_what_both_accept() {
    let (mut both, mut only_ours, mut only_rsip, mut neither) = (0, vec![], vec![], vec![]);
    let mut mismatches = vec![];
    for (name, raw) in corpus() {
        // rsip takes the datagram as one message; compare on the bytes our framing kept.
        let a = ours(&raw);
        let cut = Message::parse(Bytes::copy_from_slice(&raw), &Limits::default())
            .map(|m| m.raw().to_vec());
        let b = theirs(cut.as_deref().unwrap_or(&raw));
        match (a, b) {
            (Some(a), Ok(b)) => {
                both += 1;
                if a != b {
                    mismatches.push(format!("{name}:\n  ours  {a:?}\n  rsip  {b:?}"));
                }
            }
            (Some(_), Err(e)) => only_ours.push(format!(
                "{name} ({})",
                e.chars().take(60).collect::<String>()
            )),
            (None, Ok(_)) => only_rsip.push(name),
            (None, Err(_)) => neither.push(name),
        }
    }
    println!("both accept: {both}");
    println!("rsip rejects, we accept: {only_ours:#?}");
    println!("we reject, rsip accepts: {only_rsip:#?}");
    println!("both reject: {neither:#?}");
    assert!(both >= IMS.len(), "too few messages in common");
    assert!(
        mismatches.is_empty(),
        "disagreements:\n{}",
        mismatches.join("\n")
    );
}
