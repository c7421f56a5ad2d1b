//! Reginfo parser limits: the size and depth limits are exact, a 500-registration document
//! parses completely, and hostile shapes (many attributes, many namespace declarations, wide
//! skipped subtrees, character references, deep nesting) get the right verdict.

use std::path::Path;

use regevent_gw::reginfo::{parse, Limits, ReginfoError};
use ReginfoError::*;

fn corpus_file(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reginfo")).join(name))
        .unwrap()
}

#[test]
fn too_large() {
    let body = corpus_file("full_basic.xml");
    let tight = Limits {
        max_bytes: body.len() - 1,
        ..Limits::default()
    };
    assert_eq!(parse(&body, &tight), Err(TooLarge));
    let exact = Limits {
        max_bytes: body.len(),
        ..Limits::default()
    };
    assert!(parse(&body, &exact).is_ok());
    // Checked before anything else: even garbage is TooLarge.
    assert_eq!(
        parse(
            &[0xff; 64],
            &Limits {
                max_bytes: 63,
                max_depth: 16
            }
        ),
        Err(TooLarge)
    );
}

#[test]
fn depth_limit_is_exact() {
    // reginfo(1) registration(2) contact(3) uri(4).
    let body = corpus_file("full_basic.xml");
    assert!(parse(
        &body,
        &Limits {
            max_depth: 4,
            ..Limits::default()
        }
    )
    .is_ok());
    assert_eq!(
        parse(
            &body,
            &Limits {
                max_depth: 3,
                ..Limits::default()
            }
        ),
        Err(TooDeep)
    );
}

fn big_document(n: usize) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\"?>\n<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" \
         xmlns:gr=\"urn:ietf:params:xml:ns:gruuinfo\" version=\"99\" state=\"full\">\n",
    );
    for i in 0..n {
        s.push_str(&format!(
            "<registration aor=\"sip:+1555{i:07}@ims.example.com\" id=\"r{i}\" state=\"active\">\
             <contact id=\"c{i}\" state=\"active\" event=\"registered\" expires=\"{e}\" callid=\"cid{i}\" cseq=\"{i}\">\
             <uri>sip:u{i}@[2001:db8::{i:x}]:5060;transport=tcp</uri>\
             <unknown-param name=\"+sip.instance\">\"&lt;urn:gsma:imei:3520990017614{i:04}&gt;\"</unknown-param>\
             <unknown-param name=\"reg-id\">1</unknown-param>\
             <gr:pub-gruu uri=\"sip:u{i}@ims.example.com;gr=urn:gsma:imei:3520990017614{i:04}\"/>\
             </contact></registration>\n",
            e = 600 + i
        ));
    }
    s.push_str("</reginfo>\n");
    s
}

#[test]
fn five_hundred_registrations() {
    let doc = big_document(500);
    let parsed = parse(doc.as_bytes(), &Limits::default()).unwrap();
    assert_eq!((parsed.version, parsed.registrations.len()), (99, 500));
    let last = &parsed.registrations[499];
    assert_eq!(
        (last.aor.as_str(), last.id.as_str()),
        ("sip:+15550000499@ims.example.com", "r499")
    );
    let c = &last.contacts[0];
    assert_eq!((c.expires, c.cseq), (Some(1099), Some(499)));
    assert_eq!(c.uri, "sip:u499@[2001:db8::1f3]:5060;transport=tcp");
    assert_eq!(
        c.param("+sip.instance"),
        Some(Some("\"<urn:gsma:imei:35209900176140499>\""))
    );
}

/// Generated hostile shapes near the size limit: each gets the right verdict (their parse times
/// are measured in `benches/reginfo.rs`, never asserted in tests).
#[test]
fn hostile_shapes_get_the_right_verdict() {
    const HEAD: &str =
        r#"<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="1" state="full">"#;
    let reg = |inner: &str| {
        format!(
            "{HEAD}<registration aor=\"sip:a@x\" id=\"r\" state=\"active\">\
             <contact id=\"c\" state=\"active\" event=\"registered\">{inner}</contact></registration></reginfo>"
        )
    };
    let n = 40_000;
    let many_attrs = reg(&format!(
        "<uri>sip:a@x</uri><v:x xmlns:v=\"urn:v\"{}/>",
        (0..n).map(|i| format!(" a{i}=\"1\"")).collect::<String>()
    ));
    let dup_attr_late = reg(&format!(
        "<uri>sip:a@x</uri><v:x xmlns:v=\"urn:v\"{} a7=\"2\"/>",
        (0..n).map(|i| format!(" a{i}=\"1\"")).collect::<String>()
    ));
    let many_ns = reg(&format!(
        "<uri>sip:a@x</uri><v:x xmlns:v=\"urn:v\"{}/>",
        (0..n)
            .map(|i| format!(" xmlns:p{i}=\"urn:p{i}\""))
            .collect::<String>()
    ));
    let wide = reg(&format!(
        "<uri>sip:a@x</uri>{}",
        "<v:x xmlns:v=\"urn:v\"><v:y/>t</v:x>".repeat(n / 2)
    ));
    let char_refs = reg(&format!("<uri>sip:{}@x</uri>", "&#65;&amp;".repeat(n)));
    let deep = format!("{HEAD}{}", "<x>".repeat(200_000));
    let cases: [(&str, &str, Result<usize, ReginfoError>); 6] = [
        ("many attributes", &many_attrs, Ok(1)),
        ("duplicate attribute", &dup_attr_late, Err(Xml)),
        ("many namespace declarations", &many_ns, Err(Xml)),
        ("wide skipped subtrees", &wide, Ok(1)),
        ("many character references", &char_refs, Ok(1)),
        ("deep nesting", &deep, Err(TooDeep)),
    ];
    for (what, doc, want) in cases {
        assert!(doc.len() <= 1 << 20, "{what}: {}", doc.len());
        let got = parse(doc.as_bytes(), &Limits::default()).map(|d| d.registrations.len());
        assert_eq!(got, want, "{what}");
    }
}
