//! A minimal WebSocket client written by hand over a `TcpStream`.
//!
//! tungstenite answers every ping it reads with a pong and flushes that pong on the next
//! read; once the server has closed the TCP connection, that write fails (`EPIPE`) and
//! the close frame already in the receive buffer is never handed out. A client that
//! must read a close frame the server sent and then hung up (heartbeat timeout, slow
//! consumer, oversize frame) uses this one: it never writes unless told to.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::WAIT;

/// One thing read from the socket.
#[derive(Debug, Clone, PartialEq)]
pub enum RawEvent {
    Text(Value),
    Binary(Vec<u8>),
    Ping,
    Pong,
    /// A close frame: code (when present) and reason.
    Close(Option<u16>, String),
    /// The TCP connection ended (no more bytes).
    Eof,
    /// The TCP connection failed (e.g. reset).
    Error(String),
}

pub struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    /// Open `ws://{addr}{path}` (e.g. `/ws`), completing the upgrade handshake.
    pub async fn connect(addr: &str, path: &str) -> RawClient {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("raw connect timed out")
            .expect("raw connect");
        RawClient::upgrade(stream, addr, path).await
    }

    /// [`RawClient::connect`] with the socket's receive buffer set to `bytes` first: a
    /// client whose window fills as soon as it stops reading.
    pub async fn connect_with_receive_buffer(addr: &str, path: &str, bytes: u32) -> RawClient {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        let target = addr.parse().expect("the gateway's address");
        let stream = tokio::time::timeout(WAIT, socket.connect(target))
            .await
            .expect("raw connect timed out")
            .expect("raw connect");
        RawClient::upgrade(stream, addr, path).await
    }

    async fn upgrade(stream: TcpStream, addr: &str, path: &str) -> RawClient {
        let mut client = RawClient {
            stream,
            buf: Vec::new(),
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        client
            .stream
            .write_all(request.as_bytes())
            .await
            .expect("write upgrade");
        let head_end = loop {
            if let Some(i) = client.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                client.fill(WAIT).await,
                "connection ended during the upgrade"
            );
        };
        let head = String::from_utf8_lossy(&client.buf[..head_end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused:\n{head}");
        client.buf.drain(..head_end);
        client
    }

    /// Read more bytes into the buffer; false on EOF. Panics on timeout or error.
    async fn fill(&mut self, wait: Duration) -> bool {
        let mut chunk = [0u8; 16384];
        let n = tokio::time::timeout(wait, self.stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("raw read timed out after {wait:?}"))
            .unwrap_or_else(|e| panic!("raw read failed: {e}"));
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    async fn try_fill(&mut self, wait: Duration) -> Result<bool, String> {
        let mut chunk = [0u8; 65536];
        match tokio::time::timeout(wait, self.stream.read(&mut chunk)).await {
            Err(_) => Err(format!("nothing within {wait:?}")),
            Ok(Err(e)) => Err(format!("read error: {e}")),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n > 0)
            }
        }
    }

    /// Parse one complete frame from the buffer, if there is one.
    fn parse(&mut self) -> Option<(u8, Vec<u8>)> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let opcode = b[0] & 0x0f;
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().ok()?) as usize, 10),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        let mask = if masked {
            if b.len() < at + 4 {
                return None;
            }
            at += 4;
            Some([b[at - 4], b[at - 3], b[at - 2], b[at - 1]])
        } else {
            None
        };
        if b.len() < at + len {
            return None;
        }
        let mut payload = b[at..at + len].to_vec();
        if let Some(m) = mask {
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= m[i % 4];
            }
        }
        self.buf.drain(..at + len);
        Some((opcode, payload))
    }

    /// The next frame (or EOF / error), waiting at most `wait` for it. `None` on timeout.
    /// Fragmented messages are not expected from the server and are reported as is.
    pub async fn next_within(&mut self, wait: Duration) -> Option<RawEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((opcode, payload)) = self.parse() {
                return Some(match opcode {
                    0x1 => RawEvent::Text(serde_json::from_slice(&payload).unwrap_or_else(|e| {
                        panic!(
                            "non-JSON text frame ({e}): {}",
                            String::from_utf8_lossy(&payload)
                        )
                    })),
                    0x2 => RawEvent::Binary(payload),
                    0x8 => {
                        let code = (payload.len() >= 2)
                            .then(|| u16::from_be_bytes([payload[0], payload[1]]));
                        let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default())
                            .to_string();
                        RawEvent::Close(code, reason)
                    }
                    0x9 => RawEvent::Ping,
                    0xA => RawEvent::Pong,
                    other => panic!("unexpected opcode {other:#x}"),
                });
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_fill(left).await {
                Ok(true) => {}
                Ok(false) => return Some(RawEvent::Eof),
                Err(e) if e.starts_with("nothing") => return None,
                Err(e) => return Some(RawEvent::Error(e)),
            }
        }
    }

    /// The next frame, under [`WAIT`]; panics on timeout.
    pub async fn next(&mut self) -> RawEvent {
        self.next_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("raw client: nothing within {WAIT:?}"))
    }

    /// Read until a close frame, EOF or error; return the text frames read, the number of
    /// pings, and how it ended.
    pub async fn until_close(&mut self) -> (Vec<Value>, usize, RawEvent) {
        let (mut frames, mut pings) = (Vec::new(), 0);
        loop {
            match self.next().await {
                RawEvent::Text(v) => frames.push(v),
                RawEvent::Ping => pings += 1,
                RawEvent::Pong | RawEvent::Binary(_) => {}
                end => return (frames, pings, end),
            }
        }
    }

    /// Send one masked frame with `opcode` and `payload`.
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await
    }

    pub async fn send_text(&mut self, text: &str) -> std::io::Result<()> {
        self.send_frame(0x1, text.as_bytes()).await
    }
}
