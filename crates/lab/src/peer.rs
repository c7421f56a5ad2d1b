//! A scripted SIP peer for tests: send bytes, receive parsed messages with a timeout, over UDP
//! or TCP on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use regevent_proto::sip::{framer, scan, CSeq, Frame, HeaderName, Limits, Message};

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

/// What a test peer accepts: as much as any gateway may send (a 500-registration reginfo is
/// about 210 KB).
const PEER_LIMITS: Limits = Limits {
    max_message: 16 << 20,
    max_header_bytes: 65_536,
    max_headers: 1024,
};

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
            match framer::check_stream(&self.buf, &PEER_LIMITS) {
                Ok(Frame::Message(n)) => {
                    let b = self.buf.split_to(n).freeze();
                    return Message::parse(b, &PEER_LIMITS).ok();
                }
                Ok(Frame::KeepAlive(n)) => {
                    let _ = self.buf.split_to(n);
                    continue;
                }
                Ok(Frame::Incomplete) => {}
                Ok(Frame::Oversize { .. }) | Err(_) => return None,
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

/// What a load-generating peer needs from a response: the status and the transaction's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseKey<'a> {
    pub status: u16,
    pub call_id: &'a str,
    pub cseq: u32,
    pub method: &'a str,
}

/// Read a response's status, Call-ID and CSeq without parsing the rest: the lab's UEs and core
/// match answers to their own requests with it. `None` for a request or anything it cannot
/// read (the full parser is for messages whose content matters). Uses the parser's line
/// scanner, header-name table (compact `i` included) and CSeq grammar; folded lines are not
/// joined. It reads header lines only until it has both keys (the first of each counts), so
/// the rest of the header section and the body are never looked at; without both by the empty
/// line it is `None`.
pub fn response_key(b: &[u8]) -> Option<ResponseKey<'_>> {
    let (first_end, mut pos) = scan::line_at(b, 0);
    let status = std::str::from_utf8(b.get(..first_end)?)
        .ok()?
        .strip_prefix("SIP/2.0 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let (mut call_id, mut cseq) = (None, None);
    while pos < b.len() {
        let (line_end, next) = scan::line_at(b, pos);
        if line_end == pos {
            return None; // the empty line: the header section ended without both keys
        }
        let line = &b[pos..line_end];
        if let Some(colon) = memchr::memchr(b':', line) {
            let value = || std::str::from_utf8(&line[colon + 1..]).ok().map(str::trim);
            let name = std::str::from_utf8(&line[..colon]).ok()?.trim();
            match HeaderName::from_name(name) {
                HeaderName::CallId if call_id.is_none() => {
                    call_id = Some(value().filter(|c| !c.is_empty())?)
                }
                HeaderName::CSeq if cseq.is_none() => cseq = Some(CSeq::parse(value()?).ok()?),
                _ => {}
            }
            if let (Some(call_id), Some(cseq)) = (call_id, cseq) {
                return Some(ResponseKey {
                    status,
                    call_id,
                    cseq: cseq.seq,
                    method: cseq.method,
                });
            }
        }
        pos = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_key_agrees_with_the_full_parser() {
        let r = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n\
                  From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\ni: ue7-4000\r\n\
                  cseq:  12   REGISTER\r\nContent-Length: 0\r\n\r\n";
        let k = response_key(r).unwrap();
        let m = Message::parse(Bytes::from_static(r), &Limits::default()).unwrap();
        assert_eq!(Some(k.status), m.status());
        assert_eq!(k.call_id, m.call_id());
        assert_eq!((k.cseq, k.method), (m.cseq().seq, m.cseq().method));
        let mut bad = r.to_vec();
        bad[8] = b'x'; // "x00": no status
        assert_eq!(response_key(&bad), None);
        assert_eq!(response_key(b"REGISTER sip:b SIP/2.0\r\n\r\n"), None);
        let no_cseq = b"SIP/2.0 200 OK\r\nCall-ID: c\r\n\r\nCSeq: 1 X\r\n";
        assert_eq!(
            response_key(no_cseq),
            None,
            "CSeq in the body does not count"
        );
        let mut tail = r[..r.len() - 2].to_vec();
        tail.extend_from_slice(b"X-Later: \xff\xfe\r\n\r\n");
        assert_eq!(
            response_key(&tail),
            Some(k),
            "lines after both keys are not read (here: not UTF-8)"
        );
    }
}
