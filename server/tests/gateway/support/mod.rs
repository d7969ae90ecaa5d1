//! What the gateway tests share. Processes (Redis, NATS, the gateway itself) and
//! bounded waits come from `switchboard_testkit`; this module adds what only gateway
//! tests need.
//!
//! - [`Gateway`]: the kit's gateway process, started from the binary cargo built for
//!   these tests, with the HTTP calls tests make on it.
//! - [`Client`]: a WebSocket client that speaks JSON frames; every wait is bounded by
//!   `tokio::time::timeout` and panics with a clear message when it runs out.
//!   [`RawClient`]: a hand-written one that can misbehave.
//! - [`http`], [`jwt`]: the `/v1` API with its keys, and tokens; [`sse`]: a session's
//!   event stream over Server-Sent Events.
//! - [`knowledge`]: knowledge files for the offline agent.
//! - [`upstream`], [`tool_backend`]: a fake OpenAI-compatible model server and a tool
//!   backend, scripted per request; [`webhook_receiver`]: a webhook endpoint that
//!   checks signatures and answers scripted statuses; [`otlp_receiver`]: an OTLP/HTTP
//!   trace collector that keeps the spans it is sent.
//! - [`replicas`]: several gateways over one real backplane.
//! - [`conversations`]: listings, exports and chats of conversations as records;
//!   [`stores`]: Redis and PostgreSQL read directly, to see what a gateway left there.
//! - [`turns`]: what a session's events say about its turns (the exactly-once rule).
//! - [`link`]: a WebSocket connection that reports failures instead of panicking, for
//!   clients that outlive the replica they talk to.

pub mod client;
pub mod conversations;
pub mod gateway;
pub mod http;
pub mod jwt;
pub mod knowledge;
pub mod link;
pub mod otlp_receiver;
pub mod raw;
pub mod replicas;
pub mod sse;
pub mod stores;
pub mod tool_backend;
pub mod turns;
pub mod upstream;
pub mod webhook_receiver;

use std::time::Duration;

use serde_json::Value;

pub use client::Client;
pub use gateway::{Gateway, run_to_exit};
pub use raw::{RawClient, RawEvent};

/// A session id that exists nowhere.
pub const MISSING_SESSION: &str = "s_00000000000000000000000000000000";

/// How long a single wait (a frame, a reply, a connect) may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The `type` of a frame (`""` when it has none).
pub fn ty(frame: &Value) -> &str {
    frame["type"].as_str().unwrap_or("")
}

/// Whether a frame is a session event (it has `seq` and `ts`), not a direct reply.
pub fn is_event(frame: &Value) -> bool {
    frame.get("seq").is_some() && frame.get("ts").is_some() && frame.get("session_id").is_some()
}

/// The `seq` of an event or reply, panicking when it has none.
pub fn seq(frame: &Value) -> u64 {
    frame["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("frame has no numeric seq: {frame}"))
}

/// Whether a frame is the assistant `message` that closes a completed turn.
pub fn is_assistant_message(frame: &Value) -> bool {
    ty(frame) == "message" && frame["role"] == "assistant"
}

/// The session events among `frames` that belong to `session_id`, in order.
pub fn events_of<'a>(frames: &'a [Value], session_id: &str) -> Vec<&'a Value> {
    frames
        .iter()
        .filter(|f| is_event(f) && f["session_id"] == session_id)
        .collect()
}

/// Panics unless the `seq`s of `events` are strictly increasing.
pub fn assert_strictly_increasing(events: &[Value]) {
    for pair in events.windows(2) {
        assert!(
            seq(&pair[1]) > seq(&pair[0]),
            "seq must strictly increase, got {} then {}:\n{}\n{}",
            seq(&pair[0]),
            seq(&pair[1]),
            pair[0],
            pair[1]
        );
    }
}

/// A short, printable summary of a frame list for assertion messages.
pub fn summary(frames: &[Value]) -> String {
    frames
        .iter()
        .map(|f| {
            let mut s = ty(f).to_string();
            if let Some(q) = f.get("seq") {
                s.push_str(&format!("#{q}"));
            }
            if let Some(st) = f.get("status") {
                s.push_str(&format!("({st})"));
            }
            if let Some(code) = f.get("code") {
                s.push_str(&format!("({code})"));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The sum of the samples of metric `name` in Prometheus text whose label set contains
/// `label` (e.g. `code="4000"`), or `None` when no such sample exists.
pub fn metric_sum(text: &str, name: &str, label: Option<&str>) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, labels) = match series.find('{') {
            Some(i) => (&series[..i], &series[i..]),
            None => (series, ""),
        };
        if series_name != name || label.is_some_and(|l| !labels.contains(l)) {
            continue;
        }
        if let Ok(v) = value.trim().parse::<f64>() {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}
