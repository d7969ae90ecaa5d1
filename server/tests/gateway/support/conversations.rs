//! Conversations as records from a test (docs/protocol.md §3.13): listing, the
//! summaries a listing holds, and waiting for the transcript writer (which writes off
//! the hot path, so a listing catches up shortly after the events it reflects).

use serde_json::{Value, json};
use switchboard_testkit::POLL;

use super::{Client, WAIT, events_of, ty};

/// `session.list` with `fields` → the `session.listed` reply (panics otherwise).
pub async fn list(client: &mut Client, fields: Value) -> Value {
    client
        .request_ok("session.list", fields, "session.listed")
        .await
}

/// The `session_id`s of a listing, in order.
pub fn ids(listing: &Value) -> Vec<String> {
    listing["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("no sessions array: {listing}"))
        .iter()
        .map(|s| s["session_id"].as_str().expect("session_id").to_string())
        .collect()
}

/// The summary of `session_id` in a listing, if it is there.
pub fn summary_in<'a>(listing: &'a Value, session_id: &str) -> Option<&'a Value> {
    listing["sessions"]
        .as_array()?
        .iter()
        .find(|s| s["session_id"] == session_id)
}

/// `session.list` with `fields` until `done` holds for the listing (the transcript
/// writer may lag the live events by a batch); panics with the last listing after
/// [`WAIT`].
pub async fn list_until(
    client: &mut Client,
    fields: Value,
    what: &str,
    mut done: impl FnMut(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let listing = list(client, fields.clone()).await;
        if done(&listing) {
            return listing;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}; last listing: {listing}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// `session.export` (JSON) until it holds `n` events and its summary is as new as
/// they are (an export reads the summary, then the events); the parsed export.
pub async fn export_json_with(client: &mut Client, session_id: &str, n: usize) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reply = client
            .request_ok(
                "session.export",
                json!({"session_id": session_id, "format": "json"}),
                "session.exported",
            )
            .await;
        let export: Value = serde_json::from_str(reply["content"].as_str().expect("content"))
            .unwrap_or_else(|e| panic!("a JSON export that is not JSON ({e}): {reply}"));
        let events = export["events"].as_array().cloned().unwrap_or_default();
        let held = events.len();
        let newest = events.last().map(|e| e["seq"].clone());
        if held == n && newest.is_some_and(|seq| export["session"]["last_seq"] == seq) {
            return export;
        }
        assert!(
            held <= n && tokio::time::Instant::now() < deadline,
            "the export of {session_id} must come to hold {n} events: {export}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Send `text` into `session_id` and read until its answer; the session's events of
/// that exchange (the accepted reply excluded), in order.
pub async fn chat(client: &mut Client, session_id: &str, text: &str) -> Vec<Value> {
    client.send_message(session_id, text).await;
    let frames = client.collect_turns(1).await;
    events_of(&frames, session_id)
        .into_iter()
        .cloned()
        .collect()
}

/// The events a transcript keeps (no `turn.start`, no `turn.delta`).
pub fn durable(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|f| !matches!(ty(f), "turn.start" | "turn.delta"))
        .cloned()
        .collect()
}

/// `event` without its `session_id` (an export's events are the session's own).
pub fn without_session_id(event: &Value) -> Value {
    let mut event = event.clone();
    if let Some(map) = event.as_object_mut() {
        map.remove("session_id");
    }
    event
}

/// What a listing shows of `text`: on one line, cut to `max` characters with `…`.
pub fn shortened(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// Panics unless `reply` is an `error` with `code`; returns its message.
pub fn error_message(reply: &Value, code: &str, what: &str) -> String {
    assert_eq!(ty(reply), "error", "{what}: {reply}");
    assert_eq!(reply["code"], code, "{what}: {reply}");
    reply["message"].as_str().expect("message").to_string()
}
