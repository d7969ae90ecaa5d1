//! Frames a client sends (docs/protocol.md §3), and [`ClientFrame::parse`], the one way a text
//! frame becomes a typed frame.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::conversation::{SessionDelete, SessionExport, SessionList, SessionUpdate, UserErase};
use crate::handoff::{HandoffRequest, HandoffTarget, InboxList};
use crate::presence::Typing;
use crate::{ErrorCode, MAX_FRAME_ID_CHARS, Seq};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SessionCreate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// The name of one of the org's named assistants to talk to; absent: the default
    /// assistant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assistant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SessionJoin {
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<Seq>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SessionLeave {
    pub session_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MessageSend {
    pub session_id: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TurnCancel {
    pub session_id: String,
    pub turn_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ToolDecide {
    pub session_id: String,
    pub call_id: String,
    pub approved: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuthRefresh {
    pub token: String,
}

/// A client frame without its `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type")]
pub enum ClientFrame {
    /// Answered by `pong`.
    #[serde(rename = "ping")]
    Ping {},
    /// Creates a session and joins it; answered by `session.created`.
    #[serde(rename = "session.create")]
    SessionCreate(SessionCreate),
    /// Joins a session, replaying events after `after_seq`; answered by `session.joined`.
    #[serde(rename = "session.join")]
    SessionJoin(SessionJoin),
    /// Leaves a session; answered by `session.left`.
    #[serde(rename = "session.leave")]
    SessionLeave(SessionLeave),
    /// Appends a user `message` and starts a turn; answered by `message.accepted`.
    #[serde(rename = "message.send")]
    MessageSend(MessageSend),
    /// Cancels a running turn; it ends with a `turn.end` event of status `cancelled`.
    #[serde(rename = "turn.cancel")]
    TurnCancel(TurnCancel),
    /// Approves or refuses a tool call; answered by `tool.decided`.
    #[serde(rename = "tool.decide")]
    ToolDecide(ToolDecide),
    /// Replaces the connection's token before it expires; answered by `auth.refreshed`.
    #[serde(rename = "auth.refresh")]
    AuthRefresh(AuthRefresh),
    /// Lists conversations, newest activity first; answered by `session.listed`.
    #[serde(rename = "session.list")]
    SessionList(SessionList),
    /// Renames, archives or unarchives a conversation; answered by `session.updated`.
    #[serde(rename = "session.update")]
    SessionUpdate(SessionUpdate),
    /// Deletes a conversation for good; answered by `session.deleted`.
    #[serde(rename = "session.delete")]
    SessionDelete(SessionDelete),
    /// Exports a conversation's transcript; answered by `session.exported`.
    #[serde(rename = "session.export")]
    SessionExport(SessionExport),
    /// Erases a user's conversations in the org (admins); answered by `user.erased`.
    #[serde(rename = "user.erase")]
    UserErase(UserErase),
    /// Asks for a person (the customer); answered by `handoff.updated`.
    #[serde(rename = "handoff.request")]
    HandoffRequest(HandoffRequest),
    /// Takes the conversation (staff); answered by `handoff.updated`.
    #[serde(rename = "handoff.claim")]
    HandoffClaim(HandoffTarget),
    /// Gives the conversation back to the assistant (its holder, or an admin);
    /// answered by `handoff.updated`.
    #[serde(rename = "handoff.release")]
    HandoffRelease(HandoffTarget),
    /// The org's waiting and held conversations (staff); answered by `inbox.listed`.
    #[serde(rename = "inbox.list")]
    InboxList(InboxList),
    /// The member is typing, or stopped; no reply (others get a `typing` frame).
    #[serde(rename = "typing")]
    Typing(Typing),
}

/// Every frame `type` a client may send.
pub const CLIENT_FRAME_TYPES: &[&str] = &[
    "ping",
    "session.create",
    "session.join",
    "session.leave",
    "message.send",
    "turn.cancel",
    "tool.decide",
    "auth.refresh",
    "session.list",
    "session.update",
    "session.delete",
    "session.export",
    "user.erase",
    "handoff.request",
    "handoff.claim",
    "handoff.release",
    "inbox.list",
    "typing",
];

/// A client frame with its optional `id`, as sent on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ParsedFrame {
    /// Echoed as `re` by the direct reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_FRAME_ID_CHARS)))]
    pub id: Option<String>,
    #[serde(flatten)]
    pub frame: ClientFrame,
}

/// Why a text frame is not a valid client frame. `id` is the frame's id when it could
/// be read, so the `error` reply can carry `re`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub id: Option<String>,
    pub code: ErrorCode,
    pub message: String,
}

impl FrameError {
    fn bad(id: Option<String>, message: String) -> FrameError {
        FrameError {
            id,
            code: ErrorCode::BadRequest,
            message,
        }
    }
}

impl ClientFrame {
    /// The wire `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientFrame::Ping {} => "ping",
            ClientFrame::SessionCreate(_) => "session.create",
            ClientFrame::SessionJoin(_) => "session.join",
            ClientFrame::SessionLeave(_) => "session.leave",
            ClientFrame::MessageSend(_) => "message.send",
            ClientFrame::TurnCancel(_) => "turn.cancel",
            ClientFrame::ToolDecide(_) => "tool.decide",
            ClientFrame::AuthRefresh(_) => "auth.refresh",
            ClientFrame::SessionList(_) => "session.list",
            ClientFrame::SessionUpdate(_) => "session.update",
            ClientFrame::SessionDelete(_) => "session.delete",
            ClientFrame::SessionExport(_) => "session.export",
            ClientFrame::UserErase(_) => "user.erase",
            ClientFrame::HandoffRequest(_) => "handoff.request",
            ClientFrame::HandoffClaim(_) => "handoff.claim",
            ClientFrame::HandoffRelease(_) => "handoff.release",
            ClientFrame::InboxList(_) => "inbox.list",
            ClientFrame::Typing(_) => "typing",
        }
    }

    /// Parse one text frame. Every failure is a `bad_request` whose message names what
    /// is wrong (not JSON, not an object, a bad `id`, a missing or unknown `type`, or
    /// the field serde rejected), with the frame's `id` when it had a readable one.
    pub fn parse(text: &str) -> Result<ParsedFrame, FrameError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| FrameError::bad(None, format!("frame is not valid JSON: {e}")))?;
        let Value::Object(mut object) = value else {
            return Err(FrameError::bad(
                None,
                "frame must be a JSON object with a \"type\" field".into(),
            ));
        };
        let id = match object.remove("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if id.chars().count() <= MAX_FRAME_ID_CHARS => Some(id),
            Some(Value::String(_)) => {
                return Err(FrameError::bad(
                    None,
                    format!("\"id\" must be at most {MAX_FRAME_ID_CHARS} characters"),
                ));
            }
            Some(_) => return Err(FrameError::bad(None, "\"id\" must be a string".into())),
        };
        let type_name = match object.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(_) => return Err(FrameError::bad(id, "\"type\" must be a string".into())),
            None => return Err(FrameError::bad(id, "frame has no \"type\" field".into())),
        };
        if !CLIENT_FRAME_TYPES.contains(&type_name.as_str()) {
            return Err(FrameError::bad(
                id,
                format!(
                    "unknown frame type \"{type_name}\"; expected one of: {}",
                    CLIENT_FRAME_TYPES.join(", ")
                ),
            ));
        }
        match serde_json::from_value::<ClientFrame>(Value::Object(object)) {
            Ok(frame) => Ok(ParsedFrame { id, frame }),
            Err(e) => Err(FrameError::bad(id, format!("{type_name}: {e}"))),
        }
    }
}

impl ParsedFrame {
    /// Serialize to JSON text (what a client sends).
    pub fn to_json(&self) -> String {
        // Strings, numbers and maps only: serializing into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
