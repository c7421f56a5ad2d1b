//! Turning merged configuration values into typed settings: conversions that report problems
//! against the right source (the file with `line:column`, or the environment variable that set
//! the key) instead of stopping at the first.

use std::collections::HashMap;
use std::time::Duration;

use config::Value;

use super::settings::ConfigError;

/// `Ok` when `uri` is a `sip:` or `sips:` URI (shape only; the SIP parser checks the rest).
pub(crate) fn check_sip_uri(uri: &str) -> Result<(), String> {
    let lower = uri.get(..5).unwrap_or(uri).to_ascii_lowercase();
    let rest = if lower.starts_with("sips:") {
        &uri[5..]
    } else if lower.starts_with("sip:") {
        &uri[4..]
    } else {
        return Err("expected a `sip:` or `sips:` URI (without `<>`)".into());
    };
    if rest.is_empty() {
        return Err("the URI has nothing after its scheme".into());
    }
    if uri
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
    {
        return Err("the URI must not contain spaces, control characters or `<>`".into());
    }
    Ok(())
}

/// `Ok` when sending to `uri` would use what the gateway has: UDP or TCP. A `sips:` URI or a
/// `;transport=tls` parameter asks for TLS, which the gateway does not have yet: it would send
/// over plain TCP, a silent downgrade (the `TLS is not supported yet` message). Any other
/// transport but `udp`/`tcp` (`sctp`, `ws`) would go out over UDP, also refused. A URI that does
/// not parse is left to [`check_sip_uri`].
pub(crate) fn check_transport(uri: &str) -> Result<(), String> {
    use regevent_proto::sip::{Scheme, Uri};
    let Ok(parsed) = Uri::parse(uri.trim()) else {
        return Ok(());
    };
    if parsed.scheme == Scheme::Sips {
        return Err(format!(
            "TLS is not supported yet: {} is a `sips:` URI, which needs TLS; the gateway would \
             send to it over plain TCP (write a `sip:` URI)",
            quote(uri)
        ));
    }
    match parsed.transport() {
        None => Ok(()),
        Some(t) if t.eq_ignore_ascii_case("udp") || t.eq_ignore_ascii_case("tcp") => Ok(()),
        Some(t)
            if t.eq_ignore_ascii_case("tls")
                || t.eq_ignore_ascii_case("tls-sctp")
                || t.eq_ignore_ascii_case("wss") =>
        {
            Err(format!(
                "TLS is not supported yet: {} asks for `transport={t}`; the gateway would send \
                 to it over plain TCP (use `transport=tcp` or `transport=udp`)",
                quote(uri)
            ))
        }
        Some(t) => Err(format!(
            "transport {} of {} is not supported: the gateway sends over UDP and TCP only",
            quote(t),
            quote(uri)
        )),
    }
}

/// Shorten operator text quoted back in an error.
pub(super) fn quote(s: &str) -> String {
    let mut out: String = s.chars().take(64).filter(|c| !c.is_control()).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    format!("`{out}`")
}

/// Collects problems, attributing each key to the file or to the environment variable that set it.
pub(super) struct Problems {
    pub(super) file: String,
    pub(super) positions: HashMap<String, String>,
    /// Dotted key → the environment variable that set it.
    pub(super) env_keys: HashMap<String, String>,
    pub(super) errors: Vec<ConfigError>,
}

impl Problems {
    pub(super) fn push(&mut self, key: &str, problem: impl Into<String>) {
        let root = key.split('[').next().unwrap_or(key);
        let (file, position) = match self.env_keys.get(root) {
            Some(var) => (format!("environment variable {var}"), None),
            None => (
                self.file.clone(),
                self.positions
                    .get(key)
                    .or_else(|| self.positions.get(root))
                    .cloned(),
            ),
        };
        self.errors.push(ConfigError {
            file,
            key: key.to_string(),
            position,
            problem: problem.into(),
        });
    }

    /// Convert a present value with `conv`; `None` when absent or wrong (the latter reported).
    pub(super) fn get<T>(
        &mut self,
        key: &str,
        v: Option<Value>,
        conv: impl FnOnce(Value) -> Result<T, String>,
    ) -> Option<T> {
        match conv(v?) {
            Ok(t) => Some(t),
            Err(problem) => {
                self.push(key, problem);
                None
            }
        }
    }

    pub(super) fn string(&mut self, key: &str, v: Option<Value>) -> Option<String> {
        self.get(key, v, |v| {
            v.into_string().map_err(|_| "expected a string".to_string())
        })
    }

    /// A URI the gateway sends to or advertises (`sip.identity`, `sip.core`): its shape, and a
    /// transport the gateway has ([`check_transport`]).
    pub(super) fn uri(&mut self, key: &str, v: Option<Value>, default: &str) -> String {
        let uri = self.string(key, v).unwrap_or_else(|| default.to_string());
        if let Err(problem) = check_sip_uri(&uri).and_then(|()| check_transport(&uri)) {
            self.push(key, problem);
        }
        uri
    }

    pub(super) fn duration(&mut self, key: &str, v: Option<Value>, default: Duration) -> Duration {
        self.get(key, v, |v| {
            let s = v
                .into_string()
                .map_err(|_| "expected a duration string".to_string())?;
            humantime::parse_duration(s.trim()).map_err(|e| {
                format!(
                    "invalid duration {}: {e} (write e.g. `500ms`, `32s`, `10m`)",
                    quote(&s)
                )
            })
        })
        .unwrap_or(default)
    }

    pub(super) fn uint(
        &mut self,
        key: &str,
        v: Option<Value>,
        default: u64,
        min: u64,
        max: u64,
    ) -> u64 {
        self.get(key, v, |v| {
            let n = v
                .into_int()
                .map_err(|_| "expected an integer".to_string())?;
            u64::try_from(n)
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| format!("must be between {min} and {max}, found {n}"))
        })
        .unwrap_or(default)
    }

    pub(super) fn list(&mut self, key: &str, v: Option<Value>) -> Option<Vec<String>> {
        self.get(key, v, |v| {
            let items = v
                .into_array()
                .map_err(|_| "expected a list of strings".to_string())?;
            items
                .into_iter()
                .map(|i| i.into_string().map(|s| s.trim().to_string()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| "expected a list of strings".to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uris() {
        assert!(check_sip_uri("sip:a.example.net;lr").is_ok());
        assert!(check_sip_uri("SIPS:a").is_ok());
        assert!(check_sip_uri("sip:").is_err());
        assert!(check_sip_uri("<sip:a>").is_err());
        assert!(check_sip_uri("http://a").is_err());
        assert!(check_sip_uri("sip:a b").is_err());
        assert!(check_sip_uri("é").is_err());
    }

    #[test]
    fn transports() {
        for ok in [
            "sip:a.example.net",
            "sip:a.example.net:5060;lr",
            "sip:a;transport=TCP",
            "sip:a;transport=udp;lr",
            "not a uri",
        ] {
            assert_eq!(check_transport(ok), Ok(()), "{ok}");
        }
        for tls in [
            "sips:a.example.net",
            "SIPS:a",
            "sip:a;transport=tls",
            "sip:a:5061;lr;transport=TLS",
            "sip:a;transport=wss",
        ] {
            let e = check_transport(tls).expect_err(tls);
            assert!(e.starts_with("TLS is not supported yet: "), "{e}");
        }
        let e = check_transport("sip:a;transport=sctp").expect_err("sctp");
        assert!(e.contains("UDP and TCP only"), "{e}");
    }
}
