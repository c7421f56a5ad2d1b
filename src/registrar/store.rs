//! The registration store: one entry per default PUI, O(1) lookup by default PUI, by any
//! associated PUI and by contact URI; one expiry heap for all bindings.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashMap;

use super::events::{RegEvent, RemovalReason};
use crate::config::Transport;

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
    /// Exact size (no capacity word, no slack); rebuilt on the rare change.
    pub associated: Box<[Arc<str>]>,
    /// Interned: registrations routed by the same S-CSCF share one copy.
    pub service_route: Arc<[Box<str>]>,
    /// The one binding inline (the common case), or an exact-size list.
    pub bindings: Bindings,
    /// Bumped on every change that moves expiry (lazy deletion in the heap).
    generation: u32,
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
    /// Contact URIs the REGISTER named (empty for `Contact: *` or a fetch).
    pub request_contacts: Vec<&'a str>,
    /// Contacts listed in the 2xx: (uri, expires seconds, instance, reg-id). The 2xx enumerates
    /// every current binding (RFC 3261 §10.3 step 8).
    pub bindings: Vec<(&'a str, u32, Option<&'a str>, Option<u32>)>,
    pub associated: Vec<&'a str>,
    pub service_route: Vec<&'a str>,
}

/// Binding to remove or update, as named by a reginfo `<contact>`.
#[derive(Debug, Clone, Copy)]
pub struct BindingMatch<'a> {
    pub uri: &'a str,
    pub instance: Option<&'a str>,
    pub reg_id: Option<u32>,
}

impl BindingMatch<'_> {
    fn matches(&self, b: &Binding) -> bool {
        if let (Some(i), Some(r)) = (self.instance, self.reg_id) {
            if b.instance.as_deref() == Some(i) && b.reg_id == Some(r) {
                return true;
            }
        }
        uri_eq(&b.uri, self.uri)
    }
}

/// The store. Owned by one task; no locks.
#[derive(Debug, Default)]
pub struct Registrar {
    /// Boxed: the table's slots stay small (24 B), which matters at a million entries where the
    /// table is up to half empty after growing.
    regs: HashMap<Arc<str>, Box<Registration>>,
    /// Contact URI → default PUI.
    by_contact: HashMap<Arc<str>, Arc<str>>,
    /// Distinct Service-Route sets in use.
    routes: hashbrown::HashSet<Arc<[Box<str>]>>,
    /// UE flow → default PUIs with at least one binding on it (usually one).
    /// Keyed by a hash of the flow (8 B, not the 40 B flow); lookups check the bindings.
    by_flow: HashMap<u64, FlowRegs>,
    heap: BinaryHeap<Reverse<(Secs, u32, Arc<str>)>>,
    /// The registrar's clock starts at the first instant it is given.
    epoch: Option<Instant>,
}

impl Registrar {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.regs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.regs.is_empty()
    }
    pub fn get(&self, default_pui: &str) -> Option<&Registration> {
        self.regs.get(default_pui).map(|r| &**r)
    }
    /// The registration and binding of a contact URI.
    pub fn by_contact(&self, uri: &str) -> Option<(&Registration, &Binding)> {
        let reg: &Registration = self.regs.get(self.by_contact.get(uri)?)?;
        let b = reg.bindings.iter().find(|b| &*b.uri == uri)?;
        Some((reg, b))
    }
    /// The registration (the first, if several share the flow) with a binding on `flow`.
    pub fn by_flow(&self, flow: &Flow) -> Option<&Registration> {
        let regs = self.by_flow.get(&flow_key(flow))?;
        regs.iter()
            .filter_map(|d| self.regs.get(d))
            .find(|r| r.bindings.iter().any(|b| b.flow == *flow))
            .map(|r| &**r)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Registration> {
        self.regs.values().map(|r| &**r)
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
        let key: Arc<str> = match self.regs.get_key_value(default_pui) {
            Some((k, _)) => k.clone(),
            None => Arc::from(default_pui),
        };
        let old = self.regs.get(default_pui);
        let live: Bindings = o
            .bindings
            .iter()
            .filter(|(_, exp, _, _)| *exp > 0)
            .map(|&(uri, exp, inst, reg_id)| Binding {
                uri: old
                    .and_then(|r| r.bindings.iter().find(|b| &*b.uri == uri))
                    .map_or_else(|| Arc::from(uri), |b| b.uri.clone()),
                instance: inst.map(Into::into),
                reg_id,
                expires_at: now_s.saturating_add(exp),
                flow: o.flow,
            })
            .collect::<Vec<_>>()
            .into();
        let existed = self.regs.contains_key(&key);
        if live.is_empty() {
            if existed {
                self.remove(&key, RemovalReason::UserDeregistration, events);
            }
            return;
        }
        // Granted: the longest expiry among the contacts this REGISTER named, else among all.
        let named = |uri: &str| o.request_contacts.iter().any(|c| uri_eq(c, uri));
        let granted = o
            .bindings
            .iter()
            .filter(|(u, e, _, _)| *e > 0 && named(u))
            .map(|(_, e, _, _)| *e)
            .max()
            .or_else(|| o.bindings.iter().map(|(_, e, _, _)| *e).max())
            .unwrap_or(0);

        let (old_contacts, generation) = match self.regs.get(&key) {
            Some(r) => (
                r.bindings.iter().map(|b| b.uri.clone()).collect::<Vec<_>>(),
                r.generation + 1,
            ),
            None => (Vec::new(), 0),
        };
        let mut associated: Vec<Arc<str>> = Vec::with_capacity(o.associated.len().max(1));
        associated.push(key.clone());
        for p in o.associated.iter().skip(1) {
            let known = self
                .regs
                .get(&key)
                .and_then(|r| r.associated.iter().find(|a| &***a == *p));
            associated.push(known.map_or_else(|| Arc::from(*p), Arc::clone));
        }
        let service_route = self.intern_route(&o.service_route);
        let mut reg = Registration {
            default_pui: key.clone(),
            trunk_group: o.trunk_group.clone(),
            associated: associated.into_boxed_slice(),
            service_route,
            bindings: live,
            generation,
        };
        // Keep flows of bindings that this REGISTER did not come from (other devices, reg-id).
        if let Some(old) = self.regs.get(&key) {
            for b in &mut reg.bindings {
                if !named(&b.uri) {
                    if let Some(ob) = old.bindings.iter().find(|x| x.uri == b.uri) {
                        b.flow = ob.flow;
                    }
                }
            }
        }
        for c in &old_contacts {
            if !reg.bindings.iter().any(|b| &b.uri == c) {
                self.by_contact.remove(c);
                events.push(RegEvent::BindingRemoved {
                    default_pui: key.clone(),
                    contact: c.to_string(),
                });
            }
        }
        for b in &reg.bindings {
            if !old_contacts.contains(&b.uri) {
                events.push(RegEvent::BindingAdded {
                    default_pui: key.clone(),
                    contact: b.uri.to_string(),
                });
            }
            self.by_contact.insert(b.uri.clone(), key.clone());
        }
        if let Some(exp) = reg.next_expiry() {
            self.heap.push(Reverse((exp, reg.generation, key.clone())));
        }
        events.push(RegEvent::Registered {
            default_pui: key.clone(),
            trunk_group: reg.trunk_group.clone(),
            initial: !existed,
            associated: reg.associated.iter().map(|s| s.to_string()).collect(),
            service_route: reg.service_route.iter().map(|s| s.to_string()).collect(),
            granted: Duration::from_secs(u64::from(granted)),
            bindings: reg.bindings.len(),
        });
        if let Some(old) = self.regs.get(&key) {
            unindex_flows(&mut self.by_flow, &key, &old.bindings);
        }
        index_flows(&mut self.by_flow, &key, &reg.bindings);
        if let Some(old) = self.regs.insert(key, Box::new(reg)) {
            self.release_route(old.service_route);
        }
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
        let Some(reg) = self.regs.remove(default_pui) else {
            return false;
        };
        unindex_flows(&mut self.by_flow, &reg.default_pui, &reg.bindings);
        for b in &reg.bindings {
            self.by_contact.remove(&b.uri);
        }
        self.release_route(reg.service_route);
        events.push(RegEvent::Removed {
            default_pui: reg.default_pui,
            trunk_group: reg.trunk_group,
            reason,
        });
        true
    }

    /// A PUI joins the implicit set.
    pub fn add_pui(&mut self, default_pui: &str, pui: &str) {
        if let Some(reg) = self.regs.get_mut(default_pui) {
            if !reg.associated.iter().any(|p| &**p == pui) {
                let mut v = std::mem::take(&mut reg.associated).into_vec();
                v.push(Arc::from(pui));
                reg.associated = v.into_boxed_slice();
            }
        }
    }

    /// A PUI leaves the implicit set (never the default PUI: that is a deregistration).
    pub fn remove_pui(&mut self, default_pui: &str, pui: &str) {
        if let Some(reg) = self.regs.get_mut(default_pui) {
            if pui == default_pui {
                return;
            }
            if reg.associated.iter().any(|p| &**p == pui) {
                let mut v = std::mem::take(&mut reg.associated).into_vec();
                v.retain(|p| &**p != pui);
                reg.associated = v.into_boxed_slice();
            }
        }
    }

    /// Remove one binding; the registration goes with its last binding (reason Network).
    pub fn remove_binding(
        &mut self,
        default_pui: &str,
        m: BindingMatch<'_>,
        events: &mut Vec<RegEvent>,
    ) -> bool {
        let Some(reg) = self.regs.get_mut(default_pui) else {
            return false;
        };
        let Some(i) = reg.bindings.iter().position(|b| m.matches(b)) else {
            return false;
        };
        let b = reg.bindings.remove(i);
        self.by_contact.remove(&b.uri);
        let key = reg.default_pui.clone();
        unindex_flows(&mut self.by_flow, &key, std::slice::from_ref(&b));
        index_flows(&mut self.by_flow, &key, &reg.bindings);
        events.push(RegEvent::BindingRemoved {
            default_pui: key.clone(),
            contact: b.uri.to_string(),
        });
        if reg.bindings.is_empty() {
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
        let Some(reg) = self.regs.get_mut(default_pui) else {
            return false;
        };
        let Some(b) = reg.bindings.iter_mut().find(|b| m.matches(b)) else {
            return false;
        };
        b.expires_at = now_s.saturating_add(expires);
        reg.generation += 1;
        if let Some(exp) = reg.next_expiry() {
            self.heap
                .push(Reverse((exp, reg.generation, reg.default_pui.clone())));
        }
        true
    }

    /// Earliest moment a binding may expire.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _, _))| self.instant(*t))
    }

    /// Expire due bindings; registrations whose last binding expired are removed.
    pub fn handle_timeout(&mut self, now: Instant, events: &mut Vec<RegEvent>) {
        let now = self.floor_secs(now);
        while let Some(Reverse((t, gen, _))) = self.heap.peek() {
            if *t > now {
                break;
            }
            let (gen, key) = (*gen, self.heap.pop().map(|Reverse((_, _, k))| k));
            let Some(key) = key else { break };
            let Some(reg) = self.regs.get_mut(&key) else {
                continue;
            };
            if reg.generation != gen {
                continue;
            }
            let expired: Vec<Arc<str>> = reg
                .bindings
                .iter()
                .filter(|b| b.expires_at <= now)
                .map(|b| b.uri.clone())
                .collect();
            unindex_flows(&mut self.by_flow, &key, &reg.bindings);
            reg.bindings.retain(|b| b.expires_at > now);
            index_flows(&mut self.by_flow, &key, &reg.bindings);
            for c in expired {
                self.by_contact.remove(&c);
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
                    reg.generation += 1;
                    let g = reg.generation;
                    self.heap.push(Reverse((next, g, key)));
                }
            }
        }
    }
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

/// Registrations reachable over one flow: almost always one; several behind a shared NAT or
/// an upstream proxy. Both forms are O(1) to update.
#[derive(Debug)]
enum FlowRegs {
    One(Arc<str>),
    Many(Box<hashbrown::HashSet<Arc<str>>>),
}

impl FlowRegs {
    fn iter(&self) -> impl Iterator<Item = &Arc<str>> {
        let (one, many) = match self {
            FlowRegs::One(k) => (Some(k), None),
            FlowRegs::Many(set) => (None, Some(set.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// The flow index key (a flow hash; collisions only widen the candidate set).
fn flow_key(f: &Flow) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    f.hash(&mut h);
    h.finish()
}

/// Drop `key` from the flow index entries of `bindings`' flows.
fn unindex_flows(idx: &mut HashMap<u64, FlowRegs>, key: &Arc<str>, bindings: &[Binding]) {
    for b in bindings {
        let k = flow_key(&b.flow);
        let empty = match idx.get_mut(&k) {
            Some(FlowRegs::One(k)) => k == key,
            Some(FlowRegs::Many(set)) => {
                set.remove(key);
                set.is_empty()
            }
            None => false,
        };
        if empty {
            idx.remove(&k);
        }
    }
}

/// Add `key` to the flow index entries of `bindings`' flows (once per flow).
fn index_flows(idx: &mut HashMap<u64, FlowRegs>, key: &Arc<str>, bindings: &[Binding]) {
    for b in bindings {
        let k = flow_key(&b.flow);
        match idx.get_mut(&k) {
            None => {
                idx.insert(k, FlowRegs::One(key.clone()));
            }
            Some(FlowRegs::One(k)) if Arc::ptr_eq(k, key) || k == key => {}
            Some(e @ FlowRegs::One(_)) => {
                let FlowRegs::One(k) = std::mem::replace(e, FlowRegs::Many(Box::default())) else {
                    continue;
                };
                if let FlowRegs::Many(set) = e {
                    set.insert(k);
                    set.insert(key.clone());
                }
            }
            Some(FlowRegs::Many(set)) => {
                set.insert(key.clone());
            }
        }
    }
}

/// Contact URI comparison for binding matching: case-insensitive scheme/host is approximated by
/// an ASCII case-insensitive comparison of the whole URI text (users in IMS are lower case).
fn uri_eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}
