//! Subscription records and their indexes, laid out for a million entries.
//!
//! - `subs`: `SubId → Box<Sub>` (the table slot stays 16 bytes; the record lives in one
//!   allocation).
//! - `by_pui` (live subscriptions only) and `by_dialog` (live and lingering): `HashTable<SubId>`
//!   hashed by the default PUI / by (Call-ID, local tag) read from the record itself, so an index
//!   costs 8 bytes a slot and keys are never duplicated.
//! - Route sets and remote targets are interned (`Arc`): the subscriptions towards one S-CSCF
//!   share them.
//! - Call-ID, From tag and To tag share one `Box<str>`.
//!
//! Owns: memory layout and index consistency. Never: protocol decisions (see `engine`).

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashMap, HashSet, HashTable};

use super::limiter::Kind;
use super::timers::NEVER;
use super::types::{SubId, SubscribeKind};

/// An interned route set.
pub(super) type Route = Arc<[Box<str>]>;

/// One subscription (live, or lingering after an unsubscribe).
#[derive(Debug)]
pub(super) struct Sub {
    pub pui: Arc<str>,
    pub trunk_group: Arc<str>,
    /// Call-ID, then our (From) tag at `tag_at`, then the remote (To) tag at `to_at`.
    ids: Box<str>,
    tag_at: u16,
    to_at: u16,
    /// Route of the initial SUBSCRIBE (policy route).
    pub route0: Route,
    /// Dialog route set and remote target, once established.
    pub route: Option<Route>,
    pub target: Option<Arc<str>>,
    /// Known active PUIs of the implicit set other than the default PUI, `\n`-separated.
    others: Option<Box<str>>,
    /// Times in engine milliseconds (`timers::NEVER` = none).
    pub created: u64,
    pub granted_at: u64,
    pub refresh_at: u64,
    /// Subscription expiry; for a lingering record: when it is forgotten.
    pub expires_at: u64,
    /// The deadline currently in the timer heap.
    pub deadline: u64,
    pub version: u64,
    pub cseq: u32,
    pub requested: u32,
    /// Granted expiry in seconds (0 = not granted yet).
    pub granted: u32,
    /// CSeq of the refresh-type SUBSCRIBE awaiting its final response (with `inflight`).
    pub inflight_cseq: u32,
    pub inflight: Option<SubscribeKind>,
    /// Waiting in the limiter queue.
    pub queued: Option<Kind>,
    pub established: bool,
    pub lingering: bool,
    /// Unsubscribe wanted before the dialog existed: send it once it is established.
    pub deferred_unsub: bool,
    /// A version gap or a partial first document: ignore partial state until full state.
    pub await_full: bool,
    pub has_version: bool,
    /// The notifier said Subscription-State: pending.
    pub notifier_pending: bool,
}

impl Sub {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pui: Arc<str>,
        trunk_group: Arc<str>,
        call_id: &str,
        from_tag: &str,
        route0: Route,
        others: Option<Box<str>>,
        created: u64,
        requested: u32,
    ) -> Self {
        let ids: Box<str> = format!("{call_id}{from_tag}").into();
        let tag_at = u16::try_from(call_id.len()).unwrap_or(u16::MAX);
        let to_at = u16::try_from(ids.len()).unwrap_or(u16::MAX);
        Sub {
            pui,
            trunk_group,
            ids,
            tag_at,
            to_at,
            route0,
            route: None,
            target: None,
            others,
            created,
            granted_at: NEVER,
            refresh_at: NEVER,
            expires_at: NEVER,
            deadline: NEVER,
            version: 0,
            cseq: 1,
            requested,
            granted: 0,
            inflight_cseq: 1,
            inflight: Some(SubscribeKind::Initial),
            queued: None,
            established: false,
            lingering: false,
            deferred_unsub: false,
            await_full: false,
            has_version: false,
            notifier_pending: false,
        }
    }
    pub fn call_id(&self) -> &str {
        self.ids.get(..usize::from(self.tag_at)).unwrap_or("")
    }
    pub fn from_tag(&self) -> &str {
        self.ids
            .get(usize::from(self.tag_at)..usize::from(self.to_at))
            .unwrap_or("")
    }
    pub fn to_tag(&self) -> &str {
        self.ids.get(usize::from(self.to_at)..).unwrap_or("")
    }
    pub fn set_to_tag(&mut self, tag: &str) {
        let base = self.ids.get(..usize::from(self.to_at)).unwrap_or("");
        self.ids = format!("{base}{tag}").into();
    }
    /// The known non-default PUIs.
    pub fn others(&self) -> impl Iterator<Item = &str> {
        self.others
            .as_deref()
            .unwrap_or("")
            .split('\n')
            .filter(|s| !s.is_empty())
    }
    pub fn has_other(&self, pui: &str) -> bool {
        self.others().any(|p| p == pui)
    }
    pub fn add_other(&mut self, pui: &str) {
        if pui.is_empty() || pui.contains('\n') || self.has_other(pui) {
            return;
        }
        let joined = match self.others.as_deref() {
            Some(o) if !o.is_empty() => format!("{o}\n{pui}"),
            _ => pui.to_owned(),
        };
        self.others = Some(joined.into());
    }
    pub fn remove_other(&mut self, pui: &str) {
        let rest: Vec<&str> = self.others().filter(|p| *p != pui).collect();
        self.others = (!rest.is_empty()).then(|| rest.join("\n").into());
    }
    pub fn implicit_puis(&self) -> usize {
        1 + self.others().count()
    }
}

/// Joins the implicit set minus the default PUI (deduplicated) for `Sub::new`.
pub(super) fn others_of(default_pui: &str, associated: &[String]) -> Option<Box<str>> {
    let mut v: Vec<&str> = Vec::new();
    for p in associated {
        if p != default_pui && !p.is_empty() && !p.contains('\n') && !v.contains(&p.as_str()) {
            v.push(p);
        }
    }
    (!v.is_empty()).then(|| v.join("\n").into())
}

#[derive(Debug, Default)]
pub(super) struct Store {
    hasher: DefaultHashBuilder,
    pub subs: HashMap<SubId, Box<Sub>>,
    by_pui: HashTable<SubId>,
    by_dialog: HashTable<SubId>,
    routes: HashSet<Route>,
    targets: HashSet<Arc<str>>,
}

impl Store {
    fn pui_hash(h: &DefaultHashBuilder, pui: &str) -> u64 {
        h.hash_one(pui)
    }
    fn dialog_hash(h: &DefaultHashBuilder, call_id: &str, tag: &str) -> u64 {
        h.hash_one((call_id, tag))
    }
    /// Insert a new live subscription and index it.
    pub fn insert(&mut self, id: SubId, sub: Sub) {
        let hp = Self::pui_hash(&self.hasher, &sub.pui);
        let hd = Self::dialog_hash(&self.hasher, sub.call_id(), sub.from_tag());
        self.subs.insert(id, Box::new(sub));
        let (subs, h) = (&self.subs, &self.hasher);
        let rehash_pui = |i: &SubId| subs.get(i).map_or(0, |s| Self::pui_hash(h, &s.pui));
        self.by_pui.insert_unique(hp, id, rehash_pui);
        let rehash_dialog = |i: &SubId| {
            subs.get(i)
                .map_or(0, |s| Self::dialog_hash(h, s.call_id(), s.from_tag()))
        };
        self.by_dialog.insert_unique(hd, id, rehash_dialog);
    }
    pub fn get(&self, id: SubId) -> Option<&Sub> {
        self.subs.get(&id).map(|b| &**b)
    }
    pub fn get_mut(&mut self, id: SubId) -> Option<&mut Sub> {
        self.subs.get_mut(&id).map(|b| &mut **b)
    }
    /// The live subscription of a default PUI.
    pub fn by_pui(&self, pui: &str) -> Option<SubId> {
        let h = Self::pui_hash(&self.hasher, pui);
        let subs = &self.subs;
        self.by_pui
            .find(h, |i| subs.get(i).is_some_and(|s| &*s.pui == pui))
            .copied()
    }
    pub fn by_dialog(&self, call_id: &str, tag: &str) -> Option<SubId> {
        let h = Self::dialog_hash(&self.hasher, call_id, tag);
        let subs = &self.subs;
        self.by_dialog
            .find(h, |i| {
                subs.get(i)
                    .is_some_and(|s| s.call_id() == call_id && s.from_tag() == tag)
            })
            .copied()
    }
    /// Take a subscription out of the PUI index (it leaves the live list).
    pub fn unindex_pui(&mut self, id: SubId) {
        let Some(s) = self.subs.get(&id) else { return };
        let h = Self::pui_hash(&self.hasher, &s.pui);
        if let Ok(e) = self.by_pui.find_entry(h, |i| *i == id) {
            e.remove();
        }
    }
    /// Forget a subscription entirely.
    pub fn remove(&mut self, id: SubId) {
        self.unindex_pui(id);
        let Some(s) = self.subs.get(&id) else { return };
        let h = Self::dialog_hash(&self.hasher, s.call_id(), s.from_tag());
        if let Ok(e) = self.by_dialog.find_entry(h, |i| *i == id) {
            e.remove();
        }
        if let Some(s) = self.subs.remove(&id) {
            let Sub {
                route0,
                route,
                target,
                ..
            } = *s;
            self.release_route(route0);
            if let Some(r) = route {
                self.release_route(r);
            }
            if let Some(t) = target {
                self.release_target(t);
            }
        }
    }
    /// Set the dialog route set (interned) of `id`.
    pub fn set_route(&mut self, id: SubId, route: impl Iterator<Item = String>) {
        let r = self.intern_route(route);
        let old = self.subs.get_mut(&id).and_then(|s| s.route.replace(r));
        if let Some(o) = old {
            self.release_route(o);
        }
    }
    /// Set the remote target (interned) of `id`.
    pub fn set_target(&mut self, id: SubId, target: &str) {
        if self.subs.get(&id).and_then(|s| s.target.as_deref()) == Some(target) {
            return;
        }
        let t = self.intern_target(target);
        let old = self.subs.get_mut(&id).and_then(|s| s.target.replace(t));
        if let Some(o) = old {
            self.release_target(o);
        }
    }
    /// Number of live subscriptions (in the PUI index).
    pub fn live(&self) -> usize {
        self.by_pui.len()
    }
    pub fn intern_route(&mut self, route: impl Iterator<Item = String>) -> Route {
        let r: Route = route.map(String::into_boxed_str).collect();
        if let Some(found) = self.routes.get(&r) {
            return found.clone();
        }
        self.routes.insert(r.clone());
        r
    }
    pub fn intern_target(&mut self, target: &str) -> Arc<str> {
        if let Some(found) = self.targets.get(target) {
            return found.clone();
        }
        let t: Arc<str> = target.into();
        self.targets.insert(t.clone());
        t
    }
    /// Give up one user's copy; drop the interned copy when it was the last user.
    fn release_route(&mut self, r: Route) {
        if Arc::strong_count(&r) <= 2 {
            self.routes.remove(&r);
        }
    }
    fn release_target(&mut self, t: Arc<str>) {
        if Arc::strong_count(&t) <= 2 {
            self.targets.remove(&t);
        }
    }
    /// Interned values (for the memory report).
    pub fn interned(&self) -> (usize, usize) {
        (self.routes.len(), self.targets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(pui: &str, call: &str) -> Sub {
        Sub::new(
            pui.into(),
            "tg".into(),
            call,
            "tag1",
            Arc::from(Vec::new()),
            None,
            0,
            660,
        )
    }

    #[test]
    fn ids_and_tags() {
        let mut s = sub("sip:a@x", "c1@h");
        assert_eq!(
            (s.call_id(), s.from_tag(), s.to_tag()),
            ("c1@h", "tag1", "")
        );
        s.set_to_tag("rt");
        assert_eq!(
            (s.call_id(), s.from_tag(), s.to_tag()),
            ("c1@h", "tag1", "rt")
        );
    }

    #[test]
    fn others_set() {
        let assoc = vec![
            "sip:a@x".to_owned(),
            "sip:b@x".to_owned(),
            "tel:+1".to_owned(),
        ];
        let mut s = sub("sip:a@x", "c");
        s.others = others_of("sip:a@x", &assoc);
        assert_eq!(s.implicit_puis(), 3);
        s.add_other("sip:b@x");
        s.add_other("sip:c@x");
        assert_eq!(
            s.others().collect::<Vec<_>>(),
            ["sip:b@x", "tel:+1", "sip:c@x"]
        );
        s.remove_other("tel:+1");
        s.remove_other("sip:b@x");
        s.remove_other("sip:c@x");
        assert_eq!(s.implicit_puis(), 1);
    }

    #[test]
    fn indexes_and_interning() {
        let mut st = Store::default();
        for i in 0..1000u64 {
            let mut s = sub(&format!("sip:u{i}@x"), &format!("call{i}"));
            s.route0 = st.intern_route(["<sip:scscf;lr>".to_owned()].into_iter());
            st.insert(SubId(i), s);
            st.set_route(SubId(i), ["<sip:scscf;lr>".to_owned()].into_iter());
            st.set_target(SubId(i), "sip:scscf");
        }
        assert_eq!(st.interned(), (1, 1));
        assert_eq!(st.by_pui("sip:u7@x"), Some(SubId(7)));
        assert_eq!(st.by_dialog("call7", "tag1"), Some(SubId(7)));
        assert_eq!(st.by_dialog("call7", "tag2"), None);
        st.unindex_pui(SubId(7));
        assert_eq!(st.by_pui("sip:u7@x"), None);
        assert_eq!(st.by_dialog("call7", "tag1"), Some(SubId(7)));
        assert_eq!(st.live(), 999);
        for i in 0..1000u64 {
            st.remove(SubId(i));
        }
        assert_eq!(st.by_dialog("call7", "tag1"), None);
        assert_eq!(st.interned(), (0, 0));
    }
}
