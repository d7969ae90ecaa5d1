//! The reader side of a connection: read frames, check them (rate, size, JSON), hand
//! them to [`commands`](super::commands), and close on what is fatal: too many bad
//! frames in a row (4029), an oversize frame (1009), an expired token (4401), a drain
//! (`goaway`, 1012).

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::{Stream, StreamExt};
use switchboard_backplane::StreamName;
use switchboard_protocol::{
    ClientFrame, CloseCode, ErrorCode, Limits, PROTOCOL_VERSION, ParsedFrame, ServerFrame,
    ServerReply,
};
use tokio::sync::OwnedSemaphorePermit;

use super::rate_limit::{RateLimit, rate_limited};
use super::{WRITER_EXIT_PATIENCE, count_disconnect, send_error};
use crate::access::policy;
use crate::access::{AccessContext, Authenticated};
use crate::error::ClientError;
use crate::fanout::Outbound;
use crate::ids::new_id;
use crate::state::AppState;
use crate::telemetry::spans;

/// The reader side's state for one connection.
pub(super) struct Connection {
    pub(super) id: u64,
    /// The `connection_id` the client was told, for logs.
    public_id: String,
    pub(super) state: AppState,
    pub(super) access: AccessContext,
    pub(super) outbound: Arc<Outbound>,
    /// Sessions this connection joined (membership is per connection).
    pub(super) sessions: HashSet<String>,
    /// Live-only streams joined at connect (the user's and the org's).
    live_streams: Vec<StreamName>,
    rate: RateLimit,
    /// Bad or rate-limited frames in a row.
    bad_in_a_row: u32,
    /// When the token expires (seconds since the epoch); `None` for anonymous.
    pub(super) expires_at: Option<u64>,
    /// The visitor's address (`Handshake::client`): the session quotas and the caps on
    /// concurrent turns count anonymous visitors by it.
    pub(super) client: Option<std::net::IpAddr>,
    /// Whether the connection left its streams and the registry (see `Drop`).
    departed: bool,
}

/// The instant a token with `exp` = `expires_at` (seconds since the epoch) expires.
/// `exp` is the client's: one too far ahead for the clock to represent (a validly
/// signed `exp` near `u64::MAX`) never expires the connection, rather than overflow.
pub(crate) fn token_deadline(expires_at: Option<u64>) -> Option<tokio::time::Instant> {
    let expires_at = expires_at?;
    let now = switchboard_backplane::now_ms() / 1000;
    let left = Duration::from_secs(expires_at.saturating_sub(now));
    tokio::time::Instant::now().checked_add(left)
}

/// The timer of the token's expiry, kept across frames and armed again when `exp`
/// changes (`auth.refresh`). Boxed, and only for a token that expires: an idle
/// connection without one carries no timer in its task.
#[derive(Default)]
struct ExpiryTimer {
    armed_for: Option<u64>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ExpiryTimer {
    /// Follow the connection's `expires_at` (an `exp` too far ahead for the clock
    /// arms nothing: that token never expires the connection).
    fn follow(&mut self, expires_at: Option<u64>) {
        if self.armed_for != expires_at {
            self.armed_for = expires_at;
            self.sleep =
                token_deadline(expires_at).map(|at| Box::pin(tokio::time::sleep_until(at)));
        }
    }

    fn is_armed(&self) -> bool {
        self.sleep.is_some()
    }

    async fn expired(&mut self) {
        match self.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().await,
            None => std::future::pending().await,
        }
    }
}

/// A connection that ends without departing — its task panicked, or was dropped in the
/// middle of a frame — still leaves every stream and the connection count, and tells
/// its peer: close 1011 (unless a close was already decided), counted like any close
/// the server decides. The writer is its own task, so the close frame still goes out.
impl Drop for Connection {
    fn drop(&mut self) {
        if self.departed {
            return;
        }
        tracing::debug!(connection_id = %self.public_id, "connection ended abnormally; closing it with 1011");
        self.outbound.close_with(CloseCode::InternalError);
        self.depart();
        count_disconnect(&self.state, &self.outbound);
    }
}

/// Whether a read error is tungstenite refusing a frame over the size limit.
fn is_too_large(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(tungstenite::Error::Capacity(_)) = err.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = err.source();
    }
    false
}

impl Connection {
    /// Register an authenticated socket and join its live streams (the welcome is
    /// sent by [`Connection::welcome`], once they are subscribed).
    pub(super) fn open(
        state: AppState,
        outbound: Arc<Outbound>,
        authenticated: Authenticated,
        peer: Option<std::net::SocketAddr>,
        client: Option<std::net::IpAddr>,
    ) -> Connection {
        let id = crate::fanout::new_connection_id();
        let public_id = new_id("c");
        let access = authenticated.access;
        state.connections.insert(id, outbound.clone());
        state.metrics.connections.inc();
        spans::connection_opened(id, &access.org_id, access.anonymous, &state.server_id);
        tracing::debug!(connection_id = %public_id, peer = ?peer, "connected");
        let mut connection = Connection {
            id,
            public_id,
            rate: RateLimit::new(state.config.max_frames_per_second),
            state,
            access,
            outbound,
            sessions: HashSet::new(),
            live_streams: Vec::new(),
            bad_in_a_row: 0,
            expires_at: authenticated.expires_at,
            client,
            departed: false,
        };
        connection.join_live_streams();
        connection
    }

    /// Send `welcome` once the user and org streams are subscribed on the backplane.
    /// They have no replay, so an event published to them after a client was welcomed
    /// would otherwise be lost if it beat the subscription. A backplane that does not
    /// answer within the registry's patience delays the welcome no longer than that.
    async fn welcome(&self) {
        for stream in &self.live_streams {
            if !self.state.registry.wait_subscribed(stream).await {
                tracing::warn!(stream = %stream, "welcoming a connection before its live stream is subscribed");
            }
        }
        let state = &self.state;
        let welcome = ServerReply::new(
            None,
            ServerFrame::Welcome {
                protocol: PROTOCOL_VERSION,
                connection_id: self.public_id.clone(),
                server_id: state.server_id.to_string(),
                principal: self.access.clone(),
                heartbeat_ms: state.config.heartbeat.as_millis() as u64,
                limits: Limits {
                    max_frame_bytes: state.config.max_frame_bytes as usize,
                    max_text_chars: state.intake.max_text_chars(),
                    max_frames_per_second: state.config.max_frames_per_second,
                    max_sessions_per_connection: state.config.max_sessions_per_connection as usize,
                },
            },
        );
        let _ = self.outbound.enqueue(welcome.to_json().into());
    }

    /// Read and handle frames until the socket or the queue closes, then leave every
    /// stream and wait for the writer's close frame.
    ///
    /// Not an `async fn`: one stores its arguments twice in its future (rust-lang/rust
    /// #62958), and a `Connection` is 416 bytes of every idle connection. The block
    /// below uses its captures in place.
    #[allow(clippy::manual_async_fn)]
    pub(super) fn read_until_closed<R>(
        mut self,
        mut stream: R,
        writer: tokio::task::JoinHandle<()>,
        permit: OwnedSemaphorePermit,
    ) -> impl Future<Output = ()>
    where
        R: Stream<Item = Result<Message, axum::Error>> + Unpin,
    {
        async move {
            // Boxed: it runs once, and inline it would sit in every idle task.
            Box::pin(self.welcome()).await;
            let outbound = self.outbound.clone();
            let goaway = self.state.shutdown.goaway_signal();
            let mut said_goaway = false;
            let mut expiry = ExpiryTimer::default();
            loop {
                expiry.follow(self.expires_at);
                let expires = expiry.is_armed();
                tokio::select! {
                    biased;
                    () = outbound.closing() => break,
                    () = expiry.expired(), if expires => {
                        let e = ClientError::new(
                            ErrorCode::TokenExpired,
                            "the token expired: send auth.refresh with a new token before exp, then reconnect",
                        );
                        send_error(&self.state, &outbound, None, &e);
                        outbound.close_with(CloseCode::Unauthorized);
                    }
                    () = goaway.cancelled(), if !said_goaway => {
                        said_goaway = true;
                        let frame = ServerReply::new(None, ServerFrame::Goaway { reason: "draining".into() });
                        let _ = outbound.enqueue(frame.to_json().into());
                        outbound.close_with(CloseCode::Draining);
                    }
                    message = stream.next() => match message {
                        // Boxed: handling a frame is a deep future (join, replay, append)
                        // that an idle connection would otherwise carry inline in its task
                        // (profile: 1.3 KiB of RSS each); boxed, it exists only while a
                        // frame is handled.
                        Some(Ok(message)) => Box::pin(self.on_message(message)).await,
                        Some(Err(e)) => {
                            self.on_read_error(e);
                            break;
                        }
                        None => {
                            outbound.peer_gone();
                            break;
                        }
                    },
                }
            }

            self.depart();
            let _ = tokio::time::timeout(WRITER_EXIT_PATIENCE, writer).await;
            count_disconnect(&self.state, &outbound);
            tracing::debug!(connection_id = %self.public_id, close = ?outbound.close_code(), "disconnected");
            drop(permit);
        }
    }

    fn join_live_streams(&mut self) {
        let mut streams = Vec::new();
        if let Some(user) = &self.access.user_id
            && let Ok(stream) = StreamName::user_in_org(&self.access.org_id, user)
        {
            streams.push(stream);
        }
        if let Ok(stream) = StreamName::org(&self.access.org_id) {
            streams.push(stream);
        }
        // Staff get the org's inbox changes (roles count as of the handshake).
        if policy::read_inbox(&self.access).is_ok()
            && let Ok(stream) = StreamName::staff(&self.access.org_id)
        {
            streams.push(stream);
        }
        for stream in &streams {
            self.state
                .registry
                .join_live(stream, self.id, self.outbound.clone());
        }
        self.live_streams = streams;
    }

    /// Leave every stream and the registry of connections, once.
    fn depart(&mut self) {
        if std::mem::replace(&mut self.departed, true) {
            return;
        }
        self.leave_everything();
        self.state.connections.remove(&self.id);
        self.state.metrics.connections.dec();
        spans::connection_closed(self.id, self.outbound.close_code().map(|c| c.code()));
    }

    fn leave_everything(&mut self) {
        for session_id in std::mem::take(&mut self.sessions) {
            self.leave_stream(&session_id);
        }
        for stream in self.live_streams.drain(..) {
            self.state.registry.leave(&stream, self.id);
        }
    }

    fn on_read_error(&mut self, e: axum::Error) {
        if is_too_large(&e) {
            self.reject_oversize();
        } else {
            tracing::debug!(error = %e, "socket read failed");
            self.outbound.peer_gone();
        }
    }

    fn reject_oversize(&mut self) {
        let e = ClientError::new(
            ErrorCode::TooLarge,
            format!(
                "frame larger than max_frame_bytes ({} bytes); closing",
                self.state.config.max_frame_bytes
            ),
        );
        send_error(&self.state, &self.outbound, None, &e);
        self.outbound.close_with(CloseCode::MessageTooBig);
    }

    /// Count a bad or rate-limited frame; too many in a row closes with 4029.
    fn strike(&mut self, re: Option<String>, e: ClientError) {
        send_error(&self.state, &self.outbound, re, &e);
        self.bad_in_a_row += 1;
        if self.bad_in_a_row >= self.state.config.max_bad_frames {
            self.outbound.close_with(CloseCode::TooManyBadFrames);
        }
    }

    async fn on_message(&mut self, message: Message) {
        self.outbound.touch();
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                self.state
                    .metrics
                    .frames_received
                    .with_label_values(&["binary"])
                    .inc();
                if self.rate.allow() {
                    self.strike(
                        None,
                        ClientError::new(
                            ErrorCode::Unsupported,
                            "binary frames are not supported: send JSON as text frames",
                        ),
                    );
                } else {
                    self.strike(None, rate_limited(self.state.config.max_frames_per_second));
                }
                return;
            }
            Message::Close(_) => {
                self.outbound.peer_gone();
                return;
            }
            Message::Ping(_) | Message::Pong(_) => return,
        };
        if !self.rate.allow() {
            self.state
                .metrics
                .frames_received
                .with_label_values(&["rate_limited"])
                .inc();
            // Not processed, but the refusal still answers the frame it refuses.
            let re = frame_id(text.as_str());
            self.strike(re, rate_limited(self.state.config.max_frames_per_second));
            return;
        }
        if text.len() > self.state.config.max_frame_bytes as usize {
            self.reject_oversize();
            return;
        }
        let parsed = match ClientFrame::parse(text.as_str()) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.state
                    .metrics
                    .frames_received
                    .with_label_values(&["invalid"])
                    .inc();
                self.strike(e.id, ClientError::new(e.code, e.message));
                return;
            }
        };
        self.state
            .metrics
            .frames_received
            .with_label_values(&[parsed.frame.type_name()])
            .inc();
        let ParsedFrame { id, frame } = parsed;
        match self.handle(id.clone(), frame).await {
            Ok(()) => self.bad_in_a_row = 0,
            Err(e) if e.code == ErrorCode::BadRequest => self.strike(id, e),
            Err(e) => {
                self.bad_in_a_row = 0;
                send_error(&self.state, &self.outbound, id, &e);
            }
        }
    }

    pub(super) fn reply(&self, re: Option<String>, frame: ServerFrame) {
        let _ = self
            .outbound
            .enqueue(ServerReply::new(re, frame).to_json().into());
    }
}

/// The `id` of a frame, read without interpreting the rest (for refusals).
fn frame_id(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<String>,
    }
    serde_json::from_str::<IdOnly>(text)
        .ok()
        .and_then(|f| f.id)
        .filter(|id| id.chars().count() <= switchboard_protocol::MAX_FRAME_ID_CHARS)
}
