//! Trying to cross tenants: sessions, history, publishing and user/org streams of one
//! org must be invisible and unreachable from another (docs/protocol.md §3,
//! docs/http-api.md).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::http::{ADMIN_SECRET, Api, PUBLISHER_SECRET, keyed_gateway};
use crate::support::jwt::{connect, token};
use crate::support::{Client, MISSING_SESSION, ty};

/// Panics unless `reply` is an `error` `not_found` and returns its message.
fn not_found_message(reply: &Value, what: &str) -> String {
    assert_eq!(ty(reply), "error", "{what}: {reply}");
    assert_eq!(reply["code"], "not_found", "{what}: {reply}");
    reply["message"].as_str().expect("message").to_string()
}

/// Panics if `client` receives any frame within a short grace period (after a ping
/// round trip has flushed whatever the server had already queued for it).
async fn assert_quiet(client: &mut Client, who: &str) {
    client.ping_pong().await;
    let got = client.next_frame_within(Duration::from_millis(300)).await;
    assert!(got.is_none(), "{who} received something: {got:?}");
}

/// The next `event` frame `client` receives, skipping anything else.
async fn next_event(client: &mut Client) -> Value {
    client.next_of_type("event").await
}

/// The `events` of `GET /v1/sessions/{id}/events` read with the publisher key.
async fn history(api: &Api, session: &str) -> Vec<Value> {
    let reply = api
        .get(
            &format!("/v1/sessions/{session}/events"),
            Some(PUBLISHER_SECRET),
        )
        .await;
    reply.expect(200, "history with the publisher key")["events"]
        .as_array()
        .expect("events")
        .clone()
}

/// A user of org B — even one with roles `operator` and `admin` — cannot join org A's
/// session: `not_found` with the same message as for a session that does not exist,
/// with or without `after_seq`; it cannot send into it either, and receives nothing of
/// the session's traffic.
#[tokio::test]
async fn other_org_cannot_join_and_gets_the_same_not_found_as_a_missing_session() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let mut a = connect(&gw, &token("u-a", "acme", &[])).await;
    let s = a.create_session().await;
    let mut b = connect(&gw, &token("u-b", "globex", &["operator", "admin"])).await;

    let missing = not_found_message(&b.join_reply(MISSING_SESSION, None, None).await, "missing");
    let other = not_found_message(&b.join_reply(&s.id, None, None).await, "other org");
    assert_eq!(
        other, missing,
        "the refusal must not reveal the session exists"
    );
    let with_after = not_found_message(&b.join_reply(&s.id, Some(0), None).await, "after_seq");
    assert_eq!(with_after, missing);

    // Sending into it without a membership appends nothing.
    let send = b
        .request(
            "message.send",
            json!({"session_id": s.id, "text": "globex was here"}),
        )
        .await;
    assert_eq!(ty(&send), "error", "{send}");
    assert!(
        send["code"] == "forbidden" || send["code"] == "not_found",
        "{send}"
    );

    // Org A's traffic reaches A only.
    a.send_message(&s.id, "acme confidential question").await;
    a.collect_turns(1).await;
    assert_quiet(&mut b, "a user of another org").await;
    let events = history(&api, &s.id).await;
    assert!(
        !events
            .iter()
            .any(|e| e.to_string().contains("globex was here")),
        "{events:?}"
    );
}

/// The same `sub` in another org is another person: u1 of org B cannot join u1 of org
/// A's session.
#[tokio::test]
async fn same_user_id_in_another_org_cannot_join() {
    let gw = keyed_gateway(&[]);
    let mut a = connect(&gw, &token("u1", "acme", &[])).await;
    let s = a.create_session().await;
    let mut b = connect(&gw, &token("u1", "globex", &[])).await;
    let missing = not_found_message(&b.join_reply(MISSING_SESSION, None, None).await, "missing");
    let other = not_found_message(&b.join_reply(&s.id, None, None).await, "u1 of globex");
    assert_eq!(other, missing);
    // The owner itself, on a second connection, may join.
    let mut a2 = connect(&gw, &token("u1", "acme", &[])).await;
    a2.join(&s.id, None, None).await;
}

/// Within an org, another user's session may be joined with role `operator` or
/// `admin` (and the operator then receives its events), never as a plain user
/// (`not_found`, same message as a missing session); an operator of another org
/// cannot.
#[tokio::test]
async fn same_org_operator_can_join_another_users_session_plain_user_cannot() {
    let gw = keyed_gateway(&[]);
    let mut owner = connect(&gw, &token("u-owner", "acme", &[])).await;
    let s = owner.create_session().await;

    let mut plain = connect(&gw, &token("u-plain", "acme", &[])).await;
    let missing = not_found_message(
        &plain.join_reply(MISSING_SESSION, None, None).await,
        "missing",
    );
    let refused = not_found_message(&plain.join_reply(&s.id, None, None).await, "plain user");
    assert_eq!(refused, missing);

    let mut foreign_op = connect(&gw, &token("u-op", "globex", &["operator"])).await;
    not_found_message(
        &foreign_op.join_reply(&s.id, None, None).await,
        "operator of another org",
    );

    let mut op = connect(&gw, &token("u-op", "acme", &["operator"])).await;
    op.join(&s.id, None, None).await;
    let mut admin = connect(&gw, &token("u-adm", "acme", &["admin"])).await;
    admin.join(&s.id, None, None).await;

    let accepted = owner.send_message(&s.id, "hello from the owner").await;
    let seen = op.next_of_type("message").await;
    assert_eq!(seen["message_id"], accepted["message_id"], "{seen}");
    assert_eq!(seen["text"], "hello from the owner");
    assert_quiet(&mut plain, "a plain user who was refused").await;
    assert_quiet(&mut foreign_op, "an operator of another org").await;
}

/// An anonymous session cannot be joined by id alone: without its key, with a wrong
/// key, or with another session's key it is `not_found` (same message as a missing
/// session), for anonymous and authenticated connections; with its key it is joined.
#[tokio::test]
async fn anonymous_session_cannot_be_joined_without_its_key() {
    let gw = keyed_gateway(&[]);
    let mut creator = Client::connect(&gw.ws_url()).await;
    let s = creator.create_session().await;
    let key = s
        .key
        .clone()
        .expect("an anonymous creator gets a session_key");
    let decoy = creator.create_session().await;
    let decoy_key = decoy.key.clone().expect("session_key");

    let mut intruder = Client::connect(&gw.ws_url()).await;
    let missing = not_found_message(
        &intruder.join_reply(MISSING_SESSION, None, None).await,
        "missing",
    );
    for (k, why) in [
        (None, "no key"),
        (Some("sk_wrong"), "a wrong key"),
        (Some(decoy_key.as_str()), "another session's key"),
        (Some(""), "an empty key"),
    ] {
        let reply = intruder.join_reply(&s.id, None, k).await;
        assert_eq!(not_found_message(&reply, why), missing, "{why}");
    }
    let mut user = connect(&gw, &token("u1", "default", &[])).await;
    not_found_message(
        &user.join_reply(&s.id, None, None).await,
        "an authenticated user of the default org without the key",
    );
    // The key does not open the session to another org.
    let mut foreign = connect(&gw, &token("u1", "globex", &["operator", "admin"])).await;
    let reply = foreign.join_reply(&s.id, None, Some(&key)).await;
    assert_eq!(
        not_found_message(&reply, "a user of another org with the key"),
        missing
    );

    creator.send_message(&s.id, "anonymous secret").await;
    creator.collect_turns(1).await;
    assert_quiet(&mut intruder, "the refused anonymous intruder").await;
    assert_quiet(&mut foreign, "the refused user of another org").await;

    let mut friend = Client::connect(&gw.ws_url()).await;
    friend.join(&s.id, None, Some(&key)).await;
    let replayed = friend.next_of_type("message").await;
    assert_eq!(replayed["text"], "anonymous secret");
}

/// `GET /v1/sessions/{id}/events` of org A's session: 404 for org B's admin and for
/// u1 of org B (same sub as the owner), with the same body as a missing session and
/// none of A's data; 200 for the owner's JWT and A's admin; never 200 for another
/// user of A who is not an admin (plain, publisher, operator); 401 without credentials.
#[tokio::test]
async fn other_org_cannot_read_a_sessions_history() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let mut owner = connect(&gw, &token("u1", "acme", &[])).await;
    let s = owner.create_session().await;
    owner
        .send_message(&s.id, "acme private words pineapple")
        .await;
    owner.collect_turns(1).await;
    let path = format!("/v1/sessions/{}/events", s.id);
    let missing_path = format!("/v1/sessions/{MISSING_SESSION}/events");

    for (cred, why) in [
        (token("u-adm", "globex", &["admin"]), "admin of another org"),
        (token("u1", "globex", &[]), "same sub, another org"),
        (
            token("u-pub", "globex", &["publisher", "operator"]),
            "publisher of another org",
        ),
    ] {
        let reply = api.get(&path, Some(&cred)).await;
        reply.assert_error(404, "not_found", why);
        assert!(!reply.text.contains("pineapple"), "{why}: {}", reply.text);
        let missing = api.get(&missing_path, Some(&cred)).await;
        missing.assert_error(404, "not_found", "missing session");
        assert_eq!(
            reply.json["error"]["message"], missing.json["error"]["message"],
            "{why}: the 404 must not differ from a missing session's"
        );
    }

    // Same org, but neither the owner nor an admin: never the history.
    for (cred, why) in [
        (token("u2", "acme", &[]), "another plain user of the org"),
        (
            token("u2", "acme", &["publisher"]),
            "a JWT publisher of the org",
        ),
        (
            token("u2", "acme", &["operator"]),
            "a JWT operator of the org",
        ),
    ] {
        let reply = api.get(&path, Some(&cred)).await;
        assert!(
            reply.status == 403 || reply.status == 404,
            "{why}: expected 403 (or 404), got {} {}",
            reply.status,
            reply.text
        );
        assert!(!reply.text.contains("pineapple"), "{why}: {}", reply.text);
    }

    api.get(&path, None)
        .await
        .assert_error(401, "unauthorized", "no credentials");

    for (cred, why) in [
        (token("u1", "acme", &[]), "the owner"),
        (token("u-adm", "acme", &["admin"]), "admin of the org"),
        (ADMIN_SECRET.to_string(), "admin key"),
    ] {
        let reply = api.get(&path, Some(&cred)).await;
        let body = reply.expect(200, why);
        assert_eq!(body["session_id"], s.id.as_str(), "{why}");
        assert!(reply.text.contains("pineapple"), "{why}: {}", reply.text);
    }
}

/// A JWT publisher of org A cannot publish into org B's session (404, same as a
/// missing session), nor to org B's org stream or a user of org B (403), nor post an
/// operator message into B's session (404); B's members receive nothing of it.
#[tokio::test]
async fn jwt_publisher_cannot_reach_another_orgs_session_or_streams() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let mut b1 = connect(&gw, &token("u-b", "globex", &[])).await;
    let sb = b1.create_session().await;
    let mut b2 = connect(&gw, &token("u-b", "globex", &[])).await;
    b2.join(&sb.id, None, None).await;
    let pub_a = token("svc-a", "acme", &["publisher", "operator"]);

    let reply = api
        .publish(
            Some(&pub_a),
            &json!({"target": {"session": sb.id}, "name": "leak.session", "data": {"x": 1}}),
        )
        .await;
    reply.assert_error(404, "not_found", "JWT publisher into another org's session");
    let missing = api
        .publish(
            Some(&pub_a),
            &json!({"target": {"session": MISSING_SESSION}, "name": "leak.session", "data": {}}),
        )
        .await;
    missing.assert_error(404, "not_found", "missing session");
    assert_eq!(
        reply.json["error"]["message"],
        missing.json["error"]["message"]
    );

    api.publish(
        Some(&pub_a),
        &json!({"target": {"org": "globex"}, "name": "leak.org", "data": {}}),
    )
    .await
    .assert_error(403, "forbidden", "JWT publisher to another org");
    api.publish(
        Some(&pub_a),
        &json!({"target": {"user": "u-b"}, "org_id": "globex", "name": "leak.user", "data": {}}),
    )
    .await
    .assert_error(403, "forbidden", "JWT publisher to a user of another org");
    api.post(
        &format!("/v1/sessions/{}/messages", sb.id),
        Some(&pub_a),
        &json!({"text": "leak operator message", "author": "Mallory"}),
    )
    .await
    .assert_error(
        404,
        "not_found",
        "operator message into another org's session",
    );

    // A user-target publish without org_id goes to the publisher's own org: u-b of
    // acme, not u-b of globex.
    let own = api
        .publish(
            Some(&pub_a),
            &json!({"target": {"user": "u-b"}, "name": "leak.user.own", "data": {}}),
        )
        .await;
    own.expect(202, "JWT publisher to a user of its own org");

    // Sentinels, then check that they are the first events B's connections see.
    api.publish_ok(&json!({"target": {"session": sb.id}, "name": "sentinel.session", "data": {}}))
        .await;
    api.publish_ok(
        &json!({"target": {"user": "u-b"}, "org_id": "globex", "name": "sentinel.user", "data": {}}),
    )
    .await;
    for (who, client) in [("b1", &mut b1), ("b2", &mut b2)] {
        let mut names = Vec::new();
        while names.len() < 2 {
            let ev = next_event(client).await;
            names.push(ev["name"].as_str().unwrap_or_default().to_string());
        }
        names.sort();
        assert_eq!(
            names,
            ["sentinel.session", "sentinel.user"],
            "{who} must see only the sentinels"
        );
        assert_quiet(client, who).await;
    }
    let events = history(&api, &sb.id).await;
    assert!(
        events.iter().all(|e| !e.to_string().contains("leak")),
        "refused writes landed in the history: {events:?}"
    );
}

/// A user-stream publish (org A, user u1) reaches every connection of u1 in org A, as
/// an `event` on `user:u1`, and neither another user of org A nor u1 of org B.
#[tokio::test]
async fn user_stream_publish_reaches_all_of_the_users_connections_and_nobody_else() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let mut u1a = connect(&gw, &token("u1", "acme", &[])).await;
    let mut u1b = connect(&gw, &token("u1", "acme", &["operator"])).await;
    let mut u2 = connect(&gw, &token("u2", "acme", &[])).await;
    let mut u1_globex = connect(&gw, &token("u1", "globex", &[])).await;

    let reply = api
        .publish_ok(&json!({"target": {"user": "u1"}, "org_id": "acme",
                            "name": "invoice.ready", "data": {"invoice": 7}}))
        .await;
    for client in [&mut u1a, &mut u1b] {
        let ev = next_event(client).await;
        assert_eq!(ev["stream"], "user:u1", "{ev}");
        assert_eq!(ev["name"], "invoice.ready", "{ev}");
        assert_eq!(ev["data"], json!({"invoice": 7}), "{ev}");
        assert_eq!(ev["publisher"], "backend", "{ev}");
        assert!(ev.get("session_id").is_none(), "{ev}");
        if let Some(seq) = reply.get("seq") {
            assert_eq!(&ev["seq"], seq, "{ev}");
        }
    }
    // A JWT publisher of acme reaches acme's u1 only too.
    let jwt_pub = token("svc", "acme", &["publisher"]);
    api.publish(
        Some(&jwt_pub),
        &json!({"target": {"user": "u1"}, "name": "from.jwt", "data": {}}),
    )
    .await
    .expect(202, "JWT publisher to its own org's user");
    assert_eq!(next_event(&mut u1a).await["name"], "from.jwt");
    assert_eq!(next_event(&mut u1b).await["name"], "from.jwt");

    // Without org_id a publisher key's user target is in the default org: not acme's u1.
    api.publish_ok(&json!({"target": {"user": "u1"}, "name": "default.org.u1", "data": {}}))
        .await;
    let mut u1_default = connect(&gw, &token("u1", "default", &[])).await;
    api.publish_ok(&json!({"target": {"user": "u1"}, "name": "default.org.u1", "data": {}}))
        .await;
    assert_eq!(next_event(&mut u1_default).await["name"], "default.org.u1");
    // Any `sub` works as a user id (an email here), shown as is on the socket.
    let mut email = connect(&gw, &token("alice@example.com", "acme", &[])).await;
    api.publish_ok(
        &json!({"target": {"user": "alice@example.com"}, "org_id": "acme",
                            "name": "for.alice", "data": {}}),
    )
    .await;
    let ev = next_event(&mut email).await;
    assert_eq!(ev["stream"], "user:alice@example.com", "{ev}");
    assert_eq!(ev["name"], "for.alice", "{ev}");
    api.publish_ok(
        &json!({"target": {"user": "u1"}, "org_id": "acme", "name": "sentinel", "data": {}}),
    )
    .await;
    for client in [&mut u1a, &mut u1b] {
        let ev = next_event(client).await;
        assert_eq!(
            ev["name"], "sentinel",
            "u1 of acme got another org's or user's event: {ev}"
        );
    }

    // The bystanders' first events are their own sentinels.
    api.publish_ok(
        &json!({"target": {"user": "u2"}, "org_id": "acme", "name": "sentinel", "data": {}}),
    )
    .await;
    api.publish_ok(
        &json!({"target": {"user": "u1"}, "org_id": "globex", "name": "sentinel", "data": {}}),
    )
    .await;
    for (who, client) in [("u2 of acme", &mut u2), ("u1 of globex", &mut u1_globex)] {
        let ev = next_event(client).await;
        assert_eq!(
            ev["name"], "sentinel",
            "{who} got another user's event: {ev}"
        );
        assert_quiet(client, who).await;
    }
}

/// An org-stream publish reaches every connection of the org (several users) as an
/// `event` on `org:<id>`, and no connection of another org.
#[tokio::test]
async fn org_stream_publish_reaches_the_whole_org_and_no_other() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let mut acme = [
        connect(&gw, &token("u1", "acme", &[])).await,
        connect(&gw, &token("u1", "acme", &[])).await,
        connect(&gw, &token("u2", "acme", &["admin"])).await,
    ];
    let mut globex = [
        connect(&gw, &token("u1", "globex", &[])).await,
        connect(&gw, &token("u3", "globex", &[])).await,
    ];
    let mut anon = Client::connect(&gw.ws_url()).await;

    api.publish_ok(
        &json!({"target": {"org": "acme"}, "name": "maintenance", "data": {"at": "22:00"}}),
    )
    .await;
    for client in acme.iter_mut() {
        let ev = next_event(client).await;
        assert_eq!(ev["stream"], "org:acme", "{ev}");
        assert_eq!(ev["name"], "maintenance", "{ev}");
        assert_eq!(ev["data"], json!({"at": "22:00"}), "{ev}");
    }
    // A JWT publisher of acme may target its own org.
    api.publish(
        Some(&token("svc", "acme", &["publisher"])),
        &json!({"target": {"org": "acme"}, "name": "from.jwt", "data": {}}),
    )
    .await
    .expect(202, "JWT publisher to its own org");
    for client in acme.iter_mut() {
        assert_eq!(next_event(client).await["name"], "from.jwt");
    }

    api.publish_ok(&json!({"target": {"org": "globex"}, "name": "sentinel", "data": {}}))
        .await;
    for client in globex.iter_mut() {
        let ev = next_event(client).await;
        assert_eq!(ev["stream"], "org:globex", "{ev}");
        assert_eq!(ev["name"], "sentinel", "another org's event leaked: {ev}");
        assert_quiet(client, "a connection of globex").await;
    }
    assert_quiet(&mut anon, "an anonymous connection of the default org").await;
}
