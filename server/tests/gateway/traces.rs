//! OpenTelemetry traces as a collector sees them (docs/operations.md, "Traces"): a
//! real OTLP/HTTP receiver on a free port gets the gateway's protobuf exports. A turn
//! is one trace (the turn, a child per model round and per tool call, with their
//! attributes and no user text); a publish on one replica is the parent of the
//! delivery on the replica whose socket receives the event, over Redis and NATS.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_testkit::temp_path;

use crate::support::http::{Api, publish_body};
use crate::support::jwt::{Claims, connect};
use crate::support::knowledge::REFUND_QUESTION;
use crate::support::otlp_receiver::{OtlpReceiver, ReceivedSpan};
use crate::support::replicas::{Backing, Backplane, backed_tests, replica_with};
use crate::support::tool_backend::ToolBackend;
use crate::support::upstream::{Reply, Upstream, gateway_on, tool_call_reply};
use crate::support::{Client, Gateway, knowledge, ty};

/// How long spans may take to reach the receiver: the gateways send every 100 ms.
const EXPORTED: Duration = Duration::from_secs(10);

/// The flags that send spans to `receiver` every 100 ms.
fn traced(receiver: &OtlpReceiver) -> Vec<String> {
    vec![
        "--otlp-endpoint".into(),
        receiver.endpoint(),
        "--otlp-batch-delay".into(),
        "100ms".into(),
    ]
}

fn args(owned: &[String]) -> Vec<&str> {
    owned.iter().map(String::as_str).collect()
}

/// Children of `parent`, in start order.
fn children<'a>(spans: &'a [ReceivedSpan], parent: &ReceivedSpan) -> Vec<&'a ReceivedSpan> {
    let mut found: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_id)
        .collect();
    found.sort_by_key(|s| s.start_ns);
    found
}

/// No span of the receiver carries `text` in any attribute.
fn assert_nowhere(spans: &[ReceivedSpan], text: &str) {
    for span in spans {
        for (key, value) in &span.attributes {
            assert!(
                !value.contains(text),
                "span {} attribute {key} carries {text:?}",
                span.name
            );
        }
    }
}

async fn ask(client: &mut Client, session_id: &str, text: &str) -> Vec<Value> {
    client.send_message(session_id, text).await;
    client.collect_turns(1).await
}

/// One turn with the offline agent: the receiver gets a `turn` span (session, turn,
/// org, status) with a `model_call` child (provider, model, outcome) in the same trace,
/// and the anonymous connection's span once the socket closes; no attribute holds the
/// question.
#[tokio::test]
async fn a_turn_is_one_trace_with_a_model_call_child() {
    let receiver = OtlpReceiver::start().await;
    let kb = knowledge::standard_file();
    let mut flags = traced(&receiver);
    flags.extend(["--server-id", "replica-t", "--knowledge-file", &kb].map(String::from));
    let gw = Gateway::start(&args(&flags));
    let mut client = Client::connect(&gw.ws_url()).await;
    let s = client.create_session().await;
    let frames = ask(&mut client, &s.id, REFUND_QUESTION).await;
    let end = frames.iter().find(|f| ty(f) == "turn.end").unwrap();
    assert_eq!(end["status"], "completed", "{end}");
    let turn_id = end["turn_id"].as_str().unwrap();

    let turn = receiver
        .wait_for(EXPORTED, "the turn's span", |span| {
            span.name == "turn" && span.attr("turn_id") == Some(turn_id)
        })
        .await;
    assert_eq!(turn.service, "switchboard");
    assert_eq!(turn.replica, "replica-t");
    assert_eq!(turn.attr("session_id"), Some(s.id.as_str()));
    assert_eq!(turn.attr("org_id"), Some("default"));
    assert_eq!(turn.attr("status"), Some("completed"));
    assert_eq!(turn.parent_span_id, "", "a turn starts its own trace");

    let model_call = receiver
        .wait_for(EXPORTED, "the turn's model call", |span| {
            span.name == "model_call" && span.parent_span_id == turn.span_id
        })
        .await;
    assert_eq!(model_call.trace_id, turn.trace_id);
    assert_eq!(model_call.attr("gen_ai.system"), Some("offline"));
    assert_eq!(model_call.attr("gen_ai.request.model"), Some("offline"));
    assert_eq!(model_call.attr("outcome"), Some("text"));
    assert_eq!(model_call.attr("round"), Some("0"));
    assert!(model_call.start_ns >= turn.start_ns && model_call.end_ns <= turn.end_ns);

    drop(client);
    let connection = receiver
        .wait_for(EXPORTED, "the connection's span", |span| {
            span.name == "connection"
        })
        .await;
    assert_eq!(connection.attr("anonymous"), Some("true"));
    assert_eq!(connection.attr("org_id"), Some("default"));
    assert_eq!(connection.attr("replica"), Some("replica-t"));
    assert!(connection.duration() > turn.duration());

    assert_nowhere(&receiver.spans(), REFUND_QUESTION);
    assert_eq!(receiver.refused(), 0, "every export was protobuf");
    println!("{}", receiver.tree(&turn.trace_id));
}

/// A turn whose model calls a tool, on an OpenAI-compatible upstream: the trace is the
/// turn, then a `model_call` that asked for tools (with its token counts), the
/// `tool_call` (name, decision, outcome), and the `model_call` that answered; the
/// tool's arguments and output appear nowhere.
#[tokio::test]
async fn a_tool_call_is_a_child_of_its_turn() {
    let receiver = OtlpReceiver::start().await;
    let upstream = Upstream::start().await;
    let backend = ToolBackend::start(json!({"status": "shipped-7731"})).await;
    let tools = json!([{
        "name": "order_status",
        "description": "The order_status tool",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "integer"}}},
        "endpoint": backend.endpoint("order_status"),
        "requires_approval": false,
    }]);
    let path = temp_path("tools", "json");
    std::fs::write(&path, serde_json::to_vec(&tools).unwrap()).unwrap();
    let path = path.to_string_lossy().into_owned();
    let mut flags = traced(&receiver);
    flags.extend(
        [
            "--tools-file",
            &path,
            "--tool-signing-key",
            "tool-signing-key-0123456789abcdefghijklmnop",
            "--server-id",
            "replica-t",
        ]
        .map(String::from),
    );
    let gw = gateway_on(&upstream, &args(&flags));
    upstream.push(tool_call_reply(
        "call_a",
        "order_status",
        &[r#"{"order_id": 424242}"#],
    ));
    upstream.push(Reply::text(&["It ", "shipped."]));
    let mut client = connect(&gw, &Claims::user("ann", "acme").hs256()).await;
    let s = client.create_session().await;
    let frames = ask(&mut client, &s.id, "where is my order?").await;
    let end = frames.iter().find(|f| ty(f) == "turn.end").unwrap();
    assert_eq!(end["status"], "completed", "{end}");
    let turn_id = end["turn_id"].as_str().unwrap();
    assert_eq!(backend.hits().len(), 1);

    let turn = receiver
        .wait_for(EXPORTED, "the turn's span", |span| {
            span.name == "turn" && span.attr("turn_id") == Some(turn_id)
        })
        .await;
    assert_eq!(turn.attr("org_id"), Some("acme"));
    assert_eq!(turn.attr("status"), Some("completed"));
    let spans = receiver
        .wait_for(EXPORTED, "the turn's three children", |span| {
            span.name == "model_call"
                && span.parent_span_id == turn.span_id
                && span.attr("round") == Some("1")
        })
        .await;
    drop(spans);
    let all = receiver.spans();
    let names: Vec<&str> = children(&all, &turn)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["model_call", "tool_call", "model_call"],
        "{}",
        receiver.tree(&turn.trace_id)
    );
    let under = children(&all, &turn);
    let (asked, tool, answered) = (under[0], under[1], under[2]);
    assert_eq!(asked.attr("outcome"), Some("tool_calls"));
    assert_eq!(asked.attr("gen_ai.system"), Some("openai"));
    assert_eq!(asked.attr("gen_ai.request.model"), Some("test-model"));
    assert_eq!(asked.attr("gen_ai.usage.input_tokens"), Some("20"));
    assert_eq!(asked.attr("gen_ai.usage.output_tokens"), Some("5"));
    assert_eq!(tool.attr("gen_ai.tool.name"), Some("order_status"));
    assert_eq!(tool.attr("decision"), Some("automatic"));
    assert_eq!(tool.attr("outcome"), Some("ok"));
    assert_eq!(answered.attr("outcome"), Some("text"));
    assert_eq!(answered.attr("gen_ai.usage.input_tokens"), Some("11"));
    assert_eq!(answered.attr("gen_ai.usage.output_tokens"), Some("2"));
    for span in &under {
        assert_eq!(span.trace_id, turn.trace_id);
    }
    assert_nowhere(&all, "424242");
    assert_nowhere(&all, "shipped-7731");
    assert_nowhere(&all, "where is my order");
    println!("{}", receiver.tree(&turn.trace_id));
}

backed_tests! {
    /// `POST /v1/publish` on replica A, a member of the session on replica B: B's
    /// `deliver` span is a child of A's `publish` span, in its trace, and the event the
    /// member receives carries no trace context. A publish with a `traceparent` header
    /// continues the caller's trace.
    a_publish_on_one_replica_is_the_parent_of_the_delivery_on_another => publish_parents_delivery;
}

async fn publish_parents_delivery(backing: Backing) {
    let receiver = OtlpReceiver::start().await;
    let bp = Backplane::start(backing);
    let flags = traced(&receiver);
    let gw_a = replica_with(&bp, "replica-a", &args(&flags));
    let gw_b = replica_with(&bp, "replica-b", &args(&flags));
    let mut member = Client::connect(&gw_b.ws_url()).await;
    let s = member.create_session().await;

    let api_a = Api::new(&gw_a);
    let published = api_a
        .publish_ok(&publish_body(
            "session",
            &s.id,
            "order.shipped",
            json!({"n": 1}),
        ))
        .await;
    let seq = published["seq"].as_u64().unwrap();
    let event = member.next_of_type("event").await;
    assert_eq!(event["seq"], seq, "{event}");
    let fields: Vec<&String> = event.as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        [
            "data",
            "name",
            "publisher",
            "seq",
            "session_id",
            "ts",
            "type"
        ],
        "the frame is unchanged: {event}"
    );

    let publish = receiver
        .wait_for(EXPORTED, "replica A's publish span", |span| {
            span.name == "publish" && span.attr("seq") == Some(&seq.to_string())
        })
        .await;
    assert_eq!(publish.replica, "replica-a");
    assert_eq!(publish.attr("stream_kind"), Some("session"));
    let deliver = receiver
        .wait_for(EXPORTED, "replica B's deliver span", |span| {
            span.name == "deliver" && span.replica == "replica-b"
        })
        .await;
    assert_eq!(
        deliver.trace_id,
        publish.trace_id,
        "{}",
        receiver.tree(&publish.trace_id)
    );
    assert_eq!(deliver.parent_span_id, publish.span_id);
    assert_eq!(deliver.attr("seq"), Some(seq.to_string().as_str()));
    assert_eq!(deliver.attr("event_type"), Some("event"));
    assert_eq!(deliver.attr("members"), Some("1"));
    println!("{}", receiver.tree(&publish.trace_id));

    // A caller's trace context: the publish joins the caller's trace.
    let caller_trace = "0af7651916cd43dd8448eb211c80319c";
    let request = api_a
        .builder(reqwest::Method::POST, "/v1/publish")
        .bearer_auth(crate::support::http::PUBLISHER_SECRET)
        .header(
            "traceparent",
            format!("00-{caller_trace}-b7ad6b7169203331-01"),
        )
        .json(&publish_body(
            "session",
            &s.id,
            "order.delivered",
            json!({"n": 2}),
        ));
    let reply = api_a.run(request).await;
    reply.expect(202, "publish with a traceparent");
    let deliver = receiver
        .wait_for(EXPORTED, "the delivery in the caller's trace", |span| {
            span.name == "deliver" && span.trace_id == caller_trace
        })
        .await;
    assert_eq!(deliver.replica, "replica-b");
    let publish = receiver
        .wait_for(EXPORTED, "the publish in the caller's trace", |span| {
            span.name == "publish" && span.trace_id == caller_trace
        })
        .await;
    assert_eq!(publish.parent_span_id, "b7ad6b7169203331");
    assert_eq!(deliver.parent_span_id, publish.span_id);
}

/// A trace setting that cannot work stops the gateway at boot, naming the flag.
#[tokio::test]
async fn a_bad_trace_setting_stops_the_gateway_at_boot() {
    for (args, flag) in [
        (["--otlp-endpoint", "collector:4318"], "--otlp-endpoint"),
        (["--otlp-sample-ratio", "2"], "--otlp-sample-ratio"),
    ] {
        let out = crate::support::run_to_exit(&args, &[]).await;
        assert!(!out.status.success(), "{args:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}
