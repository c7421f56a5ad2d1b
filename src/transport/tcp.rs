//! TCP: accept, frame by Content-Length ([`StreamFramer`] over `sip::framer`), one writer per
//! connection; the gateway task learns connections through `Event::TcpOpen`/`TcpClosed`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::Event;
use crate::core::Inbound;
use crate::names;
use crate::sip::{Limits, StreamFramer, Transport};

/// Bytes a connection we accepted (a UE's, or an access SBC's carrying many UEs) may have
/// waiting for its writer before further messages to it are dropped.
pub(super) const ACCEPTED_QUEUE: usize = 4 << 20;
/// The same for a connection we opened: toward the core one connection carries every
/// REGISTER, SUBSCRIBE and NOTIFY answer. At 15,000 registrations/s that is ≈ 60 MB/s, so a
/// stall of one turn (tens of ms) queues megabytes. A bound of 1,024 messages lost 171 messages
/// in one run in six at that rate.
pub(super) const OPENED_QUEUE: usize = 64 << 20;

/// The gateway's end of a connection's write queue. It is bounded by the bytes waiting, not by
/// their number: the gateway thread never waits for a connection, so what does not fit is
/// dropped (and counted), and the bound is what a peer that stops reading may cost.
#[derive(Debug, Clone)]
pub struct ConnTx {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
    cap: usize,
}

/// The writer's end of the queue.
#[derive(Debug)]
pub(super) struct ConnRx {
    rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// Why [`ConnTx::try_send`] did not queue a message.
#[derive(Debug)]
pub(super) enum QueueError {
    /// `cap` bytes are already waiting.
    Full,
    /// The connection's writer is gone; the message is handed back.
    Closed(Bytes),
}

/// A write queue holding at most `cap` bytes.
pub(super) fn write_queue(cap: usize) -> (ConnTx, ConnRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let rx = ConnRx {
        rx,
        queued: queued.clone(),
    };
    (ConnTx { tx, queued, cap }, rx)
}

/// The write queue of a connection the gateway opens, holding its first message.
pub(super) fn opened_queue(first: Bytes) -> (ConnTx, ConnRx) {
    let (tx, rx) = write_queue(OPENED_QUEUE);
    // An empty queue of 64 MiB takes any message the gateway builds.
    let _ = tx.try_send(first);
    (tx, rx)
}

impl ConnTx {
    pub(super) fn try_send(&self, b: Bytes) -> Result<(), QueueError> {
        if self.tx.is_closed() {
            return Err(QueueError::Closed(b));
        }
        let n = b.len();
        // One sender (the gateway thread) adds; the writer only takes away, so the check can
        // only be pessimistic.
        if self.queued.load(Relaxed) + n > self.cap {
            return Err(QueueError::Full);
        }
        self.queued.fetch_add(n, Relaxed);
        self.tx.send(b).map_err(|e| {
            self.queued.fetch_sub(n, Relaxed);
            QueueError::Closed(e.0)
        })
    }
}

/// Bytes asked for per read, into the thread's one read buffer.
const READ_CHUNK: usize = 64 * 1024;

thread_local! {
    /// Every connection on this thread reads into this buffer: a read is framed at once and
    /// its messages copied out, so a connection keeps no read buffer of its own. With a
    /// connection per UE, a buffer each (8 KiB with tokio-util's `FramedRead`) was most of
    /// the gateway's memory per connection.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_CHUNK]);
}

/// A connection whose batches stay under this size gives its write buffer back when idle;
/// a busier one (toward the core) keeps it, so as not to allocate it again every turn.
const SMALL_WRITE: usize = 16 * 1024;

/// Messages taken from a connection's queue per write.
const WRITE_BATCH: usize = 256;

/// Write what is queued, until the queue closes or a write fails. What was queued by the time
/// this task runs goes out in one write (one turn's messages to the core, typically).
async fn write_loop(w: &mut (impl AsyncWrite + Unpin), q: &mut ConnRx) {
    let mut taken = Vec::new();
    let mut buf = Vec::new();
    while q.rx.recv_many(&mut taken, WRITE_BATCH).await > 0 {
        // One message (a UE's connection, usually) is written as it is: no copy, and the
        // connection keeps no write buffer.
        let out: &[u8] = if let [one] = taken.as_slice() {
            one
        } else {
            buf.clear();
            for m in &taken {
                buf.extend_from_slice(m);
            }
            &buf
        };
        q.queued.fetch_sub(out.len(), Relaxed);
        let failed = w.write_all(out).await.is_err();
        taken.clear();
        if failed {
            break;
        }
        if q.rx.is_empty() && buf.capacity() <= SMALL_WRITE {
            // Idle: an idle connection (a UE's, between its registrations) holds no buffers.
            taken = Vec::new();
            buf = Vec::new();
        }
    }
}

pub(super) async fn accept_loop(
    l: TcpListener,
    listener: u16,
    tx: mpsc::Sender<Event>,
    max: usize,
) {
    loop {
        match l.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let (wtx, wrx) = write_queue(ACCEPTED_QUEUE);
                if tx.send(Event::TcpOpen(peer, wtx)).await.is_err() {
                    return;
                }
                tokio::spawn(run_conn(stream, peer, listener, wrx, tx.clone(), max));
            }
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Connect out and send the queued messages (the queue is already in the gateway's table).
pub(super) async fn connect_with_queue(
    addr: SocketAddr,
    rx: ConnRx,
    tx: mpsc::Sender<Event>,
    max: usize,
) {
    match TcpStream::connect(addr).await {
        Ok(stream) => {
            let _ = stream.set_nodelay(true);
            run_conn(stream, addr, 0, rx, tx, max).await;
        }
        Err(e) => {
            metrics::counter!(names::SIP_DROPS, "reason" => "tcp_connect").increment(1);
            tracing::debug!(%addr, error = %e, "TCP connect failed");
            let _ = tx.send(Event::TcpClosed(addr)).await;
        }
    }
}

/// Connect to a resolved name and send one message (registers the connection for later use).
pub(super) async fn connect_and_send(
    addr: SocketAddr,
    bytes: Bytes,
    tx: mpsc::Sender<Event>,
    max: usize,
) {
    let (wtx, wrx) = opened_queue(bytes);
    if tx.send(Event::TcpOpen(addr, wtx)).await.is_ok() {
        connect_with_queue(addr, wrx, tx, max).await;
    }
}

async fn run_conn(
    stream: TcpStream,
    peer: SocketAddr,
    listener: u16,
    mut wrx: ConnRx,
    tx: mpsc::Sender<Event>,
    max: usize,
) {
    let (r, mut w) = stream.into_split();
    let limits = Limits {
        max_message: max,
        ..Limits::default()
    };
    let write_task = write_loop(&mut w, &mut wrx);
    let read_task = async {
        let mut framer = StreamFramer::new(limits);
        let mut frames = Vec::new();
        loop {
            if r.readable().await.is_err() {
                break;
            }
            let read = READ_BUF.with_borrow_mut(|buf| match r.try_read(buf) {
                Ok(0) => Err(None),
                Ok(n) => framer.push(&buf[..n], &mut frames).map_err(Some),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
                Err(_) => Err(None),
            });
            // Oversize messages are answered 513 from their heads; the stream goes on.
            for bytes in framer.take_oversize() {
                let inb = Inbound {
                    transport: Transport::Tcp,
                    listener,
                    peer,
                    bytes,
                };
                if tx.send(Event::Oversize(inb)).await.is_err() {
                    return;
                }
            }
            // The messages before a framing error are still delivered.
            for bytes in frames.drain(..) {
                let inb = Inbound {
                    transport: Transport::Tcp,
                    listener,
                    peer,
                    bytes,
                };
                if tx.send(Event::Inbound(inb)).await.is_err() {
                    return;
                }
            }
            match read {
                Ok(()) => {}
                Err(None) => break,
                Err(Some(e)) => {
                    metrics::counter!(names::SIP_DROPS, "reason" => "tcp_framing").increment(1);
                    tracing::debug!(%peer, error = %e, "TCP framing error, closing");
                    break;
                }
            }
        }
    };
    tokio::select! {
        _ = write_task => {}
        _ = read_task => {}
    }
    let _ = tx.send(Event::TcpClosed(peer)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_bounded_by_bytes_and_hands_back_what_it_cannot_send() {
        let (tx, rx) = write_queue(100);
        tx.try_send(Bytes::from(vec![b'a'; 60])).unwrap();
        assert!(matches!(
            tx.try_send(Bytes::from(vec![b'b'; 41])),
            Err(QueueError::Full)
        ));
        tx.try_send(Bytes::from(vec![b'c'; 40])).unwrap(); // exactly full
        assert_eq!(rx.queued.load(Relaxed), 100);
        drop(rx);
        match tx.try_send(Bytes::from_static(b"x")) {
            Err(QueueError::Closed(b)) => assert_eq!(&b[..], b"x"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_burst_queued_before_the_writer_runs_is_written_whole_and_in_order() {
        // More than the 1,024 messages the queue used to hold, all queued in one turn.
        let (tx, mut rx) = write_queue(OPENED_QUEUE);
        let msgs: Vec<Bytes> = (0..5_000)
            .map(|i| Bytes::from(format!("message {i}\r\n")))
            .collect();
        for m in &msgs {
            tx.try_send(m.clone()).unwrap();
        }
        drop(tx);
        let mut out: Vec<u8> = Vec::new();
        write_loop(&mut out, &mut rx).await;
        assert_eq!(out, msgs.concat());
        assert_eq!(rx.queued.load(Relaxed), 0, "written bytes leave the bound");
    }
}
