//! Subscriptions as durable records (`crate::state`): export one, restore many at start-up.
//!
//! Restoring puts the dialog, CSeq, route set, remote target, expiries, refresh time and reginfo
//! version back as they were, and re-arms the timers at their wall-clock times. What was in
//! flight when the process stopped has no transaction any more, so:
//! - a queued or in-flight refresh / full-state request is queued again (through the rate
//!   limiter: overdue refreshes after a long stop are spread, never a burst);
//! - an initial SUBSCRIBE without an established dialog waits one Timer F (64×T1) for the
//!   notifier's NOTIFY, which still establishes it; without one the subscription is dropped as
//!   expired (no new initial SUBSCRIBE: the vendor never retries);
//! - deadlines that passed while the process was down are due at once, so expiries take effect
//!   as they would have.
//!
//! Never: decides anything new — a restored subscription behaves as if the process had been up.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use super::engine::Engine;
use super::limiter::Kind;
use super::store::{Life, Request, Sub};
use super::timers::{add_dur, NEVER};
use super::types::{SubId, SubscribeKind};
use crate::state::{LifeRecord, RequestRecord, SubscriptionRecord};
use crate::time::Wall;

impl Engine {
    /// The durable record of subscription `id` (live or lingering).
    pub fn export(&self, id: SubId, wall: &Wall) -> Option<SubscriptionRecord<'_>> {
        let s = self.store.get(id)?;
        let at = |ms: u64| self.clock.unix(ms, wall);
        Some(SubscriptionRecord {
            id: id.0,
            default_pui: Cow::Borrowed(&s.pui),
            trunk_group: Cow::Borrowed(&s.trunk_group),
            call_key: s.call_key,
            tag_key: s.tag_key,
            to_tag: Some(s.to_tag())
                .filter(|t| !t.is_empty())
                .map(Cow::Borrowed),
            route0: s.route0.iter().map(|r| Cow::Borrowed(&**r)).collect(),
            remote: s.remote.as_deref().map(|r| {
                (
                    r.route.iter().map(|x| Cow::Borrowed(&**x)).collect(),
                    Cow::Borrowed(&*r.target),
                )
            }),
            others: s.others().map(Cow::Borrowed).collect(),
            created: at(s.created).unwrap_or(0),
            refresh_at: at(s.refresh_at),
            expires_at: at(s.expires_at),
            version: s.version,
            cseq: s.cseq,
            requested: s.requested,
            granted: s.granted,
            request: match s.request {
                Request::Idle => RequestRecord::Idle,
                Request::Queued(Kind::Refresh) => RequestRecord::QueuedRefresh,
                Request::Queued(Kind::FullState) => RequestRecord::QueuedFullState,
                Request::InFlight { kind, .. } => match kind {
                    SubscribeKind::Initial => RequestRecord::InFlightInitial,
                    SubscribeKind::FullStateRequest => RequestRecord::InFlightFullState,
                    SubscribeKind::Refresh | SubscribeKind::Unsubscribe => {
                        RequestRecord::InFlightRefresh
                    }
                },
            },
            life: match s.life {
                Life::Live => LifeRecord::Live,
                Life::Lingering => LifeRecord::Lingering,
                Life::LingeringUntilDialog => LifeRecord::LingeringUntilDialog,
            },
            await_full: s.await_full,
            notifier_pending: s.notifier_pending,
        })
    }

    /// Every subscription (live and lingering) with its default PUI, in id order.
    pub fn for_each_sub(&self, f: &mut dyn FnMut(SubId, &Arc<str>)) {
        for id in &self.store.order {
            if let Some(s) = self.store.get(*id) {
                f(*id, &s.pui);
            }
        }
    }

    /// The next subscription id (a store keeps it so that no id is handed out twice).
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Never hand out an id below `next`.
    pub fn reserve_ids(&mut self, next: u64) {
        self.next_id = self.next_id.max(next);
    }

    /// Put back one subscription from its record, at start-up before any message. Records come
    /// in id order: one whose id is not above every id restored before it is skipped, as is one
    /// whose default PUI already has a live subscription. Whether it was restored.
    /// [`Engine::finish_restore`] after the last.
    pub fn restore_one(&mut self, now: Instant, r: &SubscriptionRecord<'_>, wall: &Wall) -> bool {
        let t = self.clock.ms(now);
        let id = SubId(r.id);
        let live = r.life == LifeRecord::Live;
        let dup = self.store.get(id).is_some()
            || (live && self.store.by_pui(&r.default_pui).is_some())
            || self.store.order.last().is_some_and(|last| *last >= id);
        if dup {
            return false;
        }
        let clock = &self.clock;
        let ms = |u: u64| clock.of_unix(u, wall);
        let pui: Arc<str> = Arc::from(&*r.default_pui);
        let route0 = self
            .store
            .intern_route(r.route0.iter().map(|x| x.to_string()));
        let others: Option<Arc<[Arc<str>]>> =
            (!r.others.is_empty()).then(|| r.others.iter().map(|o| Arc::from(&**o)).collect());
        let mut s = Sub::new(
            pui,
            Arc::from(&*r.trunk_group),
            r.call_key,
            r.tag_key,
            route0,
            others,
            ms(r.created),
            r.requested,
        );
        if let Some(tag) = &r.to_tag {
            s.set_to_tag(tag);
        }
        s.refresh_at = r.refresh_at.map_or(NEVER, ms);
        s.expires_at = r.expires_at.map_or(NEVER, ms);
        s.version = r.version;
        s.cseq = r.cseq;
        s.granted = r.granted;
        s.await_full = r.await_full;
        s.notifier_pending = r.notifier_pending;
        s.life = match r.life {
            LifeRecord::Live => Life::Live,
            LifeRecord::Lingering => Life::Lingering,
            LifeRecord::LingeringUntilDialog => Life::LingeringUntilDialog,
        };
        s.request = Request::Idle;
        self.store.insert(id, s);
        self.reserve_ids(r.id + 1);
        if let Some((route, target)) = &r.remote {
            let route = route.iter().map(|x| x.to_string()).collect();
            self.store.set_remote(id, Some(route), Some(target));
        }
        if !live {
            self.store.unindex_pui(id);
        } else {
            self.rearm(t, id, r.request);
        }
        self.reschedule(id);
        true
    }

    /// After the last [`Engine::restore_one`].
    pub fn finish_restore(&mut self) {
        self.tidy();
    }

    /// A restored registration on a reg-event trunk group: blind (counted) unless it has a live
    /// subscription.
    pub fn restore_registration(&mut self, default_pui: &Arc<str>, trunk_group: &Arc<str>) {
        if self.store.by_pui(default_pui).is_none() {
            self.blind.insert(default_pui.clone(), trunk_group.clone());
        }
    }

    /// What was waiting or in flight when the process stopped (see the module docs).
    fn rearm(&mut self, t: u64, id: SubId, request: RequestRecord) {
        let linger = self.cfg.linger;
        let Some(s) = self.store.get_mut(id) else {
            return;
        };
        let kind = match request {
            RequestRecord::Idle => None,
            RequestRecord::QueuedRefresh | RequestRecord::InFlightRefresh => Some(Kind::Refresh),
            RequestRecord::QueuedFullState | RequestRecord::InFlightFullState => {
                Some(Kind::FullState)
            }
            RequestRecord::InFlightInitial => {
                if s.granted == 0 {
                    // One Timer F for a NOTIFY to establish it; then dropped as expired.
                    s.expires_at = add_dur(t, linger);
                }
                None
            }
        };
        if let Some(kind) = kind.filter(|_| s.is_established()) {
            s.request = Request::Queued(kind);
            let key = match kind {
                Kind::Refresh => s.expires_at,
                Kind::FullState => t,
            };
            self.limiter.enqueue(key, id, kind);
        }
    }
}
