//! Every exported span: its name, its attributes, where it starts and ends. Each maker
//! returns `Span::none()` when traces are off, so the paths that call them make no span
//! and record nothing then. `turn`, `connection`, `publish` and `deliver` never take
//! the span current where they are made as their parent: a turn starts its own trace,
//! and a publish or a delivery continues only the trace context it was given.
//!
//! | span | from → to | attributes |
//! |---|---|---|
//! | `connection` | `/ws` upgrade → socket closed | `org_id`, `anonymous`, `replica`, `close_code` |
//! | `turn` | turn started → ended | `session_id`, `turn_id`, `org_id`, `status` |
//! | `model_call` (child of `turn`) | one model round | `gen_ai.system`, `gen_ai.request.model`, `round`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`, `outcome` |
//! | `tool_call` (child of `turn`) | one tool call | `gen_ai.tool.name`, `decision`, `outcome` |
//! | `publish` | `POST /v1/publish` | `stream_kind`, `replica`, `seq` |
//! | `deliver` (child of the span that appended) | an event handed to this replica's sockets | `stream_kind`, `event_type`, `seq`, `members` |
//!
//! Every span's resource names its replica (`service.instance.id`, the server id).
//! No span carries a token, a message's text, tool arguments or a tool's output.

use std::sync::LazyLock;

use dashmap::DashMap;
use tracing::Span;
use tracing::field::Empty;

use super::{TARGET, enabled};

/// A turn: `status` is recorded by [`end_turn`].
pub fn turn(session_id: &str, turn_id: &str, org_id: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(target: TARGET, parent: None, "turn",
        otel.kind = "internal", session_id, turn_id, org_id,
        status = Empty, otel.status_code = Empty)
}

/// Record how a turn ended (`completed`, `cancelled`, `failed`).
pub fn end_turn(span: &Span, status: &str) {
    span.record("status", status);
    if status == "failed" {
        span.record("otel.status_code", "error");
    }
}

/// One round of the model, inside the current turn span.
pub fn model_call(provider: &str, model: &str, round: usize) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(target: TARGET, "model_call",
        otel.kind = "client",
        gen_ai.system = provider, gen_ai.request.model = model, round,
        gen_ai.usage.input_tokens = Empty, gen_ai.usage.output_tokens = Empty,
        outcome = Empty, otel.status_code = Empty)
}

/// How a model round ended: `text` (the reply is complete), `tool_calls` (the model
/// asked for tools), or `failed`; with the round's token counts when the model gave them.
pub fn end_model_call(span: &Span, outcome: &str, tokens: Option<(u64, u64)>) {
    if let Some((input, output)) = tokens {
        span.record("gen_ai.usage.input_tokens", input);
        span.record("gen_ai.usage.output_tokens", output);
    }
    span.record("outcome", outcome);
    if outcome == "failed" {
        span.record("otel.status_code", "error");
    }
}

/// One tool call, inside the current turn span.
pub fn tool_call(tool: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(target: TARGET, "tool_call",
        otel.kind = "client", gen_ai.tool.name = tool,
        decision = Empty, outcome = Empty, otel.status_code = Empty)
}

/// Who let a tool call run: `automatic` (no approval needed), `approved`, `denied`,
/// `timed_out`, `handoff` (the built-in handoff tool) or `refused` (no such tool, bad
/// arguments).
pub fn tool_decision(span: &Span, decision: &str) {
    span.record("decision", decision);
}

/// A tool call's result: `ok` or `failed`.
pub fn end_tool_call(span: &Span, ok: bool) {
    span.record("outcome", if ok { "ok" } else { "failed" });
    if !ok {
        span.record("otel.status_code", "error");
    }
}

/// `POST /v1/publish`; `stream_kind` is `session`, `user` or `org`. Its parent is the
/// request's `traceparent` header when it has one.
pub fn publish(stream_kind: &str, replica: &str, headers: &axum::http::HeaderMap) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(target: TARGET, parent: None, "publish",
        otel.kind = "server", stream_kind, replica, seq = Empty);
    super::context::set_parent_from_headers(&span, headers);
    span
}

/// The `seq` a publish got.
pub fn published(span: &Span, seq: u64) {
    span.record("seq", seq);
}

/// An event carrying a trace context handed to this replica's sockets: a child of the
/// span that appended it, on whichever replica that was. `None` for an event without
/// one, or when traces are off.
pub fn deliver(
    traceparent: Option<&str>,
    stream_kind: &str,
    event_type: &str,
    seq: u64,
) -> Option<Span> {
    let traceparent = traceparent.filter(|_| enabled())?;
    let span = tracing::info_span!(target: TARGET, parent: None, "deliver",
        otel.kind = "consumer", stream_kind, event_type, seq, members = Empty);
    super::context::set_parent(&span, traceparent);
    Some(span)
}

/// How many of this replica's sockets an event was queued to.
pub fn delivered(span: &Span, members: u64) {
    span.record("members", members);
}

/// Open connections' spans, by connection id. Kept here rather than in the
/// connection's task, whose every byte each idle connection carries: off, this map
/// stays empty.
static CONNECTIONS: LazyLock<DashMap<u64, Span>> = LazyLock::new(DashMap::new);

/// A connection opened (its upgrade is done and its credentials checked).
pub fn connection_opened(id: u64, org_id: &str, anonymous: bool, replica: &str) {
    if !enabled() {
        return;
    }
    let span = tracing::info_span!(target: TARGET, parent: None, "connection",
        otel.kind = "server", org_id, anonymous, replica, close_code = Empty);
    CONNECTIONS.insert(id, span);
}

/// A connection closed; `close_code` is the server's close code when it decided one.
pub fn connection_closed(id: u64, close_code: Option<u16>) {
    if !enabled() {
        return;
    }
    if let Some((_, span)) = CONNECTIONS.remove(&id)
        && let Some(code) = close_code
    {
        span.record("close_code", code);
    }
}
