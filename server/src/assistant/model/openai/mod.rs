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
//!
//! - `config`: [`OpenAiConfig`], how to reach the upstream.
//! - `provider`: [`OpenAiProvider`]; one reply's request and its retries.
//! - `request`: the request body in chat-completions shape.
//! - `chunk`: one `chat.completion.chunk` payload decoded, tool calls assembled.
//! - `reader`: the SSE body read into model chunks, with coalescing and the idle
//!   timeout.
//! - `errors`: the text of the errors a reply can end with.
//! - `probe`: the endpoint's check for `/health/deep`, cached.

mod chunk;
mod config;
mod errors;
mod probe;
mod provider;
mod reader;
mod request;

pub use config::OpenAiConfig;
pub use provider::OpenAiProvider;
