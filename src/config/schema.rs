//! The key schema of the main file and of a profile, and a strict walk of a parsed TOML document
//! against it.
//!
//! The `config` crate coerces values (`"yes"` becomes `true`, `"70"` becomes 70) and stops at the
//! first problem, so before handing a file to it we walk the document ourselves: every unknown
//! key and every value of the wrong TOML type is reported with its dotted key and `line:column`,
//! and only the well-formed part of the document goes on. The walk also remembers where each
//! value sits so that later validation errors can point at it.

use std::collections::HashMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::settings::ConfigError;

/// What a key holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Str,
    /// A string in `humantime` syntax (`500ms`, `32s`, `10m`); parsed later.
    Duration,
    Int,
    Bool,
    StrList,
    /// A string out of a fixed set.
    Enum(&'static [&'static str]),
    Table(&'static [Field]),
    /// `[[name]]`: an array of tables.
    TableArray(&'static [Field]),
}

/// One known key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub name: &'static str,
    pub kind: Kind,
}

const fn f(name: &'static str, kind: Kind) -> Field {
    Field { name, kind }
}

const SIP: &[Field] = &[
    f("listen", Kind::StrList),
    f("identity", Kind::Str),
    f("core", Kind::Str),
    f("t1", Kind::Duration),
    f("t2", Kind::Duration),
    f("p_asserted_identity", Kind::Str),
    f("max_forwards", Kind::Int),
    f("coalesce", Kind::Duration),
];
const ADMIN: &[Field] = &[
    f("listen", Kind::Str),
    f("subscription_series_cap", Kind::Int),
];
const SUBSCRIPTION: &[Field] = &[
    f("expiry_margin", Kind::Duration),
    f("max_subscribe_rate", Kind::Int),
];
const LIMITS: &[Field] = &[
    f("max_message", Kind::Int),
    f("max_message_tcp", Kind::Int),
    f("reginfo_max_bytes", Kind::Int),
    f("reginfo_max_depth", Kind::Int),
    f("expected_registrations", Kind::Int),
];
const OVERLOAD: &[Field] = &[
    f("enabled", Kind::Bool),
    f("max_delay", Kind::Duration),
    f("max_queue", Kind::Int),
    f("max_queue_bytes", Kind::Int),
    f("max_transactions", Kind::Int),
    f("retry_after_min", Kind::Duration),
    f("retry_after_max", Kind::Duration),
];
const PROFILES: &[Field] = &[f("dir", Kind::Str)];
const STATE: &[Field] = &[
    f("backend", Kind::Enum(&["embedded", "redis", "none"])),
    f("dir", Kind::Str),
    f("commit", Kind::Duration),
    f("url", Kind::Str),
    f("prefix", Kind::Str),
    f("standby", Kind::Bool),
    f("lease", Kind::Duration),
];
const TRUNK_GROUP: &[Field] = &[
    f("name", Kind::Str),
    f("profile", Kind::Str),
    f("sources", Kind::StrList),
    f("listener", Kind::Str),
];

/// The main file (SPEC §9).
pub(crate) const MAIN: &[Field] = &[
    f("sip", Kind::Table(SIP)),
    f("admin", Kind::Table(ADMIN)),
    f("subscription", Kind::Table(SUBSCRIPTION)),
    f("limits", Kind::Table(LIMITS)),
    f("overload", Kind::Table(OVERLOAD)),
    f("profiles", Kind::Table(PROFILES)),
    f("state", Kind::Table(STATE)),
    f("trunk_group", Kind::TableArray(TRUNK_GROUP)),
];

/// One profile file (`profiles/*.toml`); mirrors [`super::Profile`].
pub(crate) const PROFILE: &[Field] = &[
    f("support_reg_event", Kind::Bool),
    f("role", Kind::Enum(&["pcscf", "ibcf", "ipx"])),
    f("network", Kind::Enum(&["home", "visited"])),
    f("subscribe_route", Kind::StrList),
    f("resubscribe_on_reregistration", Kind::Bool),
];

/// Dotted names of the scalar keys of `fields` (those an environment variable can set).
pub(crate) fn leaf_keys(fields: &[Field]) -> Vec<String> {
    let mut out = Vec::new();
    for field in fields {
        match field.kind {
            Kind::Table(inner) => out.extend(
                leaf_keys(inner)
                    .into_iter()
                    .map(|k| format!("{}.{k}", field.name)),
            ),
            Kind::TableArray(_) => {}
            _ => out.push(field.name.to_string()),
        }
    }
    out
}

/// Turns byte offsets into 1-based `line:column`.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        LineIndex { text }
    }

    pub(crate) fn position(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        format!("{line}:{column}")
    }
}

/// The outcome of [`walk`].
pub(crate) struct Walked {
    /// Only the known keys with values of the right type.
    pub clean: toml::Table,
    pub errors: Vec<ConfigError>,
    /// Dotted key → `line:column` of its value.
    pub positions: HashMap<String, String>,
    /// Dotted key → byte span of the key and of its value (for mapping serde errors to keys).
    spans: Vec<(String, Range<usize>)>,
}

impl Walked {
    /// The innermost dotted key whose key or value span holds `offset`.
    pub(crate) fn key_at(&self, span: &Range<usize>) -> Option<&str> {
        self.spans
            .iter()
            .filter(|(_, s)| s.start <= span.start && span.start < s.end.max(s.start + 1))
            .min_by_key(|(_, s)| s.end - s.start)
            .map(|(k, _)| k.as_str())
    }
}

/// Parse `text` and walk it against `fields`. A syntax error is returned as the only error.
pub(crate) fn parse_and_walk(
    file: &str,
    text: &str,
    fields: &[Field],
) -> Result<Walked, ConfigError> {
    let lines = LineIndex::new(text);
    let syntax = |e: toml::de::Error| ConfigError {
        file: file.to_string(),
        key: "-".to_string(),
        position: e.span().map(|s| lines.position(s.start)),
        problem: format!("invalid TOML: {}", e.message().trim()),
    };
    let de = DeTable::parse(text).map_err(syntax)?;
    let plain: toml::Table = toml::from_str(text).map_err(syntax)?;
    let mut walk = Walk {
        file,
        lines: &lines,
        errors: Vec::new(),
        positions: HashMap::new(),
        spans: Vec::new(),
    };
    let clean = walk.table(de.get_ref(), &plain, fields, "");
    // Tables iterate in key order; report in file order.
    walk.errors.sort_by_key(|(offset, _)| *offset);
    Ok(Walked {
        clean,
        errors: walk.errors.into_iter().map(|(_, e)| e).collect(),
        positions: walk.positions,
        spans: walk.spans,
    })
}

struct Walk<'a> {
    file: &'a str,
    lines: &'a LineIndex<'a>,
    /// Byte offset and error.
    errors: Vec<(usize, ConfigError)>,
    positions: HashMap<String, String>,
    spans: Vec<(String, Range<usize>)>,
}

impl Walk<'_> {
    fn error(&mut self, key: &str, offset: usize, problem: String) {
        let position = Some(self.lines.position(offset));
        let error = ConfigError {
            file: self.file.to_string(),
            key: key.to_string(),
            position,
            problem,
        };
        self.errors.push((offset, error));
    }

    fn table(
        &mut self,
        de: &DeTable<'_>,
        plain: &toml::Table,
        fields: &[Field],
        prefix: &str,
    ) -> toml::Table {
        let mut clean = toml::Table::new();
        for (key, value) in de.iter() {
            let name: &str = key.get_ref();
            let dotted = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            };
            self.spans.push((dotted.clone(), key.span()));
            self.spans.push((dotted.clone(), value.span()));
            self.positions
                .insert(dotted.clone(), self.lines.position(value.span().start));
            let Some(field) = fields.iter().find(|f| f.name == name) else {
                let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
                let problem = format!("unknown key (known keys here: {})", known.join(", "));
                self.error(&dotted, key.span().start, problem);
                continue;
            };
            let Some(plain_value) = plain.get(name) else {
                continue;
            };
            if let Some(v) = self.value(&dotted, value, plain_value, field.kind) {
                clean.insert(name.to_string(), v);
            }
        }
        clean
    }

    /// Check one value; `Some` (the value to keep) when it has the right shape.
    fn value(
        &mut self,
        dotted: &str,
        de: &toml::Spanned<DeValue<'_>>,
        plain: &toml::Value,
        kind: Kind,
    ) -> Option<toml::Value> {
        let at = de.span().start;
        let found = de.get_ref().type_str();
        let wrong = |expected: &str| format!("expected {expected}, found {found}");
        match (kind, de.get_ref(), plain) {
            (Kind::Str, DeValue::String(_), _) => Some(plain.clone()),
            (Kind::Duration, DeValue::String(_), _) => Some(plain.clone()),
            (Kind::Int, DeValue::Integer(_), _) => Some(plain.clone()),
            (Kind::Bool, DeValue::Boolean(_), _) => Some(plain.clone()),
            (Kind::Enum(allowed), DeValue::String(s), _) => {
                if allowed.contains(&s.as_ref()) {
                    Some(plain.clone())
                } else {
                    self.error(
                        dotted,
                        at,
                        format!("expected one of: {}", allowed.join(", ")),
                    );
                    None
                }
            }
            (Kind::StrList, DeValue::Array(items), _) => {
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    if !matches!(item.get_ref(), DeValue::String(_)) {
                        let problem =
                            format!("expected a string, found {}", item.get_ref().type_str());
                        self.error(&format!("{dotted}[{i}]"), item.span().start, problem);
                        ok = false;
                    } else {
                        let key = format!("{dotted}[{i}]");
                        self.positions
                            .insert(key.clone(), self.lines.position(item.span().start));
                        self.spans.push((key, item.span()));
                    }
                }
                ok.then(|| plain.clone())
            }
            (Kind::Table(inner), DeValue::Table(t), toml::Value::Table(p)) => {
                Some(toml::Value::Table(self.table(t, p, inner, dotted)))
            }
            (Kind::TableArray(inner), DeValue::Array(items), toml::Value::Array(p)) => {
                let mut out = Vec::new();
                for (i, (item, plain_item)) in items.iter().zip(p).enumerate() {
                    let key = format!("{dotted}[{i}]");
                    self.positions
                        .insert(key.clone(), self.lines.position(item.span().start));
                    match (item.get_ref(), plain_item) {
                        (DeValue::Table(t), toml::Value::Table(pt)) => {
                            out.push(toml::Value::Table(self.table(t, pt, inner, &key)))
                        }
                        _ => {
                            let problem =
                                format!("expected a table, found {}", item.get_ref().type_str());
                            self.error(&key, item.span().start, problem);
                            // Keep the index stable for the keys that follow.
                            out.push(toml::Value::Table(toml::Table::new()));
                        }
                    }
                }
                Some(toml::Value::Array(out))
            }
            (Kind::Str, ..) => {
                self.error(dotted, at, wrong("a string"));
                None
            }
            (Kind::Duration, ..) => {
                self.error(
                    dotted,
                    at,
                    wrong("a duration string such as \"500ms\" or \"32s\""),
                );
                None
            }
            (Kind::Int, ..) => {
                self.error(dotted, at, wrong("an integer"));
                None
            }
            (Kind::Bool, ..) => {
                self.error(dotted, at, wrong("a boolean (true or false, unquoted)"));
                None
            }
            (Kind::Enum(allowed), ..) => {
                self.error(
                    dotted,
                    at,
                    wrong(&format!("one of: {}", allowed.join(", "))),
                );
                None
            }
            (Kind::StrList, ..) => {
                self.error(dotted, at, wrong("a list of strings"));
                None
            }
            (Kind::Table(_), ..) => {
                self.error(dotted, at, wrong("a table"));
                None
            }
            (Kind::TableArray(_), ..) => {
                self.error(dotted, at, wrong("an array of tables ([[...]])"));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let idx = LineIndex::new("a = 1\nbb = 2\n");
        assert_eq!(idx.position(0), "1:1");
        assert_eq!(idx.position(6), "2:1");
        assert_eq!(idx.position(9), "2:4");
    }

    #[test]
    fn leaf_keys_skip_table_arrays() {
        let keys = leaf_keys(MAIN);
        assert!(keys.contains(&"sip.t1".to_string()));
        assert!(keys.contains(&"profiles.dir".to_string()));
        assert!(!keys.iter().any(|k| k.starts_with("trunk_group")));
    }

    #[test]
    fn walk_rejects_quoted_bool_and_unknown_keys() {
        let text = "support_reg_event = \"yes\"\nrole = \"pcscf\"\nbogus = 1\n";
        let walked = parse_and_walk("p.toml", text, PROFILE).expect("valid TOML");
        assert_eq!(walked.errors.len(), 2, "{:?}", walked.errors);
        assert_eq!(walked.errors[0].key, "support_reg_event");
        assert_eq!(walked.errors[0].position.as_deref(), Some("1:21"));
        assert_eq!(walked.errors[1].key, "bogus");
        assert_eq!(walked.errors[1].position.as_deref(), Some("3:1"));
        assert!(walked.clean.contains_key("role"));
        assert!(!walked.clean.contains_key("support_reg_event"));
    }

    #[test]
    fn walk_names_keys_inside_table_arrays() {
        let text = "[[trunk_group]]\nname = \"a\"\n[[trunk_group]]\nname = 5\nextra = \"x\"\n";
        let walked = parse_and_walk("g.toml", text, MAIN).expect("valid TOML");
        let keys: Vec<&str> = walked.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["trunk_group[1].name", "trunk_group[1].extra"]);
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse_and_walk("g.toml", "[sip\n", MAIN)
            .err()
            .expect("syntax error");
        assert_eq!(err.file, "g.toml");
        assert!(err.position.is_some());
    }
}
