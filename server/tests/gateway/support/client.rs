//! A WebSocket client for the Switchboard protocol, over tokio-tungstenite.
//!
//! Frames the client reads while waiting for a direct reply are kept in a backlog and
//! handed out, in order, by the next `next_frame`: waiting for a reply never loses an
//! event.
//!
//! The ephemeral presence frames (`presence`, `presence.changed`, `typing`,
//! docs/protocol.md §3.15) come with every join and arrive whenever members come and
//! go; a client skips them unless a test asks for them ([`Client::with_presence`]), so
//! the tests of everything else read the frames they are about.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{WAIT, is_assistant_message, ty};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a raw read produced.
#[derive(Debug)]
pub enum Incoming {
    /// A text frame, parsed as JSON.
    Frame(Value),
    /// A close frame: code and reason (`None` when the close frame had no code).
    Close(Option<(u16, String)>),
}

/// A session the client created.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub key: Option<String>,
}

pub struct Client {
    ws: Ws,
    backlog: VecDeque<Value>,
    next_id: u64,
    /// The `welcome` frame, when [`Client::connect`] read it.
    pub welcome: Value,
    /// WebSocket pings received from the server (answered by tungstenite).
    pub pings_seen: usize,
    /// Whether presence and typing frames are handed out (else skipped).
    presence: bool,
}

/// The frame types of presence and typing.
pub const PRESENCE_FRAMES: [&str; 3] = ["presence", "presence.changed", "typing"];

impl Client {
    /// Connect and read the `welcome` frame (kept in `self.welcome`).
    pub async fn connect(url: &str) -> Client {
        let mut client = Client::connect_raw(url).await;
        let welcome = client.next_frame().await;
        assert_eq!(
            ty(&welcome),
            "welcome",
            "first frame must be welcome: {welcome}"
        );
        client.welcome = welcome;
        client
    }

    /// Connect without reading anything.
    pub async fn connect_raw(url: &str) -> Client {
        let request = url.into_client_request().expect("a valid ws url");
        let (client, _) = Client::connect_request(request)
            .await
            .unwrap_or_else(|e| panic!("WebSocket connect to {url} failed: {e}"));
        client
    }

    /// Connect with a prepared request (headers, subprotocols), under [`WAIT`].
    pub async fn connect_request(
        request: Request,
    ) -> Result<(Client, Response), tungstenite::Error> {
        let uri = request.uri().clone();
        let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .unwrap_or_else(|_| panic!("WebSocket connect to {uri} timed out after {WAIT:?}"))?;
        Ok((
            Client {
                ws,
                backlog: VecDeque::new(),
                next_id: 0,
                welcome: Value::Null,
                pings_seen: 0,
                presence: false,
            },
            response,
        ))
    }

    /// Hand out presence and typing frames too, from now on.
    pub fn with_presence(mut self) -> Client {
        self.presence = true;
        self
    }

    /// A fresh frame id, `t1`, `t2`, …
    pub fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("t{}", self.next_id)
    }

    pub async fn send_json(&mut self, frame: Value) {
        self.send_raw(Message::text(frame.to_string())).await;
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.send_raw(Message::text(text.into())).await;
    }

    /// Send without panicking: for floods where the server may close mid-way.
    pub async fn try_send(&mut self, message: Message) -> Result<(), String> {
        match tokio::time::timeout(WAIT, self.ws.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("send timed out after {WAIT:?}")),
        }
    }

    pub async fn send_raw(&mut self, message: Message) {
        tokio::time::timeout(WAIT, self.ws.send(message))
            .await
            .unwrap_or_else(|_| panic!("send timed out after {WAIT:?}"))
            .unwrap_or_else(|e| panic!("send failed: {e}"));
    }

    /// One raw read from the socket (no backlog), skipping pings and pongs. `None` when
    /// nothing arrived within `wait`. Panics when the connection ends without a close
    /// frame or on a binary frame.
    pub async fn recv(&mut self, wait: Duration) -> Option<Incoming> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let read = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match read {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str()).unwrap_or_else(|e| {
                        panic!("server sent a non-JSON text frame ({e}): {text}")
                    });
                    if !self.presence && PRESENCE_FRAMES.contains(&ty(&value)) {
                        continue;
                    }
                    return Some(Incoming::Frame(value));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(Incoming::Close(
                        frame.map(|f| (u16::from(f.code), f.reason.as_str().to_string())),
                    ));
                }
                Some(Ok(Message::Ping(_))) => self.pings_seen += 1,
                Some(Ok(Message::Pong(_))) | Some(Ok(Message::Frame(_))) => {}
                Some(Ok(Message::Binary(b))) => {
                    panic!("server sent a binary frame ({} bytes)", b.len())
                }
                Some(Err(e)) => panic!("the connection failed before a close frame: {e}"),
                None => panic!("the connection ended without a close frame"),
            }
        }
    }

    /// The next frame (backlog first), or `None` if none arrives within `wait`.
    /// Panics on a close frame.
    pub async fn next_frame_within(&mut self, wait: Duration) -> Option<Value> {
        if let Some(frame) = self.backlog.pop_front() {
            return Some(frame);
        }
        match self.recv(wait).await? {
            Incoming::Frame(v) => Some(v),
            Incoming::Close(c) => panic!("expected a frame, got close {c:?}"),
        }
    }

    /// The next frame, waiting at most [`WAIT`]. Panics on timeout or close.
    pub async fn next_frame(&mut self) -> Value {
        self.next_frame_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("no frame arrived within {WAIT:?}"))
    }

    /// Skip frames until one of type `ty` arrives; return it.
    pub async fn next_of_type(&mut self, wanted: &str) -> Value {
        loop {
            let frame = self
                .next_frame_within(WAIT)
                .await
                .unwrap_or_else(|| panic!("no `{wanted}` frame arrived within {WAIT:?}"));
            if ty(&frame) == wanted {
                return frame;
            }
        }
    }

    /// Read frames until the server's close frame; return the frames read before it
    /// (backlog included) and the close code and reason. Panics if no close arrives
    /// within [`WAIT`] of the last frame, or if the close frame has no code.
    pub async fn frames_until_close(&mut self) -> (Vec<Value>, u16, String) {
        let mut frames: Vec<Value> = self.backlog.drain(..).collect();
        loop {
            match self.recv(WAIT).await {
                Some(Incoming::Frame(v)) => frames.push(v),
                Some(Incoming::Close(Some((code, reason)))) => return (frames, code, reason),
                Some(Incoming::Close(None)) => {
                    panic!("close frame without a code after {frames:?}")
                }
                None => panic!(
                    "no close frame within {WAIT:?}; frames so far: {}",
                    super::summary(&frames)
                ),
            }
        }
    }

    /// Read (and discard) frames until the close frame; return its code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        let (_, code, reason) = self.frames_until_close().await;
        (code, reason)
    }

    /// Send `{"type": ty, "id": <fresh>, ..fields}` and return the frame whose `re` is
    /// that id (a reply or an `error`). Other frames read meanwhile stay in the backlog.
    pub async fn request(&mut self, frame_type: &str, fields: Value) -> Value {
        let id = self.new_id();
        let mut frame = match fields {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => panic!("request fields must be an object, got {other}"),
        };
        frame.insert("type".into(), json!(frame_type));
        frame.insert("id".into(), json!(id));
        self.send_json(Value::Object(frame)).await;
        self.reply_to(&id).await
    }

    /// Wait for the frame whose `re` is `id`, keeping other frames in the backlog.
    pub async fn reply_to(&mut self, id: &str) -> Value {
        if let Some(pos) = self.backlog.iter().position(|f| f["re"] == id) {
            return self.backlog.remove(pos).expect("position is in range");
        }
        loop {
            match self.recv(WAIT).await {
                Some(Incoming::Frame(v)) if v["re"] == id => return v,
                Some(Incoming::Frame(v)) => self.backlog.push_back(v),
                Some(Incoming::Close(c)) => {
                    panic!("closed ({c:?}) while waiting for the reply to {id}")
                }
                None => panic!("no reply to {id} within {WAIT:?}"),
            }
        }
    }

    /// Like [`Client::request`], panicking unless the reply has type `expected`.
    pub async fn request_ok(&mut self, frame_type: &str, fields: Value, expected: &str) -> Value {
        let reply = self.request(frame_type, fields.clone()).await;
        assert_eq!(
            ty(&reply),
            expected,
            "{frame_type} {fields} must be answered with {expected}, got {reply}"
        );
        reply
    }

    /// `ping` → `pong` with the same `re`: proves the connection is alive and serving.
    pub async fn ping_pong(&mut self) {
        let reply = self.request("ping", Value::Null).await;
        assert_eq!(
            ty(&reply),
            "pong",
            "ping must be answered with pong: {reply}"
        );
    }

    /// `session.create` → the new session (id and key).
    pub async fn create_session(&mut self) -> Session {
        let created = self
            .request_ok("session.create", json!({}), "session.created")
            .await;
        Session {
            id: created["session_id"]
                .as_str()
                .expect("session_id")
                .to_string(),
            key: created["session_key"].as_str().map(str::to_string),
        }
    }

    /// `session.join` → the reply (`session.joined` or an `error`). The replay that
    /// follows stays to be read with `next_frame`.
    pub async fn join_reply(
        &mut self,
        session_id: &str,
        after_seq: Option<u64>,
        key: Option<&str>,
    ) -> Value {
        let mut fields = json!({ "session_id": session_id });
        if let Some(after) = after_seq {
            fields["after_seq"] = json!(after);
        }
        if let Some(key) = key {
            fields["session_key"] = json!(key);
        }
        self.request("session.join", fields).await
    }

    /// `session.join`, panicking unless it is answered with `session.joined`.
    pub async fn join(
        &mut self,
        session_id: &str,
        after_seq: Option<u64>,
        key: Option<&str>,
    ) -> Value {
        let reply = self.join_reply(session_id, after_seq, key).await;
        assert_eq!(
            ty(&reply),
            "session.joined",
            "join {session_id} after {after_seq:?}: {reply}"
        );
        reply
    }

    /// `message.send` → `message.accepted` (panics otherwise).
    pub async fn send_message(&mut self, session_id: &str, text: &str) -> Value {
        self.request_ok(
            "message.send",
            json!({ "session_id": session_id, "text": text }),
            "message.accepted",
        )
        .await
    }

    /// `message.send` with a `client_message_id` → `message.accepted` (panics
    /// otherwise).
    pub async fn send_message_once(
        &mut self,
        session_id: &str,
        text: &str,
        client_message_id: &str,
    ) -> Value {
        self.request_ok(
            "message.send",
            json!({
                "session_id": session_id,
                "text": text,
                "client_message_id": client_message_id
            }),
            "message.accepted",
        )
        .await
    }

    /// Read until the connection ends in any way, a close frame or none (its replica
    /// was killed); return the frames read, backlog first. Panics if it is still open
    /// after [`WAIT`].
    pub async fn frames_until_gone(&mut self) -> Vec<Value> {
        let mut frames: Vec<Value> = self.backlog.drain(..).collect();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!(
                    "the connection is still open after {WAIT:?}; frames so far: {}",
                    super::summary(&frames)
                ),
                Ok(Some(Ok(Message::Text(text)))) => {
                    let value: Value = serde_json::from_str(text.as_str()).unwrap_or_else(|e| {
                        panic!("server sent a non-JSON text frame ({e}): {text}")
                    });
                    if self.presence || !PRESENCE_FRAMES.contains(&ty(&value)) {
                        frames.push(value);
                    }
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => return frames,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Read frames until `done` returns true for one; return all of them, that one
    /// included. Each frame must arrive within [`WAIT`].
    pub async fn collect_until(&mut self, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = match self.next_frame_within(WAIT).await {
                Some(f) => f,
                None => panic!(
                    "the awaited frame did not arrive within {WAIT:?}; got: {}",
                    super::summary(&frames)
                ),
            };
            let stop = done(&frame);
            frames.push(frame);
            if stop {
                return frames;
            }
        }
    }

    /// Read frames until the `n`-th assistant message (a completed turn's transcript).
    pub async fn collect_turns(&mut self, n: usize) -> Vec<Value> {
        let mut seen = 0;
        self.collect_until(|f| {
            if is_assistant_message(f) {
                seen += 1;
            }
            seen == n
        })
        .await
    }

    /// Frames already read but not yet handed out.
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    /// The raw halves, for tests that must read and write concurrently.
    pub fn into_split(self) -> (SplitSink<Ws, Message>, SplitStream<Ws>) {
        assert!(
            self.backlog.is_empty(),
            "into_split with unread frames in the backlog"
        );
        self.ws.split()
    }
}
