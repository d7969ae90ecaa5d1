//! The OTLP/HTTP exporter, the tracer provider and the `tracing` layer that feeds it.
//!
//! Finished spans wait in the batch processor's bounded queue (2048 spans; later ones
//! are dropped while the collector is slow or down) and are posted as protobuf from its
//! own thread every `--otlp-batch-delay`, so no request path ever waits on the
//! collector. [`TraceExporter::shutdown`] posts what is still waiting.

use std::time::Duration;

use anyhow::Context;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

use crate::config::TraceExport;

/// The service name when `OTEL_SERVICE_NAME` is unset.
pub const SERVICE_NAME: &str = "switchboard";

/// How long shutdown waits for the last spans to reach the collector.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(5);

/// The running exporter; [`TraceExporter::shutdown`] flushes it.
pub struct TraceExporter {
    provider: SdkTracerProvider,
}

impl TraceExporter {
    /// Post every finished span still waiting, then stop. Blocks (up to 5 s): call it
    /// outside the async runtime, after the drain.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(SHUTDOWN_PATIENCE) {
            tracing::warn!(error = %e, "traces: the last spans could not be sent");
        }
    }
}

/// When `config` enables traces: build the exporter for replica `server_id` and return
/// the layer to add to the subscriber, with the exporter to shut down at exit. `None`:
/// traces are off and nothing was started.
pub fn install<S>(
    config: &TraceExport,
    server_id: &str,
) -> anyhow::Result<Option<(impl Layer<S> + Send + Sync + 'static, TraceExporter)>>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    if !config.enabled() {
        return Ok(None);
    }
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(url) = config.traces_url() {
        exporter = exporter.with_endpoint(url);
    }
    let exporter = exporter
        .build()
        .context("--otlp-endpoint (SWITCHBOARD_OTLP_ENDPOINT): cannot build the OTLP exporter")?;
    let batches = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(config.otlp_batch_delay)
                .build(),
        )
        .build();
    let service_name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| SERVICE_NAME.to_string());
    let resource = Resource::builder()
        .with_service_name(service_name)
        .with_attributes([
            KeyValue::new("service.instance.id", server_id.to_string()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        ])
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.otlp_sample_ratio,
        ))))
        .with_resource(resource)
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("switchboard"))
        // Busy and idle time per span, thread and code location: bytes and work on
        // every span that the traces do not need.
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_target(false)
        .with_level(false)
        .with_filter(Targets::new().with_target(super::TARGET, tracing::Level::INFO));
    super::set_enabled();
    Ok(Some((layer, TraceExporter { provider })))
}
