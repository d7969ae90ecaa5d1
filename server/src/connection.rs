//! One WebSocket connection: a reader task and a writer task joined by a bounded
//! outbound queue.
//!
//! ```text
//!                  ┌──────────── reader task (this module) ───────────┐
//!  socket ─ read ─►│ rate limit → size → parse → handle(access ctx)    │
//!                  │   replies ─┐        appends ─► backplane ─► hubs ─┼─┐
//!                  └────────────┼──────────────────────────────────────┘ │
//!                               ▼                                        ▼
//!                     Outbound: bounded queue (bytes and frames) ◄── registry fan-out,
//!                               │  enqueue() never waits             heartbeat pings
//!                               ▼
//!  socket ◄─ write ─ writer task (writer.rs): batches frames, one flush per batch
//! ```
//!
//! What closes each side:
//! - the **reader** stops when the peer closes or errors, when the outbound queue
//!   starts closing (slow consumer, heartbeat timeout, a fatal frame), or after
//!   sending `goaway` on drain;
//! - the **writer** stops when the queue closes: orderly closes (1009, 1012, 4029,
//!   4401) flush what is queued, then send the close frame; abortive ones (4008,
//!   4000) drop the queue and send the close frame as soon as the socket takes it.
//!
//! On exit the connection leaves every stream, so the registry unsubscribes streams
//! with no local member left.

pub mod outbound;
pub mod writer;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::future::Either;
use futures_util::{Sink, Stream, StreamExt};
use switchboard_backplane::StreamName;
use switchboard_protocol::client::{MessageSend, SessionCreate, SessionJoin, TurnCancel};
use switchboard_protocol::{
    ClientFrame, CloseCode, ErrorCode, EventBody, Limits, PROTOCOL_VERSION, ParsedFrame, Role,
    ServerFrame, ServerReply,
};
use tokio::sync::OwnedSemaphorePermit;

use crate::auth::AccessContext;
use crate::error::ClientError;
use crate::session::new_id;
use crate::state::AppState;
use crate::turn::TurnJob;
use outbound::Outbound;

/// Largest serialized `session.create.metadata` (protocol section 3).
const MAX_METADATA_BYTES: usize = 4096;
/// How long teardown waits for the writer to send its close frame.
const WRITER_EXIT_PATIENCE: Duration = Duration::from_secs(6);

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// What the `/ws` handler learned before the upgrade.
pub struct Handshake {
    /// The principal, or why the credentials were refused.
    pub access: Result<crate::auth::Authenticated, ClientError>,
    /// The peer address, for logs.
    pub peer: Option<std::net::SocketAddr>,
}

/// A token bucket: `rate` frames per second with bursts of `rate`.
struct RateLimit {
    rate: f64,
    tokens: f64,
    last: tokio::time::Instant,
}

impl RateLimit {
    fn new(rate: u32) -> RateLimit {
        RateLimit {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: tokio::time::Instant::now(),
        }
    }

    fn allow(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The reader side's state for one connection.
struct Connection {
    id: u64,
    /// The `connection_id` the client was told, for logs.
    public_id: String,
    state: AppState,
    access: AccessContext,
    outbound: Arc<Outbound>,
    /// Sessions this connection joined (membership is per connection).
    sessions: HashSet<String>,
    /// Live-only streams joined at connect (the user's and the org's).
    live_streams: Vec<StreamName>,
    rate: RateLimit,
    /// Bad or rate-limited frames in a row.
    bad_in_a_row: u32,
    /// When the token expires (seconds since the epoch); `None` for anonymous.
    expires_at: Option<u64>,
}

/// Serve one upgraded socket until it closes. Generic over the socket halves so tests
/// and other transports can drive it.
///
/// The opening (the writer task, then the welcome or the refusal) runs here, before
/// the returned future exists. That future is the socket's task for the connection's
/// whole life, and every idle connection carries every byte of it, so it holds only
/// what the read loop needs (docs/benchmarks.md: the future was 2.5 KiB while it
/// also held the handshake and the opening's state).
pub fn serve<W, R>(
    sink: W,
    stream: R,
    state: AppState,
    handshake: Handshake,
    permit: OwnedSemaphorePermit,
) -> impl Future<Output = ()>
where
    W: Sink<Message> + Unpin + Send + 'static,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let (outbound, receiver) = Outbound::new(state.config.outbound_queue_bytes as usize);
    outbound.touch();
    let writer = state.tracker.spawn(writer::write_loop(sink, receiver));
    match handshake.access {
        Ok(authenticated) => {
            let connection = Connection::open(state, outbound, authenticated, handshake.peer);
            Either::Left(connection.read_until_closed(stream, writer, permit))
        }
        Err(e) => {
            tracing::info!(peer = ?handshake.peer, code = %e.code, "connection refused: {}", e.message);
            send_error(&state, &outbound, None, &e);
            let code = if e.code == ErrorCode::Unavailable {
                CloseCode::InternalError
            } else {
                CloseCode::Unauthorized
            };
            outbound.close_with(code);
            Either::Right(async move {
                let _ = tokio::time::timeout(WRITER_EXIT_PATIENCE, writer).await;
                count_disconnect(&state, &outbound);
                drop(permit);
            })
        }
    }
}

/// Count a server-initiated close by its code (peer-initiated closes have none).
fn count_disconnect(state: &AppState, outbound: &Outbound) {
    if let Some(code) = outbound.close_code() {
        state
            .metrics
            .disconnects
            .with_label_values(&[&code.code().to_string()])
            .inc();
    }
}

/// The instant a token with `exp` = `expires_at` (seconds since the epoch) expires.
fn token_deadline(expires_at: Option<u64>) -> Option<tokio::time::Instant> {
    let expires_at = expires_at?;
    let now = switchboard_backplane::now_ms() / 1000;
    let left = Duration::from_secs(expires_at.saturating_sub(now));
    Some(tokio::time::Instant::now() + left)
}

async fn sleep_until_deadline(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Send an `error` frame and count it.
fn send_error(state: &AppState, outbound: &Outbound, re: Option<String>, e: &ClientError) {
    state
        .metrics
        .errors_sent
        .with_label_values(&[e.code.as_str()])
        .inc();
    let _ = outbound.enqueue(
        ServerReply::error(re, e.code, e.message.clone())
            .to_json()
            .into(),
    );
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
    fn open(
        state: AppState,
        outbound: Arc<Outbound>,
        authenticated: crate::auth::Authenticated,
        peer: Option<std::net::SocketAddr>,
    ) -> Connection {
        let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
        let public_id = new_id("c");
        let access = authenticated.access;
        state.connections.insert(id, outbound.clone());
        state.metrics.connections.inc();
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
                    max_text_chars: state.config.max_text_chars as usize,
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
    fn read_until_closed<R>(
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
            loop {
                let expiry = token_deadline(self.expires_at);
                tokio::select! {
                    biased;
                    () = outbound.closing() => break,
                    () = sleep_until_deadline(expiry), if expiry.is_some() => {
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

            self.leave_everything();
            self.state.connections.remove(&self.id);
            self.state.metrics.connections.dec();
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
        for stream in &streams {
            self.state
                .registry
                .join_live(stream, self.id, self.outbound.clone());
        }
        self.live_streams = streams;
    }

    fn leave_everything(&mut self) {
        for session_id in self.sessions.drain() {
            if let Ok(stream) = StreamName::session(&session_id) {
                self.state.registry.leave(&stream, self.id);
            }
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

    fn reply(&self, re: Option<String>, frame: ServerFrame) {
        let _ = self
            .outbound
            .enqueue(ServerReply::new(re, frame).to_json().into());
    }

    async fn handle(&mut self, id: Option<String>, frame: ClientFrame) -> Result<(), ClientError> {
        match frame {
            ClientFrame::Ping {} => {
                self.reply(id, ServerFrame::Pong {});
                Ok(())
            }
            ClientFrame::SessionCreate(create) => self.create_session(id, create).await,
            ClientFrame::SessionJoin(join) => self.join_session(id, join).await,
            ClientFrame::SessionLeave(leave) => {
                if !self.sessions.remove(&leave.session_id) {
                    return Err(ClientError::new(
                        ErrorCode::NotFound,
                        format!(
                            "this connection has not joined session {}",
                            leave.session_id
                        ),
                    ));
                }
                let stream = session_stream(&leave.session_id)?;
                self.state.registry.leave(&stream, self.id);
                self.reply(
                    id,
                    ServerFrame::SessionLeft {
                        session_id: leave.session_id,
                    },
                );
                Ok(())
            }
            ClientFrame::MessageSend(send) => self.send_message(id, send).await,
            ClientFrame::TurnCancel(TurnCancel {
                session_id,
                turn_id,
            }) => {
                self.require_member(&session_id)?;
                if self
                    .state
                    .turns
                    .cancel_anywhere(&session_id, &turn_id)
                    .await?
                {
                    // The answer is the turn's `turn.end` (status cancelled), a session event.
                    Ok(())
                } else {
                    Err(ClientError::new(
                        ErrorCode::NotFound,
                        format!("no turn {turn_id} is running in session {session_id}"),
                    ))
                }
            }
            ClientFrame::ToolDecide(decide) => {
                self.require_member(&decide.session_id)?;
                self.state
                    .approvals
                    .decide(
                        &self.access,
                        &decide.session_id,
                        &decide.call_id,
                        decide.approved,
                    )
                    .await?;
                self.reply(
                    id,
                    ServerFrame::ToolDecided {
                        session_id: decide.session_id,
                        call_id: decide.call_id,
                        approved: decide.approved,
                    },
                );
                Ok(())
            }
            ClientFrame::AuthRefresh(refresh) => self.refresh(id, &refresh.token).await,
        }
    }

    /// Replace the token: same `sub` and org only; groups and roles may change.
    async fn refresh(&mut self, id: Option<String>, token: &str) -> Result<(), ClientError> {
        let renewed = self.state.auth.verify(token).await?;
        if self.access.anonymous
            || renewed.access.user_id != self.access.user_id
            || renewed.access.org_id != self.access.org_id
        {
            return Err(ClientError::forbidden(
                "auth.refresh must carry a token for the same user (sub) and org as the connection; reconnect to change identity",
            ));
        }
        let expires_at = renewed.expires_at.unwrap_or(0);
        self.access = renewed.access;
        self.expires_at = renewed.expires_at;
        self.reply(id, ServerFrame::AuthRefreshed { expires_at });
        Ok(())
    }

    fn require_member(&self, session_id: &str) -> Result<(), ClientError> {
        if self.sessions.contains(session_id) {
            Ok(())
        } else {
            Err(ClientError::forbidden(format!(
                "join session {session_id} first (session.join) before sending to it"
            )))
        }
    }

    fn check_session_limit(&self, session_id: Option<&str>) -> Result<(), ClientError> {
        let max = self.state.config.max_sessions_per_connection as usize;
        let already = session_id.is_some_and(|s| self.sessions.contains(s));
        if !already && self.sessions.len() >= max {
            return Err(ClientError::new(
                ErrorCode::Conflict,
                format!(
                    "this connection already joined {max} sessions, the limit; leave one first"
                ),
            ));
        }
        Ok(())
    }

    async fn create_session(
        &mut self,
        id: Option<String>,
        create: SessionCreate,
    ) -> Result<(), ClientError> {
        if self.state.shutdown.is_draining() {
            return Err(ClientError::draining());
        }
        if let Some(metadata) = &create.metadata {
            let size = serde_json::to_vec(metadata)
                .map(|v| v.len())
                .unwrap_or(usize::MAX);
            if size > MAX_METADATA_BYTES {
                return Err(ClientError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "metadata is {size} bytes serialized; the limit is {MAX_METADATA_BYTES}"
                    ),
                ));
            }
        }
        self.check_session_limit(None)?;
        let (record, key) = self
            .state
            .sessions
            .create(&self.access, create.metadata)
            .await?;
        let stream = session_stream(&record.session_id)?;
        let session_id = record.session_id.clone();
        self.sessions.insert(session_id.clone());
        let joined = self
            .state
            .registry
            .join_with_replay(&stream, self.id, &self.outbound, None, |info| {
                ServerReply::new(
                    id,
                    ServerFrame::SessionCreated {
                        session_id: session_id.clone(),
                        session_key: key,
                        seq: info.last_seq,
                    },
                )
                .to_json()
                .into()
            })
            .await;
        if joined.is_err() {
            self.sessions.remove(&record.session_id);
        }
        joined
    }

    async fn join_session(
        &mut self,
        id: Option<String>,
        join: SessionJoin,
    ) -> Result<(), ClientError> {
        let stream = session_stream(&join.session_id)?;
        self.check_session_limit(Some(&join.session_id))?;
        let record = self.state.sessions.get(&join.session_id).await?;
        match record {
            Some(record) if record.may_join(&self.access, join.session_key.as_deref()) => {}
            _ => return Err(ClientError::session_not_found()),
        }
        let session_id = join.session_id.clone();
        self.sessions.insert(session_id.clone());
        let joined = self
            .state
            .registry
            .join_with_replay(&stream, self.id, &self.outbound, join.after_seq, |info| {
                ServerReply::new(
                    id,
                    ServerFrame::SessionJoined {
                        session_id,
                        last_seq: info.last_seq,
                        recovered: !info.trimmed,
                    },
                )
                .to_json()
                .into()
            })
            .await;
        if joined.is_err() {
            self.sessions.remove(&join.session_id);
        }
        joined
    }

    async fn send_message(
        &mut self,
        id: Option<String>,
        send: MessageSend,
    ) -> Result<(), ClientError> {
        if self.state.shutdown.is_draining() {
            return Err(ClientError::draining());
        }
        self.require_member(&send.session_id)?;
        if send.text.trim().is_empty() {
            return Err(ClientError::bad_request("message.send: \"text\" is empty"));
        }
        let max = self.state.config.max_text_chars as usize;
        let chars = send.text.chars().count();
        if chars > max {
            return Err(ClientError::new(
                ErrorCode::TooLarge,
                format!("text is {chars} characters; the limit is {max}"),
            ));
        }
        if let Some(cmid) = &send.client_message_id
            && (cmid.is_empty() || cmid.chars().count() > switchboard_protocol::MAX_FRAME_ID_CHARS)
        {
            return Err(ClientError::bad_request(format!(
                "message.send: \"client_message_id\" must be 1 to {} characters",
                switchboard_protocol::MAX_FRAME_ID_CHARS
            )));
        }
        self.state.turns.has_room(&send.session_id)?;
        let stream = session_stream(&send.session_id)?;
        let message_id = new_id("m");
        if let Some(cmid) = &send.client_message_id
            && let Some(earlier) = self
                .state
                .sessions
                .reserve_message(&send.session_id, cmid, &message_id)
                .await?
        {
            self.reply(
                id,
                ServerFrame::MessageAccepted {
                    session_id: send.session_id,
                    message_id: earlier.id,
                    seq: earlier.seq.unwrap_or(0),
                },
            );
            return Ok(());
        }
        let body = EventBody::Message {
            message_id: message_id.clone(),
            role: Role::User,
            text: send.text.clone(),
            author: self.access.user_id.clone(),
        };
        let appended = self.state.events.append(&stream, body).await;
        if let Some(cmid) = &send.client_message_id {
            let seq = appended.as_ref().ok().map(|e| e.seq);
            self.state
                .sessions
                .settle_message(&send.session_id, cmid, &message_id, seq)
                .await?;
        }
        let event = appended?;
        self.reply(
            id,
            ServerFrame::MessageAccepted {
                session_id: send.session_id.clone(),
                message_id: message_id.clone(),
                seq: event.seq,
            },
        );
        self.state.turns.enqueue(TurnJob {
            session_id: send.session_id,
            stream,
            message_id,
            question: send.text,
            access: self.access.clone(),
        });
        Ok(())
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

fn rate_limited(rate: u32) -> ClientError {
    ClientError::new(
        ErrorCode::RateLimited,
        format!("more than {rate} frames per second; this frame was not processed, slow down"),
    )
}

/// The longest session id a client may send (server-made ids are 34 characters).
const MAX_SESSION_ID_CHARS: usize = 128;

fn session_stream(session_id: &str) -> Result<StreamName, ClientError> {
    if session_id.chars().count() > MAX_SESSION_ID_CHARS {
        return Err(ClientError::bad_request(format!(
            "session_id: at most {MAX_SESSION_ID_CHARS} characters"
        )));
    }
    StreamName::session(session_id)
        .map_err(|e| ClientError::bad_request(format!("session_id: {e}")))
}
