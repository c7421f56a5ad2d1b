//! The pluggable SUBSCRIBE routing policy for the visited network (SPEC §2.4; stands in for an
//! external policy server).

use crate::settings::Profile;

/// Routing policy for SUBSCRIBEs of a visited-network trunk group. The default returns the
/// profile's static `subscribe_route`; an operator's policy server plugs in here.
pub trait RoutePolicy: Send + Sync + std::fmt::Debug {
    fn subscribe_route(
        &self,
        trunk_group: &str,
        profile: &Profile,
        default_pui: &str,
    ) -> Vec<String>;
}

/// The profile's `subscribe_route`, as configured.
#[derive(Debug, Default, Clone, Copy)]
pub struct StaticRoutePolicy;

impl RoutePolicy for StaticRoutePolicy {
    fn subscribe_route(
        &self,
        _trunk_group: &str,
        profile: &Profile,
        _default_pui: &str,
    ) -> Vec<String> {
        profile.subscribe_route.clone()
    }
}
