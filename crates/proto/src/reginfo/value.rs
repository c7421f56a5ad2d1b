//! Attribute access and value conversion: unescaping (predefined entities and character
//! references only), trimming, numbers and the RFC 3680 enumerations. Also the one place that maps
//! quick-xml errors to [`ReginfoError`].
//!
//! Owns: string → typed value. Never: document structure (see `parse`).

use std::borrow::Cow;
use std::str::FromStr;

use quick_xml::escape::EscapeError;
use quick_xml::events::BytesStart;
use quick_xml::XmlVersion;

use super::{ContactEvent, ContactState, DocState, RegState, ReginfoError};

/// Maps a quick-xml error: unknown entities are [`ReginfoError::Entity`], the rest is not
/// well-formed XML.
pub(super) fn map_xml_err(e: quick_xml::Error) -> ReginfoError {
    match e {
        quick_xml::Error::Escape(EscapeError::UnrecognizedEntity(..)) => ReginfoError::Entity,
        _ => ReginfoError::Xml,
    }
}

/// Calls `f(local, value)` for every unprefixed attribute of `start` (value unescaped and
/// normalized, not yet trimmed). Namespaced attributes (`xmlns`, `xmlns:p`, `p:name`) are not
/// ours and are skipped, but their values are still checked for forbidden entities.
pub(super) fn for_each_attr<'a>(
    start: &'a BytesStart<'_>,
    mut f: impl FnMut(&str, Cow<'a, str>) -> Result<(), ReginfoError>,
) -> Result<(), ReginfoError> {
    for attr in start.attributes() {
        let attr = attr.map_err(|_| ReginfoError::Xml)?;
        let key: &str = attr.key.as_ref();
        let ours = !key.contains(':') && key != "xmlns";
        if !ours && !attr.value.contains('&') {
            continue;
        }
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(map_xml_err)?;
        if ours {
            f(key, value)?;
        }
    }
    Ok(())
}

/// Checks every attribute of an element we are going to skip (entities, duplicates).
pub(super) fn check_attrs(start: &BytesStart<'_>) -> Result<(), ReginfoError> {
    for_each_attr(start, |_, _| Ok(()))
}

/// A trimmed owned string.
pub(super) fn owned(v: &str) -> String {
    v.trim().to_owned()
}

/// A trimmed string that must not be empty.
pub(super) fn non_empty(v: &str, what: &'static str) -> Result<String, ReginfoError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(ReginfoError::Invalid(what));
    }
    Ok(v.to_owned())
}

/// An XML Schema non-negative integer (surrounding whitespace allowed, no sign other than `+`).
pub(super) fn number<T: FromStr>(v: &str, what: &'static str) -> Result<T, ReginfoError> {
    v.trim().parse().map_err(|_| ReginfoError::Invalid(what))
}

/// A duration in seconds (`expires`, `retry-after`, `duration-registered`): the schema says
/// unsignedLong; values beyond `u32::MAX` (136 years) saturate.
pub(super) fn seconds(v: &str, what: &'static str) -> Result<u32, ReginfoError> {
    let n: u64 = number(v, what)?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

pub(super) fn doc_state(v: &str) -> Result<DocState, ReginfoError> {
    match v.trim() {
        "full" => Ok(DocState::Full),
        "partial" => Ok(DocState::Partial),
        _ => Err(ReginfoError::Invalid("state")),
    }
}

pub(super) fn reg_state(v: &str) -> Result<RegState, ReginfoError> {
    match v.trim() {
        "init" => Ok(RegState::Init),
        "active" => Ok(RegState::Active),
        "terminated" => Ok(RegState::Terminated),
        _ => Err(ReginfoError::Invalid("registration state")),
    }
}

pub(super) fn contact_state(v: &str) -> Result<ContactState, ReginfoError> {
    match v.trim() {
        "active" => Ok(ContactState::Active),
        "terminated" => Ok(ContactState::Terminated),
        _ => Err(ReginfoError::Invalid("contact state")),
    }
}

pub(super) fn contact_event(v: &str) -> ContactEvent {
    match v.trim() {
        "registered" => ContactEvent::Registered,
        "created" => ContactEvent::Created,
        "refreshed" => ContactEvent::Refreshed,
        "shortened" => ContactEvent::Shortened,
        "expired" => ContactEvent::Expired,
        "deactivated" => ContactEvent::Deactivated,
        "probation" => ContactEvent::Probation,
        "unregistered" => ContactEvent::Unregistered,
        "rejected" => ContactEvent::Rejected,
        other => ContactEvent::Other(other.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(number::<u64>(" 42 ", "version"), Ok(42));
        assert_eq!(number::<u64>("+7", "version"), Ok(7));
        assert_eq!(
            number::<u64>("-1", "version"),
            Err(ReginfoError::Invalid("version"))
        );
        assert_eq!(
            number::<u64>("", "version"),
            Err(ReginfoError::Invalid("version"))
        );
        assert_eq!(seconds("99999999999", "contact expires"), Ok(u32::MAX));
        assert_eq!(
            number::<u32>("4294967296", "contact cseq"),
            Err(ReginfoError::Invalid("contact cseq"))
        );
    }

    #[test]
    fn enums() {
        assert_eq!(doc_state("full"), Ok(DocState::Full));
        assert_eq!(doc_state("Full"), Err(ReginfoError::Invalid("state")));
        assert_eq!(reg_state(" init "), Ok(RegState::Init));
        assert_eq!(
            contact_state("gone"),
            Err(ReginfoError::Invalid("contact state"))
        );
        assert_eq!(
            contact_event("x-moved"),
            ContactEvent::Other("x-moved".into())
        );
    }
}
