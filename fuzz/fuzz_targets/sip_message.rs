//! Fuzz the SIP layer: arbitrary bytes as a datagram, a stream frame and a URI; whatever parses
//! is edited like a forwarded request and must re-parse with the same Call-ID.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use regevent_gw::sip::framer::check_stream;
use regevent_gw::sip::{Frame, HeaderName, Limits, Message, NameAddr, Uri, Via};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(Frame::Message(n)) = check_stream(data, &limits) {
        assert!(n <= data.len());
        let _ = Message::parse(Bytes::copy_from_slice(&data[..n]), &limits);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = Uri::parse(s);
        let _ = NameAddr::parse(s);
        let _ = Via::parse(s);
    }
    let _ = regevent_gw::sip::writer::error_response_from_raw(data, 400, "Bad Request");
    if let Ok(m) = Message::parse(Bytes::copy_from_slice(data), &limits) {
        let _ = (
            m.vias(),
            m.contacts(),
            m.expires(),
            m.from().uri(),
            m.to().uri(),
        );
        let out = m
            .edit()
            .insert_header(
                HeaderName::Via,
                "Via",
                "SIP/2.0/UDP fuzz.invalid;branch=z9hG4bKfuzz",
            )
            .set_max_forwards(
                m.max_forwards()
                    .ok()
                    .flatten()
                    .map_or(70, |n| n.saturating_sub(1)),
            )
            .set_top_via_received("192.0.2.1", Some(5060))
            .finish();
        // Room for the one line we added, so a message right at a limit still re-parses.
        let roomy = Limits {
            max_message: limits.max_message + 256,
            max_header_bytes: limits.max_header_bytes + 256,
            max_headers: limits.max_headers + 2,
        };
        let again = Message::parse(out, &roomy).expect("edited message re-parses");
        assert_eq!(again.call_id(), m.call_id());
    }
});
