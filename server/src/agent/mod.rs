//! Who writes the assistant's replies: the [`ModelProvider`] trait, and the built-in
//! offline agent that answers from the knowledge base with no model at all.

pub mod offline;

use futures_util::stream::BoxStream;
use switchboard_protocol::{Role, Usage};

use crate::auth::AccessContext;
use crate::knowledge::Document;

pub use offline::OfflineAgent;

/// One line of the transcript given to a model.
#[derive(Debug, Clone)]
pub struct TranscriptEntry {
    pub role: Role,
    pub text: String,
}

/// Everything a provider needs to write one reply.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    pub session_id: String,
    pub turn_id: String,
    /// The user message this turn answers.
    pub question: String,
    /// Earlier messages of the session, oldest first.
    pub transcript: Vec<TranscriptEntry>,
    /// Documents retrieved for the asker, already filtered by `access`. The reply's
    /// `sources` are exactly these.
    pub documents: Vec<Document>,
    pub access: AccessContext,
}

/// A piece of a streamed reply.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelChunk {
    /// More reply text, in order.
    Delta(String),
    /// Token counts, usually last.
    Usage(Usage),
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

    /// Stream the reply to `request`. The stream ends when the reply is complete.
    fn reply(&self, request: TurnRequest) -> BoxStream<'static, Result<ModelChunk, ModelError>>;
}
