//! Presence and typing (docs/protocol.md §3.15), from outside: an owner and an operator
//! on two replicas see each other arrive and leave (a `session.leave`, a closed socket,
//! a killed replica); typing crosses replicas, is rate-limited, and is never replayed
//! nor kept in history; only a member may send it. The two-replica tests run over Redis
//! and over NATS (`…::redis`, `…::nats`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::http::{ADMIN_SECRET, Api, keyed_gateway};
use crate::support::jwt::{Claims, HS_ARGS, connect};
use crate::support::replicas::{
    Backing, Backplane, SHORT_LAPSE, SHORT_LEASE, backed_tests, replica_with,
};
use crate::support::{Client, Gateway, WAIT, metric_sum, summary, ty};
use switchboard_testkit::eventually;

/// The owner's token: `u1` of `acme`, named Ann.
fn ann() -> String {
    Claims::user("u1", "acme").set("name", json!("Ann")).hs256()
}

/// An operator of `acme`, named Dana.
fn dana() -> String {
    Claims::user("op-dana", "acme")
        .roles(&["operator"])
        .set("name", json!("Dana"))
        .hs256()
}

/// A replica over `backplane` accepting the test tokens, with short heartbeats, and
/// room for a burst of typing frames.
fn presence_replica(backplane: &Backplane, id: &str) -> Gateway {
    let mut args = vec![HS_ARGS[0], HS_ARGS[1], "--max-frames-per-second", "200"];
    args.extend_from_slice(&SHORT_LEASE);
    replica_with(backplane, id, &args)
}

/// The `user_id`s of a member list.
fn ids(members: &Value) -> Vec<String> {
    members
        .as_array()
        .unwrap_or_else(|| panic!("not a member list: {members}"))
        .iter()
        .map(|m| m["user_id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The next frame of type `wanted`, asserting it is ephemeral (no `seq`, no `ts`).
async fn next_ephemeral(client: &mut Client, wanted: &str) -> Value {
    let frame = client.next_of_type(wanted).await;
    assert!(
        frame.get("seq").is_none() && frame.get("ts").is_none(),
        "presence and typing are not session events: {frame}"
    );
    frame
}

backed_tests! {
    /// An owner on A and an operator on B see each other arrive; the operator's leave,
    /// re-join and closed sockets each reach the owner.
    owner_and_operator_on_two_replicas_see_each_other_come_and_go => come_and_go;

    /// B is killed (SIGKILL): its operator leaves the owner's view on A within the
    /// lapse and about a beat.
    a_killed_replicas_members_leave_within_the_lapse => killed_replica;

    /// Typing from B reaches the owner on A (not the typist), a burst is forwarded at
    /// most twice, and none of it is replayed or kept in history.
    typing_crosses_replicas_is_rate_limited_and_never_replayed => typing_across;
}

/// Ann (owner) creates a session on A; Dana (operator) joins on B.
async fn owner_and_operator(a: &Gateway, b: &Gateway) -> (Client, Client, String) {
    let mut owner = connect(a, &ann()).await.with_presence();
    let session = owner.create_session().await;
    let snapshot = next_ephemeral(&mut owner, "presence").await;
    assert_eq!(ids(&snapshot["members"]), ["u1"], "{snapshot}");
    assert_eq!(snapshot["members"][0]["role"], "owner");
    assert_eq!(snapshot["members"][0]["name"], "Ann");
    assert_eq!(snapshot["others"], 0);

    let mut operator = connect(b, &dana()).await.with_presence();
    operator.join(&session.id, None, None).await;
    let snapshot = next_ephemeral(&mut operator, "presence").await;
    assert_eq!(ids(&snapshot["members"]), ["u1", "op-dana"], "{snapshot}");
    assert_eq!(snapshot["session_id"], json!(session.id));

    let arrived = next_ephemeral(&mut owner, "presence.changed").await;
    assert_eq!(ids(&arrived["joined"]), ["op-dana"], "{arrived}");
    assert_eq!(arrived["joined"][0]["name"], "Dana");
    assert_eq!(arrived["joined"][0]["role"], "operator");
    assert_eq!(arrived["left"], json!([]));
    (owner, operator, session.id)
}

async fn come_and_go(backing: Backing) {
    let backplane = Backplane::start(backing);
    let a = presence_replica(&backplane, "replica-a");
    let b = presence_replica(&backplane, "replica-b");
    let (mut owner, mut operator, session_id) = owner_and_operator(&a, &b).await;

    operator
        .request_ok(
            "session.leave",
            json!({ "session_id": session_id }),
            "session.left",
        )
        .await;
    let left = next_ephemeral(&mut owner, "presence.changed").await;
    assert_eq!(ids(&left["left"]), ["op-dana"], "{left}");

    // Back, on the other replica this time, with a second tab on B: one Dana.
    let mut operator_on_a = connect(&a, &dana()).await.with_presence();
    operator_on_a.join(&session_id, None, None).await;
    next_ephemeral(&mut operator_on_a, "presence").await;
    let back = next_ephemeral(&mut owner, "presence.changed").await;
    assert_eq!(ids(&back["joined"]), ["op-dana"], "{back}");
    operator.join(&session_id, None, None).await;
    let snapshot = next_ephemeral(&mut operator, "presence").await;
    assert_eq!(ids(&snapshot["members"]), ["u1", "op-dana"], "{snapshot}");

    // Closing the tab on B leaves Dana present (on A); closing the other does not.
    drop(operator);
    eventually(WAIT, "B to track nobody", || async {
        let members = metric_sum(&b.metrics().await, "switchboard_presence_members", None);
        if members == Some(0.0) {
            Ok(())
        } else {
            Err(format!("{members:?}"))
        }
    })
    .await;
    // Anything that close told the owner came before this pong.
    owner.ping_pong().await;
    let mut told = Vec::new();
    while let Some(frame) = owner.next_frame_within(Duration::ZERO).await {
        told.push(frame);
    }
    assert!(
        told.iter().all(|f| ty(f) != "presence.changed"),
        "Dana is still here on A: {}",
        summary(&told)
    );
    drop(operator_on_a);
    let gone = next_ephemeral(&mut owner, "presence.changed").await;
    assert_eq!(ids(&gone["left"]), ["op-dana"], "{gone}");
    assert!(
        gone["joined"].as_array().is_some_and(Vec::is_empty),
        "{gone}"
    );
}

/// Documented: within `--turn-lease-lapse` plus one `--turn-lease-beat`.
async fn killed_replica(backing: Backing) {
    let backplane = Backplane::start(backing);
    let a = presence_replica(&backplane, "replica-a");
    let mut b = presence_replica(&backplane, "replica-b");
    let (mut owner, operator, _session_id) = owner_and_operator(&a, &b).await;

    let killed = Instant::now();
    b.kill();
    let gone = next_ephemeral(&mut owner, "presence.changed").await;
    let after = killed.elapsed();
    assert_eq!(ids(&gone["left"]), ["op-dana"], "{gone}");
    // Lapse (1 s) + beat (250 ms), and slack for a loaded machine.
    assert!(
        after < SHORT_LAPSE + Duration::from_millis(1750),
        "the dead replica's member left after {after:?}"
    );
    drop(operator);
}

/// 50 typing frames in a burst, then a stop; a join with `after_seq` 0 replays none,
/// and the session's history holds none.
async fn typing_across(backing: Backing) {
    let backplane = Backplane::start(backing);
    let a = presence_replica(&backplane, "replica-a");
    let b = presence_replica(&backplane, "replica-b");
    let (mut owner, mut operator, session_id) = owner_and_operator(&a, &b).await;

    for _ in 0..50 {
        operator
            .send_json(json!({ "type": "typing", "session_id": session_id, "typing": true }))
            .await;
    }
    operator
        .send_json(json!({ "type": "typing", "session_id": session_id, "typing": false }))
        .await;
    // Handled in order: after the pong, the typist would have had any echo already.
    let id = operator.new_id();
    operator
        .send_json(json!({ "type": "ping", "id": id }))
        .await;
    operator.reply_to(&id).await;
    let mut own = Vec::new();
    while let Some(frame) = operator.next_frame_within(Duration::ZERO).await {
        own.push(frame);
    }
    assert!(
        own.iter().all(|f| ty(f) != "typing" && ty(f) != "error"),
        "the typist gets no echo and no error: {}",
        summary(&own)
    );

    let frames = owner
        .collect_until(|f| ty(f) == "typing" && f["typing"] == false)
        .await;
    let starts: Vec<&Value> = frames
        .iter()
        .filter(|f| ty(f) == "typing" && f["typing"] == true)
        .collect();
    assert!(
        (1..=2).contains(&starts.len()),
        "50 typing frames were forwarded {} times: {}",
        starts.len(),
        summary(&frames)
    );
    let member = &starts[0]["member"];
    assert_eq!(member["user_id"], "op-dana");
    assert_eq!(member["name"], "Dana");
    assert_eq!(member["role"], "operator");
    assert_eq!(starts[0]["session_id"], json!(session_id));

    // A fresh join from the start replays events only: no typing, no presence but
    // the new snapshot after the replay.
    let mut late = connect(&a, &ann()).await.with_presence();
    late.join(&session_id, Some(0), None).await;
    let replay = late.collect_until(|f| ty(f) == "presence").await;
    assert!(
        replay.iter().all(|f| ty(f) != "typing"),
        "typing replayed: {}",
        summary(&replay)
    );
    let history = Api::new(&a)
        .get(
            &format!("/v1/sessions/{session_id}/events"),
            Some(ADMIN_SECRET),
        )
        .await;
    assert_eq!(history.status, 200, "{}", history.text);
    assert!(
        history.json["events"]
            .as_array()
            .is_some_and(|events| events.iter().all(|e| {
                let t = ty(e);
                t != "typing" && !t.starts_with("presence")
            })),
        "{}",
        history.text
    );
}

/// Only a member may send `typing`; an anonymous visitor and an operator see each
/// other as a count and a name, and the visitor's typing reaches the operator unnamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_type_and_visitors_are_counted_not_named() {
    let gw = keyed_gateway(&[]);
    let mut visitor = Client::connect(&gw.ws_url()).await.with_presence();
    let session = visitor.create_session().await;
    let snapshot = next_ephemeral(&mut visitor, "presence").await;
    assert_eq!(snapshot["members"], json!([]));
    assert_eq!(snapshot["others"], 1, "the visitor counts itself");

    let staff = Claims::user("op-dana", "default")
        .roles(&["operator"])
        .set("name", json!("Dana"))
        .hs256();
    let mut operator = connect(&gw, &staff).await.with_presence();
    let refused = operator
        .request(
            "typing",
            json!({ "session_id": session.id, "typing": true }),
        )
        .await;
    assert_eq!(ty(&refused), "error", "{refused}");
    assert_eq!(refused["code"], "forbidden", "{refused}");
    operator.ping_pong().await;

    operator
        .join(&session.id, None, session.key.as_deref())
        .await;
    let snapshot = next_ephemeral(&mut operator, "presence").await;
    assert_eq!(ids(&snapshot["members"]), ["op-dana"], "{snapshot}");
    assert_eq!(snapshot["others"], 1);
    let arrived = next_ephemeral(&mut visitor, "presence.changed").await;
    assert_eq!(arrived["joined"][0]["name"], "Dana", "{arrived}");

    visitor
        .send_json(json!({ "type": "typing", "session_id": session.id, "typing": true }))
        .await;
    let typing = next_ephemeral(&mut operator, "typing").await;
    assert_eq!(typing["member"], json!({ "role": "other" }), "{typing}");

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("switchboard_typing_total{outcome=\"forwarded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchboard_presence_members 2"),
        "{metrics}"
    );
}
