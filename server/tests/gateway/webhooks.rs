//! Outgoing webhooks from outside (docs/webhooks.md): an admin registers an endpoint on
//! a receiver the test runs, the receiver checks every signature itself, answers 500
//! twice and sees the same delivery a third time; registration is guarded (origins,
//! roles, orgs, the per-org cap); `message.created` goes only to endpoints that asked.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_testkit::{eventually, free_port};

use crate::support::http::{ADMIN_SECRET, Api, PUBLISHER_SECRET, keyed_gateway};
use crate::support::jwt::{connect, token};
use crate::support::webhook_receiver::{Hit, WebhookReceiver};
use crate::support::{Gateway, ty};

/// Long enough for a delivery retried after 1 s and 2 s.
const DELIVERED_WITHIN: Duration = Duration::from_secs(20);

fn admin(org: &str) -> String {
    token("ada", org, &["admin"])
}

fn gateway_for(receiver: &WebhookReceiver, extra: &[&str]) -> Gateway {
    let origin = receiver.origin();
    let mut args = vec!["--webhook-endpoint-origins", origin.as_str()];
    args.extend_from_slice(extra);
    keyed_gateway(&args)
}

/// Register `url` for `events` as acme's admin; panics unless 201. The created body.
async fn register(api: &Api, url: &str, events: &[&str]) -> Value {
    let reply = api
        .post(
            "/v1/admin/webhooks",
            Some(&admin("acme")),
            &json!({"url": url, "events": events}),
        )
        .await;
    reply.expect(201, &format!("register {url}")).clone()
}

fn of_type<'a>(hits: &'a [Hit], kind: &str) -> Vec<&'a Hit> {
    hits.iter().filter(|h| h.body["type"] == kind).collect()
}

#[tokio::test]
async fn a_receiver_answering_500_twice_gets_the_same_signed_delivery_three_times() {
    let receiver = WebhookReceiver::start(&[500, 500]).await;
    let gw = gateway_for(&receiver, &[]);
    let api = Api::new(&gw);
    let created = register(&api, &receiver.url("hook"), &["conversation.created"]).await;
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{created}");
    assert_eq!(created["url"], receiver.url("hook"));
    assert_eq!(created["org_id"], "acme");
    assert_eq!(created["events"], json!(["conversation.created"]));
    assert!(created["created_at"].as_u64().is_some(), "{created}");
    let webhook_id = created["webhook_id"].as_str().unwrap().to_string();
    receiver.trust(secret);

    let listed = api.get("/v1/admin/webhooks", Some(&admin("acme"))).await;
    let listed = listed.expect(200, "list").clone();
    assert_eq!(listed["webhooks"][0]["webhook_id"], webhook_id.as_str());
    assert!(
        listed["webhooks"][0].get("secret").is_none(),
        "a listing never shows the secret: {listed}"
    );

    let mut customer = connect(&gw, &token("u1", "acme", &[])).await;
    let session = customer.create_session().await;

    let hits = receiver
        .wait_for("hook", 3, DELIVERED_WITHIN, |_| true)
        .await;
    assert_eq!(hits.len(), 3, "{hits:?}");
    let answered: Vec<u16> = hits.iter().map(|h| h.answered).collect();
    assert_eq!(answered, [500, 500, 200]);
    for hit in &hits {
        assert!(hit.signature_valid, "a signature did not verify: {hit:?}");
        assert_eq!(
            hit.id, hits[0].id,
            "every attempt carries the delivery's id"
        );
        assert_eq!(hit.body, hits[0].body, "every attempt sends the same body");
    }
    assert!(hits[0].timestamp <= hits[2].timestamp);
    let body = &hits[0].body;
    assert_eq!(body["id"], hits[0].id.as_str());
    assert_eq!(body["type"], "conversation.created");
    assert_eq!(body["org_id"], "acme");
    assert_eq!(body["data"]["session_id"], session.id.as_str());
    assert_eq!(body["data"]["owner"], "u1");
    assert!(body["created_at"].as_u64().is_some(), "{body}");

    let path = format!("/v1/admin/webhooks/{webhook_id}/deliveries");
    let log = eventually(DELIVERED_WITHIN, "the log shows the delivery", || async {
        let reply = api.get(&path, Some(&admin("acme"))).await;
        let log = reply.expect(200, "delivery log").clone();
        if log["deliveries"][0]["outcome"] == "delivered" {
            Ok(log)
        } else {
            Err(log.to_string())
        }
    })
    .await;
    let delivery = &log["deliveries"][0];
    assert_eq!(delivery["id"], hits[0].id.as_str());
    assert_eq!(delivery["event_type"], "conversation.created");
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["last_status"], 200);
    assert_eq!(delivery["last_error"], Value::Null);
    assert_eq!(log["deliveries"].as_array().unwrap().len(), 1);

    let metrics = gw.metrics().await;
    let delivered =
        crate::support::metric_sum(&metrics, "switchboard_webhook_deliveries_total", None);
    assert_eq!(delivered, Some(1.0), "{metrics}");
    let attempts = crate::support::metric_sum(
        &metrics,
        "switchboard_webhook_attempts_total",
        Some("result=\"retryable\""),
    );
    assert_eq!(attempts, Some(2.0));
}

#[tokio::test]
async fn registration_is_refused_off_the_allowed_origins_and_to_non_admins() {
    let receiver = WebhookReceiver::start(&[]).await;
    let gw = gateway_for(&receiver, &[]);
    let api = Api::new(&gw);
    let acme = admin("acme");
    let body = |url: &str| json!({"url": url, "events": ["turn.failed"]});

    let other_port = format!("http://127.0.0.1:{}/hook", free_port());
    for url in [
        other_port.as_str(),
        "http://169.254.169.254/latest/meta-data",
        "https://hooks.example.com/in",
    ] {
        let reply = api
            .post("/v1/admin/webhooks", Some(&acme), &body(url))
            .await;
        reply.assert_error(403, "forbidden", url);
        assert!(
            reply.text.contains("--webhook-endpoint-origins"),
            "the answer says how to allow it: {}",
            reply.text
        );
    }
    let unknown = json!({"url": receiver.url("h"), "events": ["message.sent"]});
    let reply = api.post("/v1/admin/webhooks", Some(&acme), &unknown).await;
    reply.assert_error(400, "bad_request", "an unknown event type");
    assert!(reply.text.contains("message.created"), "{}", reply.text);

    let ok = body(&receiver.url("h"));
    for (who, credential) in [
        ("a customer", token("u1", "acme", &[])),
        ("an operator", token("op", "acme", &["operator"])),
        ("a publisher key", PUBLISHER_SECRET.to_string()),
    ] {
        let reply = api.post("/v1/admin/webhooks", Some(&credential), &ok).await;
        reply.assert_error(403, "forbidden", who);
        let reply = api.get("/v1/admin/webhooks", Some(&credential)).await;
        reply.assert_error(403, "forbidden", who);
    }
    let reply = api.post("/v1/admin/webhooks", None, &ok).await;
    reply.assert_error(401, "unauthorized", "no credentials");
    let reply = api
        .post("/v1/admin/webhooks", Some(ADMIN_SECRET), &ok)
        .await;
    reply.assert_error(400, "bad_request", "an admin key without org_id");
    let with_org = json!({"url": receiver.url("h"), "events": ["turn.failed"], "org_id": "acme"});
    api.post("/v1/admin/webhooks", Some(ADMIN_SECRET), &with_org)
        .await
        .expect(201, "an admin key naming the org");
    assert!(api.get("/v1/admin/webhooks", Some(&acme)).await.json["webhooks"].is_array());
}

#[tokio::test]
async fn another_orgs_admin_cannot_see_or_delete_an_endpoint() {
    let receiver = WebhookReceiver::start(&[]).await;
    let gw = gateway_for(&receiver, &[]);
    let api = Api::new(&gw);
    let created = register(&api, &receiver.url("acme"), &["turn.failed"]).await;
    let id = created["webhook_id"].as_str().unwrap();
    let globex = admin("globex");

    let theirs = api.get("/v1/admin/webhooks", Some(&globex)).await;
    assert_eq!(
        theirs.expect(200, "globex lists its own")["webhooks"],
        json!([])
    );
    let reply = api
        .get("/v1/admin/webhooks?org_id=acme", Some(&globex))
        .await;
    reply.assert_error(403, "forbidden", "listing another org");
    let path = format!("/v1/admin/webhooks/{id}");
    api.delete(&path, Some(&globex)).await.assert_error(
        404,
        "not_found",
        "deleting another org's endpoint",
    );
    api.get(&format!("{path}/deliveries"), Some(&globex))
        .await
        .assert_error(404, "not_found", "another org's delivery log");
    api.delete(&format!("{path}?org_id=acme"), Some(&globex))
        .await
        .assert_error(403, "forbidden", "naming another org");

    let acme = admin("acme");
    let listed = api.get("/v1/admin/webhooks", Some(&acme)).await;
    assert_eq!(listed.json["webhooks"][0]["webhook_id"], id, "still there");
    let deleted = api.delete(&path, Some(&acme)).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    api.delete(&path, Some(&acme))
        .await
        .assert_error(404, "not_found", "deleted twice");
    let listed = api.get("/v1/admin/webhooks", Some(&acme)).await;
    assert_eq!(listed.json["webhooks"], json!([]));
}

#[tokio::test]
async fn an_org_registers_at_most_ten_endpoints() {
    let receiver = WebhookReceiver::start(&[]).await;
    let gw = gateway_for(&receiver, &[]);
    let api = Api::new(&gw);
    for i in 0..10 {
        register(&api, &receiver.url(&format!("h{i}")), &["turn.failed"]).await;
    }
    let reply = api
        .post(
            "/v1/admin/webhooks",
            Some(&admin("acme")),
            &json!({"url": receiver.url("h10"), "events": ["turn.failed"]}),
        )
        .await;
    reply.assert_error(409, "conflict", "an eleventh endpoint");
    let elsewhere = api
        .post(
            "/v1/admin/webhooks",
            Some(&admin("globex")),
            &json!({"url": receiver.url("g"), "events": ["turn.failed"]}),
        )
        .await;
    elsewhere.expect(201, "another org has its own ten");
}

#[tokio::test]
async fn messages_go_only_to_endpoints_that_opted_in() {
    let receiver = WebhookReceiver::start(&[]).await;
    let gw = gateway_for(&receiver, &[]);
    let api = Api::new(&gw);
    let all = register(&api, &receiver.url("all"), &["message.created"]).await;
    let few = register(
        &api,
        &receiver.url("few"),
        &["conversation.created", "turn.failed"],
    )
    .await;
    receiver.trust(all["secret"].as_str().unwrap());
    receiver.trust(few["secret"].as_str().unwrap());

    let mut customer = connect(&gw, &token("u1", "acme", &[])).await;
    let session = customer.create_session().await;
    customer
        .send_message(&session.id, "How do refunds work?")
        .await;
    customer.collect_until(|f| ty(f) == "turn.end").await;

    let messages = receiver
        .wait_for("all", 2, DELIVERED_WITHIN, |h| {
            h.body["type"] == "message.created"
        })
        .await;
    let user = &messages[0].body["data"];
    assert_eq!(user["session_id"], session.id.as_str());
    assert_eq!(user["event"]["type"], "message");
    assert_eq!(user["event"]["role"], "user");
    assert_eq!(user["event"]["text"], "How do refunds work?");
    assert!(user["event"]["seq"].as_u64().is_some(), "{user}");
    assert_eq!(messages[1].body["data"]["event"]["role"], "assistant");
    assert!(messages.iter().all(|h| h.signature_valid));

    // A second session is a sentinel: once `few` has its creation, every earlier
    // event was dispatched to it too.
    let second = customer.create_session().await;
    let few_hits = receiver
        .wait_for("few", 2, DELIVERED_WITHIN, |h| {
            h.body["type"] == "conversation.created"
        })
        .await;
    assert_eq!(few_hits[1].body["data"]["session_id"], second.id.as_str());
    let few_hits = receiver.hits_on("few");
    assert!(
        of_type(&few_hits, "message.created").is_empty(),
        "an endpoint that did not opt in got messages: {few_hits:?}"
    );
    assert!(of_type(&receiver.hits_on("all"), "conversation.created").is_empty());
}

#[tokio::test]
async fn a_failed_turn_reaches_turn_failed_subscribers() {
    let receiver = WebhookReceiver::start(&[]).await;
    // A model server that is not there: every turn fails.
    let upstream = format!("http://127.0.0.1:{}/v1", free_port());
    let gw = gateway_for(
        &receiver,
        &[
            "--model-provider",
            "openai",
            "--model-base-url",
            &upstream,
            "--model",
            "test-model",
            "--model-retries",
            "0",
        ],
    );
    let api = Api::new(&gw);
    let created = register(&api, &receiver.url("failures"), &["turn.failed"]).await;
    receiver.trust(created["secret"].as_str().unwrap());

    let mut customer = connect(&gw, &token("u1", "acme", &[])).await;
    let session = customer.create_session().await;
    customer.send_message(&session.id, "Anyone there?").await;
    let frames = customer.collect_until(|f| ty(f) == "turn.end").await;
    let end = frames.iter().find(|f| ty(f) == "turn.end").unwrap();
    assert_eq!(end["status"], "failed", "{end}");

    let hits = receiver
        .wait_for("failures", 1, DELIVERED_WITHIN, |_| true)
        .await;
    assert!(hits[0].signature_valid);
    assert_eq!(hits[0].body["type"], "turn.failed");
    let data = &hits[0].body["data"];
    assert_eq!(data["session_id"], session.id.as_str());
    assert_eq!(data["event"]["type"], "turn.end");
    assert_eq!(data["event"]["status"], "failed");
    assert_eq!(data["event"]["turn_id"], end["turn_id"]);
}

/// A helpdesk learns that a conversation needs someone, and that someone took it:
/// `handoff.requested` when the customer asks for a person, `handoff.claimed` when an
/// operator claims it, both signed, each carrying the `handoff` event.
#[tokio::test]
async fn a_helpdesk_hears_of_handoff_requests_and_claims() {
    let receiver = WebhookReceiver::start(&[]).await;
    let gw = gateway_for(&receiver, &[]);
    let api = Api::new(&gw);
    let desk = register(
        &api,
        &receiver.url("desk"),
        &["handoff.requested", "handoff.claimed"],
    )
    .await;
    receiver.trust(desk["secret"].as_str().unwrap());

    let mut customer = connect(&gw, &token("u1", "acme", &[])).await;
    let session = customer.create_session().await;
    customer
        .request_ok(
            "handoff.request",
            json!({"session_id": session.id, "reason": "refund"}),
            "handoff.updated",
        )
        .await;
    let mut operator = connect(&gw, &token("olga", "acme", &["operator"])).await;
    operator.join(&session.id, None, None).await;
    operator
        .request_ok(
            "handoff.claim",
            json!({"session_id": session.id}),
            "handoff.updated",
        )
        .await;

    let hits = receiver
        .wait_for("desk", 2, DELIVERED_WITHIN, |h| {
            h.body["type"] == "handoff.requested" || h.body["type"] == "handoff.claimed"
        })
        .await;
    assert_eq!(hits[0].body["type"], "handoff.requested");
    assert_eq!(hits[0].body["data"]["session_id"], session.id.as_str());
    assert_eq!(hits[0].body["data"]["event"]["reason"], "refund");
    assert_eq!(hits[1].body["type"], "handoff.claimed");
    assert_eq!(hits[1].body["data"]["event"]["operator"]["user_id"], "olga");
    assert!(hits.iter().all(|h| h.signature_valid));
}
