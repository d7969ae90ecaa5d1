//! Frames the server sends that are not session events: `welcome`, direct replies,
//! `error` and `goaway`.

use serde::{Deserialize, Serialize};

use crate::conversation::{ErasureReport, ExportFormat, SessionListing, SessionSummary};
use crate::handoff::{Handoff, Inbox};
use crate::presence::{PresenceChange, PresenceSnapshot, TypingNotice};
use crate::{ErrorCode, Seq};

/// Who a connection is, as fixed at the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Principal {
    /// `None` for anonymous connections.
    pub user_id: Option<String>,
    pub org_id: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub anonymous: bool,
    /// A display name for the people this principal talks to (the token's `name`
    /// claim); absent when the token has none, and for anonymous connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Limits announced in `welcome`, so a client can stay within them (docs/protocol.md
/// §2.4, §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub max_text_chars: usize,
    pub max_frames_per_second: u32,
    pub max_sessions_per_connection: usize,
}

/// A server frame other than a session event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type")]
pub enum ServerFrame {
    /// The first frame on every connection.
    #[serde(rename = "welcome")]
    Welcome {
        protocol: u32,
        connection_id: String,
        server_id: String,
        principal: Principal,
        heartbeat_ms: u64,
        limits: Limits,
    },
    /// The reply to `ping`.
    #[serde(rename = "pong")]
    Pong {},
    /// The reply to `session.create`; `seq` is the new stream's last `seq`.
    #[serde(rename = "session.created")]
    SessionCreated {
        session_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_key: Option<String>,
        seq: Seq,
        /// The session's named assistant; absent: the default assistant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assistant: Option<String>,
    },
    /// Sent before the replay; `last_seq` is the stream's newest `seq` at join time.
    #[serde(rename = "session.joined")]
    SessionJoined {
        session_id: String,
        last_seq: Seq,
        recovered: bool,
        /// The session's named assistant; absent: the default assistant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assistant: Option<String>,
    },
    /// The reply to `session.leave`.
    #[serde(rename = "session.left")]
    SessionLeft { session_id: String },
    /// The reply to `message.send`: the `message` event's id and `seq`.
    #[serde(rename = "message.accepted")]
    MessageAccepted {
        session_id: String,
        message_id: String,
        seq: Seq,
    },
    /// The reply to `tool.decide`.
    #[serde(rename = "tool.decided")]
    ToolDecided {
        session_id: String,
        call_id: String,
        approved: bool,
    },
    /// The reply to `auth.refresh`; `expires_at` is the new token's `exp` (Unix seconds).
    #[serde(rename = "auth.refreshed")]
    AuthRefreshed { expires_at: u64 },
    /// The reply to `session.list`.
    #[serde(rename = "session.listed")]
    SessionListed(SessionListing),
    /// The reply to `session.update`: the conversation after the change.
    #[serde(rename = "session.updated")]
    SessionUpdated { session: SessionSummary },
    /// The reply to `handoff.request`, `handoff.claim` and `handoff.release`: who
    /// holds the conversation now.
    #[serde(rename = "handoff.updated")]
    HandoffUpdated {
        session_id: String,
        handoff: Handoff,
    },
    /// The reply to `inbox.list`.
    #[serde(rename = "inbox.listed")]
    InboxListed(Inbox),
    /// The reply to `session.delete`.
    #[serde(rename = "session.deleted")]
    SessionDeleted { session_id: String },
    /// The reply to `session.export`: the export as text (JSON or Markdown), the same
    /// bytes as `GET /v1/sessions/{id}/export`.
    #[serde(rename = "session.exported")]
    SessionExported {
        session_id: String,
        format: ExportFormat,
        content: String,
    },
    /// The reply to `user.erase`: what was erased.
    #[serde(rename = "user.erased")]
    UserErased(ErasureReport),
    /// Who is in a session: after `session.created`, or after `session.joined` and
    /// its replay. Not a session event: no `seq`, never replayed.
    #[serde(rename = "presence")]
    Presence(PresenceSnapshot),
    /// Members who arrived or left a session, and its new count of others.
    #[serde(rename = "presence.changed")]
    PresenceChanged(PresenceChange),
    /// A member of a session started or stopped typing. Never replayed.
    #[serde(rename = "typing")]
    Typing(TypingNotice),
    /// A frame could not be carried out; the connection stays open unless a close follows.
    #[serde(rename = "error")]
    Error {
        code: ErrorCode,
        message: String,
        /// When a retry can succeed, in milliseconds from now: set on `rate_limited`
        /// and `unavailable` answers to a quota (docs/protocol.md §5.1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// The replica is draining: reconnect (elsewhere) and resume with `after_seq`.
    #[serde(rename = "goaway")]
    Goaway { reason: String },
}

/// A server frame with the `re` of the client frame it answers, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ServerReply {
    /// The `id` of the client frame this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub re: Option<String>,
    #[serde(flatten)]
    pub frame: ServerFrame,
}

impl ServerReply {
    /// A reply to the client frame whose id was `re`.
    pub fn new(re: Option<String>, frame: ServerFrame) -> ServerReply {
        ServerReply { re, frame }
    }

    /// An `error` frame.
    pub fn error(re: Option<String>, code: ErrorCode, message: impl Into<String>) -> ServerReply {
        ServerReply {
            re,
            frame: ServerFrame::Error {
                code,
                message: message.into(),
                retry_after_ms: None,
            },
        }
    }

    /// An `error` reply with a retry hint (`retry_after_ms`), when there is one.
    pub fn error_with_retry(
        re: Option<String>,
        code: ErrorCode,
        message: impl Into<String>,
        retry_after_ms: Option<u64>,
    ) -> ServerReply {
        ServerReply {
            re,
            frame: ServerFrame::Error {
                code,
                message: message.into(),
                retry_after_ms,
            },
        }
    }

    /// Serialize to the JSON text sent on sockets.
    pub fn to_json(&self) -> String {
        // Strings, numbers and maps only: serializing into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
