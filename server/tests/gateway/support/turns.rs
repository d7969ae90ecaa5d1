//! What a session's events say about its turns (docs/protocol.md §3.7, §4.4): which
//! message each turn answers and how it ended, and whether the turn rules hold.
//!
//! [`ledger`] reads events in `seq` order and notes every broken rule: a `seq` not
//! strictly increasing, a turn started twice or while another runs, an event of a turn
//! that is not running (after its `turn.end`, say), a `turn.start` answering no earlier
//! user message, a completed turn without its assistant `message` (or one without a
//! completed turn). [`Ledger::verdict`] says how one message was answered: the
//! exactly-once rule of crash-safe turns is that every accepted message ends in exactly
//! one completed turn, preceded only by turns that ended `replica_lost` with
//! `retrying: true`.

use std::collections::HashMap;

use serde_json::Value;

use super::{seq, ty};

/// One turn, as its events show it.
#[derive(Debug, Clone)]
pub struct Turn {
    pub turn_id: String,
    /// The `message_id` it answers.
    pub reply_to: String,
    /// Its `turn.end`, once there.
    pub end: Option<Value>,
    /// The `ts` of its last event before the end (`turn.start`, a delta, a tool event).
    pub last_ts: u64,
}

impl Turn {
    pub fn status(&self) -> Option<&str> {
        self.end.as_ref().and_then(|e| e["status"].as_str())
    }

    pub fn completed(&self) -> bool {
        self.status() == Some("completed")
    }

    /// Ended `failed`, `code: "replica_lost"`.
    pub fn replica_lost(&self) -> bool {
        self.end
            .as_ref()
            .is_some_and(|e| e["status"] == "failed" && e["code"] == "replica_lost")
    }

    /// Ended `replica_lost` with a new turn promised (`retrying: true`).
    pub fn lost_and_retried(&self) -> bool {
        self.replica_lost() && self.end.as_ref().is_some_and(|e| e["retrying"] == true)
    }
}

/// The turns of one session's events, and the rules they break.
#[derive(Debug, Default)]
pub struct Ledger {
    /// User messages, in order: `message_id`, `seq`.
    pub questions: Vec<(String, u64)>,
    /// Turns in the order they started.
    pub turns: Vec<Turn>,
    /// Broken rules, each with the `seq` where it shows.
    pub problems: Vec<String>,
    /// What the last events leave open: a running turn, a completed turn whose assistant
    /// message is not there yet. Not a problem while turns may still run.
    pub open: Vec<String>,
}

/// Read the turns of `events` (one session's, in the order delivered).
pub fn ledger(events: &[Value]) -> Ledger {
    let mut ledger = Ledger::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut asked: HashMap<String, u64> = HashMap::new();
    let mut running: Option<usize> = None;
    // A completed turn waits for its assistant message: (turn, text).
    let mut owed: Option<(usize, Value)> = None;
    let mut last_seq = 0;
    for event in events {
        let at = seq(event);
        if at <= last_seq {
            ledger.problems.push(format!(
                "seq {at} after {last_seq}: not strictly increasing"
            ));
        }
        last_seq = last_seq.max(at);
        let turn_id = event["turn_id"].as_str().unwrap_or_default().to_string();
        let ts = event["ts"].as_u64().unwrap_or(0);
        match ty(event) {
            "message" if event["role"] == "user" => {
                let id = event["message_id"].as_str().unwrap_or_default().to_string();
                if asked.insert(id.clone(), at).is_some() {
                    ledger
                        .problems
                        .push(format!("seq {at}: user message {id} appended twice"));
                }
                ledger.questions.push((id, at));
            }
            "message" if event["role"] == "assistant" => match owed.take() {
                Some((_, text)) if text == event["text"] => {}
                Some((t, _)) => ledger.problems.push(format!(
                    "seq {at}: the assistant message differs from turn {}'s text",
                    ledger.turns[t].turn_id
                )),
                None => ledger.problems.push(format!(
                    "seq {at}: an assistant message that follows no completed turn"
                )),
            },
            "turn.start" => {
                if let Some((t, _)) = owed.take() {
                    ledger.problems.push(format!(
                        "seq {at}: turn {} completed without its assistant message",
                        ledger.turns[t].turn_id
                    ));
                }
                if let Some(r) = running {
                    ledger.problems.push(format!(
                        "seq {at}: turn {turn_id} started while turn {} runs",
                        ledger.turns[r].turn_id
                    ));
                }
                if index.contains_key(&turn_id) {
                    ledger
                        .problems
                        .push(format!("seq {at}: turn {turn_id} started twice"));
                    continue;
                }
                let reply_to = event["reply_to"].as_str().unwrap_or_default().to_string();
                if !asked.contains_key(&reply_to) {
                    ledger.problems.push(format!(
                        "seq {at}: turn {turn_id} answers {reply_to}, no earlier user message"
                    ));
                }
                index.insert(turn_id.clone(), ledger.turns.len());
                running = Some(ledger.turns.len());
                ledger.turns.push(Turn {
                    turn_id,
                    reply_to,
                    end: None,
                    last_ts: ts,
                });
            }
            "turn.delta" | "tool.request" | "tool.result" | "turn.end" => {
                let Some(t) = running.filter(|&r| ledger.turns[r].turn_id == turn_id) else {
                    let state = match index.get(&turn_id) {
                        Some(&t) if ledger.turns[t].end.is_some() => "after its turn.end",
                        Some(_) => "while another turn runs",
                        None => "without its turn.start",
                    };
                    ledger
                        .problems
                        .push(format!("seq {at}: {} of turn {turn_id} {state}", ty(event)));
                    continue;
                };
                if ty(event) == "turn.end" {
                    running = None;
                    if event["status"] == "completed" {
                        owed = Some((t, event["text"].clone()));
                    }
                    ledger.turns[t].end = Some(event.clone());
                } else {
                    ledger.turns[t].last_ts = ts;
                }
            }
            _ => {}
        }
    }
    if let Some(r) = running {
        ledger
            .open
            .push(format!("turn {} has no turn.end", ledger.turns[r].turn_id));
    }
    if let Some((t, _)) = owed {
        ledger.open.push(format!(
            "turn {} completed; its assistant message is not there",
            ledger.turns[t].turn_id
        ));
    }
    ledger
}

/// How one message was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Exactly one completed turn, after `retries` turns that ended `replica_lost`
    /// with `retrying: true`.
    Answered { retries: usize },
    /// Not yet: no turn, a turn still running, or a `retrying` end with no new turn yet.
    Pending,
    /// Its last turn ended without an answer and says why (no retry promised).
    Refused(String),
    /// The exactly-once rule is broken (answered twice, retried after a completed or
    /// refused turn, …).
    Broken(String),
}

impl Ledger {
    /// The turns answering `message_id`, in order.
    pub fn answers(&self, message_id: &str) -> Vec<&Turn> {
        self.turns
            .iter()
            .filter(|t| t.reply_to == message_id)
            .collect()
    }

    pub fn verdict(&self, message_id: &str) -> Verdict {
        let turns = self.answers(message_id);
        let Some((last, before)) = turns.split_last() else {
            return Verdict::Pending;
        };
        if let Some(t) = before.iter().find(|t| !t.lost_and_retried()) {
            return Verdict::Broken(format!(
                "turn {} ended {} and another turn answered the same message after it: {}",
                t.turn_id,
                t.end.as_ref().map_or("<no end>".into(), Value::to_string),
                turns
                    .iter()
                    .map(|t| format!("{}:{}", t.turn_id, t.status().unwrap_or("open")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        match &last.end {
            None => Verdict::Pending,
            Some(_) if last.completed() => Verdict::Answered {
                retries: before.len(),
            },
            Some(_) if last.lost_and_retried() => Verdict::Pending,
            Some(end) => Verdict::Refused(end.to_string()),
        }
    }
}
