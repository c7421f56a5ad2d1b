//! A guarded event stream over quick-xml's `NsReader`: every element is classified by
//! (namespace URI, local name) into a [`Elem`], and everything hostile is refused here, in one
//! place, whichever part of the tree the parser is looking at (known or skipped):
//! DOCTYPE, entity references other than the predefined five and character references, nesting
//! beyond the depth limit, a non-UTF-8 encoding declaration, text or a second root outside the
//! root element, truncation.
//!
//! Owns: XML events → [`Item`]s. Never: what the elements mean (see `parse`).

use std::borrow::Cow;

use quick_xml::events::{BytesRef, BytesStart, BytesText, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::reader::NsReader;

use super::value::map_xml_err;
use super::{ReginfoError, NS_EXT_REG_EXP, NS_GRUU, NS_REGINFO};

/// The elements we understand; everything else is [`Elem::Other`] and gets skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Elem {
    Reginfo,
    Registration,
    Contact,
    Uri,
    DisplayName,
    UnknownParam,
    PubGruu,
    TempGruu,
    WildcardedIdentity,
    Other,
}

impl Elem {
    fn classify(ns: &ResolveResult<'_>, local: &str) -> Elem {
        let ResolveResult::Bound(Namespace(uri)) = ns else {
            return Elem::Other;
        };
        match *uri {
            NS_REGINFO => match local {
                "reginfo" => Elem::Reginfo,
                "registration" => Elem::Registration,
                "contact" => Elem::Contact,
                "uri" => Elem::Uri,
                "display-name" => Elem::DisplayName,
                "unknown-param" => Elem::UnknownParam,
                _ => Elem::Other,
            },
            NS_GRUU => match local {
                "pub-gruu" => Elem::PubGruu,
                "temp-gruu" => Elem::TempGruu,
                _ => Elem::Other,
            },
            NS_EXT_REG_EXP if local == "wildcardedIdentity" => Elem::WildcardedIdentity,
            _ => Elem::Other,
        }
    }
}

/// One step of the document.
pub(super) enum Item<'i> {
    /// A start tag (`empty`: it was `<x/>`, no [`Item::Close`] follows).
    Open {
        name: Elem,
        start: BytesStart<'i>,
        empty: bool,
    },
    /// Character data inside an element, with references resolved (one chunk; an element's
    /// text may come in several).
    Text(Cow<'i, str>),
    /// A chunk of character data that is only white space, as written: between elements
    /// nobody reads it, so its line ends are normalized (which allocates when the document
    /// has CR LF line ends) only by [`Cursor::text`], where it is part of a value.
    Space(BytesText<'i>),
    /// The end tag of the innermost open element.
    Close,
    /// End of input, with every element closed.
    Eof,
}

pub(super) struct Cursor<'i> {
    reader: NsReader<&'i [u8]>,
    depth: usize,
    max_depth: usize,
    /// Whether anything but whitespace or a comment was seen (an XML declaration must come first).
    started: bool,
    /// Whether the root element was closed (a second root is not well-formed).
    root_done: bool,
}

impl<'i> Cursor<'i> {
    pub(super) fn new(text: &'i str, max_depth: usize) -> Self {
        let mut reader = NsReader::from_str(text);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.allow_unmatched_ends = false;
        config.allow_dangling_amp = false;
        Cursor {
            reader,
            depth: 0,
            max_depth,
            started: false,
            root_done: false,
        }
    }

    pub(super) fn next(&mut self) -> Result<Item<'i>, ReginfoError> {
        loop {
            let (ns, event) = self.reader.read_resolved_event().map_err(map_xml_err)?;
            match event {
                Event::Start(start) | Event::Empty(start) if self.root_done && self.depth == 0 => {
                    let _ = start;
                    return Err(ReginfoError::Xml);
                }
                Event::Start(start) => {
                    let name = Elem::classify(&ns, start.local_name().as_ref());
                    self.started = true;
                    self.depth += 1;
                    if self.depth > self.max_depth {
                        return Err(ReginfoError::TooDeep);
                    }
                    return Ok(Item::Open {
                        name,
                        start,
                        empty: false,
                    });
                }
                Event::Empty(start) => {
                    let name = Elem::classify(&ns, start.local_name().as_ref());
                    self.started = true;
                    if self.depth >= self.max_depth {
                        return Err(ReginfoError::TooDeep);
                    }
                    if self.depth == 0 {
                        self.root_done = true;
                    }
                    return Ok(Item::Open {
                        name,
                        start,
                        empty: true,
                    });
                }
                Event::End(_) => {
                    // quick-xml has already checked it matches an open start tag.
                    self.depth = self.depth.checked_sub(1).ok_or(ReginfoError::Xml)?;
                    if self.depth == 0 {
                        self.root_done = true;
                    }
                    return Ok(Item::Close);
                }
                Event::Text(text) => {
                    if text
                        .bytes()
                        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                    {
                        if self.depth == 0 {
                            continue;
                        }
                        return Ok(Item::Space(text));
                    }
                    let text = text.xml10_content();
                    if self.depth == 0 {
                        if !text.trim_ascii().is_empty() {
                            return Err(ReginfoError::Xml);
                        }
                        continue;
                    }
                    return Ok(Item::Text(text));
                }
                Event::CData(data) => {
                    if self.depth == 0 {
                        return Err(ReginfoError::Xml);
                    }
                    return Ok(Item::Text(data.xml10_content()));
                }
                Event::GeneralRef(reference) => {
                    let text = resolve_reference(&reference)?;
                    if self.depth == 0 {
                        return Err(ReginfoError::Xml);
                    }
                    return Ok(Item::Text(text));
                }
                Event::Decl(decl) => {
                    if self.started {
                        return Err(ReginfoError::Xml);
                    }
                    self.started = true;
                    if let Some(encoding) = decl.encoding() {
                        let encoding = encoding.map_err(|_| ReginfoError::Xml)?;
                        if !is_utf8_label(&encoding) {
                            return Err(ReginfoError::Encoding);
                        }
                    }
                }
                Event::DocType(_) => return Err(ReginfoError::Doctype),
                Event::PI(_) => self.started = true,
                Event::Comment(_) => {}
                Event::Eof => {
                    if self.depth != 0 {
                        return Err(ReginfoError::Xml);
                    }
                    return Ok(Item::Eof);
                }
            }
        }
    }

    /// Skips the rest of an element whose [`Item::Open`] was just returned (non-empty),
    /// still applying every check to its content.
    pub(super) fn skip(&mut self) -> Result<(), ReginfoError> {
        let until = self.depth.saturating_sub(1);
        while self.depth > until {
            match self.next()? {
                Item::Open { start, .. } => super::value::check_attrs(&start)?,
                Item::Eof => return Err(ReginfoError::Xml),
                Item::Text(_) | Item::Space(_) | Item::Close => {}
            }
        }
        Ok(())
    }

    /// Reads the text of an element whose [`Item::Open`] was just returned (non-empty) up to its
    /// end tag, trimmed. Child elements (not allowed by the schema) are skipped.
    pub(super) fn text(&mut self) -> Result<String, ReginfoError> {
        let mut out: Option<Cow<'i, str>> = None;
        loop {
            match self.next()? {
                Item::Text(chunk) => match &mut out {
                    None => out = Some(chunk),
                    Some(acc) => acc.to_mut().push_str(&chunk),
                },
                Item::Space(space) => {
                    let chunk = space.xml10_content();
                    match &mut out {
                        None => out = Some(chunk),
                        Some(acc) => acc.to_mut().push_str(&chunk),
                    }
                }
                Item::Open { start, empty, .. } => {
                    super::value::check_attrs(&start)?;
                    if !empty {
                        self.skip()?;
                    }
                }
                Item::Close => break,
                Item::Eof => return Err(ReginfoError::Xml),
            }
        }
        Ok(out.as_deref().unwrap_or("").trim().to_owned())
    }
}

/// `&name;` in text: the five predefined entities and character references only.
fn resolve_reference<'i>(reference: &BytesRef<'_>) -> Result<Cow<'i, str>, ReginfoError> {
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(c)) => Ok(Cow::Owned(c.to_string())),
            _ => Err(ReginfoError::Xml),
        };
    }
    let s = match &**reference {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "apos" => "'",
        "quot" => "\"",
        _ => return Err(ReginfoError::Entity),
    };
    Ok(Cow::Borrowed(s))
}

fn is_utf8_label(encoding: &str) -> bool {
    ["utf-8", "utf8", "us-ascii", "ascii"]
        .iter()
        .any(|l| encoding.trim().eq_ignore_ascii_case(l))
}
