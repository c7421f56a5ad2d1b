//! IP signalling profiles (IPSP): one TOML file each in the profiles directory.

use std::collections::BTreeMap;
use std::path::Path;

use super::settings::ConfigErrors;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Pcscf,
    Ibcf,
    Ipx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    #[default]
    Home,
    Visited,
}

/// One IPSP. Unknown keys are errors (`deny_unknown_fields`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The vendor's supportRegEvent. Default false.
    #[serde(default)]
    pub support_reg_event: bool,
    #[serde(default)]
    pub role: Role,
    #[serde(default)]
    pub network: Network,
    /// Route (URI list) for SUBSCRIBEs when `network = "visited"`. Required then.
    #[serde(default)]
    pub subscribe_route: Vec<String>,
    /// Beyond the vendor: subscribe again at the next successful re-registration after the
    /// subscription was removed (error, timeout, terminated). Default false.
    #[serde(default)]
    pub resubscribe_on_reregistration: bool,
}

/// All profiles, by name (file stem).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profiles {
    pub by_name: BTreeMap<String, Profile>,
}

impl Profiles {
    /// Load every `*.toml` in `dir`. All errors together, each with file, line:column and key.
    pub fn load_dir(dir: &Path) -> Result<Profiles, ConfigErrors> {
        let _ = dir;
        todo!("config helper")
    }
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.by_name.get(name)
    }
}
