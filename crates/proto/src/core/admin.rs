//! The operator's list of live subscriptions (SPEC §8), paged from the engine's records.
//!
//! Owns: turning records into [`SubscriptionRow`]s (Unix times from `Instant`s through the
//! caller's wall clock). Never: changes anything.

use std::time::{Instant, SystemTime};

use super::views::{
    BindingView, RegistrationView, SubscriptionFilter, SubscriptionPage, SubscriptionRow,
};
use crate::registrar::Registrar;
use crate::subscription::{Engine, SubId, SubState, SubscriptionView};

/// Unix seconds of `t`, given the wall-clock time `wall` at `now`.
fn unix_at(now: Instant, wall: SystemTime) -> impl Fn(Instant) -> f64 {
    // In whole nanoseconds first, converted once: the same instant reads the same seconds
    // whatever `now` the view was taken at (`wall` moves with `now` by the same amount).
    move |t: Instant| {
        let at = if t >= now {
            wall.checked_add(t - now)
        } else {
            wall.checked_sub(now - t)
        };
        at.and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64())
    }
}

/// The registration of `default_pui`, as operators see it.
pub(super) fn registration_view(
    registrar: &Registrar,
    default_pui: &str,
    now: Instant,
    wall: SystemTime,
) -> Option<RegistrationView> {
    let unix = unix_at(now, wall);
    let r = registrar.get(default_pui)?;
    Some(RegistrationView {
        default_pui: r.default_pui.to_string(),
        trunk_group: r.trunk_group.to_string(),
        implicit_puis: r.associated.iter().map(|p| p.to_string()).collect(),
        service_route: r.service_route.iter().map(|s| s.to_string()).collect(),
        bindings: r
            .bindings
            .iter()
            .map(|b| BindingView {
                contact: b.uri.to_string(),
                instance: b.instance.as_deref().map(str::to_owned),
                reg_id: b.reg_id,
                expires_at_unix: unix(registrar.instant(b.expires_at)),
                transport: b.flow.transport.name().to_owned(),
                source: b.flow.peer.to_string(),
                listener: b.flow.listener,
            })
            .collect(),
    })
}

/// A page of the live subscription list. `wall` is the wall-clock time at `now`.
pub(super) fn subscription_page(
    engine: &Engine,
    filter: &SubscriptionFilter,
    offset: usize,
    after: Option<u64>,
    limit: usize,
    now: Instant,
    wall: SystemTime,
) -> SubscriptionPage {
    let unix = unix_at(now, wall);
    let mut keep = |pui: &str, tg: &str, st: SubState| filter.matches_fields(pui, tg, st.as_str());
    let mut rows = Vec::with_capacity(limit.min(10_000));
    let mut push = |v: SubscriptionView| {
        rows.push(SubscriptionRow {
            id: v.id.0,
            package: "reg".into(),
            domain: pui_domain(&v.default_pui).to_string(),
            default_pui: v.default_pui.to_string(),
            trunk_group: v.trunk_group.to_string(),
            state: v.state.as_str().into(),
            call_id: v.call_id,
            registrar: v.registrar,
            requested_expiry_s: v.requested_expiry,
            granted_expiry_s: v.granted_expiry,
            expires_at_unix: v.expires_at.map(&unix),
            next_refresh_unix: v.next_refresh.map(&unix),
            created_unix: unix(v.created),
            last_notify_version: v.last_notify_version,
            implicit_puis: v.implicit_puis as u32,
        });
    };
    let total = match after {
        // The scrape's cursor over the whole table: O(page).
        Some(after) if filter.is_empty() => {
            engine.page_after(Some(SubId(after)), limit, &mut push);
            engine.len()
        }
        Some(after) => {
            let mut seen = 0;
            engine.page(&mut keep, 0, usize::MAX, &mut |v| {
                if v.id.0 > after && seen < limit {
                    seen += 1;
                    push(v);
                }
            })
        }
        None if filter.is_empty() && offset == 0 => {
            engine.page_after(None, limit, &mut push);
            engine.len()
        }
        None => engine.page(&mut keep, offset, limit, &mut push),
    };
    SubscriptionPage {
        total,
        offset,
        rows,
    }
}

/// The domain part of a PUI (`sip:alice@ims.example.net` → `ims.example.net`; tel → "").
pub fn pui_domain(pui: &str) -> &str {
    let rest = pui.split_once('@').map(|(_, d)| d).unwrap_or("");
    rest.split([';', '>', ':', '?']).next().unwrap_or("")
}
