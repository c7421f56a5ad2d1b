//! A swarm of emulated UEs on one UDP socket: each registers (paced at a target rate),
//! re-registers at half its expiry, and deregisters when its lifetime ends. Measures
//! REGISTER→final-response latency.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::peer::response_key;
use crate::transport::udp::{send_all_wait, RecvBatch};

#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// The gateway's UDP listener.
    pub gateway: SocketAddr,
    /// Local address to bind (`127.0.0.1:0`).
    pub local: SocketAddr,
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
}

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            gateway: SocketAddr::from(([127, 0, 0, 1], 5060)),
            local: SocketAddr::from(([127, 0, 0, 1], 0)),
            users: 10,
            first_user: 0,
            domain: "ims.example.net".into(),
            expires: 600,
            rate: 100.0,
            lifetime: None,
            reregister: true,
        }
    }
}

/// What the swarm saw.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);

#[derive(Debug, Default)]
pub struct SwarmStats {
    pub registers_sent: AtomicU64,
    pub initial_ok: AtomicU64,
    pub reregister_ok: AtomicU64,
    pub deregister_ok: AtomicU64,
    pub failures: AtomicU64,
    pub timeouts: AtomicU64,
    /// REGISTERs sent again by Timer E (not in `registers_sent`).
    pub retransmissions: AtomicU64,
    /// REGISTER → final response, microseconds.
    pub latencies_us: Mutex<Vec<u32>>,
    pub done: AtomicBool,
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
    Retransmit,
}

#[derive(Debug)]
struct Ue {
    cseq: u32,
    registered: bool,
    started: Option<Instant>,
    pending: Option<(Instant, Action, u32)>,
    tries: u32,
}

/// Run the swarm until every UE is done (lifetime) or `stop` is set. Returns when finished.
pub async fn run(
    cfg: SwarmConfig,
    stats: Arc<SwarmStats>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let sock = crate::transport::bind_udp(cfg.local)?;
    let local = sock.local_addr()?;
    let start = Instant::now();
    let mut ues: Vec<Ue> = (0..cfg.users)
        .map(|_| Ue {
            cseq: 0,
            registered: false,
            started: None,
            pending: None,
            tries: 0,
        })
        .collect();
    let mut heap: BinaryHeap<Reverse<(Instant, usize, Action)>> = BinaryHeap::new();
    let step = if cfg.rate > 0.0 {
        Duration::from_secs_f64(1.0 / cfg.rate)
    } else {
        Duration::ZERO
    };
    for i in 0..cfg.users {
        heap.push(Reverse((start + step * i as u32, i, Action::Register)));
    }
    let mut rb = RecvBatch::new(64, 8192);
    let mut out: Vec<(SocketAddr, Bytes)> = Vec::new();
    let timeout = Duration::from_secs(32);
    let mut active = cfg.users;
    while active > 0 && !stop.load(Relaxed) {
        let now = Instant::now();
        // Send everything due.
        while let Some(Reverse((t, i, a))) = heap.peek().copied() {
            if t > now {
                break;
            }
            heap.pop();
            let ue = &mut ues[i];
            let user = cfg.first_user + i;
            if a == Action::Retransmit {
                let Some((sent, action, cseq)) = ue.pending else {
                    continue;
                };
                if now.duration_since(sent) >= timeout {
                    stats.timeouts.fetch_add(1, Relaxed);
                    ue.pending = None;
                    active -= 1;
                    continue;
                }
                ue.tries += 1;
                stats.retransmissions.fetch_add(1, Relaxed);
                let exp = if action == Action::Deregister {
                    0
                } else {
                    cfg.expires
                };
                out.push((cfg.gateway, register(&cfg, local, user, cseq, exp).into()));
                let next = (T1 * 2u32.saturating_pow(ue.tries)).min(T2);
                heap.push(Reverse((now + next, i, Action::Retransmit)));
                continue;
            }
            if let Some((sent, _, _)) = ue.pending {
                if now.duration_since(sent) < timeout {
                    heap.push(Reverse((now + Duration::from_millis(100), i, a)));
                    continue;
                }
                stats.timeouts.fetch_add(1, Relaxed);
            }
            ue.cseq += 1;
            ue.tries = 0;
            let exp = if a == Action::Deregister {
                0
            } else {
                cfg.expires
            };
            let msg = register(&cfg, local, user, ue.cseq, exp);
            ue.pending = Some((now, a, ue.cseq));
            heap.push(Reverse((now + T1, i, Action::Retransmit)));
            ue.started.get_or_insert(now);
            stats.registers_sent.fetch_add(1, Relaxed);
            out.push((cfg.gateway, msg.into()));
        }
        send_all_wait(&sock, &mut out).await;
        let next = heap
            .peek()
            .map(|Reverse((t, _, _))| *t)
            .unwrap_or(now + Duration::from_millis(200));
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        if !matches!(
            tokio::time::timeout(wait, sock.readable()).await,
            Ok(Ok(()))
        ) {
            continue;
        }
        let n = rb.recv(&sock).unwrap_or(0);
        for k in 0..n {
            let Some(r) = response_key(rb.datagram(k)) else {
                continue;
            };
            let status = r.status;
            if status < 200 {
                continue;
            }
            let Some(i) = ue_index(&cfg, local, r.call_id) else {
                continue;
            };
            let ue = &mut ues[i];
            let Some((sent, action, cseq)) = ue.pending else {
                continue;
            };
            if r.cseq != cseq {
                continue;
            }
            ue.pending = None;
            let now = Instant::now();
            if let Ok(mut l) = stats.latencies_us.lock() {
                l.push(
                    now.duration_since(sent)
                        .as_micros()
                        .min(u128::from(u32::MAX)) as u32,
                );
            }
            if !(200..300).contains(&status) {
                stats.failures.fetch_add(1, Relaxed);
                active -= 1;
                continue;
            }
            match action {
                Action::Deregister => {
                    stats.deregister_ok.fetch_add(1, Relaxed);
                    ue.registered = false;
                    active -= 1;
                }
                Action::Register | Action::Retransmit => {
                    if ue.registered {
                        stats.reregister_ok.fetch_add(1, Relaxed);
                    } else {
                        stats.initial_ok.fetch_add(1, Relaxed);
                    }
                    ue.registered = true;
                    let half = Duration::from_secs(u64::from(cfg.expires) / 2)
                        .max(Duration::from_millis(500));
                    let started = ue.started.unwrap_or(now);
                    match cfg.lifetime {
                        Some(life) if now + half >= started + life => {
                            heap.push(Reverse((started + life, i, Action::Deregister)))
                        }
                        _ if cfg.reregister => {
                            heap.push(Reverse((now + half, i, Action::Register)))
                        }
                        _ => active -= 1,
                    }
                }
            }
        }
    }
    stats.done.store(true, Relaxed);
    Ok(())
}

/// The index in the swarm of the UE whose Call-ID this is (`ue{user}-{local port}`).
fn ue_index(cfg: &SwarmConfig, local: SocketAddr, call_id: &str) -> Option<usize> {
    let (user, port) = call_id.strip_prefix("ue")?.split_once('-')?;
    let i = user.parse::<usize>().ok()?.checked_sub(cfg.first_user)?;
    (port.parse() == Ok(local.port()) && i < cfg.users).then_some(i)
}

/// A UE's REGISTER; its Call-ID is `ue{user}-{local port}`.
pub fn register(
    cfg: &SwarmConfig,
    local: SocketAddr,
    user: usize,
    cseq: u32,
    expires: u32,
) -> Vec<u8> {
    let mut s = String::with_capacity(640);
    let (d, port) = (&cfg.domain, local.port());
    let _ = write!(
        s,
        "REGISTER sip:{d} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bKue{user}x{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:ue{user}@{d}>;tag=t{user}\r\n\
         To: <sip:ue{user}@{d}>\r\n\
         Call-ID: ue{user}-{port}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:ue{user}@{local}>;expires={expires};+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-{user:012}>\";reg-id=1\r\n\
         Supported: path, gruu, outbound\r\n\
         User-Agent: regevent-gw-lab\r\n\
         Content-Length: 0\r\n\r\n"
    );
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_id_maps_back_to_the_ue() {
        let cfg = SwarmConfig {
            first_user: 100,
            users: 10,
            ..SwarmConfig::default()
        };
        let local: SocketAddr = "127.0.1.1:4000".parse().unwrap();
        let reg = register(&cfg, local, 105, 1, 600);
        let m = crate::sip::Message::parse(reg.into(), &crate::sip::Limits::default()).unwrap();
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
}
