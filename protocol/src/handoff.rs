//! Human handoff: who holds a conversation — the assistant, nobody yet (a person was
//! asked for), or an operator — the frames that change it (`handoff.request`,
//! `handoff.claim`, `handoff.release`), the operator inbox (`inbox.list`, and
//! `inbox.changed` on the staff stream) and an org's handoff settings
//! (docs/protocol.md §3.14).

use serde::{Deserialize, Serialize};

use crate::conversation::SessionSummary;

/// Longest `reason` a handoff request keeps, in characters (longer ones are cut).
pub const MAX_REASON_CHARS: usize = 500;
/// Longest waiting message an org may set, in characters.
pub const MAX_WAITING_MESSAGE_CHARS: usize = 500;

/// Who holds a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HandoffState {
    /// The AI answers every customer message (where every session starts).
    Assistant,
    /// A person was asked for and none holds it yet; the AI is silent.
    Waiting,
    /// An operator holds the conversation; the AI is silent.
    Human,
}

/// Who changed a conversation's handoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HandoffBy {
    /// The customer asked for a person (`handoff.request`).
    Customer,
    /// The model asked for a person (its `handoff` tool).
    Assistant,
    /// An operator claimed or released it.
    Operator,
}

/// An operator, as members see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Staffer {
    pub user_id: String,
    /// Their display name (the token's `name` claim), when they have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A conversation's handoff now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Handoff {
    pub state: HandoffState,
    /// The operator holding it (`human`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<Staffer>,
    /// Why a person was asked for (`waiting`, `human`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When this state began (ms since the epoch).
    pub since: u64,
}

/// `handoff.request`: the customer asks for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HandoffRequest {
    pub session_id: String,
    /// What the customer needs, for the operator (at most 500 characters kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `handoff.claim` and `handoff.release`: an operator takes or gives back a
/// conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HandoffTarget {
    pub session_id: String,
}

/// `inbox.list`: the org's conversations waiting for or held by a person.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InboxList {
    /// 1 to 100 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// A conversation in the inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InboxEntry {
    pub session: SessionSummary,
    pub handoff: Handoff,
}

/// The inbox: waiting and held conversations, the longest in that state first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Inbox {
    pub sessions: Vec<InboxEntry>,
}

/// An org's handoff settings (`/v1/admin/handoff`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HandoffSettings {
    /// Whether customers and the assistant may ask for a person (default `true`).
    pub enabled: bool,
    /// Shown to the customer while waiting (`handoff` event `notice`).
    pub waiting_message: String,
    /// Whether the assistant asks for a person when the knowledge base has nothing for
    /// a question (default `false`).
    pub when_unanswered: bool,
}
