//! Configuration: the main file (SPEC §9, loaded with the `config` crate, every key overridable by
//! `REGEVENT_GW__SECTION__KEY`) and the IP signalling profiles in `profiles/*.toml` (strict serde,
//! one profile per file, named by the file stem).
//!
//! Owns: parsing, defaults, validation (all problems reported together, each naming file, key and
//! problem). Never: sockets, or any behaviour beyond describing what the operator asked for.

mod lint;
mod load;
pub mod profile;
pub mod reload;
mod schema;
pub mod settings;
mod values;

pub use profile::{Network, Profile, Profiles, Role};
pub use reload::{Reload, RELOADABLE, RESTART_ONLY};
pub use settings::render_errors_for_cli;
pub use settings::{
    AdminSettings, Config, ConfigError, ConfigErrors, LimitsSettings, Listener, SipSettings,
    StateBackend, StateSettings, SubscriptionSettings, Transport, TrunkGroup, DEFAULT_ADMIN_LISTEN,
};
