//! Subscription records and their indexes, laid out for a million entries.
//!
//! - `subs`: `SubId → Box<Sub>` (the table slot stays 16 bytes; the record lives in one
//!   allocation).
//! - `by_pui` (live subscriptions only): `HashTable<SubId>` hashed by the default PUI read from
//!   the record itself, so the index costs 8 bytes a slot and the key is never duplicated.
//! - No dialog index: our Call-ID is `{call_key:016x}{id:x}@{host}` and our From tag
//!   `{tag_key:016x}`, with `call_key`/`tag_key` random 64-bit values kept in the record.
//!   `by_dialog` reads the SubId out of the Call-ID and then requires both random parts and the
//!   host to match exactly, which finds live and lingering subscriptions in O(1) for 16 bytes of
//!   record and no allocation.
//! - Route sets and (route set, remote target) pairs are interned (`Arc`): the subscriptions
//!   towards one S-CSCF share them. Only the remote tag is a per-dialog allocation.
//!
//! Owns: memory layout and index consistency. Never: protocol decisions (see `engine`).

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashMap, HashSet, HashTable};

use super::engine::state_of;
use super::limiter::Kind;
use super::timers::NEVER;
use super::types::{SubId, SubState, SubscribeKind};
use crate::sip::writer::push_hex;

/// An interned route set.
pub(super) type Route = Arc<[Box<str>]>;

/// The far end of a dialog (interned): route set and remote target.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct Remote {
    pub route: Box<[Box<str>]>,
    pub target: Box<str>,
}

/// One subscription (live, or lingering after an unsubscribe).
#[derive(Debug)]
pub(super) struct Sub {
    pub pui: Arc<str>,
    pub trunk_group: Arc<str>,
    /// Random parts of our Call-ID (`{call_key:016x}{id:x}@{host}`) and From tag
    /// (`{tag_key:016x}`): rendered on demand, parsed back by `Store::by_dialog`.
    pub call_key: u64,
    pub tag_key: u64,
    /// The remote (To) tag, once the dialog exists.
    to_tag: Option<Box<str>>,
    /// Route of the initial SUBSCRIBE (policy route).
    pub route0: Route,
    /// Dialog route set and remote target, once established.
    pub remote: Option<Arc<Remote>>,
    /// Known active PUIs of the implicit set: those of this list other than the default PUI
    /// (first occurrences). Initially the registration's own list (shared, not copied); a
    /// NOTIFY that changes the set gives the subscription a list of its own.
    others: Option<Arc<[Arc<str>]>>,
    /// Times in engine milliseconds (`timers::NEVER` = none).
    pub created: u64,
    pub refresh_at: u64,
    /// Subscription expiry; for a lingering record: when it is forgotten.
    pub expires_at: u64,
    /// The deadline currently in the timer queue.
    pub deadline: u64,
    /// The last reginfo version applied, once a document was.
    pub version: Option<u64>,
    pub cseq: u32,
    pub requested: u32,
    /// Granted expiry in seconds (0 = not granted yet).
    pub granted: u32,
    /// The SUBSCRIBE of this subscription waiting or in flight, if any.
    pub request: Request,
    pub life: Life,
    /// A version gap or a partial first document: ignore partial state until full state.
    pub await_full: bool,
    /// The notifier said Subscription-State: pending.
    pub notifier_pending: bool,
}

/// A subscription's own SUBSCRIBE, between the engine deciding to send it and its final
/// response. (The unsubscribe is not tracked here: a lingering record absorbs its response.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Request {
    Idle,
    /// Waiting for the rate limiter.
    Queued(Kind),
    /// Sent with this CSeq; the final response (or Timer F) ends it.
    InFlight {
        kind: SubscribeKind,
        cseq: u32,
    },
}

/// Where a subscription is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Life {
    /// In the live list.
    Live,
    /// Unsubscribed (or dropped while its dialog may still speak): out of the live list, kept
    /// for the linger time so the final NOTIFY and the unsubscribe's response are absorbed.
    Lingering,
    /// Lingering, and the unsubscribe waits for the dialog (no 2xx and no NOTIFY yet): it is
    /// sent as soon as one establishes it.
    LingeringUntilDialog,
}

impl Sub {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pui: Arc<str>,
        trunk_group: Arc<str>,
        call_key: u64,
        tag_key: u64,
        route0: Route,
        others: Option<Arc<[Arc<str>]>>,
        created: u64,
        requested: u32,
    ) -> Self {
        Sub {
            pui,
            trunk_group,
            call_key,
            tag_key,
            to_tag: None,
            route0,
            remote: None,
            others,
            created,
            refresh_at: NEVER,
            expires_at: NEVER,
            deadline: NEVER,
            version: None,
            cseq: 1,
            requested,
            granted: 0,
            request: Request::InFlight {
                kind: SubscribeKind::Initial,
                cseq: 1,
            },
            life: Life::Live,
            await_full: false,
            notifier_pending: false,
        }
    }
    /// Out of the live list (unsubscribed), kept for the final NOTIFY.
    pub fn is_lingering(&self) -> bool {
        self.life != Life::Live
    }
    /// The dialog exists (a 2xx or a NOTIFY gave its remote tag, route set and target).
    pub fn is_established(&self) -> bool {
        self.remote.is_some()
    }
    /// The kind of the SUBSCRIBE in flight, if any.
    pub fn in_flight(&self) -> Option<SubscribeKind> {
        match self.request {
            Request::InFlight { kind, .. } => Some(kind),
            _ => None,
        }
    }
    pub fn local_tag(&self) -> String {
        let mut t = String::with_capacity(16);
        push_hex(&mut t, self.tag_key, 16);
        t
    }
    pub fn to_tag(&self) -> &str {
        self.to_tag.as_deref().unwrap_or("")
    }
    pub fn set_to_tag(&mut self, tag: &str) {
        self.to_tag = (!tag.is_empty()).then(|| tag.into());
    }
    /// The known non-default PUIs.
    pub fn others(&self) -> impl Iterator<Item = &str> {
        let list: &[Arc<str>] = self.others.as_deref().unwrap_or(&[]);
        list.iter()
            .enumerate()
            .filter(|(i, p)| valid_other(&self.pui, p) && !list[..*i].iter().any(|q| **q == ***p))
            .map(|(_, p)| &**p)
    }
    pub fn has_other(&self, pui: &str) -> bool {
        self.others().any(|p| p == pui)
    }
    pub fn add_other(&mut self, pui: &str) {
        if !valid_other(&self.pui, pui) || self.has_other(pui) {
            return;
        }
        let mut v: Vec<Arc<str>> = self.others().map(Arc::from).collect();
        v.push(Arc::from(pui));
        self.others = Some(v.into());
    }
    pub fn remove_other(&mut self, pui: &str) {
        if !self.has_other(pui) {
            return;
        }
        let rest: Vec<Arc<str>> = self.others().filter(|p| *p != pui).map(Arc::from).collect();
        self.others = (!rest.is_empty()).then(|| rest.into());
    }
    pub fn implicit_puis(&self) -> usize {
        1 + self.others().count()
    }
}

/// A PUI that counts as another member of the implicit set of `default_pui`.
fn valid_other(default_pui: &str, p: &str) -> bool {
    p != default_pui && !p.is_empty()
}

/// The implicit set for `Sub::new`: the registration's list itself when it names another PUI.
pub(super) fn others_of(
    default_pui: &str,
    associated: &Arc<[Arc<str>]>,
) -> Option<Arc<[Arc<str>]>> {
    associated
        .iter()
        .any(|p| valid_other(default_pui, p))
        .then(|| associated.clone())
}

/// `s` is `v` as `format!("{v:0w$x}")` would write it (lowercase, zero-padded to `w` digits).
fn is_hex(s: &str, v: u64, w: usize) -> bool {
    let digits = (64 - v.leading_zeros()).div_ceil(4).max(1) as usize;
    let s = s.as_bytes();
    if s.len() != digits.max(w) {
        return false;
    }
    s.iter().enumerate().all(|(i, &c)| {
        let shift = 4 * (s.len() - 1 - i);
        let nibble = if shift >= 64 { 0 } else { (v >> shift) & 15 };
        c == b"0123456789abcdef"[nibble as usize]
    })
}

#[derive(Debug, Default)]
pub(super) struct Store {
    hasher: DefaultHashBuilder,
    /// Host part of our Call-IDs.
    host: Box<str>,
    pub subs: HashMap<SubId, Box<Sub>>,
    by_pui: HashTable<SubId>,
    routes: HashSet<Route>,
    remotes: HashSet<Arc<Remote>>,
    /// Every inserted id in increasing order (ids only grow); removed ids stay until a
    /// compaction (when they are half the list). Pages of the operator's list walk it: O(page).
    pub order: Vec<SubId>,
    removed_in_order: usize,
    /// Live subscriptions per (trunk group, state), as of the last `flush_counts`.
    counts: Counts,
    /// Records handed out by `get_mut` since the last `flush_counts`, with the state they were
    /// counted in then (first entry per id wins).
    dirty: Vec<(SubId, Option<SubState>)>,
    /// Records changed, inserted or removed since the last `take_touched` (with repeats), with
    /// their default PUI.
    touched: Vec<(SubId, Arc<str>)>,
}

/// The state a record is counted in (`None`: lingering records are not counted).
fn counted(s: &Sub) -> Option<SubState> {
    (!s.is_lingering()).then(|| state_of(s))
}

/// Per-(trunk group, state) counters. Trunk groups are few: a linear search (pointer
/// comparison first) beats hashing the name.
#[derive(Debug, Default, Clone)]
struct Counts {
    groups: Vec<(Arc<str>, [i64; 4])>,
}

fn state_index(st: SubState) -> usize {
    match st {
        SubState::Pending => 0,
        SubState::Active => 1,
        SubState::Refreshing => 2,
        SubState::Unsubscribing => 3,
    }
}

const STATES: [SubState; 4] = [
    SubState::Pending,
    SubState::Active,
    SubState::Refreshing,
    SubState::Unsubscribing,
];

impl Counts {
    fn add(&mut self, tg: &Arc<str>, st: Option<SubState>, delta: i64) {
        let Some(st) = st else { return };
        let i = match self
            .groups
            .iter()
            .position(|(g, _)| Arc::ptr_eq(g, tg) || **g == **tg)
        {
            Some(i) => i,
            None => {
                self.groups.push((tg.clone(), [0; 4]));
                self.groups.len() - 1
            }
        };
        self.groups[i].1[state_index(st)] += delta;
    }
    fn to_vec(&self) -> Vec<(Arc<str>, SubState, usize)> {
        let mut v = Vec::new();
        for (tg, n) in &self.groups {
            for (st, n) in STATES.iter().zip(n) {
                if *n > 0 {
                    v.push((tg.clone(), *st, usize::try_from(*n).unwrap_or(0)));
                }
            }
        }
        v
    }
}

impl Store {
    pub fn new(host: &str) -> Self {
        Store {
            host: host.into(),
            ..Store::default()
        }
    }
    /// Render the Call-ID of subscription `id`.
    pub fn call_id(&self, id: SubId, s: &Sub) -> String {
        let mut c = String::with_capacity(34 + self.host.len());
        push_hex(&mut c, s.call_key, 16);
        push_hex(&mut c, id.0, 0);
        c.push('@');
        c.push_str(&self.host);
        c
    }
    fn pui_hash(h: &DefaultHashBuilder, pui: &str) -> u64 {
        h.hash_one(pui)
    }
    /// Room for `n` subscriptions without growing a table.
    pub fn reserve(&mut self, n: usize) {
        self.subs.reserve(n);
        self.order.reserve(n);
        let (subs, h) = (&self.subs, &self.hasher);
        self.by_pui
            .reserve(n, |i| subs.get(i).map_or(0, |s| Self::pui_hash(h, &s.pui)));
        crate::memory::prefault(&mut self.by_pui, || SubId(0));
    }
    /// Insert a new live subscription and index it.
    pub fn insert(&mut self, id: SubId, sub: Sub) {
        self.counts.add(&sub.trunk_group, counted(&sub), 1);
        let hp = Self::pui_hash(&self.hasher, &sub.pui);
        self.touched.push((id, sub.pui.clone()));
        self.subs.insert(id, Box::new(sub));
        debug_assert!(self.order.last().is_none_or(|l| *l < id));
        self.order.push(id);
        let (subs, h) = (&self.subs, &self.hasher);
        let rehash_pui = |i: &SubId| subs.get(i).map_or(0, |s| Self::pui_hash(h, &s.pui));
        self.by_pui.insert_unique(hp, id, rehash_pui);
    }
    pub fn get(&self, id: SubId) -> Option<&Sub> {
        self.subs.get(&id).map(|b| &**b)
    }
    /// The record, for a change: its state is recounted at the next `flush_counts`.
    pub fn get_mut(&mut self, id: SubId) -> Option<&mut Sub> {
        if self.dirty.len() >= 1024 {
            self.flush_counts();
        }
        let s = self.subs.get_mut(&id)?;
        self.dirty.push((id, counted(s)));
        self.touched.push((id, s.pui.clone()));
        Some(&mut **s)
    }
    /// Bring the per-(trunk group, state) counts up to date with the records changed since the
    /// last flush: O(changed records).
    pub fn flush_counts(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        // Stable: the first entry of an id (its state when counted) stays first.
        self.dirty.sort_by_key(|(id, _)| *id);
        self.dirty.dedup_by_key(|(id, _)| *id);
        for (id, before) in self.dirty.drain(..) {
            if let Some(s) = self.subs.get(&id) {
                let now = counted(s);
                if now != before {
                    self.counts.add(&s.trunk_group, before, -1);
                    self.counts.add(&s.trunk_group, now, 1);
                }
            }
        }
    }
    /// Live subscriptions per (trunk group, state) with a non-zero count: O(trunk groups +
    /// records changed since the last flush).
    pub fn counts(&self) -> Vec<(Arc<str>, SubState, usize)> {
        if self.dirty.is_empty() {
            return self.counts.to_vec();
        }
        let mut c = self.counts.clone();
        let mut dirty = self.dirty.clone();
        dirty.sort_by_key(|(id, _)| *id);
        dirty.dedup_by_key(|(id, _)| *id);
        for (id, before) in dirty {
            if let Some(s) = self.subs.get(&id) {
                c.add(&s.trunk_group, before, -1);
                c.add(&s.trunk_group, counted(s), 1);
            }
        }
        c.to_vec()
    }
    /// The same by a walk over every record (tests compare the two).
    #[cfg(test)]
    pub fn counts_by_walk(&self) -> Vec<(Arc<str>, SubState, usize)> {
        let mut c = Counts::default();
        for s in self.subs.values() {
            c.add(&s.trunk_group, counted(s), 1);
        }
        c.to_vec()
    }
    /// The live subscription of a default PUI.
    pub fn by_pui(&self, pui: &str) -> Option<SubId> {
        let h = Self::pui_hash(&self.hasher, pui);
        let subs = &self.subs;
        self.by_pui
            .find(h, |i| subs.get(i).is_some_and(|s| &*s.pui == pui))
            .copied()
    }
    /// The subscription (live or lingering) whose Call-ID and From tag these are. The SubId is
    /// read from the Call-ID, then both random parts must match exactly.
    pub fn by_dialog(&self, call_id: &str, tag: &str) -> Option<SubId> {
        let (prefix, host) = call_id.rsplit_once('@')?;
        if host != &*self.host || tag.len() != 16 {
            return None;
        }
        let (key_hex, id_hex) = (prefix.get(..16)?, prefix.get(16..)?);
        let key = u64::from_str_radix(key_hex, 16).ok()?;
        let id = SubId(u64::from_str_radix(id_hex, 16).ok()?);
        let s = self.subs.get(&id)?;
        // Exactly what `call_id` and `local_tag` render, compared without rendering them (this
        // runs for every NOTIFY).
        let exact = s.call_key == key
            && is_hex(key_hex, key, 16)
            && is_hex(id_hex, id.0, 1)
            && is_hex(tag, s.tag_key, 16);
        exact.then_some(id)
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
        if let Some(s) = self.subs.get(&id) {
            self.touched.push((id, s.pui.clone()));
        }
        self.unindex_pui(id);
        self.flush_counts();
        if let Some(s) = self.subs.remove(&id) {
            self.counts.add(&s.trunk_group, counted(&s), -1);
            self.removed_in_order += 1;
            if self.removed_in_order > self.order.len() / 2 {
                let subs = &self.subs;
                self.order.retain(|i| subs.contains_key(i));
                self.removed_in_order = 0;
            }
            let Sub { route0, remote, .. } = *s;
            self.release_route(route0);
            if let Some(r) = remote {
                self.release_remote(r);
            }
        }
    }
    /// Set the dialog's route set and/or remote target (interned); `None` keeps the current one.
    pub fn set_remote(&mut self, id: SubId, route: Option<Vec<String>>, target: Option<&str>) {
        let Some(cur) = self.subs.get(&id).map(|s| s.remote.as_deref()) else {
            return;
        };
        let route: Box<[Box<str>]> = match (route, cur) {
            (Some(r), _) => r.into_iter().map(String::into_boxed_str).collect(),
            (None, Some(c)) => c.route.clone(),
            (None, None) => Box::default(),
        };
        let target: Box<str> = match (target, cur) {
            (Some(t), _) => t.into(),
            (None, Some(c)) => c.target.clone(),
            (None, None) => "".into(),
        };
        let new = Remote { route, target };
        if cur == Some(&new) {
            return;
        }
        let r = match self.remotes.get(&new) {
            Some(found) => found.clone(),
            None => {
                let r = Arc::new(new);
                self.remotes.insert(r.clone());
                r
            }
        };
        let old = self.subs.get_mut(&id).and_then(|s| {
            self.touched.push((id, s.pui.clone()));
            s.remote.replace(r)
        });
        if let Some(o) = old {
            self.release_remote(o);
        }
    }
    /// Subscriptions touched since the last call (with repeats).
    pub fn take_touched(&mut self, out: &mut Vec<(SubId, Arc<str>)>) {
        out.append(&mut self.touched);
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
    /// Give up one user's copy; drop the interned copy when it was the last user.
    fn release_route(&mut self, r: Route) {
        if Arc::strong_count(&r) <= 2 {
            self.routes.remove(&r);
        }
    }
    fn release_remote(&mut self, r: Arc<Remote>) {
        if Arc::strong_count(&r) <= 2 {
            self.remotes.remove(&r);
        }
    }
    /// Rough heap bytes: table slots at capacity (+1 control byte), records, remote tags.
    pub fn memory_estimate(&self) -> usize {
        let slot = std::mem::size_of::<(SubId, Box<Sub>)>() + 1;
        let record = std::mem::size_of::<Sub>().div_ceil(16) * 16 + 16;
        let tags: usize = self
            .subs
            .values()
            .map(|s| s.to_tag().len().div_ceil(16) * 16 + 16)
            .sum();
        self.subs.capacity() * slot
            + self.by_pui.capacity() * (std::mem::size_of::<SubId>() + 1)
            + self.subs.len() * record
            + tags
    }
    /// Interned route sets and remotes (for the memory report).
    pub fn interned(&self) -> (usize, usize) {
        (self.routes.len(), self.remotes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_hex_matches_format_exactly() {
        for v in [0u64, 1, 0xa, 0x10, 0xdead_beef, u64::MAX, 1 << 60] {
            for w in [1, 16] {
                let f = format!("{v:0w$x}");
                assert!(is_hex(&f, v, w), "{f}");
                assert!(
                    !is_hex(&f.to_uppercase(), v, w)
                        || !f.contains(|c: char| c.is_ascii_alphabetic())
                );
                assert!(!is_hex(&format!("0{f}"), v, w), "leading zero");
                assert!(!is_hex(&format!("+{f}"), v, w), "sign");
                assert!(!is_hex(&f, v.wrapping_add(1), w));
            }
        }
    }

    fn sub(pui: &str, call_key: u64) -> Sub {
        Sub::new(
            pui.into(),
            "tg".into(),
            call_key,
            0xab,
            Arc::from(Vec::new()),
            None,
            0,
            660,
        )
    }

    #[test]
    fn ids_and_tags() {
        let st = Store::new("gw.example");
        let mut s = sub("sip:a@x", 0x1f);
        assert_eq!(st.call_id(SubId(0x2a), &s), "000000000000001f2a@gw.example");
        assert_eq!(
            (s.local_tag().as_str(), s.to_tag()),
            ("00000000000000ab", "")
        );
        s.set_to_tag("rt");
        assert_eq!(s.to_tag(), "rt");
    }

    #[test]
    fn counts_before_a_flush() {
        let mut st = Store::new("gw");
        for i in 0..3u64 {
            st.insert(SubId(i), sub(&format!("sip:u{i}@x"), i));
        }
        let pending = |n| vec![(Arc::from("tg"), SubState::Pending, n)];
        assert_eq!(st.counts(), pending(3));
        let s = st.get_mut(SubId(1)).unwrap();
        s.granted = 600;
        s.request = Request::Idle;
        // Not flushed yet: `counts` accounts for the changed record itself.
        let now = vec![
            (Arc::from("tg"), SubState::Pending, 2),
            (Arc::from("tg"), SubState::Active, 1),
        ];
        assert_eq!(st.counts(), now);
        assert_eq!(st.counts_by_walk(), now);
        st.get_mut(SubId(1)).unwrap().life = Life::Lingering;
        st.flush_counts();
        assert_eq!(st.counts(), pending(2));
        st.remove(SubId(1));
        st.remove(SubId(0));
        assert_eq!(st.counts(), pending(1));
        assert_eq!(st.counts_by_walk(), pending(1));
    }

    #[test]
    fn others_set() {
        let assoc: Arc<[Arc<str>]> =
            Arc::from(["sip:a@x".into(), "sip:b@x".into(), "tel:+1".into()]);
        let mut s = sub("sip:a@x", 1);
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
        let mut st = Store::new("gw");
        for i in 0..1000u64 {
            let mut s = sub(&format!("sip:u{i}@x"), i * 31);
            s.route0 = st.intern_route(["<sip:scscf;lr>".to_owned()].into_iter());
            st.insert(SubId(i), s);
            st.set_remote(SubId(i), Some(vec!["<sip:scscf;lr>".to_owned()]), None);
            st.set_remote(SubId(i), None, Some("sip:scscf"));
        }
        assert_eq!(st.interned(), (1, 1));
        assert_eq!(st.by_pui("sip:u7@x"), Some(SubId(7)));
        let call7 = format!("{:016x}7@gw", 7 * 31);
        let tag = "00000000000000ab";
        assert_eq!(st.by_dialog(&call7, tag), Some(SubId(7)));
        for (c, t) in [
            (call7.as_str(), "00000000000000ac"),
            (call7.as_str(), "00000000000000AB"),
            (&format!("{:016x}7@gw2", 7 * 31), tag),
            (&format!("{:016x}7@gw", 7 * 31 + 1), tag),
            (&format!("{:016x}07@gw", 7 * 31), tag),
            (&format!("{:016x}+7@gw", 7 * 31), tag),
            ("", ""),
            ("@", tag),
            ("é@gw", tag),
        ] {
            assert_eq!(st.by_dialog(c, t), None, "{c} {t}");
        }
        st.unindex_pui(SubId(7));
        assert_eq!(st.by_pui("sip:u7@x"), None);
        assert_eq!(st.by_dialog(&call7, tag), Some(SubId(7)));
        assert_eq!(st.live(), 999);
        for i in 0..1000u64 {
            st.remove(SubId(i));
        }
        assert_eq!(st.by_dialog(&call7, tag), None);
        assert_eq!(st.interned(), (0, 0));
    }
}
