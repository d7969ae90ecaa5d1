//! The OpenAI-compatible model client, end to end: a real gateway streaming from a
//! fake upstream (`support::upstream`) that speaks the chat-completions SSE format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::upstream::{self, Reply, SseEvent, StreamEnd, Upstream};

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
