//! An OpenAI-compatible chat-completions client that streams over SSE, so the gateway
//! works with OpenAI, vLLM, Ollama, LiteLLM or any server that speaks that format.
//!
//! One reply is one `POST {base_url}/chat/completions` with `stream: true`:
//!
//! ```text
//! request ──► (connect error, 429, 5xx: retry with backoff, before any token only)
//!        ──► 200 text/event-stream ──► SSE events ──► chat.completion.chunk JSON
//!                                                     │ content    → Delta (coalesced)
//!                                                     │ tool_calls → assembled → ToolCalls
//!                                                     │ usage      → Usage
//!                                                     └ [DONE]     → end
//! ```
//!
//! The reply stream owns the HTTP response: dropping it (on `turn.cancel`, the turn
//! deadline or drain) drops the response, which closes the upstream connection and
//! stops the model's work. No task is spawned, so nothing outlives the stream.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, Stream, StreamExt, TryStreamExt};
use rand::Rng;
use serde::{Deserialize, Serialize};
use switchboard_protocol::Usage;
use tokio::time::Instant;

use super::{
    ChatMessage, ChatRole, ModelChunk, ModelError, ModelProvider, ToolCall, ToolDefinition,
    TurnRequest,
};
use crate::config::Secret;

/// How much of an HTTP error body is read, and how much of it reaches the user.
const ERROR_BODY_READ_LIMIT: usize = 16 * 1024;
const ERROR_BODY_SHOWN_CHARS: usize = 300;
/// How much of a malformed `data:` line an error quotes.
const MALFORMED_QUOTE_CHARS: usize = 80;
/// After `[DONE]`, how long to wait for the body's end so the connection can be
/// reused (a TLS handshake per turn costs more than this).
const BODY_END_GRACE: Duration = Duration::from_millis(100);

/// How to reach the upstream.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// e.g. `https://api.openai.com/v1`; requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    pub api_key: Option<Secret>,
    /// Used when the request's options name no model.
    pub default_model: String,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub connect_timeout: Duration,
    /// Longest silence before the first byte or between chunks.
    pub idle_timeout: Duration,
    /// Retries before the first token, with exponential backoff from `retry_backoff`.
    pub retries: u32,
    pub retry_backoff: Duration,
    /// Deltas arriving within this window of each other are sent as one.
    pub coalesce_window: Duration,
}

pub struct OpenAiProvider {
    shared: Arc<Shared>,
}

/// What every reply of one provider shares.
struct Shared {
    config: OpenAiConfig,
    /// `{base_url}/chat/completions`
    endpoint: String,
    /// Built once: it holds the connection pool.
    client: reqwest::Client,
}

impl OpenAiProvider {
    pub fn new(config: OpenAiConfig) -> anyhow::Result<OpenAiProvider> {
        let endpoint = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        reqwest::Url::parse(&endpoint)
            .map_err(|e| anyhow::anyhow!("--model-base-url {:?}: {e}", config.base_url))?;
        // No total timeout: a long reply is fine as long as it keeps coming; silence is
        // caught by the idle timeout around every read.
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .use_rustls_tls()
            .build()
            .map_err(|e| anyhow::anyhow!("building the model's HTTP client: {e}"))?;
        Ok(OpenAiProvider {
            shared: Arc::new(Shared {
                config,
                endpoint,
                client,
            }),
        })
    }
}

impl ModelProvider for OpenAiProvider {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn supports_tools(&self) -> bool {
        true
    }

    fn reply(&self, request: TurnRequest) -> BoxStream<'static, Result<ModelChunk, ModelError>> {
        let shared = self.shared.clone();
        let body = match serde_json::to_vec(&request_body(&shared.config, &request)) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                let error = ModelError(format!("the model request could not be encoded: {e}"));
                return Box::pin(futures_util::stream::once(async move { Err(error) }));
            }
        };
        let reply = Reply {
            request: ReplyRequest {
                shared,
                body,
                turn_id: request.turn_id,
            },
            phase: Phase::NotStarted,
        };
        Box::pin(futures_util::stream::unfold(
            reply,
            |mut reply| async move {
                let item = reply.next().await?;
                Some((item, reply))
            },
        ))
    }
}

// ---- the request ---------------------------------------------------------------

#[derive(Debug, Serialize)]
struct ChatCompletionRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    stream: bool,
    stream_options: StreamOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Debug, Serialize)]
struct WireMessage<'a> {
    role: ChatRole,
    /// `null` for an assistant message that only calls tools.
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionCall<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Debug, Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a serde_json::Value,
}

fn request_body<'a>(
    config: &'a OpenAiConfig,
    request: &'a TurnRequest,
) -> ChatCompletionRequest<'a> {
    let options = &request.options;
    ChatCompletionRequest {
        model: options.model.as_deref().unwrap_or(&config.default_model),
        messages: request.messages.iter().map(wire_message).collect(),
        stream: true,
        stream_options: StreamOptions {
            include_usage: true,
        },
        temperature: options.temperature.or(config.temperature),
        max_tokens: options.max_tokens.or(config.max_tokens),
        tools: request.tools.iter().map(wire_tool).collect(),
    }
}

fn wire_message(message: &ChatMessage) -> WireMessage<'_> {
    let only_calls = message.role == ChatRole::Assistant
        && message.content.is_empty()
        && !message.tool_calls.is_empty();
    WireMessage {
        role: message.role,
        content: (!only_calls).then_some(message.content.as_str()),
        tool_calls: message
            .tool_calls
            .iter()
            .map(|call| WireToolCall {
                id: &call.id,
                kind: "function",
                function: WireFunctionCall {
                    name: &call.name,
                    arguments: &call.arguments,
                },
            })
            .collect(),
        tool_call_id: message.tool_call_id.as_deref(),
    }
}

fn wire_tool(tool: &ToolDefinition) -> WireTool<'_> {
    WireTool {
        kind: "function",
        function: WireFunction {
            name: &tool.name,
            description: &tool.description,
            parameters: &tool.parameters,
        },
    }
}

// ---- the streamed answer ---------------------------------------------------------

/// One `chat.completion.chunk`; every field optional, since compatible servers differ
/// in what they leave out.
#[derive(Debug, Deserialize)]
struct StreamChunk {
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    /// Some servers report a failure mid-stream as `{"error": {...}}` (or a string).
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<ChoiceDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChoiceDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallFragment>>,
}

#[derive(Debug, Deserialize)]
struct ToolCallFragment {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionFragment>,
}

#[derive(Debug, Deserialize)]
struct FunctionFragment {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: Option<u64>,
}

/// Tool calls arrive in fragments (id and name first, then pieces of the JSON
/// arguments), keyed by `index`; they are handed on whole at the end of the round.
#[derive(Debug, Default)]
struct ToolCallAssembler {
    calls: BTreeMap<u32, PartialToolCall>,
}

#[derive(Debug, Default)]
struct PartialToolCall {
    id: String,
    name: String,
    arguments: String,
}

impl ToolCallAssembler {
    fn add(&mut self, fragment: ToolCallFragment) {
        let call = self.calls.entry(fragment.index).or_default();
        if let Some(id) = fragment.id.filter(|id| !id.is_empty()) {
            call.id = id;
        }
        if let Some(function) = fragment.function {
            if let Some(name) = function.name.filter(|n| !n.is_empty()) {
                call.name = name;
            }
            if let Some(arguments) = function.arguments {
                call.arguments.push_str(&arguments);
            }
        }
    }

    /// The assembled calls, in index order; `None` when there were none.
    fn take(&mut self) -> Result<Option<Vec<ToolCall>>, ModelError> {
        if self.calls.is_empty() {
            return Ok(None);
        }
        let calls = std::mem::take(&mut self.calls);
        calls
            .into_iter()
            .map(|(index, call)| {
                if call.name.is_empty() {
                    return Err(malformed(format!("tool call {index} has no function name")));
                }
                Ok(ToolCall {
                    // A few servers leave the id out; the follow-up round still needs one.
                    id: if call.id.is_empty() {
                        format!("call_{index}")
                    } else {
                        call.id
                    },
                    name: call.name,
                    arguments: if call.arguments.is_empty() {
                        "{}".to_string()
                    } else {
                        call.arguments
                    },
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// What one SSE `data:` payload meant.
#[derive(Debug, Default, PartialEq)]
struct Decoded {
    delta: Option<String>,
    usage: Option<Usage>,
    tool_calls: Option<Vec<ToolCall>>,
    /// `data: [DONE]`
    done: bool,
}

/// Reads `chat.completion.chunk` payloads one by one, remembering what spans them.
#[derive(Debug, Default)]
struct ChunkDecoder {
    tool_calls: ToolCallAssembler,
    /// A `finish_reason` arrived: the reply is whole even if `[DONE]` never does.
    finished: bool,
}

impl ChunkDecoder {
    fn decode(&mut self, data: &str) -> Result<Decoded, ModelError> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(Decoded::default());
        }
        if data == "[DONE]" {
            return Ok(Decoded {
                tool_calls: self.tool_calls.take()?,
                done: true,
                ..Decoded::default()
            });
        }
        let chunk: StreamChunk = serde_json::from_str(data).map_err(|e| {
            malformed(format!(
                "{e} in `{}`",
                truncate_chars(data, MALFORMED_QUOTE_CHARS)
            ))
        })?;
        if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
            return Err(ModelError(format!(
                "the model reported an error: {}",
                error_message(&error).unwrap_or_else(|| error.to_string())
            )));
        }
        let mut decoded = Decoded {
            usage: chunk.usage.map(|u| Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                total_tokens: u
                    .total_tokens
                    .unwrap_or(u.prompt_tokens + u.completion_tokens),
            }),
            ..Decoded::default()
        };
        // Only the first choice is the reply (the request never asks for `n` > 1).
        let Some(choice) = chunk
            .choices
            .into_iter()
            .flatten()
            .find(|choice| choice.index == 0)
        else {
            return Ok(decoded);
        };
        if let Some(delta) = choice.delta {
            decoded.delta = delta.content.filter(|text| !text.is_empty());
            for fragment in delta.tool_calls.into_iter().flatten() {
                self.tool_calls.add(fragment);
            }
        }
        if choice.finish_reason.is_some() {
            self.finished = true;
            decoded.tool_calls = self.tool_calls.take()?;
        }
        Ok(decoded)
    }
}

/// The message of an OpenAI-style error value: `{"message": …}`, `{"error": {"message":
/// …}}`, `{"error": "…"}` or a bare string.
fn error_message(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(map) => map
            .get("message")
            .and_then(|m| m.as_str().map(str::to_string))
            .or_else(|| map.get("error").and_then(error_message)),
        _ => None,
    }
}

fn malformed(what: impl std::fmt::Display) -> ModelError {
    ModelError(format!("the model sent a malformed stream: {what}"))
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

// ---- one reply: request, retries, reading ------------------------------------------

enum Phase {
    NotStarted,
    Reading(Box<ReplyReader>),
    Ended,
}

/// The state behind one reply stream.
struct Reply {
    request: ReplyRequest,
    phase: Phase,
}

/// What a reply sends upstream (kept apart from the reading state, which is not
/// `Sync`, so that the request futures are `Send`).
struct ReplyRequest {
    shared: Arc<Shared>,
    /// The serialized request, sent again as is on a retry.
    body: Bytes,
    turn_id: String,
}

/// Why one attempt failed, and whether another may follow.
struct AttemptError {
    error: ModelError,
    retryable: bool,
}

impl Reply {
    async fn next(&mut self) -> Option<Result<ModelChunk, ModelError>> {
        loop {
            match &mut self.phase {
                Phase::Ended => return None,
                Phase::Reading(reader) => {
                    let item = reader.next().await;
                    if matches!(item, None | Some(Err(_))) {
                        self.phase = Phase::Ended;
                    }
                    return item;
                }
                Phase::NotStarted => match self.request.open().await {
                    Ok(reader) => self.phase = Phase::Reading(Box::new(reader)),
                    Err(error) => {
                        self.phase = Phase::Ended;
                        return Some(Err(error));
                    }
                },
            }
        }
    }
}

impl ReplyRequest {
    /// Send the request until it is answered with a stream, retrying what may pass
    /// (no token has been sent yet, so a retry cannot duplicate text).
    async fn open(&self) -> Result<ReplyReader, ModelError> {
        let config = &self.shared.config;
        let mut attempt = 0;
        loop {
            match self.attempt().await {
                Ok(reader) => return Ok(reader),
                Err(failure) if failure.retryable && attempt < config.retries => {
                    let pause = backoff(config.retry_backoff, attempt);
                    tracing::warn!(
                        turn_id = %self.turn_id,
                        error = %failure.error,
                        retry_in = ?pause,
                        "model request failed; retrying"
                    );
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err(failure) => {
                    tracing::warn!(turn_id = %self.turn_id, error = %failure.error, "model request failed");
                    return Err(failure.error);
                }
            }
        }
    }

    async fn attempt(&self) -> Result<ReplyReader, AttemptError> {
        let shared = &self.shared;
        let config = &shared.config;
        let mut request = shared
            .client
            .post(&shared.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .body(self.body.clone());
        if let Some(key) = &config.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = match tokio::time::timeout(config.idle_timeout, request.send()).await {
            Err(_) => {
                return Err(AttemptError {
                    error: idle_error(config.idle_timeout),
                    retryable: false,
                });
            }
            Ok(Err(e)) => {
                return Err(AttemptError {
                    error: ModelError(format!(
                        "could not reach the model at {}: {}",
                        config.base_url,
                        send_failure_reason(&e, config.connect_timeout)
                    )),
                    retryable: e.is_connect() || e.is_timeout(),
                });
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if !status.is_success() {
            let message = error_body_message(response, config.idle_timeout).await;
            return Err(AttemptError {
                error: ModelError(format!(
                    "the model answered HTTP {}: {message}",
                    status.as_u16()
                )),
                retryable: status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status.is_server_error(),
            });
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("application/json") {
            // The server ignored `stream: true`, or reported an error with a 200.
            let message = error_body_message(response, config.idle_timeout).await;
            return Err(AttemptError {
                error: malformed(format!(
                    "expected text/event-stream, got application/json: {message}"
                )),
                retryable: false,
            });
        }
        let bytes = response.bytes_stream().map_err(|e| innermost_cause(&e));
        Ok(ReplyReader::new(bytes, config, self.turn_id.clone()))
    }
}

/// `base * 2^attempt`, plus up to a quarter of it at random so that many turns
/// failing together do not retry in lockstep.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let pause = base.saturating_mul(2u32.saturating_pow(attempt));
    let jitter_ms = u64::try_from(pause.as_millis() / 4).unwrap_or(u64::MAX);
    pause + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
}

fn idle_error(idle: Duration) -> ModelError {
    ModelError(format!(
        "the model sent nothing for {} (--model-idle-timeout)",
        humantime::format_duration(idle)
    ))
}

/// The innermost cause of a failed request (e.g. `Connection refused (os error 111)`),
/// which says more than reqwest's outer "error sending request for url".
fn send_failure_reason(error: &reqwest::Error, connect_timeout: Duration) -> String {
    if error.is_timeout() {
        return format!(
            "no connection within {} (--model-connect-timeout)",
            humantime::format_duration(connect_timeout)
        );
    }
    innermost_cause(error)
}

fn innermost_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The upstream's own words from an error response: `error.message` of a JSON body,
/// or the start of the body as text, or the status's reason when the body is empty.
async fn error_body_message(mut response: reqwest::Response, idle: Duration) -> String {
    let status = response.status();
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_READ_LIMIT {
        match tokio::time::timeout(idle, response.chunk()).await {
            Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&body);
    let from_json = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|value| error_message(&value));
    let message = from_json.unwrap_or_else(|| text.trim().to_string());
    if message.is_empty() {
        status.canonical_reason().unwrap_or("no body").to_string()
    } else {
        truncate_chars(&message, ERROR_BODY_SHOWN_CHARS)
    }
}

// ---- reading the SSE body ----------------------------------------------------------

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
struct ReplyReader {
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
    fn new<S>(bytes: S, config: &OpenAiConfig, turn_id: String) -> ReplyReader
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

    async fn next(&mut self) -> Option<Result<ModelChunk, ModelError>> {
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

    use super::*;
    use crate::access::AccessContext;
    use crate::agent::ModelOptions;

    fn config() -> OpenAiConfig {
        OpenAiConfig {
            base_url: "http://127.0.0.1:9/v1/".into(),
            api_key: None,
            default_model: "default-model".into(),
            temperature: Some(0.5),
            max_tokens: None,
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            retries: 0,
            retry_backoff: Duration::from_millis(10),
            coalesce_window: Duration::from_millis(5),
        }
    }

    fn turn_request(messages: Vec<ChatMessage>, tools: Vec<ToolDefinition>) -> TurnRequest {
        TurnRequest {
            session_id: "s_1".into(),
            turn_id: "t_1".into(),
            question: "q".into(),
            messages,
            documents: Vec::new(),
            tools,
            options: ModelOptions::default(),
            access: AccessContext {
                user_id: None,
                org_id: "default".into(),
                groups: vec![],
                roles: vec![],
                anonymous: true,
            },
        }
    }

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

    #[test]
    fn the_request_carries_the_prompt_tools_and_options_in_openai_shape() {
        let mut assistant = ChatMessage::new(ChatRole::Assistant, "");
        assistant.tool_calls = vec![ToolCall {
            id: "call_1".into(),
            name: "lookup".into(),
            arguments: r#"{"q":"x"}"#.into(),
        }];
        let mut tool = ChatMessage::new(ChatRole::Tool, "found");
        tool.tool_call_id = Some("call_1".into());
        let mut request = turn_request(
            vec![
                ChatMessage::new(ChatRole::System, "be brief"),
                ChatMessage::new(ChatRole::User, "hi"),
                assistant,
                tool,
            ],
            vec![ToolDefinition {
                name: "lookup".into(),
                description: "Look it up".into(),
                parameters: json!({"type": "object"}),
            }],
        );
        request.options.max_tokens = Some(64);
        let config = config();
        let body = serde_json::to_value(request_body(&config, &request)).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "default-model",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]},
                    {"role": "tool", "content": "found", "tool_call_id": "call_1"},
                ],
                "stream": true,
                "stream_options": {"include_usage": true},
                "temperature": 0.5,
                "max_tokens": 64,
                "tools": [{"type": "function", "function": {
                    "name": "lookup", "description": "Look it up",
                    "parameters": {"type": "object"}}}],
            })
        );
    }

    #[test]
    fn options_override_the_config_and_no_tools_means_no_tools_field() {
        let mut request = turn_request(vec![ChatMessage::new(ChatRole::User, "hi")], vec![]);
        request.options.model = Some("org-model".into());
        request.options.temperature = Some(0.0);
        let config = config();
        let body = serde_json::to_value(request_body(&config, &request)).unwrap();
        assert_eq!(body["model"], "org-model");
        assert_eq!(body["temperature"], 0.0);
        assert!(body.get("tools").is_none(), "{body}");
        assert!(body.get("max_tokens").is_none(), "{body}");
    }

    #[test]
    fn tool_call_fragments_are_assembled_into_whole_calls_at_the_finish() {
        let mut decoder = ChunkDecoder::default();
        let fragments = [
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": "call_a", "type": "function", "function": {"name": "lookup", "arguments": ""}},
            ]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 1, "id": "call_b", "function": {"name": "weather", "arguments": "{\"city\""}},
            ]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": "{\"q\":"}},
            ]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": "\"refunds\"}"}},
                {"index": 1, "function": {"arguments": ":\"Oslo\"}"}},
            ]}}]}),
        ];
        for fragment in &fragments {
            let decoded = decoder.decode(&fragment.to_string()).unwrap();
            assert_eq!(decoded, Decoded::default(), "nothing is handed on mid-call");
        }
        let finish = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]});
        let decoded = decoder.decode(&finish.to_string()).unwrap();
        assert_eq!(
            decoded.tool_calls,
            Some(vec![
                ToolCall {
                    id: "call_a".into(),
                    name: "lookup".into(),
                    arguments: r#"{"q":"refunds"}"#.into()
                },
                ToolCall {
                    id: "call_b".into(),
                    name: "weather".into(),
                    arguments: r#"{"city":"Oslo"}"#.into()
                },
            ])
        );
        assert!(decoder.finished);
        assert_eq!(decoder.decode("[DONE]").unwrap().tool_calls, None);
    }

    #[test]
    fn usage_errors_and_garbage_are_decoded_into_what_they_mean() {
        let mut decoder = ChunkDecoder::default();
        let usage = json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}});
        assert_eq!(
            decoder.decode(&usage.to_string()).unwrap().usage,
            Some(Usage {
                prompt_tokens: 7,
                completion_tokens: 3,
                total_tokens: 10
            })
        );
        let error = json!({"error": {"message": "context length exceeded", "type": "invalid_request_error"}});
        assert_eq!(
            decoder.decode(&error.to_string()).unwrap_err().0,
            "the model reported an error: context length exceeded"
        );
        let garbage = decoder.decode("{\"choices\": [").unwrap_err().0;
        assert!(
            garbage.starts_with("the model sent a malformed stream: ")
                && garbage.contains("{\"choices\": ["),
            "{garbage}"
        );
        assert!(decoder.decode("[DONE]").unwrap().done);
    }

    #[test]
    fn error_messages_come_from_any_common_error_shape() {
        for (value, expected) in [
            (json!({"error": {"message": "bad key"}}), Some("bad key")),
            (json!({"error": "overloaded"}), Some("overloaded")),
            (json!({"message": "nope"}), Some("nope")),
            (json!({"detail": "?"}), None),
        ] {
            assert_eq!(error_message(&value).as_deref(), expected, "{value}");
        }
        assert_eq!(truncate_chars("héllo", 2), "hé…");
        assert_eq!(truncate_chars("hé", 2), "hé");
    }

    #[test]
    fn backoff_doubles_with_at_most_a_quarter_of_jitter() {
        for attempt in 0..4 {
            let base = Duration::from_millis(100) * 2u32.pow(attempt);
            let pause = backoff(Duration::from_millis(100), attempt);
            assert!(
                pause >= base && pause <= base + base / 4,
                "{attempt}: {pause:?}"
            );
        }
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
