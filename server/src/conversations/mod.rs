//! Conversations that outlive the backplane: the transcript (which events are kept,
//! and the writer that keeps them off the hot path), the older part of replays, and
//! the lifecycle people expect — list, rename, archive, delete, export, erase a user,
//! and retention — each authorized by `access::policy`.
//!
//! - [`transcript`]: which events a transcript keeps and what they change.
//! - [`writer`]: the queue and task that write them, batched.
//! - [`replay`]: stored events for joins older than the history.
//! - [`lifecycle`]: list, summary, rename/archive, delete, export.
//! - [`export`]: the JSON and Markdown renderings of a transcript.
//! - [`erase`]: removing conversations everywhere (store, backplane, records).
//! - [`retention`]: the background sweep of conversations idle past their retention.

pub mod erase;
pub mod export;
pub mod lifecycle;
pub mod replay;
pub mod retention;
pub mod transcript;
pub mod writer;

pub use lifecycle::{Conversations, PresenceEraser, TurnStopper};

#[cfg(test)]
mod tests;
pub use replay::TranscriptReader;
pub use writer::TranscriptWriter;
