//! Shared durable state on Redis or Valkey (`state.backend = "redis"`, SPEC §10, docs/redis.md):
//! the same records as the embedded store, so that another instance with the same identity
//! restores them and carries on — a pair on a floating address, a restarted pod elsewhere.
//!
//! ```text
//!  start-up:  take the lease (SET PREFIX:lease ID NX PX lease; a standby polls every lease/3)
//!             ─▶ lease thread: renews every lease/3 (EVAL: ours → PEXPIRE; gone → SET again and
//!                resynchronise; another owner → log and exit EXIT_LEASE_LOST)
//!             ─▶ SCAN MATCH PREFIX:* + MGET ─▶ Loaded ─▶ core.restore (app.rs)
//!  running:   SIP task ─▶ Store queue (Msg) ─▶ writer thread: commits ─▶ MULTI SET/DEL… EXEC
//!                                                              snapshot chunks ─▶ SET…
//!                                                              snapshot end ─▶ SCAN, DEL stale
//! ```
//!
//! Key layout (a Redis Cluster hash tag per registration, so a registration and its
//! subscriptions share a slot): `PREFIX:{DEFAULT-PUI}:reg`, `PREFIX:{DEFAULT-PUI}:sub:ID`,
//! `PREFIX:{CALL-ID}:ibcf`, `PREFIX:meta`, `PREFIX:lease`. `%`, `{` and `}` in a tag are written
//! `%25`, `%7B`, `%7D`, so a tag is always well-formed and every key name reads back to its
//! [`Key`]. Values are the records' own encoding (`regevent_proto::state`).
//!
//! While Redis cannot be written, the writer retries the oldest commit with backoff (never
//! drops one); the bounded queue fills and the SIP task keeps the changes in the core, one per
//! key. Whenever Redis is reachable again, or the lease key was found gone (Redis restarted
//! empty, or was flushed), the writer asks for a full copy of the state and, at its end, deletes
//! the keys under the prefix that the copy did not write: Redis holds exactly the live state
//! again. Connectivity changes are logged once each and shown by [`STATE_CONNECTED`].
//!
//! Fencing: the writer writes only while the lease was confirmed less than 2/3 of
//! `state.lease` ago (from when the renewal was sent), so an instance that was paused or cut
//! off longer than that cannot overwrite a successor's state: the successor can only have the
//! lease once it lapsed, a full lease after the last renewal.
//!
//! Owns: the connections to Redis, the lease, the keys under the prefix. Never: SIP, what a
//! record means.

use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hashbrown::HashSet;
use regevent_proto::state::{self, Key};

use super::journal::{self, Loaded};
use super::{Msg, Opened, Store, WriterLink};
use crate::names;

/// Gauge, label `backend="redis"`: 1 while Redis answers, 0 while it does not (the gateway then
/// serves from memory and holds changes back).
pub use crate::names::STATE_CONNECTED;

/// Exit status of a process that found its lease taken by another instance: it must stop
/// serving (systemd or Kubernetes restarts it, as a standby when `state.standby = true`).
/// EX_TEMPFAIL: "try again later".
pub const EXIT_LEASE_LOST: i32 = 75;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long Redis may take to answer a command (a transaction of a backlog of commits, a
/// snapshot chunk of 20,000 records: tens of milliseconds on loopback).
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Retry backoff while Redis cannot be written: from the first to the last, doubling.
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Slots per SCAN step (and so keys per MGET/DEL batch): 10,000 read 200,000 records in 1.2 s
/// on loopback where 1,000 took 1.7 s (round trips); a step still holds Redis only milliseconds.
const SCAN_COUNT: usize = 10_000;
/// Commands in one transaction before queued commits go in the next one.
const MAX_TXN_OPS: usize = 50_000;

/// Renew the lease if it is ours; take it again if it is gone; else name the owner.
const RENEW: &str = "local v = redis.call('GET', KEYS[1]) \
    if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end \
    if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end \
    return v";
/// Give the lease up if it is ours (a clean stop: a standby takes over at its next poll).
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) end return 0";

/// Why the Redis backend cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    #[error(
        "state.url {place}: rediss:// (TLS) is not supported by this build; use redis:// over a \
         private network, or a local TLS tunnel (stunnel, a sidecar) to a TLS-only Redis"
    )]
    Tls { place: String },
    #[error("state.url {place}: {source}")]
    Url {
        place: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("Redis at {place}: cannot connect: {source}")]
    Connect {
        place: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("Redis at {place}: {what}: {source}")]
    Command {
        place: String,
        what: &'static str,
        #[source]
        source: redis::RedisError,
    },
    #[error(
        "Redis at {place}: the lease {key} is held by another instance ({owner}); not starting. \
         Stop that instance, or set state.standby = true to wait and take over when its lease lapses"
    )]
    LeaseHeld {
        place: String,
        key: String,
        owner: String,
    },
    #[error("cannot start the Redis state threads: {0}")]
    Thread(#[source] std::io::Error),
}

/// Where the state is: a Redis URL, the key prefix, the lease.
#[derive(Debug, Clone)]
pub struct Target {
    url: String,
    /// The URL without its password, for messages.
    pub place: String,
    pub prefix: String,
    pub lease: Duration,
}

impl Target {
    /// `prefix` None: [`default_prefix`] of `identity` (`sip.identity`).
    pub fn new(
        url: &str,
        prefix: Option<&str>,
        identity: &str,
        lease: Duration,
    ) -> Result<Target, RedisError> {
        let place = redact(url);
        if url.starts_with("rediss://") {
            return Err(RedisError::Tls { place });
        }
        redis::Client::open(url).map_err(|source| RedisError::Url {
            place: place.clone(),
            source,
        })?;
        Ok(Target {
            url: url.to_owned(),
            place,
            prefix: prefix.map_or_else(|| default_prefix(identity), str::to_owned),
            lease,
        })
    }

    fn lease_key(&self) -> String {
        format!("{}:lease", self.prefix)
    }

    /// `PREFIX:*` as a SCAN pattern (glob characters in the prefix escaped).
    fn pattern(&self) -> String {
        let mut p = String::with_capacity(self.prefix.len() + 2);
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push_str(":*");
        p
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let con =
            redis::Client::open(self.url.as_str())?.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        con.set_read_timeout(Some(IO_TIMEOUT))?;
        con.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(con)
    }
}

/// The prefix of a gateway whose `sip.identity` is `identity`: `regevent-gw:IDENTITY` (braces
/// left out: they would mark a hash tag).
pub fn default_prefix(identity: &str) -> String {
    let id: String = identity
        .chars()
        .filter(|c| !matches!(c, '{' | '}'))
        .collect();
    format!("regevent-gw:{id}")
}

/// `url` without the password of its user information.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find('/')
        .map_or(url.len(), |i| scheme_end + i);
    let Some(at) = url[scheme_end..authority_end]
        .rfind('@')
        .map(|i| scheme_end + i)
    else {
        return url.to_owned();
    };
    match url[scheme_end..at].find(':').map(|i| scheme_end + i) {
        Some(colon) => format!("{}:***{}", &url[..colon], &url[at..]),
        None => url.to_owned(),
    }
}

// ---- key layout ----

fn push_tag(out: &mut String, text: &str) {
    out.push('{');
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out.push('}');
}

fn unescape_tag(tag: &str) -> Option<String> {
    let mut out = String::with_capacity(tag.len());
    let mut rest = tag;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i..i + 3)?;
        out.push(match code {
            "%25" => '%',
            "%7B" => '{',
            "%7D" => '}',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// The Redis key of a record's key, written into `out` (cleared first).
pub fn redis_key(prefix: &str, k: &Key, out: &mut String) {
    out.clear();
    out.push_str(prefix);
    out.push(':');
    match k {
        Key::Registration(pui) => {
            push_tag(out, pui);
            out.push_str(":reg");
        }
        Key::Subscription { id, default_pui } => {
            push_tag(out, default_pui);
            let _ = write!(out, ":sub:{id}");
        }
        Key::IbcfDialog(call_id) => {
            push_tag(out, call_id);
            out.push_str(":ibcf");
        }
        Key::Meta => out.push_str("meta"),
    }
}

/// The record key a Redis key names, if it is one of ours ([`redis_key`] wrote it).
pub fn parse_key(prefix: &str, name: &[u8]) -> Option<Key> {
    let rest = std::str::from_utf8(name)
        .ok()?
        .strip_prefix(prefix)?
        .strip_prefix(':')?;
    if rest == "meta" {
        return Some(Key::Meta);
    }
    let (tag, kind) = rest.strip_prefix('{')?.split_once('}')?;
    let text = unescape_tag(tag)?;
    match kind {
        ":reg" => Some(Key::Registration(text)),
        ":ibcf" => Some(Key::IbcfDialog(text)),
        _ => {
            let id = kind.strip_prefix(":sub:")?;
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(Key::Subscription {
                id: id.parse().ok()?,
                default_pui: text,
            })
        }
    }
}

// ---- shared between the lease thread and the writer ----

/// `None` until a Redis backend starts; then whether Redis answers (for `/readyz` and tools).
static STATUS: AtomicU8 = AtomicU8::new(0);

/// Whether the Redis backend can reach Redis now (`None`: not the Redis backend).
pub fn connected() -> Option<bool> {
    match STATUS.load(Ordering::Relaxed) {
        1 => Some(true),
        2 => Some(false),
        _ => None,
    }
}

#[derive(Debug)]
struct Shared {
    target: Target,
    instance: String,
    base: Instant,
    /// Milliseconds after `base` at which the last confirmed renewal (or the taking) of the lease
    /// was sent.
    renewed: AtomicU64,
    /// Redis must get a full copy of the state (it came back, or lost our keys).
    resync: AtomicBool,
    /// Whether Redis answered last (None: not yet asked), for one log line per change.
    up: Mutex<Option<bool>>,
}

impl Shared {
    fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_millis() as u64
    }

    fn renewed_at(&self, sent: Instant) {
        self.renewed.store(self.ms(sent), Ordering::Relaxed);
    }

    /// The writer may write: the lease was confirmed recently enough that nobody else can hold it.
    fn fenced_in(&self) -> bool {
        let age = self
            .ms(Instant::now())
            .saturating_sub(self.renewed.load(Ordering::Relaxed));
        u128::from(age) < self.target.lease.as_millis() * 2 / 3
    }

    /// Whether Redis answered; logs and shows changes only.
    fn report(&self, ok: bool, error: Option<&redis::RedisError>) {
        let mut up = self.up.lock().unwrap_or_else(|p| p.into_inner());
        if *up == Some(ok) {
            return;
        }
        let place = &self.target.place;
        match (*up, ok) {
            (None, true) => {
                tracing::info!(%place, prefix = %self.target.prefix, "state: connected to Redis")
            }
            (_, true) => {
                tracing::info!(%place, "state: Redis answers again; resynchronising the whole state");
                self.resync.store(true, Ordering::Relaxed);
            }
            (_, false) => tracing::error!(
                %place,
                error = error.map(ToString::to_string).unwrap_or_default(),
                "state: Redis does not answer; serving from memory, changes wait (retrying with backoff)"
            ),
        }
        *up = Some(ok);
        STATUS.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
        metrics::gauge!(STATE_CONNECTED, "backend" => "redis").set(if ok { 1.0 } else { 0.0 });
    }
}

/// Text from Redis for a message: lossy, without control characters, at most 120 characters.
fn shown(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect()
}

/// An identifier for this process: host, pid and a random part.
fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!(
        "{}/{}/{:08x}",
        if host.is_empty() { "?" } else { &host },
        std::process::id(),
        h.finish() as u32
    )
}

// ---- the lease ----

/// The lease, taken: renewed by a thread of its own until dropped (then given up).
pub struct Lease {
    shared: Arc<Shared>,
    /// The connection the lease was taken on, for the load (the lease thread opens its own).
    con: Option<redis::Connection>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("instance", &self.shared.instance)
            .field("prefix", &self.shared.target.prefix)
            .finish_non_exhaustive()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum Renewal {
    Kept,
    Retaken,
    Other(String),
}

fn renew(shared: &Shared, con: &mut redis::Connection) -> redis::RedisResult<Renewal> {
    let v: redis::Value = redis::cmd("EVAL")
        .arg(RENEW)
        .arg(1)
        .arg(shared.target.lease_key())
        .arg(&shared.instance)
        .arg(shared.target.lease.as_millis() as u64)
        .query(con)?;
    Ok(match v {
        redis::Value::Int(1) => Renewal::Kept,
        redis::Value::Int(2) => Renewal::Retaken,
        redis::Value::BulkString(owner) => Renewal::Other(shown(&owner)),
        other => {
            return Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "lease renewal",
                shown(format!("{other:?}").as_bytes()),
            )))
        }
    })
}

/// Take the lease: at once, or (`standby`) as soon as it is free, polling every third of the
/// lease. Without `standby`, a lease held by another instance, or a Redis that does not
/// answer, is an error.
pub fn take_lease(target: &Target, standby: bool) -> Result<Lease, RedisError> {
    let shared = Arc::new(Shared {
        target: target.clone(),
        instance: instance_id(),
        base: Instant::now(),
        renewed: AtomicU64::new(0),
        resync: AtomicBool::new(false),
        up: Mutex::new(None),
    });
    let key = target.lease_key();
    let place = || target.place.clone();
    let poll = target.lease / 3;
    let (mut told_waiting, mut told_unreachable) = (false, false);
    loop {
        let attempt = target.connect().and_then(|mut con| {
            let sent = Instant::now();
            let taken: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&shared.instance)
                .arg("NX")
                .arg("PX")
                .arg(target.lease.as_millis() as u64)
                .query(&mut con)?;
            if taken.is_some() {
                return Ok(Ok((con, sent)));
            }
            let owner: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query(&mut con)?;
            Ok(Err(owner))
        });
        match attempt {
            Ok(Ok((con, sent))) => {
                shared.renewed_at(sent);
                shared.report(true, None);
                tracing::info!(place = %target.place, key = %key, instance = %shared.instance, "state: lease taken; this instance is active");
                let (stop, stopped) = mpsc::channel();
                let s = shared.clone();
                let thread = std::thread::Builder::new()
                    .name("state-lease".into())
                    .spawn(move || lease_thread(s, stopped))
                    .map_err(RedisError::Thread)?;
                return Ok(Lease {
                    shared,
                    con: Some(con),
                    stop: Some(stop),
                    thread: Some(thread),
                });
            }
            // It lapsed between SET and GET: try again now.
            Ok(Err(None)) => continue,
            Ok(Err(Some(owner))) => {
                let owner = shown(&owner);
                if !standby {
                    return Err(RedisError::LeaseHeld {
                        place: place(),
                        key,
                        owner,
                    });
                }
                if !told_waiting {
                    told_waiting = true;
                    tracing::info!(place = %target.place, key = %key, %owner, "state: standby; waiting for the active instance's lease to lapse");
                }
            }
            Err(source) => {
                if !standby {
                    return Err(RedisError::Connect {
                        place: place(),
                        source,
                    });
                }
                if !told_unreachable {
                    told_unreachable = true;
                    tracing::warn!(place = %target.place, error = %source, "state: standby; Redis does not answer, still waiting");
                }
            }
        }
        std::thread::sleep(poll);
    }
}

fn lease_thread(shared: Arc<Shared>, stop: Receiver<()>) {
    let period = shared.target.lease / 3;
    let mut con: Option<redis::Connection> = None;
    let mut last_ok = Instant::now();
    // Until the lease is dropped (the writer ended) or the process stops.
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(period) {
        let sent = Instant::now();
        let result = match con.take() {
            Some(c) => Ok(c),
            None => shared.target.connect(),
        }
        .and_then(|mut c| renew(&shared, &mut c).map(|r| (c, r)));
        if matches!(result, Ok((_, Renewal::Kept | Renewal::Retaken))) {
            let gap = sent.saturating_duration_since(last_ok);
            if gap > shared.target.lease * 2 / 3 {
                tracing::warn!(
                    gap_ms = gap.as_millis() as u64,
                    lease_ms = shared.target.lease.as_millis() as u64,
                    "state: the lease was renewed late (the process or Redis was stalled)"
                );
            }
            last_ok = sent;
        }
        match result {
            Ok((c, Renewal::Kept)) => {
                shared.renewed_at(sent);
                shared.report(true, None);
                con = Some(c);
            }
            Ok((c, Renewal::Retaken)) => {
                shared.renewed_at(sent);
                tracing::warn!(place = %shared.target.place, "state: the lease key was gone (Redis restarted empty, or was flushed?); taken again, resynchronising the whole state");
                shared.resync.store(true, Ordering::Relaxed);
                shared.report(true, None);
                con = Some(c);
            }
            Ok((_, Renewal::Other(owner))) => {
                metrics::counter!(names::STATE_ERRORS, "op" => "lease").increment(1);
                tracing::error!(place = %shared.target.place, key = %shared.target.lease_key(), %owner,
                    "state: another instance holds the lease; this one stops serving now (exit status {EXIT_LEASE_LOST})");
                std::process::exit(EXIT_LEASE_LOST);
            }
            Err(e) => {
                metrics::counter!(names::STATE_ERRORS, "op" => "lease").increment(1);
                shared.report(false, Some(&e));
            }
        }
    }
    // A clean stop: give the lease up so that a standby need not wait for it to lapse.
    let released = match con {
        Some(c) => Ok(c),
        None => shared.target.connect(),
    }
    .and_then(|mut c| {
        redis::cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(shared.target.lease_key())
            .arg(&shared.instance)
            .query::<i64>(&mut c)
    });
    match released {
        Ok(1) => tracing::info!(place = %shared.target.place, "state: lease given up"),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "state: could not give the lease up; it lapses by itself")
        }
    }
}

// ---- start-up ----

/// Load everything under the prefix and start the writer. The lease stays held (and renewed)
/// until the writer ends.
pub fn open(mut lease: Lease) -> Result<Opened, RedisError> {
    let shared = lease.shared.clone();
    let target = &shared.target;
    let mut con = match lease.con.take() {
        Some(c) => c,
        None => target.connect().map_err(|source| RedisError::Connect {
            place: target.place.clone(),
            source,
        })?,
    };
    let began = Instant::now();
    let loaded = load(target, &mut con)?;
    tracing::info!(
        records = loaded.len(),
        ms = began.elapsed().as_millis() as u64,
        "state: read from Redis (SCAN + MGET)"
    );
    let place = format!("{} (prefix {})", target.place, target.prefix);
    let link_shared = shared.clone();
    let store = Store::spawn(place, "state-writer", 0, None, move |rx, link| {
        let mut w = Writer {
            shared: link_shared,
            con: Some(con),
            link,
            txn: redis::pipe(),
            txn_ops: 0,
            plain: redis::pipe(),
            key: String::new(),
            snapshot: None,
            told_fenced: false,
        };
        w.txn.atomic();
        w.run(rx);
        // Everything is written (or given up): the lease goes last.
        drop(lease);
    })
    .map_err(RedisError::Thread)?;
    Ok(Opened { store, loaded })
}

/// Every record under the target's prefix: SCAN (never KEYS) and MGET, `SCAN_COUNT` at a time.
fn load(target: &Target, con: &mut redis::Connection) -> Result<Loaded, RedisError> {
    let err = |what| {
        move |source| RedisError::Command {
            place: target.place.clone(),
            what,
            source,
        }
    };
    let pattern = target.pattern();
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut foreign = 0usize;
    let mut cursor = String::from("0");
    let mut kbuf = Vec::new();
    loop {
        let (next, names): (String, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(&cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query(con)
            .map_err(err("SCAN"))?;
        let ours: Vec<(Vec<u8>, Key)> = names
            .into_iter()
            .filter_map(|n| match parse_key(&target.prefix, &n) {
                Some(k) => Some((n, k)),
                None => {
                    if n != target.lease_key().as_bytes() {
                        foreign += 1;
                    }
                    None
                }
            })
            .collect();
        if !ours.is_empty() {
            let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(ours.iter().map(|(n, _)| n.as_slice()).collect::<Vec<_>>())
                .query(con)
                .map_err(err("MGET"))?;
            for ((_, k), v) in ours.into_iter().zip(values) {
                // Gone since the SCAN saw it: deleted meanwhile.
                let Some(v) = v else { continue };
                kbuf.clear();
                state::encode_key(&k, &mut kbuf);
                entries.push((kbuf.clone(), v));
            }
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    // SCAN may return a key more than once.
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    entries.dedup_by(|a, b| a.0 == b.0);
    if foreign > 0 {
        tracing::warn!(place = %target.place, prefix = %target.prefix, keys = foreign, "state: keys under the prefix that are not records were left alone");
    }
    Ok(Loaded::from_entries(entries, 0))
}

/// Every record under a prefix, decoded and owned (tests, tools).
pub fn read_records(url: &str, prefix: &str) -> Result<Vec<state::Record<'static>>, RedisError> {
    let target = Target::new(url, Some(prefix), "", Duration::from_secs(5))?;
    let mut con = target.connect().map_err(|source| RedisError::Connect {
        place: target.place.clone(),
        source,
    })?;
    let loaded = load(&target, &mut con)?;
    Ok(loaded
        .entries()
        .filter_map(|(_, v)| state::decode(v).ok().map(state::Record::into_owned))
        .collect())
}

// ---- the writer ----

struct Writer {
    shared: Arc<Shared>,
    con: Option<redis::Connection>,
    link: WriterLink,
    /// Commits gathered into one MULTI … EXEC.
    txn: redis::Pipeline,
    txn_ops: usize,
    /// Snapshot chunks and stale-key deletions (no transaction needed).
    plain: redis::Pipeline,
    key: String,
    /// While a full copy is being written: hashes of the keys written since it began.
    snapshot: Option<Snapshot>,
    told_fenced: bool,
}

struct Snapshot {
    written: HashSet<u64>,
    records: u64,
    began: Instant,
}

/// Hash of a Redis key name (a snapshot keeps 8 bytes per key, not the name; two keys sharing
/// a hash would only let a stale one survive until the next resynchronisation).
fn name_hash(name: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    h.write(name);
    h.finish()
}

/// Run `f` on a connection until it succeeds: (re)connect, back off, and — when `fenced` — wait
/// while the lease is not known to be ours. Reports connectivity changes.
fn retry<T>(
    shared: &Shared,
    con: &mut Option<redis::Connection>,
    fenced: bool,
    told_fenced: &mut bool,
    op: &'static str,
    mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
) -> T {
    let mut backoff = BACKOFF_FIRST;
    loop {
        if fenced && !shared.fenced_in() {
            if !*told_fenced {
                *told_fenced = true;
                tracing::warn!("state: the lease was not renewed in time; writes wait for it");
            }
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        *told_fenced = false;
        let c = match con.take() {
            Some(c) => Ok(c),
            None => shared.target.connect(),
        };
        match c.and_then(|mut c| f(&mut c).map(|v| (c, v))) {
            Ok((c, v)) => {
                *con = Some(c);
                shared.report(true, None);
                return v;
            }
            Err(e) => {
                metrics::counter!(names::STATE_ERRORS, "op" => op).increment(1);
                shared.report(false, Some(&e));
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

impl Writer {
    fn run(&mut self, rx: Receiver<Msg>) {
        let tick = (self.shared.target.lease / 3).min(Duration::from_secs(1));
        loop {
            if self.shared.resync.swap(false, Ordering::Relaxed) {
                self.link.want_snapshot();
            }
            let first = match rx.recv_timeout(tick) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut msgs = vec![first];
            while let Ok(m) = rx.try_recv() {
                msgs.push(m);
            }
            let n = msgs.len();
            self.handle(msgs);
            self.link.done(n);
        }
    }

    fn handle(&mut self, msgs: Vec<Msg>) {
        let mut handed: Vec<Instant> = Vec::new();
        let mut records = 0u64;
        for m in msgs {
            match m {
                Msg::Commit {
                    frames,
                    records: r,
                    handed: h,
                } => {
                    self.add_commit(&frames);
                    self.link.recycle(frames);
                    handed.push(h);
                    records += r;
                    if self.txn_ops >= MAX_TXN_OPS {
                        self.write_commits(&mut handed, &mut records);
                    }
                }
                Msg::SnapshotBegin => {
                    self.write_commits(&mut handed, &mut records);
                    tracing::info!("state: writing a full copy of the state to Redis");
                    self.snapshot = Some(Snapshot {
                        written: HashSet::new(),
                        records: 0,
                        began: Instant::now(),
                    });
                }
                Msg::SnapshotChunk(frames) => {
                    self.write_commits(&mut handed, &mut records);
                    self.write_chunk(&frames);
                    self.link.recycle(frames);
                }
                Msg::SnapshotEnd(_) => {
                    self.write_commits(&mut handed, &mut records);
                    self.end_snapshot();
                }
                Msg::Flush(done) => {
                    self.write_commits(&mut handed, &mut records);
                    let _ = done.send(());
                }
            }
        }
        self.write_commits(&mut handed, &mut records);
    }

    /// The ops of commit frames into the transaction being gathered.
    fn add_commit(&mut self, frames: &[u8]) {
        let Writer {
            shared,
            txn,
            txn_ops,
            key,
            snapshot,
            ..
        } = self;
        let mut bad = 0u64;
        let parsed = journal::for_each_op(frames, |_, _, k, v| {
            let Ok(k) = state::decode_key(k) else {
                bad += 1;
                return;
            };
            redis_key(&shared.target.prefix, &k, key);
            match v {
                Some(v) => {
                    txn.cmd("SET").arg(key.as_str()).arg(v).ignore();
                    if let Some(s) = snapshot {
                        s.written.insert(name_hash(key.as_bytes()));
                    }
                }
                None => {
                    txn.cmd("DEL").arg(key.as_str()).ignore();
                }
            }
            *txn_ops += 1;
        });
        if bad > 0 || parsed.is_err() {
            metrics::counter!(names::STATE_ERRORS, "op" => "encode").increment(1);
            tracing::error!(bad_keys = bad, frames = ?parsed.err(), "state: a commit handed to the Redis writer did not decode; its undecodable part is not written");
        }
    }

    /// Write the gathered commits as one transaction (retrying until Redis takes it).
    fn write_commits(&mut self, handed: &mut Vec<Instant>, records: &mut u64) {
        if self.txn_ops == 0 {
            handed.clear();
            return;
        }
        self.exec_fenced(true, "write");
        self.txn.clear();
        self.txn_ops = 0;
        super::count_durable("redis", handed, records);
    }

    /// Send the transaction (`txn`) or the plain pipeline, retrying until Redis takes it, and
    /// only while this instance holds the lease (fencing).
    fn exec_fenced(&mut self, txn: bool, op: &'static str) {
        let pipe = if txn { &self.txn } else { &self.plain };
        retry(
            &self.shared,
            &mut self.con,
            true,
            &mut self.told_fenced,
            op,
            |c| pipe.exec(c),
        );
    }

    fn write_chunk(&mut self, frames: &[u8]) {
        let Some(snap) = &mut self.snapshot else {
            return;
        };
        let (prefix, key, plain) = (&self.shared.target.prefix, &mut self.key, &mut self.plain);
        let mut n = 0u64;
        let _ = journal::for_each_op(frames, |_, _, k, v| {
            let (Ok(k), Some(v)) = (state::decode_key(k), v) else {
                return;
            };
            redis_key(prefix, &k, key);
            plain.cmd("SET").arg(key.as_str()).arg(v).ignore();
            snap.written.insert(name_hash(key.as_bytes()));
            n += 1;
        });
        snap.records += n;
        if n > 0 {
            self.exec_fenced(false, "snapshot");
        }
        self.plain.clear();
        metrics::counter!(names::STATE_RECORDS, "backend" => "redis").increment(n);
    }

    /// The copy is complete: delete the keys under the prefix it did not write.
    fn end_snapshot(&mut self) {
        let Some(snap) = self.snapshot.take() else {
            return;
        };
        let prefix = self.shared.target.prefix.clone();
        let pattern = self.shared.target.pattern();
        let mut cursor = String::from("0");
        let mut removed = 0u64;
        loop {
            let (next, names): (String, Vec<Vec<u8>>) = retry(
                &self.shared,
                &mut self.con,
                false,
                &mut self.told_fenced,
                "sweep",
                |c| {
                    redis::cmd("SCAN")
                        .arg(&cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query(c)
                },
            );
            let mut stale = 0u64;
            for n in &names {
                if parse_key(&prefix, n).is_some() && !snap.written.contains(&name_hash(n)) {
                    self.plain.cmd("DEL").arg(n.as_slice()).ignore();
                    stale += 1;
                }
            }
            if stale > 0 {
                self.exec_fenced(false, "sweep");
                removed += stale;
            }
            self.plain.clear();
            // A SCAN cursor is the position in the table, valid on any connection.
            if next == "0" {
                break;
            }
            cursor = next;
        }
        metrics::counter!(names::STATE_SNAPSHOTS).increment(1);
        tracing::info!(
            records = snap.records,
            stale_removed = removed,
            ms = snap.began.elapsed().as_millis() as u64,
            "state: resynchronised: Redis holds the whole state again"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_reads_back_from_its_redis_name() {
        let keys = [
            Key::Registration("sip:alice@ims.example".into()),
            Key::Registration("tel:+15551234".into()),
            Key::Registration("sip:{odd}%7B@x".into()),
            Key::Subscription {
                id: 42,
                default_pui: "sip:bob@ims".into(),
            },
            Key::Subscription {
                id: u64::MAX,
                default_pui: "sip:}{@ims".into(),
            },
            Key::IbcfDialog("a{b}c%d@host".into()),
            Key::Meta,
        ];
        let mut name = String::new();
        for k in keys {
            redis_key("gw:sip:pcscf", &k, &mut name);
            // One well-formed hash tag (no brace inside it) for everything but meta.
            if k != Key::Meta {
                let open = name.find('{').unwrap();
                let close = name.find('}').unwrap();
                assert!(open < close);
                assert_eq!(name.matches('{').count(), 1, "{name}");
                assert_eq!(name.matches('}').count(), 1, "{name}");
            }
            assert_eq!(parse_key("gw:sip:pcscf", name.as_bytes()), Some(k));
        }
    }

    #[test]
    fn layout_is_the_documented_one() {
        let mut name = String::new();
        redis_key("p", &Key::Registration("sip:a@ims".into()), &mut name);
        assert_eq!(name, "p:{sip:a@ims}:reg");
        redis_key(
            "p",
            &Key::Subscription {
                id: 7,
                default_pui: "sip:a@ims".into(),
            },
            &mut name,
        );
        assert_eq!(name, "p:{sip:a@ims}:sub:7");
        redis_key("p", &Key::IbcfDialog("c1@h".into()), &mut name);
        assert_eq!(name, "p:{c1@h}:ibcf");
        redis_key("p", &Key::Meta, &mut name);
        assert_eq!(name, "p:meta");
    }

    #[test]
    fn other_names_are_not_ours() {
        for n in [
            &b"p:lease"[..],
            b"p",
            b"q:meta",
            b"p:x:{sip:a@ims}:reg",
            b"p::{sip:a@ims}:reg",
            b"p:{sip:a@ims}:sub:",
            b"p:{sip:a@ims}:sub:+1",
            b"p:{sip:a@ims}:sub:99999999999999999999999",
            b"p:{sip:a@ims}:other",
            b"p:{sip:a%41@ims}:reg",
            b"p:{sip:a%7@ims}:reg",
            b"p:{unclosed:reg",
            b"p:\xff{x}:reg",
        ] {
            assert_eq!(parse_key("p", n), None, "{}", String::from_utf8_lossy(n));
        }
        // A longer prefix that starts with ours is another gateway's.
        let mut name = String::new();
        redis_key("p:x", &Key::Meta, &mut name);
        assert_eq!(parse_key("p", name.as_bytes()), None);
        redis_key("p:x", &Key::Registration("sip:a@ims".into()), &mut name);
        assert_eq!(parse_key("p", name.as_bytes()), None);
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("redis://:s3cret@10.0.0.1:6379/2"),
            "redis://:***@10.0.0.1:6379/2"
        );
        assert_eq!(
            redact("redis://gw:s3cret@redis.example/0"),
            "redis://gw:***@redis.example/0"
        );
        assert_eq!(
            redact("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://a@b:1/0"), "redis://a@b:1/0");
    }

    #[test]
    fn tls_urls_are_refused_with_a_reason() {
        let e = Target::new(
            "rediss://:pw@127.0.0.1:6380/0",
            None,
            "sip:pcscf",
            Duration::from_secs(5),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("rediss://"), "{text}");
        assert!(text.contains("TLS"), "{text}");
        assert!(!text.contains("pw"), "{text}");
    }

    #[test]
    fn default_prefix_comes_from_the_identity_and_scan_pattern_escapes_globs() {
        assert_eq!(
            default_prefix("sip:pcscf.ims:5060"),
            "regevent-gw:sip:pcscf.ims:5060"
        );
        assert_eq!(default_prefix("sip:{x}"), "regevent-gw:sip:x");
        let t = Target::new(
            "redis://127.0.0.1/0",
            Some("a*b?[c]"),
            "",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(t.pattern(), "a\\*b\\?\\[c\\]:*");
    }
}
