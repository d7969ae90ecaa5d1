//! Conversations as records: the summaries, filters and reports of the session
//! lifecycle frames (`session.list`, `session.update`, `session.delete`,
//! `session.export`, `user.erase`; docs/protocol.md §3.13) and of the matching `/v1`
//! routes, which answer with the same shapes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Seq;

/// Longest title a rename may set, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Most sessions one listing page holds; also the default is [`DEFAULT_LIST_LIMIT`].
pub const MAX_LIST_LIMIT: usize = 100;
/// Sessions per listing page when the request does not say.
pub const DEFAULT_LIST_LIMIT: usize = 20;

/// Whether a session shows in its owner's default list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Active,
    /// Set aside by its owner; a new message makes it active again.
    Archived,
}

/// A conversation as listings show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionSummary {
    pub session_id: String,
    pub org_id: String,
    /// The owner's `user_id`; `null` for anonymous sessions.
    pub owner: Option<String>,
    /// Set by `session.update`, else the start of the first user message; `null` until
    /// there is one.
    pub title: Option<String>,
    pub state: SessionState,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// The `ts` of the newest stored event (`created_at` before any): retention counts
    /// from here.
    pub last_activity_at: u64,
    /// The newest stored event's `seq`.
    pub last_seq: Seq,
    /// The start of the last message.
    pub preview: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Map<String, Value>>,
    /// The org's named assistant it talks to; absent: the default assistant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assistant: Option<String>,
}

/// Whose conversations a listing covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ListScope {
    /// The caller's own (signed-in users).
    #[default]
    Mine,
    /// Every conversation of the caller's org (operators and admins).
    Org,
}

/// Which conversations to list, newest activity first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionList {
    #[serde(default)]
    pub scope: ListScope,
    /// Only this user's conversations (with `scope: "mine"`, someone else's is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Only conversations in this state (default: both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<SessionState>,
    /// Only conversations last active at or after this time (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_since: Option<u64>,
    /// Only conversations last active before this time (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_before: Option<u64>,
    /// `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// 1 to 100 (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionListing {
    pub sessions: Vec<SessionSummary>,
    /// Ask again with this `cursor` for more; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A rename, an archive or an unarchive; absent fields stay as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionUpdate {
    pub session_id: String,
    /// 1 to 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<SessionState>,
}

/// Deletes a conversation: its record, transcript and history, for good.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionDelete {
    pub session_id: String,
}

/// The format of an export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// `{"session": SessionSummary, "events": [event, …]}`.
    #[default]
    Json,
    /// A readable transcript: the title, then each message with its author and time.
    Markdown,
}

/// Exports one conversation's transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionExport {
    pub session_id: String,
    #[serde(default)]
    pub format: ExportFormat,
}

/// Erases everything an org holds about one user (admins only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserErase {
    pub user_id: String,
}

/// What an erase removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErasureReport {
    pub org_id: String,
    pub user_id: String,
    /// The conversations the user owned, now gone with their transcripts and history.
    pub sessions: Vec<String>,
    /// Transcript entries removed from the store.
    pub transcript_entries: u64,
    /// Shared records removed (idempotency keys, turn jobs and queues, tool calls).
    pub records: u64,
}
