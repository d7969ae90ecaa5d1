//! The writer task: the only code that writes to a socket.

use std::time::Duration;

use super::outbound::{OutboundReceiver, Outgoing, TryRecvError};
use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt};
use switchboard_protocol::CloseCode;

/// Frames written per flush at most: batching amortizes syscalls under fan-out.
const MAX_BATCH: usize = 64;
/// How long the final close frame (and an orderly flush) may take before the socket
/// is dropped anyway.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Write queued frames until the connection closes, then send the close frame.
///
/// Writes race the abort signal: a peer that stopped reading blocks the socket, and
/// the slow-consumer or heartbeat close must still happen. Interrupting a write is
/// safe — the WebSocket codec keeps a partly written frame buffered and finishes it
/// before the close frame.
pub async fn write_loop<W>(mut sink: W, mut receiver: OutboundReceiver)
where
    W: Sink<Message> + Unpin,
{
    let outbound = receiver.outbound.clone();
    let abort = outbound.abort_token().clone();
    loop {
        let first = tokio::select! {
            biased;
            () = abort.cancelled() => break,
            next = receiver.rx.recv() => match next {
                Some(first) => first,
                None => break,
            },
            // Orderly close: reached only once the queue is empty (biased order).
            () = outbound.closing() => break,
        };
        let written = tokio::select! {
            biased;
            () = abort.cancelled() => break,
            written = write_batch(&mut sink, first, &mut receiver) => written,
        };
        if written.is_err() {
            outbound.peer_gone();
            break;
        }
    }
    if let Some(code) = outbound.close_code() {
        let frame = Message::Close(Some(CloseFrame {
            code: code.code(),
            reason: code.reason().into(),
        }));
        let orderly = code != CloseCode::SlowConsumer && code != CloseCode::HeartbeatTimeout;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            if orderly {
                // Frames queued before the close (an `error`, a `goaway`) go first.
                while let Ok(next) = receiver.rx.try_recv() {
                    if feed(&mut sink, next, &receiver).await.is_err() {
                        return;
                    }
                }
            }
            let _ = sink.send(frame).await;
        })
        .await;
    } else {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.flush()).await;
    }
    // Release queued frames' memory at once, even if the socket lingers.
    receiver.rx.close();
    while receiver.rx.try_recv().is_ok() {}
}

async fn feed<W>(sink: &mut W, next: Outgoing, receiver: &OutboundReceiver) -> Result<(), W::Error>
where
    W: Sink<Message> + Unpin,
{
    match next {
        Outgoing::Text(text) => {
            let len = text.len();
            receiver.outbound.dequeued(len);
            sink.feed(Message::Text(text)).await
        }
        Outgoing::Ping => sink.feed(Message::Ping(bytes::Bytes::new())).await,
    }
}

/// Write `first` and whatever else is already queued (up to [`MAX_BATCH`]), then flush
/// once.
async fn write_batch<W>(
    sink: &mut W,
    first: Outgoing,
    receiver: &mut OutboundReceiver,
) -> Result<(), W::Error>
where
    W: Sink<Message> + Unpin,
{
    feed(sink, first, receiver).await?;
    for _ in 1..MAX_BATCH {
        match receiver.rx.try_recv() {
            Ok(next) => feed(sink, next, receiver).await?,
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
    sink.flush().await
}
