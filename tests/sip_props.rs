//! Property tests for the SIP layer: splice edits round-trip byte for byte (insert then remove
//! gives back the input), and no input makes the parser, the framer, the URI / name-addr / Via
//! parsers or the raw error writer panic.

use bytes::Bytes;
use proptest::prelude::*;
use regevent_gw::sip::framer::check_stream;
use regevent_gw::sip::writer::error_response_from_raw;
use regevent_gw::sip::{
    CSeq, HeaderName, Limits, Message, NameAddr, Params, SubscriptionState, Uri, Via,
};

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,11}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}(\\.[a-z][a-z0-9-]{0,8}){0,3}",
        (0u8..=255, 0u8..=255, 0u8..=255, 0u8..=255)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| format!("[2001:db8::{a:x}:{b:x}]")),
    ]
}

/// `;name`, `;name=token` or `;name="quoted, with ; specials"`, with optional LWS.
fn params() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just(None),
        token().prop_map(Some),
        "[ -!#-\\[\\]-~]{0,12}".prop_map(|q| Some(format!("\"{q}\""))),
    ];
    prop::collection::vec((token(), value, prop::bool::ANY), 0..4).prop_map(|ps| {
        ps.into_iter()
            .map(|(n, v, sp)| {
                let ws = if sp { " " } else { "" };
                match v {
                    Some(v) => format!("{ws};{ws}{n}{ws}={ws}{v}"),
                    None => format!(";{n}"),
                }
            })
            .collect()
    })
}

/// URI parameters: no quotes, no white space.
fn uri_params() -> impl Strategy<Value = String> {
    prop::collection::vec((token(), prop::option::of(token())), 0..4).prop_map(|ps| {
        ps.into_iter()
            .map(|(n, v)| v.map_or_else(|| format!(";{n}"), |v| format!(";{n}={v}")))
            .collect()
    })
}

fn via_value() -> impl Strategy<Value = String> {
    (
        prop_oneof!["UDP", "TCP", "TLS", "SCTP", "WS"],
        host(),
        prop::option::of(1u16..),
        params(),
    )
        .prop_map(|(t, h, p, ps)| match p {
            Some(p) => format!("SIP/2.0/{t} {h}:{p};branch=z9hG4bK1{ps}"),
            None => format!("SIP/2.0/{t} {h};branch=z9hG4bK1{ps}"),
        })
}

fn contact_value() -> impl Strategy<Value = String> {
    (
        token(),
        host(),
        uri_params(),
        params(),
        prop::option::of("[ -!#-\\[\\]-~]{0,10}"),
    )
        .prop_map(|(u, h, uri_p, hdr_p, display)| match display {
            Some(d) => format!("\"{d}\" <sip:{u}@{h}{uri_p}>{hdr_p}"),
            None => format!("<sip:{u}@{h}{uri_p}>{hdr_p}"),
        })
}

fn message(vias: Vec<String>, contact: String, other: String) -> String {
    let mut s = String::from("REGISTER sip:ims.example.net SIP/2.0\r\n");
    for v in vias {
        s.push_str(&format!("Via: {v}\r\n"));
    }
    s.push_str("Max-Forwards: 70\r\nFrom: <sip:a@ims.example.net>;tag=1\r\nTo: <sip:a@ims.example.net>\r\n");
    s.push_str(&format!(
        "Call-ID: prop@h\r\nCSeq: 1 REGISTER\r\nContact: {contact}\r\nX-Other: {other}\r\n"
    ));
    s.push_str("Route: <sip:p.example.net;lr>\r\nContent-Length: 0\r\n\r\n");
    s
}

fn parse(b: &[u8]) -> Message {
    Message::parse(Bytes::copy_from_slice(b), &Limits::default()).expect("generated message parses")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn insert_then_remove_via_roundtrips(
        vias in prop::collection::vec(via_value(), 1..3),
        new in via_value(),
        contact in contact_value(),
        other in "[ -~]{0,30}",
    ) {
        let orig = message(vias, contact, other);
        let m = parse(orig.as_bytes());
        let pushed = m.edit().insert_header(HeaderName::Via, "Via", &new).finish();
        let m2 = parse(&pushed);
        prop_assert_eq!(m2.header_values(HeaderName::Via)[0], new.as_str());
        prop_assert_eq!(m2.call_id(), m.call_id());
        let popped = m2.edit().remove_top_via().finish();
        prop_assert_eq!(&popped[..], orig.as_bytes());
    }

    #[test]
    fn insert_then_remove_route_and_replace_contact_roundtrip(
        h in host(), ps in uri_params(), contact in contact_value(), other_contact in contact_value(),
    ) {
        let orig = message(vec!["SIP/2.0/UDP h;branch=z9hG4bK1".into()], contact.clone(), "x".into());
        let m = parse(orig.as_bytes());
        let route = format!("<sip:{h};lr{ps}>");
        let with = m.edit().insert_header(HeaderName::Route, "Route", &route).finish();
        let m2 = parse(&with);
        prop_assert_eq!(m2.header_values(HeaderName::Route)[0], route.as_str());
        prop_assert_eq!(&m2.edit().remove_first_route().finish()[..], orig.as_bytes());

        let swapped = m.edit().replace_value(HeaderName::Contact, 0, &other_contact).finish();
        let m3 = parse(&swapped);
        prop_assert!(m3.contacts().is_ok());
        prop_assert_eq!(&m3.edit().replace_value(HeaderName::Contact, 0, &contact).finish()[..], orig.as_bytes());
    }

    #[test]
    fn generated_values_parse(via in via_value(), contact in contact_value(), ps in params()) {
        prop_assert!(Via::parse(&via).is_ok(), "{}", via);
        prop_assert!(NameAddr::parse(&contact).is_ok(), "{}", contact);
        prop_assert!(Params::parse(&ps).is_ok(), "{}", ps);
    }

    #[test]
    fn arbitrary_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..512)) {
        let limits = Limits::default();
        let _ = check_stream(&raw, &limits);
        let _ = error_response_from_raw(&raw, 400, "Bad Request");
        if let Ok(m) = Message::parse(Bytes::from(raw), &limits) {
            let _ = (m.vias(), m.contacts(), m.expires(), m.max_forwards(), m.top_via());
            let _ = m.edit().remove_top_via().set_max_forwards(1).ensure_content_length().finish();
        }
    }

    #[test]
    fn mutated_messages_never_panic(
        vias in prop::collection::vec(via_value(), 1..3),
        contact in contact_value(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut raw = message(vias, contact, "y".into()).into_bytes();
        for (at, byte, op) in edits {
            let i = at.index(raw.len());
            match op {
                0 => raw[i] = byte,
                1 => raw.insert(i, byte),
                _ => { raw.remove(i); }
            }
        }
        let limits = Limits::default();
        let _ = check_stream(&raw, &limits);
        let _ = error_response_from_raw(&raw, 400, "Bad Request");
        if let Ok(m) = Message::parse(Bytes::from(raw), &limits) {
            let _ = (m.vias(), m.contacts(), m.from().uri(), m.to().tag());
            let out = m.edit()
                .insert_header(HeaderName::Via, "Via", "SIP/2.0/UDP gw;branch=z9hG4bKx")
                .set_top_via_received("192.0.2.1", Some(5060))
                .finish();
            let again = Message::parse(out, &limits);
            prop_assert!(again.is_ok(), "{:?}", again.err());
            prop_assert_eq!(again.map(|a| a.call_id().to_string()).ok(), Some(m.call_id().to_string()));
        }
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,64}", t in "[ -~\\r\\n\\t]{0,64}") {
        for x in [s.as_str(), t.as_str()] {
            let _ = Uri::parse(x);
            let _ = NameAddr::parse(x);
            let _ = Via::parse(x);
            let _ = Params::parse(x);
            let _ = CSeq::parse(x);
            let _ = SubscriptionState::parse(x);
            let _ = Params(x).get("tag");
        }
    }
}
