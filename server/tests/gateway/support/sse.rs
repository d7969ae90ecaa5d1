//! A Server-Sent Events client for `GET /v1/sessions/{id}/stream`: the response body
//! parsed by `eventsource-stream`, each event's `data` read as JSON; every wait is
//! bounded by [`WAIT`].

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use super::WAIT;
use super::http::Reply;

/// One event as a client sees it.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// `event:`.
    pub event: String,
    /// The last `id:` seen so far (what `Last-Event-ID` would be).
    pub last_id: String,
    /// `retry:`, if this event had one.
    pub retry: Option<Duration>,
    /// `data:`, parsed.
    pub data: Value,
}

type Events = Pin<Box<dyn Stream<Item = Option<SseEvent>> + Send>>;

/// An open event stream.
pub struct SseStream {
    events: Events,
    pub headers: reqwest::header::HeaderMap,
}

impl SseStream {
    /// Open the stream; the refusal's reply if the answer is not `200`.
    pub async fn open(request: reqwest::RequestBuilder) -> Result<SseStream, Reply> {
        let response = tokio::time::timeout(WAIT, request.send())
            .await
            .expect("opening the event stream timed out")
            .expect("opening the event stream failed");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if status != 200 {
            let text = response.text().await.unwrap_or_default();
            let json = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Err(Reply {
                status,
                headers,
                text,
                json,
            });
        }
        let events = response.bytes_stream().eventsource().map(|event| {
            let event = event.ok()?;
            Some(SseEvent {
                data: serde_json::from_str(&event.data)
                    .unwrap_or_else(|e| panic!("data is not JSON ({e}): {}", event.data)),
                event: event.event,
                last_id: event.id,
                retry: event.retry,
            })
        });
        Ok(SseStream {
            events: Box::pin(events),
            headers,
        })
    }

    /// Open the stream; panics unless `200`.
    pub async fn open_ok(request: reqwest::RequestBuilder) -> SseStream {
        match SseStream::open(request).await {
            Ok(stream) => stream,
            Err(reply) => panic!(
                "the event stream was refused: {} {}",
                reply.status, reply.text
            ),
        }
    }

    /// The next event; `None` when the stream ended (or broke).
    pub async fn next(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(WAIT, self.events.next())
            .await
            .unwrap_or_else(|_| panic!("no event within {WAIT:?}"))
            .flatten()
    }

    /// The next event, panicking at the end of the stream.
    pub async fn next_event(&mut self) -> SseEvent {
        self.next().await.expect("the event stream ended")
    }

    /// Events up to and including the first for which `done` is true.
    pub async fn until(&mut self, mut done: impl FnMut(&SseEvent) -> bool) -> Vec<SseEvent> {
        let mut events = Vec::new();
        loop {
            let event = self.next_event().await;
            let stop = done(&event);
            events.push(event);
            if stop {
                return events;
            }
        }
    }

    /// Every event until the stream ends.
    pub async fn until_end(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}
