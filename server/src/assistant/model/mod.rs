//! Who writes the assistant's replies: the [`ModelProvider`] trait, the built-in
//! offline agent that answers from the knowledge base with no model at all, and the
//! OpenAI-compatible streaming client.

pub mod offline;
pub mod openai;
pub mod prompt;

use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use switchboard_protocol::Usage;

use crate::access::AccessContext;
use crate::assistant::knowledge::Document;

pub use offline::OfflineAgent;
pub use openai::{OpenAiConfig, OpenAiProvider};

/// Who wrote one message of a prompt, in the chat-completions sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    User,
    Assistant,
    Tool,
}

/// One message of the prompt sent to a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
    /// Tool calls the assistant asked for (role `assistant` only).
    pub tool_calls: Vec<ToolCall>,
    /// The call a `tool` message answers.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: ChatRole, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// A tool call the model asked for. `arguments` is the model's JSON text, unparsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A tool as the model sees it: name, description and JSON-schema parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// Per-turn model settings (per org, falling back to the gateway's flags).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelOptions {
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

/// Everything a provider needs to write one reply (or one round of a reply that
/// uses tools).
#[derive(Debug, Clone)]
pub struct TurnRequest {
    pub session_id: String,
    pub turn_id: String,
    /// The user message this turn answers.
    pub question: String,
    /// The whole prompt: system prompt with the documents, the recent transcript, the
    /// question, then any tool calls and their results of earlier rounds.
    pub messages: Vec<ChatMessage>,
    /// Documents retrieved for the asker, already filtered by `access`; the ones the
    /// prompt carries. The reply's `sources` are exactly these.
    pub documents: Vec<Document>,
    /// Tools the model may call in this round (empty: none). The built-in
    /// [`HANDOFF_TOOL`] is among them when the org lets the model ask for a person.
    pub tools: Vec<ToolDefinition>,
    /// Whether the org wants a person asked for when the knowledge base has nothing
    /// for the question (with [`HANDOFF_TOOL`] offered).
    pub handoff_when_unanswered: bool,
    pub options: ModelOptions,
    pub access: AccessContext,
}

/// The built-in tool through which the model asks for a person (human handoff).
pub const HANDOFF_TOOL: &str = "handoff";

/// [`HANDOFF_TOOL`] as the model sees it.
pub fn handoff_definition() -> ToolDefinition {
    ToolDefinition {
        name: HANDOFF_TOOL.to_string(),
        description: "Ask a person from the team to take over this conversation: when the \
            customer asks for a human, or when you cannot help them. Then tell the customer \
            that someone will join."
            .to_string(),
        parameters: serde_json::json!({
            "type": "object",
            "properties": {"reason": {"type": "string", "description": "What the customer needs, for the person who takes over."}},
        }),
    }
}

/// A piece of a streamed reply.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelChunk {
    /// More reply text, in order.
    Delta(String),
    /// Token counts, usually last.
    Usage(Usage),
    /// The model wants these tools called before it goes on; the round ends here.
    ToolCalls(Vec<ToolCall>),
}

/// Why a provider could not finish a reply. The message reaches the user in
/// `turn.end.error`, so it must be readable and must not leak secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ModelError(pub String);

/// Writes replies as a stream of chunks. Dropping the stream cancels the reply (and
/// any upstream request), which is how `turn.cancel` and drain stop a turn.
pub trait ModelProvider: Send + Sync {
    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;

    /// The model a request asks for when its options name none, for traces.
    fn default_model(&self) -> &str {
        self.name()
    }

    /// Whether the provider can call tools; tools are offered only when it can.
    fn supports_tools(&self) -> bool {
        false
    }

    /// Whether the provider may be offered the built-in [`HANDOFF_TOOL`].
    fn supports_handoff(&self) -> bool {
        self.supports_tools()
    }

    /// Check the model endpoint for `/health/deep`: cheaply, and at most once per
    /// interval however often it is asked. A provider with nothing to reach is `ok`.
    fn probe(&self) -> futures_util::future::BoxFuture<'_, crate::health::Probe> {
        Box::pin(async {
            crate::health::Probe::new(
                crate::health::ProbeStatus::Ok,
                "nothing to reach: replies are written in process",
                std::time::Duration::ZERO,
            )
        })
    }

    /// Stream the reply to `request`. The stream ends when the reply (or this round
    /// of it, after [`ModelChunk::ToolCalls`]) is complete.
    fn reply(&self, request: TurnRequest) -> BoxStream<'static, Result<ModelChunk, ModelError>>;
}
