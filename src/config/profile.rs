//! IP signalling profiles (IPSP): one TOML file each in the profiles directory, named by its
//! file stem. Strict: unknown keys and values of the wrong type (`"yes"` for a bool) are errors,
//! reported with file, `line:column` and key, every problem of every file together.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::schema::{self, LineIndex};
use super::settings::{ConfigError, ConfigErrors};
use super::values::{check_sip_uri, check_transport};

pub use regevent_proto::settings::{Network, Profile, Profiles, Role};

/// Load every `*.toml` in `dir`. All errors together, each with file, line:column and key.
pub fn load_dir(dir: &Path) -> Result<Profiles, ConfigErrors> {
    let (profiles, errors, _) = load_dir_partial(dir);
    if errors.is_empty() {
        Ok(profiles)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Load what can be loaded from `dir`: the good profiles, every problem, and the names of the
/// profiles whose files exist but are wrong (so that a trunk group naming one is not also told
/// the profile is missing).
pub(crate) fn load_dir_partial(dir: &Path) -> (Profiles, Vec<ConfigError>, BTreeSet<String>) {
    let mut profiles = Profiles::default();
    let mut errors = Vec::new();
    let mut failed = BTreeSet::new();
    let error = |file: &Path, key: &str, position: Option<String>, problem: String| ConfigError {
        file: file.display().to_string(),
        key: key.to_string(),
        position,
        problem,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            let problem = format!("cannot read the profiles directory: {e}");
            return (profiles, vec![error(dir, "-", None, problem)], failed);
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    for path in paths {
        let Some(name) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            let problem = "the file name is not valid UTF-8".to_string();
            errors.push(error(&path, "-", None, problem));
            continue;
        };
        match load_file(&path) {
            Ok(profile) => {
                profiles.by_name.insert(name, profile);
            }
            Err(mut errs) => {
                errors.append(&mut errs);
                failed.insert(name);
            }
        }
    }
    (profiles, errors, failed)
}

/// One profile file: strict walk (unknown keys, types), serde, then validation.
fn load_file(path: &Path) -> Result<Profile, Vec<ConfigError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            file: file.clone(),
            key: "-".into(),
            position: None,
            problem: format!("cannot read the file: {e}"),
        }]
    })?;
    let walked = schema::parse_and_walk(&file, &text, schema::PROFILE).map_err(|e| vec![e])?;
    if !walked.errors.is_empty() {
        return Err(walked.errors);
    }
    let lines = LineIndex::new(&text);
    let profile: Profile = toml::from_str(&text).map_err(|e| {
        let span = e.span();
        vec![ConfigError {
            file: file.clone(),
            key: span
                .as_ref()
                .and_then(|s| walked.key_at(s))
                .unwrap_or("-")
                .to_string(),
            position: span.map(|s| lines.position(s.start)),
            problem: e.message().trim().to_string(),
        }]
    })?;
    let mut errors = Vec::new();
    let mut push = |key: String, anchor: &str, problem: String| {
        let position = walked
            .positions
            .get(&key)
            .or_else(|| walked.positions.get(anchor))
            .cloned();
        errors.push(ConfigError {
            file: file.clone(),
            key,
            position,
            problem,
        });
    };
    if profile.network == Network::Visited && profile.subscribe_route.is_empty() {
        let problem = "required when network = \"visited\": a non-empty list of sip: URIs";
        push("subscribe_route".into(), "network", problem.into());
    }
    for (i, uri) in profile.subscribe_route.iter().enumerate() {
        if let Err(problem) = check_sip_uri(uri).and_then(|()| check_transport(uri)) {
            push(format!("subscribe_route[{i}]"), "subscribe_route", problem);
        }
    }
    if errors.is_empty() {
        Ok(profile)
    } else {
        Err(errors)
    }
}
