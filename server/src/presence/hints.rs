//! What replicas tell each other about presence, on each replica's presence control
//! stream (`control:<presence id>`): that a session's presence record changed (the
//! receiver reads it again: the record is the truth), or that a member is typing (the
//! hint is the whole message: typing is never stored).

use std::time::Instant;

use switchboard_backplane::{Backplane, StreamName};
use switchboard_protocol::{EventBody, PresenceMember};

use crate::metrics::Metrics;

/// The event name of a change hint; its data is `{"session_id", "from"}`.
const CHANGED: &str = "presence.changed";
/// The event name of a forget hint (the session was removed); its data is
/// `{"session_id", "from"}`.
const FORGET: &str = "presence.forget";
/// The event name of a typing hint; its data is `{"session_id", "from", "member",
/// "typing"}`.
const TYPING: &str = "typing";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Hint {
    /// `presence/<session_id>` changed: read it again.
    Changed { session_id: String, from: String },
    /// `session_id` was removed: forget its presence.
    Forget { session_id: String, from: String },
    /// `member` of `session_id` started or stopped typing.
    Typing {
        session_id: String,
        from: String,
        member: PresenceMember,
        typing: bool,
    },
}

impl Hint {
    fn body(&self) -> EventBody {
        let (name, data) = match self {
            Hint::Changed { session_id, from } => (
                CHANGED,
                serde_json::json!({ "session_id": session_id, "from": from }),
            ),
            Hint::Forget { session_id, from } => (
                FORGET,
                serde_json::json!({ "session_id": session_id, "from": from }),
            ),
            Hint::Typing {
                session_id,
                from,
                member,
                typing,
            } => (
                TYPING,
                serde_json::json!({
                    "session_id": session_id,
                    "from": from,
                    "member": member,
                    "typing": typing,
                }),
            ),
        };
        EventBody::Custom {
            name: name.to_string(),
            data,
            publisher: None,
            durable: false,
        }
    }

    /// The hint an event of a presence control stream carries; `None` for anything
    /// else.
    pub(super) fn parse(body: &EventBody) -> Option<Hint> {
        let EventBody::Custom { name, data, .. } = body else {
            return None;
        };
        let text = |key: &str| data.get(key)?.as_str().map(str::to_string);
        let session_id = text("session_id")?;
        let from = text("from")?;
        match name.as_str() {
            CHANGED => Some(Hint::Changed { session_id, from }),
            FORGET => Some(Hint::Forget { session_id, from }),
            TYPING => Some(Hint::Typing {
                session_id,
                from,
                member: serde_json::from_value(data.get("member")?.clone()).ok()?,
                typing: data.get("typing")?.as_bool()?,
            }),
            _ => None,
        }
    }
}

/// Send `hint` to each of `replicas`. Never fails the caller: a change hint that does
/// not arrive is made up for by the receiver's slow re-read, and a typing hint is
/// worth nothing late.
pub(super) async fn send(
    backplane: &dyn Backplane,
    metrics: &Metrics,
    replicas: &[String],
    hint: &Hint,
) {
    for replica in replicas {
        let Ok(stream) = StreamName::control(replica) else {
            tracing::warn!(replica, "not a presence id; no hint sent");
            continue;
        };
        let started = Instant::now();
        let sent = backplane.append(&stream, hint.body()).await;
        metrics.observe_backplane("presence_hint", started, &sent);
        if let Err(e) = sent {
            tracing::debug!(%stream, error = %e, "presence hint not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use switchboard_protocol::PresenceRole;

    use super::*;

    #[test]
    fn hints_round_trip_and_other_events_are_none() {
        for hint in [
            Hint::Changed {
                session_id: "s_1".into(),
                from: "p_1".into(),
            },
            Hint::Forget {
                session_id: "s_1".into(),
                from: "p_1".into(),
            },
            Hint::Typing {
                session_id: "s_1".into(),
                from: "p_1".into(),
                member: PresenceMember {
                    user_id: Some("op".into()),
                    name: Some("Dana".into()),
                    role: PresenceRole::Operator,
                },
                typing: true,
            },
        ] {
            assert_eq!(Hint::parse(&hint.body()), Some(hint));
        }
        let other = EventBody::Custom {
            name: "turn.cancel".into(),
            data: serde_json::json!({ "session_id": "s_1", "from": "p_1" }),
            publisher: None,
            durable: false,
        };
        assert_eq!(Hint::parse(&other), None);
        let malformed = EventBody::Custom {
            name: TYPING.into(),
            data: serde_json::json!({ "session_id": "s_1", "from": "p_1", "typing": true }),
            publisher: None,
            durable: false,
        };
        assert_eq!(Hint::parse(&malformed), None);
    }
}
