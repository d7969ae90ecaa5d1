//! The values the store keeps and the questions it answers.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Whether a session shows in its owner's default list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Active,
    /// Moved out of the default list by its owner; a new message makes it active again.
    Archived,
}

impl SessionState {
    /// The name stored in the database and used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Active => "active",
            SessionState::Archived => "archived",
        }
    }

    /// The state named `name`, if any.
    pub fn parse(name: &str) -> Option<SessionState> {
        match name {
            "active" => Some(SessionState::Active),
            "archived" => Some(SessionState::Archived),
            _ => None,
        }
    }
}

/// A session as it is created.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    pub session_id: String,
    pub org_id: String,
    /// The creator's `user_id`; `None` for anonymous sessions.
    pub owner: Option<String>,
    /// SHA-256 (hex) of an anonymous session's key.
    pub key_sha256: Option<String>,
    pub created_at: u64,
    pub metadata: Option<Map<String, Value>>,
    /// The org's named assistant it talks to; `None`: the default assistant.
    pub assistant: Option<String>,
}

/// A stored session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub session_id: String,
    pub org_id: String,
    pub owner: Option<String>,
    pub key_sha256: Option<String>,
    /// Set by a rename, else from the first user message (`title_hint`).
    pub title: Option<String>,
    pub state: SessionState,
    pub created_at: u64,
    /// `created_at`, then the `ts` of the newest stored entry.
    pub last_activity_at: u64,
    /// The newest stored entry's `seq` (`0`: none).
    pub last_seq: u64,
    /// The newest entry's `preview` (the last message's text, shortened).
    pub preview: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    /// The org's named assistant it talks to; `None`: the default assistant.
    pub assistant: Option<String>,
}

/// A change to a session; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionChange {
    pub title: Option<String>,
    pub state: Option<SessionState>,
}

/// Where a listing continues: the last session of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub last_activity_at: u64,
    pub session_id: String,
}

/// Which sessions [`crate::ConversationStore::list_sessions`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionQuery {
    pub org_id: String,
    /// Only sessions this user owns.
    pub owner: Option<String>,
    /// Only sessions in this state.
    pub state: Option<SessionState>,
    /// Only sessions last active at or after this time.
    pub active_since: Option<u64>,
    /// Only sessions last active before this time.
    pub active_before: Option<u64>,
    pub cursor: Option<Cursor>,
    pub limit: usize,
}

/// One page of sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPage {
    pub sessions: Vec<SessionRow>,
    /// Pass as the next query's cursor; `None` on the last page.
    pub next: Option<Cursor>,
}

/// One durable event of a session's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptEntry {
    pub seq: u64,
    pub ts: u64,
    /// The event's wire `type` (`message`, `turn.end`, …).
    pub kind: String,
    /// The whole event as JSON text, exactly as it is replayed.
    pub event: String,
}

/// An entry to store, with what it changes on its session.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptWrite {
    pub session_id: String,
    pub entry: TranscriptEntry,
    /// Becomes the session's preview (for messages).
    pub preview: Option<String>,
    /// Becomes the session's title if it has none (for user messages).
    pub title_hint: Option<String>,
}

/// What [`crate::ConversationStore::erase_user`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    pub session_ids: Vec<String>,
    pub entries: u64,
}

/// Who holds a conversation (human handoff).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffState {
    /// The AI answers (every session starts here).
    Assistant,
    /// A person was asked for; the AI is silent.
    Waiting,
    /// An operator holds the conversation; the AI is silent.
    Human,
}

impl HandoffState {
    /// The name stored in the database and used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffState::Assistant => "assistant",
            HandoffState::Waiting => "waiting",
            HandoffState::Human => "human",
        }
    }

    /// The state named `name`, if any.
    pub fn parse(name: &str) -> Option<HandoffState> {
        match name {
            "assistant" => Some(HandoffState::Assistant),
            "waiting" => Some(HandoffState::Waiting),
            "human" => Some(HandoffState::Human),
            _ => None,
        }
    }
}

/// A session's handoff as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffRow {
    pub state: HandoffState,
    /// The operator holding it (`human`), or who last held it.
    pub operator: Option<String>,
    pub operator_name: Option<String>,
    /// Why a person was asked for.
    pub reason: Option<String>,
    /// When the state began.
    pub since: u64,
    /// Raised by one on every change; `0` for a session that never had a handoff.
    pub version: u64,
}

impl HandoffRow {
    /// The handoff of a session that never had one: the assistant's since `since`.
    pub fn assistant(since: u64) -> HandoffRow {
        HandoffRow {
            state: HandoffState::Assistant,
            operator: None,
            operator_name: None,
            reason: None,
            since,
            version: 0,
        }
    }
}

/// An org's handoff settings as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffSettingsRow {
    /// Whether a person may be asked for at all.
    pub enabled: bool,
    /// Shown to the customer while waiting; `None`: the gateway's default.
    pub waiting_message: Option<String>,
    /// Whether the assistant asks for a person when the knowledge base has nothing.
    pub when_unanswered: bool,
}
