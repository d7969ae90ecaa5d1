//! The response body of an SSE stream: the member's outbound queue, written out as
//! SSE events, then a final `close` event (docs/protocol.md §6.16).
//!
//! Each queued frame is one event: `data:` is the frame exactly as a WebSocket member
//! receives it, `event:` its `type`, and `id:` its `seq` for session events (replies
//! such as `session.joined`, `goaway` and `error` have none, so `Last-Event-ID` stays
//! the last event's `seq`). The body is the queue's writer: when the client stops
//! reading, hyper stops polling it, the queue fills and the member is closed as a slow
//! consumer, exactly as a WebSocket's writer task would.

use std::borrow::Cow;
use std::convert::Infallible;

use axum::extract::ws::Utf8Bytes;
use axum::http::{HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use switchboard_protocol::CloseCode;

use super::{KEEP_ALIVE, RETRY};
use crate::fanout::outbound::{OutboundReceiver, Outgoing};

/// The member's queue, read by the response body. Dropping it (the client went away)
/// ends the membership.
pub struct Feed {
    receiver: OutboundReceiver,
    /// The first event carries the `retry:` hint.
    first: bool,
    finished: bool,
}

impl Drop for Feed {
    fn drop(&mut self) {
        // The first close code chosen wins: after an orderly close this changes nothing.
        self.receiver.outbound.peer_gone();
    }
}

impl Feed {
    pub(super) fn new(receiver: OutboundReceiver) -> Feed {
        Feed {
            receiver,
            first: true,
            finished: false,
        }
    }

    /// The SSE events, ending with `close` when the server ended the stream.
    pub fn events(self) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
        futures_util::stream::unfold(self, |mut feed| async move {
            let event = feed.next_event().await?;
            Some((Ok(event), feed))
        })
    }

    async fn next_event(&mut self) -> Option<Event> {
        if self.finished {
            return None;
        }
        let outbound = self.receiver.outbound.clone();
        let abort = outbound.abort_token().clone();
        loop {
            let next = tokio::select! {
                biased;
                () = abort.cancelled() => break,
                next = self.receiver.rx.recv() => match next {
                    Some(next) => next,
                    None => break,
                },
                // Orderly close: reached only once the queue is empty (biased order).
                () = outbound.closing() => break,
            };
            if let Outgoing::Text(text) = next {
                outbound.dequeued(text.len());
                let mut event = event_of(&text);
                if std::mem::take(&mut self.first) {
                    event = event.retry(RETRY);
                }
                return Some(event);
            }
        }
        self.finished = true;
        // Release what is still queued (an abortive close drops it) at once.
        self.receiver.rx.close();
        while self.receiver.rx.try_recv().is_ok() {}
        outbound.close_code().map(close_event)
    }
}

/// The response: `text/event-stream`, `Cache-Control: no-cache`, a `: ping` comment
/// after [`KEEP_ALIVE`] without an event, and `X-Accel-Buffering: no` (nginx buffers
/// responses unless told not to; an event stream must not wait).
impl IntoResponse for Feed {
    fn into_response(self) -> Response {
        let mut response = Sse::new(self.events())
            .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("ping"))
            .into_response();
        response.headers_mut().insert(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        );
        response
    }
}

/// What the SSE fields need of a frame.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    seq: Option<u64>,
}

/// One queued frame as an SSE event.
fn event_of(text: &Utf8Bytes) -> Event {
    let mut event = Event::default();
    if let Ok(head) = serde_json::from_str::<Head<'_>>(text.as_str()) {
        // Types are the protocol's own names; anything else is not a field value.
        if !head.kind.is_empty() && !head.kind.contains(['\r', '\n', '\0']) {
            event = event.event(head.kind);
        }
        if let Some(seq) = head.seq {
            event = event.id(seq.to_string());
        }
    }
    event.data(text.as_str())
}

/// The last event of a stream the server ended: the WebSocket close code it would
/// have closed with, so a client decides the same way whether and how to resume.
fn close_event(code: CloseCode) -> Event {
    let data = json!({"type": "close", "code": code.code(), "reason": code.reason()});
    Event::default().event("close").data(data.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fanout::Outbound;
    use futures_util::StreamExt;

    async fn collect(feed: Feed) -> String {
        let events: Vec<Event> = feed.events().map(|e| e.unwrap()).collect().await;
        let mut text = String::new();
        for event in events {
            let body =
                axum::response::sse::Sse::new(futures_util::stream::iter([Ok::<_, Infallible>(
                    event,
                )]));
            let response = axum::response::IntoResponse::into_response(body);
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            text.push_str(std::str::from_utf8(&bytes).unwrap());
        }
        text
    }

    /// Session events carry their `seq` as the id and their type as the event name;
    /// replies carry no id; the first event has the `retry:` hint; an orderly close
    /// sends what is queued, then `close` with the WebSocket close code.
    #[tokio::test]
    async fn frames_become_events_and_an_orderly_close_ends_with_close() {
        let (outbound, receiver) = Outbound::new(1 << 20);
        let feed = Feed::new(receiver);
        let joined =
            r#"{"type":"session.joined","session_id":"s_1","last_seq":0,"recovered":true}"#;
        let delta =
            r#"{"session_id":"s_1","seq":7,"ts":1,"type":"turn.delta","turn_id":"t","text":"hi"}"#;
        let goaway = r#"{"type":"goaway","reason":"draining"}"#;
        for frame in [joined, delta, goaway] {
            outbound.enqueue(frame.into()).unwrap();
        }
        outbound.close_with(CloseCode::Draining);
        let text = collect(feed).await;
        let expected = format!(
            "event: session.joined\ndata: {joined}\nretry: 2000\n\n\
             event: turn.delta\nid: 7\ndata: {delta}\n\n\
             event: goaway\ndata: {goaway}\n\n\
             event: close\ndata: "
        );
        assert!(text.starts_with(&expected), "{text}");
        assert!(
            text.ends_with("\n\n") && text.contains("\"code\":1012"),
            "{text}"
        );
        assert_eq!(outbound.queued_bytes(), 0);
    }

    /// A slow consumer's close drops what is queued and says 4008.
    #[tokio::test]
    async fn a_slow_consumer_is_told_4008_and_its_queue_dropped() {
        let (outbound, receiver) = Outbound::new(1 << 20);
        let feed = Feed::new(receiver);
        outbound.enqueue(r#"{"type":"x","seq":1}"#.into()).unwrap();
        outbound.overflowed();
        let text = collect(feed).await;
        assert!(text.starts_with("event: close\n"), "{text}");
        assert!(text.contains("\"code\":4008"), "{text}");
    }

    /// An idle stream says `: ping` every 15 s, and only when idle; the response is
    /// an unbuffered, uncached event stream.
    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_pings_every_15_seconds() {
        let (outbound, receiver) = Outbound::new(1 << 20);
        let response = Feed::new(receiver).into_response();
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["cache-control"], "no-cache");
        assert_eq!(response.headers()["x-accel-buffering"], "no");
        let mut body = response.into_body().into_data_stream();
        let mut next =
            async || String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(next().await, ": ping\n\n");
        assert_eq!(started.elapsed(), KEEP_ALIVE);
        tokio::time::advance(Duration::from_secs(10)).await;
        outbound.enqueue(r#"{"type":"x","seq":1}"#.into()).unwrap();
        assert!(next().await.contains("id: 1"));
        let event_at = tokio::time::Instant::now();
        assert_eq!(next().await, ": ping\n\n");
        assert_eq!(
            event_at.elapsed(),
            KEEP_ALIVE,
            "counted from the last event"
        );
    }

    /// Dropping the feed (the client went away) closes the member's queue.
    #[tokio::test]
    async fn dropping_the_feed_closes_the_queue() {
        let (outbound, receiver) = Outbound::new(1 << 20);
        drop(Feed::new(receiver));
        assert!(outbound.enqueue("{}".into()).is_err());
    }
}
