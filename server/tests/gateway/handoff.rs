//! Human handoff (docs/protocol.md §3.14): a customer or the assistant asks for a
//! person, an operator claims the conversation (one at a time), the AI stays silent
//! while a person is asked for or holds it, and the operator gives it back; the inbox
//! follows live on the staff stream and over `/v1`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::http::{ADMIN_SECRET, Api, keyed_gateway};
use crate::support::jwt::{Claims, connect};
use crate::support::{Client, ty};

fn customer(sub: &str) -> String {
    Claims::user(sub, "acme").hs256()
}

fn operator(sub: &str, name: &str) -> String {
    Claims::user(sub, "acme")
        .roles(&["operator"])
        .set("name", json!(name))
        .hs256()
}

/// The next `inbox.changed` on the staff stream for `session`.
async fn inbox_change(staff: &mut Client, session: &str) -> Value {
    let frames = staff
        .collect_until(|f| ty(f) == "inbox.changed" && f["session"]["session_id"] == session)
        .await;
    frames.last().unwrap().clone()
}

async fn handoff_request(client: &mut Client, session: &str, reason: &str) -> Value {
    client
        .request_ok(
            "handoff.request",
            json!({"session_id": session, "reason": reason}),
            "handoff.updated",
        )
        .await
}

/// `handoff.claim` or `handoff.release` (`action`) of `session`, which must succeed.
async fn handoff_act(client: &mut Client, action: &str, session: &str) -> Value {
    client
        .request_ok(action, json!({"session_id": session}), "handoff.updated")
        .await
}

/// The whole path: the customer asks, the staff stream and the inbox show it, one
/// operator claims (a second is refused), the customer's messages get no AI answer
/// while a person holds it, the operator gives it back, and the AI answers again.
#[tokio::test]
async fn a_customer_asks_for_a_person_and_an_operator_takes_over_and_gives_back() {
    let gw = keyed_gateway(&[]);
    let mut ann = connect(&gw, &customer("ann")).await;
    let s = ann.create_session().await;
    let mut dana = connect(&gw, &operator("olga", "Dana")).await;
    let mut otto = connect(&gw, &operator("otto", "Otto")).await;

    let updated = handoff_request(&mut ann, &s.id, "I want a refund").await;
    assert_eq!(updated["handoff"]["state"], "waiting", "{updated}");
    let event = ann.next_of_type("handoff").await;
    assert_eq!(event["state"], "waiting");
    assert_eq!(event["by"], "customer");
    assert_eq!(event["reason"], "I want a refund");
    assert_eq!(
        event["notice"],
        "Someone from the team will be with you shortly."
    );
    let change = inbox_change(&mut dana, &s.id).await;
    assert_eq!(change["stream"], "staff:acme", "{change}");
    assert_eq!(change["handoff"]["state"], "waiting");
    let inbox = dana
        .request_ok("inbox.list", json!({}), "inbox.listed")
        .await;
    assert_eq!(inbox["sessions"][0]["session"]["session_id"], s.id.as_str());
    assert_eq!(inbox["sessions"][0]["handoff"]["reason"], "I want a refund");
    // Asking again changes nothing.
    let again = handoff_request(&mut ann, &s.id, "still there?").await;
    assert_eq!(again["handoff"]["reason"], "I want a refund");

    dana.join(&s.id, Some(0), None).await;
    let claimed = handoff_act(&mut dana, "handoff.claim", &s.id).await;
    assert_eq!(claimed["handoff"]["state"], "human");
    assert_eq!(
        claimed["handoff"]["operator"],
        json!({"user_id": "olga", "name": "Dana"})
    );
    let joined = ann
        .collect_until(|f| ty(f) == "handoff" && f["state"] == "human")
        .await;
    assert_eq!(joined.last().unwrap()["operator"]["name"], "Dana");
    otto.join(&s.id, None, None).await;
    let refused = otto
        .request("handoff.claim", json!({"session_id": s.id}))
        .await;
    assert_eq!(refused["code"], "conflict", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("Dana"),
        "{refused}"
    );
    let refused = otto
        .request("handoff.release", json!({"session_id": s.id}))
        .await;
    assert_eq!(refused["code"], "forbidden", "{refused}");

    // While Dana holds it, the customer's message is for her.
    let unanswered = ann.send_message(&s.id, "Are you a real person?").await;
    let reply = dana.send_message(&s.id, "Yes, I am Dana.").await;
    ann.collect_until(|f| f["message_id"] == reply["message_id"])
        .await;

    let released = handoff_act(&mut dana, "handoff.release", &s.id).await;
    assert_eq!(released["handoff"]["state"], "assistant");
    let change = dana
        .collect_until(|f| ty(f) == "inbox.changed" && f["handoff"]["state"] == "assistant")
        .await;
    assert!(!change.is_empty());
    let inbox = dana
        .request_ok("inbox.list", json!({}), "inbox.listed")
        .await;
    assert_eq!(inbox["sessions"], json!([]));

    let asked = ann
        .send_message(&s.id, "What are your opening hours?")
        .await;
    let frames = ann.collect_until(|f| ty(f) == "turn.end").await;
    let starts: Vec<&Value> = frames.iter().filter(|f| ty(f) == "turn.start").collect();
    assert_eq!(starts.len(), 1, "{frames:?}");
    assert_eq!(starts[0]["reply_to"], asked["message_id"]);
    assert_ne!(starts[0]["reply_to"], unanswered["message_id"]);
}

/// The offline agent asks for a person through the built-in `handoff` tool when the
/// customer asks for one, and tells them so; the next message gets no AI answer.
#[tokio::test]
async fn the_assistant_asks_for_a_person_when_the_customer_wants_one() {
    let gw = keyed_gateway(&[]);
    let mut ann = connect(&gw, &customer("ann")).await;
    let s = ann.create_session().await;
    let mut dana = connect(&gw, &operator("olga", "Dana")).await;
    ann.send_message(&s.id, "Can I talk to a human, please?")
        .await;
    let frames = ann.collect_until(|f| ty(f) == "turn.end").await;
    let request = frames.iter().find(|f| ty(f) == "tool.request").unwrap();
    assert_eq!(request["tool"], "handoff", "{request}");
    assert_eq!(request["requires_approval"], false);
    let handoff = frames.iter().find(|f| ty(f) == "handoff").unwrap();
    assert_eq!(handoff["state"], "waiting");
    assert_eq!(handoff["by"], "assistant");
    let end = frames.last().unwrap();
    assert_eq!(end["status"], "completed", "{end}");
    assert!(
        end["text"]
            .as_str()
            .unwrap()
            .contains("will be with you shortly"),
        "{end}"
    );
    let change = inbox_change(&mut dana, &s.id).await;
    assert_eq!(change["handoff"]["state"], "waiting");
    assert_eq!(
        change["handoff"]["reason"],
        "Can I talk to a human, please?"
    );
}

/// An org that asks for a person when the knowledge base has nothing: a question the
/// documents answer gets an answer; one they do not makes the assistant ask for a
/// person, and the customer reads the org's own waiting message.
#[tokio::test]
async fn the_assistant_asks_for_a_person_when_the_knowledge_base_has_nothing() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    api.ingest(&json!({
        "doc_id": "hours", "org_id": "acme", "title": "Opening hours",
        "text": "The zebracorn shop opens at nine and closes at five.", "acl": {"public": true}
    }))
    .await;
    let settings = json!({"enabled": true,
        "waiting_message": "A person will answer within the hour.", "when_unanswered": true});
    let reply = api
        .call(
            Method::PUT,
            "/v1/admin/handoff?org_id=acme",
            Some(ADMIN_SECRET),
            Some(&settings),
        )
        .await;
    assert_eq!(reply.expect(200, "set")["when_unanswered"], true);

    let mut ann = connect(&gw, &customer("ann")).await;
    let s = ann.create_session().await;
    ann.send_message(&s.id, "When does the zebracorn shop open?")
        .await;
    let answered = ann.collect_until(|f| ty(f) == "turn.end").await;
    assert!(
        answered.iter().all(|f| ty(f) != "tool.request"),
        "{answered:?}"
    );
    assert!(
        answered.last().unwrap()["text"]
            .as_str()
            .unwrap()
            .contains("nine")
    );

    ann.send_message(&s.id, "Can you repaint my hovercraft?")
        .await;
    let frames = ann.collect_until(|f| ty(f) == "turn.end").await;
    let request = frames.iter().find(|f| ty(f) == "tool.request").unwrap();
    assert_eq!(request["tool"], "handoff", "{request}");
    let handoff = frames.iter().find(|f| ty(f) == "handoff").unwrap();
    assert_eq!(handoff["by"], "assistant");
    assert_eq!(handoff["notice"], "A person will answer within the hour.");
}

/// An org that turned handoff off: `handoff.request` is refused, and the assistant
/// answers a request for a person itself. Only admins change the settings.
#[tokio::test]
async fn an_org_can_turn_handoff_off() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let off = json!({"enabled": false, "waiting_message": "x", "when_unanswered": false});
    let reply = api
        .call(
            Method::PUT,
            "/v1/admin/handoff",
            Some(&operator("olga", "Dana")),
            Some(&off),
        )
        .await;
    reply.assert_error(403, "forbidden", "an operator sets handoff settings");
    let reply = api
        .call(
            Method::PUT,
            "/v1/admin/handoff?org_id=acme",
            Some(ADMIN_SECRET),
            Some(&off),
        )
        .await;
    assert_eq!(reply.expect(200, "set")["enabled"], false);

    let mut ann = connect(&gw, &customer("ann")).await;
    let s = ann.create_session().await;
    let refused = ann
        .request("handoff.request", json!({"session_id": s.id}))
        .await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    ann.send_message(&s.id, "Can I talk to a human, please?")
        .await;
    let frames = ann.collect_until(|f| ty(f) == "turn.end").await;
    assert!(frames.iter().all(|f| ty(f) != "tool.request"), "{frames:?}");

    let reply = api
        .call(
            Method::DELETE,
            "/v1/admin/handoff?org_id=acme",
            Some(ADMIN_SECRET),
            None,
        )
        .await;
    assert_eq!(reply.expect(200, "cleared")["enabled"], true);
    let asked = handoff_request(&mut ann, &s.id, "now?").await;
    assert_eq!(asked["handoff"]["state"], "waiting");
}

/// Who may do what: a customer cannot claim or read the inbox; staff of another org
/// see nothing; over HTTP an API key cannot act as a person, and the owner and staff
/// can.
#[tokio::test]
async fn only_staff_of_the_org_claim_and_read_the_inbox() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let mut ann = connect(&gw, &customer("ann")).await;
    let s = ann.create_session().await;
    let refused = ann
        .request("handoff.claim", json!({"session_id": s.id}))
        .await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let refused = ann.request("inbox.list", json!({})).await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let mut stranger = connect(&gw, &customer("bob")).await;
    let refused = stranger
        .request("handoff.request", json!({"session_id": s.id}))
        .await;
    assert_eq!(refused["code"], "forbidden", "join first: {refused}");

    let path = format!("/v1/sessions/{}/handoff/request", s.id);
    let reply = api
        .call(Method::POST, &path, Some(ADMIN_SECRET), Some(&json!({})))
        .await;
    reply.assert_error(403, "forbidden", "an API key asks for a person");
    let globex = Claims::user("eve", "globex")
        .roles(&["operator", "admin"])
        .hs256();
    let claim = format!("/v1/sessions/{}/handoff/claim", s.id);
    let reply = api.call(Method::POST, &claim, Some(&globex), None).await;
    reply.assert_error(404, "not_found", "another org's operator claims");
    let reply = api
        .call(Method::GET, "/v1/inbox", Some(&globex), None)
        .await;
    assert_eq!(reply.expect(200, "globex inbox")["sessions"], json!([]));

    let reply = api
        .call(
            Method::POST,
            &path,
            Some(&customer("ann")),
            Some(&json!({"reason": "help"})),
        )
        .await;
    assert_eq!(reply.expect(200, "owner asks")["state"], "waiting");
    let dana = operator("olga", "Dana");
    let reply = api.call(Method::GET, "/v1/inbox", Some(&dana), None).await;
    let inbox = reply.expect(200, "inbox");
    assert_eq!(inbox["sessions"][0]["session"]["session_id"], s.id.as_str());
    let reply = api.call(Method::POST, &claim, Some(&dana), None).await;
    assert_eq!(reply.expect(200, "claim")["state"], "human");
    let reply = api
        .call(Method::POST, &claim, Some(&operator("otto", "Otto")), None)
        .await;
    reply.assert_error(409, "conflict", "a second claim");
}

/// A visitor without an account (the widget's default) is answered by a person too:
/// staff of the org see the anonymous conversation in the inbox, join it without its
/// key, claim it and speak in it, over the WebSocket and over HTTP; everyone else
/// still needs the key.
#[tokio::test]
async fn staff_answer_an_anonymous_visitor_without_the_session_key() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let mut visitor = Client::connect(&gw.ws_url()).await;
    let s = visitor.create_session().await;
    assert!(s.key.is_some(), "an anonymous session has a key");
    let staff = |sub: &str, name: &str| {
        Claims::user(sub, "default")
            .roles(&["operator"])
            .set("name", json!(name))
            .hs256()
    };
    let mut dana = connect(&gw, &staff("olga", "Dana")).await;

    handoff_request(&mut visitor, &s.id, "a person, please").await;
    let change = inbox_change(&mut dana, &s.id).await;
    assert_eq!(change["handoff"]["state"], "waiting", "{change}");
    dana.join(&s.id, Some(0), None).await;
    let claimed = handoff_act(&mut dana, "handoff.claim", &s.id).await;
    assert_eq!(claimed["handoff"]["state"], "human");
    let joined = visitor
        .collect_until(|f| ty(f) == "handoff" && f["state"] == "human")
        .await;
    assert_eq!(joined.last().unwrap()["operator"]["name"], "Dana");
    let reply = dana.send_message(&s.id, "Hello, I am Dana.").await;
    let seen = visitor
        .collect_until(|f| f["message_id"] == reply["message_id"])
        .await;
    let message = seen.last().unwrap();
    assert_eq!(message["role"], "operator", "{message}");
    assert_eq!(message["author"], "Dana", "{message}");

    // Over HTTP, with the staff JWT and no key: give it back, and claim it again.
    let release = format!("/v1/sessions/{}/handoff/release", s.id);
    let reply = api
        .call(Method::POST, &release, Some(&staff("olga", "Dana")), None)
        .await;
    assert_eq!(reply.expect(200, "release")["state"], "assistant");
    let claim = format!("/v1/sessions/{}/handoff/claim", s.id);
    let reply = api
        .call(Method::POST, &claim, Some(&staff("otto", "Otto")), None)
        .await;
    assert_eq!(reply.expect(200, "claim over HTTP")["state"], "human");

    // The key still keeps out other visitors, signed-in users without a staff role,
    // and staff of another org.
    let mut other = Client::connect(&gw.ws_url()).await;
    assert_eq!(
        other.join_reply(&s.id, None, None).await["code"],
        "not_found"
    );
    let mut user = connect(&gw, &Claims::user("u2", "default").hs256()).await;
    assert_eq!(
        user.join_reply(&s.id, None, None).await["code"],
        "not_found"
    );
    let foreign = Claims::user("eve", "globex").roles(&["operator"]).hs256();
    let reply = api.call(Method::POST, &claim, Some(&foreign), None).await;
    reply.assert_error(404, "not_found", "another org's operator claims");
}

/// Two replicas on one Redis and one PostgreSQL: the customer on A asks for a person,
/// staff on B see it live; two operators (one per replica) claim at once and exactly
/// one holds it; the customer's next message on A gets no AI answer until the holder
/// on B gives the conversation back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_replicas_one_operator_holds_it_and_the_ai_stays_silent() {
    let redis = switchboard_testkit::RedisServer::start();
    let pg = switchboard_testkit::PostgresServer::start();
    let start = |server_id: &str| {
        let (backplane, store) = (redis.url(), pg.url());
        crate::support::Gateway::start(&[
            "--backplane",
            backplane.as_str(),
            "--store",
            store.as_str(),
            "--server-id",
            server_id,
            crate::support::jwt::HS_ARGS[0],
            crate::support::jwt::HS_ARGS[1],
            "--offline-agent-delay",
            "1ms",
        ])
    };
    let (a, b) = (start("replica-a"), start("replica-b"));
    let mut ann = connect(&a, &customer("ann")).await;
    let s = ann.create_session().await;
    let mut dana = connect(&b, &operator("olga", "Dana")).await;
    let mut otto = connect(&a, &operator("otto", "Otto")).await;
    dana.join(&s.id, None, None).await;
    otto.join(&s.id, None, None).await;

    handoff_request(&mut ann, &s.id, "a person please").await;
    let change = inbox_change(&mut dana, &s.id).await;
    assert_eq!(change["handoff"]["state"], "waiting");

    let claim = json!({"session_id": s.id});
    let (first, second) = tokio::join!(
        dana.request("handoff.claim", claim.clone()),
        otto.request("handoff.claim", claim.clone())
    );
    let won: Vec<&Value> = [&first, &second]
        .into_iter()
        .filter(|r| ty(r) == "handoff.updated")
        .collect();
    assert_eq!(won.len(), 1, "{first} / {second}");
    let lost = if ty(&first) == "handoff.updated" {
        &second
    } else {
        &first
    };
    assert_eq!(lost["code"], "conflict", "{lost}");
    let (holder, holder_id) = if ty(&first) == "handoff.updated" {
        (&mut dana, "olga")
    } else {
        (&mut otto, "otto")
    };
    assert_eq!(won[0]["handoff"]["operator"]["user_id"], holder_id);

    let unanswered = ann.send_message(&s.id, "Hello?").await;
    let reply = holder.send_message(&s.id, "Hello, I am here.").await;
    ann.collect_until(|f| f["message_id"] == reply["message_id"])
        .await;
    handoff_act(holder, "handoff.release", &s.id).await;
    let asked = ann
        .send_message(&s.id, "What are your opening hours?")
        .await;
    let frames = ann.collect_until(|f| ty(f) == "turn.end").await;
    let starts: Vec<&Value> = frames.iter().filter(|f| ty(f) == "turn.start").collect();
    assert_eq!(starts.len(), 1, "{frames:?}");
    assert_eq!(starts[0]["reply_to"], asked["message_id"]);
    assert_ne!(starts[0]["reply_to"], unanswered["message_id"]);
}
