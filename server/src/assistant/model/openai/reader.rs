//! The SSE body of one response read into model chunks: events decoded, deltas that
//! arrive together coalesced into one, and silence past the idle timeout turned into
//! an error.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, Stream, StreamExt};
use tokio::time::Instant;

use super::chunk::ChunkDecoder;
use super::config::OpenAiConfig;
use super::errors::{idle_error, malformed};
use crate::assistant::model::{ModelChunk, ModelError};

/// After `[DONE]`, how long to wait for the body's end so the connection can be
/// reused (a TLS handshake per turn costs more than this).
const BODY_END_GRACE: Duration = Duration::from_millis(100);

type SseEvents = BoxStream<'static, Result<eventsource_stream::Event, EventStreamError<String>>>;

/// When the body last sent a byte. SSE comments (`: keep-alive`) are bytes but no
/// events, and a model that keeps its connection alive that way is not silent.
#[derive(Debug)]
struct ByteClock {
    start: Instant,
    last_byte_ms: AtomicU64,
}

impl ByteClock {
    fn new() -> ByteClock {
        ByteClock {
            start: Instant::now(),
            last_byte_ms: AtomicU64::new(0),
        }
    }

    fn tick(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_byte_ms.store(ms, Ordering::Relaxed);
    }

    fn last_byte(&self) -> Instant {
        self.start + Duration::from_millis(self.last_byte_ms.load(Ordering::Relaxed))
    }
}

/// Turns the SSE body of one response into model chunks: decodes, assembles tool
/// calls, coalesces deltas, and watches for silence.
pub(super) struct ReplyReader {
    events: SseEvents,
    clock: Arc<ByteClock>,
    decoder: ChunkDecoder,
    idle_timeout: Duration,
    coalesce_window: Duration,
    /// When the previous delta arrived: a delta close behind it is part of a burst.
    last_delta_at: Option<Instant>,
    /// Decoded chunks not yet handed out; an error always comes last.
    ready: VecDeque<Result<ModelChunk, ModelError>>,
    ended: bool,
    /// The stream ended with `[DONE]` (not with the body's end).
    saw_done: bool,
    turn_id: String,
}

impl ReplyReader {
    pub(super) fn new<S>(bytes: S, config: &OpenAiConfig, turn_id: String) -> ReplyReader
    where
        S: Stream<Item = Result<Bytes, String>> + Send + 'static,
    {
        let clock = Arc::new(ByteClock::new());
        let ticking = clock.clone();
        let events = bytes.inspect(move |_| ticking.tick()).eventsource().boxed();
        ReplyReader {
            events,
            clock,
            decoder: ChunkDecoder::default(),
            idle_timeout: config.idle_timeout,
            coalesce_window: config.coalesce_window,
            last_delta_at: None,
            ready: VecDeque::new(),
            ended: false,
            saw_done: false,
            turn_id,
        }
    }

    pub(super) async fn next(&mut self) -> Option<Result<ModelChunk, ModelError>> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            if self.ended {
                if std::mem::take(&mut self.saw_done) {
                    // Read the body's end (it follows `[DONE]` at once) so the
                    // connection goes back to the pool instead of being closed.
                    let _ = tokio::time::timeout(BODY_END_GRACE, self.events.next()).await;
                }
                return None;
            }
            self.read_batch().await;
        }
    }

    /// Read at least one event; when it brings a delta, keep reading the deltas that
    /// follow at once, so a fast model yields a few larger deltas instead of one
    /// event (and one backplane append) per token. An isolated delta goes out
    /// without waiting; one close behind the previous waits at most the window.
    async fn read_batch(&mut self) {
        let first = self.next_event_within_idle().await;
        let burst = self
            .last_delta_at
            .is_some_and(|t| t.elapsed() < self.coalesce_window);
        self.handle(first);
        if !matches!(self.ready.back(), Some(Ok(ModelChunk::Delta(_)))) || self.ended {
            return;
        }
        let deadline = Instant::now() + self.coalesce_window;
        loop {
            let next = if burst {
                match tokio::time::timeout_at(deadline, self.events.next()).await {
                    Ok(event) => event.map(|e| e.map_err(ReadError::Stream)),
                    Err(_) => return,
                }
            } else {
                match self.events.next().now_or_never() {
                    Some(event) => event.map(|e| e.map_err(ReadError::Stream)),
                    None => return,
                }
            };
            self.handle(next);
            if !matches!(self.ready.back(), Some(Ok(ModelChunk::Delta(_)))) || self.ended {
                return;
            }
        }
    }

    /// The next event, or `Err` when the body was silent for the idle timeout.
    async fn next_event_within_idle(
        &mut self,
    ) -> Option<Result<eventsource_stream::Event, ReadError>> {
        loop {
            let deadline = self.clock.last_byte() + self.idle_timeout;
            match tokio::time::timeout_at(deadline, self.events.next()).await {
                Ok(event) => return event.map(|e| e.map_err(ReadError::Stream)),
                // Bytes without events (SSE comments) moved the clock: wait again.
                Err(_) if self.clock.last_byte() + self.idle_timeout > Instant::now() => {}
                Err(_) => return Some(Err(ReadError::Idle)),
            }
        }
    }

    fn handle(&mut self, event: Option<Result<eventsource_stream::Event, ReadError>>) {
        match event {
            None => self.body_ended(),
            Some(Err(e)) => match e {
                ReadError::Idle => self.fail(idle_error(self.idle_timeout)),
                ReadError::Stream(EventStreamError::Transport(reason)) => {
                    if self.decoder.finished {
                        // The reply was whole; only the trailer (usage, [DONE]) is lost.
                        tracing::debug!(turn_id = %self.turn_id, %reason, "model stream cut after its finish");
                        self.body_ended();
                    } else {
                        tracing::warn!(turn_id = %self.turn_id, %reason, "model stream cut");
                        self.fail(closed_early());
                    }
                }
                ReadError::Stream(other) => self.fail(malformed(other)),
            },
            Some(Ok(event)) => match self.decoder.decode(&event.data) {
                Err(error) => self.fail(error),
                Ok(decoded) => {
                    if let Some(text) = decoded.delta {
                        self.last_delta_at = Some(Instant::now());
                        match self.ready.back_mut() {
                            Some(Ok(ModelChunk::Delta(batch))) => batch.push_str(&text),
                            _ => self.ready.push_back(Ok(ModelChunk::Delta(text))),
                        }
                    }
                    if let Some(calls) = decoded.tool_calls {
                        self.ready.push_back(Ok(ModelChunk::ToolCalls(calls)));
                    }
                    if let Some(usage) = decoded.usage {
                        self.ready.push_back(Ok(ModelChunk::Usage(usage)));
                    }
                    if decoded.done {
                        self.ended = true;
                        self.saw_done = true;
                    }
                }
            },
        }
    }

    /// The body ended (no more bytes).
    fn body_ended(&mut self) {
        self.ended = true;
        if !self.decoder.finished {
            tracing::warn!(turn_id = %self.turn_id, "model stream ended without a finish_reason or [DONE]");
            self.fail(closed_early());
            return;
        }
        match self.decoder.tool_calls.take() {
            Ok(Some(calls)) => self.ready.push_back(Ok(ModelChunk::ToolCalls(calls))),
            Ok(None) => {}
            Err(error) => self.fail(error),
        }
    }

    fn fail(&mut self, error: ModelError) {
        self.ended = true;
        self.ready.push_back(Err(error));
    }
}

enum ReadError {
    Idle,
    Stream(EventStreamError<String>),
}

fn closed_early() -> ModelError {
    ModelError("the model's stream ended before the reply was finished".into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use switchboard_protocol::Usage;

    use super::super::config::tests::config;
    use super::*;

    fn content(text: &str) -> String {
        json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
            .to_string()
    }

    fn sse(data: &str) -> String {
        format!("data: {data}\n\n")
    }

    /// A scripted body: each piece after its pause; then the body ends, or hangs.
    fn body(
        pieces: Vec<(u64, Result<&str, &str>)>,
        hang_at_end: bool,
    ) -> impl Stream<Item = Result<Bytes, String>> + Send + 'static {
        let pieces: VecDeque<(Duration, Result<Bytes, String>)> = pieces
            .into_iter()
            .map(|(ms, piece)| {
                let piece = piece
                    .map(|s| Bytes::from(s.to_string()))
                    .map_err(str::to_string);
                (Duration::from_millis(ms), piece)
            })
            .collect();
        futures_util::stream::unfold(pieces, move |mut pieces| async move {
            let Some((pause, piece)) = pieces.pop_front() else {
                if hang_at_end {
                    std::future::pending::<()>().await;
                }
                return None;
            };
            tokio::time::sleep(pause).await;
            Some((piece, pieces))
        })
    }

    async fn read_all(
        bytes: impl Stream<Item = Result<Bytes, String>> + Send + 'static,
    ) -> Vec<Result<ModelChunk, ModelError>> {
        let mut reader = ReplyReader::new(bytes, &config(), "t_1".into());
        let mut out = Vec::new();
        while let Some(item) = reader.next().await {
            out.push(item);
        }
        out
    }

    fn deltas(items: &[Result<ModelChunk, ModelError>]) -> Vec<String> {
        items
            .iter()
            .filter_map(|item| match item {
                Ok(ModelChunk::Delta(text)) => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    /// Events split anywhere across reads still decode in order; the body's end after
    /// `[DONE]` ends the reply.
    #[tokio::test(start_paused = true)]
    async fn events_split_across_reads_decode_in_order() {
        let whole = [
            sse(&content("Hel")),
            sse(&content("lo, ")),
            sse(&content("wörld")),
            sse(
                &json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                    .to_string(),
            ),
            sse(
                &json!({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}})
                    .to_string(),
            ),
            sse("[DONE]"),
        ]
        .concat();
        // Cut into 7-byte pieces, some in the middle of a multi-byte character.
        let bytes = whole.as_bytes();
        let pieces: Vec<Bytes> = bytes.chunks(7).map(Bytes::copy_from_slice).collect();
        let stream = futures_util::stream::iter(pieces.into_iter().map(Ok::<_, String>));
        let items = read_all(stream).await;
        assert_eq!(deltas(&items).concat(), "Hello, wörld");
        assert_eq!(
            items.last().unwrap().as_ref().unwrap(),
            &ModelChunk::Usage(Usage {
                prompt_tokens: 5,
                completion_tokens: 3,
                total_tokens: 8
            })
        );
        assert!(items.iter().all(Result::is_ok), "{items:?}");
    }

    /// Deltas closer together than the window are sent as fewer, larger deltas (the
    /// first at once); spaced deltas go out one by one. The text is the same.
    #[tokio::test(start_paused = true)]
    async fn fast_deltas_are_coalesced_and_slow_ones_are_not() {
        let tokens: Vec<String> = (0..40).map(|i| format!("t{i} ")).collect();
        let events: Vec<String> = tokens.iter().map(|t| sse(&content(t))).collect();
        let finish = sse(
            &json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).to_string(),
        );

        let mut fast: Vec<(u64, Result<&str, &str>)> =
            events.iter().map(|e| (1, Ok(e.as_str()))).collect();
        fast.push((1, Ok(finish.as_str())));
        let items = read_all(body(fast, false)).await;
        let fast_deltas = deltas(&items);
        assert_eq!(fast_deltas.concat(), tokens.concat());
        assert_eq!(fast_deltas[0], "t0 ", "the first delta is not held back");
        assert!(
            fast_deltas.len() <= 40 / 4,
            "40 deltas 1 ms apart in a 5 ms window should make at most 10: {fast_deltas:?}"
        );
        assert!(
            fast_deltas.len() >= 40 / 6,
            "a batch spans one window, not the whole reply: {fast_deltas:?}"
        );

        let mut slow: Vec<(u64, Result<&str, &str>)> =
            events.iter().map(|e| (20, Ok(e.as_str()))).collect();
        slow.push((20, Ok(finish.as_str())));
        let items = read_all(body(slow, false)).await;
        assert_eq!(
            deltas(&items),
            tokens,
            "deltas 20 ms apart go out one by one"
        );
    }

    /// Deltas already read when the stream breaks are handed out before the error.
    #[tokio::test(start_paused = true)]
    async fn a_cut_stream_keeps_the_batched_text_then_fails() {
        let (a, b) = (sse(&content("part")), sse(&content("ial")));
        let items = read_all(body(
            vec![(0, Ok(a.as_str())), (1, Ok(b.as_str())), (1, Err("reset"))],
            false,
        ))
        .await;
        assert_eq!(deltas(&items).concat(), "partial");
        assert_eq!(
            items.last().unwrap().as_ref().unwrap_err().0,
            "the model's stream ended before the reply was finished"
        );

        let items = read_all(body(vec![(0, Ok(a.as_str()))], false)).await;
        assert_eq!(deltas(&items), ["part"]);
        assert_eq!(
            items.last().unwrap().as_ref().unwrap_err().0,
            "the model's stream ended before the reply was finished",
            "a body that ends with no finish_reason and no [DONE] ended early"
        );
    }

    /// Silence past the idle timeout fails the reply; keep-alive comments are not
    /// silence.
    #[tokio::test(start_paused = true)]
    async fn silence_fails_but_keep_alive_comments_do_not() {
        let a = sse(&content("a"));
        let items = read_all(body(vec![(0, Ok(a.as_str()))], true)).await;
        assert_eq!(deltas(&items), ["a"]);
        assert_eq!(
            items.last().unwrap().as_ref().unwrap_err().0,
            "the model sent nothing for 1s (--model-idle-timeout)"
        );

        let done = [
            sse(
                &json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                    .to_string(),
            ),
            sse("[DONE]"),
        ]
        .concat();
        let mut pieces: Vec<(u64, Result<&str, &str>)> = vec![(0, Ok(a.as_str()))];
        pieces.extend((0..5).map(|_| (600, Ok(": keep-alive\n\n"))));
        pieces.push((600, Ok(done.as_str())));
        let items = read_all(body(pieces, false)).await;
        assert!(items.iter().all(Result::is_ok), "{items:?}");
        assert_eq!(deltas(&items), ["a"]);
    }
}
