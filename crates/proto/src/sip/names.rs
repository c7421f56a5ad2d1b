//! Method and header-name vocabularies: the enums, their text, and name lookup (full and
//! compact forms, any case). Pure tables; never touches message bytes.

/// Request methods. Extension methods are kept as `Other` (their text is in the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Register,
    Subscribe,
    Notify,
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Message,
    Prack,
    Update,
    Info,
    Refer,
    Publish,
    Other,
}

impl Method {
    /// Methods are case-sensitive (RFC 3261 §7.1): `register` is an extension method.
    pub fn from_text(s: &str) -> Method {
        match s {
            "REGISTER" => Method::Register,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "MESSAGE" => Method::Message,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "INFO" => Method::Info,
            "REFER" => Method::Refer,
            "PUBLISH" => Method::Publish,
            _ => Method::Other,
        }
    }
    /// Canonical text; `None` for `Other`.
    pub fn as_str(self) -> Option<&'static str> {
        Some(match self {
            Method::Register => "REGISTER",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Message => "MESSAGE",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Publish => "PUBLISH",
            Method::Other => return None,
        })
    }
}

/// Header names the gateway reads. Lookup accepts full and compact forms in any case
/// (`Via`/`v`, `Contact`/`m`, `From`/`f`, `To`/`t`, `Call-ID`/`i`, `Content-Length`/`l`,
/// `Content-Type`/`c`, `Event`/`o`, `Supported`/`k`, `Subject`/`s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    Expires,
    MaxForwards,
    Route,
    RecordRoute,
    Path,
    ServiceRoute,
    PAssociatedUri,
    PAssertedIdentity,
    Event,
    SubscriptionState,
    ContentType,
    ContentLength,
    Accept,
    Require,
    ProxyRequire,
    Supported,
    Allow,
    Unsupported,
    Other,
}

/// Number of `HeaderName` variants (size of per-kind tables).
pub(crate) const KINDS: usize = HeaderName::Other as usize + 1;

/// Every full name we classify: the oracle for `from_name`'s dispatch (tests).
#[cfg(test)]
const TABLE: &[(&str, HeaderName)] = &[
    ("via", HeaderName::Via),
    ("from", HeaderName::From),
    ("to", HeaderName::To),
    ("call-id", HeaderName::CallId),
    ("cseq", HeaderName::CSeq),
    ("contact", HeaderName::Contact),
    ("expires", HeaderName::Expires),
    ("max-forwards", HeaderName::MaxForwards),
    ("route", HeaderName::Route),
    ("record-route", HeaderName::RecordRoute),
    ("path", HeaderName::Path),
    ("service-route", HeaderName::ServiceRoute),
    ("p-associated-uri", HeaderName::PAssociatedUri),
    ("p-asserted-identity", HeaderName::PAssertedIdentity),
    ("event", HeaderName::Event),
    ("subscription-state", HeaderName::SubscriptionState),
    ("content-type", HeaderName::ContentType),
    ("content-length", HeaderName::ContentLength),
    ("accept", HeaderName::Accept),
    ("require", HeaderName::Require),
    ("proxy-require", HeaderName::ProxyRequire),
    ("supported", HeaderName::Supported),
    ("allow", HeaderName::Allow),
    ("unsupported", HeaderName::Unsupported),
];

impl HeaderName {
    /// Classify a header name as written (any case, full or compact form).
    pub fn from_name(name: &str) -> HeaderName {
        if let [c] = name.as_bytes() {
            return match c.to_ascii_lowercase() {
                b'v' => HeaderName::Via,
                b'f' => HeaderName::From,
                b't' => HeaderName::To,
                b'i' => HeaderName::CallId,
                b'm' => HeaderName::Contact,
                b'l' => HeaderName::ContentLength,
                b'c' => HeaderName::ContentType,
                b'o' => HeaderName::Event,
                b'k' => HeaderName::Supported,
                _ => HeaderName::Other,
            };
        }
        // (length, first, last) picks the one candidate; then one comparison.
        let b = name.as_bytes();
        let (Some(&f), Some(&l)) = (b.first(), b.last()) else {
            return HeaderName::Other;
        };
        use HeaderName as H;
        let (full, h) = match (b.len(), f.to_ascii_lowercase(), l.to_ascii_lowercase()) {
            (2, b't', b'o') => ("to", H::To),
            (3, b'v', b'a') => ("via", H::Via),
            (4, b'f', b'm') => ("from", H::From),
            (4, b'c', b'q') => ("cseq", H::CSeq),
            (4, b'p', b'h') => ("path", H::Path),
            (5, b'r', b'e') => ("route", H::Route),
            (5, b'e', b't') => ("event", H::Event),
            (5, b'a', b'w') => ("allow", H::Allow),
            (6, b'a', b't') => ("accept", H::Accept),
            (7, b'c', b'd') => ("call-id", H::CallId),
            (7, b'c', b't') => ("contact", H::Contact),
            (7, b'e', b's') => ("expires", H::Expires),
            (7, b'r', b'e') => ("require", H::Require),
            (9, b's', b'd') => ("supported", H::Supported),
            (11, b'u', b'd') => ("unsupported", H::Unsupported),
            (12, b'm', b's') => ("max-forwards", H::MaxForwards),
            (12, b'r', b'e') => ("record-route", H::RecordRoute),
            (12, b'c', b'e') => ("content-type", H::ContentType),
            (13, b's', b'e') => ("service-route", H::ServiceRoute),
            (13, b'p', b'e') => ("proxy-require", H::ProxyRequire),
            (14, b'c', b'h') => ("content-length", H::ContentLength),
            (16, b'p', b'i') => ("p-associated-uri", H::PAssociatedUri),
            (18, b's', b'e') => ("subscription-state", H::SubscriptionState),
            (19, b'p', b'y') => ("p-asserted-identity", H::PAssertedIdentity),
            _ => return H::Other,
        };
        // `full` is lower case and as long as `name` (the dispatch matched the length): one
        // pass over every byte without an early exit, which the compiler vectorizes.
        let differs = b
            .iter()
            .zip(full.as_bytes())
            .fold(0u8, |d, (&x, &y)| d | (x.to_ascii_lowercase() ^ y));
        if differs == 0 {
            h
        } else {
            H::Other
        }
    }
    /// Canonical full name (`"Call-ID"`, ...); `None` for `Other`.
    pub fn as_str(self) -> Option<&'static str> {
        Some(match self {
            HeaderName::Via => "Via",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::CallId => "Call-ID",
            HeaderName::CSeq => "CSeq",
            HeaderName::Contact => "Contact",
            HeaderName::Expires => "Expires",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::Route => "Route",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::Path => "Path",
            HeaderName::ServiceRoute => "Service-Route",
            HeaderName::PAssociatedUri => "P-Associated-URI",
            HeaderName::PAssertedIdentity => "P-Asserted-Identity",
            HeaderName::Event => "Event",
            HeaderName::SubscriptionState => "Subscription-State",
            HeaderName::ContentType => "Content-Type",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::Accept => "Accept",
            HeaderName::Require => "Require",
            HeaderName::ProxyRequire => "Proxy-Require",
            HeaderName::Supported => "Supported",
            HeaderName::Allow => "Allow",
            HeaderName::Unsupported => "Unsupported",
            HeaderName::Other => return None,
        })
    }
}

/// Name of a single-valued header (must not repeat), `None` for list headers.
pub(crate) fn single_name(kind: HeaderName) -> Option<&'static str> {
    match kind {
        HeaderName::CallId
        | HeaderName::From
        | HeaderName::To
        | HeaderName::CSeq
        | HeaderName::MaxForwards
        | HeaderName::ContentLength => kind.as_str(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case() {
        assert_eq!(HeaderName::from_name("v"), HeaderName::Via);
        assert_eq!(
            HeaderName::from_name("MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_name("L"), HeaderName::ContentLength);
        assert_eq!(HeaderName::from_name("s"), HeaderName::Other);
        assert_eq!(HeaderName::from_name("C%6Fntact"), HeaderName::Other);
        assert_eq!(Method::from_text("RE%47IST%45R"), Method::Other);
        assert_eq!(Method::from_text("REGISTER").as_str(), Some("REGISTER"));
    }

    #[test]
    fn every_full_name_in_any_case_and_near_misses() {
        for &(name, kind) in TABLE {
            assert_eq!(HeaderName::from_name(name), kind, "{name}");
            assert_eq!(HeaderName::from_name(&name.to_uppercase()), kind, "{name}");
            assert_eq!(kind.as_str().map(HeaderName::from_name), Some(kind));
            // Same length, first and last letter, one byte changed inside: not this header.
            if name.len() > 2 {
                let mut b = name.as_bytes().to_vec();
                b[1] = if b[1] == b'x' { b'y' } else { b'x' };
                let other = String::from_utf8(b).unwrap();
                assert_eq!(HeaderName::from_name(&other), HeaderName::Other, "{other}");
            }
            assert_eq!(
                HeaderName::from_name(&format!("{name}s")),
                HeaderName::Other
            );
        }
        assert_eq!(HeaderName::from_name(""), HeaderName::Other);
    }
}
