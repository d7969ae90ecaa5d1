//! The audit of one chaos round, from the settled history of each session and from
//! what each client received:
//!
//! - every send is acknowledged in the end (retried with its `client_message_id`);
//! - every acknowledged message is in history with its acknowledged `seq` and has
//!   exactly one completed answer, preceded only by `replica_lost` ends with
//!   `retrying: true` ([`Verdict::Answered`]);
//! - the turn rules hold ([`ledger`]): no turn without its `turn.end`, none started
//!   twice or while another runs, no event of a turn after its end, no message
//!   answered twice;
//! - history's `seq`s strictly increase, and each client received exactly history,
//!   event for event (none missed, none twice, across every resume);
//! - every `202`-acknowledged publish is in history exactly once, at its `seq`, and no
//!   publish is there twice;
//! - each turn a kill interrupted ended `replica_lost` within the lease lapse + 2 s of
//!   the kill.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::Value;

use super::publisher::{PublishLog, TICK};
use super::session::SessionLog;
use crate::support::turns::{Verdict, ledger};
use crate::support::{seq, summary, ty};

/// A replica killed at wall-clock `ms` (once it was gone).
#[derive(Debug, Clone, Copy)]
pub struct Kill {
    pub ms: u64,
}

/// The backplane frozen from `from` to `to` (wall-clock ms).
#[derive(Debug, Clone, Copy)]
pub struct Freeze {
    pub from: u64,
    pub to: u64,
}

/// How far apart a dead replica's last event and its kill may be (the backplane may
/// still run a command the replica sent just before it died).
const CLOCK_SLACK_MS: u64 = 50;

/// What a round's audit found.
#[derive(Debug, Default)]
pub struct Audit {
    /// Acknowledged messages audited.
    pub messages: usize,
    /// Of those, how many needed a retry: count by number of retries (1, 2, …).
    pub retried: BTreeMap<usize, usize>,
    /// Messages in history whose sender never got `message.accepted` (it gave up).
    pub unacknowledged: usize,
    /// Events in history, over all sessions.
    pub events: usize,
    /// Publishes acknowledged and found.
    pub publishes: usize,
    /// Kill → the `replica_lost` end of a turn it interrupted, in ms.
    pub takeovers_ms: Vec<u64>,
    /// `replica_lost` ends after the frozen backplane.
    pub freeze_losses: usize,
    /// `replica_lost` ends with no kill or freeze between the turn's last event and its
    /// end: a live replica counted dead (e.g. its heartbeat starved of CPU).
    pub unexplained_losses: usize,
    pub problems: Vec<String>,
}

impl Audit {
    fn problem(&mut self, session: &str, what: String) {
        self.problems.push(format!("session {session}: {what}"));
    }
}

/// Audit one round. `histories`: each session's settled history, in order.
pub fn audit(
    sessions: &[SessionLog],
    histories: &HashMap<String, Vec<Value>>,
    publishes: &PublishLog,
    kills: &[Kill],
    freezes: &[Freeze],
    lapse: Duration,
) -> Audit {
    let mut audit = Audit::default();
    for log in sessions {
        let id = log.session_id.as_str();
        let history = &histories[id];
        audit.events += history.len();
        for problem in &log.problems {
            audit.problem(id, format!("client: {problem}"));
        }
        for (cmid, refusal) in &log.abandoned {
            audit.problem(
                id,
                format!("{cmid} was never acknowledged, however often sent; last: {refusal}"),
            );
        }
        audit_turns(&mut audit, log, history);
        audit_received(&mut audit, log, history);
        audit_timing(
            &mut audit,
            id,
            history,
            kills,
            freezes,
            lapse.as_millis() as u64,
        );
    }
    audit_publishes(&mut audit, publishes, histories);
    let limit = (lapse + Duration::from_secs(2)).as_millis() as u64;
    let late: Vec<u64> = audit
        .takeovers_ms
        .iter()
        .copied()
        .filter(|&ms| ms > limit)
        .collect();
    if !late.is_empty() {
        audit.problems.push(format!(
            "turns ended replica_lost later than lapse + 2 s ({limit} ms) after the kill: {late:?} ms"
        ));
    }
    audit
}

fn audit_turns(audit: &mut Audit, log: &SessionLog, history: &[Value]) {
    let id = log.session_id.as_str();
    let book = ledger(history);
    for problem in book.problems.iter().chain(&book.open) {
        audit.problem(id, problem.clone());
    }
    let mut acked_ids = HashMap::new();
    for (cmid, ack) in &log.acked {
        acked_ids.insert(ack.message_id.as_str(), cmid.as_str());
        audit.messages += 1;
        match book.questions.iter().find(|(m, _)| *m == ack.message_id) {
            Some((_, at)) if *at == ack.seq => {}
            Some((_, at)) => audit.problem(
                id,
                format!("{cmid} acknowledged at seq {} is at seq {at}", ack.seq),
            ),
            None => audit.problem(id, format!("{cmid} ({ack:?}) is not in history")),
        }
        match book.verdict(&ack.message_id) {
            Verdict::Answered { retries: 0 } => {}
            Verdict::Answered { retries } => *audit.retried.entry(retries).or_default() += 1,
            other => {
                let after: Vec<Value> = history
                    .iter()
                    .filter(|e| seq(e) >= ack.seq)
                    .take(40)
                    .cloned()
                    .collect();
                let turns: Vec<_> = book
                    .answers(&ack.message_id)
                    .iter()
                    .map(|t| (t.turn_id.clone(), t.end.clone()))
                    .collect();
                audit.problem(
                    id,
                    format!(
                        "{cmid} ({}) is not answered once: {other:?}; its turns: {turns:?}; history from it: {}",
                        ack.message_id,
                        summary(&after)
                    ),
                )
            }
        }
    }
    for (message_id, _) in &book.questions {
        if acked_ids.contains_key(message_id.as_str()) {
            continue;
        }
        audit.unacknowledged += 1;
        if let Verdict::Broken(why) = book.verdict(message_id) {
            audit.problem(id, format!("unacknowledged {message_id}: {why}"));
        }
    }
}

/// The client received exactly history: same events, same order, each once.
fn audit_received(audit: &mut Audit, log: &SessionLog, history: &[Value]) {
    if log.received == history {
        return;
    }
    let at = log
        .received
        .iter()
        .zip(history)
        .position(|(a, b)| a != b)
        .unwrap_or(log.received.len().min(history.len()));
    let around =
        |events: &[Value]| summary(&events[at.saturating_sub(3)..(at + 3).min(events.len())]);
    audit.problem(
        &log.session_id,
        format!(
            "the client received {} events, history has {}; first difference at #{at}:\nreceived: {}\nhistory:  {}",
            log.received.len(),
            history.len(),
            around(&log.received),
            around(history)
        ),
    );
}

/// For each `replica_lost` end: what interrupted the turn, and how long after a kill
/// it ended.
fn audit_timing(
    audit: &mut Audit,
    id: &str,
    history: &[Value],
    kills: &[Kill],
    freezes: &[Freeze],
    lapse_ms: u64,
) {
    for turn in ledger(history).turns.iter().filter(|t| t.replica_lost()) {
        let end_ts = turn
            .end
            .as_ref()
            .and_then(|e| e["ts"].as_u64())
            .unwrap_or(0);
        let since = turn.last_ts.saturating_sub(CLOCK_SLACK_MS);
        // A freeze interrupts the turns whose replica gives up within a lapse of the
        // thaw; their last event may be a delta that waited out the freeze.
        if freezes
            .iter()
            .any(|f| f.from <= end_ts && since <= f.to + lapse_ms)
        {
            audit.freeze_losses += 1;
        } else if let Some(kill) = kills.iter().find(|k| k.ms >= since && k.ms <= end_ts) {
            audit.takeovers_ms.push(end_ts.saturating_sub(kill.ms));
        } else {
            audit.unexplained_losses += 1;
            eprintln!(
                "session {id}: turn {} ended replica_lost with no kill or freeze since its last event",
                turn.turn_id
            );
        }
    }
}

fn audit_publishes(
    audit: &mut Audit,
    publishes: &PublishLog,
    histories: &HashMap<String, Vec<Value>>,
) {
    for problem in &publishes.problems {
        audit.problems.push(format!("publisher: {problem}"));
    }
    // p → where it is in history: (session, seq).
    let mut found: HashMap<u64, Vec<(&str, u64)>> = HashMap::new();
    for (session, history) in histories {
        for event in history
            .iter()
            .filter(|e| ty(e) == "event" && e["name"] == TICK)
        {
            let p = event["data"]["p"].as_u64().unwrap_or(u64::MAX);
            found.entry(p).or_default().push((session, seq(event)));
        }
    }
    for (p, places) in &found {
        if places.len() > 1 {
            audit.problems.push(format!(
                "publish {p} is in history {} times: {places:?}",
                places.len()
            ));
        }
    }
    for (p, (session, at)) in &publishes.acked {
        match found.get(p).map(Vec::as_slice) {
            Some([(s, q)]) if s == session && q == at => audit.publishes += 1,
            other => audit.problems.push(format!(
                "publish {p} acknowledged (202) at {session} seq {at} is in history as {other:?}"
            )),
        }
    }
}
