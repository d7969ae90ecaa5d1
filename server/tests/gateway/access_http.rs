//! The `/v1` publisher API and browser checks, attacked and exercised from outside
//! (docs/http-api.md: credentials, `POST /v1/publish`, operator messages, history,
//! `--ws-allowed-origins`, `--cors-origins`).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::support;
use crate::support::http::{
    ADMIN_SECRET, Api, PUBLISHER_KEYS, PUBLISHER_NAME, PUBLISHER_SECRET, keyed_gateway,
};
use crate::support::jwt::{Claims, HS_ARGS, connect, token};
use crate::support::{Client, Gateway, events_of, is_assistant_message, is_event, seq, ty};

/// HS256 JWTs, a publisher key, an admin key, publish bodies of at most 1 KiB and a
/// fast offline agent.
fn gateway() -> Gateway {
    keyed_gateway(&["--max-publish-bytes", "1024"])
}

fn session_event(session: &str, name: &str, data: Value) -> Value {
    json!({"target": {"session": session}, "name": name, "data": data})
}

/// An owner (u1 of acme) with a session, and a second member (an operator of acme).
async fn two_members(gw: &Gateway) -> (Client, Client, String) {
    let mut owner = connect(gw, &token("u1", "acme", &[])).await;
    let s = owner.create_session().await;
    let mut op = connect(gw, &token("u-op", "acme", &["operator"])).await;
    op.join(&s.id, None, None).await;
    (owner, op, s.id)
}

/// Read `client`'s frames until an `event` named `name`; return the events named
/// anything but `name` that came first, and that event.
async fn events_before(client: &mut Client, name: &str) -> (Vec<Value>, Value) {
    let mut before = Vec::new();
    loop {
        let frame = client.next_of_type("event").await;
        if frame["name"] == name {
            return (before, frame);
        }
        before.push(frame);
    }
}

/// Publish a sentinel into `session` with the publisher key, and panic unless it is
/// the first `event` each of `clients` receives: nothing refused earlier landed.
async fn assert_only_sentinel(api: &Api, session: &str, clients: &mut [&mut Client]) {
    api.publish_ok(&session_event(session, "sentinel", json!({})))
        .await;
    for client in clients.iter_mut() {
        let (before, _) = events_before(client, "sentinel").await;
        assert!(
            before.is_empty(),
            "events delivered before the sentinel: {before:?}"
        );
    }
}

// ---- credentials

/// `POST /v1/publish` without `Authorization`, with a wrong key, a near-miss of the
/// key, another scheme, a forged or expired JWT: 401 `unauthorized`, nothing published.
#[tokio::test]
async fn publish_with_missing_or_wrong_credentials_is_401() {
    let gw = gateway();
    let api = Api::new(&gw);
    let (mut owner, _op, sid) = two_members(&gw).await;
    let body = session_event(&sid, "should.not.land", json!({}));

    api.publish(None, &body)
        .await
        .assert_error(401, "unauthorized", "no Authorization");
    for (cred, why) in [
        ("wrong_secret".to_string(), "wrong key"),
        (
            PUBLISHER_SECRET[..PUBLISHER_SECRET.len() - 1].to_string(),
            "a prefix of the key",
        ),
        (format!("{PUBLISHER_SECRET}x"), "the key and one more byte"),
        (PUBLISHER_SECRET.to_uppercase(), "the key in upper case"),
        ("backend".to_string(), "the key's name"),
        (
            Claims::user("svc", "acme")
                .roles(&["publisher"])
                .hs256_with(b"not-the-secret-not-the-secret-!!"),
            "JWT with a forged signature",
        ),
        (
            Claims::user("svc", "acme")
                .roles(&["publisher"])
                .exp_in(-600)
                .hs256(),
            "expired JWT",
        ),
        (
            Claims::user("svc", "acme").roles(&["publisher"]).unsigned(),
            "alg none JWT",
        ),
    ] {
        api.publish(Some(&cred), &body)
            .await
            .assert_error(401, "unauthorized", why);
    }
    for header in [
        format!("Basic {PUBLISHER_SECRET}"),
        PUBLISHER_SECRET.to_string(),
        "Bearer".to_string(),
        "Bearer ".to_string(),
    ] {
        let reply = api
            .run(
                api.builder(Method::POST, "/v1/publish")
                    .header("Authorization", header.as_str())
                    .json(&body),
            )
            .await;
        reply.assert_error(401, "unauthorized", &format!("Authorization: {header:?}"));
    }
    assert_only_sentinel(&api, &sid, &mut [&mut owner]).await;
}

/// Authentication comes before the body is read: a missing or wrong credential with a
/// malformed body (not JSON, missing fields, wrong types) is still 401, so a caller
/// without a credential learns nothing about validation — on `/v1/publish`, operator
/// messages and document ingestion alike.
#[tokio::test]
async fn bad_credential_with_a_malformed_body_is_401_not_400() {
    let gw = gateway();
    let api = Api::new(&gw);
    let routes = [
        "/v1/publish",
        "/v1/sessions/s_00000000000000000000000000000000/messages",
        "/v1/admin/documents",
    ];
    let mut wrong = Vec::new();
    for path in routes {
        for cred in [None, Some("wrong-key-0123456789-abcdefghij")] {
            for body in ["{}", "{not json", "[1,2]", r#"{"target":42}"#] {
                let mut request = api
                    .builder(Method::POST, path)
                    .header("content-type", "application/json")
                    .body(body);
                if let Some(cred) = cred {
                    request = request.bearer_auth(cred);
                }
                let reply = api.run(request).await;
                if reply.status != 401 || reply.json["error"]["code"] != "unauthorized" {
                    wrong.push(format!(
                        "POST {path} cred {cred:?} body {body}: {} {}",
                        reply.status, reply.text
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "expected 401 unauthorized before any body validation:\n{}",
        wrong.join("\n")
    );
}

/// A valid credential without the publisher role is 403 `forbidden`: a JWT with no
/// roles, a JWT operator/admin, and the admin key; nothing is published.
#[tokio::test]
async fn publish_with_a_valid_credential_lacking_the_role_is_403() {
    let gw = gateway();
    let api = Api::new(&gw);
    let (mut owner, _op, sid) = two_members(&gw).await;
    let body = session_event(&sid, "should.not.land", json!({}));
    for (cred, why) in [
        (
            token("u1", "acme", &[]),
            "JWT without roles (the session owner)",
        ),
        (
            token("svc", "acme", &["operator", "admin"]),
            "JWT operator and admin",
        ),
        (ADMIN_SECRET.to_string(), "the admin key"),
    ] {
        api.publish(Some(&cred), &body)
            .await
            .assert_error(403, "forbidden", why);
    }
    assert_only_sentinel(&api, &sid, &mut [&mut owner]).await;
}

/// The publisher key is not an admin credential: it cannot list, ingest or delete
/// documents (403).
#[tokio::test]
async fn publisher_key_cannot_use_the_admin_api() {
    let gw = gateway();
    let api = Api::new(&gw);
    let doc = json!({"doc_id": "d1", "org_id": "acme", "title": "t", "text": "x", "acl": {"public": true}});
    api.post("/v1/admin/documents", Some(PUBLISHER_SECRET), &doc)
        .await
        .assert_error(403, "forbidden", "publisher key ingesting");
    api.get("/v1/admin/documents?org_id=acme", Some(PUBLISHER_SECRET))
        .await
        .assert_error(403, "forbidden", "publisher key listing");
    api.delete("/v1/admin/documents/d1?org_id=acme", Some(PUBLISHER_SECRET))
        .await
        .assert_error(403, "forbidden", "publisher key deleting");
    assert!(api.admin_doc_ids("acme").await.is_empty());
}

// ---- the publish body

/// A publish body over `--max-publish-bytes` (1024) is 413 with JSON
/// `{"error":{"code":"too_large",…}}` and delivers nothing; one just under it is 202.
/// A client that sends a body over the limit and only then reads must get the 413. If
/// the gateway answered as soon as it saw `Content-Length` and closed, the rest of the
/// body would hit a closed socket, the kernel would reset the connection, and the
/// client would see "connection reset" (or a failed write) instead of the answer. So
/// the gateway reads the oversize body to its end first; nothing is answered while
/// the body is still arriving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_body_is_read_to_its_end_before_the_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let gw = gateway();
    let (_owner, _op, sid) = two_members(&gw).await;
    let body = session_event(&sid, "too.big", json!({"blob": "x".repeat(64 * 1024)})).to_string();
    let head = format!(
        "POST /v1/publish HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {PUBLISHER_SECRET}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        gw.addr(),
        body.len()
    );
    let mut socket = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&body.as_bytes()[..1024]).await.unwrap();

    let mut early = [0u8; 64];
    let answered_early =
        tokio::time::timeout(Duration::from_millis(300), socket.read(&mut early)).await;
    assert!(
        answered_early.is_err(),
        "the gateway answered (or closed) before the body had arrived: {:?}",
        answered_early.map(|r| r.map(|n| String::from_utf8_lossy(&early[..n]).into_owned()))
    );

    socket.write_all(&body.as_bytes()[1024..]).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(support::WAIT, async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&reply).contains("}}") {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains(r#""code":"too_large""#), "{reply}");

    // Credentials are still checked before the size.
    let api = Api::new(&gw);
    let big = session_event(&sid, "too.big", json!({"blob": "x".repeat(2000)}));
    api.try_run(
        api.builder(Method::POST, "/v1/publish")
            .bearer_auth("not-a-key")
            .json(&big),
    )
    .await
    .unwrap()
    .assert_error(401, "unauthorized", "an oversize body with a wrong key");
}

#[tokio::test]
async fn oversize_publish_body_is_413_too_large() {
    let gw = gateway();
    let api = Api::new(&gw);
    let (mut owner, _op, sid) = two_members(&gw).await;
    let big = session_event(&sid, "too.big", json!({"blob": "x".repeat(2000)}));
    assert!(big.to_string().len() > 1024);
    api.publish(Some(PUBLISHER_SECRET), &big)
        .await
        .assert_error(413, "too_large", "a 2 KB publish body");
    // Far over the limit too. The server may answer 413 and close before the client
    // has sent it all, in which case the client sees the connection end instead.
    let huge = session_event(&sid, "too.big", json!({"blob": "x".repeat(4 << 20)}));
    let sent = api
        .try_run(
            api.builder(Method::POST, "/v1/publish")
                .bearer_auth(PUBLISHER_SECRET)
                .json(&huge),
        )
        .await;
    if let Ok(reply) = sent {
        reply.assert_error(413, "too_large", "a 4 MB publish body");
    }
    assert_only_sentinel(&api, &sid, &mut [&mut owner]).await;

    let mut fits = session_event(&sid, "fits", json!({"blob": ""}));
    let pad = 1000 - fits.to_string().len();
    fits["data"]["blob"] = json!("y".repeat(pad));
    assert!(fits.to_string().len() <= 1024);
    api.publish(Some(PUBLISHER_SECRET), &fits)
        .await
        .expect(202, "a body just under the limit");
    let (_, ev) = events_before(&mut owner, "fits").await;
    assert_eq!(ev["data"], fits["data"]);
}

/// Malformed publish bodies are 400 `bad_request`: not JSON, no target, an unknown
/// target kind, no name, an empty or 129-character name, an over-long idempotency key;
/// a missing session is 404.
#[tokio::test]
async fn malformed_publish_bodies_are_400() {
    let gw = gateway();
    let api = Api::new(&gw);
    let (mut owner, _op, sid) = two_members(&gw).await;
    let cases = [
        (json!({"name": "n", "data": {}}), "no target"),
        (
            json!({"target": {"channel": sid}, "name": "n", "data": {}}),
            "unknown target kind",
        ),
        (json!({"target": {"session": sid}, "data": {}}), "no name"),
        (
            json!({"target": {"session": sid}, "name": "", "data": {}}),
            "empty name",
        ),
        (
            json!({"target": {"session": sid}, "name": "n".repeat(129), "data": {}}),
            "129-character name",
        ),
        (
            json!({"target": {"session": sid}, "name": "n", "data": {}, "idempotency_key": "k".repeat(129)}),
            "129-character idempotency key",
        ),
        (
            json!({"target": {"session": sid}, "name": "n", "data": {}, "idempotency_key": ""}),
            "empty idempotency key",
        ),
        (json!([1, 2, 3]), "not an object"),
    ];
    for (body, why) in cases {
        api.publish(Some(PUBLISHER_SECRET), &body)
            .await
            .assert_error(400, "bad_request", why);
    }
    let reply = api
        .run(
            api.builder(Method::POST, "/v1/publish")
                .bearer_auth(PUBLISHER_SECRET)
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    reply.assert_error(400, "bad_request", "not JSON");
    api.publish(
        Some(PUBLISHER_SECRET),
        &session_event("s_00000000000000000000000000000000", "n", json!({})),
    )
    .await
    .assert_error(404, "not_found", "a missing session");
    // 128 characters is fine.
    api.publish(
        Some(PUBLISHER_SECRET),
        &session_event(&sid, &"n".repeat(128), json!(null)),
    )
    .await
    .expect(202, "a 128-character name");
    let ev = owner.next_of_type("event").await;
    assert_eq!(ev["name"], "n".repeat(128), "{ev}");
}

/// The same `idempotency_key` for the same target returns the first `seq` and appends
/// nothing: the member sees the event once; the same key on another session is a new
/// event there.
#[tokio::test]
async fn repeated_idempotency_key_returns_the_same_seq_and_delivers_once() {
    let gw = gateway();
    let api = Api::new(&gw);
    let (mut owner, _op, sid) = two_members(&gw).await;
    let other = owner.create_session().await;
    let mut body = session_event(&sid, "order.shipped", json!({"order": 42}));
    body["idempotency_key"] = json!("order-42-shipped");

    let first = api.publish_ok(&body).await;
    let first_seq = first["seq"].as_u64().expect("202 {seq}");
    for _ in 0..2 {
        let again = api.publish_ok(&body).await;
        assert_eq!(again["seq"], first_seq, "a retry returns the first seq");
    }
    let mut elsewhere = body.clone();
    elsewhere["target"] = json!({"session": other.id});
    let there = api.publish_ok(&elsewhere).await;

    // The sentinels close each session's stream: everything before them is all that
    // was delivered.
    api.publish_ok(&session_event(&sid, "sentinel", json!({})))
        .await;
    api.publish_ok(&session_event(&other.id, "sentinel", json!({})))
        .await;
    let mut before = Vec::new();
    let mut sentinels = 0;
    while sentinels < 2 {
        let ev = owner.next_of_type("event").await;
        if ev["name"] == "sentinel" {
            sentinels += 1;
        } else {
            before.push(ev);
        }
    }
    let shipped: Vec<&Value> = before
        .iter()
        .filter(|e| e["name"] == "order.shipped" && e["session_id"] == sid.as_str())
        .collect();
    assert_eq!(
        shipped.len(),
        1,
        "the event must be delivered once: {before:?}"
    );
    assert_eq!(seq(shipped[0]), first_seq);
    let in_other: Vec<&Value> = before
        .iter()
        .filter(|e| e["session_id"] == other.id.as_str())
        .collect();
    assert_eq!(in_other.len(), 1, "{before:?}");
    assert_eq!(in_other[0]["seq"], there["seq"]);

    let history = api
        .get(
            &format!("/v1/sessions/{sid}/events"),
            Some(PUBLISHER_SECRET),
        )
        .await;
    let events = history.expect(200, "history")["events"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        events
            .iter()
            .filter(|e| e["name"] == "order.shipped")
            .count(),
        1,
        "{events:?}"
    );
}

// ---- happy paths

/// A publisher's event reaches every member of the session (two sockets, two users)
/// with `session_id`, `seq` (the 202's), `ts`, `name`, `data` and the key's name as
/// `publisher`; a JWT publisher of the same org reaches them too.
#[tokio::test]
async fn published_event_reaches_every_member_of_the_session() {
    let gw = gateway();
    let api = Api::new(&gw);
    let (mut owner, mut op, sid) = two_members(&gw).await;
    let mut outsider = connect(&gw, &token("u9", "acme", &[])).await;
    let reply = api
        .publish_ok(&session_event(
            &sid,
            "order.shipped",
            json!({"order": 42, "items": ["a", "b"]}),
        ))
        .await;
    let reply_seq = reply["seq"].as_u64().expect("202 {seq}");
    for client in [&mut owner, &mut op] {
        let ev = client.next_of_type("event").await;
        assert_eq!(ev["session_id"], sid.as_str(), "{ev}");
        assert_eq!(ev["name"], "order.shipped", "{ev}");
        assert_eq!(
            ev["data"],
            json!({"order": 42, "items": ["a", "b"]}),
            "{ev}"
        );
        assert_eq!(ev["publisher"], PUBLISHER_NAME, "{ev}");
        assert_eq!(seq(&ev), reply_seq, "{ev}");
        assert!(ev["ts"].is_u64(), "{ev}");
    }
    let jwt_pub = token("svc-billing", "acme", &["publisher"]);
    let reply = api
        .publish(
            Some(&jwt_pub),
            &session_event(&sid, "invoice.paid", json!(1)),
        )
        .await;
    let reply_seq = reply.expect(202, "JWT publisher of the session's org")["seq"]
        .as_u64()
        .expect("seq");
    for client in [&mut owner, &mut op] {
        let ev = client.next_of_type("event").await;
        assert_eq!(ev["name"], "invoice.paid", "{ev}");
        assert_eq!(seq(&ev), reply_seq, "{ev}");
    }
    // A connection that is not a member gets nothing.
    outsider.ping_pong().await;
    assert!(
        outsider
            .next_frame_within(Duration::from_millis(300))
            .await
            .is_none()
    );
}

/// A JWT publisher's org is always its own: a body naming another `org_id` is 403
/// whatever the target (a session of its own org, a user, its own org), and nothing
/// is delivered.
#[tokio::test]
async fn jwt_publisher_naming_another_org_id_is_403() {
    let gw = gateway();
    let api = Api::new(&gw);
    let (mut owner, _op, sid) = two_members(&gw).await;
    let jwt_pub = token("svc-billing", "acme", &["publisher"]);
    let mut accepted = Vec::new();
    for target in [
        json!({"session": sid}),
        json!({"user": "u1"}),
        json!({"org": "acme"}),
    ] {
        let body = json!({"target": target, "name": "wrong.org", "data": {}, "org_id": "globex"});
        let reply = api.publish(Some(&jwt_pub), &body).await;
        if reply.status != 403 {
            accepted.push(format!("target {target}: {} {}", reply.status, reply.text));
        } else {
            reply.assert_error(403, "forbidden", &format!("target {target}"));
        }
    }
    assert!(
        accepted.is_empty(),
        "a JWT publisher of acme naming org_id globex must get 403; got: {accepted:?}"
    );
    // Naming its own org is fine.
    let body =
        json!({"target": {"session": sid}, "name": "right.org", "data": {}, "org_id": "acme"});
    api.publish(Some(&jwt_pub), &body)
        .await
        .expect(202, "JWT publisher naming its own org_id");
    let (before, _) = events_before(&mut owner, "right.org").await;
    assert!(before.is_empty(), "{before:?}");
}

/// `POST /v1/sessions/{id}/messages` (publisher key, JWT operator or publisher of the org)
/// appends a `message` with role `operator`, the text and the author, seen by every
/// member with the 202's `message_id` and `seq`; no agent turn starts. A plain user's
/// JWT is 403, an empty text 400.
#[tokio::test]
async fn operator_message_arrives_as_role_operator_and_starts_no_turn() {
    let gw = gateway();
    let api = Api::new(&gw);
    let (mut owner, mut op, sid) = two_members(&gw).await;
    let path = format!("/v1/sessions/{sid}/messages");
    let reply = api
        .post(
            &path,
            Some(PUBLISHER_SECRET),
            &json!({"text": "Hi, I'm Dana from support.", "author": "Dana"}),
        )
        .await;
    let body = reply
        .expect(202, "operator message with the publisher key")
        .clone();
    for client in [&mut owner, &mut op] {
        let m = client.next_of_type("message").await;
        assert_eq!(m["role"], "operator", "{m}");
        assert_eq!(m["text"], "Hi, I'm Dana from support.", "{m}");
        assert_eq!(m["author"], "Dana", "{m}");
        assert_eq!(m["message_id"], body["message_id"], "{m}");
        assert_eq!(m["seq"], body["seq"], "{m}");
        assert_eq!(m["session_id"], sid.as_str(), "{m}");
    }
    let jwt_op = token("u-dana", "acme", &["operator"]);
    api.post(
        &path,
        Some(&jwt_op),
        &json!({"text": "Still here.", "author": "Dana"}),
    )
    .await
    .expect(202, "JWT operator of the session's org");
    let jwt_pub = token("svc", "acme", &["publisher"]);
    api.post(&path, Some(&jwt_pub), &json!({"text": "From the backend."}))
        .await
        .expect(202, "JWT publisher of the session's org");
    api.post(
        &path,
        Some(&token("u2", "acme", &[])),
        &json!({"text": "spoof"}),
    )
    .await
    .assert_error(403, "forbidden", "a plain user's JWT");
    api.post(&path, Some(PUBLISHER_SECRET), &json!({"text": ""}))
        .await
        .assert_error(400, "bad_request", "empty text");

    // The next events are the two JWT operator messages and then the sentinel: no turn.
    api.publish_ok(&session_event(&sid, "sentinel", json!({})))
        .await;
    let frames = owner
        .collect_until(|f| ty(f) == "event" && f["name"] == "sentinel")
        .await;
    let kinds: Vec<&str> = frames.iter().filter(|f| is_event(f)).map(ty).collect();
    assert_eq!(kinds, ["message", "message", "event"], "{frames:?}");
    assert_eq!(frames[0]["role"], "operator");
    assert_eq!(frames[1]["role"], "operator");
    assert!(
        !frames.iter().any(|f| ty(f).starts_with("turn.")),
        "{frames:?}"
    );
    let late = owner.next_frame_within(Duration::from_millis(300)).await;
    assert!(
        late.is_none(),
        "a turn started after an operator message: {late:?}"
    );
}

/// `GET /v1/sessions/{id}/events` returns the session's events exactly as a socket
/// received them (a user message, a whole turn, a published event, an operator
/// message), honours `after_seq` and `limit`, and reports `last_seq`.
#[tokio::test]
async fn history_endpoint_returns_events_as_sockets_receive_them() {
    let gw = gateway();
    let api = Api::new(&gw);
    let (mut owner, _op, sid) = two_members(&gw).await;
    owner.send_message(&sid, "hello history").await;
    let mut frames = owner.collect_turns(1).await;
    api.publish_ok(&session_event(&sid, "order.shipped", json!({"n": 1})))
        .await;
    api.post(
        &format!("/v1/sessions/{sid}/messages"),
        Some(PUBLISHER_SECRET),
        &json!({"text": "operator here", "author": "Dana"}),
    )
    .await
    .expect(202, "operator message");
    frames.extend(
        owner
            .collect_until(|f| ty(f) == "message" && f["role"] == "operator")
            .await,
    );
    assert!(frames.iter().any(is_assistant_message));
    let live: Vec<Value> = events_of(&frames, &sid).into_iter().cloned().collect();

    for cred in [PUBLISHER_SECRET.to_string(), token("u1", "acme", &[])] {
        let reply = api
            .get(&format!("/v1/sessions/{sid}/events"), Some(&cred))
            .await;
        let body = reply.expect(200, "history");
        assert_eq!(body["session_id"], sid.as_str());
        assert_eq!(body["trimmed"], false, "{body}");
        let events = body["events"].as_array().expect("events");
        assert_eq!(events, &live, "history must equal what the socket received");
        assert_eq!(body["last_seq"], live.last().unwrap()["seq"]);
    }

    let cut = seq(&live[1]);
    let reply = api
        .get(
            &format!("/v1/sessions/{sid}/events?after_seq={cut}&limit=2"),
            Some(PUBLISHER_SECRET),
        )
        .await;
    let body = reply.expect(200, "history after_seq & limit");
    assert_eq!(body["events"].as_array().unwrap().as_slice(), &live[2..4]);
}

// ---- browsers

/// Tries a WebSocket upgrade with an optional `Origin`; `Ok(welcome)` or
/// `Err(http status)`.
async fn upgrade_with_origin(gw: &Gateway, origin: Option<&str>) -> Result<Value, (u16, String)> {
    let mut request = gw.ws_url().into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", HeaderValue::from_str(origin).unwrap());
    }
    match Client::connect_request(request).await {
        Ok((mut client, _)) => Ok(client.next_frame().await),
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default();
            Err((response.status().as_u16(), body))
        }
        Err(e) => panic!("upgrade with Origin {origin:?} failed unexpectedly: {e}"),
    }
}

/// With `--ws-allowed-origins https://shop.example`, an upgrade from another origin
/// (including look-alikes and `null`) is refused with HTTP 403 before the upgrade; the
/// listed origin and a request without `Origin` upgrade and are welcomed.
#[tokio::test]
async fn websocket_origin_allow_list_refuses_other_origins_with_403() {
    let gw = Gateway::start(&[
        "--ws-allowed-origins",
        "https://shop.example",
        HS_ARGS[0],
        HS_ARGS[1],
    ]);
    for origin in [
        "https://evil.example",
        "https://shop.example.evil.example",
        "https://evilshop.example",
        "http://shop.example",
        "https://shop.example:8443",
        "null",
    ] {
        match upgrade_with_origin(&gw, Some(origin)).await {
            Err((status, body)) => {
                assert_eq!(status, 403, "Origin {origin}: {body}");
                if let Ok(json) = serde_json::from_str::<Value>(&body) {
                    assert_eq!(
                        json["error"]["code"], "forbidden",
                        "Origin {origin}: {body}"
                    );
                }
            }
            Ok(frame) => panic!("Origin {origin} was upgraded: {frame}"),
        }
    }
    // The Origin check comes first: a valid token does not get an evil origin in.
    let token = Claims::user("u1", "acme").hs256();
    let mut request = format!("{}?token={token}", gw.ws_url())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Origin", HeaderValue::from_static("https://evil.example"));
    match Client::connect_request(request).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("an evil origin with a valid token was upgraded"),
    }
    for origin in [Some("https://shop.example"), None] {
        let welcome = upgrade_with_origin(&gw, origin)
            .await
            .unwrap_or_else(|e| panic!("Origin {origin:?} was refused: {e:?}"));
        assert_eq!(ty(&welcome), "welcome", "{welcome}");
    }
    // Without the flag any origin is allowed.
    let open = Gateway::start(&[]);
    let welcome = upgrade_with_origin(&open, Some("https://evil.example"))
        .await
        .expect("any origin without --ws-allowed-origins");
    assert_eq!(ty(&welcome), "welcome");
}

/// With `--cors-origins https://shop.example`, a preflight `OPTIONS /v1/publish` from
/// that origin gets `Access-Control-Allow-Origin: https://shop.example`; from another
/// origin it gets none (nor does a real request from it); without the flag, none.
#[tokio::test]
async fn cors_preflight_is_answered_only_for_listed_origins() {
    let gw = Gateway::start(&[
        "--cors-origins",
        "https://shop.example",
        "--publisher-keys",
        PUBLISHER_KEYS,
    ]);
    let api = Api::new(&gw);
    let preflight = |origin: &'static str| {
        api.builder(Method::OPTIONS, "/v1/publish")
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
    };
    let ok = api.run(preflight("https://shop.example")).await;
    assert!(
        (200..300).contains(&ok.status),
        "preflight from the listed origin: {} {:?}",
        ok.status,
        ok.headers
    );
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://shop.example"),
        "{:?}",
        ok.headers
    );
    let methods = ok
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .to_ascii_uppercase();
    assert!(
        methods.contains("POST") || methods == "*",
        "{:?}",
        ok.headers
    );
    let headers = ok
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization") || headers == "*",
        "{:?}",
        ok.headers
    );

    for origin in ["https://evil.example", "https://shop.example.evil.example"] {
        let reply = api.run(preflight(origin)).await;
        let allowed = reply.header("access-control-allow-origin");
        assert!(
            allowed.is_none(),
            "preflight from {origin} got Access-Control-Allow-Origin {allowed:?}"
        );
    }
    let real = api
        .run(
            api.builder(Method::POST, "/v1/publish")
                .header("Origin", "https://evil.example")
                .bearer_auth("wrong")
                .json(&json!({})),
        )
        .await;
    assert!(
        real.header("access-control-allow-origin").is_none(),
        "{:?}",
        real.headers
    );

    let plain = Gateway::start(&["--publisher-keys", PUBLISHER_KEYS]);
    let plain_api = Api::new(&plain);
    let reply = plain_api
        .run(
            plain_api
                .builder(Method::OPTIONS, "/v1/publish")
                .header("Origin", "https://shop.example")
                .header("Access-Control-Request-Method", "POST"),
        )
        .await;
    assert!(
        reply.header("access-control-allow-origin").is_none(),
        "no CORS headers by default: {:?}",
        reply.headers
    );
}
