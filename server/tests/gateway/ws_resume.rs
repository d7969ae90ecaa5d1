//! Resuming a session after a disconnect: `session.join` with `after_seq`
//! (docs/protocol.md §3).

use serde_json::{Value, json};

use crate::support;
use crate::support::knowledge::{self, REFUND_QUESTION, UNMATCHED_QUESTION};
use crate::support::{
    Client, Gateway, assert_strictly_increasing, events_of, is_assistant_message, seq, ty,
};

fn gateway(delay: &str, extra: &[&str]) -> Gateway {
    let kb = knowledge::standard_file();
    let mut args = vec![
        "--knowledge-file",
        kb.as_str(),
        "--offline-agent-delay",
        delay,
    ];
    args.extend_from_slice(extra);
    Gateway::start(&args)
}

fn owned(frames: &[Value], session_id: &str) -> Vec<Value> {
    events_of(frames, session_id).into_iter().cloned().collect()
}

/// A client that disconnects mid-turn and rejoins with `after_seq` = the last seq it
/// saw gets exactly the events it missed (no gap, no duplicate) and then the rest of
/// the turn live: seen-before ++ replay ++ live equals, seq for seq, what a member that
/// stayed connected received.
#[tokio::test]
async fn rejoin_with_after_seq_mid_turn_receives_exactly_the_missed_events() {
    let gw = gateway("40ms", &[]);
    let mut client = Client::connect(&gw.ws_url()).await;
    let mut observer = Client::connect(&gw.ws_url()).await;
    let s = client.create_session().await;
    observer.join(&s.id, None, s.key.as_deref()).await;
    client.send_message(&s.id, REFUND_QUESTION).await;

    let mut deltas = 0;
    let seen_frames = client
        .collect_until(|f| {
            if ty(f) == "turn.delta" {
                deltas += 1;
            }
            deltas == 3
        })
        .await;
    let seen = owned(&seen_frames, &s.id);
    let last_seen = seq(seen.last().unwrap());
    drop(client); // abrupt disconnect mid-turn

    // Let the turn move on while the client is away: the observer sees 3 more events.
    let mut observed = observer.collect_until(|f| f["seq"] == last_seen).await;
    let mut more = 0;
    observed.extend(
        observer
            .collect_until(|f| {
                if support::is_event(f) {
                    more += 1;
                }
                more == 3
            })
            .await,
    );
    assert!(
        observed.iter().all(|f| ty(f) != "turn.end"),
        "the turn ended before the client came back; make it longer"
    );

    let mut back = Client::connect(&gw.ws_url()).await;
    let joined = back.join(&s.id, Some(last_seen), s.key.as_deref()).await;
    assert_eq!(joined["session_id"], s.id.as_str());
    assert_eq!(joined["recovered"], true, "{joined}");
    let last_seq = joined["last_seq"].as_u64().expect("last_seq");
    assert!(last_seq > last_seen, "{joined}");
    let after = owned(&back.collect_turns(1).await, &s.id);
    observed.extend(observer.collect_turns(1).await);
    let observed = owned(&observed, &s.id);

    let mut resumed = seen.clone();
    resumed.extend(after.iter().cloned());
    assert_eq!(
        resumed,
        observed,
        "resumed view differs from the connected one\nresumed:  {}\nobserved: {}",
        support::summary(&resumed),
        support::summary(&observed)
    );
    assert_strictly_increasing(&resumed);
    let replayed = after.iter().filter(|e| seq(e) <= last_seq).count();
    let live = after.iter().filter(|e| seq(e) > last_seq).count();
    assert!(
        replayed >= 3,
        "expected the missed events replayed, got {replayed}"
    );
    assert!(
        live >= 1,
        "expected live events after the replay, got {live}"
    );
    assert_eq!(
        seq(after.iter().rfind(|e| seq(e) <= last_seq).unwrap()),
        last_seq
    );
    let end = after
        .iter()
        .find(|e| ty(e) == "turn.end")
        .expect("turn.end");
    assert_eq!(end["status"], "completed");
}

/// `session.join` without `after_seq` in the middle of a turn replays the whole
/// history (from the user message) and continues live, matching the creator's view.
#[tokio::test]
async fn join_without_after_seq_replays_whole_history_then_live() {
    let gw = gateway("40ms", &[]);
    let mut creator = Client::connect(&gw.ws_url()).await;
    let s = creator.create_session().await;
    creator.send_message(&s.id, UNMATCHED_QUESTION).await;
    let mut all = creator.collect_turns(1).await;
    creator.send_message(&s.id, REFUND_QUESTION).await;
    let mut deltas = 0;
    all.extend(
        creator
            .collect_until(|f| {
                if ty(f) == "turn.delta" {
                    deltas += 1;
                }
                deltas == 2
            })
            .await,
    );

    let mut late = Client::connect(&gw.ws_url()).await;
    let joined = late.join(&s.id, None, s.key.as_deref()).await;
    assert_eq!(joined["recovered"], true, "{joined}");
    let late_events = owned(&late.collect_turns(2).await, &s.id);
    all.extend(creator.collect_turns(1).await);
    let all = owned(&all, &s.id);
    assert_eq!(
        late_events,
        all,
        "late joiner: {}\ncreator: {}",
        support::summary(&late_events),
        support::summary(&all)
    );
    assert_strictly_increasing(&all);
    let last_seq = joined["last_seq"].as_u64().unwrap();
    assert!(
        late_events.iter().any(|e| seq(e) > last_seq),
        "no live part"
    );
}

/// `last_seq` is the newest seq at join time; `recovered` is true when nothing after
/// `after_seq` was trimmed, and the replay is exactly the events after `after_seq`.
#[tokio::test]
async fn join_after_seq_within_retention_is_recovered_and_replays_the_tail() {
    let gw = gateway("5ms", &[]);
    let mut creator = Client::connect(&gw.ws_url()).await;
    let s = creator.create_session().await;
    creator.send_message(&s.id, REFUND_QUESTION).await;
    let all = owned(&creator.collect_turns(1).await, &s.id);
    let newest = seq(all.last().unwrap());

    for start in [0, all.len() / 2, all.len() - 1] {
        let after_seq = seq(&all[start]);
        let mut joiner = Client::connect(&gw.ws_url()).await;
        let joined = joiner.join(&s.id, Some(after_seq), s.key.as_deref()).await;
        assert_eq!(joined["recovered"], true, "{joined}");
        assert_eq!(joined["last_seq"], newest, "{joined}");
        let expected = &all[start + 1..];
        let mut replay = Vec::new();
        while replay.len() < expected.len() {
            replay.push(joiner.next_frame().await);
        }
        assert_eq!(replay, expected, "replay after seq {after_seq}");
        // Nothing more: a ping round trip comes next.
        joiner.ping_pong().await;
        assert_eq!(joiner.backlog_len(), 0, "extra frames after the replay");
    }
}

/// With `--history-max-events 5`, joining with an `after_seq` whose successors were
/// trimmed (or without `after_seq`) is still `recovered:true`: the replay is the
/// transcript's events older than the history (messages and turn ends, no starts or
/// deltas), then the 5 retained events, in `seq` order, each as members saw it live.
#[tokio::test]
async fn join_after_trimmed_seq_replays_the_transcript_then_the_retained_history() {
    let gw = gateway("5ms", &["--history-max-events", "5"]);
    let mut creator = Client::connect(&gw.ws_url()).await;
    let s = creator.create_session().await;
    creator.send_message(&s.id, UNMATCHED_QUESTION).await;
    let mut all = owned(&creator.collect_turns(1).await, &s.id);
    creator.send_message(&s.id, REFUND_QUESTION).await;
    all.extend(owned(&creator.collect_turns(1).await, &s.id));
    assert!(all.len() >= 10, "{}", support::summary(&all));
    let newest = seq(all.last().unwrap());
    let retained = &all[all.len() - 5..];

    for after_seq in [Some(seq(&all[0])), None] {
        let after = after_seq.unwrap_or(0);
        let mut joiner = Client::connect(&gw.ws_url()).await;
        let joined = joiner.join(&s.id, after_seq, s.key.as_deref()).await;
        assert_eq!(joined["recovered"], true, "after {after_seq:?}: {joined}");
        assert_eq!(joined["last_seq"], newest, "{joined}");
        let replay = owned(&joiner.collect_until(|f| f["seq"] == newest).await, &s.id);
        let mut expected: Vec<Value> = all
            .iter()
            .filter(|f| seq(f) > after && seq(f) < seq(&retained[0]))
            .filter(|f| !matches!(ty(f), "turn.start" | "turn.delta"))
            .cloned()
            .collect();
        expected.extend_from_slice(retained);
        assert_eq!(
            replay,
            expected,
            "after {after_seq:?}: transcript then history; got {}",
            support::summary(&replay)
        );
    }

    // An after_seq inside the retained window replays the history alone.
    let inside = seq(&all[all.len() - 3]);
    let mut joiner = Client::connect(&gw.ws_url()).await;
    let joined = joiner.join(&s.id, Some(inside), s.key.as_deref()).await;
    assert_eq!(joined["recovered"], true, "{joined}");
    let replay = vec![joiner.next_frame().await, joiner.next_frame().await];
    assert_eq!(replay, all[all.len() - 2..]);
}

/// Joining with `after_seq` equal to `last_seq` replays nothing; the next live event
/// is the first one after it, with no duplicate at the seam.
#[tokio::test]
async fn join_at_last_seq_replays_nothing_then_continues_live() {
    let gw = gateway("5ms", &[]);
    let mut creator = Client::connect(&gw.ws_url()).await;
    let s = creator.create_session().await;
    creator.send_message(&s.id, UNMATCHED_QUESTION).await;
    let all = owned(&creator.collect_turns(1).await, &s.id);
    let newest = seq(all.last().unwrap());

    let mut joiner = Client::connect(&gw.ws_url()).await;
    let joined = joiner.join(&s.id, Some(newest), s.key.as_deref()).await;
    assert_eq!(joined["last_seq"], newest);
    assert_eq!(joined["recovered"], true);
    let accepted = creator.send_message(&s.id, UNMATCHED_QUESTION).await;
    let live = owned(&joiner.collect_turns(1).await, &s.id);
    assert_eq!(
        live[0]["message_id"],
        accepted["message_id"],
        "{}",
        support::summary(&live)
    );
    assert!(seq(&live[0]) > newest);
    assert_strictly_increasing(&live);
}

/// Joining a session this connection already joined re-sends the replay, and live
/// events still arrive once each (no duplicate membership).
#[tokio::test]
async fn rejoining_a_joined_session_replays_again_without_duplicate_delivery() {
    let gw = gateway("5ms", &[]);
    let mut creator = Client::connect(&gw.ws_url()).await;
    let s = creator.create_session().await;
    creator.send_message(&s.id, UNMATCHED_QUESTION).await;
    let first = owned(&creator.collect_turns(1).await, &s.id);

    let mut member = Client::connect(&gw.ws_url()).await;
    member.join(&s.id, None, s.key.as_deref()).await;
    let replay1 = owned(&member.collect_turns(1).await, &s.id);
    member
        .join(&s.id, Some(seq(&first[0])), s.key.as_deref())
        .await;
    let replay2 = owned(&member.collect_turns(1).await, &s.id);
    assert_eq!(replay1, first);
    assert_eq!(replay2, first[1..]);

    creator
        .request_ok(
            "message.send",
            json!({"session_id": s.id, "text": UNMATCHED_QUESTION}),
            "message.accepted",
        )
        .await;
    let live = owned(&member.collect_turns(1).await, &s.id);
    assert_strictly_increasing(&live);
    let expected = owned(&creator.collect_turns(1).await, &s.id);
    assert_eq!(live, expected, "each live event exactly once");
    member.ping_pong().await;
    assert_eq!(member.backlog_len(), 0, "duplicate events after the turn");
    assert!(is_assistant_message(live.last().unwrap()));
}
