//! A session's turn queue, read from its history: the stream is the queue. Every user
//! `message` asks for an answer; a `turn.start` names the message it answers
//! (`reply_to`) and its `turn.end` settles it, except a `replica_lost` end that says
//! the message is answered again (`retrying: true`).

use std::collections::HashMap;
use std::sync::Arc;

use switchboard_backplane::Event;
use switchboard_protocol::{EventBody, Role, TurnEndCode};

/// A turn that started and has no end: its replica stopped (or could not record it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unfinished {
    pub(super) turn_id: String,
    pub(super) message_id: String,
    /// It asked for a tool call, which may have run: it is not run again by itself.
    pub(super) called_tool: bool,
    /// Earlier turns for the same message that ended `replica_lost`.
    pub(super) earlier_losses: usize,
}

/// A message waiting for its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Waiting {
    pub(super) message_id: String,
    pub(super) text: String,
}

/// What is left to do in a session, oldest first.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Backlog {
    pub(super) unfinished: Option<Unfinished>,
    pub(super) waiting: Vec<Waiting>,
}

#[derive(Default)]
struct Asked {
    text: String,
    settled: bool,
    losses: usize,
    open_turn: bool,
}

struct OpenTurn {
    message_id: String,
    called_tool: bool,
}

/// The backlog that `history` (a session's retained events, oldest first) shows.
pub(super) fn scan(history: &[Arc<Event>]) -> Backlog {
    let mut order: Vec<String> = Vec::new();
    let mut asked: HashMap<String, Asked> = HashMap::new();
    let mut open: Vec<(String, OpenTurn)> = Vec::new();
    for event in history {
        match &event.body {
            EventBody::Message {
                message_id,
                role: Role::User,
                text,
                ..
            } if !asked.contains_key(message_id) => {
                order.push(message_id.clone());
                asked.insert(
                    message_id.clone(),
                    Asked {
                        text: text.clone(),
                        ..Asked::default()
                    },
                );
            }
            EventBody::TurnStart { turn_id, reply_to } => {
                if let Some(message) = asked.get_mut(reply_to) {
                    message.open_turn = true;
                }
                open.push((
                    turn_id.clone(),
                    OpenTurn {
                        message_id: reply_to.clone(),
                        called_tool: false,
                    },
                ));
            }
            EventBody::ToolRequest { turn_id, .. } => {
                if let Some((_, turn)) = open.iter_mut().find(|(id, _)| id == turn_id) {
                    turn.called_tool = true;
                }
            }
            EventBody::TurnEnd {
                turn_id,
                code,
                retrying,
                ..
            } => {
                let Some(index) = open.iter().position(|(id, _)| id == turn_id) else {
                    continue;
                };
                let (_, turn) = open.remove(index);
                if let Some(message) = asked.get_mut(&turn.message_id) {
                    message.open_turn = false;
                    if *code == Some(TurnEndCode::ReplicaLost) && *retrying == Some(true) {
                        message.losses += 1;
                    } else {
                        message.settled = true;
                    }
                }
            }
            _ => {}
        }
    }
    let unfinished = open.pop().map(|(turn_id, turn)| Unfinished {
        earlier_losses: asked.get(&turn.message_id).map_or(0, |m| m.losses),
        turn_id,
        message_id: turn.message_id,
        called_tool: turn.called_tool,
    });
    let waiting = order
        .into_iter()
        .filter_map(|message_id| {
            let message = asked.remove(&message_id)?;
            (!message.settled && !message.open_turn).then_some(Waiting {
                message_id,
                text: message.text,
            })
        })
        .collect();
    Backlog {
        unfinished,
        waiting,
    }
}

#[cfg(test)]
mod tests {
    use switchboard_protocol::TurnStatus;

    use super::*;

    fn history(bodies: Vec<EventBody>) -> Vec<Arc<Event>> {
        bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| {
                Arc::new(Event {
                    seq: i as u64 + 1,
                    ts: 0,
                    body,
                })
            })
            .collect()
    }

    fn asked(id: &str) -> EventBody {
        EventBody::Message {
            message_id: id.into(),
            role: Role::User,
            text: format!("question {id}"),
            author: None,
        }
    }

    fn start(turn: &str, message: &str) -> EventBody {
        EventBody::TurnStart {
            turn_id: turn.into(),
            reply_to: message.into(),
        }
    }

    fn end(turn: &str, status: TurnStatus, lost: Option<bool>) -> EventBody {
        EventBody::TurnEnd {
            turn_id: turn.into(),
            status,
            text: String::new(),
            usage: None,
            sources: None,
            error: None,
            code: lost.map(|_| TurnEndCode::ReplicaLost),
            retrying: lost,
        }
    }

    fn waiting(ids: &[&str]) -> Vec<Waiting> {
        ids.iter()
            .map(|id| Waiting {
                message_id: id.to_string(),
                text: format!("question {id}"),
            })
            .collect()
    }

    #[test]
    fn answered_messages_leave_the_queue_in_any_status() {
        let backlog = scan(&history(vec![
            asked("m1"),
            start("t1", "m1"),
            end("t1", TurnStatus::Completed, None),
            asked("m2"),
            start("t2", "m2"),
            end("t2", TurnStatus::Cancelled, None),
            asked("m3"),
            asked("m4"),
            start("t3", "m3"),
            end("t3", TurnStatus::Failed, None),
        ]));
        assert_eq!(backlog.unfinished, None);
        assert_eq!(backlog.waiting, waiting(&["m4"]));
    }

    #[test]
    fn a_turn_without_its_end_is_unfinished_and_its_message_not_waiting() {
        let backlog = scan(&history(vec![
            asked("m1"),
            start("t1", "m1"),
            EventBody::TurnDelta {
                turn_id: "t1".into(),
                text: "Hel".into(),
            },
            asked("m2"),
        ]));
        assert_eq!(
            backlog.unfinished,
            Some(Unfinished {
                turn_id: "t1".into(),
                message_id: "m1".into(),
                called_tool: false,
                earlier_losses: 0,
            })
        );
        assert_eq!(backlog.waiting, waiting(&["m2"]));
    }

    #[test]
    fn a_lost_turn_that_retries_puts_its_message_back_first_and_counts_the_loss() {
        let events = history(vec![
            asked("m1"),
            asked("m2"),
            start("t1", "m1"),
            end("t1", TurnStatus::Failed, Some(true)),
        ]);
        assert_eq!(scan(&events).waiting, waiting(&["m1", "m2"]));
        let mut more = events.clone();
        more.extend(history(vec![
            start("t2", "m1"),
            EventBody::ToolRequest {
                turn_id: "t2".into(),
                call_id: "tc1".into(),
                tool: "lookup".into(),
                arguments: serde_json::json!({}),
                requires_approval: false,
            },
        ]));
        let backlog = scan(&more);
        assert_eq!(
            backlog.unfinished,
            Some(Unfinished {
                turn_id: "t2".into(),
                message_id: "m1".into(),
                called_tool: true,
                earlier_losses: 1,
            })
        );
        assert_eq!(backlog.waiting, waiting(&["m2"]));
    }

    #[test]
    fn a_lost_turn_that_does_not_retry_settles_its_message() {
        let backlog = scan(&history(vec![
            asked("m1"),
            start("t1", "m1"),
            end("t1", TurnStatus::Failed, Some(false)),
        ]));
        assert_eq!(backlog, Backlog::default());
    }

    #[test]
    fn operator_and_assistant_messages_ask_nothing_and_stray_ends_are_ignored() {
        let backlog = scan(&history(vec![
            EventBody::Message {
                message_id: "m0".into(),
                role: Role::Operator,
                text: "hello".into(),
                author: None,
            },
            end("t_gone", TurnStatus::Completed, None),
            EventBody::Message {
                message_id: "m9".into(),
                role: Role::Assistant,
                text: "hi".into(),
                author: None,
            },
        ]));
        assert_eq!(backlog, Backlog::default());
    }
}
