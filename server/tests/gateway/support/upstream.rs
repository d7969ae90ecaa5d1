//! A fake OpenAI-compatible chat-completions server on `127.0.0.1:0`, scripted per
//! request by the test.
//!
//! Each request takes the next [`Reply`] from the queue (a streamed SSE body, an HTTP
//! error, a hang, silence) and is recorded — method, path, headers, JSON body — so a
//! test can assert on the prompt the gateway sent. A response body that is dropped
//! before it finished (the gateway closed the connection: cancel, drain, idle
//! timeout) counts as a disconnect, which [`Upstream::wait_for_disconnects`] awaits.
//!
//! ```ignore
//! let upstream = Upstream::start().await;
//! upstream.push(Reply::text(&["Hel", "lo"]));
//! // gateway flag: --model-base-url {upstream.base_url()}
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use futures_util::stream;
use serde_json::{Value, json};
use tokio::sync::watch;

/// The model name the helpers put in their chunks.
pub const MODEL: &str = "test-model";

/// One SSE event of a streamed reply: `bytes` written verbatim after `delay`.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub delay: Duration,
    pub bytes: String,
}

impl SseEvent {
    /// `data: <json>\n\n`
    pub fn json(chunk: Value) -> SseEvent {
        SseEvent::raw(format!("data: {chunk}\n\n"))
    }

    /// `data: [DONE]\n\n`
    pub fn done() -> SseEvent {
        SseEvent::raw("data: [DONE]\n\n")
    }

    /// Anything at all, written as is (malformed data, comments, odd line endings).
    pub fn raw(bytes: impl Into<String>) -> SseEvent {
        SseEvent {
            delay: Duration::ZERO,
            bytes: bytes.into(),
        }
    }

    /// The same event, sent `delay` after the previous one.
    pub fn after(mut self, delay: Duration) -> SseEvent {
        self.delay = delay;
        self
    }
}

/// How a streamed body ends once its events are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// `data: [DONE]`, then the body ends cleanly.
    Done,
    /// The body ends cleanly with no `[DONE]` (the events decide what came before).
    Finish,
    /// The connection is cut mid-body: the chunked encoding never terminates.
    Abort,
    /// The body stays open and nothing more is sent, until the client hangs up.
    Hang,
}

/// What the upstream answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `200 text/event-stream` with these events, then `end`.
    Sse {
        events: Vec<SseEvent>,
        end: StreamEnd,
    },
    /// An HTTP status with a body (JSON or not).
    Status {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// Never answer, not even headers, until the client hangs up.
    Silent,
}

impl Reply {
    /// A complete reply streaming `deltas` as content chunks: a role chunk, one chunk
    /// per delta, `finish_reason: "stop"`, a usage chunk (`prompt_tokens` 11, one
    /// completion token per delta), then `[DONE]`.
    pub fn text(deltas: &[&str]) -> Reply {
        let mut events = vec![SseEvent::json(role_chunk())];
        events.extend(deltas.iter().map(|d| SseEvent::json(content_chunk(d))));
        events.push(SseEvent::json(finish_chunk("stop")));
        events.push(SseEvent::json(usage_chunk(11, deltas.len() as u64)));
        Reply::Sse {
            events,
            end: StreamEnd::Done,
        }
    }

    /// A streamed reply of these chunks (no delays), then `[DONE]`.
    pub fn chunks(chunks: Vec<Value>) -> Reply {
        Reply::Sse {
            events: chunks.into_iter().map(SseEvent::json).collect(),
            end: StreamEnd::Done,
        }
    }

    /// A streamed reply of these events, then `end`.
    pub fn events(events: Vec<SseEvent>, end: StreamEnd) -> Reply {
        Reply::Sse { events, end }
    }

    /// Headers (`200 text/event-stream`), then nothing, until the client hangs up.
    pub fn hang() -> Reply {
        Reply::Sse {
            events: Vec::new(),
            end: StreamEnd::Hang,
        }
    }

    /// An HTTP error in OpenAI's shape: `{"error":{"message","type","code"}}`.
    pub fn error(status: u16, message: &str) -> Reply {
        let body = json!({"error": {"message": message, "type": "test_error", "code": null}});
        Reply::Status {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }

    /// An HTTP status with a plain-text body (a proxy's error page, say).
    pub fn status_text(status: u16, body: &str) -> Reply {
        Reply::Status {
            status,
            content_type: "text/plain",
            body: body.to_string(),
        }
    }

    /// The same streamed reply with `delay` before every event.
    pub fn paced(mut self, delay: Duration) -> Reply {
        if let Reply::Sse { events, .. } = &mut self {
            for event in events {
                event.delay = delay;
            }
        }
        self
    }

    /// The same streamed reply ending with `end` instead.
    pub fn ending(mut self, new_end: StreamEnd) -> Reply {
        if let Reply::Sse { end, .. } = &mut self {
            *end = new_end;
        }
        self
    }
}

/// A `chat.completion.chunk` with these `choices`.
pub fn chunk(choices: Value) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": choices,
    })
}

/// The first chunk OpenAI sends: role `assistant`, empty content.
pub fn role_chunk() -> Value {
    chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
    )
}

/// A chunk carrying reply text.
pub fn content_chunk(text: &str) -> Value {
    chunk(json!([{"index": 0, "delta": {"content": text}, "finish_reason": null}]))
}

/// The chunk that ends a choice: `finish_reason` `stop`, `length`, `tool_calls`…
pub fn finish_chunk(reason: &str) -> Value {
    chunk(json!([{"index": 0, "delta": {}, "finish_reason": reason}]))
}

/// The usage chunk that `stream_options.include_usage` adds: no choices.
pub fn usage_chunk(prompt_tokens: u64, completion_tokens: u64) -> Value {
    let mut value = chunk(json!([]));
    value["usage"] = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    value
}

/// The first fragment of tool call `index`: its id and name, no arguments yet.
pub fn tool_call_start_chunk(index: u32, id: &str, name: &str) -> Value {
    chunk(json!([{"index": 0, "delta": {"tool_calls": [{
        "index": index, "id": id, "type": "function",
        "function": {"name": name, "arguments": ""},
    }]}, "finish_reason": null}]))
}

/// A further fragment of tool call `index`'s JSON arguments.
pub fn tool_call_arguments_chunk(index: u32, fragment: &str) -> Value {
    chunk(json!([{"index": 0, "delta": {"tool_calls": [{
        "index": index, "function": {"arguments": fragment},
    }]}, "finish_reason": null}]))
}

/// A whole round that asks for one tool call, its arguments split in `fragments`:
/// role chunk, call start, argument fragments, `finish_reason: "tool_calls"`, usage,
/// `[DONE]`.
pub fn tool_call_reply(id: &str, name: &str, fragments: &[&str]) -> Reply {
    let mut chunks = vec![role_chunk(), tool_call_start_chunk(0, id, name)];
    chunks.extend(fragments.iter().map(|f| tool_call_arguments_chunk(0, f)));
    chunks.push(finish_chunk("tool_calls"));
    chunks.push(usage_chunk(20, 5));
    Reply::chunks(chunks)
}

/// One request the upstream received. Failure messages show all of it (`Debug`), the
/// method and raw body included, though no test reads those two directly.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct RecordedRequest {
    pub method: Method,
    /// e.g. `/v1/chat/completions`
    pub path: String,
    pub headers: HeaderMap,
    /// The body parsed as JSON (`Null` when it is not JSON; see `raw_body`).
    pub body: Value,
    pub raw_body: String,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    requests: usize,
    /// Responses whose body was dropped before it was finished.
    disconnects: usize,
}

struct Shared {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<RecordedRequest>>,
    counters: watch::Sender<Counters>,
}

/// The fake upstream. Dropping it stops accepting connections.
pub struct Upstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Listen on `127.0.0.1:0` with an empty script.
    pub async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test upstream");
        let addr = listener.local_addr().expect("upstream address");
        let shared = Arc::new(Shared {
            replies: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            counters: watch::Sender::new(Counters::default()),
        });
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Upstream {
            addr,
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:PORT/v1`, the value for `--model-base-url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queue the answer to the next request that finds the queue empty of earlier
    /// ones. A request that finds no reply queued gets a 500 that says so.
    pub fn push(&self, reply: Reply) {
        lock(&self.shared.replies).push_back(reply);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// How many requests arrived so far.
    pub fn request_count(&self) -> usize {
        self.shared.counters.borrow().requests
    }

    /// How many responses were dropped by the client before they finished.
    pub fn disconnects(&self) -> usize {
        self.shared.counters.borrow().disconnects
    }

    /// Wait until `n` requests arrived in total; panics after `timeout`.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) {
        let mut rx = self.shared.counters.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|c| c.requests >= n)).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "the upstream received {} requests within {timeout:?}, expected {n}",
            self.request_count()
        );
    }

    /// Wait until `n` requests arrived in total, or forever (for a caller's timeout).
    pub async fn wait_for_requests_quietly(&self, n: usize) {
        let mut rx = self.shared.counters.subscribe();
        let _ = rx.wait_for(|c| c.requests >= n).await;
    }

    /// Wait until the client closed a response before it finished (the first such
    /// close in this upstream's life); panics after `timeout`.
    pub async fn wait_for_disconnect(&self, timeout: Duration) {
        self.wait_for_disconnects(1, timeout).await;
    }

    /// Wait until `n` responses in total were closed by the client before they
    /// finished; panics after `timeout`.
    pub async fn wait_for_disconnects(&self, n: usize, timeout: Duration) {
        let mut rx = self.shared.counters.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|c| c.disconnects >= n)).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "the client closed {} unfinished responses within {timeout:?}, expected {n}",
            self.disconnects()
        );
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts a disconnect when dropped before [`Unfinished::finish`]: hyper drops a
/// response body (or the handler's future) when its connection closes.
struct Unfinished {
    shared: Arc<Shared>,
    finished: bool,
}

impl Unfinished {
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.counters.send_modify(|c| c.disconnects += 1);
        }
    }
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw_body = String::from_utf8_lossy(&body).into_owned();
    lock(&shared.requests).push(RecordedRequest {
        method,
        path: uri.path().to_string(),
        headers,
        body: serde_json::from_str(&raw_body).unwrap_or(Value::Null),
        raw_body,
    });
    let reply = lock(&shared.replies).pop_front().unwrap_or_else(|| {
        Reply::error(
            500,
            "the test upstream has no scripted reply left for this request",
        )
    });
    shared.counters.send_modify(|c| c.requests += 1);
    let mut guard = Unfinished {
        shared: shared.clone(),
        finished: false,
    };
    match reply {
        Reply::Silent => {
            std::future::pending::<()>().await;
            unreachable!("pending never resolves")
        }
        Reply::Status {
            status,
            content_type,
            body,
        } => {
            guard.finish();
            Response::builder()
                .status(StatusCode::from_u16(status).expect("a valid status code"))
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body))
                .expect("a valid response")
        }
        Reply::Sse { events, end } => {
            let body = sse_body(events, end, guard);
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(body)
                .expect("a valid response")
        }
    }
}

/// The events one by one, each after its delay, then the end; `guard` lives in the
/// stream so dropping the body early counts as a disconnect.
fn sse_body(events: Vec<SseEvent>, end: StreamEnd, guard: Unfinished) -> Body {
    let mut events = VecDeque::from(events);
    if end == StreamEnd::Done {
        events.push_back(SseEvent::done());
    }
    let stream = stream::unfold((events, guard), move |(mut events, mut guard)| async move {
        if let Some(event) = events.pop_front() {
            if !event.delay.is_zero() {
                tokio::time::sleep(event.delay).await;
            }
            if events.is_empty() && end == StreamEnd::Done {
                guard.finish();
            }
            return Some((Ok(Bytes::from(event.bytes)), (events, guard)));
        }
        match end {
            StreamEnd::Done | StreamEnd::Finish => {
                guard.finish();
                None
            }
            StreamEnd::Abort if !guard.finished => {
                guard.finish();
                // Let hyper flush the events first: an error on the body's next poll
                // would otherwise cut the connection before they were written.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let cut = std::io::Error::other("the test upstream cut the stream");
                Some((Err(cut), (events, guard)))
            }
            StreamEnd::Abort => None,
            StreamEnd::Hang => {
                std::future::pending::<()>().await;
                None
            }
        }
    });
    Body::from_stream(stream)
}

/// A gateway on `upstream`'s model endpoint, with HS256 tokens, the admin key and
/// `extra` flags.
pub fn gateway_on(upstream: &Upstream, extra: &[&str]) -> crate::support::Gateway {
    let base = upstream.base_url();
    let mut args = vec![
        crate::support::jwt::HS_ARGS[0],
        crate::support::jwt::HS_ARGS[1],
        "--admin-keys",
        crate::support::http::ADMIN_KEYS,
        "--model-provider",
        "openai",
        "--model-base-url",
        &base,
        "--model",
        "test-model",
        "--model-retries",
        "0",
    ];
    args.extend_from_slice(extra);
    crate::support::Gateway::start(&args)
}
