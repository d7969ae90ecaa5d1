//! One WebSocket connection: a reader task and a writer task joined by a bounded
//! outbound queue.
//!
//! ```text
//!                  ┌──────────── reader task (reader.rs) ─────────────┐
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
//!
//! - [`reader`]: the read loop: rate limit, size, parse, strikes (4029), token expiry
//!   (4401), `goaway` (1012);
//! - [`commands`]: what each client frame does (docs/protocol.md §3);
//! - [`writer`]: the only code that writes to the socket;
//! - [`heartbeat`]: one sweeper pings every socket and closes silent ones (4000);
//! - [`presence`]: entering and leaving a session's presence, and `typing`;
//! - [`rate_limit`]: the frame rate limit.
//!
//! The bounded queue between them is `fanout::outbound`, where a slow consumer is
//! decided (4008).

pub mod commands;
mod conversations;
mod handoff;
pub mod heartbeat;
mod presence;
mod rate_limit;
pub mod reader;
pub mod writer;

#[cfg(test)]
mod tests;

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::FutureExt;
use futures_util::future::Either;
use futures_util::{Sink, Stream};
use switchboard_protocol::{CloseCode, ErrorCode, ServerReply};
use tokio::sync::OwnedSemaphorePermit;

use crate::access::Authenticated;
use crate::error::ClientError;
use crate::fanout::Outbound;
use crate::state::AppState;
use reader::Connection;

/// How long teardown waits for the writer to send its close frame.
const WRITER_EXIT_PATIENCE: Duration = Duration::from_secs(6);

/// What the `/ws` handler learned before the upgrade.
pub struct Handshake {
    /// The principal, or why the credentials were refused.
    pub access: Result<Authenticated, ClientError>,
    /// The peer address, for logs.
    pub peer: Option<std::net::SocketAddr>,
    /// The visitor's address (`http::client_ip`): per-visitor limits key anonymous
    /// visitors by it. `None` for in-process connections.
    pub client: Option<std::net::IpAddr>,
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
            let connection = Connection::open(
                state,
                outbound,
                authenticated,
                handshake.peer,
                handshake.client,
            );
            // A panic must not take the process's bookkeeping with it: the
            // connection's `Drop` leaves its streams and closes it with 1011.
            let task = AssertUnwindSafe(connection.read_until_closed(stream, writer, permit));
            Either::Left(task.catch_unwind().map(|outcome| {
                if let Err(panic) = outcome {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tracing::error!(panic = %what, "a connection task panicked; its connection was closed with 1011");
                }
            }))
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

/// Send an `error` frame and count it.
fn send_error(state: &AppState, outbound: &Outbound, re: Option<String>, e: &ClientError) {
    state
        .metrics
        .errors_sent
        .with_label_values(&[e.code.as_str()])
        .inc();
    let _ = outbound.enqueue(
        ServerReply::error_with_retry(
            re,
            e.code,
            e.message.clone(),
            e.retry_after
                .map(|wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
        )
        .to_json()
        .into(),
    );
}
