//! The registration store: one entry per default PUI, O(1) lookup by default PUI, by contact
//! URI and by UE flow; one expiry queue for all bindings.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

use super::events::{RegEvent, RemovalReason};
use crate::sip::Transport;
use crate::state::{BindingRecord, RegistrationRecord};
use crate::time::DeadlineQueue;

/// Where a UE's messages come from (and terminating requests go back to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub transport: Transport,
    pub peer: SocketAddr,
    /// Index of the listener it arrived on.
    pub listener: u16,
}

/// One contact binding of a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Contact URI as registered (without `<>` and header params).
    /// Shared with the contact index.
    pub uri: Arc<str>,
    /// `+sip.instance` (quotes and `<>` stripped), `reg-id` (RFC 5626).
    pub instance: Option<Box<str>>,
    pub reg_id: Option<u32>,
    /// When it expires, in whole seconds on the registrar's clock ([`Registrar::instant`]).
    pub expires_at: Secs,
    pub flow: Flow,
}

/// A registration, keyed by its default PUI.
#[derive(Debug, Clone)]
pub struct Registration {
    pub default_pui: Arc<str>,
    pub trunk_group: Arc<str>,
    /// Implicit registration set (P-Associated-URI), default PUI first.
    /// The first is the default PUI (the same `Arc` as the key). Implicit PUIs are not indexed:
    /// nothing looks a registration up by them (an index cost ~130 B per registration at 1M).
    /// Exact size, shared with the subscription engine (`RegEvent::Registered`); rebuilt on
    /// the rare change.
    pub associated: Arc<[Arc<str>]>,
    /// Interned: registrations routed by the same S-CSCF share one copy.
    pub service_route: Arc<[Box<str>]>,
    /// The one binding inline (the common case), or an exact-size list.
    pub bindings: Bindings,
}

/// A registration's bindings: one inline (no allocation), or several in an exact-size list.
/// Derefs to a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bindings {
    One(Binding),
    Many(Box<[Binding]>),
}

impl Default for Bindings {
    fn default() -> Self {
        Bindings::Many(Box::default())
    }
}

impl From<Vec<Binding>> for Bindings {
    fn from(mut v: Vec<Binding>) -> Self {
        match v.pop() {
            Some(b) if v.is_empty() => Bindings::One(b),
            Some(b) => {
                v.push(b);
                Bindings::Many(v.into_boxed_slice())
            }
            None => Bindings::default(),
        }
    }
}

impl std::ops::Deref for Bindings {
    type Target = [Binding];
    fn deref(&self) -> &[Binding] {
        match self {
            Bindings::One(b) => std::slice::from_ref(b),
            Bindings::Many(v) => v,
        }
    }
}

impl std::ops::DerefMut for Bindings {
    fn deref_mut(&mut self) -> &mut [Binding] {
        match self {
            Bindings::One(b) => std::slice::from_mut(b),
            Bindings::Many(v) => v,
        }
    }
}

impl<'a> IntoIterator for &'a Bindings {
    type Item = &'a Binding;
    type IntoIter = std::slice::Iter<'a, Binding>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut Bindings {
    type Item = &'a mut Binding;
    type IntoIter = std::slice::IterMut<'a, Binding>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

impl Bindings {
    fn into_vec(self) -> Vec<Binding> {
        match self {
            Bindings::One(b) => vec![b],
            Bindings::Many(v) => v.into_vec(),
        }
    }
    /// Remove and return binding `i` (panics if out of range, as `Vec::remove`).
    pub fn remove(&mut self, i: usize) -> Binding {
        let mut v = std::mem::take(self).into_vec();
        let b = v.remove(i);
        *self = v.into();
        b
    }
    /// Keep the bindings for which `f` holds.
    pub fn retain(&mut self, f: impl FnMut(&Binding) -> bool) {
        let mut v = std::mem::take(self).into_vec();
        v.retain(f);
        *self = v.into();
    }
}

impl Registration {
    /// When the next binding expires (the registrar's timer for this registration).
    pub fn next_expiry(&self) -> Option<Secs> {
        self.bindings.iter().map(|b| b.expires_at).min()
    }
}

/// What the registrar needs from a REGISTER and its 2xx, extracted by the gateway.
#[derive(Debug, Clone)]
pub struct RegisterOutcome<'a> {
    pub trunk_group: &'a Arc<str>,
    pub flow: Flow,
    /// The To URI of the REGISTER (address of record), used when P-Associated-URI is absent.
    pub aor: &'a str,
    /// The contacts the REGISTER named (empty for `Contact: *` or a fetch).
    pub request_contacts: Vec<BindingMatch<'a>>,
    /// Contacts listed in the 2xx. The 2xx enumerates every current binding (RFC 3261 §10.3
    /// step 8).
    pub bindings: Vec<Granted<'a>>,
    pub associated: Vec<&'a str>,
    pub service_route: Vec<&'a str>,
}

/// One contact of a 2xx to REGISTER: what the registrar granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted<'a> {
    /// Contact URI (without `<>`).
    pub uri: &'a str,
    /// Seconds; 0 = removed.
    pub expires: u32,
    /// `+sip.instance` (quotes and `<>` stripped) and `reg-id` (RFC 5626).
    pub instance: Option<&'a str>,
    pub reg_id: Option<u32>,
}

/// A binding as a REGISTER's Contact or a reginfo `<contact>` names it.
///
/// What makes a binding itself (RFC 5626 §6, RFC 5627): with a `reg-id`, the pair
/// (`+sip.instance`, `reg-id`) — one flow of one device, whatever the Contact URI (a UE's flows
/// usually share it); with an instance and no `reg-id`, the instance; otherwise the Contact URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingMatch<'a> {
    pub uri: &'a str,
    pub instance: Option<&'a str>,
    pub reg_id: Option<u32>,
}

impl BindingMatch<'_> {
    /// The same binding as `uri`/`instance`/`reg_id` (see the type's docs).
    pub fn same(&self, uri: &str, instance: Option<&str>, reg_id: Option<u32>) -> bool {
        match (self.reg_id, reg_id) {
            (Some(a), Some(b)) => a == b && self.instance == instance,
            (Some(_), None) | (None, Some(_)) => false,
            (None, None) => match (self.instance, instance) {
                (Some(a), Some(b)) => a == b,
                _ => uri_eq(uri, self.uri),
            },
        }
    }

    /// Whether a reginfo `<contact>` names binding `b`. A contact that names no flow (no
    /// `reg-id`) names every binding of its URI: a notifier that does not tell flows apart
    /// means them all.
    fn matches(&self, b: &Binding) -> bool {
        if self.reg_id.is_none() && self.instance.is_none() {
            return uri_eq(&b.uri, self.uri);
        }
        self.same(&b.uri, b.instance.as_deref(), b.reg_id)
    }

    fn is(&self, b: &Binding) -> bool {
        self.same(&b.uri, b.instance.as_deref(), b.reg_id)
    }
}

impl Binding {
    /// This binding's identity.
    pub fn id(&self) -> BindingMatch<'_> {
        BindingMatch {
            uri: &self.uri,
            instance: self.instance.as_deref(),
            reg_id: self.reg_id,
        }
    }
}

impl Granted<'_> {
    fn id(&self) -> BindingMatch<'_> {
        BindingMatch {
            uri: self.uri,
            instance: self.instance,
            reg_id: self.reg_id,
        }
    }
}

/// The store. Owned by one task; no locks.
///
/// Layout for a million registrations: the registrations live in a slab (`slots`, indexed by a
/// `u32`; vacated slots are reused), and every index is a `HashTable` of slot numbers, so an
/// index costs 4–8 bytes a slot instead of an owned key and value. Lookups always verify the
/// full key against the registration, so hash collisions only cost a comparison.
#[derive(Debug, Default)]
pub struct Registrar {
    hasher: DefaultHashBuilder,
    slots: Vec<Slot>,
    /// Vacant slots (reused before the slab grows).
    free: Vec<u32>,
    len: usize,
    /// Default PUI → slot, hashed by the default PUI read from the registration.
    by_pui: HashTable<u32>,
    /// Contact URI → slot(s).
    by_contact: MultiIndex,
    /// UE flow → slot(s): several registrations behind one NAT or proxy share a flow.
    by_flow: MultiIndex,
    /// Distinct Service-Route sets in use.
    routes: hashbrown::HashSet<Arc<[Box<str>]>>,
    /// Next expiry of each registration, keyed by (slot generation, slot): entries of an
    /// earlier generation are stale (lazy deletion).
    timers: DeadlineQueue<Secs, (u32, u32)>,
    /// Default PUIs of the registrations changed (or removed) since the last
    /// [`Registrar::take_changed`].
    changed: Vec<Arc<str>>,
    /// The registrar's clock starts at the first instant it is given.
    epoch: Option<Instant>,
}

#[derive(Debug)]
struct Slot {
    /// Bumped on every change that moves expiry and when the slot is vacated, so queued entries
    /// of an earlier occupant never match.
    generation: u32,
    reg: Option<Registration>,
}

/// An index entry: the slot and 32 bits of the key's hash (so the table rehashes without
/// reading the registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    slot: u32,
    h: u32,
}

/// The table hash of an entry's 32-bit key hash (spread over the low bits that pick the
/// bucket and the top bits hashbrown keeps as a tag).
fn mix(h: u32) -> u64 {
    u64::from(h).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn hash32(hasher: &DefaultHashBuilder, key: impl std::hash::Hash) -> u32 {
    (hasher.hash_one(key) >> 32) as u32
}

/// Key hash → slots. A key held by one slot (the common case) costs one 8-byte entry in `one`;
/// a key shared by several slots (many UEs behind one NAT share a flow; UEs behind different NATs
/// may send the same private contact URI) moves to a set in `many`, so adding or removing one
/// of them stays O(1) — equal hashes in one table would make every insert probe all of them.
/// Lookups must still compare the full key: a 32-bit hash can collide.
#[derive(Debug, Default)]
struct MultiIndex {
    one: HashTable<Entry>,
    many: hashbrown::HashMap<u32, hashbrown::HashSet<u32>>,
}

impl MultiIndex {
    fn insert(&mut self, e: Entry) {
        if let Some(set) = self.many.get_mut(&e.h) {
            set.insert(e.slot);
            return;
        }
        match self.one.find_entry(mix(e.h), |x| x.h == e.h) {
            Ok(o) if o.get().slot == e.slot => {}
            Ok(o) => {
                let (other, _) = o.remove();
                self.many
                    .insert(e.h, [other.slot, e.slot].into_iter().collect());
            }
            Err(_) => {
                self.one.insert_unique(mix(e.h), e, |x| mix(x.h));
            }
        }
    }

    fn remove(&mut self, e: Entry) {
        if let Some(set) = self.many.get_mut(&e.h) {
            set.remove(&e.slot);
            if set.len() <= 1 {
                let last = set.iter().next().copied();
                self.many.remove(&e.h);
                if let Some(slot) = last {
                    let e = Entry { slot, h: e.h };
                    self.one.insert_unique(mix(e.h), e, |x| mix(x.h));
                }
            }
            return;
        }
        if let Ok(o) = self.one.find_entry(mix(e.h), |x| *x == e) {
            o.remove();
        }
    }

    /// Slots whose key hashes to `h` (candidates: compare the key).
    fn slots(&self, h: u32) -> impl Iterator<Item = u32> + '_ {
        let one = self.one.find(mix(h), |x| x.h == h).map(|e| e.slot);
        let many = self.many.get(&h).into_iter().flatten().copied();
        one.into_iter().chain(many)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.one.len() + self.many.values().map(|s| s.len()).sum::<usize>()
    }
}

/// The contact-index and flow-index entries of one binding of `slot`.
fn binding_keys(h: &DefaultHashBuilder, slot: u32, b: &Binding) -> (Entry, Entry) {
    (
        Entry {
            slot,
            h: hash32(h, &*b.uri),
        },
        Entry {
            slot,
            h: hash32(h, b.flow),
        },
    )
}

/// Apply `op` (`MultiIndex::insert` or `MultiIndex::remove`) to the contact-index and flow-index
/// entries of `bindings` for `slot`.
fn for_binding_keys(
    h: &DefaultHashBuilder,
    by_contact: &mut MultiIndex,
    by_flow: &mut MultiIndex,
    slot: u32,
    bindings: &[Binding],
    op: fn(&mut MultiIndex, Entry),
) {
    for b in bindings {
        let (contact, flow) = binding_keys(h, slot, b);
        op(by_contact, contact);
        op(by_flow, flow);
    }
}

impl Registrar {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `n` registrations (one binding each) without growing a table.
    pub fn reserve(&mut self, n: usize) {
        let Registrar {
            hasher,
            slots,
            by_pui,
            by_contact,
            by_flow,
            timers,
            ..
        } = self;
        slots.reserve(n);
        timers.reserve(n);
        by_pui.reserve(n, |&slot| match slots.get(slot as usize) {
            Some(Slot { reg: Some(r), .. }) => hasher.hash_one(&*r.default_pui),
            _ => 0,
        });
        by_contact.one.reserve(n, |x| mix(x.h));
        by_flow.one.reserve(n, |x| mix(x.h));
        crate::memory::prefault(by_pui, || 0);
        for index in [&mut by_contact.one, &mut by_flow.one] {
            crate::memory::prefault(index, || Entry { slot: 0, h: 0 });
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    fn reg(&self, slot: u32) -> Option<&Registration> {
        self.slots.get(slot as usize)?.reg.as_ref()
    }
    fn slot_of(&self, default_pui: &str) -> Option<u32> {
        let h = self.hasher.hash_one(default_pui);
        self.by_pui
            .find(h, |&i| {
                self.reg(i).is_some_and(|r| &*r.default_pui == default_pui)
            })
            .copied()
    }
    pub fn get(&self, default_pui: &str) -> Option<&Registration> {
        self.reg(self.slot_of(default_pui)?)
    }
    /// The registration and binding of a contact URI.
    pub fn by_contact(&self, uri: &str) -> Option<(&Registration, &Binding)> {
        let h = hash32(&self.hasher, uri);
        self.by_contact
            .slots(h)
            .filter_map(|slot| self.reg(slot))
            .find_map(|r| Some((r, r.bindings.iter().find(|b| &*b.uri == uri)?)))
    }
    /// The registration (the first, if several share the flow) with a binding on `flow`.
    pub fn by_flow(&self, flow: &Flow) -> Option<&Registration> {
        let h = hash32(&self.hasher, flow);
        self.by_flow
            .slots(h)
            .filter_map(|slot| self.reg(slot))
            .find(|r| r.bindings.iter().any(|b| b.flow == *flow))
    }
    pub fn iter(&self) -> impl Iterator<Item = &Registration> {
        self.slots.iter().filter_map(|s| s.reg.as_ref())
    }

    /// Learn from a 2xx to REGISTER. Returns the lifecycle events, in order.
    pub fn on_register_ok(
        &mut self,
        now: Instant,
        o: &RegisterOutcome<'_>,
        events: &mut Vec<RegEvent>,
    ) {
        let now_s = self.ceil_secs(now);
        let default_pui: &str = o.associated.first().copied().unwrap_or(o.aor);
        let slot = self.slot_of(default_pui);
        let old = slot.and_then(|i| self.reg(i));
        let key: Arc<str> = match old {
            Some(r) => r.default_pui.clone(),
            None => Arc::from(default_pui),
        };
        let live: Bindings = o
            .bindings
            .iter()
            .filter(|g| g.expires > 0)
            .map(|g| Binding {
                uri: old
                    .and_then(|r| r.bindings.iter().find(|b| *b.uri == *g.uri))
                    .map_or_else(|| Arc::from(g.uri), |b| b.uri.clone()),
                instance: g.instance.map(Into::into),
                reg_id: g.reg_id,
                expires_at: now_s.saturating_add(g.expires),
                flow: o.flow,
            })
            .collect::<Vec<_>>()
            .into();
        let existed = old.is_some();
        if live.is_empty() {
            if existed {
                self.remove(&key, RemovalReason::UserDeregistration, events);
            }
            return;
        }
        // Granted: the longest expiry among the contacts this REGISTER named, else among all.
        let named = |b: BindingMatch<'_>| {
            o.request_contacts
                .iter()
                .any(|c| c.same(b.uri, b.instance, b.reg_id))
        };
        let granted = o
            .bindings
            .iter()
            .filter(|g| g.expires > 0 && named(g.id()))
            .map(|g| g.expires)
            .max()
            .or_else(|| o.bindings.iter().map(|g| g.expires).max())
            .unwrap_or(0);

        let mut associated: Vec<Arc<str>> = Vec::with_capacity(o.associated.len().max(1));
        associated.push(key.clone());
        for p in o.associated.iter().skip(1) {
            let known = old.and_then(|r| r.associated.iter().find(|a| &***a == *p));
            associated.push(known.map_or_else(|| Arc::from(*p), Arc::clone));
        }
        // An unchanged set keeps its shared copy.
        let associated: Arc<[Arc<str>]> = match old {
            Some(r) if *r.associated == *associated => r.associated.clone(),
            _ => associated.into(),
        };
        let mut reg = Registration {
            default_pui: key.clone(),
            trunk_group: o.trunk_group.clone(),
            associated,
            service_route: Arc::from(Vec::new()),
            bindings: live,
        };
        // Keep the flows of the bindings this REGISTER did not come from (other devices, other
        // flows of this one).
        if let Some(old) = old {
            for b in &mut reg.bindings {
                if !named(b.id()) {
                    if let Some(ob) = old.bindings.iter().find(|x| x.id().is(b)) {
                        b.flow = ob.flow;
                    }
                }
            }
            for ob in &old.bindings {
                if !reg.bindings.iter().any(|b| ob.id().is(b)) {
                    events.push(RegEvent::BindingRemoved {
                        default_pui: key.clone(),
                        contact: ob.uri.to_string(),
                    });
                }
            }
        }
        for b in &reg.bindings {
            if !old.is_some_and(|r| r.bindings.iter().any(|ob| ob.id().is(b))) {
                events.push(RegEvent::BindingAdded {
                    default_pui: key.clone(),
                    contact: b.uri.to_string(),
                });
            }
        }
        reg.service_route = self.intern_route(&o.service_route);
        events.push(RegEvent::Registered {
            default_pui: key.clone(),
            trunk_group: reg.trunk_group.clone(),
            initial: !existed,
            associated: reg.associated.clone(),
            service_route: reg.service_route.iter().map(|s| s.to_string()).collect(),
            granted: Duration::from_secs(u64::from(granted)),
            bindings: reg.bindings.len(),
        });
        let next = reg.next_expiry();
        let slot = match slot {
            Some(i) => {
                let s = &mut self.slots[i as usize];
                let old = s.reg.replace(reg);
                s.generation = s.generation.wrapping_add(1);
                if let Some(old) = old {
                    for_binding_keys(
                        &self.hasher,
                        &mut self.by_contact,
                        &mut self.by_flow,
                        i,
                        &old.bindings,
                        MultiIndex::remove,
                    );
                    self.release_route(old.service_route);
                }
                i
            }
            None => self.insert(reg),
        };
        let s = &self.slots[slot as usize];
        if let Some(r) = &s.reg {
            for_binding_keys(
                &self.hasher,
                &mut self.by_contact,
                &mut self.by_flow,
                slot,
                &r.bindings,
                MultiIndex::insert,
            );
        }
        if let Some(exp) = next {
            self.timers.push(exp, (s.generation, slot));
        }
        self.changed.push(key);
        self.tidy();
    }

    /// Put a new registration in a slot and index it by default PUI.
    fn insert(&mut self, reg: Registration) -> u32 {
        let h = self.hasher.hash_one(&*reg.default_pui);
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].reg = Some(reg);
                i
            }
            None => {
                let i = u32::try_from(self.slots.len()).expect("fewer than 2^32 registrations");
                self.slots.push(Slot {
                    generation: 0,
                    reg: Some(reg),
                });
                i
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.by_pui.insert_unique(h, slot, |&i| {
            slots[i as usize]
                .reg
                .as_ref()
                .map_or(0, |r| hasher.hash_one(&*r.default_pui))
        });
        self.len += 1;
        slot
    }

    /// The shared copy of a Service-Route set.
    fn intern_route(&mut self, route: &[&str]) -> Arc<[Box<str>]> {
        let r: Vec<Box<str>> = route.iter().map(|s| Box::from(*s)).collect();
        if let Some(found) = self.routes.get(&r[..]) {
            return found.clone();
        }
        let r: Arc<[Box<str>]> = r.into();
        self.routes.insert(r.clone());
        r
    }

    /// Drop the interned copy when the last registration using it lets go.
    fn release_route(&mut self, r: Arc<[Box<str>]>) {
        if Arc::strong_count(&r) <= 2 {
            self.routes.remove(&r);
        }
    }

    /// Remove a whole registration.
    pub fn remove(
        &mut self,
        default_pui: &str,
        reason: RemovalReason,
        events: &mut Vec<RegEvent>,
    ) -> bool {
        let Some(slot) = self.slot_of(default_pui) else {
            return false;
        };
        let h = self.hasher.hash_one(default_pui);
        if let Ok(e) = self.by_pui.find_entry(h, |&i| i == slot) {
            e.remove();
        }
        let s = &mut self.slots[slot as usize];
        let Some(reg) = s.reg.take() else {
            return false;
        };
        s.generation = s.generation.wrapping_add(1);
        self.free.push(slot);
        self.len -= 1;
        for_binding_keys(
            &self.hasher,
            &mut self.by_contact,
            &mut self.by_flow,
            slot,
            &reg.bindings,
            MultiIndex::remove,
        );
        self.release_route(reg.service_route);
        self.changed.push(reg.default_pui.clone());
        events.push(RegEvent::Removed {
            default_pui: reg.default_pui,
            trunk_group: reg.trunk_group,
            reason,
        });
        true
    }

    /// The registration of `default_pui`, for a change (recorded as changed), and the list of
    /// changes.
    fn change(&mut self, default_pui: &str) -> Option<&mut Registration> {
        let slot = self.slot_of(default_pui)?;
        let reg = self.slots[slot as usize].reg.as_mut()?;
        self.changed.push(reg.default_pui.clone());
        Some(reg)
    }

    /// A PUI joins the implicit set.
    pub fn add_pui(&mut self, default_pui: &str, pui: &str) {
        let known = self
            .get(default_pui)
            .is_none_or(|r| r.associated.iter().any(|p| &**p == pui));
        if let Some(reg) = self.change(default_pui).filter(|_| !known) {
            let mut v = reg.associated.to_vec();
            v.push(Arc::from(pui));
            reg.associated = v.into();
        }
    }

    /// A PUI leaves the implicit set (never the default PUI: that is a deregistration).
    pub fn remove_pui(&mut self, default_pui: &str, pui: &str) {
        let member = pui != default_pui
            && self
                .get(default_pui)
                .is_some_and(|r| r.associated.iter().any(|p| &**p == pui));
        if let Some(reg) = self.change(default_pui).filter(|_| member) {
            let mut v = reg.associated.to_vec();
            v.retain(|p| &**p != pui);
            reg.associated = v.into();
        }
    }

    /// Remove one binding; the registration goes with its last binding (reason Network).
    pub fn remove_binding(
        &mut self,
        default_pui: &str,
        m: BindingMatch<'_>,
        events: &mut Vec<RegEvent>,
    ) -> bool {
        let Some(slot) = self.slot_of(default_pui) else {
            return false;
        };
        let s = &mut self.slots[slot as usize];
        let Some(reg) = s.reg.as_mut() else {
            return false;
        };
        let gone: Vec<Arc<str>> = reg
            .bindings
            .iter()
            .filter(|b| m.matches(b))
            .map(|b| b.uri.clone())
            .collect();
        if gone.is_empty() {
            return false;
        }
        let (h, ct, fl) = (&self.hasher, &mut self.by_contact, &mut self.by_flow);
        for_binding_keys(h, ct, fl, slot, &reg.bindings, MultiIndex::remove);
        reg.bindings.retain(|b| !m.matches(b));
        for_binding_keys(h, ct, fl, slot, &reg.bindings, MultiIndex::insert);
        let key = reg.default_pui.clone();
        let last = reg.bindings.is_empty();
        self.changed.push(key.clone());
        for uri in gone {
            events.push(RegEvent::BindingRemoved {
                default_pui: key.clone(),
                contact: uri.to_string(),
            });
        }
        if !last {
            // The next expiry may have been a removed binding's.
            if let Some(next) = reg.next_expiry() {
                s.generation = s.generation.wrapping_add(1);
                self.timers.push(next, (s.generation, slot));
            }
        }
        if last {
            self.remove(&key, RemovalReason::Network, events);
        }
        true
    }

    /// `shortened` / `refreshed`: set a binding's expiry.
    pub fn update_binding_expiry(
        &mut self,
        now: Instant,
        default_pui: &str,
        m: BindingMatch<'_>,
        expires: u32,
    ) -> bool {
        let now_s = self.ceil_secs(now);
        let Some(slot) = self.slot_of(default_pui) else {
            return false;
        };
        let s = &mut self.slots[slot as usize];
        let Some(reg) = s.reg.as_mut() else {
            return false;
        };
        let Some(b) = reg.bindings.iter_mut().find(|b| m.matches(b)) else {
            return false;
        };
        b.expires_at = now_s.saturating_add(expires);
        let next = reg.next_expiry();
        s.generation = s.generation.wrapping_add(1);
        self.changed.push(reg.default_pui.clone());
        if let Some(exp) = next {
            self.timers.push(exp, (s.generation, slot));
        }
        self.tidy();
        true
    }

    /// Earliest moment a binding may expire.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline().map(|t| self.instant(t))
    }

    /// Expire due bindings; registrations whose last binding expired are removed.
    pub fn handle_timeout(&mut self, now: Instant, events: &mut Vec<RegEvent>) {
        let now = self.floor_secs(now);
        loop {
            let slots = &self.slots;
            let due = self
                .timers
                .pop_due(now, |_, &(gen, slot)| is_current(slots, gen, slot));
            let Some((_, (_, slot))) = due else { break };
            let s = &mut self.slots[slot as usize];
            let Some(reg) = s.reg.as_mut() else {
                continue;
            };
            let expired: Vec<Arc<str>> = reg
                .bindings
                .iter()
                .filter(|b| b.expires_at <= now)
                .map(|b| b.uri.clone())
                .collect();
            let (h, ct, fl) = (&self.hasher, &mut self.by_contact, &mut self.by_flow);
            for_binding_keys(h, ct, fl, slot, &reg.bindings, MultiIndex::remove);
            reg.bindings.retain(|b| b.expires_at > now);
            for_binding_keys(h, ct, fl, slot, &reg.bindings, MultiIndex::insert);
            let key = reg.default_pui.clone();
            self.changed.push(key.clone());
            for c in expired {
                events.push(RegEvent::BindingRemoved {
                    default_pui: key.clone(),
                    contact: c.to_string(),
                });
            }
            match reg.next_expiry() {
                None => {
                    self.remove(&key, RemovalReason::Expired, events);
                }
                Some(next) => {
                    s.generation = s.generation.wrapping_add(1);
                    self.timers.push(next, (s.generation, slot));
                }
            }
        }
        self.tidy();
    }

    /// The durable record of a registration; `unix` turns an `Instant` into Unix milliseconds.
    pub fn export(
        &self,
        default_pui: &str,
        unix: &dyn Fn(Instant) -> u64,
    ) -> Option<RegistrationRecord<'_>> {
        let r = self.get(default_pui)?;
        Some(RegistrationRecord {
            default_pui: Cow::Borrowed(&r.default_pui),
            trunk_group: Cow::Borrowed(&r.trunk_group),
            associated: r.associated.iter().map(|p| Cow::Borrowed(&**p)).collect(),
            service_route: r
                .service_route
                .iter()
                .map(|s| Cow::Borrowed(&**s))
                .collect(),
            bindings: r
                .bindings
                .iter()
                .map(|b| BindingRecord {
                    uri: Cow::Borrowed(&b.uri),
                    instance: b.instance.as_deref().map(Cow::Borrowed),
                    reg_id: b.reg_id,
                    expires_at: unix(self.instant(b.expires_at)),
                    transport: b.flow.transport,
                    peer: b.flow.peer,
                    listener: b.flow.listener,
                })
                .collect(),
        })
    }

    /// Put back a registration from its record (at start-up, before any message). `instant`
    /// turns Unix milliseconds into an `Instant` (clamped at `now` for times already past, which
    /// then expire at the first `handle_timeout`, as they would have). A record for a default
    /// PUI already present replaces it. Returns false for a record without bindings.
    pub fn restore(
        &mut self,
        now: Instant,
        rec: &RegistrationRecord<'_>,
        instant: &dyn Fn(u64) -> Instant,
    ) -> bool {
        // Pin the clock's epoch at `now` before any restored time is converted.
        self.ceil_secs(now);
        if rec.bindings.is_empty() {
            return false;
        }
        let mut ignored = Vec::new();
        self.remove(&rec.default_pui, RemovalReason::Expired, &mut ignored);
        let key: Arc<str> = Arc::from(&*rec.default_pui);
        let mut associated: Vec<Arc<str>> = vec![key.clone()];
        associated.extend(
            rec.associated
                .iter()
                .filter(|p| **p != rec.default_pui)
                .map(|p| Arc::from(&**p)),
        );
        let bindings: Bindings = rec
            .bindings
            .iter()
            .map(|b| Binding {
                uri: Arc::from(&*b.uri),
                instance: b.instance.as_deref().map(Into::into),
                reg_id: b.reg_id,
                expires_at: match instant(b.expires_at) {
                    // Already past: due at the first `handle_timeout`.
                    at if at <= now => self.floor_secs(now),
                    at => self.ceil_secs(at),
                },
                flow: Flow {
                    transport: b.transport,
                    peer: b.peer,
                    listener: b.listener,
                },
            })
            .collect::<Vec<_>>()
            .into();
        let route: Vec<&str> = rec.service_route.iter().map(|r| &**r).collect();
        let reg = Registration {
            default_pui: key,
            trunk_group: Arc::from(&*rec.trunk_group),
            associated: associated.into(),
            service_route: self.intern_route(&route),
            bindings,
        };
        let next = reg.next_expiry();
        let slot = self.insert(reg);
        let s = &self.slots[slot as usize];
        if let Some(r) = &s.reg {
            for_binding_keys(
                &self.hasher,
                &mut self.by_contact,
                &mut self.by_flow,
                slot,
                &r.bindings,
                MultiIndex::insert,
            );
        }
        if let Some(exp) = next {
            self.timers.push(exp, (s.generation, slot));
        }
        self.tidy();
        true
    }

    /// Drop stale entries from the front of the expiry queue (so `poll_timeout` is exact), and
    /// compact it when stale entries dominate.
    fn tidy(&mut self) {
        let slots = &self.slots;
        self.timers
            .tidy(|_, &(gen, slot)| is_current(slots, gen, slot));
        self.timers
            .compact(self.len, |_, &(gen, slot)| is_current(slots, gen, slot));
    }

    /// Default PUIs of the registrations changed or removed since the last call (in order, with
    /// repeats): what a store must write.
    pub fn take_changed(&mut self, out: &mut Vec<Arc<str>>) {
        out.append(&mut self.changed);
    }
}

/// Whether a queued expiry is the registration's current one.
fn is_current(slots: &[Slot], gen: u32, slot: u32) -> bool {
    slots
        .get(slot as usize)
        .is_some_and(|s| s.generation == gen && s.reg.is_some())
}

/// Seconds on the registrar's clock (4 bytes where an `Instant` takes 16; bindings and heap
/// entries are per registration, a million of them).
pub type Secs = u32;

impl Registrar {
    /// The instant of a registrar-clock second.
    pub fn instant(&self, s: Secs) -> Instant {
        self.epoch
            .map_or_else(Instant::now, |e| e + Duration::from_secs(u64::from(s)))
    }
    /// `now` rounded up: expiries computed from it are never early.
    fn ceil_secs(&mut self, now: Instant) -> Secs {
        let e = *self.epoch.get_or_insert(now);
        let d = now.saturating_duration_since(e);
        u32::try_from(d.as_secs() + u64::from(d.subsec_nanos() > 0)).unwrap_or(u32::MAX)
    }
    /// `now` rounded down: what has expired by then.
    fn floor_secs(&mut self, now: Instant) -> Secs {
        let e = *self.epoch.get_or_insert(now);
        u32::try_from(now.saturating_duration_since(e).as_secs()).unwrap_or(u32::MAX)
    }
}

/// Contact URI comparison for binding matching: case-insensitive scheme/host is approximated by
/// an ASCII case-insensitive comparison of the whole URI text (users in IMS are lower case).
fn uri_eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod multi_index_tests {
    use super::*;

    #[test]
    fn multi_index_keeps_shared_keys_as_sets_and_falls_back_to_one_entry() {
        let mut ix = MultiIndex::default();
        let e = |slot, h| Entry { slot, h };
        for slot in 0..10_000 {
            ix.insert(e(slot, 7)); // one NAT flow shared by 10,000 registrations
            ix.insert(e(slot, 7)); // indexing the same pair again changes nothing
        }
        ix.insert(e(99_999, 8));
        assert_eq!(ix.len(), 10_001);
        assert_eq!(ix.slots(7).count(), 10_000);
        assert_eq!(ix.slots(8).collect::<Vec<_>>(), vec![99_999]);
        for slot in 1..10_000 {
            ix.remove(e(slot, 7));
        }
        assert_eq!(ix.slots(7).collect::<Vec<_>>(), vec![0]);
        assert!(
            ix.many.is_empty(),
            "a key left with one slot goes back to the plain table"
        );
        ix.remove(e(0, 7));
        ix.remove(e(0, 7));
        assert_eq!(ix.slots(7).count(), 0);
        assert_eq!(ix.len(), 1);
    }
}
