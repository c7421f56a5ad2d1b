//! A scripted SIP peer for tests: send bytes, receive parsed messages with a timeout, over UDP
//! or TCP on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::sip::{framer, Frame, Limits, Message};

/// A UDP peer bound to `127.0.0.1:0`.
#[derive(Debug)]
pub struct UdpPeer {
    sock: UdpSocket,
    pub addr: SocketAddr,
}

impl UdpPeer {
    pub async fn bind() -> std::io::Result<Self> {
        Self::bind_on("127.0.0.1:0".parse().expect("literal")).await
    }
    pub async fn bind_on(addr: SocketAddr) -> std::io::Result<Self> {
        let sock = UdpSocket::bind(addr).await?;
        let addr = sock.local_addr()?;
        Ok(UdpPeer { sock, addr })
    }
    pub async fn send(&self, to: SocketAddr, bytes: &[u8]) -> std::io::Result<()> {
        self.sock.send_to(bytes, to).await.map(|_| ())
    }
    /// Next message (raw bytes kept in the message), or `None` after `wait`.
    pub async fn recv(&self, wait: Duration) -> Option<(Message, SocketAddr)> {
        let mut buf = vec![0u8; 65_536];
        let (n, from) = tokio::time::timeout(wait, self.sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        Message::parse(Bytes::copy_from_slice(&buf[..n]), &Limits::default())
            .ok()
            .map(|m| (m, from))
    }
    /// Raw next datagram.
    pub async fn recv_raw(&self, wait: Duration) -> Option<(Bytes, SocketAddr)> {
        let mut buf = vec![0u8; 65_536];
        let (n, from) = tokio::time::timeout(wait, self.sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some((Bytes::copy_from_slice(&buf[..n]), from))
    }
}

/// A TCP peer: one connection, Content-Length framed.
#[derive(Debug)]
pub struct TcpPeer {
    stream: TcpStream,
    buf: BytesMut,
    pub local: SocketAddr,
}

impl TcpPeer {
    pub async fn connect(to: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(to).await?;
        let local = stream.local_addr()?;
        Ok(TcpPeer {
            stream,
            buf: BytesMut::new(),
            local,
        })
    }
    pub fn from_stream(stream: TcpStream) -> std::io::Result<Self> {
        let local = stream.local_addr()?;
        Ok(TcpPeer {
            stream,
            buf: BytesMut::new(),
            local,
        })
    }
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }
    pub async fn recv(&mut self, wait: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match framer::check_stream(&self.buf, &Limits::default()) {
                Ok(Frame::Message(n)) => {
                    let b = self.buf.split_to(n).freeze();
                    return Message::parse(b, &Limits::default()).ok();
                }
                Ok(Frame::KeepAlive(n)) => {
                    let _ = self.buf.split_to(n);
                    continue;
                }
                Ok(Frame::Incomplete) => {}
                Err(_) => return None,
            }
            let mut tmp = [0u8; 8192];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut tmp))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }
}
