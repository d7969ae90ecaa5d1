//! Presence and typing (docs/protocol.md §3.15): who is in a session, and who is
//! typing. Both are ephemeral: they have no `seq`, are never stored in a session's
//! history or transcript, and are never replayed.
//!
//! - [`PresenceMember`]: one person in a session, as others see them. The session's
//!   owner and its staff are named; anyone else is counted only.
//! - [`Typing`]: the client frame a member sends while typing.
//! - [`PresenceSnapshot`], [`PresenceChange`], [`TypingNotice`]: the server frames
//!   `presence`, `presence.changed` and `typing`.

use serde::{Deserialize, Serialize};

/// Named members a `presence` snapshot (and the view `presence.changed` updates)
/// lists at most; members beyond are counted in `others`.
pub const MAX_LISTED_MEMBERS: usize = 50;

/// A connection's `typing: true` frames are forwarded at most once per this many
/// milliseconds per session; the ones in between are dropped (the forwarded one
/// stands for them).
pub const TYPING_INTERVAL_MS: u64 = 2_000;

/// A client shows someone as typing for this long after their last `typing: true`,
/// unless a `typing: false` (or their leaving) clears it first. Senders repeat
/// `typing: true` well within it while the person keeps typing.
pub const TYPING_SHOWN_MS: u64 = 6_000;

/// How a member takes part in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum PresenceRole {
    /// The user who owns the session (its creator, signed in).
    Owner,
    /// Staff of the session's org: a principal with role `operator` or `admin`.
    Operator,
    /// Anyone else who joined (an anonymous visitor holding the session key, …):
    /// counted, never named.
    Other,
}

/// One person in a session. Owners and operators carry their `user_id` and, when
/// their token has one, a display `name`; `other` members carry neither.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PresenceMember {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The token's `name` claim (docs/protocol.md §1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub role: PresenceRole,
}

impl PresenceMember {
    /// Whether this member is listed by name (owner or operator, with a user id).
    pub fn is_named(&self) -> bool {
        self.role != PresenceRole::Other && self.user_id.is_some()
    }
}

/// Client frame `typing`: the member is typing (`true`) or stopped (`false`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Typing {
    pub session_id: String,
    pub typing: bool,
}

/// Server frame `presence`: who is in the session now. Sent to a connection after its
/// `session.created`, or after its `session.joined` and the replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PresenceSnapshot {
    pub session_id: String,
    /// The named members (owner first, then operators), at most
    /// [`MAX_LISTED_MEMBERS`]; each user once, however many connections they have.
    pub members: Vec<PresenceMember>,
    /// Everyone else in the session: members who are not named, and named members
    /// beyond the list's cap.
    pub others: u64,
}

/// Server frame `presence.changed`: members who arrived or left since the last
/// `presence` or `presence.changed` this connection got, and the new `others` count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PresenceChange {
    pub session_id: String,
    #[serde(default)]
    pub joined: Vec<PresenceMember>,
    #[serde(default)]
    pub left: Vec<PresenceMember>,
    pub others: u64,
}

/// Server frame `typing`: `member` started (`true`) or stopped (`false`) typing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TypingNotice {
    pub session_id: String,
    pub member: PresenceMember,
    pub typing: bool,
}
