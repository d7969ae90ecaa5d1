//! What a webhook tells: the event types an endpoint may subscribe to, which session
//! events become which type ([`kind_of`], the one mapping), and the JSON payload.

use std::sync::Arc;

use serde_json::{Value, json};
use switchboard_protocol::handoff::HandoffState;
use switchboard_protocol::{Event, EventBody, TurnStatus};

/// An event type an endpoint may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookEventType {
    /// A session was created.
    ConversationCreated,
    /// Someone asked for a person (handoff to `waiting`).
    HandoffRequested,
    /// An operator took the conversation (handoff to `human`).
    HandoffClaimed,
    /// A turn ended `failed`.
    TurnFailed,
    /// Every `message` of a session (opt-in: it is the busiest type).
    MessageCreated,
}

impl WebhookEventType {
    /// Every type, in the order the docs list them.
    pub const ALL: [WebhookEventType; 5] = [
        WebhookEventType::ConversationCreated,
        WebhookEventType::HandoffRequested,
        WebhookEventType::HandoffClaimed,
        WebhookEventType::TurnFailed,
        WebhookEventType::MessageCreated,
    ];

    /// The wire name (`type` of the payload, and what a registration lists).
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEventType::ConversationCreated => "conversation.created",
            WebhookEventType::HandoffRequested => "handoff.requested",
            WebhookEventType::HandoffClaimed => "handoff.claimed",
            WebhookEventType::TurnFailed => "turn.failed",
            WebhookEventType::MessageCreated => "message.created",
        }
    }

    /// The type named `name`, if any.
    pub fn parse(name: &str) -> Option<WebhookEventType> {
        WebhookEventType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// Every wire name, comma separated, for error messages.
    pub fn names() -> String {
        WebhookEventType::ALL
            .iter()
            .map(|kind| kind.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The webhook type a session event becomes, if any. The one mapping from the event
/// stream to webhooks: a new event kind that should reach endpoints gets its arm here.
pub fn kind_of(body: &EventBody) -> Option<WebhookEventType> {
    match body {
        EventBody::Message { .. } => Some(WebhookEventType::MessageCreated),
        EventBody::TurnEnd {
            status: TurnStatus::Failed,
            ..
        } => Some(WebhookEventType::TurnFailed),
        EventBody::Handoff {
            state: HandoffState::Waiting,
            ..
        } => Some(WebhookEventType::HandoffRequested),
        EventBody::Handoff {
            state: HandoffState::Human,
            ..
        } => Some(WebhookEventType::HandoffClaimed),
        EventBody::Handoff {
            state: HandoffState::Assistant,
            ..
        }
        | EventBody::InboxChanged { .. }
        | EventBody::TurnEnd { .. }
        | EventBody::TurnStart { .. }
        | EventBody::TurnDelta { .. }
        | EventBody::ToolRequest { .. }
        | EventBody::ToolResult { .. }
        | EventBody::Custom { .. } => None,
    }
}

/// Something that happened in an org, for its endpoints subscribed to `kind`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    pub kind: WebhookEventType,
    /// The payload's `data`: always an object with the `session_id`.
    pub data: Value,
}

impl WebhookEvent {
    pub fn new(kind: WebhookEventType, data: Value) -> WebhookEvent {
        WebhookEvent { kind, data }
    }

    /// A session event as `kind`: `data` is `{"session_id", "event"}`, the event as a
    /// socket receives it (with `seq`, `ts` and `type`).
    pub fn session_event(
        kind: WebhookEventType,
        session_id: &str,
        event: &Arc<Event>,
    ) -> WebhookEvent {
        let event = serde_json::to_value(event.as_ref()).unwrap_or(Value::Null);
        WebhookEvent::new(kind, json!({"session_id": session_id, "event": event}))
    }
}

/// The JSON body of a delivery: `{"id","type","created_at","org_id","data"}`.
pub fn payload(id: &str, created_at: u64, org_id: &str, event: &WebhookEvent) -> String {
    json!({
        "id": id,
        "type": event.kind.as_str(),
        "created_at": created_at,
        "org_id": org_id,
        "data": event.data,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use switchboard_protocol::Role;

    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_none() {
        for kind in WebhookEventType::ALL {
            assert_eq!(WebhookEventType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(WebhookEventType::parse("message"), None);
        assert!(WebhookEventType::names().contains("handoff.claimed"));
    }

    #[test]
    fn messages_and_failed_turns_map_and_nothing_else() {
        let message = EventBody::Message {
            message_id: "m_1".into(),
            role: Role::User,
            text: "hi".into(),
            author: None,
        };
        assert_eq!(kind_of(&message), Some(WebhookEventType::MessageCreated));
        let end = |status| EventBody::TurnEnd {
            turn_id: "t_1".into(),
            status,
            text: String::new(),
            usage: None,
            sources: None,
            error: Some("upstream".into()),
            code: None,
            retrying: None,
            assistant: None,
        };
        assert_eq!(
            kind_of(&end(TurnStatus::Failed)),
            Some(WebhookEventType::TurnFailed)
        );
        assert_eq!(kind_of(&end(TurnStatus::Completed)), None);
        assert_eq!(kind_of(&end(TurnStatus::Cancelled)), None);
        let delta = EventBody::TurnDelta {
            turn_id: "t_1".into(),
            text: "x".into(),
        };
        assert_eq!(kind_of(&delta), None);
    }

    #[test]
    fn the_payload_carries_id_type_time_org_and_data() {
        let event = Arc::new(Event {
            seq: 7,
            ts: 1_000,
            traceparent: None,
            body: EventBody::Message {
                message_id: "m_1".into(),
                role: Role::User,
                text: "hi".into(),
                author: None,
            },
        });
        let hook = WebhookEvent::session_event(WebhookEventType::MessageCreated, "s_1", &event);
        let body: Value = serde_json::from_str(&payload("evt_1", 5, "acme", &hook)).unwrap();
        assert_eq!(
            body,
            json!({"id": "evt_1", "type": "message.created", "created_at": 5, "org_id": "acme",
                   "data": {"session_id": "s_1", "event": {"seq": 7, "ts": 1000, "type": "message",
                   "message_id": "m_1", "role": "user", "text": "hi"}}})
        );
    }
}
