//! The parser proper: the RFC 3680 §5.4 tree `reginfo ▶ registration ▶ contact`, with the
//! RFC 5628 GRUU elements and the 3GPP TS 24.229 wildcarded identity. Works on [`Item`]s from the
//! [`Cursor`], which has already refused anything hostile; elements of other namespaces, ours in
//! the wrong place, and unknown attributes are skipped.
//!
//! Owns: document structure and mandatory attributes. Never: limits and XML safety (see
//! `cursor`), value syntax (see `value`).

use quick_xml::events::BytesStart;

use super::cursor::{Cursor, Elem, Item};
use super::value::{self, check_attrs, for_each_attr, non_empty, number, owned, seconds};
use super::{Contact, ContactEvent, Limits, Reginfo, ReginfoError, Registration};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parse a reginfo document.
///
/// Checks, in order: size (`TooLarge`), UTF-8 (`Encoding`), then the XML itself.
pub fn parse(body: &[u8], limits: &Limits) -> Result<Reginfo, ReginfoError> {
    if body.len() > limits.max_bytes {
        return Err(ReginfoError::TooLarge);
    }
    let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
    let text = std::str::from_utf8(body).map_err(|_| ReginfoError::Encoding)?;
    let mut cur = Cursor::new(text, limits.max_depth);

    // The cursor passes over the prolog (declaration, comments, whitespace) by itself.
    let doc = match cur.next()? {
        Item::Open {
            name: Elem::Reginfo,
            start,
            empty,
        } => root(&mut cur, &start, empty)?,
        Item::Open { .. } => return Err(ReginfoError::Root),
        Item::Text(_) | Item::Space(_) | Item::Close | Item::Eof => return Err(ReginfoError::Xml),
    };
    // Only comments, processing instructions and whitespace may follow the root.
    match cur.next()? {
        Item::Eof => Ok(doc),
        _ => Err(ReginfoError::Xml),
    }
}

/// Walks the children of the element just opened, handing each to `child`; those it does not
/// take (it returns `false`, without having consumed anything) are checked and skipped.
fn children<'i>(
    cur: &mut Cursor<'i>,
    empty: bool,
    mut child: impl FnMut(&mut Cursor<'i>, Elem, &BytesStart<'i>, bool) -> Result<bool, ReginfoError>,
) -> Result<(), ReginfoError> {
    if empty {
        return Ok(());
    }
    loop {
        match cur.next()? {
            Item::Open { name, start, empty } => {
                if !child(cur, name, &start, empty)? {
                    check_attrs(&start)?;
                    if !empty {
                        cur.skip()?;
                    }
                }
            }
            Item::Text(_) | Item::Space(_) => {}
            Item::Close => return Ok(()),
            Item::Eof => return Err(ReginfoError::Xml),
        }
    }
}

/// Text content of the element just opened (`None` when empty).
fn text(cur: &mut Cursor<'_>, empty: bool) -> Result<Option<String>, ReginfoError> {
    if empty {
        return Ok(None);
    }
    let t = cur.text()?;
    Ok((!t.is_empty()).then_some(t))
}

fn root<'i>(
    cur: &mut Cursor<'i>,
    start: &BytesStart<'i>,
    empty: bool,
) -> Result<Reginfo, ReginfoError> {
    let (mut version, mut state) = (None, None);
    for_each_attr(start, |k, v| {
        match k {
            // xs:unsignedInt (RFC 3680 §5.1): 32 bits.
            "version" => version = Some(u64::from(number::<u32>(&v, "version")?)),
            "state" => state = Some(value::doc_state(&v)?),
            _ => {}
        }
        Ok(())
    })?;
    let version = version.ok_or(ReginfoError::Missing("version"))?;
    let state = state.ok_or(ReginfoError::Missing("state"))?;
    let mut registrations = Vec::new();
    children(cur, empty, |cur, name, start, empty| {
        if name != Elem::Registration {
            return Ok(false);
        }
        registrations.push(registration(cur, start, empty)?);
        Ok(true)
    })?;
    unambiguous(&registrations)?;
    Ok(Reginfo {
        version,
        state,
        registrations,
    })
}

/// A document that says two things about one thing is refused (and changes nothing): the same
/// AOR or the same registration id in two `<registration>`s, or the same contact id twice in a
/// registration. Odd but unambiguous documents pass.
fn unambiguous(regs: &[Registration]) -> Result<(), ReginfoError> {
    for (i, r) in regs.iter().enumerate() {
        let before = &regs[..i];
        if before.iter().any(|o| o.aor == r.aor) {
            return Err(ReginfoError::Contradictory("aor twice"));
        }
        if before.iter().any(|o| o.id == r.id) {
            return Err(ReginfoError::Contradictory("registration id twice"));
        }
        for (j, c) in r.contacts.iter().enumerate() {
            if r.contacts[..j].iter().any(|o| o.id == c.id) {
                return Err(ReginfoError::Contradictory(
                    "contact id twice in a registration",
                ));
            }
        }
    }
    Ok(())
}

fn registration<'i>(
    cur: &mut Cursor<'i>,
    start: &BytesStart<'i>,
    empty: bool,
) -> Result<Registration, ReginfoError> {
    let (mut aor, mut id, mut state) = (None, None, None);
    for_each_attr(start, |k, v| {
        match k {
            "aor" => aor = Some(non_empty(&v, "registration aor")?),
            "id" => id = Some(owned(&v)),
            "state" => state = Some(value::reg_state(&v)?),
            _ => {}
        }
        Ok(())
    })?;
    let aor = aor.ok_or(ReginfoError::Missing("registration aor"))?;
    let id = id.ok_or(ReginfoError::Missing("registration id"))?;
    let state = state.ok_or(ReginfoError::Missing("registration state"))?;
    let mut reg = Registration {
        aor,
        id,
        state,
        contacts: Vec::new(),
        wildcarded_identity: None,
    };
    children(cur, empty, |cur, name, start, empty| {
        match name {
            Elem::Contact => reg.contacts.push(contact(cur, start, empty)?),
            Elem::WildcardedIdentity => reg.wildcarded_identity = text(cur, empty)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(reg)
}

fn contact<'i>(
    cur: &mut Cursor<'i>,
    start: &BytesStart<'i>,
    empty: bool,
) -> Result<Contact, ReginfoError> {
    let (mut id, mut state, mut event) = (None, None, None);
    let mut c = Contact {
        id: String::new(),
        state: super::ContactState::Active,
        event: ContactEvent::Registered,
        expires: None,
        retry_after: None,
        duration_registered: None,
        q: None,
        callid: None,
        cseq: None,
        uri: String::new(),
        display_name: None,
        unknown_params: Vec::new(),
        pub_gruu: None,
        temp_gruu: None,
        temp_gruu_first_cseq: None,
    };
    for_each_attr(start, |k, v| {
        match k {
            "id" => id = Some(owned(&v)),
            "state" => state = Some(value::contact_state(&v)?),
            "event" => event = Some(value::contact_event(&v)),
            "expires" => c.expires = Some(seconds(&v, "contact expires")?),
            "retry-after" => c.retry_after = Some(seconds(&v, "contact retry-after")?),
            "duration-registered" => {
                c.duration_registered = Some(seconds(&v, "contact duration-registered")?)
            }
            "q" => c.q = Some(owned(&v)),
            "callid" => c.callid = Some(owned(&v)),
            "cseq" => c.cseq = Some(number(&v, "contact cseq")?),
            _ => {}
        }
        Ok(())
    })?;
    c.id = id.ok_or(ReginfoError::Missing("contact id"))?;
    c.state = state.ok_or(ReginfoError::Missing("contact state"))?;
    c.event = event.ok_or(ReginfoError::Missing("contact event"))?;
    let mut uri = None;
    children(cur, empty, |cur, name, start, empty| {
        match name {
            // The schema allows one; should a second appear, the first wins.
            Elem::Uri if uri.is_some() => return Ok(false),
            Elem::Uri => {
                let u = text(cur, empty)?.ok_or(ReginfoError::Invalid("contact uri"))?;
                uri = Some(u);
            }
            Elem::DisplayName => c.display_name = text(cur, empty)?,
            Elem::UnknownParam => {
                let mut pname = None;
                for_each_attr(start, |k, v| {
                    if k == "name" {
                        pname = Some(owned(&v));
                    }
                    Ok(())
                })?;
                let pname = pname.ok_or(ReginfoError::Missing("unknown-param name"))?;
                let pvalue = text(cur, empty)?;
                c.unknown_params.push((pname, pvalue));
            }
            Elem::PubGruu => {
                c.pub_gruu = Some(gruu_uri(start, "pub-gruu uri")?.0);
                return Ok(false); // content, if any, is skipped
            }
            Elem::TempGruu => {
                let (u, first_cseq) = gruu_uri(start, "temp-gruu uri")?;
                c.temp_gruu = Some(u);
                c.temp_gruu_first_cseq = first_cseq;
                return Ok(false);
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    c.uri = uri.ok_or(ReginfoError::Missing("contact uri"))?;
    Ok(c)
}

/// The `uri` (and `first-cseq`) attributes of an RFC 5628 GRUU element.
fn gruu_uri(
    start: &BytesStart<'_>,
    what: &'static str,
) -> Result<(String, Option<u32>), ReginfoError> {
    let (mut uri, mut first_cseq) = (None, None);
    for_each_attr(start, |k, v| {
        match k {
            "uri" => uri = Some(non_empty(&v, what)?),
            "first-cseq" => first_cseq = Some(number(&v, "temp-gruu first-cseq")?),
            _ => {}
        }
        Ok(())
    })?;
    Ok((uri.ok_or(ReginfoError::Missing(what))?, first_cseq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reginfo::{ContactState, DocState, RegState};

    fn p(s: &str) -> Result<Reginfo, ReginfoError> {
        parse(s.as_bytes(), &Limits::default())
    }

    const MIN: &str = r#"<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="3" state="full">
  <registration aor="sip:a@x" id="r1" state="active">
    <contact id="c1" state="active" event="registered" expires="600"><uri> sip:a@1.2.3.4 </uri></contact>
  </registration>
</reginfo>"#;

    #[test]
    fn minimal() {
        let d = p(MIN).unwrap();
        assert_eq!((d.version, d.state), (3, DocState::Full));
        let r = &d.registrations[0];
        assert_eq!(
            (r.aor.as_str(), r.id.as_str(), r.state),
            ("sip:a@x", "r1", RegState::Active)
        );
        let c = &r.contacts[0];
        assert_eq!(
            (c.state, c.expires, c.uri.as_str()),
            (ContactState::Active, Some(600), "sip:a@1.2.3.4")
        );
    }

    #[test]
    fn crlf_line_ends_parse_as_lf_and_white_space_inside_values_is_normalized() {
        let crlf = MIN.replace('\n', "\r\n");
        assert_eq!(p(&crlf), p(MIN));
        // A white-space-only chunk between references is part of the value: CR LF becomes LF.
        let doc = MIN.replace(
            "</uri>",
            "</uri><display-name>a&amp;\r\n\t&amp;b</display-name>",
        );
        let d = p(&doc).unwrap();
        assert_eq!(
            d.registrations[0].contacts[0].display_name.as_deref(),
            Some("a&\n\t&b")
        );
    }

    #[test]
    fn bom_and_trailing_comment() {
        let mut b = UTF8_BOM.to_vec();
        b.extend_from_slice(MIN.as_bytes());
        b.extend_from_slice(b"\n<!-- end -->\n<?pi x?>\n");
        assert!(parse(&b, &Limits::default()).is_ok());
    }

    #[test]
    fn trailing_garbage() {
        assert_eq!(p(&format!("{MIN}x")), Err(ReginfoError::Xml));
        assert_eq!(p(&format!("{MIN}<reginfo/>")), Err(ReginfoError::Xml));
        assert_eq!(p(""), Err(ReginfoError::Xml));
    }

    #[test]
    fn empty_root_and_depth_zero() {
        let doc =
            r#"<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="partial"/>"#;
        assert_eq!(p(doc).unwrap().registrations.len(), 0);
        let lim = Limits {
            max_bytes: 1000,
            max_depth: 0,
        };
        assert_eq!(parse(doc.as_bytes(), &lim), Err(ReginfoError::TooDeep));
    }

    #[test]
    fn entity_in_skipped_attribute() {
        let doc = MIN.replace("<uri>", r#"<x:y xmlns:x="urn:x" a="&foo;"/><uri>"#);
        assert_eq!(p(&doc), Err(ReginfoError::Entity));
    }
}
