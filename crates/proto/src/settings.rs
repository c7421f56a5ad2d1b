//! What the protocol core needs to know from the operator's configuration, as plain data: our
//! identity and next hop, RFC 3261 timers, limits, trunk groups and their IP signalling profiles.
//!
//! Owns: the meaning of a trunk group's match (listener and source) and of a profile's keys.
//! Never: files, the environment, validation messages — loading and checking the configuration
//! is the server's (`regevent_gw::config`), which builds a [`Settings`] from it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// The trunk group's role (`role` in a profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Pcscf,
    Ibcf,
    Ipx,
}

/// The trunk group's network position (`network` in a profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    #[default]
    Home,
    Visited,
}

/// One IP signalling profile (IPSP). Unknown keys are errors (`deny_unknown_fields`).
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
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.by_name.get(name)
    }
}

/// A trunk group: where messages come from, and the profile that applies to them.
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkGroup {
    pub name: String,
    pub profile: String,
    /// Source CIDRs (`sources`); empty = any source.
    pub sources: Vec<ipnet::IpNet>,
    /// Optional listener name to match (`listener`).
    pub listener: Option<String>,
}

impl TrunkGroup {
    /// Whether a message arriving on `listener` from `source` belongs to this trunk group: the
    /// listener (when set) is equal and the sources (when any) contain the address. An
    /// IPv4-mapped IPv6 source (`::ffff:a.b.c.d`) counts as the IPv4 address.
    pub fn matches(&self, listener: &str, source: IpAddr) -> bool {
        if self.listener.as_deref().is_some_and(|l| l != listener) {
            return false;
        }
        let source = match source {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(source, IpAddr::V4),
            v4 => v4,
        };
        self.sources.is_empty() || self.sources.iter().any(|net| net.contains(&source))
    }
}

/// `subscription.max_subscribe_rate` by default: above what one gateway originates at full load
/// (about 15,000 registrations/s on 2 cores), so that by default it shapes only bursts beyond
/// that — a refresh backlog restored after downtime, a mass deregistration's unsubscribes.
/// Operators set it to what their S-CSCF takes.
pub const DEFAULT_MAX_SUBSCRIBE_RATE: u32 = 20_000;

/// `limits.max_message_tcp` by default: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_TCP: usize = 1 << 20;

/// Everything the core is configured with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Our URI in Via/Path/Contact/From (`sip.identity`).
    pub identity: String,
    /// Next hop for REGISTER (`sip.core`).
    pub core: String,
    /// RFC 3261 T1 and T2 (`sip.t1`, `sip.t2`); Timer F = 64×T1.
    pub t1: Duration,
    pub t2: Duration,
    /// P-Asserted-Identity on our SUBSCRIBEs (`sip.p_asserted_identity`).
    pub p_asserted_identity: Option<String>,
    /// Max-Forwards of requests we originate (`sip.max_forwards`).
    pub max_forwards: u32,
    /// The listeners' names in `sip.listen` order: an inbound message's listener index names one.
    pub listeners: Vec<String>,
    pub trunk_groups: Vec<TrunkGroup>,
    pub profiles: Profiles,
    /// Added to the registration's granted expiry (`subscription.expiry_margin`, SPEC §2.2).
    pub expiry_margin: Duration,
    /// Ceiling on SUBSCRIBEs sent per second (`subscription.max_subscribe_rate`); 0 = none.
    pub max_subscribe_rate: u32,
    /// Largest message accepted over UDP (`limits.max_message`).
    pub max_message: usize,
    /// Largest message accepted over TCP (`limits.max_message_tcp`): a NOTIFY with a large
    /// implicit set (500 registrations, ~210 KB of reginfo) must fit.
    pub max_message_tcp: usize,
    /// reginfo limits (`limits.reginfo_max_bytes`, `limits.reginfo_max_depth`).
    pub reginfo_max_bytes: usize,
    pub reginfo_max_depth: usize,
    /// Tables are sized for this many registrations at start (`limits.expected_registrations`).
    pub expected_registrations: usize,
    /// `[overload]` (SPEC §11).
    pub overload: crate::core::OverloadSettings,
}

impl Default for Settings {
    /// The built-in defaults (SPEC §9): loopback identity, `sip:127.0.0.1:5070` as the core,
    /// one trunk group `default` on profile `default` (reg-event off) for every source.
    fn default() -> Self {
        Settings {
            identity: "sip:127.0.0.1:5060".into(),
            core: "sip:127.0.0.1:5070".into(),
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            p_asserted_identity: None,
            max_forwards: 70,
            listeners: vec!["udp:127.0.0.1:5060".into(), "tcp:127.0.0.1:5060".into()],
            trunk_groups: vec![TrunkGroup {
                name: "default".into(),
                profile: "default".into(),
                sources: Vec::new(),
                listener: None,
            }],
            profiles: Profiles {
                by_name: [("default".to_string(), Profile::default())].into(),
            },
            expiry_margin: Duration::from_secs(60),
            max_subscribe_rate: DEFAULT_MAX_SUBSCRIBE_RATE,
            max_message: 65_535,
            max_message_tcp: DEFAULT_MAX_MESSAGE_TCP,
            reginfo_max_bytes: 1 << 20,
            reginfo_max_depth: 16,
            expected_registrations: 0,
            overload: crate::core::OverloadSettings::default(),
        }
    }
}

impl Settings {
    /// Give every trunk group's profile the value `p` (tests, the lab).
    pub fn with_profile(mut self, p: Profile) -> Self {
        for tg in &self.trunk_groups {
            self.profiles.by_name.insert(tg.profile.clone(), p.clone());
        }
        self
    }

    /// The first trunk group (in file order) that matches a message arriving on listener
    /// number `listener` from `source`.
    pub fn trunk_group_for(&self, listener: u16, source: IpAddr) -> Option<&TrunkGroup> {
        let name = self
            .listeners
            .get(usize::from(listener))
            .map_or("", String::as_str);
        self.trunk_groups.iter().find(|t| t.matches(name, source))
    }
}
