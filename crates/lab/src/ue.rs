//! A swarm of emulated UEs sharing one socket: each registers (paced at a target rate),
//! re-registers at half its expiry, and deregisters when its lifetime ends. Measures
//! REGISTER→final-response latency.
//!
//! Transports ([`SwarmConfig::transport`]):
//! - UDP: one socket per swarm. Timer E retransmits an unanswered REGISTER, Timer F (32 s)
//!   gives up (RFC 3261 §17.1.2.2).
//! - TCP: one connection per swarm, from the swarm's local address to the gateway's TCP
//!   listener, carrying every UE of the swarm: the gateway answers on the connection a request
//!   came in on, and each UE's Call-ID tells its responses apart, so one connection is enough
//!   and `loadgen --swarms` is the number of connections. TCP is reliable, so nothing is
//!   retransmitted (Timer E runs only on unreliable transports); Timer F still bounds each
//!   transaction. Received bytes are framed by the gateway's own codec
//!   ([`crate::transport::StreamFramer`]): a read may end inside a message or hold several. If the
//!   connection closes or cannot be framed, the transactions in progress fail (a transport
//!   error, §17.1.4) and the swarm ends.
//! - TCP with [`SwarmConfig::connection_per_ue`]: each UE opens its own connection (from the
//!   swarm's address, its own port) at its first REGISTER and keeps it, as a phone does; if it
//!   closes, the UE's transaction in progress fails and its next REGISTER opens a new one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, UdpSocket};

use super::peer::response_key;
use regevent_proto::sip::StreamFramer;
use regevent_proto::sip::Transport;
use regevent_proto::sip::{writer, Limits};
use regevent_udp::{send_all_wait, RecvBatch};

#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// The gateway's listener for `transport`.
    pub gateway: SocketAddr,
    /// Local address to bind (`127.0.0.1:0`).
    pub local: SocketAddr,
    pub transport: Transport,
    pub users: usize,
    /// First user index (users are `ue{first+i}`).
    pub first_user: usize,
    pub domain: String,
    pub expires: u32,
    /// Initial registrations per second.
    pub rate: f64,
    /// Deregister after this long (None: stay registered, re-registering).
    pub lifetime: Option<Duration>,
    pub reregister: bool,
    /// TCP only: each UE opens its own connection at its first REGISTER and keeps it, as a
    /// phone does, instead of the swarm's UEs sharing one.
    pub connection_per_ue: bool,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            gateway: SocketAddr::from(([127, 0, 0, 1], 5060)),
            local: SocketAddr::from(([127, 0, 0, 1], 0)),
            transport: Transport::Udp,
            users: 10,
            first_user: 0,
            domain: "ims.example.net".into(),
            expires: 600,
            rate: 100.0,
            lifetime: None,
            reregister: true,
            connection_per_ue: false,
        }
    }
}

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// Timer F, 64·T1: a transaction without a final response by then has timed out.
const TIMER_F: Duration = Duration::from_secs(32);

/// What the swarm saw.
#[derive(Debug, Default)]
pub struct SwarmStats {
    pub registers_sent: AtomicU64,
    pub initial_ok: AtomicU64,
    pub reregister_ok: AtomicU64,
    pub deregister_ok: AtomicU64,
    /// Non-2xx final responses, and transactions lost with their TCP connection.
    pub failures: AtomicU64,
    pub timeouts: AtomicU64,
    /// REGISTERs sent again by Timer E (not in `registers_sent`).
    pub retransmissions: AtomicU64,
    /// `503` answers with a `Retry-After` (the UE tries again that much later, RFC 3261
    /// §21.5.4), and the sum, least and most of their `Retry-After` seconds.
    pub rejected_503: AtomicU64,
    pub retry_after_sum: AtomicU64,
    pub retry_after_min: AtomicU64,
    pub retry_after_max: AtomicU64,
    /// UEs that were answered 503 and had not registered when the run ended (their retry was
    /// still to come or in progress).
    pub deferred_at_end: AtomicU64,
    /// REGISTER → final response, microseconds.
    pub latencies_us: Mutex<Vec<u32>>,
    pub done: AtomicBool,
    /// Per-UE TCP connections opened so far.
    pub connections_opened: Arc<AtomicU64>,
    /// When set, every initial registration's 200 OK is noted in `answered`.
    pub note_answers: AtomicBool,
    /// (user number, Unix milliseconds) of initial 200 OKs, with `note_answers`.
    pub answered: Mutex<Vec<(usize, u64)>>,
}

impl SwarmStats {
    /// (p50, p99) in microseconds.
    pub fn percentiles(&self) -> Option<(u32, u32)> {
        let mut v = self.latencies_us.lock().ok()?.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let p = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
        Some((p(0.5), p(0.99)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Register,
    Deregister,
    /// Timer E: send the pending REGISTER again (RFC 3261 §17.1.2.2) or give up at Timer F.
    /// Over TCP it is set at Timer F only.
    Retransmit,
}

impl Action {
    /// The Expires a REGISTER for this action asks for: 0 deregisters.
    fn expires(self, registered_for: u32) -> u32 {
        if self == Action::Deregister {
            0
        } else {
            registered_for
        }
    }
}

/// A scheduled action: when, which UE, what, and for `Retransmit` the CSeq of the transaction
/// it belongs to (a timer left over from an answered transaction must not touch the next one).
type Timer = (Instant, usize, Action, u32);

/// Which of the swarm's timer stores holds its earliest timer.
#[derive(Debug, Clone, Copy)]
enum TimerSource {
    Initial,
    FirstRetransmit,
    Reregister,
    Heap,
}

#[derive(Debug)]
struct Ue {
    cseq: u32,
    registered: bool,
    started: Option<Instant>,
    pending: Option<(Instant, Action, u32)>,
    tries: u32,
    /// Answered 503 (with Retry-After) since its last success.
    deferred: bool,
}

/// Bytes asked for per TCP read.
const TCP_READ: usize = 64 * 1024;

/// The swarm's socket: the transports differ only in how bytes go out and come in.
enum Link {
    /// Connected to the gateway: datagrams carry no address and the kernel keeps the route.
    Udp {
        sock: UdpSocket,
        rb: RecvBatch,
        out: Vec<Bytes>,
    },
    Tcp {
        read: OwnedReadHalf,
        write: OwnedWriteHalf,
        /// What reads land in, and the start of a message a read cut off.
        rbuf: Vec<u8>,
        framer: StreamFramer,
        /// The whole messages of the last read.
        msgs: Vec<Bytes>,
        /// REGISTERs of this turn, written with one `write_all`.
        out: Vec<u8>,
    },
    /// A connection per UE ([`SwarmConfig::connection_per_ue`]).
    PerUe(PerUe),
}

/// One TCP connection per UE. Connecting and reading run in a task per connection (a swarm's
/// thousands of sockets cannot be awaited one by one); they report to the swarm on one
/// channel. Writes are the swarm's: a UE's REGISTER waits in its slot until its connection is
/// up.
struct PerUe {
    gateway: SocketAddr,
    /// The swarm's loopback address; each connection gets its own port on it.
    ip: std::net::IpAddr,
    conns: Vec<UeConn>,
    /// UEs with bytes to write this turn.
    dirty: Vec<usize>,
    tx: tokio::sync::mpsc::UnboundedSender<ConnEvent>,
    rx: tokio::sync::mpsc::UnboundedReceiver<ConnEvent>,
    /// UEs whose connection closed or failed since the swarm last asked.
    closed: Vec<usize>,
    /// Connections opened so far (for the report).
    open: Arc<AtomicU64>,
}

enum UeConn {
    /// Not connected: the next REGISTER opens a connection.
    Idle,
    /// Connecting; what to write once connected.
    Connecting(Vec<u8>),
    Open(OwnedWriteHalf, Vec<u8>),
}

enum ConnEvent {
    Connected(usize, OwnedWriteHalf),
    /// A whole message from the gateway.
    Message(Bytes),
    Closed(usize),
}

/// Bytes asked for per read on a UE's own connection (its answers are a few hundred bytes).
const UE_READ: usize = 4096;

impl PerUe {
    fn queue(&mut self, ue: usize, msg: &[u8]) {
        let Some(c) = self.conns.get_mut(ue) else {
            return;
        };
        match c {
            UeConn::Idle => {
                *c = UeConn::Connecting(msg.to_vec());
                self.connect(ue);
            }
            UeConn::Connecting(buf) => buf.extend_from_slice(msg),
            UeConn::Open(_, buf) => {
                if buf.is_empty() {
                    self.dirty.push(ue);
                }
                buf.extend_from_slice(msg);
            }
        }
    }

    fn connect(&self, ue: usize) {
        let (tx, ip, gateway) = (self.tx.clone(), self.ip, self.gateway);
        tokio::spawn(async move {
            let stream = async {
                let sock = if ip.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                sock.bind(SocketAddr::new(ip, 0))?;
                let stream = sock.connect(gateway).await?;
                stream.set_nodelay(true)?;
                io::Result::Ok(stream)
            };
            let Ok(stream) = stream.await else {
                let _ = tx.send(ConnEvent::Closed(ue));
                return;
            };
            let (mut read, write) = stream.into_split();
            if tx.send(ConnEvent::Connected(ue, write)).is_err() {
                return;
            }
            let mut framer = StreamFramer::new(Limits::default());
            let mut buf = [0u8; UE_READ];
            let mut msgs = Vec::new();
            loop {
                let n = match read.read(&mut buf).await {
                    Ok(n) if n > 0 => n,
                    _ => break,
                };
                let framed = framer.push(&buf[..n], &mut msgs).is_ok();
                for m in msgs.drain(..) {
                    if tx.send(ConnEvent::Message(m)).is_err() {
                        return;
                    }
                }
                if !framed {
                    break;
                }
            }
            let _ = tx.send(ConnEvent::Closed(ue));
        });
    }

    async fn flush(&mut self) {
        for ue in std::mem::take(&mut self.dirty) {
            if let Some(UeConn::Open(w, buf)) = self.conns.get_mut(ue) {
                // On failure the reader sees the connection end and reports it.
                let _ = w.write_all(buf).await;
                buf.clear();
            }
        }
    }

    fn on_event(&mut self, ev: ConnEvent, on_message: &mut impl FnMut(&[u8])) {
        match ev {
            ConnEvent::Message(m) => on_message(&m),
            ConnEvent::Connected(ue, w) => {
                let Some(c) = self.conns.get_mut(ue) else {
                    return;
                };
                let buf = match std::mem::replace(c, UeConn::Idle) {
                    UeConn::Connecting(buf) => buf,
                    _ => Vec::new(),
                };
                if !buf.is_empty() {
                    self.dirty.push(ue);
                }
                *c = UeConn::Open(w, buf);
                self.open.fetch_add(1, Relaxed);
            }
            ConnEvent::Closed(ue) => {
                if let Some(c) = self.conns.get_mut(ue) {
                    *c = UeConn::Idle;
                }
                self.closed.push(ue);
            }
        }
    }

    /// Wait up to `wait` for the first event, then take every one already there.
    async fn recv(&mut self, wait: Duration, mut on_message: impl FnMut(&[u8])) {
        let first = match self.rx.try_recv() {
            Ok(ev) => ev,
            Err(_) => match tokio::time::timeout(wait, self.rx.recv()).await {
                Ok(Some(ev)) => ev,
                _ => return,
            },
        };
        self.on_event(first, &mut on_message);
        while let Ok(ev) = self.rx.try_recv() {
            self.on_event(ev, &mut on_message);
        }
    }
}

impl Link {
    /// Bind `cfg.local` and, for TCP, connect from it to the gateway. Returns the local address.
    async fn open(cfg: &SwarmConfig, open: Arc<AtomicU64>) -> io::Result<(Link, SocketAddr)> {
        match cfg.transport {
            Transport::Tcp if cfg.connection_per_ue => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let link = PerUe {
                    gateway: cfg.gateway,
                    ip: cfg.local.ip(),
                    conns: (0..cfg.users).map(|_| UeConn::Idle).collect(),
                    dirty: Vec::new(),
                    tx,
                    rx,
                    closed: Vec::new(),
                    open,
                };
                // Every connection has its own port: the UEs name the port they would listen
                // on (5060), as phones do, and their Call-IDs carry it.
                let port = if cfg.local.port() == 0 {
                    5060
                } else {
                    cfg.local.port()
                };
                Ok((Link::PerUe(link), SocketAddr::new(cfg.local.ip(), port)))
            }
            Transport::Udp => {
                let sock = regevent_udp::bind_udp(cfg.local)?;
                sock.connect(cfg.gateway).await?;
                let local = sock.local_addr()?;
                let link = Link::Udp {
                    sock,
                    rb: RecvBatch::new(64, 8192),
                    out: Vec::new(),
                };
                Ok((link, local))
            }
            Transport::Tcp => {
                let sock = if cfg.local.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                sock.bind(cfg.local)?;
                let stream = sock.connect(cfg.gateway).await?;
                // A turn's REGISTERs go out in one write; do not hold them back for more.
                stream.set_nodelay(true)?;
                let local = stream.local_addr()?;
                let (read, write) = stream.into_split();
                let link = Link::Tcp {
                    read,
                    write,
                    rbuf: vec![0; TCP_READ],
                    framer: StreamFramer::new(Limits::default()),
                    msgs: Vec::new(),
                    out: Vec::new(),
                };
                Ok((link, local))
            }
        }
    }

    /// Queue UE `ue`'s message.
    fn queue(&mut self, ue: usize, msg: Bytes) {
        match self {
            Link::Udp { out, .. } => out.push(msg),
            Link::Tcp { out, .. } => out.extend_from_slice(&msg),
            Link::PerUe(p) => p.queue(ue, &msg),
        }
    }

    /// Send what was queued.
    async fn flush(&mut self) -> io::Result<()> {
        match self {
            Link::Udp { sock, out, .. } => send_all_wait(sock, out).await,
            Link::Tcp { write, out, .. } => {
                if !out.is_empty() {
                    write.write_all(out).await?;
                    out.clear();
                }
            }
            Link::PerUe(p) => p.flush().await,
        }
        Ok(())
    }

    /// Wait up to `wait` for input and hand each whole message received to `on_message`.
    /// An error only over TCP: the connection closed, failed, or its stream cannot be framed.
    async fn recv(&mut self, wait: Duration, mut on_message: impl FnMut(&[u8])) -> io::Result<()> {
        match self {
            Link::Udp { sock, rb, .. } => {
                if matches!(
                    tokio::time::timeout(wait, sock.readable()).await,
                    Ok(Ok(()))
                ) {
                    let n = rb.recv(sock).unwrap_or(0);
                    for k in 0..n {
                        on_message(rb.datagram(k));
                    }
                }
            }
            Link::Tcp {
                read,
                rbuf,
                framer,
                msgs,
                ..
            } => {
                // `read` is cancel safe: a timeout loses no bytes.
                let n = match tokio::time::timeout(wait, read.read(rbuf)).await {
                    Err(_) => return Ok(()),
                    Ok(Err(e)) => return Err(e),
                    Ok(Ok(0)) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the gateway closed the connection",
                        ))
                    }
                    Ok(Ok(n)) => n,
                };
                let framed = framer.push(&rbuf[..n], msgs);
                for m in msgs.drain(..) {
                    on_message(&m);
                }
                framed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            }
            Link::PerUe(p) => p.recv(wait, on_message).await,
        }
        Ok(())
    }

    /// UEs whose own connection ended since the last call (per-UE connections only).
    fn take_closed(&mut self) -> Vec<usize> {
        match self {
            Link::PerUe(p) => std::mem::take(&mut p.closed),
            _ => Vec::new(),
        }
    }
}

/// The UEs of one swarm and their timers.
struct Swarm {
    cfg: SwarmConfig,
    local: SocketAddr,
    stats: Arc<SwarmStats>,
    ues: Vec<Ue>,
    /// Timers whose delays vary (later retransmissions, deregistrations, retries of a busy UE).
    heap: BinaryHeap<Reverse<Timer>>,
    /// Timers set at "now + a fixed delay" come due in the order they were set, so each kind
    /// is a queue (no heap work): a transaction's first Timer E (Timer F over TCP), which
    /// every REGISTER sets and most find already answered, and the re-registration at half
    /// the expiry.
    first_retransmit: VecDeque<Timer>,
    reregister: VecDeque<Timer>,
    /// Initial registrations are due at `start + step × i`, in UE order: the next one not yet
    /// sent is `next_initial` (kept out of the heap, which then holds only what is in flight).
    start: Instant,
    step: Duration,
    next_initial: usize,
    /// UEs not yet done.
    active: usize,
    register: RegisterTemplate,
    /// Where this turn's REGISTERs are written; each is split off as its own `Bytes`, and the
    /// space comes back once they are sent.
    wbuf: BytesMut,
    /// Latencies of this turn, appended to the shared list once per turn (one lock).
    latencies: Vec<u32>,
}

/// Run the swarm until every UE is done (lifetime) or `stop` is set. Returns when finished;
/// an error if the socket could not be opened or the TCP connection was lost.
pub async fn run(
    cfg: SwarmConfig,
    stats: Arc<SwarmStats>,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    let (mut link, local) = Link::open(&cfg, stats.connections_opened.clone()).await?;
    let mut swarm = Swarm::new(cfg, local, stats.clone());
    let result = swarm.drive(&mut link, &stop).await;
    if result.is_err() {
        swarm.fail_pending();
    }
    let deferred = swarm.ues.iter().filter(|u| u.deferred).count() as u64;
    stats.deferred_at_end.fetch_add(deferred, Relaxed);
    stats.done.store(true, Relaxed);
    result
}

impl Swarm {
    fn new(cfg: SwarmConfig, local: SocketAddr, stats: Arc<SwarmStats>) -> Swarm {
        let start = Instant::now();
        let ues = (0..cfg.users)
            .map(|_| Ue {
                cseq: 0,
                registered: false,
                started: None,
                pending: None,
                tries: 0,
                deferred: false,
            })
            .collect();
        let step = if cfg.rate > 0.0 {
            Duration::from_secs_f64(1.0 / cfg.rate)
        } else {
            Duration::ZERO
        };
        Swarm {
            start,
            step,
            next_initial: 0,
            active: cfg.users,
            register: RegisterTemplate::new(&cfg, local),
            cfg,
            local,
            stats,
            ues,
            heap: BinaryHeap::new(),
            first_retransmit: VecDeque::new(),
            reregister: VecDeque::new(),
            wbuf: BytesMut::new(),
            latencies: Vec::new(),
        }
    }

    async fn drive(&mut self, link: &mut Link, stop: &AtomicBool) -> io::Result<()> {
        while self.active > 0 && !stop.load(Relaxed) {
            let now = Instant::now();
            self.send_due(now, link);
            link.flush().await?;
            let next = self.next_due().unwrap_or(now + Duration::from_millis(200));
            let wait = next
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(200));
            link.recv(wait, |b| self.on_response(b)).await?;
            for ue in link.take_closed() {
                self.fail_ue(ue);
            }
            if !self.latencies.is_empty() {
                if let Ok(mut l) = self.stats.latencies_us.lock() {
                    l.extend_from_slice(&self.latencies);
                }
                self.latencies.clear();
            }
        }
        Ok(())
    }

    /// When the next initial registration is due, if any is left.
    fn next_initial_at(&self) -> Option<Instant> {
        (self.next_initial < self.cfg.users)
            .then(|| self.start + self.step * self.next_initial as u32)
    }

    /// Where the earliest timer is, initial registrations included, and when it is due.
    fn earliest(&self) -> Option<(Instant, TimerSource)> {
        let initial = self.next_initial_at().map(|t| (t, TimerSource::Initial));
        let first = self
            .first_retransmit
            .front()
            .map(|t| (t.0, TimerSource::FirstRetransmit));
        let rereg = self
            .reregister
            .front()
            .map(|t| (t.0, TimerSource::Reregister));
        let heap = self.heap.peek().map(|Reverse(t)| (t.0, TimerSource::Heap));
        // On a tie the earlier source in this order goes first.
        [initial, first, rereg, heap]
            .into_iter()
            .flatten()
            .min_by_key(|(t, _)| *t)
    }

    /// The earliest timer, initial registrations included.
    fn next_due(&self) -> Option<Instant> {
        self.earliest().map(|(t, _)| t)
    }

    /// Take the earliest timer due by `now`.
    fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let (t, source) = self.earliest().filter(|(t, _)| *t <= now)?;
        match source {
            TimerSource::Initial => {
                self.next_initial += 1;
                Some((t, self.next_initial - 1, Action::Register, 0))
            }
            TimerSource::FirstRetransmit => self.first_retransmit.pop_front(),
            TimerSource::Reregister => self.reregister.pop_front(),
            TimerSource::Heap => self.heap.pop().map(|Reverse(t)| t),
        }
    }

    /// Queue on `link` every REGISTER due by `now`.
    fn send_due(&mut self, now: Instant, link: &mut Link) {
        let reliable = self.cfg.transport == Transport::Tcp;
        while let Some((_, i, a, timer_cseq)) = self.pop_due(now) {
            let (cfg, stats, tpl, wbuf) = (&self.cfg, &self.stats, &self.register, &mut self.wbuf);
            let ue = &mut self.ues[i];
            let user = cfg.first_user + i;
            if a == Action::Retransmit {
                let Some((sent, action, cseq)) = ue.pending else {
                    continue;
                };
                if cseq != timer_cseq {
                    continue;
                }
                if now.duration_since(sent) >= TIMER_F {
                    stats.timeouts.fetch_add(1, Relaxed);
                    ue.pending = None;
                    self.active -= 1;
                    continue;
                }
                ue.tries += 1;
                stats.retransmissions.fetch_add(1, Relaxed);
                link.queue(i, tpl.render(wbuf, user, cseq, action.expires(cfg.expires)));
                let next = (T1 * 2u32.saturating_pow(ue.tries)).min(T2);
                self.heap
                    .push(Reverse((now + next, i, Action::Retransmit, cseq)));
                continue;
            }
            if let Some((sent, _, _)) = ue.pending {
                if now.duration_since(sent) < TIMER_F {
                    self.heap
                        .push(Reverse((now + Duration::from_millis(100), i, a, 0)));
                    continue;
                }
                stats.timeouts.fetch_add(1, Relaxed);
            }
            ue.cseq += 1;
            ue.tries = 0;
            let msg = tpl.render(wbuf, user, ue.cseq, a.expires(cfg.expires));
            ue.pending = Some((now, a, ue.cseq));
            let first = if reliable { TIMER_F } else { T1 };
            self.first_retransmit
                .push_back((now + first, i, Action::Retransmit, ue.cseq));
            ue.started.get_or_insert(now);
            stats.registers_sent.fetch_add(1, Relaxed);
            link.queue(i, msg);
        }
    }

    /// A message from the gateway: if it is the final response to a UE's pending REGISTER,
    /// complete that transaction and schedule the UE's next one.
    fn on_response(&mut self, b: &[u8]) {
        let (cfg, stats) = (&self.cfg, &self.stats);
        let Some(r) = response_key(b) else {
            return;
        };
        let status = r.status;
        if status < 200 {
            return;
        }
        let Some(i) = ue_index(cfg, self.local, r.call_id) else {
            return;
        };
        let ue = &mut self.ues[i];
        let Some((sent, action, cseq)) = ue.pending else {
            return;
        };
        if r.cseq != cseq {
            return;
        }
        ue.pending = None;
        let now = Instant::now();
        self.latencies.push(
            now.duration_since(sent)
                .as_micros()
                .min(u128::from(u32::MAX)) as u32,
        );
        if status == 503 {
            if let Some(secs) = retry_after(b) {
                // Overload: try the same thing again when the gateway says (a real UE does).
                stats.rejected_503.fetch_add(1, Relaxed);
                stats.retry_after_sum.fetch_add(secs, Relaxed);
                stats.retry_after_max.fetch_max(secs, Relaxed);
                let _ = stats
                    .retry_after_min
                    .fetch_update(Relaxed, Relaxed, |m| (m == 0 || secs < m).then_some(secs));
                ue.deferred = true;
                let again = match action {
                    Action::Deregister => Action::Deregister,
                    _ => Action::Register,
                };
                self.heap
                    .push(Reverse((now + Duration::from_secs(secs), i, again, 0)));
                return;
            }
        }
        if !(200..300).contains(&status) {
            stats.failures.fetch_add(1, Relaxed);
            ue.deferred = false;
            self.active -= 1;
            return;
        }
        ue.deferred = false;
        match action {
            Action::Deregister => {
                stats.deregister_ok.fetch_add(1, Relaxed);
                ue.registered = false;
                self.active -= 1;
            }
            Action::Register | Action::Retransmit => {
                if ue.registered {
                    stats.reregister_ok.fetch_add(1, Relaxed);
                } else {
                    stats.initial_ok.fetch_add(1, Relaxed);
                    if stats.note_answers.load(Relaxed) {
                        let unix_ms = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as u64);
                        if let Ok(mut a) = stats.answered.lock() {
                            a.push((cfg.first_user + i, unix_ms));
                        }
                    }
                }
                ue.registered = true;
                let half =
                    Duration::from_secs(u64::from(cfg.expires) / 2).max(Duration::from_millis(500));
                let started = ue.started.unwrap_or(now);
                match cfg.lifetime {
                    Some(life) if now + half >= started + life => {
                        self.heap
                            .push(Reverse((started + life, i, Action::Deregister, 0)))
                    }
                    _ if cfg.reregister => {
                        self.reregister
                            .push_back((now + half, i, Action::Register, 0))
                    }
                    _ => self.active -= 1,
                }
            }
        }
    }

    /// UE `i`'s own connection is gone (or could not be opened): its transaction in progress
    /// failed (a transport error, RFC 3261 §17.1.4), and the UE is done.
    fn fail_ue(&mut self, i: usize) {
        if let Some(ue) = self.ues.get_mut(i) {
            if ue.pending.take().is_some() {
                self.stats.failures.fetch_add(1, Relaxed);
                self.active -= 1;
            }
        }
    }

    /// The connection is gone: every transaction in progress on it failed.
    fn fail_pending(&mut self) {
        for ue in &mut self.ues {
            if ue.pending.take().is_some() {
                self.stats.failures.fetch_add(1, Relaxed);
            }
        }
    }
}

/// The index in the swarm of the UE whose Call-ID this is (`ue{user}-{local port}`).
fn ue_index(cfg: &SwarmConfig, local: SocketAddr, call_id: &str) -> Option<usize> {
    let (user, port) = call_id.strip_prefix("ue")?.split_once('-')?;
    let i = user.parse::<usize>().ok()?.checked_sub(cfg.first_user)?;
    (port.parse() == Ok(local.port()) && i < cfg.users).then_some(i)
}

/// What a REGISTER template leaves open, spliced in per request.
#[derive(Debug, Clone, Copy)]
enum Slot {
    User,
    /// The user index zero-padded to 12 digits (the instance UUID's last group).
    User12,
    CSeq,
    Expires,
}

/// A swarm's REGISTER rendered once with its fixed parts (domain, address, transport):
/// literal text, each piece followed by a slot, so sending one is copying plus a few numbers.
#[derive(Debug)]
struct RegisterTemplate {
    pieces: Vec<(String, Option<Slot>)>,
    len: usize,
}

impl RegisterTemplate {
    fn new(cfg: &SwarmConfig, local: SocketAddr) -> RegisterTemplate {
        let (d, port, via) = (&cfg.domain, local.port(), cfg.transport.via_name());
        // UDP is the default transport of a SIP URI (RFC 3261 §19.1.1): only TCP is named.
        let (tp, tp_name) = match cfg.transport {
            Transport::Udp => ("", ""),
            t => (";transport=", t.name()),
        };
        // \0 and a letter mark a slot (U user, Z user zero-padded, C CSeq, E expiry).
        let text = format!(
            "REGISTER sip:{d} SIP/2.0\r\n\
             Via: SIP/2.0/{via} {local};branch=z9hG4bKue\0Ux\0C;rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:ue\0U@{d}>;tag=t\0U\r\n\
             To: <sip:ue\0U@{d}>\r\n\
             Call-ID: ue\0U-{port}\r\n\
             CSeq: \0C REGISTER\r\n\
             Contact: <sip:ue\0U@{local}{tp}{tp_name}>;expires=\0E;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-\0Z>\";reg-id=1\r\n\
             Supported: path, gruu, outbound\r\n\
             User-Agent: regevent-gw-lab\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let mut parts = text.split('\0');
        let mut pieces = vec![(parts.next().unwrap_or("").to_string(), None)];
        for p in parts {
            let slot = match p.as_bytes().first() {
                Some(b'U') => Slot::User,
                Some(b'Z') => Slot::User12,
                Some(b'C') => Slot::CSeq,
                _ => Slot::Expires,
            };
            if let Some(last) = pieces.last_mut() {
                last.1 = Some(slot);
            }
            pieces.push((p.get(1..).unwrap_or("").to_string(), None));
        }
        let len = pieces.iter().map(|(t, _)| t.len() + 12).sum();
        RegisterTemplate { pieces, len }
    }

    /// One REGISTER, written at the end of `buf` and split off it.
    fn render(&self, buf: &mut BytesMut, user: usize, cseq: u32, expires: u32) -> Bytes {
        buf.reserve(self.len);
        let mut tmp = [0u8; 20];
        for (text, slot) in &self.pieces {
            buf.extend_from_slice(text.as_bytes());
            let n = match slot {
                None => continue,
                Some(Slot::User | Slot::User12) => user as u64,
                Some(Slot::CSeq) => cseq.into(),
                Some(Slot::Expires) => expires.into(),
            };
            let digits = writer::decimal(n, &mut tmp);
            if matches!(slot, Some(Slot::User12)) {
                buf.extend_from_slice(&b"000000000000"[digits.len().min(12)..]);
            }
            buf.extend_from_slice(digits);
        }
        buf.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UE's REGISTER over `cfg.transport`, as a swarm renders it; its Call-ID is
    /// `ue{user}-{local port}`.
    fn register(
        cfg: &SwarmConfig,
        local: SocketAddr,
        user: usize,
        cseq: u32,
        expires: u32,
    ) -> Vec<u8> {
        RegisterTemplate::new(cfg, local)
            .render(&mut BytesMut::new(), user, cseq, expires)
            .to_vec()
    }

    #[test]
    fn call_id_maps_back_to_the_ue() {
        let cfg = SwarmConfig {
            first_user: 100,
            users: 10,
            ..SwarmConfig::default()
        };
        let local: SocketAddr = "127.0.1.1:4000".parse().unwrap();
        let reg = register(&cfg, local, 105, 1, 600);
        let m = regevent_proto::sip::Message::parse(
            reg.into(),
            &regevent_proto::sip::Limits::default(),
        )
        .unwrap();
        assert_eq!(ue_index(&cfg, local, m.call_id()), Some(5));
        assert_eq!(ue_index(&cfg, local, "ue110-4000"), None, "past the swarm");
        assert_eq!(ue_index(&cfg, local, "ue99-4000"), None, "before the swarm");
        assert_eq!(
            ue_index(&cfg, local, "ue105-4001"),
            None,
            "another socket's"
        );
        assert_eq!(ue_index(&cfg, local, "x105-4000"), None);
    }

    #[test]
    fn register_template_splices_the_per_request_parts() {
        let local: SocketAddr = "127.0.1.1:4000".parse().unwrap();
        let cfg = SwarmConfig::default();
        let tpl = RegisterTemplate::new(&cfg, local);
        let mut buf = BytesMut::new();
        let a = tpl.render(&mut buf, 42, 7, 600);
        let b = tpl.render(&mut buf, 1234567, 8, 0);
        assert_eq!(
            std::str::from_utf8(&a).unwrap(),
            "REGISTER sip:ims.example.net SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.1.1:4000;branch=z9hG4bKue42x7;rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:ue42@ims.example.net>;tag=t42\r\n\
             To: <sip:ue42@ims.example.net>\r\n\
             Call-ID: ue42-4000\r\n\
             CSeq: 7 REGISTER\r\n\
             Contact: <sip:ue42@127.0.1.1:4000>;expires=600;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-000000000042>\";reg-id=1\r\n\
             Supported: path, gruu, outbound\r\n\
             User-Agent: regevent-gw-lab\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let b = std::str::from_utf8(&b).unwrap();
        assert!(b.contains("branch=z9hG4bKue1234567x8;") && b.contains("CSeq: 8 REGISTER"));
        assert!(b.contains(";expires=0;") && b.contains("0000-000001234567>"));
    }

    #[test]
    fn register_names_its_transport() {
        let local: SocketAddr = "127.0.1.1:4000".parse().unwrap();
        let limits = regevent_proto::sip::Limits::default();
        for (transport, via, contact) in [
            (Transport::Udp, "UDP", "sip:ue3@127.0.1.1:4000"),
            (
                Transport::Tcp,
                "TCP",
                "sip:ue3@127.0.1.1:4000;transport=tcp",
            ),
        ] {
            let cfg = SwarmConfig {
                transport,
                ..SwarmConfig::default()
            };
            let reg = register(&cfg, local, 3, 1, 600);
            let m = regevent_proto::sip::Message::parse(reg.into(), &limits).unwrap();
            assert_eq!(m.top_via().transport, via);
            let c = m.header(regevent_proto::sip::HeaderName::Contact).unwrap();
            let na = regevent_proto::sip::NameAddr::parse(c).unwrap();
            assert_eq!(na.uri.to_string(), contact);
        }
    }

    /// A TCP swarm of `users` UEs started against a fresh listener (the gateway stand-in).
    async fn start_tcp_swarm(
        users: usize,
    ) -> (
        tokio::net::TcpListener,
        Arc<SwarmStats>,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cfg = SwarmConfig {
            gateway: l.local_addr().unwrap(),
            transport: Transport::Tcp,
            users,
            rate: 1000.0,
            reregister: false,
            ..SwarmConfig::default()
        };
        let stats = Arc::new(SwarmStats::default());
        let swarm = tokio::spawn(run(cfg, stats.clone(), Arc::new(AtomicBool::new(false))));
        (l, stats, swarm)
    }

    /// A gateway stand-in that reads `n` REGISTERs from its one connection.
    async fn accept_registers(
        l: &tokio::net::TcpListener,
        n: usize,
    ) -> (
        super::super::peer::TcpPeer,
        Vec<regevent_proto::sip::Message>,
    ) {
        let (stream, _) = l.accept().await.unwrap();
        let mut peer = super::super::peer::TcpPeer::from_stream(stream).unwrap();
        let mut got = Vec::new();
        for _ in 0..n {
            got.push(peer.recv(Duration::from_secs(5)).await.expect("a REGISTER"));
        }
        (peer, got)
    }

    #[tokio::test]
    async fn tcp_responses_cut_across_reads_and_packed_into_one_are_all_matched() {
        let (l, stats, swarm) = start_tcp_swarm(3).await;
        let (mut gw, regs) = accept_registers(&l, 3).await;
        assert!(regs.iter().all(|m| m.top_via().transport == "TCP"));
        let mut all = Vec::new();
        for m in &regs {
            all.extend_from_slice(&regevent_proto::sip::writer::response(
                m,
                100,
                "Trying",
                None,
                &[],
            ));
            all.extend_from_slice(b"\r\n\r\n"); // a keep-alive between messages
            all.extend_from_slice(&regevent_proto::sip::writer::response(
                m,
                200,
                "OK",
                Some("g"),
                &[],
            ));
        }
        // The first write ends inside the third message; the rest follows later.
        let cut = all.len() - 40;
        gw.send(&all[..cut]).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while stats.initial_ok.load(Relaxed) < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(stats.initial_ok.load(Relaxed), 2, "two whole 200s so far");
        gw.send(&all[cut..]).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), swarm)
            .await
            .expect("the swarm ends once all are answered")
            .unwrap()
            .unwrap();
        assert_eq!(stats.initial_ok.load(Relaxed), 3);
        assert_eq!(stats.registers_sent.load(Relaxed), 3);
        assert_eq!(stats.failures.load(Relaxed), 0);
        assert_eq!(
            stats.retransmissions.load(Relaxed),
            0,
            "no Timer E over TCP"
        );
    }

    #[tokio::test]
    async fn a_closed_tcp_connection_fails_its_pending_transactions_at_once() {
        let (l, stats, swarm) = start_tcp_swarm(2).await;
        let (gw, _) = accept_registers(&l, 2).await;
        drop(gw);
        let r = tokio::time::timeout(Duration::from_secs(2), swarm)
            .await
            .expect("not Timer F: the connection is gone")
            .unwrap();
        assert!(r.is_err());
        assert_eq!(stats.failures.load(Relaxed), 2);
        assert_eq!(stats.timeouts.load(Relaxed), 0);
        assert_eq!(stats.initial_ok.load(Relaxed), 0);
    }
}

/// The `Retry-After` of a response, in seconds (its comment and parameters ignored).
fn retry_after(msg: &[u8]) -> Option<u64> {
    let head_end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(msg.len());
    msg[..head_end].split(|&c| c == b'\n').find_map(|line| {
        let line = std::str::from_utf8(line).ok()?;
        let (name, value) = line.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("retry-after") {
            return None;
        }
        let digits: String = value
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

#[cfg(test)]
mod retry_after_tests {
    use super::retry_after;

    #[test]
    fn retry_after_is_read_in_seconds_whatever_follows() {
        let m = b"SIP/2.0 503 Service Unavailable\r\nVia: x\r\nretry-after: 17 (busy);duration=5\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(retry_after(m), Some(17));
        let m = b"SIP/2.0 503 Service Unavailable\r\nRetry-After:42\r\n\r\n";
        assert_eq!(retry_after(m), Some(42));
        let none = b"SIP/2.0 503 Service Unavailable\r\nVia: x\r\n\r\nRetry-After: 5\r\n";
        assert_eq!(retry_after(none), None, "in the body, not a header");
    }
}
