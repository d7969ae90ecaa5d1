//! What a session's retained history says about a turn or a message. Retention may
//! have removed the oldest events (`Replay::trimmed`); then an absent event may have
//! existed, and the answers say "unknown" rather than guess.

use std::sync::Arc;

use switchboard_backplane::{Event, Replay};
use switchboard_protocol::{EventBody, Role, TurnStatus};

/// A turn found in history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Started {
    /// It asked for a tool call (which may have run). Unknown counts as yes.
    pub(super) called_tool: bool,
    /// Its `turn.end` is there.
    pub(super) ended: bool,
    /// It ended completed and no assistant `message` follows: its replica stopped
    /// between the two. The reply's text, which that message carries.
    pub(super) owed_answer: Option<String>,
}

/// Whether `turn_id` started: `None` when it surely did not (its `turn.start` is not
/// in an untrimmed history).
pub(super) fn started(replay: &Replay, turn_id: &str) -> Option<Started> {
    let mut found: Option<Started> = None;
    for event in &replay.events {
        match &event.body {
            EventBody::TurnStart { turn_id: id, .. } if id == turn_id => {
                found = Some(Started {
                    called_tool: false,
                    ended: false,
                    owed_answer: None,
                });
            }
            EventBody::ToolRequest { turn_id: id, .. } if id == turn_id => {
                if let Some(turn) = found.as_mut() {
                    turn.called_tool = true;
                }
            }
            EventBody::TurnEnd {
                turn_id: id,
                status,
                text,
                ..
            } if id == turn_id => {
                if let Some(turn) = found.as_mut() {
                    turn.ended = true;
                    turn.owed_answer = (*status == TurnStatus::Completed).then(|| text.clone());
                }
            }
            EventBody::Message {
                role: Role::Assistant,
                ..
            } => {
                if let Some(turn) = found.as_mut() {
                    turn.owed_answer = None;
                }
            }
            _ => {}
        }
    }
    match found {
        Some(turn) => Some(turn),
        // Its start may have been trimmed away: assume the worst (started, tool run).
        None if replay.trimmed => Some(Started {
            called_tool: true,
            ended: false,
            owed_answer: None,
        }),
        None => None,
    }
}

/// The text of the user message `message_id`, while it is retained.
pub(super) fn question(events: &[Arc<Event>], message_id: &str) -> Option<String> {
    // Read up to the message: it is the last event or near it.
    events.iter().rev().find_map(|event| match &event.body {
        EventBody::Message {
            message_id: id,
            text,
            ..
        } if id == message_id => Some(text.clone()),
        _ => None,
    })
}

/// Whether a turn answering `message_id` ever started: `None` when retention may have
/// removed the answer.
pub(super) fn answered(replay: &Replay, message_id: &str) -> Option<bool> {
    let found = replay.events.iter().any(|event| {
        matches!(&event.body, EventBody::TurnStart { reply_to, .. } if reply_to == message_id)
    });
    match (found, replay.trimmed) {
        (true, _) => Some(true),
        (false, true) => None,
        (false, false) => Some(false),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use switchboard_backplane::Event;

    use super::*;

    fn replay(bodies: Vec<EventBody>, trimmed: bool) -> Replay {
        let events: Vec<Arc<Event>> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| {
                Arc::new(Event {
                    seq: i as u64 + 1,
                    ts: 0,
                    traceparent: None,
                    body,
                })
            })
            .collect();
        Replay {
            last_seq: events.len() as u64,
            events,
            trimmed,
        }
    }

    fn start(turn: &str, message: &str) -> EventBody {
        EventBody::TurnStart {
            turn_id: turn.into(),
            reply_to: message.into(),
            assistant: None,
        }
    }

    #[test]
    fn a_turn_is_found_with_its_tool_calls_and_its_end() {
        let history = replay(
            vec![
                start("t1", "m1"),
                EventBody::ToolRequest {
                    turn_id: "t1".into(),
                    call_id: "tc1".into(),
                    tool: "lookup".into(),
                    arguments: serde_json::json!({}),
                    requires_approval: false,
                },
                start("t2", "m2"),
                EventBody::TurnEnd {
                    turn_id: "t2".into(),
                    status: TurnStatus::Completed,
                    text: String::new(),
                    usage: None,
                    sources: None,
                    error: None,
                    code: None,
                    retrying: None,
                    assistant: None,
                },
            ],
            false,
        );
        assert_eq!(
            started(&history, "t1"),
            Some(Started {
                called_tool: true,
                ended: false,
                owed_answer: None,
            })
        );
        assert_eq!(
            started(&history, "t2"),
            Some(Started {
                called_tool: false,
                ended: true,
                owed_answer: Some(String::new()),
            })
        );
        assert_eq!(started(&history, "t3"), None);
        assert_eq!(answered(&history, "m2"), Some(true));
        assert_eq!(answered(&history, "m3"), Some(false));
    }

    #[test]
    fn a_completed_end_owes_its_assistant_message_until_one_follows() {
        let end = |status| EventBody::TurnEnd {
            turn_id: "t1".into(),
            status,
            text: "Within 30 days.".into(),
            usage: None,
            sources: None,
            error: None,
            code: None,
            retrying: None,
            assistant: None,
        };
        let owed = |bodies| started(&replay(bodies, false), "t1").and_then(|t| t.owed_answer);
        assert_eq!(
            owed(vec![start("t1", "m1"), end(TurnStatus::Completed)]),
            Some("Within 30 days.".to_string())
        );
        let answer = EventBody::Message {
            message_id: "m2".into(),
            role: Role::Assistant,
            text: "Within 30 days.".into(),
            author: Some("assistant".into()),
        };
        assert_eq!(
            owed(vec![start("t1", "m1"), end(TurnStatus::Completed), answer]),
            None
        );
        assert_eq!(
            owed(vec![start("t1", "m1"), end(TurnStatus::Cancelled)]),
            None
        );
    }

    #[test]
    fn a_trimmed_history_does_not_rule_anything_out() {
        let history = replay(vec![start("t2", "m2")], true);
        assert_eq!(
            started(&history, "t1"),
            Some(Started {
                called_tool: true,
                ended: false,
                owed_answer: None,
            })
        );
        assert_eq!(answered(&history, "m1"), None);
        assert_eq!(answered(&history, "m2"), Some(true));
    }
}
