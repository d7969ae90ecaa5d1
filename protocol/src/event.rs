//! Session events (docs/protocol.md §4): what a backplane stores and what every member receives.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Seq;
use crate::conversation::SessionSummary;
use crate::handoff::{Handoff, HandoffBy, HandoffState, Staffer};

/// Who wrote a `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
    Operator,
    System,
}

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    Completed,
    Cancelled,
    Failed,
}

impl TurnStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TurnStatus::Completed => "completed",
            TurnStatus::Cancelled => "cancelled",
            TurnStatus::Failed => "failed",
        }
    }
}

/// Why a turn ended `failed`, where a client may want to tell causes apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TurnEndCode {
    /// The replica running the turn stopped (killed, crashed, cut off) before it
    /// finished; another replica ended it. See `retrying`.
    ReplicaLost,
    /// The turn waited `--turn-slot-wait` for room under the caps on concurrent turns
    /// (per replica, per org, per principal) and got none; its message is stored but
    /// unanswered. Send it again later.
    RateLimited,
    /// The org's daily token budget was spent before this turn could start; its
    /// message is stored but unanswered. New messages get the error
    /// `budget_exhausted` until the budget resets at 00:00 UTC.
    BudgetExhausted,
}

/// A document a reply drew on. Only documents the asker may read are ever listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Source {
    pub doc_id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// Token counts of a turn, as the model reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// The body of an event: everything but its position (`seq`, `ts`) and its stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type")]
pub enum EventBody {
    /// A message in the transcript.
    #[serde(rename = "message")]
    Message {
        message_id: String,
        role: Role,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        author: Option<String>,
    },
    /// An agent turn began, replying to `reply_to` (a `message_id`).
    #[serde(rename = "turn.start")]
    TurnStart {
        turn_id: String,
        reply_to: String,
        /// The org's named assistant answering (its name); absent: the default assistant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assistant: Option<String>,
    },
    /// More reply text, appended in order.
    #[serde(rename = "turn.delta")]
    TurnDelta { turn_id: String, text: String },
    /// The model asks to call a tool.
    #[serde(rename = "tool.request")]
    ToolRequest {
        turn_id: String,
        call_id: String,
        tool: String,
        arguments: Value,
        /// Whether the call waits for a member's `tool.decide` (approve or deny).
        /// False: the gateway runs it at once and `tool.result` follows.
        #[serde(default)]
        requires_approval: bool,
    },
    /// A tool call's outcome.
    #[serde(rename = "tool.result")]
    ToolResult {
        turn_id: String,
        call_id: String,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<Value>,
        /// Who decided a call that needed approval: a `user_id`, or `anonymous`.
        /// Absent when the call needed no approval or nobody decided in time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decided_by: Option<String>,
    },
    /// A turn ended; `text` is the whole reply (partial when not completed).
    #[serde(rename = "turn.end")]
    TurnEnd {
        turn_id: String,
        status: TurnStatus,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sources: Option<Vec<Source>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Set on some `failed` ends; clients treat an unknown code as a plain failure.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<TurnEndCode>,
        /// With `replica_lost`: whether a new turn answers the same message (`true`),
        /// or it is left for the user to ask again (`false`: the turn had already
        /// called a tool, or the message was interrupted too often).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retrying: Option<bool>,
        /// The org's named assistant answering (its name); absent: the default assistant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assistant: Option<String>,
    },
    /// An event pushed by a backend.
    #[serde(rename = "event")]
    Custom {
        name: String,
        data: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        publisher: Option<String>,
        /// Kept in the conversation's transcript (docs/protocol.md §4.6) when it was
        /// published through the gateway; otherwise only the backplane's short history
        /// holds it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        durable: bool,
    },
    /// Who holds the conversation changed (docs/protocol.md §3.14).
    #[serde(rename = "handoff")]
    Handoff {
        state: HandoffState,
        by: HandoffBy,
        /// The operator who claimed or released it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        operator: Option<Staffer>,
        /// Why a person was asked for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// What to show the customer (the org's waiting message, while `waiting`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notice: Option<String>,
    },
    /// A conversation entered, changed in or left the operator inbox (on the staff
    /// stream only, §4.7): the conversation as listings show it, and its handoff.
    // Boxed: every event, a `turn.delta` too, is as large as the largest body, and
    // unboxed these two would almost double it (296 bytes instead of 160).
    #[serde(rename = "inbox.changed")]
    InboxChanged {
        session: Box<SessionSummary>,
        handoff: Box<Handoff>,
    },
}

impl EventBody {
    /// The wire `type` of this event.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventBody::Message { .. } => "message",
            EventBody::TurnStart { .. } => "turn.start",
            EventBody::TurnDelta { .. } => "turn.delta",
            EventBody::ToolRequest { .. } => "tool.request",
            EventBody::ToolResult { .. } => "tool.result",
            EventBody::TurnEnd { .. } => "turn.end",
            EventBody::Custom { .. } => "event",
            EventBody::Handoff { .. } => "handoff",
            EventBody::InboxChanged { .. } => "inbox.changed",
        }
    }
}

/// An event as a backplane stores it: its body plus the position the backplane gave it.
///
/// JSON: `{"seq":7,"ts":1700000000000,"type":"message",…}` — the body's fields inline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Event {
    /// Position in its stream, assigned by the backplane.
    pub seq: Seq,
    /// Milliseconds since the Unix epoch, assigned by the backplane on append.
    pub ts: u64,
    /// The W3C trace context (`traceparent`: `00-<trace id>-<span id>-<flags>`) of the
    /// span that appended the event: a gateway delivering it records its delivery as a
    /// child of that span (docs/protocol.md §8.1). Internal to the backplane: no event
    /// frame, replay, export or webhook carries it.
    // `EventFrame` has no such field, and serializing an `Event` skips it; a backplane
    // writes it through `StoredBody`.
    #[serde(default, skip_serializing)]
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"))
    )]
    pub traceparent: Option<String>,
    #[serde(flatten)]
    pub body: EventBody,
}

/// An event body as a backplane stores it before adding `seq` and `ts`: the body's
/// fields and, when the append was traced, its `traceparent` (docs/protocol.md §8.1).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StoredBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<&'a str>,
    #[serde(flatten)]
    pub body: &'a EventBody,
}

/// An event as it travels on a socket: session events carry `session_id`, events of
/// `user:` and `org:` streams carry `stream` instead (docs/protocol.md §4.7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(extend("allOf" = [{"oneOf": [
        {"required": ["session_id"], "properties": {"session_id": {"type": "string"}}},
        {"required": ["stream"], "properties": {"stream": {"type": "string"}}}
    ]}]))
)]
pub struct EventFrame<'a> {
    /// The session, for events of a `session:` stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Cow<'a, str>>,
    /// The stream (`user:<user_id>`, `org:<org_id>`), for events of other streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<Cow<'a, str>>,
    pub seq: Seq,
    pub ts: u64,
    #[serde(flatten)]
    pub body: Cow<'a, EventBody>,
}

impl<'a> EventFrame<'a> {
    /// The socket form of `event` from `stream`, borrowing both.
    pub fn new(stream: &'a crate::StreamName, event: &'a Event) -> EventFrame<'a> {
        let (session_id, stream) = match stream.kind() {
            crate::StreamKind::Session => (Some(Cow::Borrowed(stream.id())), None),
            _ => (None, Some(stream.wire_name())),
        };
        EventFrame {
            session_id,
            stream,
            seq: event.seq,
            ts: event.ts,
            body: Cow::Borrowed(&event.body),
        }
    }

    /// Serialize to the JSON text sent on sockets.
    pub fn to_json(&self) -> String {
        // Serializing a tree of strings, numbers and `Value`s into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use super::*;

    /// Every event held in a backplane's history and in outbound queues, a `turn.delta`
    /// too, is as large as the largest body: one large variant costs all of them. Box
    /// the fields of a variant that would push past this (as `inbox.changed` does).
    #[test]
    fn an_event_stays_as_small_as_its_largest_common_body() {
        assert!(
            std::mem::size_of::<EventBody>() <= 160,
            "EventBody is {} bytes",
            std::mem::size_of::<EventBody>()
        );
        assert!(
            std::mem::size_of::<Event>() <= 200,
            "Event is {} bytes",
            std::mem::size_of::<Event>()
        );
    }
}
