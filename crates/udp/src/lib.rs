//! Batched UDP for the gateway and its lab: `recvmmsg(2)` and `sendmmsg(2)` through `nix`'s safe wrappers, driven by tokio's
//! readiness. One system call takes every datagram queued on a socket (up to the batch size) and
//! one sends every datagram the gateway produced in reply, instead of one call per datagram plus a
//! final `EAGAIN` read.
//!
//! Readiness: a batch that comes back smaller than the buffer has drained the socket, so the
//! readiness flag is cleared without the extra `EAGAIN` read (tokio clears it only when the closure
//! of `try_io` says `WouldBlock`; it keeps it if a newer edge arrived meanwhile, and epoll is
//! edge-triggered, so a datagram that lands after the call wakes the task again).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// A gateway UDP socket, registered with the runtime for **read** readiness only. Sends are
/// non-blocking `sendmmsg` calls, and what would block goes to the [`SendThread`], which waits in
/// `poll(2)`; so the socket never needs write readiness. Registering it would cost a wake-up per
/// send: on loopback every sent datagram is released at once, and the kernel reports the freed
/// send space to epoll as a write event, which returned `epoll_wait` once more per turn.
pub type Watched = tokio::io::unix::AsyncFd<std::net::UdpSocket>;

/// What polling a [`Watched`] socket for reading gives.
pub type ReadyGuard<'a> = tokio::io::unix::AsyncFdReadyGuard<'a, std::net::UdpSocket>;

/// Watch a non-blocking socket for read readiness only (call inside a runtime).
///
/// `with_interest` is deprecated in favour of an `unsafe` constructor whose contract is that the
/// descriptor stays open and the same for the `AsyncFd`'s life. A `std::net::UdpSocket` owned by
/// the `AsyncFd` keeps that contract by construction, and the crate forbids `unsafe`, so the
/// safe (deprecated) form is used (docs/decisions.md).
#[allow(deprecated)]
pub fn watch(sock: std::net::UdpSocket) -> io::Result<Watched> {
    Watched::with_interest(sock, Interest::READABLE)
}

/// One received datagram: its bytes are `buf.slot(i)[..len]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub peer: SocketAddr,
    /// Longer than the slot: the tail was cut off by the kernel.
    pub truncated: bool,
}

/// Receive buffers for one batch: `slots` buffers of `slot_len` bytes each.
#[derive(Debug)]
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    pub got: Vec<Received>,
}

impl RecvBatch {
    pub fn new(slots: usize, slot_len: usize) -> Self {
        RecvBatch {
            bufs: (0..slots.max(1))
                .map(|_| vec![0u8; slot_len.max(1)])
                .collect(),
            got: Vec::with_capacity(slots),
        }
    }

    /// The bytes of the `i`th datagram of the last batch.
    pub fn datagram(&self, i: usize) -> &[u8] {
        let r = &self.got[i];
        &self.bufs[i][..r.len.min(self.bufs[i].len())]
    }

    /// Read every queued datagram (up to the number of slots) without blocking. `Ok(0)`: none
    /// was queued (`WouldBlock` is folded into it, and readiness is cleared).
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        self.got.clear();
        let fd = sock.as_raw_fd();
        let slots = self.bufs.len();
        let (bufs, got) = (&mut self.bufs, &mut self.got);
        let r = sock.try_io(Interest::READABLE, || recv_or_drained(fd, bufs, got, slots));
        self.outcome(r)
    }

    /// [`RecvBatch::recv`] for a socket watched for read readiness only ([`watch`]), given the
    /// readiness its poll returned. A short batch clears that readiness.
    pub fn recv_ready(&mut self, ready: &mut ReadyGuard<'_>) -> io::Result<usize> {
        self.got.clear();
        let fd = ready.get_inner().as_raw_fd();
        let slots = self.bufs.len();
        let (bufs, got) = (&mut self.bufs, &mut self.got);
        let r = match ready.try_io(|_| recv_or_drained(fd, bufs, got, slots)) {
            Ok(r) => r,
            Err(_cleared) => Err(io::ErrorKind::WouldBlock.into()),
        };
        self.outcome(r)
    }

    /// The batch's count: `WouldBlock` (drained, readiness cleared) is what was read, and an
    /// error after a partial batch is logged, not lost with the datagrams before it.
    fn outcome(&self, r: io::Result<usize>) -> io::Result<usize> {
        match r {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(self.got.len()),
            Err(e) if !self.got.is_empty() => {
                tracing::debug!(error = %e, "UDP receive error after a partial batch");
                Ok(self.got.len())
            }
            Err(e) => Err(e),
        }
    }
}

/// One `recvmmsg`; a batch shorter than the slots has drained the socket and reports
/// `WouldBlock`, so the runtime clears readiness now instead of after an `EAGAIN` read.
fn recv_or_drained(
    fd: RawFd,
    bufs: &mut [Vec<u8>],
    got: &mut Vec<Received>,
    slots: usize,
) -> io::Result<usize> {
    let n = recv_into(fd, bufs, got)?;
    if n < slots {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Ok(n)
}

fn recv_into(fd: RawFd, bufs: &mut [Vec<u8>], got: &mut Vec<Received>) -> io::Result<usize> {
    let mut hdrs = MultiHeaders::<SockaddrStorage>::preallocate(bufs.len(), None);
    let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
        .iter_mut()
        .map(|b| [IoSliceMut::new(b.as_mut_slice())])
        .collect();
    let res = recvmmsg(fd, &mut hdrs, iovs.iter_mut(), MsgFlags::MSG_DONTWAIT, None)
        .map_err(io::Error::from)?;
    for m in res {
        let Some(peer) = m.address.as_ref().and_then(to_socket_addr) else {
            // Not an IP peer (cannot happen on an IP socket); keep indexes aligned anyway.
            got.push(Received {
                len: 0,
                peer: SocketAddr::from(([0, 0, 0, 0], 0)),
                truncated: true,
            });
            continue;
        };
        got.push(Received {
            len: m.bytes,
            peer,
            truncated: m.flags.contains(MsgFlags::MSG_TRUNC),
        });
    }
    Ok(got.len())
}

fn to_socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// Largest number of datagrams handed to one `sendmmsg`.
pub const SEND_BATCH: usize = 64;

/// Send `msgs` in order with as few `sendmmsg` calls as possible. Returns how many were sent
/// (or failed for good and were counted in `errors`); the rest would block and are the caller's
/// to queue.
pub fn send_all<D: Datagram>(sock: &UdpSocket, msgs: &[D], errors: &mut usize) -> usize {
    let fd = sock.as_raw_fd();
    let mut done = 0;
    let _ = sock.try_io(Interest::WRITABLE, || {
        let full;
        (done, full) = send_chunks(fd, msgs, errors);
        if full {
            // Let tokio clear writability; the rest is queued by the caller.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(())
    });
    done
}

/// The `sendmmsg` loop under [`send_all`], the send thread and sockets no runtime watches: chunks of [`SEND_BATCH`] until
/// all are done or the socket is full. A datagram the kernel refuses (e.g. a peer's ICMP error
/// reported on this socket) is skipped and counted so the ones behind it still go. Returns
/// (done, the socket was full).
pub fn send_chunks<D: Datagram>(fd: RawFd, msgs: &[D], errors: &mut usize) -> (usize, bool) {
    let mut done = 0;
    while done < msgs.len() {
        let chunk = &msgs[done..msgs.len().min(done + SEND_BATCH)];
        match send_chunk(fd, chunk) {
            Ok(0) => return (done, true),
            Ok(n) => done += n.min(chunk.len()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (done, true),
            Err(e) => {
                tracing::debug!(peer = ?chunk[0].to(), error = %e, "UDP send failed");
                *errors += 1;
                done += 1;
            }
        }
    }
    (done, false)
}

/// Send and empty `out`, waiting for socket space instead of handing the rest to a task: for
/// peers whose own loop may wait (the lab's UEs and core). Send errors are dropped datagrams.
pub async fn send_all_wait<D: Datagram>(sock: &UdpSocket, out: &mut Vec<D>) {
    let mut errors = 0;
    let sent = send_all(sock, out, &mut errors);
    for d in &out[sent..] {
        let _ = match d.to() {
            Some(to) => sock.send_to(d.bytes(), to).await,
            None => sock.send(d.bytes()).await,
        };
    }
    out.clear();
}

/// A turn's output of at least this many datagrams goes to the send thread.
pub const OFFLOAD_AT: usize = 8;

/// Datagrams for one socket (by index into the thread's sockets), in order.
type Batch = (usize, Vec<(SocketAddr, Bytes)>);

/// A thread that sends UDP datagrams for a task, so that under load the task's thread spends
/// its time on SIP and the kernel's send path (on loopback, the receiver's delivery too) runs on
/// the other core. Order per socket is kept: the task sends inline only while nothing handed
/// over is still in flight ([`SendThread::busy`]). Dropping the handle sends what is queued and
/// waits for the thread to end, so the sockets it held are closed when the drop returns (a
/// restarted gateway can bind the same addresses at once).
#[derive(Debug)]
pub struct SendThread {
    tx: Option<std::sync::mpsc::Sender<Batch>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Batches handed over and not yet sent.
    pending: Arc<AtomicUsize>,
}

impl SendThread {
    /// Start the thread for these sockets. After each batch `on_errors` is told how many
    /// datagrams the kernel refused for good (possibly 0; counted as drops by the caller).
    pub fn start<S: AsFd + Send + Sync + 'static>(
        socks: Vec<Arc<S>>,
        on_errors: fn(usize),
    ) -> io::Result<SendThread> {
        let (tx, rx) = std::sync::mpsc::channel::<Batch>();
        let pending = Arc::new(AtomicUsize::new(0));
        let left = pending.clone();
        let thread = std::thread::Builder::new()
            .name("udp-send".into())
            .spawn(move || {
                while let Ok((i, msgs)) = rx.recv() {
                    on_errors(send_blocking(&socks[i], &msgs));
                    left.fetch_sub(1, Ordering::Release);
                }
            })?;
        Ok(SendThread {
            tx: Some(tx),
            thread: Some(thread),
            pending,
        })
    }

    /// Something handed over has not been sent yet: send nothing inline now.
    pub fn busy(&self) -> bool {
        self.pending.load(Ordering::Acquire) > 0
    }

    /// Queue `msgs` for socket `i`. Gives them back if the thread is gone.
    pub fn hand_over(
        &self,
        i: usize,
        msgs: Vec<(SocketAddr, Bytes)>,
    ) -> Result<(), Vec<(SocketAddr, Bytes)>> {
        let Some(tx) = &self.tx else {
            return Err(msgs);
        };
        self.pending.fetch_add(1, Ordering::AcqRel);
        tx.send((i, msgs)).map_err(|e| {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            e.0 .1
        })
    }
}

impl Drop for SendThread {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop once the queue is sent.
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Send every datagram, waiting (in `poll(2)`, off any runtime) while the socket is full.
/// Returns how many the kernel refused for good.
fn send_blocking(sock: &impl AsFd, msgs: &[(SocketAddr, Bytes)]) -> usize {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let (fd, mut done, mut errors) = (sock.as_fd().as_raw_fd(), 0, 0);
    while done < msgs.len() {
        let (n, full) = send_chunks(fd, &msgs[done..], &mut errors);
        done += n;
        if full {
            let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLOUT)];
            let _ = poll(&mut fds, PollTimeout::from(100u8));
        }
    }
    errors
}

/// A datagram for [`send_chunks`]: its bytes and, unless the socket is connected, where to.
pub trait Datagram {
    fn to(&self) -> Option<SocketAddr>;
    fn bytes(&self) -> &[u8];
}

impl Datagram for (SocketAddr, Bytes) {
    fn to(&self) -> Option<SocketAddr> {
        Some(self.0)
    }
    fn bytes(&self) -> &[u8] {
        &self.1
    }
}

/// For a connected socket (`connect(2)`): no address per datagram, so the kernel uses the
/// socket's cached route instead of looking one up for each.
impl Datagram for Bytes {
    fn to(&self) -> Option<SocketAddr> {
        None
    }
    fn bytes(&self) -> &[u8] {
        self
    }
}

fn send_chunk<D: Datagram>(fd: RawFd, chunk: &[D]) -> io::Result<usize> {
    let mut hdrs = MultiHeaders::<SockaddrStorage>::preallocate(chunk.len(), None);
    let iovs: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|d| [IoSlice::new(d.bytes())]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = chunk
        .iter()
        .map(|d| d.to().map(SockaddrStorage::from))
        .collect();
    let res = sendmmsg(fd, &mut hdrs, &iovs, &addrs, [], MsgFlags::MSG_DONTWAIT)
        .map_err(io::Error::from)?;
    Ok(res.count())
}

/// Socket buffer size asked for on UDP listeners (the kernel caps it at `net.core.rmem_max`).
const UDP_BUFFER: usize = 8 << 20;

/// A non-blocking UDP socket with large kernel buffers (8 MiB asked, capped by
/// `net.core.rmem_max`/`wmem_max`), so bursts are queued, not dropped.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    UdpSocket::from_std(bind_udp_std(addr)?)
}

/// [`bind_udp`] without a runtime: for loops that poll their sockets themselves.
pub fn bind_udp_std(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    let _ = s.set_recv_buffer_size(UDP_BUFFER);
    let _ = s.set_send_buffer_size(UDP_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// If the kernel gave `sock` a smaller receive buffer than [`bind_udp`] asks for (it caps the
/// request at `net.core.rmem_max`, 4 MiB or less on most distributions): the size it gave and the
/// size asked, in bytes. Linux reports twice the size it was asked (the rest is its own
/// bookkeeping), so the comparison is made on that scale.
pub fn recv_buffer_shortfall(sock: &std::net::UdpSocket) -> Option<(usize, usize)> {
    let got = socket2::SockRef::from(sock).recv_buffer_size().ok()? / 2;
    (got < UDP_BUFFER).then_some((got, UDP_BUFFER))
}

/// Raise this process's open-file limit to its hard limit: each TCP connection is a file
/// descriptor, and the usual soft limit (1,024) would cap a gateway (or the load generator's
/// per-UE connections) far below what the machine allows. Returns the limit now in force.
pub fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batch_round_trip_keeps_order_peers_and_truncation() {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let msgs: Vec<(SocketAddr, Bytes)> = (0..100)
            .map(|i| (ba, Bytes::from(format!("datagram {i}").repeat(1 + i % 3))))
            .chain(std::iter::once((ba, Bytes::from(vec![b'x'; 300]))))
            .collect();
        let mut errors = 0;
        a.writable().await.unwrap(); // tokio learns writability from the first poll
        assert_eq!(send_all(&a, &msgs, &mut errors), msgs.len());
        assert_eq!(errors, 0);
        let mut batch = RecvBatch::new(16, 256);
        let mut seen = Vec::new();
        while seen.len() < msgs.len() {
            b.readable().await.unwrap();
            let n = batch.recv(&b).unwrap();
            assert!(n <= 16);
            for i in 0..n {
                assert_eq!(batch.got[i].peer, aa);
                seen.push((batch.datagram(i).to_vec(), batch.got[i].truncated));
            }
        }
        for (i, (bytes, truncated)) in seen.iter().enumerate().take(100) {
            assert_eq!(bytes.as_slice(), &msgs[i].1[..], "datagram {i} in order");
            assert!(!truncated);
        }
        assert_eq!(seen[100].0.len(), 256);
        assert!(
            seen[100].1,
            "a 300-byte datagram in a 256-byte slot is marked truncated"
        );
        // Drained: nothing more, and no error.
        assert_eq!(batch.recv(&b).unwrap(), 0);
    }

    /// One `recvmmsg` on a non-blocking socket no runtime watches; `0` when none was queued.
    fn recv_fd(rb: &mut RecvBatch, fd: RawFd) -> io::Result<usize> {
        rb.got.clear();
        match recv_into(fd, &mut rb.bufs, &mut rb.got) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            r => r,
        }
    }

    #[test]
    fn the_receive_buffer_shortfall_is_what_the_kernel_reports() {
        let s = bind_udp_std("127.0.0.1:0".parse().unwrap()).unwrap();
        let reported = socket2::SockRef::from(&s).recv_buffer_size().unwrap() / 2;
        match recv_buffer_shortfall(&s) {
            Some((got, asked)) => {
                assert_eq!(asked, UDP_BUFFER);
                assert_eq!(got, reported);
                assert!(got < asked);
            }
            None => assert!(reported >= UDP_BUFFER, "{reported}"),
        }
    }

    #[test]
    fn dropping_the_send_thread_sends_what_is_queued_and_releases_the_socket() {
        let a = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = b.local_addr().unwrap();
        let st = SendThread::start(vec![a.clone()], |_| {}).unwrap();
        assert_eq!(Arc::strong_count(&a), 2, "the thread holds the socket");
        st.hand_over(0, vec![(to, Bytes::from_static(b"last"))])
            .unwrap();
        drop(st);
        // The drop returned only after the thread ended: its socket handle is gone (so the
        // address is free as soon as the owner lets go) and the queued datagram went out.
        assert_eq!(Arc::strong_count(&a), 1);
        let mut buf = [0u8; 16];
        b.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let (n, _) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"last");
    }

    #[test]
    fn fd_level_send_and_receive_without_a_runtime() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_nonblocking(true).unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut rb = RecvBatch::new(4, 64);
        assert_eq!(
            recv_fd(&mut rb, b.as_raw_fd()).unwrap(),
            0,
            "nothing queued"
        );
        let msgs: Vec<(SocketAddr, Bytes)> =
            (0..6).map(|i| (ba, Bytes::from(format!("d{i}")))).collect();
        let mut errors = 0;
        assert_eq!(send_chunks(a.as_raw_fd(), &msgs, &mut errors), (6, false));
        assert_eq!(errors, 0);
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen.len() < 6 && std::time::Instant::now() < deadline {
            let n = recv_fd(&mut rb, b.as_raw_fd()).unwrap();
            assert!(n <= 4, "at most one slot per datagram");
            for i in 0..n {
                assert_eq!(rb.got[i].peer, aa);
                seen.push(String::from_utf8(rb.datagram(i).to_vec()).unwrap());
            }
        }
        assert_eq!(seen, ["d0", "d1", "d2", "d3", "d4", "d5"]);
        assert_eq!(recv_fd(&mut rb, b.as_raw_fd()).unwrap(), 0, "drained");
    }

    #[tokio::test]
    async fn send_thread_keeps_order_and_reports_idle_when_done() {
        let a = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let ba = b.local_addr().unwrap();
        let t = SendThread::start(vec![a.clone()], |_| {}).unwrap();
        assert!(!t.busy());
        let mut sent = 0;
        for batch in 0..5 {
            let msgs: Vec<(SocketAddr, Bytes)> = (0..(batch * 10 + 1))
                .map(|k| (ba, Bytes::from(format!("d{}", sent + k))))
                .collect();
            sent += msgs.len();
            t.hand_over(0, msgs).unwrap();
        }
        let mut rb = RecvBatch::new(16, 64);
        let mut seen = Vec::new();
        while seen.len() < sent {
            b.readable().await.unwrap();
            for i in 0..rb.recv(&b).unwrap() {
                seen.push(String::from_utf8(rb.datagram(i).to_vec()).unwrap());
            }
        }
        let want: Vec<String> = (0..sent).map(|k| format!("d{k}")).collect();
        assert_eq!(seen, want, "batches and datagrams in the order handed over");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while t.busy() && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(!t.busy(), "nothing in flight once everything is sent");
    }
}
