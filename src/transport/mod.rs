//! Sockets: UDP and TCP listeners (IPv4 and IPv6), TCP framing by Content-Length, the TCP
//! connection table, host-name resolution — and the one task that owns the [`Core`] and feeds
//! it. This is the only module (with `stats::admin`) that touches tokio I/O.
//!
//! ```text
//!  UDP sockets ──────(read in the gateway task itself)──┐  ┌─▶ UDP send_to
//!  TCP conn tasks ───┐                                   ▼  │
//!  admin queries ────┴─▶ mpsc ─────────────▶ gateway task ──┼─▶ TCP writer (per connection)
//!                                            (owns Core)  └─▶ resolver tasks (host names)
//! ```

mod tcp;

use regevent_udp as udp;
pub use udp::{bind_udp, raise_fd_limit};

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hashbrown::HashMap;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use udp::Watched;

use crate::config::Config;
use crate::core::{Core, Dest, Inbound, Transmit};
use crate::names;
use crate::sip::Transport;
use crate::stats::AdminQuery;
use crate::store::Persister;

/// What reaches the gateway task.
pub enum Event {
    Inbound(Inbound),

    TcpOpen(SocketAddr, tcp::ConnTx),
    TcpClosed(SocketAddr),
    Admin(AdminQuery),
    Reload(Arc<Config>),
    /// A TCP message over `limits.max_message_tcp`: its header section, to be answered 513.
    Oversize(Inbound),
    /// Stop: commit the state and end the task.
    Shutdown,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Inbound(i) => f.debug_tuple("Inbound").field(&i.peer).finish(),
            Event::TcpOpen(a, _) => f.debug_tuple("TcpOpen").field(a).finish(),
            Event::TcpClosed(a) => f.debug_tuple("TcpClosed").field(a).finish(),
            Event::Admin(q) => f.debug_tuple("Admin").field(q).finish(),
            Event::Reload(_) => f.write_str("Reload"),
            Event::Oversize(i) => f.debug_tuple("Oversize").field(&i.peer).finish(),
            Event::Shutdown => f.write_str("Shutdown"),
        }
    }
}

/// Bound sockets, ready to run.
#[derive(Debug)]
pub struct Bound {
    udp: Vec<(u16, Arc<Watched>)>,
    tcp: Vec<(u16, TcpListener)>,
    /// Actual local addresses, in `sip.listen` order (port 0 resolved).
    pub local_addrs: Vec<(Transport, SocketAddr)>,
}

/// Bind every listener of the configuration.
pub async fn bind(cfg: &Config) -> std::io::Result<Bound> {
    let mut b = Bound {
        udp: Vec::new(),
        tcp: Vec::new(),
        local_addrs: Vec::new(),
    };
    for (i, l) in cfg.sip.listen.iter().enumerate() {
        let idx = u16::try_from(i).unwrap_or(u16::MAX);
        match l.transport {
            Transport::Udp => {
                let s = udp::bind_udp_std(l.addr).map_err(|e| annotate(e, &l.name))?;
                if let Some((got, asked)) = udp::recv_buffer_shortfall(&s) {
                    // Said once per listener at start: under a burst, datagrams beyond the
                    // buffer are dropped by the kernel and every UE retransmits.
                    tracing::warn!(
                        listener = %l.name,
                        got_bytes = got,
                        asked_bytes = asked,
                        "UDP receive buffer smaller than asked: raise net.core.rmem_max \
                         (deploy/sysctl.d/90-regevent-gw.conf); a burst beyond it is dropped"
                    );
                }
                b.local_addrs.push((Transport::Udp, s.local_addr()?));
                b.udp.push((idx, Arc::new(udp::watch(s)?)));
            }
            Transport::Tcp => {
                let s = listen_tcp(l.addr).map_err(|e| annotate(e, &l.name))?;
                b.local_addrs.push((Transport::Tcp, s.local_addr()?));
                b.tcp.push((idx, s));
            }
        }
    }
    Ok(b)
}

/// Connections a TCP listener lets wait for `accept` (the kernel caps it at
/// `net.core.somaxconn`). Tokio's default of 1,024 overflowed when UEs with a connection each
/// arrived at 5,000/s: the kernel then drops the SYN and the UE tries again a second later.
const TCP_BACKLOG: u32 = 4096;

/// A TCP listener on `addr` (address reuse on, as `TcpListener::bind` does) with a deep
/// accept queue.
fn listen_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(TCP_BACKLOG)
}

fn annotate(e: std::io::Error, what: &str) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("cannot bind {what}: {e}"))
}

/// A handle to the running gateway task.
#[derive(Debug, Clone)]
pub struct Handle {
    pub events: mpsc::Sender<Event>,
}

/// Start reader tasks and the gateway task. Returns once the task is spawned.
pub fn start(
    bound: Bound,
    mut gw: Core,
    coalesce_window: Duration,
    mut persister: Option<Persister>,
) -> (Handle, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Event>(8192);
    let max = gw.settings().max_message;
    let max_tcp = gw.settings().max_message_tcp;
    let accepting: Vec<tokio::task::JoinHandle<()>> = bound
        .tcp
        .into_iter()
        .map(|(idx, l)| tokio::spawn(tcp::accept_loop(l, idx, tx.clone(), max_tcp)))
        .collect();
    let udp: Vec<(bool, Arc<Watched>)> = bound
        .udp
        .iter()
        .map(|(_, s)| {
            (
                s.get_ref()
                    .local_addr()
                    .map(|a| a.is_ipv4())
                    .unwrap_or(true),
                s.clone(),
            )
        })
        .collect();
    let handle = Handle { events: tx.clone() };
    let task = tokio::spawn(async move {
        let socks = udp.iter().map(|(_, s)| s.clone()).collect();
        let sender = udp::SendThread::start(socks, count_send_errors)
            .map_err(|e| tracing::warn!(error = %e, "no UDP send thread; sending inline"))
            .ok();
        let mut io = Io {
            udp_out: vec![Vec::new(); udp.len()],
            udp,
            sender,
            offload_at: udp::OFFLOAD_AT,
            conns: HashMap::new(),
            events: tx,
            max: max_tcp,
        };
        let wall0 = SystemTime::now();
        let mono0 = now();
        let mut batch = Vec::with_capacity(256);
        let readers: Vec<(u16, Arc<Watched>)> = bound.udp.clone();
        let mut rb = udp::RecvBatch::new(RECV_BATCH, (max + 1).min(65_536));
        let slack = (gw.settings().t1 / 8).min(TIMER_SLACK);
        let mut batching = Coalesce::new(coalesce_window);
        let mut udp_turn = None;
        // Overload control reads every datagram waiting (up to this many a turn) to class it and
        // answer what cannot be served; without it a turn reads a few batches and serves them.
        let read_batches = if gw.settings().overload.enabled {
            READ_BATCHES_OVERLOAD
        } else {
            READ_BATCHES
        };
        // Since when the task is stopping (SIGTERM): new requests get 503 while what is in
        // flight finishes, for at most `DRAIN`.
        let mut stopping: Option<Instant> = None;
        let store_wake = persister.as_ref().map(|p| p.woken());
        // Publish the gauges now (and run what a restore left due): an idle gateway would
        // otherwise show no `regevent_registrations` until its first message.
        gw.handle_timeout(now());
        loop {
            if let Some(since) = stopping {
                if gw.quiescent() || since.elapsed() >= DRAIN {
                    break;
                }
            }
            let deadline = crate::core::earliest_of(
                gw.poll_timeout(),
                persister.as_ref().and_then(|p| p.poll_timeout(&gw)),
            )
            .map(|d| coalesce(d, mono0, slack));
            let deadline = match stopping {
                Some(since) => crate::core::earliest_of(deadline, Some(since + DRAIN)),
                None => deadline,
            };
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            // The gateway task reads its UDP sockets itself: no hand-over per datagram.
            let udp_ready = std::future::poll_fn(|cx| {
                for (i, (_, sock)) in readers.iter().enumerate() {
                    if let std::task::Poll::Ready(r) = sock.poll_read_ready(cx) {
                        return std::task::Poll::Ready((i, r));
                    }
                }
                std::task::Poll::Pending
            });
            let waiting = gw.waiting() > 0;
            let store_woken = async {
                match &store_wake {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                (i, ready) = udp_ready => {
                    let listener = readers[i].0;
                    let mut ready = match ready {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::warn!(error = %e, "UDP socket readiness");
                            continue;
                        }
                    };
                    let t = now();
                    let began = Instant::now();
                    // Whether this turn emptied the socket. It reads a bounded number of batches;
                    // then what was read is served (for a bounded time), replies go out and
                    // timers get their turn.
                    let mut drained = false;
                    for _ in 0..read_batches {
                        let n = match rb.recv_ready(&mut ready) {
                            Ok(n) => n,
                            // ICMP port unreachable surfaces here on some systems; keep going.
                            Err(e) => {
                                tracing::debug!(error = %e, "UDP receive error");
                                drained = true;
                                break;
                            }
                        };
                        for k in 0..n {
                            let peer = rb.got[k].peer;
                            if let Some(inb) = datagram(rb.datagram(k), listener, peer, max) {
                                #[cfg(debug_assertions)]
                                test_fault(&inb);
                                gw.offer(t, inb);
                            }
                        }
                        if n < RECV_BATCH {
                            drained = true;
                            break;
                        }
                    }
                    serve_turn(&mut gw, &mut io, began);
                    udp_turn = Some((began, drained && gw.waiting() == 0));
                }
                _ = std::future::ready(()), if waiting => {
                    serve_turn(&mut gw, &mut io, Instant::now());
                }
                n = rx.recv_many(&mut batch, 256) => {
                    if n == 0 {
                        break;
                    }
                    let t = now();
                    let began = Instant::now();
                    for ev in batch.drain(..) {
                        match ev {
                            Event::Inbound(inb) => {
                                #[cfg(debug_assertions)]
                                test_fault(&inb);
                                gw.offer(t, inb)
                            }
                            Event::TcpOpen(peer, s) => {
                                io.conns.insert(peer, s);
                            }
                            Event::TcpClosed(peer) => {
                                io.conns.remove(&peer);
                            }
                            Event::Admin(q) => answer_admin(&gw, q, t, wall0 + (t - mono0)),
                            Event::Reload(cfg) => gw.reload_profiles(Arc::new(cfg.core_settings())),
                            Event::Oversize(inb) => gw.reject_oversize(inb),
                            Event::Shutdown => {
                                if stopping.is_none() {
                                    stopping = Some(Instant::now());
                                    gw.drain();
                                    tracing::info!("stopping: new requests get 503");
                                }
                            }
                        }
                    }
                    serve_turn(&mut gw, &mut io, began);
                }
                _ = sleep => gw.handle_timeout(now()),
                // The store wants a snapshot: `tick` below starts it.
                _ = store_woken => {}
            }
            if let Some(p) = persister.as_mut() {
                let t = now();
                if p.poll_timeout(&gw).is_some_and(|d| d <= t) {
                    p.tick(&mut gw, t, wall0 + (t - mono0));
                }
            }
            while let Some(tr) = gw.poll_transmit() {
                io.send(tr);
            }
            io.flush();
            if let Some((began, drained)) = udp_turn.take() {
                let pause = batching.after_turn(began, Instant::now(), drained);
                // For the next turn's output: while turns pause, the thread has idle time and
                // the kernel's send path is cheaper inline than a wake-up of the send thread.
                // Without pauses, large turns go to the send thread.
                io.offload_at = if pause.is_some() {
                    usize::MAX
                } else {
                    udp::OFFLOAD_AT
                };
                if let Some(d) = pause {
                    // A blocking sleep on purpose: a runtime sleep would end at the next
                    // datagram's epoll event, the very wake-up this saves. The other tasks on
                    // this thread (TCP connections, queued events) wait at most the window.
                    std::thread::sleep(d);
                }
            }
        }
        // Stopping: no new connections; what changed since the last commit is made durable
        // before the task ends.
        for a in accepting {
            a.abort();
            let _ = a.await;
        }
        while let Some(tr) = gw.poll_transmit() {
            io.send(tr);
        }
        io.flush();
        if let Some(p) = persister.take() {
            let t = now();
            if p.close(&mut gw, t, wall0 + (t - mono0), SHUTDOWN_COMMIT) {
                tracing::info!("state committed");
            } else {
                tracing::error!("state: the last commit did not finish in time");
            }
        }
    });
    (handle, task)
}

/// How long stopping may wait for the last commit to be durable (after at most `DRAIN`: the two
/// stay under the 5 s a SIGTERM may take).
const SHUTDOWN_COMMIT: Duration = Duration::from_millis(2500);

/// Answer an admin query from the core's state. `wall` maps `now` to Unix time.
fn answer_admin(gw: &Core, q: AdminQuery, now: Instant, wall: SystemTime) {
    match q {
        AdminQuery::Subscriptions {
            filter,
            offset,
            after,
            limit,
            reply,
        } => {
            let _ = reply.send(gw.subscription_page(&filter, offset, after, limit, now, wall));
        }
        AdminQuery::Registration { default_pui, reply } => {
            let _ = reply.send(gw.registration_view(&default_pui, now, wall));
        }
    }
}

/// Receive coalescing (`sip.coalesce`). At a few thousand datagrams a second nearly every one
/// found the SIP thread asleep and paid for its own wake-up, `epoll_wait`, `recvmmsg` and
/// `sendmmsg`. Waiting until `window` after a turn began lets the datagrams that arrive meanwhile
/// queue in the socket, to be read, handled and answered by one turn: at 1,500 registrations/s
/// (6,000 datagrams/s in) the default 2 ms window took the system calls per registration from
/// 4.7 to about 2.5 and the CPU per registration down by about 30 % (docs/performance.md). The
/// cost is at most `window` of added latency per message. It applies only while turns come less than 2×`window`
/// apart: at lower rates a pause would be one more wake-up, not one fewer. When a turn takes the
/// whole window there is no pause: under full load nothing waits.
#[derive(Debug)]
struct Coalesce {
    window: Duration,
    /// When the previous UDP turn began.
    last: Option<Instant>,
}

impl Coalesce {
    fn new(window: Duration) -> Self {
        Coalesce { window, last: None }
    }

    /// A UDP turn that began at `began` is done at `now`: how long to wait before reading again.
    /// `drained`: the turn emptied the socket. One that stopped at its batch limit left a
    /// backlog, and waiting then would only cap the throughput (at 15,000 registrations/s a 2 ms
    /// pause after every 256 datagrams fell behind and overflowed the socket buffer).
    fn after_turn(&mut self, began: Instant, now: Instant, drained: bool) -> Option<Duration> {
        let busy = self
            .last
            .replace(began)
            .is_some_and(|prev| began.saturating_duration_since(prev) < self.window * 2);
        let until = began + self.window;
        (drained && busy && until > now).then(|| until - now)
    }
}

/// Timer wake-ups are rounded up to a multiple of this (at most T1/8): transaction timers
/// (J, K, cleanup) expire at a different millisecond for nearly every message, and waking for
/// each cost as much as a received datagram. Rounding lets one wake-up serve all the timers of a
/// few milliseconds; a retransmission is at most this late, and the SUBSCRIBE rate limiter
/// catches up on 10 ms of late slots.
const TIMER_SLACK: Duration = Duration::from_millis(4);

/// `at` rounded up to the next multiple of `slack` after `origin`.
fn coalesce(at: Instant, origin: Instant, slack: Duration) -> Instant {
    let q = slack.as_nanos();
    if q == 0 {
        return at;
    }
    let r = at.saturating_duration_since(origin).as_nanos() % q;
    if r == 0 {
        at
    } else {
        at + Duration::from_nanos((q - r) as u64)
    }
}

/// Datagrams the kernel refused for good (inline or on the send thread).
fn count_send_errors(n: usize) {
    if n > 0 {
        metrics::counter!(names::SIP_DROPS, "reason" => "send_error").increment(n as u64);
    }
}

/// The current time as the gateway sees it (tokio's clock, so paused-time tests work).
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Datagrams taken from a UDP socket with one `recvmmsg`.
const RECV_BATCH: usize = 32;
/// `recvmmsg` calls per turn at most, without overload control and with it. With it, reading
/// and classing is cheap (a parse) and must keep up with everything that arrives, so that what
/// cannot be served is answered 503 instead of overflowing the socket buffer.
const READ_BATCHES: usize = 4;
const READ_BATCHES_OVERLOAD: usize = 256;
/// How long a turn serves waiting messages before replies go out and timers, TCP and the
/// admin API get their turn (about 100 messages at full load).
const TURN_BUDGET: Duration = Duration::from_millis(2);
/// Messages served between two looks at the clock.
const SERVE_CHUNK: usize = 16;
/// How long a stopping gateway keeps serving what is in flight (new requests get 503).
const DRAIN: Duration = Duration::from_secs(2);

/// Test-only fault, in debug builds only (a release build has no such code): a message with
/// the header line `X-Regevent-Test-Fault: panic` panics the SIP task, so that tests can check
/// that the process then fails loud (issue 20).
#[cfg(debug_assertions)]
fn test_fault(inb: &Inbound) {
    const HOOK: &[u8] = b"\r\nX-Regevent-Test-Fault: panic\r\n";
    if inb.bytes.windows(HOOK.len()).any(|w| w == HOOK) {
        panic!("test fault hook: X-Regevent-Test-Fault: panic");
    }
}

/// Serve waiting messages (highest class first) until none waits or the turn's budget is spent;
/// what they produce goes out as it comes.
fn serve_turn(gw: &mut Core, io: &mut Io, began: Instant) {
    loop {
        let t = now();
        let taken = gw.serve(t, SERVE_CHUNK);
        while let Some(tr) = gw.poll_transmit() {
            io.send(tr);
        }
        if taken == 0 || began.elapsed() >= TURN_BUDGET {
            break;
        }
    }
}

struct Io {
    /// UDP sockets and whether each is IPv4 (looked up per send, so kept, not asked).
    udp: Vec<(bool, Arc<Watched>)>,
    /// Datagrams waiting for the end of the turn, per UDP socket: one `sendmmsg` each.
    udp_out: Vec<Vec<(SocketAddr, Bytes)>>,
    /// Takes large turns' output (and what would block) off the gateway's thread.
    sender: Option<udp::SendThread>,
    offload_at: usize,
    conns: HashMap<SocketAddr, tcp::ConnTx>,
    events: mpsc::Sender<Event>,
    max: usize,
}

impl Io {
    fn send(&mut self, tr: Transmit) {
        match tr.dest {
            Dest::Addr(addr) => self.send_to(tr.transport, addr, tr.bytes),
            Dest::Name(name, port) => {
                // Resolve off the gateway task; the result comes back as a send of its own.
                let udp = self.udp_for(true).map(|i| self.udp[i].1.clone());
                let events = self.events.clone();
                let max = self.max;
                tokio::spawn(async move {
                    match tokio::net::lookup_host((&*name, port))
                        .await
                        .ok()
                        .and_then(|mut a| a.next())
                    {
                        Some(addr) => match tr.transport {
                            Transport::Udp => {
                                // Non-blocking, as every gateway send; a full socket drops it.
                                let sent = udp.map(|s| s.get_ref().send_to(&tr.bytes, addr));
                                if !matches!(sent, Some(Ok(_))) {
                                    count_send_errors(1);
                                }
                            }
                            Transport::Tcp => {
                                tcp::connect_and_send(addr, tr.bytes, events, max).await
                            }
                        },
                        None => {
                            metrics::counter!(names::SIP_DROPS, "reason" => "unresolvable")
                                .increment(1);
                            tracing::debug!(host = %name, "cannot resolve next hop");
                        }
                    }
                });
            }
        }
    }

    fn udp_for(&self, v4: bool) -> Option<usize> {
        self.udp
            .iter()
            .position(|(is_v4, _)| *is_v4 == v4)
            .or((!self.udp.is_empty()).then_some(0))
    }

    /// Send the turn's datagrams: a large turn's (or all while the send thread still has some)
    /// go to the send thread; a small one's with one `sendmmsg` here, the rest, if the socket is
    /// full, to the send thread.
    fn flush(&mut self) {
        for (i, out) in self.udp_out.iter_mut().enumerate() {
            if out.is_empty() {
                continue;
            }
            let offload = self
                .sender
                .as_ref()
                .is_some_and(|t| t.busy() || out.len() >= self.offload_at);
            let sent = if offload {
                0
            } else {
                let mut errors = 0;
                let (sent, _full) = udp::send_chunks(self.udp[i].1.as_raw_fd(), out, &mut errors);
                count_send_errors(errors);
                sent
            };
            if sent < out.len() {
                let rest: Vec<(SocketAddr, Bytes)> = if sent == 0 {
                    std::mem::replace(out, Vec::with_capacity(out.capacity()))
                } else {
                    out.drain(sent..).collect()
                };
                let rest = match &self.sender {
                    Some(t) => t.hand_over(i, rest),
                    None => Err(rest),
                };
                if let Err(rest) = rest {
                    // No send thread (it could not start): what the socket refused is lost.
                    count_send_errors(rest.len());
                }
            }
            out.clear();
        }
    }

    fn send_to(&mut self, t: Transport, addr: SocketAddr, bytes: Bytes) {
        match t {
            Transport::Udp => {
                let Some(i) = self.udp_for(addr.is_ipv4()) else {
                    metrics::counter!(names::SIP_DROPS, "reason" => "no_udp_socket").increment(1);
                    return;
                };
                self.udp_out[i].push((addr, bytes));
            }
            Transport::Tcp => {
                if let Some(c) = self.conns.get(&addr) {
                    match c.try_send(bytes) {
                        Ok(()) => return,
                        Err(tcp::QueueError::Full) => {
                            metrics::counter!(names::SIP_DROPS, "reason" => "tcp_backlog")
                                .increment(1);
                            return;
                        }
                        Err(tcp::QueueError::Closed(b)) => {
                            self.conns.remove(&addr);
                            return self.connect(addr, b);
                        }
                    }
                }
                self.connect(addr, bytes);
            }
        }
    }

    fn connect(&mut self, addr: SocketAddr, first: Bytes) {
        let (tx, rx) = tcp::opened_queue(first);
        self.conns.insert(addr, tx);
        tokio::spawn(tcp::connect_with_queue(
            addr,
            rx,
            self.events.clone(),
            self.max,
        ));
    }
}

/// A received datagram as gateway input; `None` for keep-alives and oversize datagrams.
/// Receive slots are `max + 1` bytes, so a longer datagram arrives cut to `max + 1` and is caught
/// here by its length.
fn datagram(b: &[u8], listener: u16, peer: SocketAddr, max: usize) -> Option<Inbound> {
    if b.len() > max {
        metrics::counter!(names::SIP_DROPS, "reason" => "oversize").increment(1);
        return None;
    }
    if b.iter()
        .all(|c| matches!(c, b'\r' | b'\n' | b' ' | b'\t' | 0))
    {
        return None; // keep-alive
    }
    Some(Inbound {
        transport: Transport::Udp,
        listener,
        peer,
        bytes: Bytes::copy_from_slice(b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalescing_waits_out_the_window_only_while_turns_come_close_together() {
        let o = Instant::now();
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        let mut c = Coalesce::new(ms(1));
        assert_eq!(
            c.after_turn(o, o + us(100), true),
            None,
            "first turn: no rate seen"
        );
        // 300 µs after the previous one: busy; 100 µs of work leaves 900 µs of the window.
        assert_eq!(
            c.after_turn(o + us(300), o + us(400), true),
            Some(us(900)),
            "pause until the window after the turn began"
        );
        // A turn that used its whole window: no pause, even while busy.
        assert_eq!(c.after_turn(o + ms(1), o + ms(2), true), None);
        // 2 ms or more since the previous turn: too quiet to gain from waiting.
        assert_eq!(c.after_turn(o + ms(3), o + ms(3) + us(50), true), None);
        assert_eq!(
            c.after_turn(o + ms(3) + us(700), o + ms(3) + us(800), true),
            Some(us(900))
        );
        // Busy, time left in the window, but the turn stopped at its batch limit: a backlog is
        // waiting in the socket, so read on at once.
        assert_eq!(c.after_turn(o + ms(4), o + ms(4) + us(100), false), None);
        assert_eq!(
            c.after_turn(o + ms(4) + us(200), o + ms(4) + us(300), true),
            Some(us(900)),
            "the backlog turn still counts as a recent turn"
        );
        let mut off = Coalesce::new(Duration::ZERO);
        for k in 0..5 {
            assert_eq!(off.after_turn(o + us(k), o + us(k), true), None, "0 = off");
        }
    }

    #[test]
    fn timer_wake_ups_round_up_to_the_slack_grid() {
        let o = Instant::now();
        let ms = Duration::from_millis;
        let s = ms(4);
        assert_eq!(
            coalesce(o + ms(8), o, s),
            o + ms(8),
            "on the grid: unchanged"
        );
        assert_eq!(coalesce(o + ms(9), o, s), o + ms(12));
        assert_eq!(coalesce(o + ms(11), o, s), o + ms(12));
        assert_eq!(coalesce(o + ms(9), o, Duration::ZERO), o + ms(9));
        // Never earlier, never later by the slack or more.
        for us in (0..20_000).step_by(37) {
            let at = o + Duration::from_micros(us);
            let c = coalesce(at, o, s);
            assert!(c >= at && c - at < s, "{us} µs");
        }
    }
}
