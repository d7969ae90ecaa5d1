//! Named assistants: an org defines several, a session picks one at creation and keeps
//! it; its turns use the assistant's model, prompt and documents (never widening who
//! may read what), and its replies carry its name. Against a local OpenAI-compatible
//! upstream, so what reaches the model is checked as sent.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::http::{ADMIN_SECRET, Api};
use crate::support::jwt::{Claims, connect};
use crate::support::upstream::{Reply, Upstream, gateway_on};
use crate::support::{Client, is_assistant_message, ty};

const BILLING_TEXT: &str = "Zebracorn invoices are sent on the first of the month.";
const HR_TEXT: &str = "Zebracorn leave requests go to the people team.";
const BILLING_SECRET: &str = "Zebracorn refund override code 515151.";

fn token(sub: &str, org: &str, groups: &[&str], roles: &[&str]) -> String {
    Claims::user(sub, org).groups(groups).roles(roles).hs256()
}

async fn put_assistant(
    api: &Api,
    credential: &str,
    path: &str,
    spec: &Value,
) -> crate::support::http::Reply {
    api.call(Method::PUT, path, Some(credential), Some(spec))
        .await
}

/// Send `text` and read frames until the assistant's message that ends the turn.
async fn ask(client: &mut Client, session: &str, text: &str) -> Vec<Value> {
    client.send_message(session, text).await;
    client.collect_until(is_assistant_message).await
}

fn first<'a>(frames: &'a [Value], frame_type: &str) -> &'a Value {
    frames
        .iter()
        .find(|f| ty(f) == frame_type)
        .unwrap_or_else(|| panic!("no {frame_type} among {frames:?}"))
}

fn cited(end: &Value) -> Vec<String> {
    let mut ids: Vec<String> = end["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["doc_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// A session created with the `billing` assistant is answered with its model, its
/// system prompt and only its documents — of those, only what the asker may read —
/// and every frame names it; a session without one keeps today's behaviour; a rejoin
/// still names it.
#[tokio::test]
async fn a_session_talks_to_the_assistant_it_was_created_with() {
    let upstream = Upstream::start().await;
    let gw = gateway_on(&upstream, &[]);
    let api = Api::new(&gw);
    for (doc_id, text, acl) in [
        ("billing:invoices", BILLING_TEXT, json!({"public": true})),
        (
            "billing:overrides",
            BILLING_SECRET,
            json!({"groups": ["finance"]}),
        ),
        ("hr:leave", HR_TEXT, json!({"public": true})),
    ] {
        api.ingest(
            &json!({"doc_id": doc_id, "org_id": "acme", "title": doc_id, "text": text, "acl": acl}),
        )
        .await;
    }
    let spec = json!({
        "display_name": "Billing",
        "settings": {"model": "billing-model", "system_prompt": "You are the Billing Bot of Acme."},
        "documents": ["billing:"]
    });
    let stored = put_assistant(
        &api,
        ADMIN_SECRET,
        "/v1/admin/assistants/billing?org_id=acme",
        &spec,
    )
    .await;
    let stored = stored.expect(200, "put billing");
    assert_eq!(stored["name"], "billing");
    assert_eq!(stored["org_id"], "acme");
    assert_eq!(stored["documents"], json!(["billing:"]));

    let mut customer = connect(&gw, &token("cora", "acme", &["support"], &[])).await;
    let created = customer
        .request_ok(
            "session.create",
            json!({"assistant": "billing"}),
            "session.created",
        )
        .await;
    assert_eq!(created["assistant"], "billing", "{created}");
    let session = created["session_id"].as_str().unwrap().to_string();

    upstream.push(Reply::text(&["On the ", "first."]));
    let frames = ask(&mut customer, &session, "When are zebracorn invoices sent?").await;
    assert_eq!(first(&frames, "turn.start")["assistant"], "billing");
    let end = first(&frames, "turn.end");
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(end["assistant"], "billing");
    assert_eq!(
        cited(end),
        vec!["billing:invoices"],
        "only its documents the asker may read"
    );
    let answer = frames.last().unwrap();
    assert_eq!(answer["author"], "Billing");
    let request = &upstream.requests()[0];
    assert_eq!(request.body["model"], "billing-model");
    let prompt = request.body["messages"].to_string();
    assert!(
        prompt.contains("You are the Billing Bot of Acme."),
        "{prompt}"
    );
    assert!(prompt.contains(BILLING_TEXT), "{prompt}");
    for outside in [HR_TEXT, BILLING_SECRET] {
        assert!(
            !prompt.contains(outside),
            "{outside} reached the prompt: {prompt}"
        );
    }

    // The default assistant: the gateway's model, every document the asker may read,
    // no name on any frame.
    let plain = customer.create_session().await;
    upstream.push(Reply::text(&["Both."]));
    let frames = ask(&mut customer, &plain.id, "Zebracorn invoices and leave?").await;
    assert!(first(&frames, "turn.start").get("assistant").is_none());
    let end = first(&frames, "turn.end");
    assert!(end.get("assistant").is_none(), "{end}");
    assert_eq!(cited(end), vec!["billing:invoices", "hr:leave"]);
    assert_eq!(frames.last().unwrap()["author"], "assistant");
    assert_eq!(upstream.requests()[1].body["model"], "test-model");

    // Another connection of the owner joins: the session still names its assistant.
    let cora = token("cora", "acme", &["support"], &[]);
    let mut again = connect(&gw, &cora).await;
    let joined = again.join_reply(&session, None, None).await;
    assert_eq!(joined["assistant"], "billing", "{joined}");

    // Over HTTP: a session opened with the assistant, and a synchronous chat in a new
    // session with it, answered as on the WebSocket.
    let opened = api
        .post(
            "/v1/sessions",
            Some(&cora),
            &json!({"assistant": "billing"}),
        )
        .await;
    assert_eq!(
        opened.expect(201, "open with an assistant")["assistant"],
        "billing"
    );
    api.post("/v1/sessions", Some(&cora), &json!({"assistant": "nope"}))
        .await
        .assert_error(404, "not_found", "an assistant the org does not have");
    upstream.push(Reply::text(&["Monthly."]));
    let chat = api
        .post(
            "/v1/chat",
            Some(&cora),
            &json!({"text": "How often are zebracorn invoices sent?", "assistant": "billing"}),
        )
        .await;
    let chat = chat.expect(200, "chat with an assistant");
    assert_eq!(chat["status"], "completed", "{chat}");
    assert_eq!(chat["assistant"], "billing", "{chat}");
    assert_eq!(chat["text"], "Monthly.");
    assert_eq!(upstream.requests()[2].body["model"], "billing-model");
    api.post(
        "/v1/chat",
        Some(&cora),
        &json!({"text": "Hi", "session_id": session, "assistant": "billing"}),
    )
    .await
    .assert_error(400, "bad_request", "assistant with an existing session");
}

/// Assistants are an org's own: unknown names and bad definitions are refused with
/// reasons, another org's admin cannot read or write them, a deleted assistant's
/// sessions are answered by the default assistant, and the org's cap holds.
#[tokio::test]
async fn assistants_are_administered_per_org() {
    let upstream = Upstream::start().await;
    let gw = gateway_on(&upstream, &[]);
    let api = Api::new(&gw);
    let acme_admin = token("ada", "acme", &[], &["admin"]);
    let globex_admin = token("gus", "globex", &[], &["admin"]);
    let spec = json!({"settings": {"model": "sales-model"}});
    put_assistant(&api, &acme_admin, "/v1/admin/assistants/sales", &spec)
        .await
        .expect(200, "acme admin puts its own");
    put_assistant(
        &api,
        &globex_admin,
        "/v1/admin/assistants/sales?org_id=acme",
        &spec,
    )
    .await
    .assert_error(403, "forbidden", "another org's assistants");
    api.get("/v1/admin/assistants/sales", Some(&globex_admin))
        .await
        .assert_error(404, "not_found", "globex has no such assistant");
    let listed = api.get("/v1/admin/assistants", Some(&acme_admin)).await;
    let listed = listed.expect(200, "list");
    assert_eq!(listed["assistants"].as_array().unwrap().len(), 1);
    assert_eq!(listed["assistants"][0]["settings"]["model"], "sales-model");

    for (bad, status, code) in [
        (json!({"prompt": "x"}), 400, "bad_request"),
        (json!({"documents": ["billing/*"]}), 400, "bad_request"),
        (json!({"display_name": "   "}), 400, "bad_request"),
        (json!({"settings": {"temperature": 9}}), 400, "bad_request"),
        (
            json!({"settings": {"tools": [{"name": "steal", "description": "x",
                "endpoint": "http://169.254.169.254/latest/meta-data"}]}}),
            403,
            "forbidden",
        ),
    ] {
        put_assistant(&api, &acme_admin, "/v1/admin/assistants/other", &bad)
            .await
            .assert_error(status, code, &format!("{bad}"));
    }
    put_assistant(&api, &acme_admin, "/v1/admin/assistants/no%20spaces", &spec)
        .await
        .assert_error(400, "bad_request", "a name with a space");

    let mut customer = connect(&gw, &token("cora", "acme", &[], &[])).await;
    let unknown = customer
        .request("session.create", json!({"assistant": "nope"}))
        .await;
    assert_eq!(unknown["code"], "not_found", "{unknown}");
    let bad = customer
        .request("session.create", json!({"assistant": "no spaces"}))
        .await;
    assert_eq!(bad["code"], "bad_request", "{bad}");
    let mut outsider = connect(&gw, &token("gil", "globex", &[], &[])).await;
    let foreign = outsider
        .request("session.create", json!({"assistant": "sales"}))
        .await;
    assert_eq!(
        foreign["code"], "not_found",
        "another org's assistant: {foreign}"
    );

    let created = customer
        .request_ok(
            "session.create",
            json!({"assistant": "sales"}),
            "session.created",
        )
        .await;
    let session = created["session_id"].as_str().unwrap().to_string();
    upstream.push(Reply::text(&["Hello."]));
    ask(&mut customer, &session, "Hi").await;
    assert_eq!(upstream.requests()[0].body["model"], "sales-model");
    let deleted = api
        .call(
            Method::DELETE,
            "/v1/admin/assistants/sales",
            Some(&acme_admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    api.call(
        Method::DELETE,
        "/v1/admin/assistants/sales",
        Some(&acme_admin),
        None,
    )
    .await
    .assert_error(404, "not_found", "deleted twice");
    upstream.push(Reply::text(&["Hello again."]));
    let frames = ask(&mut customer, &session, "Still there?").await;
    assert_eq!(upstream.requests()[1].body["model"], "test-model");
    assert!(first(&frames, "turn.end").get("assistant").is_none());

    for i in 0..32 {
        put_assistant(
            &api,
            &acme_admin,
            &format!("/v1/admin/assistants/a{i}"),
            &json!({}),
        )
        .await
        .expect(200, "within the cap");
    }
    put_assistant(
        &api,
        &acme_admin,
        "/v1/admin/assistants/one-more",
        &json!({}),
    )
    .await
    .assert_error(409, "conflict", "the 33rd assistant");
    put_assistant(&api, &acme_admin, "/v1/admin/assistants/a0", &spec)
        .await
        .expect(200, "replacing one at the cap");
}
