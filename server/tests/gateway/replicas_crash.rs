//! Crash-safe turns (docs/protocol.md §3.6, §3.7, §9): a replica killed with SIGKILL
//! mid-answer, with a second message queued behind the answer. Another replica (or the
//! same one, started again) ends the dead turn `failed` with `code: "replica_lost"` and
//! `retrying: true`, answers the message again with a new turn, then answers the queued
//! one; each message is answered exactly once. The client resumes with `after_seq` and
//! sees every event once, in order; re-sending a `client_message_id` gets the first
//! acknowledgement and starts nothing. And a replica drained with SIGTERM finishes its
//! running turn and hands its queued message to another replica.
//!
//! Each test runs over Redis and over NATS (`…::redis`, `…::nats`), with short lease
//! timings ([`SHORT_LEASE`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::client::Session;
use crate::support::knowledge::{REFUND_QUESTION, UNMATCHED_QUESTION};
use crate::support::replicas::{
    Backing, Backplane, SHORT_LAPSE, SHORT_LEASE, backed_tests, replica_paced, replica_with,
    session_events,
};
use crate::support::turns::{Ledger, Verdict, ledger};
use crate::support::{
    Client, Gateway, assert_strictly_increasing, is_assistant_message, metric_sum, seq, summary, ty,
};

backed_tests! {
    /// Two replicas: A is killed mid-answer with a second message queued; the client
    /// resumes on B and gets the dead turn's `turn.end` (`replica_lost`, retrying), a
    /// completed answer to the first message, then one to the second, nothing twice;
    /// a re-sent `client_message_id` starts nothing. No restart of A needed.
    a_killed_replicas_turns_are_answered_by_another => killed_beside_another;

    /// One replica, killed mid-answer and started again: the client resumes on it and
    /// gets the same outcome.
    a_killed_replica_started_again_answers_its_turns => killed_and_restarted;

    /// The backplane server frozen (SIGSTOP) for 2 s, longer than the lease lapse,
    /// while a short answer streams: every replica's heartbeat lapses, the replica
    /// running the turn gives it up, and the turn ends `replica_lost` (retrying) and the
    /// message is answered again, once. The turn never stays without its end.
    a_frozen_backplane_ends_the_running_turn_and_answers_again => frozen_mid_answer;

    /// SIGTERM to A while a turn runs and a message is queued: A finishes the running
    /// turn (completed, no retry), B takes the queue over and answers the queued message,
    /// and A exits 0 within its drain grace.
    a_draining_replica_hands_its_queued_message_over => drained_beside_another;
}

/// The question queued behind the long answer.
const SECOND_QUESTION: &str = UNMATCHED_QUESTION;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A session on one replica with a long answer running and a message queued behind it.
struct Busy {
    client: Client,
    session: Session,
    /// The `message.accepted` of the first and the second message.
    first: Value,
    second: Value,
    /// The session events received so far.
    seen: Vec<Value>,
}

/// On `gw`: a session; the long answer to a first message starts (`turn.start`, a
/// delta); a second message is accepted, queued behind it.
async fn busy_session(gw: &Gateway) -> Busy {
    let mut client = Client::connect(&gw.ws_url()).await;
    let session = client.create_session().await;
    let first = client
        .send_message_once(&session.id, REFUND_QUESTION, "ask-1")
        .await;
    let frames = client.collect_until(|f| ty(f) == "turn.delta").await;
    let second = client
        .send_message_once(&session.id, SECOND_QUESTION, "ask-2")
        .await;
    let seen = session_events(&frames, &session.id);
    Busy {
        client,
        session,
        first,
        second,
        seen,
    }
}

impl Busy {
    fn id(&self) -> &str {
        &self.session.id
    }

    fn key(&self) -> Option<&str> {
        self.session.key.as_deref()
    }

    fn message_id(accepted: &Value) -> &str {
        accepted["message_id"].as_str().unwrap()
    }

    /// The turn seen running when the replica went away.
    fn interrupted_turn(&self) -> Value {
        let start = self
            .seen
            .iter()
            .find(|e| ty(e) == "turn.start")
            .unwrap_or_else(|| panic!("no turn.start seen: {}", summary(&self.seen)));
        assert_eq!(start["reply_to"], self.first["message_id"], "{start}");
        assert!(
            self.seen.iter().all(|e| ty(e) != "turn.end"),
            "the first turn ended before its replica went away; make it longer: {}",
            summary(&self.seen)
        );
        start["turn_id"].clone()
    }

    /// Read what the dying connection still delivers.
    async fn lose_connection(&mut self) {
        let rest = self.client.frames_until_gone().await;
        self.seen.extend(session_events(&rest, &self.session.id));
    }

    /// Resume on `gw` with `after_seq` = the last seq seen; read until the second
    /// message's answer is complete. Returns the new client; `seen` grows.
    async fn resume_until_answered(&mut self, gw: &Gateway) -> Client {
        let mut client = Client::connect(&gw.ws_url()).await;
        let last = seq(self.seen.last().unwrap());
        let joined = client.join(self.id(), Some(last), self.key()).await;
        assert_eq!(joined["recovered"], true, "{joined}");
        let second = self.second["message_id"].clone();
        let (mut turn, mut ended) = (Value::Null, false);
        let frames = client
            .collect_until(|f| {
                if ty(f) == "turn.start" && f["reply_to"] == second {
                    turn = f["turn_id"].clone();
                }
                ended |= ty(f) == "turn.end" && f["turn_id"] == turn && !turn.is_null();
                ended && is_assistant_message(f)
            })
            .await;
        let events = session_events(&frames, self.id());
        assert!(
            events.iter().all(|e| seq(e) > last),
            "the resumed replay starts after after_seq: {}",
            summary(&events)
        );
        self.seen.extend(events);
        client
    }

    /// A fresh connection's whole replay equals what the client saw, event for event:
    /// across the loss and the resume it saw each event exactly once.
    async fn assert_seen_equals_history(&self, gw: &Gateway) {
        let mut fresh = Client::connect(&gw.ws_url()).await;
        fresh.join(self.id(), None, self.key()).await;
        let head = seq(self.seen.last().unwrap());
        let history = session_events(&fresh.collect_until(|f| f["seq"] == head).await, self.id());
        assert_eq!(
            self.seen,
            history,
            "what the client saw differs from history\nseen:    {}\nhistory: {}",
            summary(&self.seen),
            summary(&history)
        );
    }

    /// Re-send both messages with their `client_message_id`s on `client`: the first
    /// acknowledgements come back, and no event follows (no new turn).
    async fn assert_resends_start_nothing(&self, client: &mut Client) {
        for (accepted, cmid) in [(&self.first, "ask-1"), (&self.second, "ask-2")] {
            let again = client
                .send_message_once(self.id(), "asked again", cmid)
                .await;
            assert_eq!(
                (&again["message_id"], &again["seq"]),
                (&accepted["message_id"], &accepted["seq"]),
                "a re-sent {cmid} must get its first acknowledgement: {again}"
            );
        }
        // Long enough for a lease to lapse and be taken over, had anything been queued.
        let quiet = SHORT_LAPSE * 2 + Duration::from_millis(500);
        if let Some(frame) = client.next_frame_within(quiet).await {
            panic!("re-sent messages must start nothing; got {frame}");
        }
    }
}

/// What the client saw, checked: `seq` strictly increasing, every turn ended once and
/// no rule of the ledger broken. The ledger, for the test's own assertions.
fn clean_ledger(seen: &[Value]) -> Ledger {
    assert_strictly_increasing(seen);
    let book = ledger(seen);
    assert!(
        book.problems.is_empty() && book.open.is_empty(),
        "turn rules broken: {:?} {:?}\n{}",
        book.problems,
        book.open,
        summary(seen)
    );
    book
}

/// The crash outcome in what the client saw: the interrupted turn ended `failed`,
/// `replica_lost`, retrying; a new turn answered the first message; then the second
/// was answered; each exactly once. Returns the interrupted turn's `turn.end`.
fn assert_answered_once_after_the_loss(busy: &Busy, interrupted: &Value) -> Value {
    let seen = &busy.seen;
    let book = clean_ledger(seen);
    let (first, second) = (
        Busy::message_id(&busy.first),
        Busy::message_id(&busy.second),
    );
    let order: Vec<&str> = book.turns.iter().map(|t| t.reply_to.as_str()).collect();
    assert_eq!(
        order,
        [first, first, second],
        "turns in order: the interrupted one, its retry, the queued message's: {}",
        summary(seen)
    );
    let lost = &book.turns[0];
    assert_eq!(&lost.turn_id, interrupted, "{}", summary(seen));
    let end = lost.end.clone().unwrap();
    assert_eq!(
        (&end["status"], &end["code"], &end["retrying"]),
        (&json!("failed"), &json!("replica_lost"), &json!(true)),
        "the interrupted turn's end: {end}"
    );
    assert!(
        end["error"].as_str().is_some_and(|e| !e.is_empty()),
        "a replica_lost end says why: {end}"
    );
    assert_eq!(book.verdict(first), Verdict::Answered { retries: 1 });
    assert_eq!(book.verdict(second), Verdict::Answered { retries: 0 });
    end
}

async fn killed_beside_another(backing: Backing) {
    let bp = Backplane::start(backing);
    let mut gw_a = replica_with(&bp, "replica-a", &SHORT_LEASE);
    let gw_b = replica_with(&bp, "replica-b", &SHORT_LEASE);
    let mut busy = busy_session(&gw_a).await;
    gw_a.kill();
    let killed_at = now_ms();
    busy.lose_connection().await;
    let interrupted = busy.interrupted_turn();

    let mut client = busy.resume_until_answered(&gw_b).await;
    let end = assert_answered_once_after_the_loss(&busy, &interrupted);
    eprintln!(
        "{backing:?}, two replicas: kill -> replica_lost turn.end in {} ms",
        end["ts"].as_u64().unwrap().saturating_sub(killed_at)
    );
    busy.assert_seen_equals_history(&gw_b).await;
    busy.assert_resends_start_nothing(&mut client).await;
}

async fn killed_and_restarted(backing: Backing) {
    let bp = Backplane::start(backing);
    let mut gw = replica_with(&bp, "replica-a", &SHORT_LEASE);
    let mut busy = busy_session(&gw).await;
    gw.kill();
    let killed_at = now_ms();
    busy.lose_connection().await;
    let interrupted = busy.interrupted_turn();
    let gw = replica_with(&bp, "replica-a", &SHORT_LEASE);

    let mut client = busy.resume_until_answered(&gw).await;
    let end = assert_answered_once_after_the_loss(&busy, &interrupted);
    eprintln!(
        "{backing:?}, one replica started again: kill -> replica_lost turn.end in {} ms",
        end["ts"].as_u64().unwrap().saturating_sub(killed_at)
    );
    busy.assert_seen_equals_history(&gw).await;
    busy.assert_resends_start_nothing(&mut client).await;
}

async fn drained_beside_another(backing: Backing) {
    const GRACE: Duration = Duration::from_secs(20);
    let bp = Backplane::start(backing);
    let mut a_args = SHORT_LEASE.to_vec();
    a_args.extend(["--drain-grace", "20s"]);
    let mut gw_a = replica_with(&bp, "replica-a", &a_args);
    let gw_b = replica_with(&bp, "replica-b", &SHORT_LEASE);
    let mut busy = busy_session(&gw_a).await;
    let sigterm_at = tokio::time::Instant::now();
    gw_a.sigterm();
    let (rest, code, _) = busy.client.frames_until_close().await;
    assert_eq!(code, 1012, "close code while draining");
    assert_eq!(
        rest.last(),
        Some(&json!({"type": "goaway", "reason": "draining"}))
    );
    busy.seen.extend(session_events(&rest, busy.id()));
    let running = busy.interrupted_turn();

    busy.resume_until_answered(&gw_b).await;
    let seen = &busy.seen;
    let book = clean_ledger(seen);
    let (first, second) = (
        Busy::message_id(&busy.first),
        Busy::message_id(&busy.second),
    );
    assert_eq!(book.verdict(first), Verdict::Answered { retries: 0 });
    assert_eq!(book.verdict(second), Verdict::Answered { retries: 0 });
    assert_eq!(
        book.answers(first)[0].turn_id,
        running,
        "A finished the turn it was running"
    );
    let takeovers = metric_sum(
        &gw_b.metrics().await,
        "switchboard_turn_takeovers_total",
        None,
    );
    assert!(
        takeovers.is_some_and(|n| n >= 1.0),
        "B took the queue over: switchboard_turn_takeovers_total = {takeovers:?}"
    );
    let status = gw_a.wait_exit(GRACE).await;
    assert!(
        status.success(),
        "A's exit status after the drain: {status}"
    );
    eprintln!(
        "{backing:?}: A drained and exited {:?} after SIGTERM",
        sigterm_at.elapsed()
    );
    busy.assert_seen_equals_history(&gw_b).await;
}

async fn frozen_mid_answer(backing: Backing) {
    let bp = Backplane::start(backing);
    // The answer takes about 150 ms: it ends soon after the thaw, before the replica
    // running it has renewed its heartbeat and learnt that it lapsed.
    let gw_a = replica_paced(&bp, "replica-a", "5ms", &SHORT_LEASE);
    let _gw_b = replica_paced(&bp, "replica-b", "5ms", &SHORT_LEASE);
    let mut client = Client::connect(&gw_a.ws_url()).await;
    let session = client.create_session().await;
    let asked = client
        .send_message_once(&session.id, REFUND_QUESTION, "ask-1")
        .await;
    let mut frames = client.collect_until(|f| ty(f) == "turn.start").await;
    bp.freeze();
    tokio::time::sleep(Duration::from_secs(2)).await;
    bp.thaw();

    let message_id = asked["message_id"].clone();
    let mut completed = std::collections::HashSet::new();
    frames.extend(
        client
            .collect_until(|f| {
                if ty(f) == "turn.start" && f["reply_to"] == message_id {
                    completed.insert(f["turn_id"].clone());
                }
                is_assistant_message(f) && !completed.is_empty()
            })
            .await,
    );
    let seen = session_events(&frames, &session.id);
    let book = ledger(&seen);
    assert!(
        book.problems.is_empty() && book.open.is_empty(),
        "turn rules broken: {:?} {:?}\n{}",
        book.problems,
        book.open,
        summary(&seen)
    );
    let message_id = Busy::message_id(&asked);
    assert_eq!(
        book.verdict(message_id),
        Verdict::Answered { retries: 1 },
        "{}",
        summary(&seen)
    );
    let lost = book.answers(message_id)[0].end.clone().unwrap();
    assert_eq!(lost["code"], "replica_lost", "{lost}");
}
