//! An SSE stream as a member of its session's stream, from the join to the leave.
//!
//! The join runs in a task of its own: its replay waits for room in the queue, which
//! only the response body — polled once the handler has answered — makes. The handler
//! waits for the join's first step (the stream's head was read and `session.joined`
//! queued), so a join that fails before any event answers with an HTTP error rather
//! than an empty stream.
//!
//! What ends the membership: the client going away (the body is dropped), a slow
//! reader (the queue overflowed: closed abortively), the replica draining (`goaway`),
//! the token's `exp` (`error` `token_expired`). Each is told in the stream's final
//! `close` event ([`super::body`]).

use std::sync::{Arc, Mutex};

use switchboard_backplane::{Seq, StreamName};
use switchboard_protocol::{CloseCode, ErrorCode, ServerFrame, ServerReply};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::body::Feed;
use crate::connection::reader::token_deadline;
use crate::error::ClientError;
use crate::fanout::{JoinInfo, Outbound, new_connection_id};
use crate::http::visitors::address_limits::AddressPermit;
use crate::state::AppState;

/// What the handler learned and holds for the stream's whole life.
pub struct Opening {
    pub stream: StreamName,
    /// The session's named assistant, for `session.joined`.
    pub assistant: Option<String>,
    /// Events after this `seq` are replayed first (`Last-Event-ID`, `after_seq`).
    pub after: Option<Seq>,
    /// The token's `exp` (seconds since the epoch): the stream ends then.
    pub expires_at: Option<u64>,
    /// The place in `--max-connections`.
    pub process_permit: OwnedSemaphorePermit,
    /// The place in `--max-websockets-per-client`.
    pub client_permit: AddressPermit,
}

type Ready = Arc<Mutex<Option<oneshot::Sender<Result<(), ClientError>>>>>;

fn take(ready: &Ready) -> Option<oneshot::Sender<Result<(), ClientError>>> {
    ready.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// Join `opening.stream` as a new member; the feed of its events once the join has
/// read the stream's head, or why it could not.
pub async fn open(state: AppState, opening: Opening) -> Result<Feed, ClientError> {
    let (outbound, receiver) = Outbound::new(state.config.outbound_queue_bytes as usize);
    // From here on, dropping the feed (the client went away, even before the answer)
    // ends the membership.
    let feed = Feed::new(receiver);
    let (ready_tx, ready_rx) = oneshot::channel();
    let ready: Ready = Arc::new(Mutex::new(Some(ready_tx)));
    state.metrics.sse_streams.inc();
    let tracker = state.tracker.clone();
    tracker.spawn(run(state, opening, outbound, ready));
    match ready_rx.await {
        Ok(Ok(())) => Ok(feed),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ClientError::new(
            ErrorCode::Unavailable,
            "the stream closed while it opened; retry",
        )),
    }
}

/// The membership: join, wait for its end, leave.
async fn run(state: AppState, opening: Opening, outbound: Arc<Outbound>, ready: Ready) {
    let Opening {
        stream,
        assistant,
        after,
        expires_at,
        process_permit,
        client_permit,
    } = opening;
    let id = new_connection_id();
    let session_id = stream.id().to_string();
    let joined_ready = ready.clone();
    let joined = move |info: JoinInfo| {
        if let Some(ready) = take(&joined_ready) {
            let _ = ready.send(Ok(()));
        }
        ServerReply::new(
            None,
            ServerFrame::SessionJoined {
                session_id,
                last_seq: info.last_seq,
                recovered: !info.trimmed,
                assistant,
            },
        )
        .to_json()
        .into()
    };
    let joined = state
        .registry
        .join_with_replay(&stream, id, &outbound, after, joined)
        .await;
    match joined {
        Ok(()) => until_closed(&state, &outbound, expires_at).await,
        Err(e) => match take(&ready) {
            // Before any event: the handler answers with the error.
            Some(ready) => {
                outbound.peer_gone();
                let _ = ready.send(Err(e));
            }
            // Mid-replay (the store stopped answering, the reader stopped reading).
            None => {
                enqueue(&outbound, ServerReply::error(None, e.code, e.message));
                outbound.close_with(CloseCode::InternalError);
            }
        },
    }
    state.registry.leave(&stream, id);
    state
        .metrics
        .sse_closes
        .with_label_values(&[close_reason(outbound.close_code())])
        .inc();
    state.metrics.sse_streams.dec();
    drop(process_permit);
    drop(client_permit);
}

/// Wait until the stream closes: the client went away or read too slowly, or tell it
/// why it ends — the replica drains, the token expired.
async fn until_closed(state: &AppState, outbound: &Outbound, expires_at: Option<u64>) {
    let goaway = state.shutdown.goaway_signal();
    let deadline = token_deadline(expires_at);
    let expired = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        () = outbound.closing() => {}
        () = expired => {
            let frame = ServerReply::error(
                None,
                ErrorCode::TokenExpired,
                "the token expired: reconnect with a new token",
            );
            enqueue(outbound, frame);
            outbound.close_with(CloseCode::Unauthorized);
        }
        () = goaway.cancelled() => {
            let frame = ServerReply::new(None, ServerFrame::Goaway { reason: "draining".into() });
            enqueue(outbound, frame);
            outbound.close_with(CloseCode::Draining);
        }
    }
}

fn enqueue(outbound: &Outbound, frame: ServerReply) {
    let _ = outbound.enqueue(frame.to_json().into());
}

/// The `reason` label of `switchboard_sse_closes_total`.
fn close_reason(code: Option<CloseCode>) -> &'static str {
    match code {
        None => "client",
        Some(CloseCode::SlowConsumer) => "slow_consumer",
        Some(CloseCode::Draining) => "draining",
        Some(CloseCode::Unauthorized) => "token_expired",
        Some(_) => "error",
    }
}
