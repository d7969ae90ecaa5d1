//! Sessions and chat over HTTP (docs/protocol.md §6.15): opening a session,
//! a customer's message that queues a turn, the synchronous chat and its timeout,
//! reading and cancelling a turn, deciding a tool call, anonymous callers with a
//! session key, isolation, and the bound on waiting chats — each checked against
//! what a WebSocket member of the same session sees.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchboard_testkit::temp_path;

use crate::support::http::{ADMIN_SECRET, Api, PUBLISHER_SECRET, Reply, keyed_gateway};
use crate::support::jwt::{connect, token};
use crate::support::tool_backend::ToolBackend;
use crate::support::upstream::{Reply as ModelReply, Upstream, gateway_on, tool_call_reply};
use crate::support::{Client, is_assistant_message, ty};

const KEY_HEADER: &str = "Switchboard-Session-Key";

/// `method path` with an optional bearer credential and session key, and a JSON body.
async fn call(
    api: &Api,
    method: Method,
    path: &str,
    credential: Option<&str>,
    key: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let mut request = api.builder(method, path);
    if let Some(credential) = credential {
        request = request.bearer_auth(credential);
    }
    if let Some(key) = key {
        request = request.header(KEY_HEADER, key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    api.run(request).await
}

/// A session opened over HTTP by `credential` (anonymous without one): its id, and
/// its key when anonymous.
async fn open(api: &Api, credential: Option<&str>, body: &Value) -> (String, Option<String>) {
    let reply = call(
        api,
        Method::POST,
        "/v1/sessions",
        credential,
        None,
        Some(body),
    )
    .await;
    let created = reply.expect(201, "POST /v1/sessions");
    (
        created["session_id"].as_str().unwrap().to_string(),
        created["session_key"].as_str().map(str::to_string),
    )
}

/// A WebSocket member of `session_id`.
async fn member(gw: &crate::support::Gateway, jwt: &str, session_id: &str) -> Client {
    let mut client = connect(gw, jwt).await;
    client.join(session_id, None, None).await;
    client
}

/// The frames up to the `turn.end` of `turn_id` (the first `turn.end` when `None`).
async fn until_end(client: &mut Client, turn_id: Option<&str>) -> Vec<Value> {
    client
        .collect_until(|f| ty(f) == "turn.end" && turn_id.is_none_or(|t| f["turn_id"] == t))
        .await
}

/// Open over HTTP, post as the customer (a turn runs and a WebSocket member sees it
/// with the 202's `message_id` and `seq`), read the turn; staff post an operator
/// message that starts no turn; a customer may not sign as someone else.
#[tokio::test]
async fn a_session_opened_and_spoken_to_over_http_runs_turns_a_member_sees() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let owner = token("u1", "acme", &[]);
    let (sid, key) = open(
        &api,
        Some(&owner),
        &json!({"title": "Returns", "metadata": {"plan": "pro"}}),
    )
    .await;
    assert_eq!(key, None, "a user's session has no key");
    let summary = api
        .get(&format!("/v1/sessions/{sid}"), Some(&owner))
        .await
        .expect(200, "the new session is listed")
        .clone();
    assert_eq!(summary["title"], "Returns", "{summary}");

    let mut ws = member(&gw, &owner, &sid).await;
    let path = format!("/v1/sessions/{sid}/messages");
    let posted = call(
        &api,
        Method::POST,
        &path,
        Some(&owner),
        None,
        Some(&json!({"text": "How do returns work?"})),
    )
    .await
    .expect(202, "the customer's message")
    .clone();
    assert_eq!(posted["role"], "user", "{posted}");
    assert_eq!(posted["session_id"], sid.as_str());
    let frames = until_end(&mut ws, None).await;
    let message = frames.iter().find(|f| ty(f) == "message").unwrap();
    assert_eq!(message["message_id"], posted["message_id"], "{message}");
    assert_eq!(message["seq"], posted["seq"], "{message}");
    assert_eq!(message["role"], "user");
    let start = frames.iter().find(|f| ty(f) == "turn.start").unwrap();
    assert_eq!(start["reply_to"], posted["message_id"], "{start}");
    let end = frames.last().unwrap();
    assert_eq!(end["status"], "completed", "{end}");
    let turn_id = end["turn_id"].as_str().unwrap();

    let turn = api
        .get(&format!("/v1/sessions/{sid}/turns/{turn_id}"), Some(&owner))
        .await
        .expect(200, "the finished turn")
        .clone();
    assert_eq!(turn["status"], "completed", "{turn}");
    assert_eq!(turn["text"], end["text"], "{turn}");
    assert_eq!(turn["seq"], end["seq"], "{turn}");
    api.get(&format!("/v1/sessions/{sid}/turns/t_nope"), Some(&owner))
        .await
        .assert_error(404, "not_found", "a turn that never ran");

    // The customer cannot sign as someone else; staff post operator messages.
    call(
        &api,
        Method::POST,
        &path,
        Some(&owner),
        None,
        Some(&json!({"text": "It's me, support", "author": "Dana"})),
    )
    .await
    .assert_error(400, "bad_request", "a customer naming an author");
    let operator = token("u-op", "acme", &["operator"]);
    let staff = api
        .post(&path, Some(&operator), &json!({"text": "Hi, Dana here."}))
        .await
        .expect(202, "staff's message")
        .clone();
    assert_eq!(staff["role"], "operator", "{staff}");
    let staff_key = api
        .post(
            &path,
            Some(PUBLISHER_SECRET),
            &json!({"text": "From the backend.", "client_message_id": "b1"}),
        )
        .await
        .expect(202, "a publisher key's message")
        .clone();
    let again = api
        .post(
            &path,
            Some(PUBLISHER_SECRET),
            &json!({"text": "From the backend.", "client_message_id": "b1"}),
        )
        .await
        .expect(202, "the same message again")
        .clone();
    assert_eq!(again["message_id"], staff_key["message_id"]);
    ws.collect_until(is_assistant_message).await;
    api.publish_ok(&json!({"target": {"session": sid}, "name": "sentinel", "data": {}}))
        .await;
    let frames = ws
        .collect_until(|f| ty(f) == "event" && f["name"] == "sentinel")
        .await;
    let kinds: Vec<&str> = frames.iter().map(ty).collect();
    assert_eq!(kinds, ["message", "message", "event"], "{frames:?}");
    assert!(frames[..2].iter().all(|f| f["role"] == "operator"));
}

/// `POST /v1/chat` answers with the reply a member saw (text, `turn.end` seq, turn
/// id); a retry with the same `client_message_id` answers the same reply and appends
/// nothing; without `session_id` it opens a session.
#[tokio::test]
async fn a_synchronous_chat_answers_what_members_saw_and_a_retry_changes_nothing() {
    let gw = keyed_gateway(&["--demo-seed"]);
    let api = Api::new(&gw);
    let owner = token("u1", "default", &[]);
    let (sid, _) = open(&api, Some(&owner), &json!({})).await;
    let mut ws = member(&gw, &owner, &sid).await;
    let body =
        json!({"session_id": sid, "text": "What is Switchboard?", "client_message_id": "c1"});
    let chat = api
        .post("/v1/chat", Some(&owner), &body)
        .await
        .expect(200, "the synchronous chat")
        .clone();
    assert_eq!(chat["status"], "completed", "{chat}");
    let frames = until_end(&mut ws, None).await;
    let end = frames.last().unwrap();
    assert_eq!(chat["text"], end["text"], "{chat} vs {end}");
    assert!(!chat["text"].as_str().unwrap().is_empty(), "{chat}");
    assert_eq!(chat["seq"], end["seq"]);
    assert_eq!(chat["turn_id"], end["turn_id"]);
    assert_eq!(chat["usage"], end["usage"]);
    assert_eq!(chat["sources"], end["sources"]);
    let message = frames.iter().find(|f| ty(f) == "message").unwrap();
    assert_eq!(chat["message_id"], message["message_id"]);
    assert_eq!(chat["message_seq"], message["seq"]);
    ws.collect_until(is_assistant_message).await;

    let again = api
        .post("/v1/chat", Some(&owner), &body)
        .await
        .expect(200, "the same chat again")
        .clone();
    for field in ["message_id", "message_seq", "turn_id", "seq", "text"] {
        assert_eq!(again[field], chat[field], "{field}: {again} vs {chat}");
    }
    api.publish_ok(&json!({"target": {"session": sid}, "name": "sentinel", "data": {}}))
        .await;
    let frames = ws
        .collect_until(|f| ty(f) == "event" && f["name"] == "sentinel")
        .await;
    assert_eq!(frames.len(), 1, "the retry appended nothing: {frames:?}");

    let fresh = api
        .post(
            "/v1/chat",
            Some(&owner),
            &json!({"text": "What is Switchboard?"}),
        )
        .await
        .expect(200, "a chat that opens its session")
        .clone();
    assert_ne!(fresh["session_id"], sid.as_str());
    assert!(fresh.get("session_key").is_none(), "{fresh}");
    assert_eq!(fresh["status"], "completed");
    assert!(!fresh["text"].as_str().unwrap().is_empty(), "{fresh}");

    for (body, why) in [
        (json!({"text": "hi", "timeout_ms": 0}), "timeout_ms 0"),
        (
            json!({"text": "hi", "timeout_ms": 120001}),
            "timeout_ms over the maximum",
        ),
        (json!({"text": "  "}), "a blank text"),
        (
            json!({"session_id": sid, "text": "hi", "metadata": {}}),
            "metadata for an existing session",
        ),
    ] {
        api.post("/v1/chat", Some(&owner), &body)
            .await
            .assert_error(400, "bad_request", why);
    }
}

/// A chat whose reply outlasts `timeout_ms` answers 202 with the running turn to
/// poll; the poll gives the `turn.end` a member saw. A turn cancelled over HTTP ends
/// `cancelled` for the member; only members may cancel, and only running turns.
#[tokio::test]
async fn a_slow_reply_is_polled_and_a_running_turn_is_cancelled_over_http() {
    let upstream = Upstream::start().await;
    let gw = gateway_on(&upstream, &[]);
    let api = Api::new(&gw);
    let owner = token("u1", "acme", &[]);
    let (sid, _) = open(&api, Some(&owner), &json!({})).await;
    let mut ws = member(&gw, &owner, &sid).await;

    upstream
        .push(ModelReply::text(&["Slowly ", "but ", "surely."]).paced(Duration::from_millis(400)));
    let pending = api
        .post(
            "/v1/chat",
            Some(&owner),
            &json!({"session_id": sid, "text": "Take your time", "timeout_ms": 300}),
        )
        .await
        .expect(202, "the reply outlasts timeout_ms")
        .clone();
    assert_eq!(pending["status"], "running", "{pending}");
    let turn_id = pending["turn_id"].as_str().unwrap().to_string();
    let poll = pending["poll"].as_str().unwrap().to_string();
    assert_eq!(poll, format!("/v1/sessions/{sid}/turns/{turn_id}"));
    let end = until_end(&mut ws, Some(&turn_id)).await.pop().unwrap();
    let polled = api
        .get(&poll, Some(&owner))
        .await
        .expect(200, "the poll")
        .clone();
    assert_eq!(polled["status"], "completed", "{polled}");
    assert_eq!(polled["text"], "Slowly but surely.");
    assert_eq!(polled["text"], end["text"]);
    assert_eq!(polled["seq"], end["seq"]);

    upstream.push(ModelReply::hang());
    api.post(
        &format!("/v1/sessions/{sid}/messages"),
        Some(&owner),
        &json!({"text": "Never mind"}),
    )
    .await
    .expect(202, "a message whose reply hangs");
    let start = ws.next_of_type("turn.start").await;
    let turn_id = start["turn_id"].as_str().unwrap().to_string();
    let running = api
        .get(&format!("/v1/sessions/{sid}/turns/{turn_id}"), Some(&owner))
        .await
        .expect(200, "the running turn")
        .clone();
    assert_eq!(running["status"], "running", "{running}");
    assert!(running.get("text").is_none(), "{running}");
    let cancel = format!("/v1/sessions/{sid}/turns/{turn_id}/cancel");
    for (who, why) in [
        (token("u2", "acme", &[]), "another user"),
        (
            token("u1", "globex", &[]),
            "the same user id in another org",
        ),
    ] {
        api.post(&cancel, Some(&who), &json!({}))
            .await
            .assert_error(404, "not_found", why);
    }
    api.post(&cancel, Some(ADMIN_SECRET), &json!({}))
        .await
        .assert_error(403, "forbidden", "an API key");
    // A message behind the running turn waits in the queue.
    let queued = api
        .post(
            &format!("/v1/sessions/{sid}/messages"),
            Some(&owner),
            &json!({"text": "Still there?"}),
        )
        .await
        .expect(202, "a message behind the running turn")
        .clone();
    let reply = format!(
        "/v1/sessions/{sid}/messages/{}/reply",
        queued["message_id"].as_str().unwrap()
    );
    let waiting = api
        .get(&reply, Some(&owner))
        .await
        .expect(200, "its reply")
        .clone();
    assert_eq!(waiting["status"], "queued", "{waiting}");
    assert!(waiting.get("turn_id").is_none(), "{waiting}");
    upstream.push(ModelReply::text(&["Yes."]));
    api.post(&cancel, Some(&owner), &json!({}))
        .await
        .expect(202, "the owner cancels");
    let end = until_end(&mut ws, Some(&turn_id)).await.pop().unwrap();
    assert_eq!(end["status"], "cancelled", "{end}");
    let next = until_end(&mut ws, None).await.pop().unwrap();
    let answered = api
        .get(&reply, Some(&owner))
        .await
        .expect(200, "its reply")
        .clone();
    assert_eq!(answered["status"], "completed", "{answered}");
    assert_eq!(answered["turn_id"], next["turn_id"]);
    assert_eq!(answered["text"], "Yes.");
    assert_eq!(answered["seq"], next["seq"]);
    api.get(&reply, Some(&token("u2", "acme", &[])))
        .await
        .assert_error(404, "not_found", "another user's reply");
    let polled = api
        .get(&format!("/v1/sessions/{sid}/turns/{turn_id}"), Some(&owner))
        .await
        .expect(200, "the cancelled turn")
        .clone();
    assert_eq!(polled["status"], "cancelled");
    assert_eq!(polled["seq"], end["seq"]);
    api.post(&cancel, Some(&owner), &json!({}))
        .await
        .assert_error(404, "not_found", "a turn that no longer runs");
}

/// A tool call waiting for approval is decided over HTTP as with `tool.decide`: not
/// by a stranger (404), once (then 409), and the turn goes on for the member.
#[tokio::test]
async fn a_tool_call_is_decided_over_http() {
    let upstream = Upstream::start().await;
    let backend = ToolBackend::start(json!({"refunded": true})).await;
    let tools = json!([{
        "name": "refund_order",
        "description": "Refund an order",
        "parameters": {"type": "object", "properties": {}},
        "endpoint": backend.endpoint("refund_order"),
        "requires_approval": true,
    }]);
    let path = temp_path("tools", "json");
    std::fs::write(&path, serde_json::to_vec(&tools).unwrap()).unwrap();
    let path = path.to_string_lossy().into_owned();
    let gw = gateway_on(
        &upstream,
        &[
            "--tools-file",
            &path,
            "--tool-signing-key",
            "tool-signing-key-0123456789abcdefghijklmnop",
        ],
    );
    let api = Api::new(&gw);
    let ann = token("ann", "acme", &[]);
    let (sid, _) = open(&api, Some(&ann), &json!({})).await;
    let mut ws = member(&gw, &ann, &sid).await;
    upstream.push(tool_call_reply("call_1", "refund_order", &["{}"]));
    upstream.push(ModelReply::text(&["Refunded."]));
    api.post(
        &format!("/v1/sessions/{sid}/messages"),
        Some(&ann),
        &json!({"text": "Refund my order"}),
    )
    .await
    .expect(202, "the message");
    let request = ws.next_of_type("tool.request").await;
    assert_eq!(request["requires_approval"], true, "{request}");
    let call_id = request["call_id"].as_str().unwrap();
    let decision = format!("/v1/sessions/{sid}/tool-calls/{call_id}/decision");
    api.post(
        &decision,
        Some(&token("bob", "acme", &[])),
        &json!({"approved": true}),
    )
    .await
    .assert_error(404, "not_found", "a stranger");
    api.post(
        &decision,
        Some(&ann),
        &json!({"approved": true, "decision": "deny"}),
    )
    .await
    .assert_error(400, "bad_request", "two answers at once");
    api.post(
        &format!("/v1/sessions/{sid}/tool-calls/call_nope/decision"),
        Some(&ann),
        &json!({"decision": "approve"}),
    )
    .await
    .assert_error(404, "not_found", "a call that does not wait");
    let decided = api
        .post(&decision, Some(&ann), &json!({"decision": "approve"}))
        .await
        .expect(200, "the asker approves")
        .clone();
    assert_eq!(
        decided,
        json!({"session_id": sid, "call_id": call_id, "approved": true})
    );
    let frames = ws.collect_until(is_assistant_message).await;
    let result = frames.iter().find(|f| ty(f) == "tool.result").unwrap();
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["decided_by"], "ann", "{result}");
    assert_eq!(backend.hits().len(), 1);
    api.post(&decision, Some(&ann), &json!({"approved": false}))
        .await
        .assert_error(409, "conflict", "decided already");
}

/// Without credentials (`--allow-anonymous`), a caller opens sessions and gets their
/// key once; it acts in one only with its key. Other users and orgs see nothing;
/// without anonymous access, no credentials is 401.
#[tokio::test]
async fn anonymous_callers_act_only_with_the_session_key_and_sessions_stay_isolated() {
    let gw = keyed_gateway(&["--demo-seed"]);
    let api = Api::new(&gw);
    let (sid, key) = open(&api, None, &json!({"title": "A visitor's question"})).await;
    let key = key.expect("an anonymous session's key");
    let path = format!("/v1/sessions/{sid}/messages");
    let body = json!({"text": "What is Switchboard?"});
    call(&api, Method::POST, &path, None, None, Some(&body))
        .await
        .assert_error(401, "unauthorized", "no credentials and no key");
    for wrong in ["k_wrong", &key[..key.len() - 1]] {
        call(&api, Method::POST, &path, None, Some(wrong), Some(&body))
            .await
            .assert_error(404, "not_found", "a wrong key");
        call(
            &api,
            Method::POST,
            "/v1/chat",
            None,
            Some(wrong),
            Some(&json!({"session_id": sid, "text": "hi"})),
        )
        .await
        .assert_error(404, "not_found", "a chat with a wrong key");
    }
    let posted = call(&api, Method::POST, &path, None, Some(&key), Some(&body))
        .await
        .expect(202, "with its key")
        .clone();
    assert_eq!(posted["role"], "user");
    let chat = call(
        &api,
        Method::POST,
        "/v1/chat",
        None,
        Some(&key),
        Some(&json!({"session_id": sid, "text": "And webhooks?"})),
    )
    .await
    .expect(200, "a chat with its key")
    .clone();
    assert_eq!(chat["status"], "completed", "{chat}");
    let turn = format!(
        "/v1/sessions/{sid}/turns/{}",
        chat["turn_id"].as_str().unwrap()
    );
    call(&api, Method::GET, &turn, None, Some(&key), None)
        .await
        .expect(200, "its turn, with its key");
    call(&api, Method::GET, &turn, None, Some("k_wrong"), None)
        .await
        .assert_error(404, "not_found", "its turn with a wrong key");
    call(
        &api,
        Method::GET,
        &turn,
        Some(&token("u9", "default", &[])),
        None,
        None,
    )
    .await
    .assert_error(404, "not_found", "its turn for a user without the key");

    let opened = api
        .post("/v1/chat", None, &json!({"text": "What is Switchboard?"}))
        .await
        .expect(200, "an anonymous chat that opens its session")
        .clone();
    assert!(opened["session_key"].as_str().is_some(), "{opened}");

    // Users' sessions: not another user's, not another org's.
    let owner = token("u1", "acme", &[]);
    let (mine, _) = open(&api, Some(&owner), &json!({})).await;
    for (who, why) in [
        (token("u2", "acme", &[]), "another user of the org"),
        (
            token("u1", "globex", &[]),
            "the same user id in another org",
        ),
        (
            token("op", "globex", &["operator"]),
            "another org's operator",
        ),
    ] {
        api.post(
            "/v1/chat",
            Some(&who),
            &json!({"session_id": mine, "text": "hi"}),
        )
        .await
        .assert_error(404, "not_found", why);
    }
    api.post(
        &format!("/v1/sessions/{mine}/messages"),
        Some(&token("op", "globex", &["operator"])),
        &json!({"text": "hi"}),
    )
    .await
    .assert_error(404, "not_found", "another org's operator posting");
    api.post(
        "/v1/chat",
        Some(&token("op", "acme", &["operator"])),
        &json!({"session_id": mine, "text": "hi"}),
    )
    .await
    .assert_error(403, "forbidden", "staff start no turn to wait for");
    api.post("/v1/sessions", Some(PUBLISHER_SECRET), &json!({}))
        .await
        .assert_error(403, "forbidden", "an API key owns no session");

    let closed = keyed_gateway(&["--allow-anonymous", "false"]);
    let api = Api::new(&closed);
    api.post("/v1/sessions", None, &json!({}))
        .await
        .assert_error(401, "unauthorized", "anonymous access is off");
    api.post("/v1/chat", None, &json!({"text": "hi"}))
        .await
        .assert_error(401, "unauthorized", "anonymous access is off");
}

/// Waiting chats are bounded per principal and per replica: one more is 503
/// `unavailable` with `Retry-After`, counted by limit; a place comes back when a
/// chat answers.
#[tokio::test]
async fn waiting_chats_are_bounded_per_principal_and_per_replica() {
    let upstream = Upstream::start().await;
    let gw = gateway_on(
        &upstream,
        &[
            "--max-sync-chats",
            "2",
            "--max-sync-chats-per-principal",
            "1",
        ],
    );
    let waiting = |who: &str| {
        let api = Api::new(&gw);
        let jwt = token(who, "acme", &[]);
        async move {
            let (sid, _) = open(&api, Some(&jwt), &json!({})).await;
            let chat = tokio::spawn({
                let jwt = jwt.clone();
                let sid = sid.clone();
                async move {
                    api.post(
                        "/v1/chat",
                        Some(&jwt),
                        &json!({"session_id": sid, "text": "hello", "timeout_ms": 5000}),
                    )
                    .await
                }
            });
            (jwt, sid, chat)
        }
    };
    upstream.push(ModelReply::hang());
    upstream.push(ModelReply::hang());
    let (u1, s1, first) = waiting("u1").await;
    let mut ws1 = member(&gw, &u1, &s1).await;
    let started = ws1.next_of_type("turn.start").await;
    let turn_id = started["turn_id"].as_str().unwrap().to_string();
    let api = Api::new(&gw);
    let refused = api
        .post("/v1/chat", Some(&u1), &json!({"text": "again"}))
        .await;
    refused.assert_error(503, "unavailable", "a second chat of one principal");
    assert_eq!(refused.header("retry-after"), Some("1"));
    let (u2, s2, second) = waiting("u2").await;
    let mut ws2 = member(&gw, &u2, &s2).await;
    ws2.next_of_type("turn.start").await;
    let refused = api
        .post(
            "/v1/chat",
            Some(&token("u3", "acme", &[])),
            &json!({"text": "hi"}),
        )
        .await;
    refused.assert_error(503, "unavailable", "a third chat on the replica");
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("switchboard_sync_chats_waiting 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"switchboard_sync_chats_refused_total{limit="principal"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"switchboard_sync_chats_refused_total{limit="process"} 1"#),
        "{metrics}"
    );
    // Cancelling the first turn answers its chat, and its place comes back.
    api.post(
        &format!("/v1/sessions/{s1}/turns/{turn_id}/cancel"),
        Some(&u1),
        &json!({}),
    )
    .await
    .expect(202, "cancel the first");
    let answered = first.await.unwrap();
    let answered = answered.expect(200, "the first chat answers").clone();
    assert_eq!(answered["status"], "cancelled", "{answered}");
    upstream.push(ModelReply::text(&["Hi again."]));
    let later = api
        .post(
            "/v1/chat",
            Some(&u1),
            &json!({"session_id": s1, "text": "hi again"}),
        )
        .await
        .expect(200, "a place came back")
        .clone();
    assert_eq!(later["text"], "Hi again.");
    drop(second);
}

/// A customer's message over HTTP meets the limits of `message.send`: text length
/// (`413`), the session's queue (`429`), and nothing is appended when refused.
#[tokio::test]
async fn messages_over_http_meet_the_limits_of_message_send() {
    let upstream = Upstream::start().await;
    let gw = gateway_on(
        &upstream,
        &["--max-queued-turns", "1", "--max-text-chars", "20"],
    );
    let api = Api::new(&gw);
    let owner = token("u1", "acme", &[]);
    let (sid, _) = open(&api, Some(&owner), &json!({})).await;
    let mut ws = member(&gw, &owner, &sid).await;
    let path = format!("/v1/sessions/{sid}/messages");
    api.post(&path, Some(&owner), &json!({"text": "x".repeat(21)}))
        .await
        .assert_error(413, "too_large", "a text over --max-text-chars");
    upstream.push(ModelReply::hang());
    api.post(&path, Some(&owner), &json!({"text": "first"}))
        .await
        .expect(202, "the first message: its turn runs");
    ws.next_of_type("turn.start").await;
    api.post(&path, Some(&owner), &json!({"text": "second"}))
        .await
        .expect(202, "the second: queued");
    api.post(&path, Some(&owner), &json!({"text": "third"}))
        .await
        .assert_error(429, "rate_limited", "a third behind a full queue");
    api.post(
        "/v1/chat",
        Some(&owner),
        &json!({"session_id": sid, "text": "fourth"}),
    )
    .await
    .assert_error(429, "rate_limited", "a chat behind a full queue");
    let history = api
        .get(&format!("/v1/sessions/{sid}/events"), Some(&owner))
        .await
        .expect(200, "the history")
        .clone();
    let texts: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| ty(e) == "message")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["first", "second"],
        "refused messages are not stored"
    );
}

crate::support::replicas::backed_tests! {
    /// An anonymous visitor opens a session on replica A over HTTP and chats through
    /// replica B with its key; a member on A sees the reply B answered. A turn that
    /// runs on A is cancelled through B over HTTP.
    sessions_over_http_span_replicas => sessions_over_http_span_replicas_body;
}

async fn sessions_over_http_span_replicas_body(backing: crate::support::replicas::Backing) {
    use crate::support::knowledge::REFUND_QUESTION;
    use crate::support::replicas::{Backplane, replica};
    let backplane = Backplane::start(backing);
    let a = replica(&backplane, "replica-a");
    let b = replica(&backplane, "replica-b");
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));
    let (sid, key) = open(&api_a, None, &json!({})).await;
    let key = key.expect("a key");
    let mut tab_a = Client::connect(&a.ws_url()).await;
    tab_a.join(&sid, None, Some(&key)).await;
    let chat = call(
        &api_b,
        Method::POST,
        "/v1/chat",
        None,
        Some(&key),
        Some(&json!({"session_id": sid, "text": REFUND_QUESTION})),
    )
    .await
    .expect(200, "a chat through replica B")
    .clone();
    let end = until_end(&mut tab_a, None).await.pop().unwrap();
    assert_eq!(chat["status"], "completed", "{chat}");
    assert_eq!(chat["text"], end["text"]);
    assert_eq!(chat["seq"], end["seq"]);
    assert_eq!(chat["turn_id"], end["turn_id"]);
    tab_a.collect_until(is_assistant_message).await;

    // A message accepted by A runs on A (~1 s of deltas); B cancels it.
    call(
        &api_a,
        Method::POST,
        &format!("/v1/sessions/{sid}/messages"),
        None,
        Some(&key),
        Some(&json!({"text": REFUND_QUESTION})),
    )
    .await
    .expect(202, "a message through replica A");
    let delta = tab_a.next_of_type("turn.delta").await;
    let turn_id = delta["turn_id"].as_str().unwrap().to_string();
    call(
        &api_b,
        Method::POST,
        &format!("/v1/sessions/{sid}/turns/{turn_id}/cancel"),
        None,
        Some(&key),
        None,
    )
    .await
    .expect(202, "a cancel through replica B");
    let end = until_end(&mut tab_a, Some(&turn_id)).await.pop().unwrap();
    assert_eq!(end["status"], "cancelled", "{end}");
    let polled = call(
        &api_b,
        Method::GET,
        &format!("/v1/sessions/{sid}/turns/{turn_id}"),
        None,
        Some(&key),
        None,
    )
    .await
    .expect(200, "the turn, read through B")
    .clone();
    assert_eq!(polled["status"], "cancelled");
    assert_eq!(polled["seq"], end["seq"]);
}

/// On SIGTERM a waiting chat still gets an answer — here its turn, ended `failed`
/// when `--drain-grace` ran out — and new sessions are refused `503` meanwhile.
#[tokio::test]
async fn a_waiting_chat_is_answered_through_a_drain() {
    use crate::support::knowledge::{REFUND_QUESTION, standard_file};
    let kb = standard_file();
    let mut gw = crate::support::Gateway::start(&[
        crate::support::jwt::HS_ARGS[0],
        crate::support::jwt::HS_ARGS[1],
        "--knowledge-file",
        kb.as_str(),
        "--offline-agent-delay",
        "300ms",
        "--drain-grace",
        "1500ms",
    ]);
    let api = Api::new(&gw);
    let owner = token("u1", "default", &[]);
    let (sid, _) = open(&api, Some(&owner), &json!({})).await;
    let mut ws = member(&gw, &owner, &sid).await;
    let chat = tokio::spawn({
        let api = Api::new(&gw);
        let owner = owner.clone();
        let sid = sid.clone();
        async move {
            api.post(
                "/v1/chat",
                Some(&owner),
                &json!({"session_id": sid, "text": REFUND_QUESTION, "timeout_ms": 60000}),
            )
            .await
        }
    });
    ws.next_of_type("turn.start").await;
    gw.sigterm();
    crate::support::replicas::wait_ready(&gw, 503, Duration::from_secs(5)).await;
    let refused = api.post("/v1/sessions", Some(&owner), &json!({})).await;
    refused.assert_error(503, "unavailable", "a new session while draining");
    let answered = chat.await.unwrap();
    let answered = answered.expect(200, "the waiting chat").clone();
    assert_eq!(answered["status"], "failed", "{answered}");
    assert!(
        answered["error"]
            .as_str()
            .is_some_and(|e| e.contains("shut down")),
        "{answered}"
    );
    let status = gw.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status after a drain: {status}");
}
