//! Controlling a turn from another replica: the turn runs where its message was
//! accepted, but a member on any replica may approve its tool call (`tool.decide`) or
//! stop it (`turn.cancel`); the replica that took the request wakes the turn's through
//! its control stream, which no client can reach. Each test runs over Redis and over
//! NATS.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchboard_backplane::{EventBody, Retention, StreamName};
use switchboard_testkit::{eventually, temp_path};

use crate::support::http::{Api, PUBLISHER_SECRET, publish_body};
use crate::support::replicas::{Backing, Backplane, backed_tests, replica, replica_with};
use crate::support::tool_backend::ToolBackend;
use crate::support::upstream::{Reply, StreamEnd, Upstream, content_chunk, tool_call_reply};
use crate::support::{Client, Gateway, WAIT, is_assistant_message, ty};

const TOOL_KEY: &str = "tool-signing-key-0123456789abcdefghijklmnop";

backed_tests! {
    /// An anonymous visitor asks on replica A; the model asks for a tool that needs
    /// approval; a second tab of the same session, connected to replica B, approves it.
    /// The turn on A runs the tool once and completes, and both tabs see it all.
    a_tool_call_is_approved_from_another_replica => approve_elsewhere;

    /// A reply streams from a model on replica A; `turn.cancel` sent through replica B
    /// ends it `cancelled` with the text so far, and A closes its upstream request.
    a_turn_is_cancelled_from_another_replica => cancel_elsewhere;

    /// A replica's control stream (`control:<replica_id>`) is internal: no frame a
    /// client sends and no publish target names it, so nothing from outside lands there.
    a_replicas_control_stream_is_out_of_reach => control_stream_out_of_reach;
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

/// The backplane as a gateway with the default prefix and retention sees it.
async fn connect_directly(
    backing: Backing,
    url: &str,
) -> Arc<dyn switchboard_backplane::Backplane> {
    match backing {
        Backing::Redis => Arc::new(
            switchboard_redis::RedisBackplane::connect(url, "sb", Retention::default())
                .await
                .unwrap(),
        ),
        Backing::Nats => Arc::new(
            switchboard_nats::NatsBackplane::connect(url, "sb", Retention::default())
                .await
                .unwrap(),
        ),
    }
}

async fn control_stream_out_of_reach(backing: Backing) {
    let backplane = Backplane::start(backing);
    let gw = replica(&backplane, "replica-a");
    let direct = connect_directly(backing, &backplane.url()).await;
    let replica_id = eventually(WAIT, "the gateway's heartbeat", || async {
        let live = direct
            .record_list("replicas")
            .await
            .map_err(|e| e.to_string())?;
        live.into_iter()
            .next()
            .map(|(id, _)| id)
            .ok_or_else(|| "no replica yet".to_string())
    })
    .await;
    let control = StreamName::control(&replica_id).unwrap();
    let mut heard = direct.subscribe(&control).await.unwrap();
    let name = control.as_str().to_string();

    // Every frame that takes a session id, given the control stream's name.
    let mut client = Client::connect(&gw.ws_url()).await;
    for (frame_type, fields) in [
        ("session.join", json!({"session_id": name})),
        ("message.send", json!({"session_id": name, "text": "hello"})),
        ("turn.cancel", json!({"session_id": name, "turn_id": "t_1"})),
        (
            "tool.decide",
            json!({"session_id": name, "call_id": "tc_1", "approved": true}),
        ),
    ] {
        let reply = client.request(frame_type, fields).await;
        assert_eq!(ty(&reply), "error", "{frame_type} naming {name}: {reply}");
    }
    // Every publish target, named as the control stream or as the replica id; there is
    // no `control` target. Refused, or published into a stream of its own kind.
    let api = Api::new(&gw);
    for (kind, id) in [
        ("session", name.as_str()),
        ("user", name.as_str()),
        ("org", name.as_str()),
        ("session", replica_id.as_str()),
        ("user", replica_id.as_str()),
        ("org", replica_id.as_str()),
        ("control", replica_id.as_str()),
    ] {
        let body = publish_body(kind, id, "probe", json!({}));
        let reply = api.publish(Some(PUBLISHER_SECRET), &body).await;
        assert!(
            reply.status == 202 || (400..500).contains(&reply.status),
            "{body}: {} {}",
            reply.status,
            reply.text
        );
    }
    // Anything those put on the control stream would come before this.
    let sentinel = EventBody::Custom {
        name: "test.sentinel".into(),
        data: json!({}),
        publisher: None,
        durable: false,
    };
    direct.append(&control, sentinel.clone()).await.unwrap();
    let first = tokio::time::timeout(WAIT, heard.next())
        .await
        .expect("the sentinel arrives")
        .unwrap();
    assert_eq!(first.body, sentinel, "something else reached {name}");
    client.ping_pong().await;
}
