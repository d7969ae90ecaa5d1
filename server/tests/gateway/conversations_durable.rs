//! Conversations outlive the backplane (docs/protocol.md §3.4): the README's single
//! node keeps them across a restart, and a join older than the history replays the
//! whole conversation from the transcript, with the same `seq`s.

use std::time::Duration;

use serde_json::Value;
use switchboard_testkit::{GatewayCommand, temp_path};

use crate::support::gateway::binary;
use crate::support::knowledge::REFUND_QUESTION;
use crate::support::{Client, Gateway, events_of, is_assistant_message, seq, ty};

/// Messages, turn ends, tool events: what a transcript keeps (no starts, no deltas).
fn durable(frames: &[Value], session_id: &str) -> Vec<Value> {
    events_of(frames, session_id)
        .into_iter()
        .filter(|f| !matches!(ty(f), "turn.start" | "turn.delta"))
        .cloned()
        .collect()
}

/// Run exactly as the README says (`serve --demo-seed`, from a directory of one's
/// own, so the default `./data` is used), chat, stop it, start it again: the
/// conversation and its transcript are there, with the same `seq`s, and it goes on
/// with `seq`s after them.
#[tokio::test]
async fn the_readme_single_node_keeps_conversations_across_a_restart() {
    let home = temp_path("readme-run", "d");
    std::fs::create_dir_all(&home).unwrap();
    let start = || {
        GatewayCommand::new(binary())
            .current_dir(&home)
            .args(["--demo-seed", "--offline-agent-delay", "2ms"])
            .start()
    };
    let mut gw = start();
    let mut client = Client::connect(&gw.ws_url()).await;
    let s = client.create_session().await;
    client
        .send_message(&s.id, "What happens to a slow consumer?")
        .await;
    let mut frames = client.collect_turns(1).await;
    client.send_message(&s.id, "How does resume work?").await;
    frames.extend(client.collect_turns(1).await);
    let before = durable(&frames, &s.id);
    assert_eq!(
        before.len(),
        6,
        "2 questions, 2 turn ends, 2 answers: {before:?}"
    );
    let last_seq = seq(before.last().unwrap());
    drop(client);

    gw.sigterm();
    assert!(gw.wait_exit(Duration::from_secs(20)).await.success());
    assert!(
        home.join("data").join("switchboard.db").exists(),
        "the store is in ./data"
    );

    let gw = start();
    let mut client = Client::connect(&gw.ws_url()).await;
    let joined = client.join(&s.id, Some(0), s.key.as_deref()).await;
    assert_eq!(joined["recovered"], true, "{joined}");
    assert_eq!(joined["last_seq"], last_seq, "{joined}");
    let replay = client.collect_until(|f| f["seq"] == last_seq).await;
    assert_eq!(
        durable(&replay, &s.id),
        before,
        "the transcript, seq for seq"
    );
    assert!(
        events_of(&replay, &s.id)
            .iter()
            .all(|f| ty(f) != "turn.delta"),
        "a restarted memory backplane has no deltas to replay"
    );

    // The conversation goes on after its old seqs.
    let accepted = client.send_message(&s.id, REFUND_QUESTION).await;
    assert!(seq(&accepted) > last_seq, "{accepted}");
    let more = client.collect_turns(1).await;
    assert!(more.iter().any(is_assistant_message));
    drop(gw);
    let _ = std::fs::remove_dir_all(&home);
}

/// A conversation of 50 streamed answers (thousands of deltas, far more than the
/// history keeps) replays all 100 messages to a client joining with `after_seq` 0:
/// old turns as their `turn.end` and `message`, in `seq` order, with nothing twice.
#[tokio::test]
async fn fifty_streamed_answers_replay_every_message_from_the_start() {
    let gw = Gateway::start(&[
        "--demo-seed",
        "--offline-agent-delay",
        "0ms",
        "--max-frames-per-second",
        "1000",
    ]);
    let mut client = Client::connect(&gw.ws_url()).await;
    let s = client.create_session().await;
    let question =
        "How do sessions, turns, resume, limits, slow consumers, replicas and the backplane work?";
    let mut live = Vec::new();
    for _ in 0..50 {
        client.send_message(&s.id, question).await;
        live.extend(client.collect_turns(1).await);
    }
    let live = events_of(&live, &s.id)
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    let deltas = live.iter().filter(|f| ty(f) == "turn.delta").count();
    assert!(
        deltas >= 2_000,
        "{deltas} deltas: the history (1,000 events) must be far too short"
    );
    let last_seq = seq(live.last().unwrap());

    let mut reader = Client::connect(&gw.ws_url()).await;
    let joined = reader.join(&s.id, Some(0), s.key.as_deref()).await;
    assert_eq!(joined["recovered"], true, "{joined}");
    let replay = reader.collect_until(|f| f["seq"] == last_seq).await;
    let replay = events_of(&replay, &s.id);
    let messages: Vec<&&Value> = replay.iter().filter(|f| ty(f) == "message").collect();
    assert_eq!(messages.len(), 100, "every question and every answer");
    assert_eq!(messages.iter().filter(|f| f["role"] == "user").count(), 50);
    let seqs: Vec<u64> = replay.iter().map(|f| seq(f)).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in seq order, nothing twice"
    );
    // Each replayed event is the one live members saw, seq for seq.
    for event in &replay {
        let original = live
            .iter()
            .find(|f| f["seq"] == event["seq"])
            .unwrap_or_else(|| panic!("replayed an event nobody saw: {event}"));
        assert_eq!(original, *event);
    }
    assert_eq!(
        replay.iter().filter(|f| ty(f) == "turn.end").count(),
        50,
        "every turn's end"
    );
}

/// The store is off the delta path: with PostgreSQL frozen (it accepts connections
/// and answers nothing), a message is accepted and its whole answer streams as usual;
/// once the store answers again, the transcript holds both, lost nothing.
#[tokio::test]
async fn a_frozen_store_holds_back_no_answer_and_loses_nothing() {
    let postgres = switchboard_testkit::PostgresServer::start();
    let url = postgres.url();
    let gw = Gateway::start(&[
        "--demo-seed",
        "--offline-agent-delay",
        "5ms",
        "--store",
        url.as_str(),
    ]);
    let mut client = Client::connect(&gw.ws_url()).await;
    let s = client.create_session().await;
    client.send_message(&s.id, REFUND_QUESTION).await;
    client.collect_turns(1).await;

    postgres.freeze();
    let accepted = client.send_message(&s.id, "How does resume work?").await;
    let question_seq = seq(&accepted);
    let frames = client.collect_turns(1).await;
    let deltas = frames.iter().filter(|f| ty(f) == "turn.delta").count();
    assert!(deltas > 3, "the answer streamed while the store was frozen");
    let answer_seq = seq(frames
        .iter()
        .rev()
        .find(|f| is_assistant_message(f))
        .unwrap());
    postgres.thaw();

    switchboard_testkit::eventually(Duration::from_secs(15), "the transcript catches up", || {
        let ws_url = gw.ws_url();
        let s = s.clone();
        async move {
            let mut reader = Client::connect(&ws_url).await;
            reader.join(&s.id, None, s.key.as_deref()).await;
            let export = reader
                .request_ok(
                    "session.export",
                    serde_json::json!({ "session_id": s.id }),
                    "session.exported",
                )
                .await;
            let content: Value = serde_json::from_str(export["content"].as_str().unwrap()).unwrap();
            let seqs: Vec<u64> = content["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_u64().unwrap())
                .collect();
            seqs.contains(&question_seq) && seqs.contains(&answer_seq)
        }
    })
    .await;
}
