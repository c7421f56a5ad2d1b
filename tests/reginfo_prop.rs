//! Property tests for the reginfo parser: arbitrary bytes and mutated corpus documents never
//! panic (any outcome is fine), and generated documents survive serialize → parse unchanged,
//! whatever prefixes, escapes and foreign noise the small writer below puts in.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use regevent_gw::reginfo::{
    parse, Contact, ContactEvent, ContactState, DocState, Limits, RegState, Reginfo, Registration,
};

// ---------------------------------------------------------------------------------------------
// No panics.

fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reginfo"));
        let mut docs: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "xml"))
            .collect();
        docs.sort();
        docs.into_iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
}

fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..4),
        prop::sample::select(vec![
            "<",
            ">",
            "&",
            "&foo;",
            "&amp;",
            "&#0;",
            "&#x110000;",
            "&#65;",
            "<!DOCTYPE x>",
            "<a>",
            "</a>",
            "<x:a xmlns:x='urn:x'>",
            "\"",
            "'",
            "]]>",
            "<![CDATA[",
            "<!--",
            "-->",
            "<?pi?>",
            "<?xml version='1.0'?>",
            " xmlns=''",
            " xmlns:r='urn:ietf:params:xml:ns:reginfo'",
            "<contact id='z' state='active' event='registered'>",
            "</contact>",
            "<uri>",
            "</uri>",
            "\u{fffe}",
            "\u{0}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), fragment()).prop_map(|(i, f)| Mutation::Insert(i, f)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
    ]
}

fn apply(doc: &mut Vec<u8>, m: &Mutation) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
    match m {
        Mutation::Flip(i, b) if !doc.is_empty() => {
            let i = i % doc.len();
            doc[i] ^= b | 1;
        }
        Mutation::Flip(..) => {}
        Mutation::Truncate(i) => doc.truncate(at(*i, doc.len())),
        Mutation::Insert(i, f) => {
            let i = at(*i, doc.len());
            doc.splice(i..i, f.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let i = at(*i, doc.len());
            let end = (i + n).min(doc.len());
            doc.drain(i..end);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&body, &Limits::default());
    }

    #[test]
    fn arbitrary_text_never_panics(body in "[<>/=&;#\"' a-z:!?\\[\\]-]{0,200}") {
        let _ = parse(body.as_bytes(), &Limits::default());
    }

    #[test]
    fn mutated_corpus_never_panics(
        which in any::<prop::sample::Index>(),
        muts in prop::collection::vec(mutation(), 1..6),
        depth in 0usize..20,
    ) {
        let mut doc = which.get(corpus()).clone();
        for m in &muts {
            apply(&mut doc, m);
        }
        let _ = parse(&doc, &Limits { max_bytes: 1 << 20, max_depth: depth });
    }
}

// ---------------------------------------------------------------------------------------------
// Round trip.

/// A value as the parser returns it: no surrounding whitespace, no control characters, and
/// markup characters that the writer must escape.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9<>&\"'@:;=.+_ é€-]{1,16}"
        .prop_map(|s| s.trim().to_owned())
        .prop_filter("non-empty", |s| !s.is_empty())
}

fn event() -> impl Strategy<Value = ContactEvent> {
    prop_oneof![
        Just(ContactEvent::Registered),
        Just(ContactEvent::Created),
        Just(ContactEvent::Refreshed),
        Just(ContactEvent::Shortened),
        Just(ContactEvent::Expired),
        Just(ContactEvent::Deactivated),
        Just(ContactEvent::Probation),
        Just(ContactEvent::Unregistered),
        Just(ContactEvent::Rejected),
        "x-[a-z]{1,8}".prop_map(ContactEvent::Other),
    ]
}

prop_compose! {
    fn contact()(
        id in "[a-z0-9]{0,6}",
        active in any::<bool>(),
        event in event(),
        nums in (any::<Option<u32>>(), any::<Option<u32>>(), any::<Option<u32>>(), any::<Option<u32>>()),
        strs in (prop::option::of(text()), prop::option::of(text()), prop::option::of(text())),
        uri in text(),
        unknown_params in prop::collection::vec((text(), prop::option::of(text())), 0..4),
        pub_gruu in prop::option::of(text()),
        temp in prop::option::of((text(), any::<Option<u32>>())),
    ) -> Contact {
        Contact {
            id,
            state: if active { ContactState::Active } else { ContactState::Terminated },
            event,
            expires: nums.0,
            retry_after: nums.1,
            duration_registered: nums.2,
            q: strs.0,
            callid: strs.1,
            cseq: nums.3,
            uri,
            display_name: strs.2,
            unknown_params,
            pub_gruu,
            temp_gruu: temp.as_ref().map(|t| t.0.clone()),
            temp_gruu_first_cseq: temp.and_then(|t| t.1),
        }
    }
}

prop_compose! {
    fn registration()(
        aor in text(),
        id in text(),
        state in prop::sample::select(vec![RegState::Init, RegState::Active, RegState::Terminated]),
        contacts in prop::collection::vec(contact(), 0..4),
        wildcarded_identity in prop::option::of(text()),
    ) -> Registration {
        // Contact ids are unique within a registration (a repeated one is a contradictory
        // document, refused: `tests/reginfo_corpus.rs`).
        let mut contacts = contacts;
        for (i, c) in contacts.iter_mut().enumerate() {
            c.id = format!("{}{i}", c.id);
        }
        Registration { aor, id, state, contacts, wildcarded_identity }
    }
}

prop_compose! {
    fn reginfo()(
        version in any::<u32>(),
        full in any::<bool>(),
        registrations in prop::collection::vec(registration(), 0..5),
    ) -> Reginfo {
        // AORs and registration ids are unique in a document (see above).
        let mut registrations = registrations;
        for (i, r) in registrations.iter_mut().enumerate() {
            r.aor = format!("{}{i}", r.aor);
            r.id = format!("{}{i}", r.id);
        }
        Reginfo { version: u64::from(version), state: if full { DocState::Full } else { DocState::Partial }, registrations }
    }
}

/// How the writer spells the document.
#[derive(Debug, Clone)]
struct Style {
    /// Prefix for reginfo elements (`""`: default namespace).
    prefix: &'static str,
    gruu_prefix: &'static str,
    /// Foreign elements, attributes, comments and character references sprinkled in.
    noise: bool,
}

fn style() -> impl Strategy<Value = Style> {
    (
        prop::sample::select(vec!["", "r:", "reginfo:", "ns0:"]),
        prop::sample::select(vec!["gr:", "g:", "gruu:"]),
        any::<bool>(),
    )
        .prop_map(|(prefix, gruu_prefix, noise)| Style {
            prefix,
            gruu_prefix,
            noise,
        })
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            'é' => out.push_str("&#233;"),
            c => out.push(c),
        }
    }
    out
}

struct W<'a> {
    out: String,
    st: &'a Style,
}

impl W<'_> {
    fn attr(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            write!(self.out, " {name}=\"{}\"", esc(v)).unwrap();
        }
    }

    fn num(&mut self, name: &str, value: Option<u32>) {
        self.attr(name, value.map(|v| v.to_string()).as_deref());
    }

    fn noise(&mut self) {
        if self.st.noise {
            self.out
                .push_str("<!-- n --><v:x xmlns:v=\"urn:vendor\" a=\"&amp;\"><v:y/>t</v:x>");
        }
    }

    fn text_el(&mut self, name: &str, text: &str) {
        let p = self.st.prefix;
        write!(self.out, "<{p}{name}>{}</{p}{name}>", esc(text)).unwrap();
    }

    fn contact(&mut self, c: &Contact) {
        let p = self.st.prefix;
        write!(self.out, "<{p}contact").unwrap();
        self.attr("id", Some(&c.id));
        self.attr(
            "state",
            Some(if c.state == ContactState::Active {
                "active"
            } else {
                "terminated"
            }),
        );
        let ev = match &c.event {
            ContactEvent::Registered => "registered",
            ContactEvent::Created => "created",
            ContactEvent::Refreshed => "refreshed",
            ContactEvent::Shortened => "shortened",
            ContactEvent::Expired => "expired",
            ContactEvent::Deactivated => "deactivated",
            ContactEvent::Probation => "probation",
            ContactEvent::Unregistered => "unregistered",
            ContactEvent::Rejected => "rejected",
            ContactEvent::Other(s) => s,
        };
        self.attr("event", Some(ev));
        self.num("expires", c.expires);
        self.num("retry-after", c.retry_after);
        self.num("duration-registered", c.duration_registered);
        self.attr("q", c.q.as_deref());
        self.attr("callid", c.callid.as_deref());
        self.num("cseq", c.cseq);
        if self.st.noise {
            self.out.push_str(" vendor=\"x\"");
        }
        self.out.push('>');
        self.noise();
        self.text_el("uri", &c.uri);
        if let Some(d) = &c.display_name {
            self.text_el("display-name", d);
        }
        for (name, value) in &c.unknown_params {
            write!(self.out, "<{p}unknown-param").unwrap();
            self.attr("name", Some(name));
            match value {
                Some(v) => write!(self.out, ">{}</{p}unknown-param>", esc(v)).unwrap(),
                None => self.out.push_str("/>"),
            }
        }
        let g = self.st.gruu_prefix;
        if let Some(u) = &c.pub_gruu {
            write!(self.out, "<{g}pub-gruu").unwrap();
            self.attr("uri", Some(u));
            self.out.push_str("/>");
        }
        if let Some(u) = &c.temp_gruu {
            write!(self.out, "<{g}temp-gruu").unwrap();
            self.attr("uri", Some(u));
            self.num("first-cseq", c.temp_gruu_first_cseq);
            self.out.push_str("/>");
        }
        write!(self.out, "</{p}contact>").unwrap();
    }

    fn document(mut self, d: &Reginfo) -> String {
        let p = self.st.prefix;
        let g = self.st.gruu_prefix.trim_end_matches(':');
        let decl = match p {
            "" => String::from("xmlns"),
            p => format!("xmlns:{}", p.trim_end_matches(':')),
        };
        write!(
            self.out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{p}reginfo {decl}=\"urn:ietf:params:xml:ns:reginfo\" \
             xmlns:{g}=\"urn:ietf:params:xml:ns:gruuinfo\" xmlns:ere=\"urn:3gpp:ns:extRegExp:1.0\""
        )
        .unwrap();
        self.attr("version", Some(&d.version.to_string()));
        self.attr(
            "state",
            Some(if d.state == DocState::Full {
                "full"
            } else {
                "partial"
            }),
        );
        self.out.push_str(">\n");
        for r in &d.registrations {
            write!(self.out, "<{p}registration").unwrap();
            self.attr("aor", Some(&r.aor));
            self.attr("id", Some(&r.id));
            let st = match r.state {
                RegState::Init => "init",
                RegState::Active => "active",
                RegState::Terminated => "terminated",
            };
            self.attr("state", Some(st));
            self.out.push_str(">\n");
            self.noise();
            if let Some(w) = &r.wildcarded_identity {
                write!(
                    self.out,
                    "<ere:wildcardedIdentity>{}</ere:wildcardedIdentity>",
                    esc(w)
                )
                .unwrap();
            }
            for c in &r.contacts {
                self.contact(c);
                self.out.push('\n');
            }
            writeln!(self.out, "</{p}registration>").unwrap();
        }
        writeln!(self.out, "</{p}reginfo>").unwrap();
        self.out
    }
}

fn serialize(d: &Reginfo, st: &Style) -> String {
    W {
        out: String::new(),
        st,
    }
    .document(d)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(doc in reginfo(), st in style()) {
        let xml = serialize(&doc, &st);
        let parsed = parse(xml.as_bytes(), &Limits::default());
        prop_assert_eq!(parsed.as_ref(), Ok(&doc), "{}", xml);
    }
}
