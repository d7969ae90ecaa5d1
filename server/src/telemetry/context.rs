//! W3C trace context (<https://www.w3.org/TR/trace-context/>) in and out of spans.
//!
//! A traced append carries the `traceparent` of the span that made it
//! (`Event::traceparent`, docs/protocol.md §8.1); the replica that delivers the event
//! to its sockets makes its `deliver` span a child of that context, so a publish on one
//! replica and its deliveries on every other replica are one trace.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of `span`, when traces are exported and the span is sampled.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    if !super::enabled() {
        return None;
    }
    let context = span.context();
    if !context.span().span_context().is_sampled() {
        return None;
    }
    let mut carrier = HashMap::with_capacity(1);
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Make `span` a child of the span `traceparent` names. A context that does not parse
/// is ignored: the span starts its own trace.
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        // Fails only for a span that is already started in OpenTelemetry's sense, which
        // a span just made is not.
        let _ = span.set_parent(parent);
    }
}

/// Make `span` a child of the `traceparent` header of an HTTP request, if it has one.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if let Some(value) = headers
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
    {
        set_parent(span, value);
    }
}
