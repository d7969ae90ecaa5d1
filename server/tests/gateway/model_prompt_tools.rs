//! What the model is given and what it may do, against a local OpenAI-compatible
//! upstream: the prompt carries the documents the asker may read and never another,
//! `sources` name exactly those; per-org settings reach the upstream; tools run only
//! when approved, by whom, as whom.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Method;
use serde_json::{Value, json};
use switchboard_testkit::temp_path;

use crate::support;
use crate::support::http::{ADMIN_SECRET, Api};
use crate::support::jwt::{Claims, connect};
use crate::support::tool_backend::ToolBackend;
use crate::support::upstream::{Reply, Upstream, gateway_on, tool_call_reply};
use crate::support::{Client, Gateway, is_assistant_message, ty};

/// Signs the identity token tool endpoints get.
const TOOL_KEY: &str = "tool-signing-key-0123456789abcdefghijklmnop";

const PUBLIC_TEXT: &str = "Refunds of the zebracorn plan take five working days.";
const RESTRICTED_SECRET: &str = "Finance code 424242 for zebracorn refunds.";

fn token(sub: &str, org: &str, groups: &[&str], roles: &[&str]) -> String {
    Claims::user(sub, org).groups(groups).roles(roles).hs256()
}

/// A gateway whose tools file offers `tools` (name, requires_approval), all on `backend`.
fn gateway_with_tools(
    upstream: &Upstream,
    backend: &ToolBackend,
    tools: &[(&str, bool)],
    extra: &[&str],
) -> Gateway {
    let specs: Vec<Value> = tools
        .iter()
        .map(|(name, approval)| {
            json!({
                "name": name,
                "description": format!("The {name} tool"),
                "parameters": {"type": "object", "properties": {"order_id": {"type": "integer"}}},
                "endpoint": backend.endpoint(name),
                "requires_approval": approval,
            })
        })
        .collect();
    let path = temp_path("tools", "json");
    std::fs::write(&path, serde_json::to_vec(&specs).unwrap()).unwrap();
    let path = path.to_string_lossy().into_owned();
    let mut args = vec!["--tools-file", &path, "--tool-signing-key", TOOL_KEY];
    args.extend_from_slice(extra);
    gateway_on(upstream, &args)
}

async fn ingest_documents(gw: &Gateway) {
    let api = Api::new(gw);
    api.ingest(&json!({
        "doc_id": "refunds-public", "org_id": "acme", "title": "Refund policy",
        "text": PUBLIC_TEXT, "uri": "https://acme.example/refunds", "acl": {"public": true}
    }))
    .await;
    api.ingest(&json!({
        "doc_id": "refunds-finance", "org_id": "acme", "title": "Refund codes",
        "text": RESTRICTED_SECRET, "acl": {"groups": ["finance"]}
    }))
    .await;
    api.ingest(&json!({
        "doc_id": "globex-refunds", "org_id": "globex", "title": "Globex refunds",
        "text": "Globex zebracorn refunds use code 777000.", "acl": {"public": true}
    }))
    .await;
}

/// Send `text` in `session` and read frames until the turn's `turn.end`.
async fn ask_until_end(client: &mut Client, session: &str, text: &str) -> Vec<Value> {
    client.send_message(session, text).await;
    client.collect_until(|f| ty(f) == "turn.end").await
}

/// The first frame of type `frame_type` among `frames`.
fn first_of<'a>(frames: &'a [Value], frame_type: &str) -> &'a Value {
    frames
        .iter()
        .find(|f| ty(f) == frame_type)
        .unwrap_or_else(|| panic!("no {frame_type} among {frames:?}"))
}

fn end_of(frames: &[Value]) -> &Value {
    first_of(frames, "turn.end")
}

/// `client` answers tool call `call_id` of `session`; the `tool.decided` reply.
async fn decide(client: &mut Client, session: &str, call_id: &str, approved: bool) -> Value {
    client
        .request_ok(
            "tool.decide",
            json!({"session_id": session, "call_id": call_id, "approved": approved}),
            "tool.decided",
        )
        .await
}

fn cited(end: &Value) -> Vec<String> {
    end["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["doc_id"].as_str().unwrap().to_string())
        .collect()
}

/// The whole prompt of a recorded request, as one string.
fn prompt_text(body: &Value) -> String {
    body["messages"].to_string()
}

/// Retrieval runs as the asker: a `support` user's prompt carries the public document
/// and not the finance one (nor another org's), and `sources` names exactly what the
/// prompt carried; a `finance` user asking the same gets both, in prompt and sources.
#[tokio::test]
async fn the_prompt_carries_only_documents_the_asker_may_read() {
    let upstream = Upstream::start().await;
    let gw = gateway_on(&upstream, &[]);
    ingest_documents(&gw).await;

    upstream.push(Reply::text(&["Five ", "working ", "days."]));
    let mut support_user = connect(&gw, &token("sam", "acme", &["support"], &[])).await;
    let s = support_user.create_session().await;
    let frames = ask_until_end(
        &mut support_user,
        &s.id,
        "How long do zebracorn refunds take?",
    )
    .await;
    let end = end_of(&frames);
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(cited(end), vec!["refunds-public"]);
    let request = &upstream.requests()[0];
    let prompt = prompt_text(&request.body);
    assert!(
        prompt.contains(PUBLIC_TEXT),
        "public document missing: {prompt}"
    );
    assert!(prompt.contains("Refund policy"), "{prompt}");
    for leak in ["424242", "Refund codes", "777000", "Globex"] {
        assert!(
            !prompt.contains(leak),
            "{leak} reached the prompt: {prompt}"
        );
    }
    assert_eq!(request.body["model"], "test-model");
    assert_eq!(request.body["stream"], true);
    let messages = request.body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(messages.last().unwrap()["role"], "user");
    assert_eq!(
        messages.last().unwrap()["content"],
        "How long do zebracorn refunds take?"
    );

    upstream.push(Reply::text(&["Use the code."]));
    let mut finance_user = connect(&gw, &token("fay", "acme", &["finance"], &[])).await;
    let s = finance_user.create_session().await;
    let frames = ask_until_end(
        &mut finance_user,
        &s.id,
        "Which code for zebracorn refunds?",
    )
    .await;
    let end = end_of(&frames);
    let mut sources = cited(end);
    sources.sort();
    assert_eq!(sources, vec!["refunds-finance", "refunds-public"]);
    let prompt = prompt_text(&upstream.requests()[1].body);
    assert!(
        prompt.contains(RESTRICTED_SECRET) && prompt.contains(PUBLIC_TEXT),
        "{prompt}"
    );
    assert!(
        !prompt.contains("777000"),
        "another org's document: {prompt}"
    );
}

/// The session's earlier messages go into the prompt in order, newest kept within the
/// token budget; the configured system prompt leads.
#[tokio::test]
async fn the_prompt_carries_the_recent_transcript_within_its_budget() {
    let upstream = Upstream::start().await;
    // 8 tokens ≈ 32 characters: room for the last exchange only (4 + 4 tokens).
    let gw = gateway_on(
        &upstream,
        &[
            "--system-prompt",
            "You are Acme's helper.",
            "--transcript-token-budget",
            "8",
        ],
    );
    let mut client = connect(&gw, &token("ann", "acme", &[], &[])).await;
    let s = client.create_session().await;
    for (question, answer) in [
        ("first question", "first answer"),
        ("second question", "second answer"),
    ] {
        upstream.push(Reply::text(&[answer]));
        let frames = ask_until_end(&mut client, &s.id, question).await;
        assert_eq!(end_of(&frames)["status"], "completed");
        client.collect_until(is_assistant_message).await;
    }
    upstream.push(Reply::text(&["third answer"]));
    ask_until_end(&mut client, &s.id, "third question").await;
    let third = &upstream.requests()[2].body;
    let messages: Vec<(String, String)> = third["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().into(),
                m["content"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(messages[0].0, "system");
    assert!(
        messages[0].1.starts_with("You are Acme's helper."),
        "{messages:?}"
    );
    let rest: Vec<(&str, &str)> = messages[1..]
        .iter()
        .map(|(r, c)| (r.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        rest,
        vec![
            ("user", "second question"),
            ("assistant", "second answer"),
            ("user", "third question"),
        ],
        "the first exchange is over budget and left out"
    );
}

/// An org's settings, stored through the admin API, reach the upstream on the next
/// turn; an admin of another org cannot read or change them, and bad settings are
/// refused with the reason.
#[tokio::test]
async fn per_org_model_settings_are_stored_and_used() {
    let upstream = Upstream::start().await;
    let gw = gateway_on(&upstream, &[]);
    let api = Api::new(&gw);
    let acme_admin = token("ada", "acme", &[], &["admin"]);
    let globex_admin = token("gus", "globex", &[], &["admin"]);
    let settings =
        json!({"model": "acme-large", "system_prompt": "Speak like a pirate.", "temperature": 0.2});
    let reply = api
        .call(
            Method::PUT,
            "/v1/admin/model-settings",
            Some(&acme_admin),
            Some(&settings),
        )
        .await;
    assert_eq!(
        reply.expect(200, "put settings")["settings"]["model"],
        "acme-large"
    );
    let read = api.get("/v1/admin/model-settings", Some(&acme_admin)).await;
    assert_eq!(read.expect(200, "get settings")["settings"], settings);
    api.get("/v1/admin/model-settings?org_id=acme", Some(&globex_admin))
        .await
        .assert_error(403, "forbidden", "another org's settings");
    let globex_own = api
        .get("/v1/admin/model-settings", Some(&globex_admin))
        .await;
    assert_eq!(
        globex_own.expect(200, "own settings")["settings"],
        json!({})
    );
    let bad = json!({"tools": [{"name": "steal", "description": "x",
        "endpoint": "http://169.254.169.254/latest/meta-data"}]});
    let reply = api
        .call(
            Method::PUT,
            "/v1/admin/model-settings",
            Some(&acme_admin),
            Some(&bad),
        )
        .await;
    reply.assert_error(
        403,
        "forbidden",
        "a tool endpoint on an origin the operator did not allow",
    );
    assert!(
        reply.text.contains("--tool-endpoint-origins"),
        "{}",
        reply.text
    );
    let unknown = json!({"modle": "typo"});
    api.call(
        Method::PUT,
        "/v1/admin/model-settings",
        Some(&acme_admin),
        Some(&unknown),
    )
    .await
    .assert_error(400, "bad_request", "an unknown field");

    upstream.push(Reply::text(&["Arr."]));
    let mut client = connect(&gw, &token("ann", "acme", &[], &[])).await;
    let s = client.create_session().await;
    ask_until_end(&mut client, &s.id, "hello").await;
    let body = &upstream.requests()[0].body;
    assert_eq!(body["model"], "acme-large");
    assert_eq!(body["temperature"], 0.2);
    assert!(
        body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .starts_with("Speak like a pirate.")
    );

    let reply = api
        .call(
            Method::DELETE,
            "/v1/admin/model-settings?org_id=acme",
            Some(ADMIN_SECRET),
            None,
        )
        .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    upstream.push(Reply::text(&["Hello."]));
    ask_until_end(&mut client, &s.id, "hello again").await;
    assert_eq!(upstream.requests()[1].body["model"], "test-model");
}

/// Read frames until a `tool.request`.
async fn tool_request(client: &mut Client) -> Value {
    let frames = client.collect_until(|f| ty(f) == "tool.request").await;
    frames.last().unwrap().clone()
}

/// The model asks for `refund_order`; the owner approves with `tool.decide`; the
/// backend is called once with the arguments and a signed identity (never the user's
/// JWT); its answer goes back to the model, and the turn completes.
#[tokio::test]
async fn an_approved_tool_call_runs_the_endpoint_as_the_asker() {
    let upstream = Upstream::start().await;
    let backend = ToolBackend::start(json!({"refunded": true, "amount": 42})).await;
    let gw = gateway_with_tools(&upstream, &backend, &[("refund_order", true)], &[]);
    upstream.push(tool_call_reply(
        "call_1",
        "refund_order",
        &["{\"order_", "id\": 42}"],
    ));
    upstream.push(Reply::text(&["Refunded ", "order 42."]));
    let user_token = token("ann", "acme", &["support"], &[]);
    let mut client = connect(&gw, &user_token).await;
    let s = client.create_session().await;
    client.send_message(&s.id, "Please refund order 42").await;
    let request = tool_request(&mut client).await;
    assert_eq!(request["tool"], "refund_order");
    assert_eq!(request["arguments"], json!({"order_id": 42}));
    assert_eq!(request["requires_approval"], true);
    let offered = &upstream.requests()[0].body["tools"][0]["function"];
    assert_eq!(offered["name"], "refund_order");
    assert_eq!(
        offered["parameters"]["properties"]["order_id"]["type"],
        "integer"
    );
    assert!(backend.hits().is_empty(), "the tool ran before approval");

    let call_id = request["call_id"].as_str().unwrap();
    let decided = decide(&mut client, &s.id, call_id, true).await;
    assert_eq!(decided["approved"], true);
    let frames = client.collect_until(is_assistant_message).await;
    let result = first_of(&frames, "tool.result");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["output"], json!({"refunded": true, "amount": 42}));
    let end = end_of(&frames);
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(end["text"], "Refunded order 42.");

    let hits = backend.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.path, "/tools/refund_order");
    assert_eq!(hit.body["arguments"], json!({"order_id": 42}));
    assert_eq!(hit.body["session_id"], s.id.as_str());
    assert!(hit.headers.get("authorization").is_none());
    for value in hit.headers.values() {
        assert!(
            !value.to_str().unwrap_or("").contains(&user_token),
            "the user's JWT reached the tool"
        );
    }
    let identity = hit.headers["x-switchboard-identity"].to_str().unwrap();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&["refund_order"]);
    validation.set_issuer(&["switchboard"]);
    let claims = jsonwebtoken::decode::<Value>(
        identity,
        &DecodingKey::from_secret(TOOL_KEY.as_bytes()),
        &validation,
    )
    .expect("the identity verifies with the signing key")
    .claims;
    assert_eq!(claims["sub"], "ann");
    assert_eq!(claims["org_id"], "acme");
    assert_eq!(claims["groups"], json!(["support"]));
    assert_eq!(claims["call_id"], call_id);
    let forged = jsonwebtoken::decode::<Value>(
        identity,
        &DecodingKey::from_secret(b"some-other-key-0123456789abcdefghij"),
        &validation,
    );
    assert!(
        forged.is_err(),
        "the identity must not verify with another key"
    );

    // The second round gave the model its call and the result.
    let second = &upstream.requests()[1].body["messages"];
    let messages = second.as_array().unwrap();
    let assistant = &messages[messages.len() - 2];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        assistant["tool_calls"][0]["function"]["name"],
        "refund_order"
    );
    let tool = messages.last().unwrap();
    assert_eq!(tool["role"], "tool");
    assert_eq!(tool["tool_call_id"], "call_1");
    assert!(
        tool["content"].as_str().unwrap().contains("\"amount\":42"),
        "{tool}"
    );
}

/// A denied call never reaches the backend; the model hears it was denied. A member of
/// another org cannot decide (not even learn the call exists); an org colleague who is
/// not an operator cannot join to decide; a second decision conflicts.
#[tokio::test]
async fn a_denied_call_does_not_run_and_outsiders_cannot_decide() {
    let upstream = Upstream::start().await;
    let backend = ToolBackend::start(json!({"refunded": true})).await;
    let gw = gateway_with_tools(&upstream, &backend, &[("refund_order", true)], &[]);
    upstream.push(tool_call_reply(
        "call_9",
        "refund_order",
        &["{\"order_id\": 7}"],
    ));
    upstream.push(Reply::text(&["I did not refund it."]));
    let mut owner = connect(&gw, &token("ann", "acme", &[], &[])).await;
    let s = owner.create_session().await;
    owner.send_message(&s.id, "refund order 7").await;
    let request = tool_request(&mut owner).await;
    let call_id = request["call_id"].as_str().unwrap().to_string();
    let approve = json!({"session_id": s.id, "call_id": call_id, "approved": true});

    // An operator of another org: cannot join, cannot decide.
    let mut outsider = connect(&gw, &token("eve", "globex", &[], &["operator", "admin"])).await;
    let joined = outsider.join_reply(&s.id, None, None).await;
    assert_eq!(joined["code"], "not_found", "{joined}");
    let refused = outsider.request("tool.decide", approve.clone()).await;
    assert_eq!(ty(&refused), "error", "{refused}");
    assert!(
        matches!(refused["code"].as_str(), Some("forbidden" | "not_found")),
        "{refused}"
    );
    // A colleague without the operator role cannot join the owner's session either.
    let mut colleague = connect(&gw, &token("bob", "acme", &[], &[])).await;
    let refused = colleague.request("tool.decide", approve.clone()).await;
    assert_eq!(ty(&refused), "error", "{refused}");
    assert!(
        backend.hits().is_empty(),
        "an outsider's decision ran the tool"
    );

    let denied = decide(&mut owner, &s.id, &call_id, false).await;
    assert_eq!(denied["approved"], false);
    let frames = owner.collect_until(is_assistant_message).await;
    let result = first_of(&frames, "tool.result");
    assert_eq!(result["ok"], false, "{result}");
    assert!(result["output"].to_string().contains("denied"), "{result}");
    assert_eq!(end_of(&frames)["status"], "completed");
    assert!(backend.hits().is_empty(), "a denied call ran");
    let tool_message = upstream.requests()[1].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(
        tool_message["content"].as_str().unwrap().contains("denied"),
        "{tool_message}"
    );

    let again = owner.request("tool.decide", approve).await;
    assert_eq!(again["code"], "conflict", "{again}");
}

/// An operator of the same org who joined the session may decide for its owner.
#[tokio::test]
async fn an_operator_of_the_org_may_decide() {
    let upstream = Upstream::start().await;
    let backend = ToolBackend::start(json!({"ok": 1})).await;
    let gw = gateway_with_tools(&upstream, &backend, &[("refund_order", true)], &[]);
    upstream.push(tool_call_reply("call_2", "refund_order", &["{}"]));
    upstream.push(Reply::text(&["Done."]));
    let mut owner = connect(&gw, &token("ann", "acme", &[], &[])).await;
    let s = owner.create_session().await;
    let mut operator = connect(&gw, &token("olga", "acme", &[], &["operator"])).await;
    operator.join(&s.id, None, None).await;
    owner.send_message(&s.id, "refund it").await;
    let request = tool_request(&mut operator).await;
    let call_id = request["call_id"].as_str().unwrap();
    decide(&mut operator, &s.id, call_id, true).await;
    let frames = owner.collect_until(is_assistant_message).await;
    assert_eq!(first_of(&frames, "tool.result")["ok"], true);
    assert_eq!(backend.hits().len(), 1);
}

/// A call asked by a member of group `finance` runs as them: an operator whose groups
/// do not include `finance` may not approve it; one in `finance` may, and
/// `tool.result` names who decided.
#[tokio::test]
async fn only_staff_whose_access_covers_the_askers_may_decide_for_them() {
    let upstream = Upstream::start().await;
    let backend = ToolBackend::start(json!({"ok": 1})).await;
    let gw = gateway_with_tools(&upstream, &backend, &[("refund_order", true)], &[]);
    upstream.push(tool_call_reply("call_3", "refund_order", &["{}"]));
    upstream.push(Reply::text(&["Done."]));
    let mut owner = connect(&gw, &token("ann", "acme", &["finance"], &[])).await;
    let s = owner.create_session().await;
    let mut otto = connect(&gw, &token("otto", "acme", &[], &["operator"])).await;
    otto.join(&s.id, None, None).await;
    let mut fiona = connect(&gw, &token("fiona", "acme", &["finance"], &["operator"])).await;
    fiona.join(&s.id, None, None).await;
    owner.send_message(&s.id, "refund it").await;
    let request = tool_request(&mut otto).await;
    let call_id = request["call_id"].as_str().unwrap().to_string();
    let refused = otto
        .request(
            "tool.decide",
            json!({"session_id": s.id, "call_id": call_id, "approved": true}),
        )
        .await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    assert!(
        backend.hits().is_empty(),
        "an uncovered operator's approval ran the tool"
    );
    decide(&mut fiona, &s.id, &call_id, true).await;
    let frames = owner.collect_until(is_assistant_message).await;
    let result = first_of(&frames, "tool.result");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["decided_by"], "fiona", "{result}");
    assert_eq!(backend.hits().len(), 1);
}

/// Nobody decides before `--tool-approval-timeout`: denied, the backend is not
/// called, and a late decision conflicts.
#[tokio::test]
async fn no_decision_in_time_means_denied() {
    let upstream = Upstream::start().await;
    let backend = ToolBackend::start(json!({"ok": 1})).await;
    let gw = gateway_with_tools(
        &upstream,
        &backend,
        &[("refund_order", true)],
        &["--tool-approval-timeout", "600ms"],
    );
    upstream.push(tool_call_reply("call_3", "refund_order", &["{}"]));
    upstream.push(Reply::text(&["Nobody approved."]));
    let mut owner = connect(&gw, &token("ann", "acme", &[], &[])).await;
    let s = owner.create_session().await;
    owner.send_message(&s.id, "refund it").await;
    let request = tool_request(&mut owner).await;
    let frames = owner.collect_until(|f| ty(f) == "tool.result").await;
    let result = frames.last().unwrap();
    assert_eq!(result["ok"], false);
    assert!(result["output"].to_string().contains("in time"), "{result}");
    let late = owner
        .request(
            "tool.decide",
            json!({"session_id": s.id, "call_id": request["call_id"], "approved": true}),
        )
        .await;
    assert_eq!(late["code"], "conflict", "{late}");
    owner.collect_until(is_assistant_message).await;
    assert!(backend.hits().is_empty());
}

/// A tool that needs no approval runs at once; a model that keeps calling it is
/// stopped at `--tool-max-rounds`, and the turn ends failed saying so.
#[tokio::test]
async fn a_model_that_keeps_calling_tools_is_stopped() {
    let upstream = Upstream::start().await;
    let backend = ToolBackend::start(json!({"status": "shipped"})).await;
    let gw = gateway_with_tools(
        &upstream,
        &backend,
        &[("order_status", false)],
        &["--tool-max-rounds", "2"],
    );
    for n in 0..3 {
        upstream.push(tool_call_reply(
            &format!("call_{n}"),
            "order_status",
            &["{\"order_id\": 1}"],
        ));
    }
    let mut client = connect(&gw, &token("ann", "acme", &[], &[])).await;
    let s = client.create_session().await;
    let frames = ask_until_end(&mut client, &s.id, "where is my order?").await;
    let requests: Vec<&Value> = frames.iter().filter(|f| ty(f) == "tool.request").collect();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r["requires_approval"] == false));
    let results: Vec<&Value> = frames.iter().filter(|f| ty(f) == "tool.result").collect();
    assert!(results.iter().all(|r| r["ok"] == true), "{results:?}");
    let end = end_of(&frames);
    assert_eq!(end["status"], "failed");
    assert!(
        end["error"].as_str().unwrap().contains("--tool-max-rounds"),
        "{end}"
    );
    assert_eq!(backend.hits().len(), 2);
    assert_eq!(upstream.request_count(), 2);
    let usage = &end["usage"];
    assert_eq!(
        usage["completion_tokens"], 10,
        "usage adds up over rounds: {end}"
    );
}

/// A model asking for a tool that does not exist, or with arguments that are not a
/// JSON object, gets a failed result back and no endpoint is called.
#[tokio::test]
async fn unknown_tools_and_bad_arguments_fail_the_call_not_the_turn() {
    let upstream = Upstream::start().await;
    let backend = ToolBackend::start(json!({"ok": 1})).await;
    let gw = gateway_with_tools(&upstream, &backend, &[("order_status", false)], &[]);
    upstream.push(tool_call_reply("call_a", "drop_database", &["{}"]));
    upstream.push(tool_call_reply("call_b", "order_status", &["not json"]));
    upstream.push(Reply::text(&["Sorry."]));
    let mut client = connect(&gw, &token("ann", "acme", &[], &[])).await;
    let s = client.create_session().await;
    let frames = ask_until_end(&mut client, &s.id, "do something").await;
    let results: Vec<&Value> = frames.iter().filter(|f| ty(f) == "tool.result").collect();
    assert_eq!(results.len(), 2);
    assert!(
        results[0]["output"]
            .to_string()
            .contains("no tool named drop_database")
    );
    assert!(
        results[1]["output"]
            .to_string()
            .contains("not a JSON object")
    );
    assert_eq!(end_of(&frames)["status"], "completed");
    assert!(backend.hits().is_empty());
}

/// Tools need a signing key, and an OpenAI provider: misconfiguration stops the
/// gateway at boot naming the flag.
#[tokio::test]
async fn tools_without_a_signing_key_fail_at_boot() {
    let path = temp_path("tools", "json");
    std::fs::write(&path, b"[]").unwrap();
    let path = path.to_string_lossy().into_owned();
    let out =
        support::run_to_exit(&["--model-provider", "openai", "--tools-file", &path], &[]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tool-signing-key"), "{stderr}");
}
