//! Unit tests for the typed header helpers (Params, NameAddr, Via, CSeq, Contacts, Expires,
//! Subscription-State).

use super::*;

#[test]
fn params_get_iter_case_quotes() {
    let p = Params(";Tag=abc ; lr;q=0.5;+sip.instance=\"<urn:uuid:1;x>\"");
    assert_eq!(p.get("tag"), Some(Some("abc")));
    assert_eq!(p.get("LR"), Some(None));
    assert_eq!(p.get("+sip.instance"), Some(Some("\"<urn:uuid:1;x>\"")));
    assert_eq!(p.get("missing"), None);
    let names: Vec<&str> = p.iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["Tag", "lr", "q", "+sip.instance"]);
    assert!(Params("").is_empty());
}

#[test]
fn params_validation() {
    assert!(Params::parse(";a=1;b").is_ok());
    assert!(Params::parse("  ;a = 1").is_ok());
    assert!(Params::parse(";;").is_err());
    assert!(Params::parse(";a=").is_err());
    assert!(Params::parse("x;a").is_err());
    assert!(Params::parse(";a=\"open").is_err());
    assert!(Params::parse(";a=b c").is_err());
    assert!(Params::parse(";=b").is_err());
}

#[test]
fn name_addr_quoted_display_and_tag() {
    let na =
        NameAddr::parse(r#""J Rosenberg \\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8"#)
            .unwrap();
    assert_eq!(na.display, Some(r#"J Rosenberg \\\""#));
    assert_eq!(na.uri, "sip:jdrosen@example.com");
    assert_eq!(na.tag(), Some("98asjd8"));
    let na = NameAddr::parse("\"Bell, Alexander\" <sip:a.g.bell@example.com>;tag=433423").unwrap();
    assert_eq!(na.display, Some("Bell, Alexander"));
    assert_eq!(na.tag(), Some("433423"));
}

#[test]
fn name_addr_token_display_and_addr_spec() {
    let na = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
    assert_eq!(na.display, Some("caller"));
    let na = NameAddr::parse("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
    assert_eq!(na.uri, "sip:+19725552222@gw1.example.net");
    assert_eq!(na.params.get("unknownparam"), Some(None));
    let na = NameAddr::parse("<sip:+19725552222@gw1.example.net;unknownparam>").unwrap();
    assert!(na.params.is_empty());
    assert_eq!(na.uri().unwrap().params.get("unknownparam"), Some(None));
    let na = NameAddr::parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
    assert_eq!(na.tag(), Some("1918181833n"));
    let na = NameAddr::parse("tel:+1-212-555-0100;tag=x").unwrap();
    assert_eq!(na.uri, "tel:+1-212-555-0100");
    assert_eq!(na.tag(), Some("x"));
}

#[test]
fn name_addr_rejects() {
    assert!(NameAddr::parse("\"Mr. J. User <sip:j.user@example.com>").is_err());
    assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err());
    assert!(NameAddr::parse("\"Watson, Thomas\" < sip:t.watson@example.org >").is_err());
    assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
    assert!(NameAddr::parse("\"Joe\" <sip:joe@example.org>;;;;").is_err());
    assert!(NameAddr::parse("<sip:a@b").is_err());
    assert!(NameAddr::parse("").is_err());
    assert!(NameAddr::parse("alan@jasomi.com").is_err());
}

#[test]
fn via_basic_rport_received() {
    let v =
        Via::parse("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport;received=10.0.0.1").unwrap();
    assert_eq!(
        (v.transport, v.host, v.port),
        ("UDP", "192.0.2.1", Some(5060))
    );
    assert_eq!(v.branch(), Some("z9hG4bK776"));
    assert_eq!(v.rport(), Some(None));
    assert_eq!(v.received(), Some("10.0.0.1"));
    let v = Via::parse("SIP/2.0/TCP host;rport=5070").unwrap();
    assert_eq!(v.rport(), Some(Some(5070)));
    assert_eq!(Via::parse("SIP/2.0/TCP host").unwrap().rport(), None);
}

#[test]
fn via_ipv6_and_lws() {
    let v = Via::parse("SIP/2.0/TLS [2001:db8::9:1]:5061;branch=z9hG4bKx").unwrap();
    assert_eq!((v.host, v.port), ("[2001:db8::9:1]", Some(5061)));
    let v = Via::parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
    assert_eq!((v.transport, v.host), ("UDP", "192.0.2.2"));
    let v =
        Via::parse("SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239").unwrap();
    assert_eq!(v.branch(), Some("z9hG4bK30239"));
    let v = Via::parse("SIP/2.0/UNKNOWN t4.example.com ; branch = x").unwrap();
    assert_eq!(v.transport, "UNKNOWN");
}

#[test]
fn via_rejects() {
    assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
    assert!(Via::parse("SIP/2.0/UDP").is_err());
    assert!(Via::parse("SIP/2.0/UDP host:99999").is_err());
    assert!(Via::parse("SIP/2.0/UDP host;rport=abc").is_err());
    assert!(Via::parse("SIP/7.0/UDP host").is_err());
    assert!(Via::parse("SIP/2.0/UDP [::1").is_err());
    assert!(Via::parse("SIP/2.0/UDPhost").is_err());
}

#[test]
fn cseq_parse() {
    assert_eq!(
        CSeq::parse("0009\r\n  INVITE").unwrap(),
        CSeq {
            seq: 9,
            method: "INVITE"
        }
    );
    assert_eq!(CSeq::parse("4294967295 REGISTER").unwrap().seq, u32::MAX);
    assert_eq!(
        CSeq::parse("4294967296 REGISTER"),
        Err(HeaderError::Range("CSeq"))
    );
    assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
    assert!(CSeq::parse("1").is_err());
    assert!(CSeq::parse("1REGISTER").is_err());
    assert!(CSeq::parse("x REGISTER").is_err());
    assert!(CSeq::parse("1 REGISTER extra").is_err());
}

#[test]
fn contacts_star_and_list() {
    assert_eq!(Contacts::from_values(&["*"]).unwrap(), Contacts::Star);
    assert!(Contacts::from_values(&["*", "<sip:a@b>"]).is_err());
    let vals = [
        "<sip:ue@[2001:db8::1]:5060;transport=tcp>;+sip.instance=\"<urn:gsma:imei:35-209900-176148-1>\";reg-id=1;expires=600",
        "\"Alice\" <sip:alice@10.0.0.1>;q=0.5",
    ];
    let Contacts::List(list) = Contacts::from_values(&vals).unwrap() else {
        panic!("list expected")
    };
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[0].params.get("+sip.instance"),
        Some(Some("\"<urn:gsma:imei:35-209900-176148-1>\""))
    );
    assert_eq!(list[0].params.get("reg-id"), Some(Some("1")));
    assert_eq!(list[0].expires(), Ok(Some(600)));
    assert_eq!(list[1].display, Some("Alice"));
    assert_eq!(Contacts::from_values(&[]).unwrap(), Contacts::List(vec![]));
}

#[test]
fn expires_values() {
    assert_eq!(delta_seconds(" 3600 ", "Expires"), Ok(3600));
    assert_eq!(delta_seconds("0", "Expires"), Ok(0));
    assert_eq!(
        delta_seconds("99999999999", "Expires"),
        Err(HeaderError::Range("Expires"))
    );
    assert_eq!(
        delta_seconds("-1", "Expires"),
        Err(HeaderError::Malformed("Expires"))
    );
    assert_eq!(
        delta_seconds("", "Expires"),
        Err(HeaderError::Malformed("Expires"))
    );
}

#[test]
fn subscription_state() {
    let s = SubscriptionState::parse("active;expires=600").unwrap();
    assert_eq!(
        (s.state, s.expires, s.reason, s.retry_after),
        ("active", Some(600), None, None)
    );
    let s = SubscriptionState::parse("terminated ; reason=timeout;retry-after=30").unwrap();
    assert_eq!(
        (s.state, s.reason, s.retry_after),
        ("terminated", Some("timeout"), Some(30))
    );
    assert_eq!(
        SubscriptionState::parse("pending").unwrap().state,
        "pending"
    );
    assert!(SubscriptionState::parse("").is_err());
    assert!(SubscriptionState::parse("active;expires=abc").is_err());
    assert!(SubscriptionState::parse("active;;").is_err());
}

/// The character-class checks written as branch-free folds give what the early-exit forms
/// they replaced gave.
mod class_check_equivalence {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn class_checks_match_the_early_exit_forms(
            v in proptest::collection::vec(prop_oneof![
                Just(b'.'), Just(b'-'), Just(b'_'), Just(b'a'), Just(b'Z'), Just(b'7'),
                Just(b' '), Just(b'\t'), Just(b'\r'), Just(b'\n'), Just(b'@'), any::<u8>(),
            ], 0..48),
        ) {
            let host_ok = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_');
            let dots = v.windows(2).any(|w| w == b"..");
            let want_host = !v.is_empty() && v.iter().all(host_ok) && !matches!(v[0], b'.' | b'-') && !dots;
            if let Ok(t) = std::str::from_utf8(&v) {
                if !t.starts_with('[') {
                    prop_assert_eq!(crate::sip::uri::check_host(t).is_ok(), want_host);
                }
                prop_assert_eq!(crate::sip::scan::is_token_str(t), !t.is_empty() && t.bytes().all(crate::sip::scan::is_token));
                prop_assert_eq!(crate::sip::scan::trim_lws(t), t.trim_matches(|c: char| c.is_ascii() && crate::sip::scan::is_lws(c as u8)));
            }
        }
    }
}
