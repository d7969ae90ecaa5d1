//! Erasing a user (docs/protocol.md §3.13): after `user.erase` (WebSocket) or
//! `POST /v1/admin/users/{id}/erase` (HTTP), no row, record or stream of that user
//! remains — checked by the test itself, in PostgreSQL with `psql` and in Redis with
//! `redis-cli`, not through the gateway — while another user's conversation is
//! untouched.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_testkit::{PostgresServer, RedisServer};

use crate::support::conversations::{chat, durable, error_message, export_json_with, ids, list};
use crate::support::http::{ADMIN_KEYS, ADMIN_SECRET, Api, PUBLISHER_KEYS};
use crate::support::jwt::{HS_ARGS, connect, token};
use crate::support::knowledge::{REFUND_QUESTION, standard_file};
use crate::support::stores::{pg_count, pg_mentions, redis_dump, redis_mentions};
use crate::support::{Client, Gateway, ty};

/// A gateway on a real Redis backplane and a real PostgreSQL store, with both
/// servers (kept alive as long as the gateway).
struct Deployment {
    gw: Gateway,
    redis: RedisServer,
    pg: PostgresServer,
}

fn deployment() -> Deployment {
    deployment_with(&["--offline-agent-delay", "1ms"])
}

/// Like [`deployment`], with `extra` arguments for the gateway.
fn deployment_with(extra: &[&str]) -> Deployment {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let (backplane, store) = (redis.url(), pg.url());
    let mut args = vec![
        "--backplane",
        backplane.as_str(),
        "--store",
        store.as_str(),
        HS_ARGS[0],
        HS_ARGS[1],
        "--publisher-keys",
        PUBLISHER_KEYS,
        "--admin-keys",
        ADMIN_KEYS,
    ];
    args.extend_from_slice(extra);
    let gw = Gateway::start(&args);
    Deployment { gw, redis, pg }
}

/// A user's conversations, with how many transcript entries each holds once written.
struct Conversations {
    client: Client,
    sessions: Vec<(String, usize)>,
}

/// `user` of acme: `n` conversations of two answered questions each (the second sent
/// with a `client_message_id`, so a message-id record exists), the first also with a
/// durable event published with an idempotency key. Returns once the store holds
/// every transcript entry.
async fn converse(d: &Deployment, user: &str, n: usize) -> Conversations {
    let api = Api::new(&d.gw);
    let mut client = connect(&d.gw, &token(user, "acme", &[])).await;
    let mut sessions = Vec::new();
    for i in 0..n {
        let s = client.create_session().await;
        let mut events = chat(&mut client, &s.id, &format!("{user} question {i}")).await;
        if i == 0 {
            api.publish_ok(&json!({
                "target": {"session": s.id}, "name": "order.shipped",
                "data": {"for": user}, "durable": true,
                "idempotency_key": format!("{}-shipped", s.id),
            }))
            .await;
            events.push(client.next_of_type("event").await);
        }
        client
            .send_message_once(&s.id, "a second question", &format!("{user}-cm-{i}"))
            .await;
        let frames = client.collect_turns(1).await;
        events.extend(
            crate::support::events_of(&frames, &s.id)
                .into_iter()
                .cloned(),
        );
        let kept = durable(&events).len();
        export_json_with(&mut client, &s.id, kept).await;
        sessions.push((s.id, kept));
    }
    Conversations { client, sessions }
}

/// What names `ids` (or carries `user`'s identity) in Redis and in PostgreSQL.
fn traces(d: &Deployment, ids: &[String], user: &str) -> (Vec<String>, Vec<(String, u64)>) {
    let mut needles = ids.to_vec();
    needles.push(format!("\"user_id\":\"{user}\""));
    let redis = redis_mentions(&redis_dump(&d.redis.url()), &needles);
    let mut pg = pg_mentions(&d.pg, &needles);
    let owned = pg_count(
        &d.pg,
        &format!("SELECT count(*) FROM sessions WHERE owner = '{user}'"),
    );
    if owned > 0 {
        pg.push((format!("sessions owned by {user}"), owned));
    }
    (redis, pg)
}

/// Panics unless `report` is the erase of u1's `sessions` with every transcript
/// entry and some shared records.
fn check_report(report: &Value, u1: &Conversations) {
    let mut erased: Vec<String> = report["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("no sessions in {report}"))
        .iter()
        .map(|s| s.as_str().expect("a session id").to_string())
        .collect();
    erased.sort();
    let mut expected: Vec<String> = u1.sessions.iter().map(|(id, _)| id.clone()).collect();
    expected.sort();
    assert_eq!(erased, expected, "{report}");
    assert_eq!(report["org_id"], "acme", "{report}");
    assert_eq!(report["user_id"], "u1", "{report}");
    let entries: usize = u1.sessions.iter().map(|(_, n)| n).sum();
    assert_eq!(report["transcript_entries"], entries, "{report}");
    assert!(
        report["records"].as_u64().is_some_and(|n| n > 0),
        "an idempotency key and message ids were recorded: {report}"
    );
}

/// What a user who was not erased still has: their conversation joins and replays
/// whole, and exports.
async fn assert_intact(d: &Deployment, u2: &mut Conversations) {
    let (id, kept) = u2.sessions[0].clone();
    let mut again = connect(&d.gw, &token("u2", "acme", &[])).await;
    let joined = again.join(&id, Some(0), None).await;
    assert_eq!(joined["recovered"], true, "{joined}");
    let last = joined["last_seq"].as_u64().expect("last_seq");
    let replay = again.collect_until(|f| f["seq"] == last).await;
    let replayed = durable(
        &crate::support::events_of(&replay, &id)
            .into_iter()
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert_eq!(replayed.len(), kept, "u2's conversation replays whole");
    export_json_with(&mut u2.client, &id, kept).await;
    let listing = list(&mut u2.client, json!({})).await;
    assert_eq!(ids(&listing), vec![id], "{listing}");
}

/// After an admin key erases u1 over HTTP: the report names both conversations and
/// every transcript entry; neither PostgreSQL (any table) nor Redis (any key name or
/// value) holds u1's session ids or identity, where both did before; u1's joins are
/// `not_found` and their list is empty; u2's conversation is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_user_leaves_nothing_in_postgres_or_redis_http() {
    let d = deployment();
    let mut u1 = converse(&d, "u1", 2).await;
    let mut u2 = converse(&d, "u2", 1).await;
    let u1_ids: Vec<String> = u1.sessions.iter().map(|(id, _)| id.clone()).collect();

    // The probes see u1 before the erase (else their silence after proves nothing).
    let (redis_before, pg_before) = traces(&d, &u1_ids, "u1");
    for id in &u1_ids {
        assert!(
            redis_before.iter().any(|line| line.contains(id.as_str())),
            "Redis holds {id} before the erase: {redis_before:#?}"
        );
    }
    let tables: Vec<&str> = pg_before.iter().map(|(t, _)| t.as_str()).collect();
    assert!(
        tables.contains(&"sessions") && tables.contains(&"transcript"),
        "{pg_before:?}"
    );

    let api = Api::new(&d.gw);
    // An admin key must name the org; a JWT admin of another org may not.
    let no_org = api
        .post("/v1/admin/users/u1/erase", Some(ADMIN_SECRET), &json!({}))
        .await;
    assert!(
        matches!(no_org.status, 400 | 403),
        "an admin key must name the org: {} {}",
        no_org.status,
        no_org.text
    );
    let outsider = token("x", "globex", &["admin"]);
    api.post(
        "/v1/admin/users/u1/erase?org_id=acme",
        Some(&outsider),
        &json!({}),
    )
    .await
    .assert_error(403, "forbidden", "another org's admin");
    let report = api
        .post(
            "/v1/admin/users/u1/erase?org_id=acme",
            Some(ADMIN_SECRET),
            &json!({}),
        )
        .await;
    let report = report.expect(200, "erase u1").clone();
    check_report(&report, &u1);

    let (redis_after, pg_after) = traces(&d, &u1_ids, "u1");
    assert!(redis_after.is_empty(), "left in Redis: {redis_after:#?}");
    assert!(pg_after.is_empty(), "left in PostgreSQL: {pg_after:?}");

    for id in &u1_ids {
        let join = u1.client.join_reply(id, Some(0), None).await;
        error_message(&join, "not_found", "join an erased conversation");
        api.get(&format!("/v1/sessions/{id}"), Some(ADMIN_SECRET))
            .await
            .assert_error(404, "not_found", "an erased conversation");
    }
    assert_eq!(
        ids(&list(&mut u1.client, json!({})).await),
        Vec::<String>::new()
    );
    assert_intact(&d, &mut u2).await;

    // Erasing again finds nothing.
    let again = api
        .post(
            "/v1/admin/users/u1/erase?org_id=acme",
            Some(ADMIN_SECRET),
            &json!({}),
        )
        .await;
    let again = again.expect(200, "erase u1 again");
    assert_eq!(again["sessions"], json!([]), "{again}");
    assert_eq!(again["transcript_entries"], 0, "{again}");
}

/// The same over the WebSocket: an admin of the org sends `user.erase` (a plain user
/// and another org's admin may not), and afterwards neither store names u1 — while
/// u1 is still connected and a member of their conversations, which now end for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_user_leaves_nothing_in_postgres_or_redis_ws() {
    let d = deployment();
    let mut u1 = converse(&d, "u1", 2).await;
    let mut u2 = converse(&d, "u2", 1).await;
    let u1_ids: Vec<String> = u1.sessions.iter().map(|(id, _)| id.clone()).collect();

    let refused = u2
        .client
        .request("user.erase", json!({"user_id": "u1"}))
        .await;
    error_message(&refused, "forbidden", "a plain user erases");
    let mut outsider = connect(&d.gw, &token("x", "globex", &["admin"])).await;
    let other = outsider
        .request("user.erase", json!({"user_id": "u1"}))
        .await;
    assert_eq!(ty(&other), "user.erased", "{other}");
    assert_eq!(other["org_id"], "globex", "{other}");
    assert_eq!(
        other["sessions"],
        json!([]),
        "another org's u1 is another user"
    );

    let mut admin = connect(&d.gw, &token("boss", "acme", &["admin"])).await;
    let report = admin
        .request_ok("user.erase", json!({"user_id": "u1"}), "user.erased")
        .await;
    check_report(&report, &u1);

    let (redis_after, pg_after) = traces(&d, &u1_ids, "u1");
    assert!(redis_after.is_empty(), "left in Redis: {redis_after:#?}");
    assert!(pg_after.is_empty(), "left in PostgreSQL: {pg_after:?}");

    for id in &u1_ids {
        let send = u1
            .client
            .request(
                "message.send",
                json!({"session_id": id, "text": "still there?"}),
            )
            .await;
        error_message(&send, "not_found", "send after the erase");
        let join = u1.client.join_reply(id, Some(0), None).await;
        error_message(&join, "not_found", "join an erased conversation");
    }
    // What u1's connection tried after the erase brought nothing back.
    let (redis_late, pg_late) = traces(&d, &u1_ids, "u1");
    assert!(redis_late.is_empty(), "back in Redis: {redis_late:#?}");
    assert!(pg_late.is_empty(), "back in PostgreSQL: {pg_late:?}");
    assert_intact(&d, &mut u2).await;
}

/// Erased in the middle of an answer: the turn that was streaming does not bring the
/// conversation back. For as long as the answer would have taken (and then some),
/// neither Redis nor PostgreSQL names the erased sessions again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_streaming_during_the_erase_leaves_nothing_behind() {
    let kb = standard_file();
    // About a second of deltas for the refund question (30 ms apart).
    let d = deployment_with(&["--offline-agent-delay", "30ms", "--knowledge-file", &kb]);
    // The knowledge file's documents are the default org's.
    let mut u1 = connect(&d.gw, &token("u1", "default", &[])).await;
    let s = u1.create_session().await;
    u1.send_message(&s.id, REFUND_QUESTION).await;
    u1.next_of_type("turn.delta").await;

    let api = Api::new(&d.gw);
    let report = api
        .post(
            "/v1/admin/users/u1/erase?org_id=default",
            Some(ADMIN_SECRET),
            &json!({}),
        )
        .await;
    let report = report.expect(200, "erase u1 mid-answer").clone();
    assert_eq!(report["sessions"], json!([s.id]), "{report}");

    let ids = vec![s.id.clone()];
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        let (redis, pg) = traces(&d, &ids, "u1");
        assert!(
            redis.is_empty(),
            "back in Redis after the erase: {redis:#?}"
        );
        assert!(pg.is_empty(), "back in PostgreSQL after the erase: {pg:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let join = u1.join_reply(&s.id, Some(0), None).await;
    error_message(&join, "not_found", "join after the erase");
}
