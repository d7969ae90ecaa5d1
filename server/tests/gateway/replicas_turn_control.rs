//! Controlling a turn from another replica: the turn runs where its message was
//! accepted, but a member on any replica may approve its tool call (`tool.decide`) or
//! stop it (`turn.cancel`). Each test runs over Redis and over NATS.

use std::time::Duration;

use serde_json::json;
use switchboard_testkit::temp_path;

use crate::support::replicas::{Backing, Backplane, backed_tests, replica_with};
use crate::support::tool_backend::ToolBackend;
use crate::support::upstream::{Reply, StreamEnd, Upstream, content_chunk, tool_call_reply};
use crate::support::{Client, Gateway, is_assistant_message, ty};

const TOOL_KEY: &str = "tool-signing-key-0123456789abcdefghijklmnop";

backed_tests! {
    /// An anonymous visitor asks on replica A; the model asks for a tool that needs
    /// approval; a second tab of the same session, connected to replica B, approves it.
    /// The turn on A runs the tool once and completes, and both tabs see it all.
    a_tool_call_is_approved_from_another_replica => approve_elsewhere;

    /// A reply streams from a model on replica A; `turn.cancel` sent through replica B
    /// ends it `cancelled` with the text so far, and A closes its upstream request.
    a_turn_is_cancelled_from_another_replica => cancel_elsewhere;
}

fn replicas(
    backing: Backing,
    upstream: &Upstream,
    backend: &ToolBackend,
) -> (Backplane, Gateway, Gateway) {
    let backplane = Backplane::start(backing);
    let tools = json!([{
        "name": "refund_order", "description": "Refund an order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "integer"}}},
        "endpoint": backend.endpoint("refund_order"), "requires_approval": true
    }]);
    let path = temp_path("tools", "json");
    std::fs::write(&path, tools.to_string()).unwrap();
    let path = path.to_string_lossy().into_owned();
    let base = upstream.base_url();
    let extra = [
        "--model-provider",
        "openai",
        "--model-base-url",
        &base,
        "--model-retries",
        "0",
        "--tools-file",
        &path,
        "--tool-signing-key",
        TOOL_KEY,
    ];
    let a = replica_with(&backplane, "replica-a", &extra);
    let b = replica_with(&backplane, "replica-b", &extra);
    (backplane, a, b)
}

/// Two tabs of one anonymous session: the creator on `a`, the other on `b`.
async fn two_tabs(a: &Gateway, b: &Gateway) -> (Client, Client, String) {
    let mut tab_a = Client::connect(&a.ws_url()).await;
    let session = tab_a.create_session().await;
    let mut tab_b = Client::connect(&b.ws_url()).await;
    tab_b.join(&session.id, None, session.key.as_deref()).await;
    (tab_a, tab_b, session.id)
}

async fn approve_elsewhere(backing: Backing) {
    let upstream = Upstream::start().await;
    let backend = ToolBackend::start(json!({"refunded": true})).await;
    let (_backplane, a, b) = replicas(backing, &upstream, &backend);
    let (mut tab_a, mut tab_b, session) = two_tabs(&a, &b).await;
    upstream.push(tool_call_reply(
        "call_1",
        "refund_order",
        &["{\"order_id\": 5}"],
    ));
    upstream.push(Reply::text(&["Refunded."]));
    tab_a.send_message(&session, "refund order 5").await;
    let request = tab_b.collect_until(|f| ty(f) == "tool.request").await;
    let request = request.last().unwrap();
    assert_eq!(request["requires_approval"], true);
    tab_b
        .request_ok(
            "tool.decide",
            json!({"session_id": session, "call_id": request["call_id"], "approved": true}),
            "tool.decided",
        )
        .await;
    for tab in [&mut tab_a, &mut tab_b] {
        let frames = tab.collect_until(is_assistant_message).await;
        let result = frames.iter().find(|f| ty(f) == "tool.result").unwrap();
        assert_eq!(result["ok"], true, "{result}");
        let end = frames.iter().find(|f| ty(f) == "turn.end").unwrap();
        assert_eq!(end["status"], "completed", "{end}");
        assert_eq!(end["text"], "Refunded.");
    }
    let hits = backend.hits();
    assert_eq!(hits.len(), 1, "the tool ran once");
    assert_eq!(hits[0].body["arguments"], json!({"order_id": 5}));
}

async fn cancel_elsewhere(backing: Backing) {
    let upstream = Upstream::start().await;
    let backend = ToolBackend::start(json!({})).await;
    let (_backplane, a, b) = replicas(backing, &upstream, &backend);
    let (mut tab_a, mut tab_b, session) = two_tabs(&a, &b).await;
    // Two deltas, then the model goes quiet (but keeps the stream open).
    upstream.push(
        Reply::chunks(vec![content_chunk("Let me "), content_chunk("think")])
            .ending(StreamEnd::Hang),
    );
    tab_a.send_message(&session, "a long question").await;
    let frames = tab_b
        .collect_until(|f| {
            ty(f) == "turn.delta" && f["text"].as_str().unwrap_or("").contains("think")
        })
        .await;
    let turn_id = frames
        .iter()
        .find(|f| ty(f) == "turn.start")
        .map(|f| f["turn_id"].clone())
        .unwrap();
    tab_b
        .send_json(json!({"type": "turn.cancel", "session_id": session, "turn_id": turn_id}))
        .await;
    let frames = tab_b.collect_until(|f| ty(f) == "turn.end").await;
    let end = frames.last().unwrap();
    assert_eq!(end["status"], "cancelled", "{end}");
    assert_eq!(end["text"], "Let me think");
    assert!(
        frames.iter().all(|f| ty(f) != "error"),
        "turn.cancel on another replica was refused: {frames:?}"
    );
    upstream.wait_for_disconnect(Duration::from_secs(5)).await;
    let seen_by_a = tab_a.collect_until(|f| ty(f) == "turn.end").await;
    assert_eq!(seen_by_a.last().unwrap()["status"], "cancelled");
}
