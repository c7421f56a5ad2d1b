//! TCP: accept, frame by Content-Length (tokio-util codec over `sip::framer`), one writer per
//! connection; the gateway task learns connections through `Event::TcpOpen`/`TcpClosed`.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, FramedRead};

use super::Event;
use crate::config::Transport;
use crate::gateway::Inbound;
use crate::sip::{framer, Frame, Limits};
use crate::stats::names;

/// SIP stream framing as a tokio-util codec.
#[derive(Debug, Clone, Copy)]
pub struct SipCodec {
    pub limits: Limits,
}

impl Decoder for SipCodec {
    type Item = Bytes;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, Self::Error> {
        loop {
            match framer::check_stream(src, &self.limits) {
                Ok(Frame::Incomplete) => return Ok(None),
                Ok(Frame::KeepAlive(n)) => {
                    let _ = src.split_to(n);
                }
                Ok(Frame::Message(n)) => return Ok(Some(src.split_to(n).freeze())),
                Err(e) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        e.to_string(),
                    ))
                }
            }
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
                let (wtx, wrx) = mpsc::channel(1024);
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
    rx: mpsc::Receiver<Bytes>,
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
    let (wtx, wrx) = mpsc::channel(1024);
    let _ = wtx.try_send(bytes);
    if tx.send(Event::TcpOpen(addr, wtx)).await.is_ok() {
        connect_with_queue(addr, wrx, tx, max).await;
    }
}

/// Messages taken from a connection's queue per write.
const WRITE_BATCH: usize = 256;

/// `msgs` one after another in `buf` (cleared first).
fn join_into(buf: &mut Vec<u8>, msgs: impl Iterator<Item = Bytes>) {
    buf.clear();
    for m in msgs {
        buf.extend_from_slice(&m);
    }
}

async fn run_conn(
    stream: TcpStream,
    peer: SocketAddr,
    listener: u16,
    mut wrx: mpsc::Receiver<Bytes>,
    tx: mpsc::Sender<Event>,
    max: usize,
) {
    let (r, w) = stream.into_split();
    let limits = Limits {
        max_message: max,
        ..Limits::default()
    };
    let mut reader = FramedRead::new(r, SipCodec { limits });
    let mut w = w;
    let write_task = async {
        // What was queued by the time this task runs goes out in one write: toward a core,
        // one connection carries every REGISTER, SUBSCRIBE and NOTIFY answer of a turn.
        let mut queued = Vec::with_capacity(WRITE_BATCH);
        let mut buf = Vec::new();
        while wrx.recv_many(&mut queued, WRITE_BATCH).await > 0 {
            join_into(&mut buf, queued.drain(..));
            if w.write_all(&buf).await.is_err() {
                break;
            }
        }
    };
    let read_task = async {
        while let Some(frame) = reader.next().await {
            match frame {
                Ok(bytes) => {
                    let inb = Inbound {
                        transport: Transport::Tcp,
                        listener,
                        peer,
                        bytes,
                    };
                    if tx.send(Event::Inbound(inb)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
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
