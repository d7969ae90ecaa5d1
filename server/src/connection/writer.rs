//! The writer task: the only code that writes to a socket.

use std::time::Duration;

use crate::fanout::outbound::{OutboundReceiver, Outgoing, TryRecvError, is_abortive};
use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt};

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
///
/// Not an `async fn`, which would store its arguments twice (rust-lang/rust#62958):
/// this future lives as long as the connection.
#[allow(clippy::manual_async_fn)]
pub fn write_loop<W>(mut sink: W, mut receiver: OutboundReceiver) -> impl Future<Output = ()>
where
    W: Sink<Message> + Unpin,
{
    async move {
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
        // Boxed: the close runs once, and inline its state would be in every idle
        // connection's writer task (docs/benchmarks.md).
        Box::pin(close(&mut sink, &receiver)).await;
        // Release queued frames' memory at once, even if the socket lingers.
        receiver.rx.close();
        while receiver.rx.try_recv().is_ok() {}
    }
}

/// Send the close frame: after what is queued for an orderly close, at once for an
/// abortive one. Without a close code the peer is gone: only flush.
async fn close<W>(sink: &mut W, receiver: &OutboundReceiver)
where
    W: Sink<Message> + Unpin,
{
    if let Some(code) = receiver.outbound.close_code() {
        let frame = Message::Close(Some(CloseFrame {
            code: code.code(),
            reason: code.reason().into(),
        }));
        let orderly = !is_abortive(code);
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            if orderly {
                // Frames queued before the close (an `error`, a `goaway`) go first.
                while let Ok(next) = receiver.rx.try_recv() {
                    if feed(sink, next, receiver).await.is_err() {
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
