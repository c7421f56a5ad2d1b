//! Durable state as records (SPEC §10): what a store keeps so that a restarted (or another)
//! gateway carries on — registrations, subscriptions, IBCF Contact mappings and the identifiers
//! we hand out — and their byte encoding.
//!
//! A record is the whole current value of one key (last writer wins); a store writes the record
//! of every key [`crate::core::Core::poll_change`] names, or deletes the key when the core has
//! no record for it any more. Times are Unix milliseconds, so a record means the same after a
//! restart. Not in-flight transactions: the peers retransmit them.
//!
//! Encoding: a format version byte, then fields in order; integers as LEB128 varints, strings as
//! a varint length and UTF-8 bytes. Decoding never panics: truncated or corrupt input is an
//! [`DecodeError`]. A record written by a newer format version is refused with
//! [`DecodeError::NewerVersion`], never misread.
//!
//! Never: files, sockets, the clock.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::sip::Transport;

/// The record format written by this version.
pub const FORMAT: u8 = 1;

/// What a record is about: its key in a store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// The registration of a default PUI.
    Registration(String),
    /// A subscription by id, with the default PUI of its registration (so that a store can keep
    /// a registration and its subscription together, e.g. in one Redis Cluster hash slot).
    Subscription { id: u64, default_pui: String },
    /// The IBCF Contact mappings of a dialog (Call-ID).
    IbcfDialog(String),
    /// Identifiers handed out (one record).
    Meta,
}

/// Text in a record: borrowed from the live state when written, from the file's bytes when
/// read (no copy per field either way), owned when built by hand.
pub type Text<'a> = Cow<'a, str>;

/// One piece of durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    Registration(RegistrationRecord<'a>),
    Subscription(SubscriptionRecord<'a>),
    IbcfDialog(IbcfDialogRecord<'a>),
    Meta(MetaRecord),
}

fn own(t: Text<'_>) -> Text<'static> {
    Cow::Owned(t.into_owned())
}

fn own_all(v: Vec<Text<'_>>) -> Vec<Text<'static>> {
    v.into_iter().map(own).collect()
}

impl Record<'_> {
    /// The same record, owning its text.
    pub fn into_owned(self) -> Record<'static> {
        match self {
            Record::Registration(r) => Record::Registration(RegistrationRecord {
                default_pui: own(r.default_pui),
                trunk_group: own(r.trunk_group),
                associated: own_all(r.associated),
                service_route: own_all(r.service_route),
                bindings: r
                    .bindings
                    .into_iter()
                    .map(|b| BindingRecord {
                        uri: own(b.uri),
                        instance: b.instance.map(own),
                        reg_id: b.reg_id,
                        expires_at: b.expires_at,
                        transport: b.transport,
                        peer: b.peer,
                        listener: b.listener,
                    })
                    .collect(),
            }),
            Record::Subscription(s) => Record::Subscription(SubscriptionRecord {
                default_pui: own(s.default_pui),
                trunk_group: own(s.trunk_group),
                to_tag: s.to_tag.map(own),
                route0: own_all(s.route0),
                remote: s.remote.map(|(r, t)| (own_all(r), own(t))),
                others: own_all(s.others),
                ..s
            }),
            Record::IbcfDialog(d) => Record::IbcfDialog(IbcfDialogRecord {
                call_id: own(d.call_id),
                expires_at: d.expires_at,
                tokens: d
                    .tokens
                    .into_iter()
                    .map(|t| IbcfTokenRecord {
                        token: own(t.token),
                        uri: own(t.uri),
                        transport: t.transport,
                        dest: match t.dest {
                            DestRecord::Addr(a) => DestRecord::Addr(a),
                            DestRecord::Name(n, p) => DestRecord::Name(own(n), p),
                        },
                    })
                    .collect(),
            }),
            Record::Meta(m) => Record::Meta(m),
        }
    }

    pub fn key(&self) -> Key {
        match self {
            Record::Registration(r) => Key::Registration(r.default_pui.to_string()),
            Record::Subscription(s) => Key::Subscription {
                id: s.id,
                default_pui: s.default_pui.to_string(),
            },
            Record::IbcfDialog(d) => Key::IbcfDialog(d.call_id.to_string()),
            Record::Meta(_) => Key::Meta,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationRecord<'a> {
    pub default_pui: Text<'a>,
    pub trunk_group: Text<'a>,
    /// The implicit registration set, default PUI first.
    pub associated: Vec<Text<'a>>,
    pub service_route: Vec<Text<'a>>,
    pub bindings: Vec<BindingRecord<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRecord<'a> {
    pub uri: Text<'a>,
    pub instance: Option<Text<'a>>,
    pub reg_id: Option<u32>,
    /// Unix milliseconds.
    pub expires_at: u64,
    pub transport: Transport,
    pub peer: SocketAddr,
    pub listener: u16,
}

/// A subscription's SUBSCRIBE between decision and final response, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestRecord {
    Idle,
    QueuedRefresh,
    QueuedFullState,
    InFlightInitial,
    InFlightRefresh,
    InFlightFullState,
}

/// Where a subscription is in its life, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifeRecord {
    Live,
    Lingering,
    LingeringUntilDialog,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord<'a> {
    pub id: u64,
    pub default_pui: Text<'a>,
    pub trunk_group: Text<'a>,
    /// Random parts of our Call-ID and From tag.
    pub call_key: u64,
    pub tag_key: u64,
    /// The remote tag, once the dialog exists.
    pub to_tag: Option<Text<'a>>,
    /// The route of the initial SUBSCRIBE.
    pub route0: Vec<Text<'a>>,
    /// The dialog's route set and remote target, once established.
    pub remote: Option<(Vec<Text<'a>>, Text<'a>)>,
    /// The implicit set as this subscription knows it (other PUIs than the default).
    pub others: Vec<Text<'a>>,
    /// Unix milliseconds; `None` = not set.
    pub created: u64,
    pub refresh_at: Option<u64>,
    pub expires_at: Option<u64>,
    pub version: Option<u64>,
    pub cseq: u32,
    pub requested: u32,
    pub granted: u32,
    pub request: RequestRecord,
    pub life: LifeRecord,
    pub await_full: bool,
    pub notifier_pending: bool,
}

/// Where a translated Contact leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestRecord<'a> {
    Addr(SocketAddr),
    Name(Text<'a>, u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IbcfTokenRecord<'a> {
    pub token: Text<'a>,
    pub uri: Text<'a>,
    pub transport: Transport,
    pub dest: DestRecord<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IbcfDialogRecord<'a> {
    pub call_id: Text<'a>,
    /// Unix milliseconds.
    pub expires_at: u64,
    pub tokens: Vec<IbcfTokenRecord<'a>>,
}

/// Identifiers handed out, so that none is reused after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetaRecord {
    /// The next subscription id.
    pub next_subscription: u64,
    /// The key of IBCF tokens (a dialog translated again keeps its token).
    pub ibcf_secret: u64,
}

/// Why bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("record ends early")]
    Truncated,
    #[error("record written by a newer format (version {0}, this build reads {FORMAT})")]
    NewerVersion(u8),
    #[error("unknown record format version {0}")]
    UnknownVersion(u8),
    #[error("invalid {0}")]
    Invalid(&'static str),
    #[error("{0} bytes after the end of the record")]
    Trailing(usize),
}

// ---- encoding ----

struct W<'a>(&'a mut Vec<u8>);

impl W<'_> {
    fn u(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return;
            }
            self.0.push(b | 0x80);
        }
    }
    fn b(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }
    fn s(&mut self, s: &str) {
        self.u(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn os(&mut self, s: Option<&str>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.s(s);
            }
        }
    }
    fn ou(&mut self, v: Option<u64>) {
        match v {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                self.u(v);
            }
        }
    }
    fn list(&mut self, l: &[Text<'_>]) {
        self.u(l.len() as u64);
        for s in l {
            self.s(s);
        }
    }
    fn addr(&mut self, a: &SocketAddr) {
        match a.ip() {
            IpAddr::V4(ip) => {
                self.0.push(4);
                self.0.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                self.0.push(6);
                self.0.extend_from_slice(&ip.octets());
            }
        }
        self.u(a.port().into());
    }
    fn transport(&mut self, t: Transport) {
        self.0.push(match t {
            Transport::Udp => 0,
            Transport::Tcp => 1,
        });
    }
}

/// Append the encoding of `r` to `out`.
pub fn encode(r: &Record<'_>, out: &mut Vec<u8>) {
    out.push(FORMAT);
    let mut w = W(out);
    match r {
        Record::Registration(r) => {
            w.0.push(b'R');
            w.s(&r.default_pui);
            w.s(&r.trunk_group);
            w.list(&r.associated);
            w.list(&r.service_route);
            w.u(r.bindings.len() as u64);
            for b in &r.bindings {
                w.s(&b.uri);
                w.os(b.instance.as_deref());
                w.ou(b.reg_id.map(u64::from));
                w.u(b.expires_at);
                w.transport(b.transport);
                w.addr(&b.peer);
                w.u(b.listener.into());
            }
        }
        Record::Subscription(s) => {
            w.0.push(b'S');
            w.u(s.id);
            w.s(&s.default_pui);
            w.s(&s.trunk_group);
            w.u(s.call_key);
            w.u(s.tag_key);
            w.os(s.to_tag.as_deref());
            w.list(&s.route0);
            match &s.remote {
                None => w.0.push(0),
                Some((route, target)) => {
                    w.0.push(1);
                    w.list(route);
                    w.s(target);
                }
            }
            w.list(&s.others);
            w.u(s.created);
            w.ou(s.refresh_at);
            w.ou(s.expires_at);
            w.ou(s.version);
            w.u(s.cseq.into());
            w.u(s.requested.into());
            w.u(s.granted.into());
            w.0.push(match s.request {
                RequestRecord::Idle => 0,
                RequestRecord::QueuedRefresh => 1,
                RequestRecord::QueuedFullState => 2,
                RequestRecord::InFlightInitial => 3,
                RequestRecord::InFlightRefresh => 4,
                RequestRecord::InFlightFullState => 5,
            });
            w.0.push(match s.life {
                LifeRecord::Live => 0,
                LifeRecord::Lingering => 1,
                LifeRecord::LingeringUntilDialog => 2,
            });
            w.b(s.await_full);
            w.b(s.notifier_pending);
        }
        Record::IbcfDialog(d) => {
            w.0.push(b'I');
            w.s(&d.call_id);
            w.u(d.expires_at);
            w.u(d.tokens.len() as u64);
            for t in &d.tokens {
                w.s(&t.token);
                w.s(&t.uri);
                w.transport(t.transport);
                match &t.dest {
                    DestRecord::Addr(a) => {
                        w.0.push(0);
                        w.addr(a);
                    }
                    DestRecord::Name(n, p) => {
                        w.0.push(1);
                        w.s(n);
                        w.u((*p).into());
                    }
                }
            }
        }
        Record::Meta(m) => {
            w.0.push(b'M');
            w.u(m.next_subscription);
            w.u(m.ibcf_secret);
        }
    }
}

/// Append the encoding of a key to `out` (a store's key for the record).
pub fn encode_key(k: &Key, out: &mut Vec<u8>) {
    let w = W(out);
    match k {
        Key::Registration(p) => {
            w.0.push(b'R');
            w.0.extend_from_slice(p.as_bytes());
        }
        Key::Subscription { id, default_pui } => {
            w.0.push(b'S');
            w.0.extend_from_slice(&id.to_be_bytes());
            w.0.extend_from_slice(default_pui.as_bytes());
        }
        Key::IbcfDialog(c) => {
            w.0.push(b'I');
            w.0.extend_from_slice(c.as_bytes());
        }
        Key::Meta => w.0.push(b'M'),
    }
}

/// The key [`encode_key`] wrote.
pub fn decode_key(b: &[u8]) -> Result<Key, DecodeError> {
    let (&kind, rest) = b.split_first().ok_or(DecodeError::Truncated)?;
    let text = |r: &[u8]| {
        std::str::from_utf8(r)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Invalid("key text"))
    };
    match kind {
        b'R' => Ok(Key::Registration(text(rest)?)),
        b'S' => {
            let (id, pui) = rest
                .split_first_chunk::<8>()
                .ok_or(DecodeError::Invalid("key id"))?;
            Ok(Key::Subscription {
                id: u64::from_be_bytes(*id),
                default_pui: text(pui)?,
            })
        }
        b'I' => Ok(Key::IbcfDialog(text(rest)?)),
        b'M' if rest.is_empty() => Ok(Key::Meta),
        _ => Err(DecodeError::Invalid("key kind")),
    }
}

// ---- decoding ----

struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.0.split_first().ok_or(DecodeError::Truncated)?;
        self.0 = rest;
        Ok(b)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (a, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(a)
    }
    fn u(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(DecodeError::Invalid("integer"));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Invalid("integer"))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.u()?).map_err(|_| DecodeError::Invalid("32-bit integer"))
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        u16::try_from(self.u()?).map_err(|_| DecodeError::Invalid("16-bit integer"))
    }
    fn b(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid("flag")),
        }
    }
    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = usize::try_from(self.u()?).map_err(|_| DecodeError::Truncated)?;
        // Every element takes at least a byte: a count beyond what is left is corrupt, and
        // refusing it here keeps a hostile count from allocating.
        if n > self.0.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }
    fn s(&mut self) -> Result<Text<'a>, DecodeError> {
        let n = self.len()?;
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(Cow::Borrowed)
            .map_err(|_| DecodeError::Invalid("text"))
    }
    fn os(&mut self) -> Result<Option<Text<'a>>, DecodeError> {
        Ok(if self.b()? { Some(self.s()?) } else { None })
    }
    fn ou(&mut self) -> Result<Option<u64>, DecodeError> {
        Ok(if self.b()? { Some(self.u()?) } else { None })
    }
    fn list(&mut self) -> Result<Vec<Text<'a>>, DecodeError> {
        let n = self.len()?;
        (0..n).map(|_| self.s()).collect()
    }
    fn addr(&mut self) -> Result<SocketAddr, DecodeError> {
        let ip = match self.byte()? {
            4 => {
                let o: [u8; 4] = self
                    .take(4)?
                    .try_into()
                    .map_err(|_| DecodeError::Truncated)?;
                IpAddr::V4(Ipv4Addr::from(o))
            }
            6 => {
                let o: [u8; 16] = self
                    .take(16)?
                    .try_into()
                    .map_err(|_| DecodeError::Truncated)?;
                IpAddr::V6(Ipv6Addr::from(o))
            }
            _ => return Err(DecodeError::Invalid("address family")),
        };
        Ok(SocketAddr::new(ip, self.u16()?))
    }
    fn transport(&mut self) -> Result<Transport, DecodeError> {
        match self.byte()? {
            0 => Ok(Transport::Udp),
            1 => Ok(Transport::Tcp),
            _ => Err(DecodeError::Invalid("transport")),
        }
    }
}

/// Decode one record (the whole of `b`); its text borrows from `b`.
pub fn decode(b: &[u8]) -> Result<Record<'_>, DecodeError> {
    let mut r = Rd(b);
    match r.byte()? {
        FORMAT => {}
        v if v > FORMAT => return Err(DecodeError::NewerVersion(v)),
        v => return Err(DecodeError::UnknownVersion(v)),
    }
    let rec = match r.byte()? {
        b'R' => {
            let default_pui = r.s()?;
            let trunk_group = r.s()?;
            let associated = r.list()?;
            let service_route = r.list()?;
            let n = r.len()?;
            let mut bindings = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                bindings.push(BindingRecord {
                    uri: r.s()?,
                    instance: r.os()?,
                    reg_id: r
                        .ou()?
                        .map(u32::try_from)
                        .transpose()
                        .map_err(|_| DecodeError::Invalid("reg-id"))?,
                    expires_at: r.u()?,
                    transport: r.transport()?,
                    peer: r.addr()?,
                    listener: r.u16()?,
                });
            }
            Record::Registration(RegistrationRecord {
                default_pui,
                trunk_group,
                associated,
                service_route,
                bindings,
            })
        }
        b'S' => Record::Subscription(SubscriptionRecord {
            id: r.u()?,
            default_pui: r.s()?,
            trunk_group: r.s()?,
            call_key: r.u()?,
            tag_key: r.u()?,
            to_tag: r.os()?,
            route0: r.list()?,
            remote: if r.b()? {
                Some((r.list()?, r.s()?))
            } else {
                None
            },
            others: r.list()?,
            created: r.u()?,
            refresh_at: r.ou()?,
            expires_at: r.ou()?,
            version: r.ou()?,
            cseq: r.u32()?,
            requested: r.u32()?,
            granted: r.u32()?,
            request: match r.byte()? {
                0 => RequestRecord::Idle,
                1 => RequestRecord::QueuedRefresh,
                2 => RequestRecord::QueuedFullState,
                3 => RequestRecord::InFlightInitial,
                4 => RequestRecord::InFlightRefresh,
                5 => RequestRecord::InFlightFullState,
                _ => return Err(DecodeError::Invalid("request state")),
            },
            life: match r.byte()? {
                0 => LifeRecord::Live,
                1 => LifeRecord::Lingering,
                2 => LifeRecord::LingeringUntilDialog,
                _ => return Err(DecodeError::Invalid("life")),
            },
            await_full: r.b()?,
            notifier_pending: r.b()?,
        }),
        b'I' => {
            let call_id = r.s()?;
            let expires_at = r.u()?;
            let n = r.len()?;
            let mut tokens = Vec::with_capacity(n.min(8));
            for _ in 0..n {
                tokens.push(IbcfTokenRecord {
                    token: r.s()?,
                    uri: r.s()?,
                    transport: r.transport()?,
                    dest: match r.byte()? {
                        0 => DestRecord::Addr(r.addr()?),
                        1 => DestRecord::Name(r.s()?, r.u16()?),
                        _ => return Err(DecodeError::Invalid("destination")),
                    },
                });
            }
            Record::IbcfDialog(IbcfDialogRecord {
                call_id,
                expires_at,
                tokens,
            })
        }
        b'M' => Record::Meta(MetaRecord {
            next_subscription: r.u()?,
            ibcf_secret: r.u()?,
        }),
        _ => return Err(DecodeError::Invalid("record kind")),
    };
    if !r.0.is_empty() {
        return Err(DecodeError::Trailing(r.0.len()));
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn samples() -> Vec<Record<'static>> {
        vec![
            Record::Registration(RegistrationRecord {
                default_pui: "sip:alice@ims.example.net".into(),
                trunk_group: "access".into(),
                associated: vec!["sip:alice@ims.example.net".into(), "tel:+4917".into()],
                service_route: vec!["sip:orig@scscf;lr".into()],
                bindings: vec![
                    BindingRecord {
                        uri: "sip:alice@10.0.0.1:5060".into(),
                        instance: Some("urn:uuid:1".into()),
                        reg_id: Some(2),
                        expires_at: 1_700_000_000_123,
                        transport: Transport::Udp,
                        peer: "10.0.0.1:5060".parse().unwrap(),
                        listener: 0,
                    },
                    BindingRecord {
                        uri: "sip:alice@[2001:db8::1]:5060;transport=tcp".into(),
                        instance: None,
                        reg_id: None,
                        expires_at: u64::MAX,
                        transport: Transport::Tcp,
                        peer: "[2001:db8::1]:40000".parse().unwrap(),
                        listener: 3,
                    },
                ],
            }),
            Record::Subscription(SubscriptionRecord {
                id: 77,
                default_pui: "sip:alice@ims.example.net".into(),
                trunk_group: "access".into(),
                call_key: u64::MAX,
                tag_key: 5,
                to_tag: Some("scscf-tag".into()),
                route0: vec!["sip:orig@scscf;lr".into()],
                remote: Some((vec!["sip:rr1;lr".into()], "sip:notifier@scscf".into())),
                others: vec!["tel:+4917".into()],
                created: 1_700_000_000_000,
                refresh_at: Some(1_700_003_060_000),
                expires_at: None,
                version: Some(0),
                cseq: 3,
                requested: 3660,
                granted: 3600,
                request: RequestRecord::QueuedFullState,
                life: LifeRecord::LingeringUntilDialog,
                await_full: true,
                notifier_pending: false,
            }),
            Record::IbcfDialog(IbcfDialogRecord {
                call_id: "c1@peer".into(),
                expires_at: 9,
                tokens: vec![
                    IbcfTokenRecord {
                        token: "c0123".into(),
                        uri: "sip:p@10.0.0.1".into(),
                        transport: Transport::Udp,
                        dest: DestRecord::Addr("10.0.0.1:5060".parse().unwrap()),
                    },
                    IbcfTokenRecord {
                        token: "c0456".into(),
                        uri: "sip:p@host".into(),
                        transport: Transport::Tcp,
                        dest: DestRecord::Name("host.example".into(), 5061),
                    },
                ],
            }),
            Record::Meta(MetaRecord {
                next_subscription: 78,
                ibcf_secret: 0xdead_beef,
            }),
        ]
    }

    #[test]
    fn every_record_kind_round_trips_with_its_key() {
        for r in samples() {
            let mut b = Vec::new();
            encode(&r, &mut b);
            assert_eq!(decode(&b), Ok(r.clone()));
            let mut k = Vec::new();
            encode_key(&r.key(), &mut k);
            assert_eq!(decode_key(&k), Ok(r.key()));
        }
    }

    #[test]
    fn truncation_and_corruption_are_errors_never_panics() {
        for r in samples() {
            let mut b = Vec::new();
            encode(&r, &mut b);
            for cut in 0..b.len() {
                assert!(decode(&b[..cut]).is_err(), "cut at {cut} of {r:?}");
            }
            let mut longer = b.clone();
            longer.push(0);
            assert_eq!(decode(&longer), Err(DecodeError::Trailing(1)));
            for i in 0..b.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut c = b.clone();
                    c[i] ^= flip;
                    let _ = decode(&c); // any answer but a panic
                }
            }
        }
    }

    #[test]
    fn a_newer_format_is_refused_by_name() {
        let mut b = Vec::new();
        encode(&samples()[3], &mut b);
        b[0] = FORMAT + 1;
        assert_eq!(decode(&b), Err(DecodeError::NewerVersion(FORMAT + 1)));
        assert!(decode(&b).unwrap_err().to_string().contains("newer format"));
    }

    #[test]
    fn hostile_counts_do_not_allocate() {
        // A registration claiming 2^60 bindings in a few bytes.
        let mut b = vec![FORMAT, b'R'];
        let mut w = W(&mut b);
        w.s("p");
        w.s("t");
        w.u(0);
        w.u(0);
        w.u(1 << 60);
        assert_eq!(decode(&b), Err(DecodeError::Truncated));
    }
}
