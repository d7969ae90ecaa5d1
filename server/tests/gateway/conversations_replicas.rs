//! Conversations across replicas (docs/protocol.md §3.4, §3.13): two gateways on one
//! Redis and one PostgreSQL see the same conversations. One started on A, with a
//! history too short to hold it, lists and replays whole on B; a rename on B shows on
//! A; both replicas restarted still have it; a delete on A is final on B.

use serde_json::{Value, json};
use switchboard_testkit::{PostgresServer, RedisServer};

use crate::support::conversations::{
    chat, durable, error_message, ids, list, list_until, summary_in,
};
use crate::support::jwt::{Claims, HS_ARGS, connect};
use crate::support::knowledge::{REFUND_QUESTION, standard_file};
use crate::support::{Client, Gateway, assert_strictly_increasing, events_of, ty};

/// Events the backplane keeps per session: far fewer than two streamed answers.
const HISTORY: &str = "10";

/// Replica `server_id` on `redis` and `pg`, with a history of [`HISTORY`] events and
/// the knowledge file `kb` (long answers to [`REFUND_QUESTION`]).
fn replica(redis: &RedisServer, pg: &PostgresServer, kb: &str, server_id: &str) -> Gateway {
    let (backplane, store) = (redis.url(), pg.url());
    Gateway::start(&[
        "--backplane",
        backplane.as_str(),
        "--store",
        store.as_str(),
        "--server-id",
        server_id,
        "--history-max-events",
        HISTORY,
        "--knowledge-file",
        kb,
        HS_ARGS[0],
        HS_ARGS[1],
        "--offline-agent-delay",
        "1ms",
    ])
}

/// Join `session_id` after `seq` 0 on `client` and read the replay to `last_seq`;
/// the joined reply and the replayed events.
async fn replay_all(client: &mut Client, session_id: &str) -> (Value, Vec<Value>) {
    let joined = client.join(session_id, Some(0), None).await;
    let last = joined["last_seq"].as_u64().expect("last_seq");
    let frames = client.collect_until(|f| f["seq"] == last).await;
    let events = events_of(&frames, session_id)
        .into_iter()
        .cloned()
        .collect();
    (joined, events)
}

/// Panics unless `replay` is every durable event of `live`, seq for seq, and nothing
/// twice (a replay may add the deltas the history still holds).
fn assert_whole(replay: &[Value], live: &[Value]) {
    assert_strictly_increasing(replay);
    let kept = durable(live);
    assert_eq!(
        durable(replay),
        kept,
        "every message and turn end, as seen live"
    );
    assert_eq!(replay.first(), kept.first(), "from the first question on");
    assert_eq!(kept.iter().filter(|e| ty(e) == "message").count(), 4);
    assert_eq!(kept.iter().filter(|e| ty(e) == "turn.end").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_conversations_through_redis_and_postgres() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let kb = standard_file();
    let mut a = replica(&redis, &pg, &kb, "conv-a");
    let mut b = replica(&redis, &pg, &kb, "conv-b");
    // The knowledge file's documents are the default org's.
    let u1 = Claims::user("u1", "default").hs256();

    let mut on_a = connect(&a, &u1).await;
    let s = on_a.create_session().await;
    let mut live = chat(&mut on_a, &s.id, REFUND_QUESTION).await;
    live.extend(
        chat(
            &mut on_a,
            &s.id,
            "And the refund policy for refunds of gifts?",
        )
        .await,
    );
    assert!(
        live.len() > 2 * HISTORY.parse::<usize>().unwrap(),
        "the history must be too short for the conversation: {} events",
        live.len()
    );

    // On B: the list (once the transcript is written), and the whole replay.
    let mut on_b = connect(&b, &u1).await;
    let last_seq = live.last().and_then(|e| e["seq"].as_u64()).unwrap();
    let listing = list_until(&mut on_b, json!({}), "listed on B", |l| {
        summary_in(l, &s.id).is_some_and(|s| s["last_seq"] == last_seq)
    })
    .await;
    assert_eq!(ids(&listing), vec![s.id.clone()], "{listing}");
    assert_eq!(
        summary_in(&listing, &s.id).unwrap()["title"],
        REFUND_QUESTION
    );
    let (joined, replay) = replay_all(&mut on_b, &s.id).await;
    assert_eq!(joined["recovered"], true, "{joined}");
    assert_eq!(joined["last_seq"], last_seq, "{joined}");
    assert_whole(&replay, &live);

    // A rename on B shows on A.
    let renamed = on_b
        .request_ok(
            "session.update",
            json!({"session_id": s.id, "title": "Replicated"}),
            "session.updated",
        )
        .await;
    assert_eq!(renamed["session"]["title"], "Replicated");
    let on_a_list = list(&mut on_a, json!({})).await;
    assert_eq!(
        summary_in(&on_a_list, &s.id).unwrap()["title"],
        "Replicated",
        "{on_a_list}"
    );

    // Both replicas killed and started again on the same Redis and PostgreSQL.
    drop((on_a, on_b));
    a.kill();
    b.kill();
    drop((a, b));
    let a = replica(&redis, &pg, &kb, "conv-a");
    let b = replica(&redis, &pg, &kb, "conv-b");
    let mut on_a = connect(&a, &u1).await;
    let mut on_b = connect(&b, &u1).await;
    let listing = list(&mut on_a, json!({})).await;
    assert_eq!(ids(&listing), vec![s.id.clone()], "{listing}");
    assert_eq!(summary_in(&listing, &s.id).unwrap()["title"], "Replicated");
    let (joined, replay) = replay_all(&mut on_b, &s.id).await;
    assert_eq!(joined["recovered"], true, "{joined}");
    assert_whole(&replay, &live);

    // Deleted on A: gone on B.
    let missing = error_message(
        &on_b
            .join_reply("s_00000000000000000000000000000000", None, None)
            .await,
        "not_found",
        "missing",
    );
    on_a.request_ok(
        "session.delete",
        json!({"session_id": s.id}),
        "session.deleted",
    )
    .await;
    let mut late = connect(&b, &u1).await;
    let join = late.join_reply(&s.id, Some(0), None).await;
    assert_eq!(error_message(&join, "not_found", "join on B"), missing);
    assert_eq!(ids(&list(&mut late, json!({})).await), Vec::<String>::new());
    let send = on_b
        .request(
            "message.send",
            json!({"session_id": s.id, "text": "still there?"}),
        )
        .await;
    error_message(&send, "not_found", "B's member sends after the delete");
}
