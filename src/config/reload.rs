//! What a reload (SIGHUP) takes from a new configuration, and what only a restart changes.
//!
//! Owns: the split of every key into "applies on reload" and "restart only", and the
//! configuration the running gateway goes on with. Never: reading files (the caller loads and
//! validates the whole new configuration first, with [`Config::load`]) or signals.

use super::settings::{
    AdminSettings, Config, ConfigError, ConfigErrors, LimitsSettings, SipSettings, StateSettings,
    SubscriptionSettings,
};
use regevent_proto::core::OverloadSettings;

/// What a reload applies: the trunk groups (`[[trunk_group]]`) and the profiles (the files in
/// `profiles.dir`, and that key itself). New registrations follow them; live registrations and
/// subscriptions keep what they had.
pub const RELOADABLE: &[&str] = &["trunk_group", "profiles.dir", "profiles/*.toml"];

/// Keys read only at start-up. A reload keeps their running values and warns for each one the
/// new file changes.
pub const RESTART_ONLY: &[&str] = &[
    "sip.listen",
    "sip.identity",
    "sip.core",
    "sip.t1",
    "sip.t2",
    "sip.p_asserted_identity",
    "sip.max_forwards",
    "sip.coalesce",
    "admin.listen",
    "admin.subscription_series_cap",
    "subscription.expiry_margin",
    "subscription.max_subscribe_rate",
    "limits.max_message",
    "limits.max_message_tcp",
    "limits.reginfo_max_bytes",
    "limits.reginfo_max_depth",
    "limits.expected_registrations",
    "overload.enabled",
    "overload.max_delay",
    "overload.max_queue",
    "overload.max_queue_bytes",
    "overload.max_transactions",
    "overload.retry_after_min",
    "overload.retry_after_max",
    "state.backend",
    "state.dir",
    "state.commit",
    "state.url",
    "state.prefix",
    "state.standby",
    "state.lease",
];

/// The outcome of [`Config::reload`].
#[derive(Debug, Clone, PartialEq)]
pub struct Reload {
    /// What the gateway runs with from now on: the new trunk groups and profiles, every
    /// restart-only key as it was.
    pub applied: Config,
    /// Restart-only keys whose value in the new configuration differs from the running one
    /// (in [`RESTART_ONLY`] order). They take effect at the next restart.
    pub restart_only_changed: Vec<&'static str>,
}

impl Config {
    /// Take a new, already validated configuration (`Config::load`) into this running one.
    /// Fails when the new trunk groups cannot run with the running listeners (a trunk group's
    /// `listener` that only the new, not yet applied, `sip.listen` has).
    pub fn reload(&self, new: Config) -> Result<Reload, ConfigErrors> {
        // Every field is named so that a new key cannot be added without deciding here whether
        // a reload applies it.
        let Config {
            file,
            sip,
            admin,
            subscription,
            limits,
            profiles_dir,
            trunk_groups,
            profiles,
            state,
            overload,
        } = new;
        let SipSettings {
            listen,
            identity,
            core,
            t1,
            t2,
            p_asserted_identity,
            max_forwards,
            coalesce,
        } = &sip;
        let AdminSettings {
            listen: admin_listen,
            subscription_series_cap,
        } = &admin;
        let SubscriptionSettings {
            expiry_margin,
            max_subscribe_rate,
        } = &subscription;
        let LimitsSettings {
            max_message,
            max_message_tcp,
            reginfo_max_bytes,
            reginfo_max_depth,
            expected_registrations,
        } = &limits;
        let StateSettings {
            backend,
            dir,
            commit,
            url,
            prefix,
            standby,
            lease,
        } = &state;
        let OverloadSettings {
            enabled: overload_enabled,
            max_delay,
            max_queue,
            max_queue_bytes,
            max_transactions,
            retry_after_min,
            retry_after_max,
        } = &overload;
        let run = self;
        let differs = [
            ("sip.listen", *listen != run.sip.listen),
            ("sip.identity", *identity != run.sip.identity),
            ("sip.core", *core != run.sip.core),
            ("sip.t1", *t1 != run.sip.t1),
            ("sip.t2", *t2 != run.sip.t2),
            (
                "sip.p_asserted_identity",
                *p_asserted_identity != run.sip.p_asserted_identity,
            ),
            ("sip.max_forwards", *max_forwards != run.sip.max_forwards),
            ("sip.coalesce", *coalesce != run.sip.coalesce),
            ("admin.listen", *admin_listen != run.admin.listen),
            (
                "admin.subscription_series_cap",
                *subscription_series_cap != run.admin.subscription_series_cap,
            ),
            (
                "subscription.expiry_margin",
                *expiry_margin != run.subscription.expiry_margin,
            ),
            (
                "subscription.max_subscribe_rate",
                *max_subscribe_rate != run.subscription.max_subscribe_rate,
            ),
            ("limits.max_message", *max_message != run.limits.max_message),
            (
                "limits.max_message_tcp",
                *max_message_tcp != run.limits.max_message_tcp,
            ),
            (
                "limits.reginfo_max_bytes",
                *reginfo_max_bytes != run.limits.reginfo_max_bytes,
            ),
            (
                "limits.reginfo_max_depth",
                *reginfo_max_depth != run.limits.reginfo_max_depth,
            ),
            (
                "limits.expected_registrations",
                *expected_registrations != run.limits.expected_registrations,
            ),
            (
                "overload.enabled",
                *overload_enabled != run.overload.enabled,
            ),
            ("overload.max_delay", *max_delay != run.overload.max_delay),
            ("overload.max_queue", *max_queue != run.overload.max_queue),
            (
                "overload.max_queue_bytes",
                *max_queue_bytes != run.overload.max_queue_bytes,
            ),
            (
                "overload.max_transactions",
                *max_transactions != run.overload.max_transactions,
            ),
            (
                "overload.retry_after_min",
                *retry_after_min != run.overload.retry_after_min,
            ),
            (
                "overload.retry_after_max",
                *retry_after_max != run.overload.retry_after_max,
            ),
            ("state.backend", *backend != run.state.backend),
            ("state.dir", *dir != run.state.dir),
            ("state.commit", *commit != run.state.commit),
            ("state.url", *url != run.state.url),
            ("state.prefix", *prefix != run.state.prefix),
            ("state.standby", *standby != run.state.standby),
            ("state.lease", *lease != run.state.lease),
        ];
        debug_assert!(differs
            .iter()
            .map(|(k, _)| *k)
            .eq(RESTART_ONLY.iter().copied()));
        let restart_only_changed = differs
            .iter()
            .filter(|(_, changed)| *changed)
            .map(|(key, _)| *key)
            .collect();

        let file_name = super::load::file_label(file.as_deref());
        let running: Vec<&str> = run.sip.listen.iter().map(|l| l.name.as_str()).collect();
        let errors: Vec<ConfigError> = trunk_groups
            .iter()
            .enumerate()
            .filter_map(|(i, tg)| {
                let l = tg.listener.as_deref()?;
                (!running.contains(&l)).then(|| ConfigError {
                    file: file_name.clone(),
                    key: format!("trunk_group[{i}].listener"),
                    position: None,
                    problem: format!(
                        "`{l}` is not a listener of the running gateway ({}): a new sip.listen \
                         applies only after a restart",
                        running.join(", ")
                    ),
                })
            })
            .collect();
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Reload {
            applied: Config {
                file,
                profiles_dir,
                trunk_groups,
                profiles,
                ..run.clone()
            },
            restart_only_changed,
        })
    }
}
