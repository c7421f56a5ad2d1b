//! Warnings about a valid configuration: things that load and run but are almost certainly not
//! what the operator meant. `regevent-gw check-config` prints them (`warning: …`, exit status
//! 0), `run` and a reload log them.
//!
//! Owns: those checks. Never: refusing a configuration (that is validation, in `load`).

use ipnet::IpNet;

use super::settings::{Config, ConfigError, TrunkGroup};

impl Config {
    /// Every warning, in trunk group order, each naming the file and the key.
    pub fn warnings(&self) -> Vec<ConfigError> {
        let file = super::load::file_label(self.file.as_deref());
        let mut out = Vec::new();
        for (j, tg) in self.trunk_groups.iter().enumerate() {
            let warn = |problem: String| ConfigError {
                file: file.clone(),
                key: format!("trunk_group[{j}]"),
                position: None,
                problem,
            };
            if let Some((i, earlier)) = self.trunk_groups[..j]
                .iter()
                .enumerate()
                .find(|(_, earlier)| shadows(earlier, tg))
            {
                out.push(warn(format!(
                    "trunk group `{}` never matches: trunk_group[{i}] (`{}`) comes first and \
                     takes every message it would (same or any listener, sources that cover \
                     its sources)",
                    tg.name, earlier.name
                )));
            } else if self.only_ipv4_listeners(tg)
                && !tg.sources.is_empty()
                && tg.sources.iter().all(|n| matches!(n, IpNet::V6(_)))
            {
                out.push(warn(format!(
                    "trunk group `{}` never matches: its sources are all IPv6 and it can only \
                     receive on IPv4 listeners",
                    tg.name
                )));
            }
        }
        out
    }

    /// Whether every listener `tg` can receive on is IPv4 (an IPv6 listener also receives
    /// IPv4, as mapped addresses).
    fn only_ipv4_listeners(&self, tg: &TrunkGroup) -> bool {
        let mut on = self
            .sip
            .listen
            .iter()
            .filter(|l| tg.listener.as_ref().is_none_or(|name| *name == l.name))
            .peekable();
        on.peek().is_some() && on.all(|l| l.addr.is_ipv4())
    }
}

/// Whether `earlier` matches every message `later` would match (so `later`, tried after it,
/// never does).
fn shadows(earlier: &TrunkGroup, later: &TrunkGroup) -> bool {
    let listener = match (&earlier.listener, &later.listener) {
        (None, _) => true,
        (Some(a), Some(b)) => a == b,
        (Some(_), None) => false,
    };
    if !listener {
        return false;
    }
    if earlier.sources.is_empty() {
        return true;
    }
    let any: [IpNet; 2] = [
        IpNet::V4(ipnet::Ipv4Net::default()),
        IpNet::V6(ipnet::Ipv6Net::default()),
    ];
    let wanted: &[IpNet] = if later.sources.is_empty() {
        &any
    } else {
        &later.sources
    };
    wanted
        .iter()
        .all(|n| earlier.sources.iter().any(|m| m.contains(n)))
}
