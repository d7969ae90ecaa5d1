//! The OpenAI-compatible model client, end to end: a real gateway streaming from a
//! fake upstream (`support::upstream`) that speaks the chat-completions SSE format.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support;
use crate::support::upstream::{
    self, Reply, SseEvent, StreamEnd, Upstream, content_chunk, role_chunk,
};
use crate::support::{Client, Gateway, is_assistant_message, ty};

/// The API key the gateways send; it must never show in an error.
const API_KEY: &str = "sk-test-0123456789-never-shown";

/// A gateway on `base_url` with a 1 s idle timeout (unless `extra` sets one) and 2 retries (backoff 250 ms, 500 ms),
/// plus `extra` flags.
fn gateway(base_url: &str, extra: &[&str]) -> Gateway {
    let mut args = vec![
        "--model-provider",
        "openai",
        "--model-base-url",
        base_url,
        "--model",
        "test-model",
        "--model-retries",
        "2",
    ];
    if !extra.contains(&"--model-idle-timeout") {
        args.extend_from_slice(&["--model-idle-timeout", "1s"]);
    }
    args.extend_from_slice(extra);
    Gateway::start_with_env(&args, &[("SWITCHBOARD_MODEL_API_KEY", API_KEY)])
}

/// One question in a new session: the session events of its turn, up to `turn.end`
/// (and the assistant message when the turn completed), and the `turn.end` itself.
async fn ask(gw: &Gateway, question: &str) -> (Vec<Value>, Value) {
    let mut client = Client::connect(&gw.ws_url()).await;
    let session = client.create_session().await;
    client.send_message(&session.id, question).await;
    let mut frames = client.collect_until(|f| ty(f) == "turn.end").await;
    let end = frames.last().unwrap().clone();
    if end["status"] == "completed" {
        frames.extend(client.collect_until(is_assistant_message).await);
    }
    (frames, end)
}

fn delta_texts(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| ty(f) == "turn.delta")
        .map(|f| f["text"].as_str().unwrap().to_string())
        .collect()
}

/// Panics unless the turn failed with `error` exactly, keeping `text`.
fn assert_failed(end: &Value, error: &str, text: &str) {
    assert_eq!(end["status"], "failed", "{end}");
    assert_eq!(end["error"], error, "{end}");
    assert_eq!(end["text"], text, "the partial text is kept: {end}");
    assert!(!end.to_string().contains(API_KEY), "the key leaked: {end}");
}

/// Reads a whole response body chunk by chunk, under a timeout.
async fn body_text(mut resp: reqwest::Response) -> Result<String, String> {
    let mut text = String::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), resp.chunk()).await {
            Err(_) => return Err(format!("body stalled after {text:?}")),
            Ok(Err(e)) => return Err(format!("body failed after {text:?}: {e}")),
            Ok(Ok(None)) => return Ok(text),
            Ok(Ok(Some(bytes))) => text.push_str(std::str::from_utf8(&bytes).unwrap()),
        }
    }
}

fn http() -> reqwest::Client {
    support::gateway::http_client()
}

/// The test upstream itself: it streams a scripted reply as SSE events in order,
/// records the request, and answers 500 when its script is empty.
#[tokio::test]
async fn upstream_self_test_streams_scripted_replies_and_records_requests() {
    let upstream = Upstream::start().await;
    upstream.push(Reply::text(&["Hel", "lo"]).paced(Duration::from_millis(5)));
    let url = format!("{}/chat/completions", upstream.base_url());
    let resp = http()
        .post(&url)
        .bearer_auth("sk-test")
        .json(&json!({"model": "m", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let text = body_text(resp).await.unwrap();
    let data: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").unwrap())
        .collect();
    assert_eq!(
        data.len(),
        6,
        "role, 2 contents, finish, usage, [DONE]: {text}"
    );
    let contents: Vec<Value> = data[1..3]
        .iter()
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["choices"][0]["delta"]["content"].clone()
        })
        .collect();
    assert_eq!(contents, [json!("Hel"), json!("lo")]);
    assert_eq!(data[5], "[DONE]");

    let requests = upstream.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[0].header("authorization"), Some("Bearer sk-test"));
    assert_eq!(requests[0].body["model"], "m");
    assert_eq!(
        upstream.disconnects(),
        0,
        "a finished reply is no disconnect"
    );

    let unscripted = http().post(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(unscripted.status(), 500);
    assert_eq!(upstream.request_count(), 2);
}

/// The test upstream sees a client that drops a hanging reply as a disconnect, and
/// an aborted stream reaches the client as a body error (not as a disconnect).
#[tokio::test]
async fn upstream_self_test_observes_disconnects_and_cuts_streams() {
    let upstream = Upstream::start().await;
    let url = format!("{}/chat/completions", upstream.base_url());

    upstream.push(Reply::events(
        vec![SseEvent::json(upstream::content_chunk("partial"))],
        StreamEnd::Abort,
    ));
    let resp = http().post(&url).json(&json!({})).send().await.unwrap();
    let cut = body_text(resp).await;
    assert!(
        cut.is_err(),
        "an aborted stream must fail the body: {cut:?}"
    );

    upstream.push(Reply::hang());
    let mut resp = http().post(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let nothing = tokio::time::timeout(Duration::from_millis(200), resp.chunk()).await;
    assert!(
        nothing.is_err(),
        "a hanging reply sends nothing: {nothing:?}"
    );
    assert_eq!(upstream.disconnects(), 0);
    drop(resp);
    upstream.wait_for_disconnect(Duration::from_secs(5)).await;

    upstream.push(Reply::Silent);
    let pending = tokio::spawn({
        let request = http().post(&url).json(&json!({}));
        async move { request.send().await }
    });
    upstream.wait_for_requests(3, Duration::from_secs(5)).await;
    pending.abort();
    upstream
        .wait_for_disconnects(2, Duration::from_secs(5))
        .await;
}

/// Deltas reach the client in order, as the model sent them (spaced out, so none is
/// coalesced); `turn.end.text` and the assistant message are their concatenation, the
/// usage is the model's, and the request is an OpenAI streaming request.
#[tokio::test]
async fn deltas_arrive_in_order_and_the_reply_is_their_concatenation() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream.base_url(), &["--model-temperature", "0.2"]);
    let pieces = ["Refunds ", "take ", "five ", "working ", "days."];
    upstream.push(Reply::text(&pieces).paced(Duration::from_millis(30)));
    let (frames, end) = ask(&gw, "How long do refunds take?").await;

    assert_eq!(delta_texts(&frames), pieces);
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(end["text"], pieces.concat());
    assert_eq!(
        end["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16})
    );
    let message = frames.last().unwrap();
    assert!(is_assistant_message(message), "{message}");
    assert_eq!(message["text"], pieces.concat());

    let requests = upstream.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    assert_eq!(request.body["model"], "test-model");
    assert_eq!(request.body["stream"], true);
    assert_eq!(
        request.body["stream_options"],
        json!({"include_usage": true})
    );
    assert!((request.body["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    let last = request.body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["role"], "user", "{}", request.body);
    assert!(
        last["content"]
            .as_str()
            .unwrap()
            .contains("How long do refunds take?"),
        "{}",
        request.body
    );
    assert_eq!(
        upstream.disconnects(),
        0,
        "a finished reply is read to its end"
    );
}

/// Tokens that arrive together are coalesced into fewer `turn.delta` events, and the
/// text is exactly the same.
#[tokio::test]
async fn a_burst_of_tokens_is_coalesced_without_changing_the_text() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream.base_url(), &[]);
    let tokens: Vec<String> = (0..200).map(|i| format!("w{i} ")).collect();
    let token_refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    upstream.push(Reply::text(&token_refs));
    let (frames, end) = ask(&gw, "Say many words").await;
    let deltas = delta_texts(&frames);
    assert_eq!(deltas.concat(), tokens.concat());
    assert_eq!(end["text"], tokens.concat());
    assert!(
        deltas.len() < tokens.len() / 2,
        "200 tokens sent at once should make far fewer deltas, got {}",
        deltas.len()
    );
}

/// Nothing listens at the model's address: after the retries the turn fails saying
/// where it tried to go and why.
#[tokio::test]
async fn connection_refused_fails_the_turn_after_retries() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let gw = gateway(&base, &[]);
    let started = std::time::Instant::now();
    let (_, end) = ask(&gw, "Anyone there?").await;
    assert_eq!(end["status"], "failed", "{end}");
    let error = end["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("could not reach the model at {base}: "))
            && error.to_lowercase().contains("refused"),
        "{end}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(750),
        "2 retries with 250 ms then 500 ms of backoff, took {:?}",
        started.elapsed()
    );
}

/// A 4xx is the caller's fault: it is not retried, and the upstream's own message
/// reaches the user.
#[tokio::test]
async fn an_http_4xx_fails_at_once_with_the_upstreams_message() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream.base_url(), &[]);
    upstream.push(Reply::error(401, "Incorrect API key provided: sk-te***"));
    let (_, end) = ask(&gw, "Hello?").await;
    assert_failed(
        &end,
        "the model answered HTTP 401: Incorrect API key provided: sk-te***",
        "",
    );
    assert_eq!(upstream.request_count(), 1, "a 401 is not retried");

    upstream.push(Reply::status_text(404, "<html>no such route</html>"));
    let (_, end) = ask(&gw, "Hello again?").await;
    assert_failed(
        &end,
        "the model answered HTTP 404: <html>no such route</html>",
        "",
    );
}

/// A 5xx is retried, and after the last retry the turn fails with the status and the
/// upstream's message.
#[tokio::test]
async fn an_http_5xx_fails_after_the_retries() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream.base_url(), &[]);
    for _ in 0..3 {
        upstream.push(Reply::error(503, "The server is overloaded"));
    }
    let (_, end) = ask(&gw, "Hello?").await;
    assert_failed(
        &end,
        "the model answered HTTP 503: The server is overloaded",
        "",
    );
    assert_eq!(upstream.request_count(), 3, "one request and two retries");
}

/// A 503 then a good answer: the retry succeeds and the user never sees the 503.
#[tokio::test]
async fn a_503_then_success_completes_on_the_retry() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream.base_url(), &[]);
    upstream.push(Reply::error(503, "try again"));
    upstream.push(Reply::text(&["Second ", "time lucky."]));
    let (frames, end) = ask(&gw, "Hello?").await;
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(end["text"], "Second time lucky.");
    assert_eq!(delta_texts(&frames).concat(), "Second time lucky.");
    assert_eq!(upstream.request_count(), 2);
    let requests = upstream.requests();
    assert_eq!(
        requests[0].body, requests[1].body,
        "the retry sends the same request"
    );
}

/// A `data:` line that is not JSON fails the turn as a malformed stream, keeping the
/// text before it; the turn is not retried after a token.
#[tokio::test]
async fn a_malformed_stream_fails_the_turn_and_keeps_the_text() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream.base_url(), &[]);
    upstream.push(Reply::events(
        vec![
            SseEvent::json(role_chunk()),
            SseEvent::json(content_chunk("Before ")),
            SseEvent::raw("data: {\"choices\": [ this is not json\n\n"),
        ],
        StreamEnd::Done,
    ));
    let (_, end) = ask(&gw, "Hello?").await;
    assert_eq!(end["status"], "failed", "{end}");
    let error = end["error"].as_str().unwrap();
    assert!(
        error.starts_with("the model sent a malformed stream: ") && error.contains("not json"),
        "{end}"
    );
    assert_eq!(end["text"], "Before ");
    assert_eq!(upstream.request_count(), 1);
}

/// An error object inside the stream (as vLLM and LiteLLM send mid-stream) fails the
/// turn with its message.
#[tokio::test]
async fn an_error_inside_the_stream_fails_the_turn_with_its_message() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream.base_url(), &[]);
    upstream.push(Reply::chunks(vec![
        content_chunk("Partly "),
        json!({"error": {"message": "the engine ran out of memory", "code": 500}}),
    ]));
    let (_, end) = ask(&gw, "Hello?").await;
    assert_failed(
        &end,
        "the model reported an error: the engine ran out of memory",
        "Partly ",
    );
    assert_eq!(upstream.request_count(), 1, "no retry after a token");
}

/// A model that goes quiet for longer than the idle timeout — mid-reply, or before
/// it even answers with headers — fails the turn, and the gateway hangs up on it.
#[tokio::test]
async fn a_stall_past_the_idle_timeout_fails_the_turn_and_hangs_up() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream.base_url(), &[]);
    upstream.push(
        Reply::chunks(vec![role_chunk(), content_chunk("Let me think")]).ending(StreamEnd::Hang),
    );
    let started = std::time::Instant::now();
    let (_, end) = ask(&gw, "Hard question").await;
    assert_failed(
        &end,
        "the model sent nothing for 1s (--model-idle-timeout)",
        "Let me think",
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    upstream.wait_for_disconnect(Duration::from_secs(5)).await;

    upstream.push(Reply::Silent);
    let (_, end) = ask(&gw, "Are you there?").await;
    assert_failed(
        &end,
        "the model sent nothing for 1s (--model-idle-timeout)",
        "",
    );
    upstream
        .wait_for_disconnects(2, Duration::from_secs(5))
        .await;
    assert_eq!(upstream.request_count(), 2, "a stall is not retried");
}

/// The upstream closing early — its connection cut mid-reply, or its body ending with
/// no finish and no `[DONE]` — fails the turn and keeps the text so far, with no retry
/// after the first token.
#[tokio::test]
async fn the_upstream_closing_early_fails_the_turn_and_keeps_the_partial_text() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream.base_url(), &[]);
    for end in [StreamEnd::Abort, StreamEnd::Finish] {
        upstream.push(
            Reply::chunks(vec![
                role_chunk(),
                content_chunk("Half "),
                content_chunk("a reply"),
            ])
            .ending(end),
        );
        let (frames, turn_end) = ask(&gw, "Tell me everything").await;
        assert_failed(
            &turn_end,
            "the model's stream ended before the reply was finished",
            "Half a reply",
        );
        assert_eq!(delta_texts(&frames).concat(), "Half a reply", "{end:?}");
        assert!(
            frames.iter().all(|f| !is_assistant_message(f)),
            "a failed turn adds no assistant message"
        );
    }
    assert_eq!(upstream.request_count(), 2, "no retry after a token");
}

/// `turn.cancel` mid-stream ends the turn `cancelled` with the text so far, and the
/// upstream sees its connection closed.
#[tokio::test]
async fn cancel_mid_stream_closes_the_upstream_connection() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream.base_url(), &["--model-idle-timeout", "30s"]);
    let mut events: Vec<SseEvent> = vec![SseEvent::json(content_chunk("First. "))];
    // Keeps streaming, slowly, for far longer than the test.
    events.extend((0..100).map(|i| {
        SseEvent::json(content_chunk(&format!("more {i}. "))).after(Duration::from_millis(500))
    }));
    upstream.push(Reply::events(events, StreamEnd::Done));

    let mut client = Client::connect(&gw.ws_url()).await;
    let session = client.create_session().await;
    client.send_message(&session.id, "Go on and on").await;
    let frames = client.collect_until(|f| ty(f) == "turn.delta").await;
    let turn_id = frames
        .iter()
        .find(|f| ty(f) == "turn.start")
        .map(|f| f["turn_id"].clone())
        .unwrap();
    assert_eq!(upstream.disconnects(), 0);
    client
        .send_json(json!({"type": "turn.cancel", "session_id": session.id, "turn_id": turn_id}))
        .await;
    let frames = client.collect_until(|f| ty(f) == "turn.end").await;
    let end = frames.last().unwrap();
    assert_eq!(end["status"], "cancelled", "{end}");
    assert!(
        end["text"].as_str().unwrap().starts_with("First. "),
        "{end}"
    );
    upstream.wait_for_disconnect(Duration::from_secs(5)).await;
}

/// SIGTERM while the model hangs: when the drain grace runs out the turn fails
/// keeping its text, the upstream request is abandoned (its connection closed), and
/// the process exits 0.
#[tokio::test]
async fn drain_aborts_a_hanging_upstream_request() {
    let upstream = Upstream::start().await;
    let mut gw = gateway(
        &upstream.base_url(),
        &["--model-idle-timeout", "30s", "--drain-grace", "1500ms"],
    );
    upstream.push(Reply::chunks(vec![content_chunk("Working on it")]).ending(StreamEnd::Hang));
    let mut asker = Client::connect(&gw.ws_url()).await;
    let session = asker.create_session().await;
    asker.send_message(&session.id, "Slow question").await;
    asker.collect_until(|f| ty(f) == "turn.delta").await;
    gw.sigterm();
    let (frames, code, _) = asker.frames_until_close().await;
    assert_eq!(code, 1012, "draining close: {}", support::summary(&frames));
    assert_eq!(
        upstream.disconnects(),
        0,
        "the turn may still finish during the grace"
    );

    // A client that joins during the drain reads the turn to its end.
    let mut watcher = Client::connect(&gw.ws_url()).await;
    watcher
        .join(&session.id, None, session.key.as_deref())
        .await;
    let (frames, _, _) = watcher.frames_until_close().await;
    let end = frames
        .iter()
        .find(|f| ty(f) == "turn.end")
        .unwrap_or_else(|| panic!("no turn.end: {}", support::summary(&frames)));
    assert_eq!(end["status"], "failed", "{end}");
    assert_eq!(end["text"], "Working on it");
    assert!(
        end["error"].as_str().unwrap().contains("shut down"),
        "{end}"
    );
    upstream.wait_for_disconnect(Duration::from_secs(5)).await;
    let status = gw.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status after a drain: {status}");
}
