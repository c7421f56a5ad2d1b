//! Writing reginfo documents (the emulated notifier's bodies, test fixtures).

use regevent_proto::sip::writer::push_decimal;

/// One registration of a document.
#[derive(Debug, Clone)]
pub struct DocRegistration<'a> {
    pub aor: &'a str,
    pub id: &'a str,
    pub state: &'a str,
    /// (id, state, event, uri, expires)
    pub contacts: &'a [DocContact<'a>],
}

/// (id, state, event, uri, expires)
pub type DocContact<'a> = (&'a str, &'a str, &'a str, &'a str, Option<u32>);

/// Render a reginfo document.
pub fn render(version: u64, full: bool, regs: &[DocRegistration<'_>]) -> String {
    let mut s = String::with_capacity(256 + regs.len() * 256);
    render_into(&mut s, version, full, regs);
    s
}

/// [`render`] appended to `s` (a buffer kept between documents).
pub fn render_into(s: &mut String, version: u64, full: bool, regs: &[DocRegistration<'_>]) {
    s.push_str(
        "<?xml version=\"1.0\"?>\n<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"",
    );
    push_decimal(s, version);
    s.push_str(if full {
        "\" state=\"full\">\n"
    } else {
        "\" state=\"partial\">\n"
    });
    for r in regs {
        s.push_str(" <registration aor=\"");
        push_esc(s, r.aor);
        s.push_str("\" id=\"");
        push_esc(s, r.id);
        s.push_str("\" state=\"");
        s.push_str(r.state);
        s.push_str("\">\n");
        for (id, st, ev, uri, exp) in r.contacts {
            s.push_str("  <contact id=\"");
            push_esc(s, id);
            s.push_str("\" state=\"");
            s.push_str(st);
            s.push_str("\" event=\"");
            s.push_str(ev);
            s.push('"');
            if let Some(e) = exp {
                s.push_str(" expires=\"");
                push_decimal(s, u64::from(*e));
                s.push('"');
            }
            s.push_str("><uri>");
            push_esc(s, uri);
            s.push_str("</uri></contact>\n");
        }
        s.push_str(" </registration>\n");
    }
    s.push_str("</reginfo>\n");
}

/// `v` with the XML specials (`& < > "`) escaped, appended to `out`.
fn push_esc(out: &mut String, v: &str) {
    let mut rest = v;
    while let Some(i) = rest.find(['&', '<', '>', '"']) {
        out.push_str(&rest[..i]);
        out.push_str(match rest.as_bytes()[i] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            _ => "&quot;",
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specials_are_escaped_and_the_document_parses_back() {
        let mut out = String::new();
        push_esc(&mut out, "a&b<c>\"d\"");
        assert_eq!(out, "a&amp;b&lt;c&gt;&quot;d&quot;");
        let doc = render(
            3,
            true,
            &[DocRegistration {
                aor: "sip:a&b@x",
                id: "r0",
                state: "active",
                contacts: &[("c0", "active", "registered", "sip:u@h;p=<1>", Some(60))],
            }],
        );
        assert_eq!(
            doc,
            "<?xml version=\"1.0\"?>\n\
             <reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"3\" state=\"full\">\n \
             <registration aor=\"sip:a&amp;b@x\" id=\"r0\" state=\"active\">\n  \
             <contact id=\"c0\" state=\"active\" event=\"registered\" expires=\"60\">\
             <uri>sip:u@h;p=&lt;1&gt;</uri></contact>\n \
             </registration>\n\
             </reginfo>\n"
        );
        let parsed = regevent_proto::reginfo::parse(doc.as_bytes(), &Default::default()).unwrap();
        assert_eq!(parsed.version, 3);
        assert_eq!(&*parsed.registrations[0].aor, "sip:a&b@x");
        assert_eq!(&*parsed.registrations[0].contacts[0].uri, "sip:u@h;p=<1>");
    }
}
