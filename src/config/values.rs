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

    pub(super) fn uri(&mut self, key: &str, v: Option<Value>, default: &str) -> String {
        let uri = self.string(key, v).unwrap_or_else(|| default.to_string());
        if let Err(problem) = check_sip_uri(&uri) {
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
}
