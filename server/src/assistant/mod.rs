//! The assistant: what answers a user's message, from what, and with what help.
//!
//! - [`intake`]: accepting a message — the one place a `message.send` becomes a
//!   `message` event and a queued turn.
//! - [`replies`]: what became of a message's reply or a turn (the synchronous chat
//!   waits on it).
//! - [`waiting`]: the bounds on synchronous chats waiting for their reply.
//! - [`turns`]: agent turns, one at a time per session, owned by the session.
//! - [`model`]: who writes replies — the `ModelProvider` trait, the offline agent, the
//!   OpenAI-compatible client — and the prompt.
//! - [`knowledge`]: documents, who may read them (docs/protocol.md §7), and search.
//! - [`tools`]: tools the model may call, and the client that runs them.
//! - [`handoff`]: who holds a conversation (the AI, or a person), the inbox.
//! - [`approvals`]: tool calls waiting for a member's decision, across replicas.
//! - [`control`]: the hints a replica sends another to act on a record at once.
//! - [`settings`]: per-org model, system prompt and tools.
//! - [`named`]: an org's named assistants, one of which a session may talk to.
//! - [`cost`]: caps on concurrent turns and each org's daily token budget.
//!
//! The model providers and the prompt are `crate::assistant::model`.

pub mod approvals;
pub mod control;
pub mod cost;
pub mod handoff;
pub mod intake;
pub mod knowledge;
pub mod model;
pub mod named;
pub mod replies;
pub mod settings;
pub mod tools;
pub mod turns;
pub mod waiting;
