//! An emulated IMS core on one UDP socket (and, with `CoreConfig::tcp`, a TCP listener on the
//! same port): a registrar (200 OK with Service-Route and P-Associated-URI) and a reg-event
//! notifier (200 OK to SUBSCRIBE, full-state NOTIFY, a terminated NOTIFY on unsubscribe), with
//! error injection. Counts everything it sees. What arrives on a TCP connection is answered on
//! it, and the NOTIFYs of a subscription that came over TCP go on that connection (no Timer E
//! retransmission on a reliable transport, RFC 3261 §17.1.2.2).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hashbrown::HashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use super::peer::{response_key, ResponseKey};
use super::reginfo_doc::{render, render_into, DocContact, DocRegistration};
use regevent_proto::sip::writer::push_decimal;
use regevent_proto::sip::StreamFramer;
use regevent_proto::sip::{writer, Contacts, Limits, Message, Method};
use regevent_udp::{send_all_wait, RecvBatch};

/// How the notifier answers SUBSCRIBEs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeMode {
    /// 200 OK and NOTIFYs.
    Accept,
    /// This final status (e.g. 403) and nothing else.
    Reject(u16),
    /// Never answer (the gateway's transaction times out).
    Ignore,
}

#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Cap on granted registration expiry.
    pub reg_expires_max: u32,
    /// Cap on granted subscription expiry.
    pub sub_expires_max: u32,
    /// Implicit PUIs per user besides the default one.
    pub implicit: usize,
    pub subscribe_mode: SubscribeMode,
    /// Send the NOTIFY before the 200 OK to the SUBSCRIBE.
    pub notify_before_ok: bool,
    /// Users the tables are sized for at start (a load run does not pause to grow them).
    pub expected_users: usize,
    /// Also listen for TCP on the UDP socket's port (a gateway whose `sip.core` says
    /// `;transport=tcp`).
    pub tcp: bool,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            reg_expires_max: 3600,
            sub_expires_max: 3660,
            implicit: 2,
            subscribe_mode: SubscribeMode::Accept,
            notify_before_ok: false,
            expected_users: 0,
            tcp: false,
        }
    }
}

/// Counters of what the core saw and did.
#[derive(Debug, Default)]
pub struct CoreStats {
    pub registers: AtomicU64,
    pub subscribes_initial: AtomicU64,
    pub subscribes_refresh: AtomicU64,
    pub unsubscribes: AtomicU64,
    pub notifies_sent: AtomicU64,
    pub notify_responses_2xx: AtomicU64,
    /// Subscriptions whose first NOTIFY was answered 2xx (each counted once).
    pub subscriptions_notified: AtomicU64,
    pub notify_responses_other: AtomicU64,
    pub notify_retransmissions: AtomicU64,
    pub other: AtomicU64,
    /// Messages received over TCP (all kinds).
    pub tcp_messages: AtomicU64,
    /// Initial SUBSCRIBE received → 200 OK to the first NOTIFY received, microseconds.
    pub subscribe_to_notified_us: std::sync::Mutex<Vec<u32>>,
}

impl CoreStats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }
}

/// Commands for a running core.
#[derive(Debug)]
pub enum CoreCmd {
    /// Send a NOTIFY showing the default PUI's registration terminated (network-initiated
    /// deregistration). `terminate_subscription` also ends the subscription in the same NOTIFY.
    NetworkDeregister {
        pui: String,
        terminate_subscription: bool,
    },
    /// Send a NOTIFY with this raw body and content type for the subscription of `pui`.
    RawNotify {
        pui: String,
        content_type: String,
        body: String,
    },
}

/// A running core.
#[derive(Debug, Clone)]
pub struct ImsCore {
    pub addr: SocketAddr,
    pub stats: Arc<CoreStats>,
    pub cmd: mpsc::Sender<CoreCmd>,
}

#[derive(Debug)]
struct CoreSub {
    /// When the initial SUBSCRIBE arrived, until the first NOTIFY is answered.
    first_seen: Option<std::time::Instant>,
    /// The subscribed PUI, the gateway's URI and tag, and our tag, one after another
    /// (`ends` marks where each of the first three ends): one allocation per subscription.
    text: String,
    ends: [usize; 3],
    /// The core's SUBSCRIBE count when this subscription last received one: a command naming a
    /// PUI acts on the subscription that was subscribed most recently.
    touched: u64,
    cseq: u32,
    version: u64,
    peer: SocketAddr,
    /// CSeq and 200 OK of the last SUBSCRIBE: a retransmission gets the same answer again
    /// (the notifier's server transaction), not a second NOTIFY.
    last: Option<(u32, Bytes)>,
}

impl CoreSub {
    fn new(parts: [&str; 4], peer: SocketAddr, touched: u64) -> CoreSub {
        let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0; 3];
        for (k, p) in parts.into_iter().enumerate() {
            text.push_str(p);
            if let Some(e) = ends.get_mut(k) {
                *e = text.len();
            }
        }
        CoreSub {
            first_seen: Some(std::time::Instant::now()),
            text,
            ends,
            touched,
            cseq: 0,
            version: 0,
            peer,
            last: None,
        }
    }
    fn pui(&self) -> &str {
        &self.text[..self.ends[0]]
    }
    fn gw_uri(&self) -> &str {
        &self.text[self.ends[0]..self.ends[1]]
    }
    fn gw_tag(&self) -> &str {
        &self.text[self.ends[1]..self.ends[2]]
    }
    fn our_tag(&self) -> &str {
        &self.text[self.ends[2]..]
    }
}

/// An unanswered NOTIFY: its bytes, where it went, when it was first sent, when it is sent
/// again (RFC 3261 Timer E/F).
type Unanswered = (Bytes, SocketAddr, std::time::Instant, std::time::Instant);

struct State {
    cfg: CoreConfig,
    sock: Arc<UdpSocket>,
    stats: Arc<CoreStats>,
    regs: HashMap<String, Vec<(String, u32)>>,
    /// By Call-ID; the key is shared with `unanswered`'s.
    subs: HashMap<Arc<str>, CoreSub>,
    /// SUBSCRIBEs handled (our tags and `CoreSub::touched` come from it).
    seq: u64,
    /// NOTIFYs not answered yet, by (Call-ID, CSeq).
    unanswered: HashMap<(Arc<str>, u32), Unanswered>,
    /// Datagrams of this turn, sent together with one `sendmmsg`.
    out: Vec<(SocketAddr, Bytes)>,
    /// Open TCP connections by peer: the write half and this turn's bytes for it (one write).
    conns: HashMap<SocketAddr, (OwnedWriteHalf, Vec<u8>)>,
    /// Our Contact (notifier) and Service-Route (registrar) values and the NOTIFYs' Via up to
    /// the branch's per-request part: fixed by the address, one of each per transport (index
    /// `usize::from(over_tcp)`).
    contact: [String; 2],
    service_route: [String; 2],
    via_prefix: [String; 2],
    /// Scratch for the text of the message being built (header values, NOTIFY bodies).
    scratch: String,
    body: String,
}

impl ImsCore {
    /// Bind on `addr` (e.g. `127.0.0.1:0`) and run until the process ends.
    pub async fn start(addr: SocketAddr, cfg: CoreConfig) -> std::io::Result<ImsCore> {
        let sock = Arc::new(regevent_udp::bind_udp(addr)?);
        let addr = sock.local_addr()?;
        let (tcp_tx, mut tcp_rx) = mpsc::channel(256);
        if cfg.tcp {
            let l = TcpListener::bind(addr).await?;
            tokio::spawn(accept_loop(l, tcp_tx));
        }
        let stats = Arc::new(CoreStats::default());
        let (tx, mut rx) = mpsc::channel(64);
        let n = cfg.expected_users;
        let mut st = State {
            cfg,
            sock: sock.clone(),
            stats: stats.clone(),
            regs: HashMap::with_capacity(n),
            subs: HashMap::with_capacity(n),
            seq: 0,
            unanswered: HashMap::new(),
            out: Vec::new(),
            conns: HashMap::new(),
            contact: [
                format!("<sip:scscf@{addr}>"),
                format!("<sip:scscf@{addr};transport=tcp>"),
            ],
            service_route: [
                format!("<sip:orig@{addr};lr>"),
                format!("<sip:orig@{addr};transport=tcp;lr>"),
            ],
            via_prefix: [
                format!("SIP/2.0/UDP {addr};branch=z9hG4bKcore"),
                format!("SIP/2.0/TCP {addr};branch=z9hG4bKcore"),
            ],
            scratch: String::new(),
            body: String::new(),
        };
        tokio::spawn(async move {
            let mut rb = RecvBatch::new(32, 65_536);
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = tick.tick() => st.retransmit(),
                    r = sock.readable() => {
                        if r.is_err() {
                            continue;
                        }
                        let n = rb.recv(&sock).unwrap_or(0);
                        for k in 0..n {
                            let peer = rb.got[k].peer;
                            if let Some(r) = response_key(rb.datagram(k)) {
                                st.response(r);
                                continue;
                            }
                            let b = Bytes::copy_from_slice(rb.datagram(k));
                            if let Ok(m) = Message::parse(b, &Limits::default()) {
                                st.handle(m, peer);
                            }
                        }
                    }
                    c = rx.recv() => match c {
                        Some(c) => st.command(c),
                        None => return,
                    },
                    Some(ev) = tcp_rx.recv() => st.tcp_event(ev),
                }
                st.flush().await;
            }
        });
        Ok(ImsCore {
            addr,
            stats,
            cmd: tx,
        })
    }
}

/// Bytes asked for per TCP read.
const TCP_READ: usize = 64 * 1024;

/// What the TCP side tells the core's task.
enum TcpEvent {
    Open(SocketAddr, OwnedWriteHalf),
    /// The whole messages of one read.
    Messages(SocketAddr, Vec<Bytes>),
    Closed(SocketAddr),
}

/// Accept connections; each gets a reader task that frames what arrives.
async fn accept_loop(l: TcpListener, tx: mpsc::Sender<TcpEvent>) {
    while let Ok((stream, peer)) = l.accept().await {
        // A turn's answers go out in one write; do not hold them back for more.
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        if tx.send(TcpEvent::Open(peer, w)).await.is_err() {
            return;
        }
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut r = r;
            let mut framer = StreamFramer::new(Limits::default());
            let mut buf = vec![0; TCP_READ];
            loop {
                let n = match r.read(&mut buf).await {
                    Ok(n) if n > 0 => n,
                    _ => break,
                };
                // The whole messages of this read go to the core together.
                let mut batch = Vec::new();
                let framed = framer.push(&buf[..n], &mut batch).is_ok();
                if !batch.is_empty() && tx.send(TcpEvent::Messages(peer, batch)).await.is_err() {
                    return;
                }
                if !framed {
                    break;
                }
            }
            let _ = tx.send(TcpEvent::Closed(peer)).await;
        });
    }
}

impl State {
    /// Queue `b` for `to`: on its TCP connection if it has one, else as a datagram.
    fn send(&mut self, b: &Bytes, to: SocketAddr) {
        match self.conns.get_mut(&to) {
            Some((_, buf)) => buf.extend_from_slice(b),
            None => self.out.push((to, b.clone())),
        }
    }

    /// Send this turn's datagrams (one `sendmmsg`, the rest, if the socket is full, one by one)
    /// and each connection's bytes (one write each). A connection that fails is dropped.
    async fn flush(&mut self) {
        send_all_wait(&self.sock, &mut self.out).await;
        let mut failed = Vec::new();
        for (peer, (w, buf)) in self.conns.iter_mut() {
            if !buf.is_empty() {
                if w.write_all(buf).await.is_err() {
                    failed.push(*peer);
                }
                buf.clear();
            }
        }
        for peer in failed {
            self.conns.remove(&peer);
        }
    }

    fn tcp_event(&mut self, ev: TcpEvent) {
        match ev {
            TcpEvent::Open(peer, w) => {
                self.conns.insert(peer, (w, Vec::new()));
            }
            TcpEvent::Messages(peer, batch) => {
                self.stats
                    .tcp_messages
                    .fetch_add(batch.len() as u64, Relaxed);
                for b in batch {
                    if let Some(r) = response_key(&b) {
                        self.response(r);
                    } else if let Ok(m) = Message::parse(b, &Limits::default()) {
                        self.handle(m, peer);
                    }
                }
            }
            TcpEvent::Closed(peer) => {
                self.conns.remove(&peer);
            }
        }
    }

    /// Whether `peer` is a TCP connection: what the Contact and Via of a message to it say
    /// (`usize::from` of it indexes `contact`, `service_route` and `via_prefix`), and whether a
    /// NOTIFY to it is retransmitted.
    fn over_tcp(&self, peer: SocketAddr) -> bool {
        self.conns.contains_key(&peer)
    }

    /// Send a NOTIFY and keep it for retransmission until answered (RFC 3261 Timer E/F).
    fn send_notify(&mut self, call_id: &str, n: Bytes, peer: SocketAddr) {
        let (key, cseq) = match self.subs.get_key_value(call_id) {
            Some((k, s)) => (k.clone(), s.cseq),
            None => (Arc::from(call_id), 0),
        };
        self.send(&n, peer);
        let now = std::time::Instant::now();
        // Over TCP only Timer F: the NOTIFY is kept (its answer is awaited) but not sent again.
        let again = if self.over_tcp(peer) {
            Duration::from_secs(32)
        } else {
            Duration::from_millis(500)
        };
        self.unanswered
            .insert((key, cseq), (n, peer, now, now + again));
    }

    fn retransmit(&mut self) {
        let now = std::time::Instant::now();
        let mut due = Vec::new();
        self.unanswered.retain(|_, (b, peer, first, next)| {
            if now.duration_since(*first) >= Duration::from_secs(32) {
                return false;
            }
            if *next <= now {
                due.push((b.clone(), *peer));
                let since = next.duration_since(*first);
                *next = now + (since + Duration::from_millis(500)).min(Duration::from_secs(4));
            }
            true
        });
        for (b, peer) in due {
            self.stats.notify_retransmissions.fetch_add(1, Relaxed);
            self.send(&b, peer);
        }
    }

    /// A response: only NOTIFY answers matter (they stop retransmission and complete the
    /// subscription's first round trip).
    fn response(&mut self, r: ResponseKey<'_>) {
        if !r.method.eq_ignore_ascii_case("NOTIFY") || r.status < 200 {
            return;
        }
        if self
            .unanswered
            .remove(&NotifyKey(r.call_id, r.cseq))
            .is_none()
        {
            return; // a retransmitted response
        }
        let ok = (200..300).contains(&r.status);
        let c = if ok {
            &self.stats.notify_responses_2xx
        } else {
            &self.stats.notify_responses_other
        };
        c.fetch_add(1, Relaxed);
        let Some(sub) = self.subs.get_mut(r.call_id) else {
            return;
        };
        if let Some(t) = sub.first_seen.take() {
            // The gateway has the dialog: a SUBSCRIBE retransmitted after this gets a fresh 200.
            sub.last = None;
            if ok {
                self.stats.subscriptions_notified.fetch_add(1, Relaxed);
            }
            let us = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
            if let Ok(mut v) = self.stats.subscribe_to_notified_us.lock() {
                v.push(us);
            }
        }
    }

    fn handle(&mut self, m: Message, peer: SocketAddr) {
        if let Some(status) = m.status() {
            let cseq = m.cseq();
            return self.response(ResponseKey {
                status,
                call_id: m.call_id(),
                cseq: cseq.seq,
                method: cseq.method,
            });
        }
        match m.method() {
            Some(Method::Register) => self.register(&m, peer),
            Some(Method::Subscribe) => self.subscribe(&m, peer),
            _ => {
                self.stats.other.fetch_add(1, Relaxed);
                let r = writer::response(&m, 501, "Not Implemented", Some("core"), &[]);
                self.send(&r, peer);
            }
        }
    }

    fn register(&mut self, m: &Message, peer: SocketAddr) {
        self.stats.registers.fetch_add(1, Relaxed);
        let t = usize::from(self.over_tcp(peer));
        let pui = m.to().uri.to_string();
        let hdr_exp = m.expires().ok().flatten();
        let entry = self.regs.entry(pui.clone()).or_default();
        match m.contacts() {
            Ok(Contacts::Star) => entry.clear(),
            Ok(Contacts::List(l)) => {
                for c in l {
                    let req = c
                        .params
                        .get("expires")
                        .flatten()
                        .and_then(|v| v.parse().ok())
                        .or(hdr_exp)
                        .unwrap_or(3600);
                    let exp = req.min(self.cfg.reg_expires_max);
                    entry.retain(|(u, _)| u != c.uri);
                    if exp > 0 {
                        entry.push((c.uri.to_string(), exp));
                    }
                }
            }
            Err(_) => {}
        }
        // Header values written one after another into one buffer: Contact, then
        // P-Associated-URI.
        let s = &mut self.scratch;
        s.clear();
        for (k, (u, e)) in entry.iter().enumerate() {
            if k > 0 {
                s.push_str(", ");
            }
            s.push('<');
            s.push_str(u);
            s.push_str(">;expires=");
            push_decimal(s, (*e).into());
        }
        let contact_end = s.len();
        s.push('<');
        s.push_str(&pui);
        s.push('>');
        for k in 0..self.cfg.implicit {
            s.push_str(", <");
            push_implicit_pui(s, &pui, k);
            s.push('>');
        }
        let (contacts, assoc) = s.split_at(contact_end);
        let extra = [
            ("Contact", contacts),
            ("P-Associated-URI", assoc),
            ("Service-Route", &self.service_route[t]),
        ];
        // No Contact header when no binding is left.
        let extra = if contacts.is_empty() {
            &extra[1..]
        } else {
            &extra[..]
        };
        let r = writer::response(m, 200, "OK", Some("reg"), extra);
        if entry.is_empty() {
            self.regs.remove(&pui);
        }
        self.send(&r, peer);
    }

    fn subscribe(&mut self, m: &Message, peer: SocketAddr) {
        let call_id = m.call_id();
        let requested = m.expires().ok().flatten().unwrap_or(3600);
        let in_dialog = m.to().tag().is_some();
        let counter = match (in_dialog, requested) {
            (_, 0) => &self.stats.unsubscribes,
            (true, _) => &self.stats.subscribes_refresh,
            (false, _) => &self.stats.subscribes_initial,
        };
        if let Some((_, ok)) = self
            .subs
            .get(call_id)
            .and_then(|s| s.last.as_ref())
            .filter(|(cseq, _)| *cseq == m.cseq().seq)
        {
            let ok = ok.clone();
            return self.send(&ok, peer);
        }
        counter.fetch_add(1, Relaxed);
        match self.cfg.subscribe_mode {
            SubscribeMode::Ignore => return,
            SubscribeMode::Reject(code) => {
                let r = writer::response(m, code, "Forbidden", Some("x"), &[]);
                return self.send(&r, peer);
            }
            SubscribeMode::Accept => {}
        }
        let granted = requested.min(self.cfg.sub_expires_max);
        self.seq += 1;
        let touched = self.seq;
        // Our tag: the request's To tag in a dialog, else `n` and the SUBSCRIBE count.
        let mut tag = std::mem::take(&mut self.scratch);
        tag.clear();
        match m.to().tag() {
            Some(t) => tag.push_str(t),
            None => {
                tag.push('n');
                push_decimal(&mut tag, touched);
            }
        }
        let (to, from) = (m.to(), m.from());
        let sub = self.subs.entry_ref(call_id).or_insert_with(|| {
            let parts = [to.uri, from.uri, from.tag().unwrap_or(""), tag.as_str()];
            CoreSub::new(parts, peer, touched)
        });
        sub.peer = peer;
        sub.touched = touched;
        let mut exp = String::new();
        push_decimal(&mut exp, granted.into());
        let ok = writer::response(
            m,
            200,
            "OK",
            Some(&tag),
            &[
                ("Expires", &exp),
                ("Contact", &self.contact[usize::from(self.over_tcp(peer))]),
            ],
        );
        self.scratch = tag;
        if let Some(s) = self.subs.get_mut(call_id) {
            s.last = Some((m.cseq().seq, ok.clone()));
        }
        let state = if granted == 0 {
            "terminated;reason=timeout".to_string()
        } else {
            exp.insert_str(0, "active;expires=");
            exp
        };
        let notify = self.notify(call_id, &state, None);
        if self.cfg.notify_before_ok {
            if let Some(n) = notify {
                self.send_notify(call_id, n, peer);
            }
            self.send(&ok, peer);
        } else {
            self.send(&ok, peer);
            if let Some(n) = notify {
                self.send_notify(call_id, n, peer);
            }
        }
        if granted == 0 {
            self.subs.remove(call_id);
        }
    }

    /// Build the next NOTIFY of a subscription (full state unless `body` is given).
    fn notify(
        &mut self,
        call_id: &str,
        sub_state: &str,
        body: Option<(String, String)>,
    ) -> Option<Bytes> {
        let t = usize::from(self.over_tcp(self.subs.get(call_id)?.peer));
        let regs = &self.regs;
        let implicit = self.cfg.implicit;
        let (contact, via, doc) = (&self.contact[t], &mut self.scratch, &mut self.body);
        let via_prefix = &self.via_prefix[t];
        let s = self.subs.get_mut(call_id)?;
        s.cseq += 1;
        let version = s.version;
        s.version += 1;
        let (ct, body) = match &body {
            Some((ct, body)) => (ct.as_str(), body.as_str()),
            None => {
                full_state(doc, version, s.pui(), regs, implicit);
                ("application/reginfo+xml", doc.as_str())
            }
        };
        via.clear();
        via.push_str(via_prefix);
        push_decimal(via, s.cseq.into());
        via.push('x');
        push_decimal(via, fastrand::u64(..));
        let mut b = writer::RequestBuilder::new("NOTIFY", s.gw_uri());
        b.header("Via", via);
        b.header("Max-Forwards", "70");
        b.header_parts("From", &["<", s.pui(), ">;tag=", s.our_tag()]);
        b.header_parts("To", &["<", s.gw_uri(), ">;tag=", s.gw_tag()]);
        b.header("Call-ID", call_id);
        b.header_num("CSeq", s.cseq.into(), " NOTIFY");
        b.header("Contact", contact);
        b.header("Event", "reg");
        b.header("Subscription-State", sub_state);
        self.stats.notifies_sent.fetch_add(1, Relaxed);
        Some(b.finish(Some((ct, body.as_bytes()))))
    }

    /// The Call-ID of the subscription to `pui` that received a SUBSCRIBE last (commands are
    /// rare, so a scan; no index is kept per SUBSCRIBE).
    fn subscription_of(&self, pui: &str) -> Option<Arc<str>> {
        self.subs
            .iter()
            .filter(|(_, s)| s.pui() == pui)
            .max_by_key(|(_, s)| s.touched)
            .map(|(k, _)| k.clone())
    }

    fn command(&mut self, c: CoreCmd) {
        match c {
            CoreCmd::NetworkDeregister {
                pui,
                terminate_subscription,
            } => {
                let Some(call_id) = self.subscription_of(&pui) else {
                    return;
                };
                let Some(version) = self.subs.get(&call_id).map(|s| s.version) else {
                    return;
                };
                let body = render(
                    version,
                    true,
                    &[DocRegistration {
                        aor: &pui,
                        id: "r0",
                        state: "terminated",
                        contacts: &[],
                    }],
                );
                self.regs.remove(&pui);
                let state = if terminate_subscription {
                    "terminated;reason=deactivated"
                } else {
                    "active;expires=600"
                };
                let peer = self.subs.get(&call_id).map(|s| s.peer);
                if let (Some(n), Some(peer)) = (
                    self.notify(
                        &call_id,
                        state,
                        Some(("application/reginfo+xml".into(), body)),
                    ),
                    peer,
                ) {
                    self.send_notify(&call_id, n, peer);
                }
            }
            CoreCmd::RawNotify {
                pui,
                content_type,
                body,
            } => {
                let Some(call_id) = self.subscription_of(&pui) else {
                    return;
                };
                let peer = self.subs.get(&call_id).map(|s| s.peer);
                if let (Some(n), Some(peer)) = (
                    self.notify(&call_id, "active;expires=600", Some((content_type, body))),
                    peer,
                ) {
                    self.send_notify(&call_id, n, peer);
                }
            }
        }
    }
}

/// `(Call-ID, CSeq)` of an unanswered NOTIFY, borrowed: looks up `(Arc<str>, u32)` keys without
/// allocating (hashes as the owned tuple does).
#[derive(Hash)]
struct NotifyKey<'a>(&'a str, u32);

impl hashbrown::Equivalent<(Arc<str>, u32)> for NotifyKey<'_> {
    fn equivalent(&self, k: &(Arc<str>, u32)) -> bool {
        self.0 == &*k.0 && self.1 == k.1
    }
}

const CONTACT_IDS: [&str; 8] = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"];
const IMPLICIT_IDS: [&str; 8] = ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"];

/// The k-th implicit PUI of a user: `sip:alice@d` → `sip:alice-k@d`.
pub fn implicit_pui(pui: &str, k: usize) -> String {
    let mut s = String::with_capacity(pui.len() + 4);
    push_implicit_pui(&mut s, pui, k);
    s
}

/// [`implicit_pui`] appended to `s`.
fn push_implicit_pui(s: &mut String, pui: &str, k: usize) {
    let (u, d) = match pui.split_once('@') {
        Some((u, d)) => (u, Some(d)),
        None => (pui, None),
    };
    s.push_str(u);
    s.push('-');
    push_decimal(s, k as u64 + 1);
    if let Some(d) = d {
        s.push('@');
        s.push_str(d);
    }
}

/// The full-state document of `pui` and its implicit PUIs (each with the user's contacts), in
/// `doc` (cleared first).
fn full_state(
    doc: &mut String,
    version: u64,
    pui: &str,
    regs: &HashMap<String, Vec<(String, u32)>>,
    implicit: usize,
) {
    let contacts: &[(String, u32)] = regs.get(pui).map_or(&[], Vec::as_slice);
    let cs: Vec<DocContact<'_>> = contacts
        .iter()
        .enumerate()
        .map(|(i, (u, e))| {
            let id = CONTACT_IDS[i.min(7)];
            (id, "active", "registered", u.as_str(), Some(*e))
        })
        .collect();
    let state = if contacts.is_empty() {
        "terminated"
    } else {
        "active"
    };
    // The implicit PUIs' text, one after another in one buffer.
    let mut names = String::with_capacity(implicit * (pui.len() + 4));
    let ends: Vec<usize> = (0..implicit)
        .map(|k| {
            push_implicit_pui(&mut names, pui, k);
            names.len()
        })
        .collect();
    let mut rs = Vec::with_capacity(1 + implicit);
    rs.push(DocRegistration {
        aor: pui,
        id: "r0",
        state,
        contacts: &cs,
    });
    let mut start = 0;
    for (k, &end) in ends.iter().enumerate() {
        rs.push(DocRegistration {
            aor: &names[start..end],
            id: IMPLICIT_IDS[k.min(7)],
            state,
            contacts: &cs,
        });
        start = end;
    }
    doc.clear();
    render_into(doc, version, true, &rs);
}

/// Wait helper for tests: poll `f` until true or `wait` passes.
pub async fn wait_until(wait: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::UdpPeer;

    fn subscribe(to: SocketAddr, from: SocketAddr, cseq: u32) -> Vec<u8> {
        format!(
            "SUBSCRIBE sip:alice@ims.example.net SIP/2.0\r\n\
             Via: SIP/2.0/UDP {from};branch=z9hG4bKsub{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:pcscf@{from}>;tag=gw1\r\n\
             To: <sip:alice@ims.example.net>\r\n\
             Call-ID: sub-1@{from}\r\n\
             CSeq: {cseq} SUBSCRIBE\r\n\
             Contact: <sip:pcscf@{from}>\r\n\
             Event: reg\r\nExpires: 600000\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .replace(
            "sip:alice@ims.example.net SIP",
            &format!("sip:alice@{to} SIP"),
        )
        .into_bytes()
    }

    #[test]
    fn borrowed_notify_key_finds_the_owned_one() {
        let mut m: HashMap<(Arc<str>, u32), u8> = HashMap::new();
        m.insert((Arc::from("call-1"), 7), 1);
        assert_eq!(m.get(&NotifyKey("call-1", 7)), Some(&1));
        assert_eq!(m.get(&NotifyKey("call-1", 8)), None);
        assert_eq!(m.remove(&NotifyKey("call-1", 7)), Some(1));
    }

    #[tokio::test]
    async fn retransmitted_subscribe_gets_the_same_200_and_no_second_notify() {
        let core = ImsCore::start("127.0.0.1:0".parse().unwrap(), CoreConfig::default())
            .await
            .unwrap();
        let gw = UdpPeer::bind().await.unwrap();
        let req = subscribe(core.addr, gw.addr, 1);
        let wait = Duration::from_secs(2);
        let mut got = Vec::new();
        gw.send(core.addr, &req).await.unwrap();
        for _ in 0..2 {
            got.push(gw.recv(wait).await.unwrap().0);
        }
        gw.send(core.addr, &req).await.unwrap(); // Timer E fired at the gateway
        got.push(gw.recv(wait).await.unwrap().0);
        let oks: Vec<&Message> = got.iter().filter(|m| m.status() == Some(200)).collect();
        let notifies = got.iter().filter(|m| m.method() == Some(Method::Notify));
        assert_eq!(oks.len(), 2, "one 200 per SUBSCRIBE sent");
        assert_eq!(
            oks[0].raw(),
            oks[1].raw(),
            "the retransmission gets the same 200"
        );
        assert_eq!(notifies.count(), 1);
        assert!(gw
            .recv(Duration::from_millis(200))
            .await
            .is_none_or(|(m, _)| {
                m.method() == Some(Method::Notify) && m.cseq().seq == 1 // the NOTIFY's own Timer E
            }));
        assert_eq!(CoreStats::get(&core.stats.subscribes_initial), 1);
        assert_eq!(CoreStats::get(&core.stats.notifies_sent), 1);
        // A refresh (new CSeq) is a new request: a new NOTIFY.
        gw.send(core.addr, &subscribe(core.addr, gw.addr, 2))
            .await
            .unwrap();
        let mut methods = Vec::new();
        for _ in 0..2 {
            let m = gw.recv(wait).await.unwrap().0;
            methods.push((m.status(), m.method()));
        }
        assert!(methods.contains(&(None, Some(Method::Notify))));
        assert_eq!(CoreStats::get(&core.stats.notifies_sent), 2);
    }

    #[tokio::test]
    async fn over_tcp_the_notify_comes_on_the_connection_and_is_not_sent_again() {
        let cfg = CoreConfig {
            tcp: true,
            ..CoreConfig::default()
        };
        let core = ImsCore::start("127.0.0.1:0".parse().unwrap(), cfg)
            .await
            .unwrap();
        let mut gw = crate::peer::TcpPeer::connect(core.addr).await.unwrap();
        let req = String::from_utf8(subscribe(core.addr, gw.local, 1))
            .unwrap()
            .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
        gw.send(req.as_bytes()).await.unwrap();
        let wait = Duration::from_secs(2);
        let ok = gw.recv(wait).await.expect("200 on the connection");
        assert_eq!(ok.status(), Some(200));
        let contact = ok.header(regevent_proto::sip::HeaderName::Contact);
        assert!(
            contact.is_some_and(|c| c.ends_with(";transport=tcp>")),
            "{contact:?}"
        );
        let n = gw.recv(wait).await.expect("NOTIFY on the connection");
        assert_eq!(n.method(), Some(Method::Notify));
        assert_eq!(n.vias().unwrap()[0].transport, "TCP");
        // Unanswered past UDP's first Timer E (500 ms): nothing is sent again over TCP.
        assert!(gw.recv(Duration::from_millis(800)).await.is_none());
        let answer = writer::response(&n, 200, "OK", None, &[]);
        gw.send(&answer).await.unwrap();
        assert!(
            wait_until(wait, || CoreStats::get(&core.stats.subscriptions_notified)
                == 1)
            .await
        );
        assert_eq!(CoreStats::get(&core.stats.notify_retransmissions), 0);
        assert_eq!(CoreStats::get(&core.stats.tcp_messages), 2);
    }
}
