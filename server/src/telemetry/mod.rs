//! OpenTelemetry traces (docs/operations.md, "Traces"): spans of connections, turns
//! (with their model and tool calls), publishes and deliveries, exported over OTLP/HTTP.
//!
//! Off unless an endpoint is configured (`--otlp-endpoint`): then no exporter runs, no
//! span is made on the paths below, and no event carries a trace context, so the cost
//! is one relaxed atomic load per place a span would start.
//!
//! - [`export`]: the exporter, the tracer provider and the `tracing` layer that feeds
//!   it; flushed at shutdown.
//! - [`context`]: W3C trace context (`traceparent`) out of a span and into one: how a
//!   publish on one replica becomes the parent of the deliveries on the others.
//! - [`spans`]: the spans themselves, their names and attributes, in one place.

pub mod context;
pub mod export;
pub mod spans;

use std::sync::atomic::{AtomicBool, Ordering};

pub use export::{TraceExporter, install};

/// The `tracing` target of every span meant for export; the export layer takes only
/// this target, so libraries' spans and the gateway's logs stay out of traces.
pub const TARGET: &str = "switchboard::trace";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: set once at boot by [`install`].
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn set_enabled() {
    ENABLED.store(true, Ordering::Relaxed);
}
