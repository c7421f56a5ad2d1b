//! Corpus test for the reginfo parser: every document under `tests/reginfo/` has exactly one row in
//! [`cases`] stating its outcome (an `Ok` summary plus field checks, or the error variant).
//! Generated documents (500 registrations, over-size bodies, hostile shapes) are in
//! `reginfo_limits.rs`.

use std::path::Path;

use regevent_gw::reginfo::{
    parse, Contact, ContactEvent, ContactState, DocState, Limits, RegState, Reginfo, ReginfoError,
};

enum Expect {
    /// version, document state, number of registrations, further checks.
    Ok(u64, DocState, usize, fn(&Reginfo)),
    Err(ReginfoError),
}

use DocState::{Full, Partial};
use Expect::{Err as E, Ok as K};
use ReginfoError::*;

fn contact(d: &Reginfo, r: usize, c: usize) -> &Contact {
    &d.registrations[r].contacts[c]
}

fn one_contact(d: &Reginfo, state: ContactState, event: ContactEvent, expires: Option<u32>) {
    assert_eq!(d.registrations[0].contacts.len(), 1);
    let c = contact(d, 0, 0);
    assert_eq!((c.state, &c.event, c.expires), (state, &event, expires));
}

fn cases() -> Vec<(&'static str, Expect)> {
    vec![
        (
            "full_basic.xml",
            K(0, Full, 1, |d| {
                let r = &d.registrations[0];
                assert_eq!(
                    (r.aor.as_str(), r.id.as_str(), r.state),
                    ("sip:alice@ims.example.com", "a7", RegState::Active)
                );
                let c = contact(d, 0, 0);
                assert_eq!(c.id, "76");
                assert_eq!(
                    (c.state, &c.event),
                    (ContactState::Active, &ContactEvent::Registered)
                );
                assert_eq!(
                    (c.expires, c.duration_registered, c.cseq),
                    (Some(3600), Some(0), Some(2))
                );
                assert_eq!(
                    (c.q.as_deref(), c.callid.as_deref()),
                    (Some("0.8"), Some("9f8e7d@10.0.0.5"))
                );
                assert_eq!(c.uri, "sip:alice@10.0.0.5:5060");
                assert_eq!(
                    (c.retry_after, &c.display_name, &c.pub_gruu),
                    (None, &None, &None)
                );
            }),
        ),
        (
            "partial_refreshed.xml",
            K(17, Partial, 1, |d| {
                one_contact(d, ContactState::Active, ContactEvent::Refreshed, Some(3599))
            }),
        ),
        (
            "reg_init.xml",
            K(1, Full, 1, |d| {
                assert_eq!(d.registrations[0].state, RegState::Init);
                assert!(d.registrations[0].contacts.is_empty());
            }),
        ),
        (
            "reg_terminated.xml",
            K(42, Partial, 1, |d| {
                assert_eq!(d.registrations[0].state, RegState::Terminated);
                one_contact(
                    d,
                    ContactState::Terminated,
                    ContactEvent::Unregistered,
                    Some(0),
                );
            }),
        ),
        (
            "all_events.xml",
            K(5, Full, 1, |d| {
                use ContactEvent::*;
                let events: Vec<_> = d.registrations[0]
                    .contacts
                    .iter()
                    .map(|c| c.event.clone())
                    .collect();
                assert_eq!(
                    events,
                    [
                        Registered,
                        Created,
                        Refreshed,
                        Shortened,
                        Expired,
                        Deactivated,
                        Probation,
                        Unregistered,
                        Rejected
                    ]
                );
                assert_eq!(contact(d, 0, 5).retry_after, Some(120));
                assert_eq!(contact(d, 0, 8).state, ContactState::Terminated);
            }),
        ),
        (
            "event_created.xml",
            K(9, Partial, 1, |d| {
                one_contact(d, ContactState::Active, ContactEvent::Created, Some(1800))
            }),
        ),
        (
            "event_shortened.xml",
            K(9, Partial, 1, |d| {
                one_contact(d, ContactState::Active, ContactEvent::Shortened, Some(1800))
            }),
        ),
        (
            "event_expired.xml",
            K(9, Partial, 1, |d| {
                one_contact(d, ContactState::Terminated, ContactEvent::Expired, Some(0))
            }),
        ),
        (
            "event_deactivated.xml",
            K(9, Partial, 1, |d| {
                one_contact(
                    d,
                    ContactState::Terminated,
                    ContactEvent::Deactivated,
                    Some(0),
                );
                assert_eq!(contact(d, 0, 0).retry_after, Some(300));
            }),
        ),
        (
            "event_probation.xml",
            K(9, Partial, 1, |d| {
                one_contact(
                    d,
                    ContactState::Terminated,
                    ContactEvent::Probation,
                    Some(0),
                );
                assert_eq!(contact(d, 0, 0).retry_after, Some(300));
            }),
        ),
        (
            "event_rejected.xml",
            K(9, Partial, 1, |d| {
                one_contact(d, ContactState::Terminated, ContactEvent::Rejected, Some(0))
            }),
        ),
        (
            "event_unknown.xml",
            K(10, Partial, 1, |d| {
                one_contact(
                    d,
                    ContactState::Terminated,
                    ContactEvent::Other("x-moved-elsewhere".into()),
                    None,
                )
            }),
        ),
        (
            "no_expires.xml",
            K(2, Full, 1, |d| {
                let cs = &d.registrations[0].contacts;
                assert_eq!(cs.len(), 2);
                assert!(cs.iter().all(|c| c.expires.is_none()));
                assert_eq!(cs[1].event, ContactEvent::Created);
            }),
        ),
        (
            "prefix_r.xml",
            K(3, Full, 1, |d| {
                let c = contact(d, 0, 0);
                assert_eq!(
                    (c.uri.as_str(), c.display_name.as_deref()),
                    ("sip:frank@[2001:db8::5]", Some("Frank"))
                );
            }),
        ),
        (
            "mixed_prefixes.xml",
            K(4, Full, 1, |d| {
                let c = contact(d, 0, 0);
                assert_eq!(c.uri, "sip:gina@192.0.2.44");
                assert_eq!(c.param("REG-ID"), Some(Some("1")));
                assert_eq!(
                    c.pub_gruu.as_deref(),
                    Some(
                        "sip:gina@ims.example.com;gr=urn:uuid:00000000-0000-1000-8000-000000000001"
                    )
                );
            }),
        ),
        (
            "default_ns_redeclared.xml",
            K(6, Full, 1, |d| assert_eq!(d.registrations[0].id, "h")),
        ),
        (
            "foreign_same_local.xml",
            K(7, Full, 1, |d| {
                let r = &d.registrations[0];
                assert_eq!(
                    (r.aor.as_str(), r.contacts.len()),
                    ("sip:ivy@ims.example.com", 1)
                );
                let c = &r.contacts[0];
                assert_eq!(
                    (c.id.as_str(), c.uri.as_str()),
                    ("i1", "sip:ivy@192.0.2.60")
                );
                assert_eq!((&c.display_name, c.unknown_params.len()), (&None, 0));
            }),
        ),
        (
            "unknown_elements_attrs.xml",
            K(8, Full, 1, |d| {
                let r = &d.registrations[0];
                assert_eq!((r.id.as_str(), r.contacts.len()), ("j", 1));
                assert_eq!(r.contacts[0].uri, "sip:jack@192.0.2.70");
            }),
        ),
        (
            "sip_instance_regid.xml",
            K(11, Full, 1, |d| {
                let (a, b) = (contact(d, 0, 0), contact(d, 0, 1));
                assert_eq!(
                    a.param("+sip.instance"),
                    Some(Some("\"<urn:gsma:imei:35209900-176148-0>\""))
                );
                assert_eq!(a.param("reg-id"), Some(Some("1")));
                assert_eq!(a.param("audio"), Some(None));
                assert_eq!(a.unknown_params.len(), 4);
                assert_eq!(
                    b.param("+sip.instance"),
                    Some(Some("\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\""))
                );
                assert_eq!(
                    (b.param("reg-id"), b.param("video"), b.param("audio")),
                    (Some(Some("2")), Some(None), None)
                );
            }),
        ),
        (
            "gruu.xml",
            K(12, Full, 1, |d| {
                let c = contact(d, 0, 0);
                assert_eq!(
                    c.pub_gruu.as_deref(),
                    Some(
                        "sip:lee@ims.example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
                    )
                );
                assert_eq!(
                    c.temp_gruu.as_deref(),
                    Some("sip:tgruu.7hs==jd7vnzga5w7fajsc7-ajd6fabz0f8g5@ims.example.com;gr")
                );
                assert_eq!(
                    (c.temp_gruu_first_cseq, c.cseq, c.callid.as_deref()),
                    (Some(3), Some(5), Some("abc"))
                );
            }),
        ),
        (
            "ipv6.xml",
            K(13, Full, 1, |d| {
                assert_eq!(
                    contact(d, 0, 0).uri,
                    "sip:mia@[2001:db8:85a3::8a2e:370:7334]:5060;transport=tcp"
                );
                assert_eq!(contact(d, 0, 1).uri, "sips:mia@[fe80::1%25eth0]");
            }),
        ),
        (
            "tel_aor.xml",
            K(14, Full, 1, |d| {
                assert_eq!(d.registrations[0].aor, "tel:+15551234567");
                assert_eq!(
                    contact(d, 0, 0).uri,
                    "sip:+15551234567@192.0.2.100;user=phone"
                );
            }),
        ),
        (
            "implicit_set.xml",
            K(0, Full, 3, |d| {
                let aors: Vec<_> = d.registrations.iter().map(|r| r.aor.as_str()).collect();
                assert_eq!(
                    aors,
                    [
                        "sip:+15551230001@ims.example.com",
                        "tel:+15551230001",
                        "sip:user1@ims.example.com"
                    ]
                );
                for r in &d.registrations {
                    assert_eq!(r.contacts[0].uri, "sip:user1@[2001:db8::77]:5060");
                    assert_eq!(r.contacts[0].expires, Some(600000));
                }
            }),
        ),
        (
            "escaped.xml",
            K(15, Full, 1, |d| {
                let r = &d.registrations[0];
                assert_eq!(
                    (r.aor.as_str(), r.id.as_str()),
                    ("sip:n&o@ims.example.com", "n\"1'")
                );
                let c = &r.contacts[0];
                assert_eq!(c.callid.as_deref(), Some("a<b>c"));
                assert_eq!(c.uri, "sip:nAB@192.0.2.110;x=<1>");
                assert_eq!(c.display_name.as_deref(), Some("Nora <\"&\"> Smith"));
            }),
        ),
        (
            "comments_pi.xml",
            K(16, Full, 1, |d| {
                assert_eq!(contact(d, 0, 0).uri, "sip:olga@192.0.2.120")
            }),
        ),
        (
            "wildcarded.xml",
            K(18, Full, 1, |d| {
                let r = &d.registrations[0];
                assert_eq!(
                    r.wildcarded_identity.as_deref(),
                    Some("sip:pbx-!.*!@ims.example.com")
                );
                assert_eq!(r.contacts.len(), 1);
            }),
        ),
        (
            "display_name.xml",
            K(19, Full, 1, |d| {
                let c = contact(d, 0, 0);
                assert_eq!(
                    (c.display_name.as_deref(), c.uri.as_str()),
                    (Some("Pete  Müller"), "sip:pete@192.0.2.140")
                );
            }),
        ),
        ("decl_us_ascii.xml", K(1, Full, 1, |_| {})),
        ("decl_standalone.xml", K(1, Full, 1, |_| {})),
        // Malformed and hostile.
        ("err_truncated.xml", E(Xml)),
        ("err_truncated_tag.xml", E(Xml)),
        ("err_wrong_root.xml", E(Root)),
        ("err_root_no_ns.xml", E(Root)),
        ("err_root_unbound_prefix.xml", E(Root)),
        ("err_missing_version.xml", E(Missing("version"))),
        ("err_missing_state.xml", E(Missing("state"))),
        ("err_version_nonnumeric.xml", E(Invalid("version"))),
        ("err_version_negative.xml", E(Invalid("version"))),
        ("err_version_overflow.xml", E(Invalid("version"))),
        // xs:unsignedInt (RFC 3680 §5.1): 2^32 - 1 is the last version.
        ("err_version_over_32_bits.xml", E(Invalid("version"))),
        ("version_32_bit_max.xml", K(4_294_967_295, Full, 0, |_| {})),
        // Contradictory: two answers to one question.
        ("err_same_aor_twice.xml", E(Contradictory("aor twice"))),
        (
            "err_same_registration_id_twice.xml",
            E(Contradictory("registration id twice")),
        ),
        (
            "err_same_contact_id_twice.xml",
            E(Contradictory("contact id twice in a registration")),
        ),
        // Odd but unambiguous: a terminated contact whose event we do not know is still gone.
        (
            "terminated_contact_unknown_event.xml",
            K(1, Full, 1, |_| {}),
        ),
        ("err_bad_doc_state.xml", E(Invalid("state"))),
        (
            "err_missing_registration_id.xml",
            E(Missing("registration id")),
        ),
        (
            "err_bad_registration_state.xml",
            E(Invalid("registration state")),
        ),
        ("err_bad_contact_state.xml", E(Invalid("contact state"))),
        ("err_bad_expires.xml", E(Invalid("contact expires"))),
        ("err_missing_uri.xml", E(Missing("contact uri"))),
        ("err_missing_event.xml", E(Missing("contact event"))),
        ("err_billion_laughs.xml", E(Doctype)),
        ("err_xxe.xml", E(Doctype)),
        ("err_doctype_alone.xml", E(Doctype)),
        ("err_doctype_before_valid.xml", E(Doctype)),
        ("err_decl_utf16.xml", E(Encoding)),
        ("err_decl_iso8859.xml", E(Encoding)),
        ("err_utf16_bom.xml", E(Encoding)),
        ("err_invalid_utf8.xml", E(Encoding)),
        ("err_latin1_bytes.xml", E(Encoding)),
        ("err_undefined_entity.xml", E(Entity)),
        ("err_undefined_entity_attr.xml", E(Entity)),
        ("err_mismatched_end.xml", E(Xml)),
        ("err_two_roots.xml", E(Xml)),
        ("err_too_deep.xml", E(TooDeep)),
    ]
}

fn corpus_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reginfo"))
}

#[test]
fn corpus() {
    let cases = cases();
    let mut failures = Vec::new();
    for (file, expect) in &cases {
        let body = std::fs::read(corpus_dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let got = parse(&body, &Limits::default());
        match (expect, got) {
            (K(version, state, regs, check), Ok(doc)) => {
                assert_eq!(
                    (doc.version, doc.state, doc.registrations.len()),
                    (*version, *state, *regs),
                    "{file}"
                );
                if std::panic::catch_unwind(|| check(&doc)).is_err() {
                    failures.push(format!("{file}: field check failed"));
                }
            }
            (E(want), Err(got)) if *want == got => {}
            (K(..), Err(got)) => failures.push(format!("{file}: expected Ok, got {got:?}")),
            (E(want), got) => failures.push(format!("{file}: expected {want:?}, got {got:?}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Every shipped document has a row, and there are enough of them.
#[test]
fn corpus_is_complete() {
    let cases = cases();
    let mut listed: Vec<_> = cases.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".xml"))
        .collect();
    files.sort();
    assert_eq!(files, listed);
    assert!(files.len() >= 30);
}

/// Error reason phrases are short ASCII and never echo the input.
#[test]
fn error_display_is_a_reason_phrase() {
    for (file, expect) in cases() {
        if let E(err) = expect {
            let s = err.to_string();
            assert!(
                s.is_ascii() && s.len() < 64 && !s.contains('\n'),
                "{file}: {s}"
            );
            assert!(
                !s.contains("lol") && !s.contains("passwd") && !s.contains("foo"),
                "{file}: {s}"
            );
        }
    }
}
