//! What a tool endpoint can trust (issue 20, L5): an org admin cannot redeclare the
//! gateway's approval-gated tool without its approval (same name, or its endpoint
//! under another name), and the identity token says whether a person approved.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Method;
use serde_json::{Value, json};
use switchboard_testkit::temp_path;

use crate::support::http::Api;
use crate::support::jwt::{Claims, connect};
use crate::support::tool_backend::{ToolBackend, ToolHit};
use crate::support::upstream::{Reply, Upstream, gateway_on, tool_call_reply};
use crate::support::{is_assistant_message, ty};

const TOOL_KEY: &str = "tool-signing-key-0123456789abcdefghijklmnop";

fn spec(backend: &ToolBackend, name: &str, requires_approval: bool) -> Value {
    json!({
        "name": name,
        "description": format!("The {name} tool"),
        "parameters": {"type": "object", "properties": {}},
        "endpoint": backend.endpoint(name),
        "requires_approval": requires_approval,
    })
}

/// The identity claims of one call the backend received.
fn identity(hit: &ToolHit, tool: &str) -> Value {
    let token = hit.headers["x-switchboard-identity"].to_str().unwrap();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[tool]);
    jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(TOOL_KEY.as_bytes()),
        &validation,
    )
    .expect("the identity verifies")
    .claims
}

#[tokio::test]
async fn org_tools_cannot_shadow_gated_tools_and_the_identity_says_who_approved() {
    let upstream = Upstream::start().await;
    let backend = ToolBackend::start(json!({"done": true})).await;
    let gated = spec(&backend, "refund_order", true);
    let path = temp_path("tools", "json");
    std::fs::write(&path, serde_json::to_vec(&json!([gated])).unwrap()).unwrap();
    let path = path.to_string_lossy().into_owned();
    let gw = gateway_on(
        &upstream,
        &["--tools-file", &path, "--tool-signing-key", TOOL_KEY],
    );
    let api = Api::new(&gw);
    let admin = Claims::user("ada", "acme").roles(&["admin"]).hs256();
    let put = |tools: Value| {
        let api = &api;
        let admin = &admin;
        async move {
            api.call(
                Method::PUT,
                "/v1/admin/model-settings",
                Some(admin),
                Some(&json!({ "tools": tools })),
            )
            .await
        }
    };

    // The same name and endpoint without approval: refused.
    let reply = put(json!([spec(&backend, "refund_order", false)])).await;
    reply.assert_error(
        400,
        "bad_request",
        "an org tool taking a gateway tool's name",
    );
    assert!(
        reply.text.contains("may not take its name"),
        "{}",
        reply.text
    );
    // Its endpoint under another name: refused.
    let mut renamed = spec(&backend, "refund_now", false);
    renamed["endpoint"] = json!(backend.endpoint("refund_order") + "/");
    let reply = put(json!([renamed])).await;
    reply.assert_error(
        400,
        "bad_request",
        "an org tool on a gateway tool's endpoint",
    );
    assert!(
        reply.text.contains("is the gateway's tool 'refund_order'"),
        "{}",
        reply.text
    );
    // Kept unchanged, beside a tool of the org's own that needs no approval: stored.
    put(json!([gated, spec(&backend, "lookup", false)]))
        .await
        .expect(200, "the gateway's tool kept unchanged, and an org tool");

    let ann = Claims::user("ann", "acme").hs256();
    let mut client = connect(&gw, &ann).await;
    let session = client.create_session().await.id;

    upstream.push(tool_call_reply("call_1", "lookup", &["{}"]));
    upstream.push(Reply::text(&["Looked up."]));
    client.send_message(&session, "Look it up").await;
    let frames = client.collect_until(is_assistant_message).await;
    let request = frames.iter().find(|f| ty(f) == "tool.request").unwrap();
    assert_eq!(request["requires_approval"], false, "{request}");
    let unasked = identity(&backend.hits()[0], "lookup");
    assert_eq!(unasked["approved"], false, "{unasked}");
    assert!(unasked.get("approved_by").is_none(), "{unasked}");

    upstream.push(tool_call_reply("call_2", "refund_order", &["{}"]));
    upstream.push(Reply::text(&["Refunded."]));
    client.send_message(&session, "Refund it").await;
    let frames = client.collect_until(|f| ty(f) == "tool.request").await;
    let request = frames.last().unwrap();
    assert_eq!(request["requires_approval"], true, "{request}");
    assert_eq!(backend.hits().len(), 1, "the gated tool waits for approval");
    client
        .request_ok(
            "tool.decide",
            json!({"session_id": session, "call_id": request["call_id"], "approved": true}),
            "tool.decided",
        )
        .await;
    client.collect_until(is_assistant_message).await;
    let hits = backend.hits();
    assert_eq!(hits[1].path, "/tools/refund_order");
    let approved = identity(&hits[1], "refund_order");
    assert_eq!(approved["approved"], true, "{approved}");
    assert_eq!(approved["approved_by"], "ann", "{approved}");
}
