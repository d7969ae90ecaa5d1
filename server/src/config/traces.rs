//! Flags: OpenTelemetry traces exported over OTLP/HTTP (docs/operations.md, "Traces").

use std::time::Duration;

use clap::Args;

use super::ConfigError;
use super::values::parse_duration;

/// Where and how much the gateway traces. Off unless an endpoint is given.
#[derive(Debug, Clone, Args)]
pub struct TraceExport {
    /// Base URL of an OTLP/HTTP collector, e.g. `http://otel-collector:4318`; spans
    /// are sent as protobuf to `<url>/v1/traces`. Unset: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// (the whole URL) or `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL) if either is set;
    /// with none of them the gateway records no spans at all. Headers for the collector
    /// (an API key) come from `OTEL_EXPORTER_OTLP_HEADERS`.
    #[arg(long, env = "SWITCHBOARD_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Share of traces kept, from 0 to 1 (default 1: all). Decided once per trace where
    /// it starts (a turn, a connection, a publish) and followed by every span of it,
    /// on every replica.
    #[arg(long, env = "SWITCHBOARD_OTLP_SAMPLE_RATIO", default_value_t = 1.0)]
    pub otlp_sample_ratio: f64,

    /// How long finished spans wait to be sent together (default 5s). Spans are sent in
    /// batches of at most 512; at most 2048 wait, and later ones are dropped while the
    /// collector is slow or down. Shutdown sends what waits.
    #[arg(long, env = "SWITCHBOARD_OTLP_BATCH_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub otlp_batch_delay: Duration,
}

/// The standard OpenTelemetry variables the exporter reads when `--otlp-endpoint` is unset.
pub const OTEL_ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

impl TraceExport {
    /// Whether spans are exported: an endpoint is given by flag or by the standard
    /// variables.
    pub fn enabled(&self) -> bool {
        self.otlp_endpoint.is_some()
            || OTEL_ENDPOINT_VARIABLES
                .iter()
                .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()))
    }

    /// The URL spans are posted to when `--otlp-endpoint` is given.
    pub fn traces_url(&self) -> Option<String> {
        self.otlp_endpoint
            .as_deref()
            .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.otlp_sample_ratio) {
            return Err(ConfigError {
                flag: "--otlp-sample-ratio",
                env: "SWITCHBOARD_OTLP_SAMPLE_RATIO",
                reason: format!("{} is not between 0 and 1", self.otlp_sample_ratio),
            });
        }
        if self.otlp_batch_delay.is_zero() {
            return Err(ConfigError {
                flag: "--otlp-batch-delay",
                env: "SWITCHBOARD_OTLP_BATCH_DELAY",
                reason: "must be greater than zero".into(),
            });
        }
        if let Some(url) = &self.otlp_endpoint {
            let parsed = url.parse::<axum::http::Uri>();
            let usable = parsed.as_ref().is_ok_and(|uri| {
                matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
            });
            if !usable {
                return Err(ConfigError {
                    flag: "--otlp-endpoint",
                    env: "SWITCHBOARD_OTLP_ENDPOINT",
                    reason: format!(
                        "{:?} is not an http:// or https:// URL with a host",
                        super::redact_url(url)
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse_serve;

    fn refusal(args: &[&str]) -> String {
        let config = parse_serve(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        match config.traces.validate() {
            Ok(()) => panic!("{args:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn traces_are_off_by_default_and_on_with_an_endpoint() {
        let config = parse_serve(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.traces.otlp_endpoint, None);
        assert_eq!(config.traces.traces_url(), None);
        assert_eq!(config.traces.otlp_sample_ratio, 1.0);
        let config = parse_serve(&["--otlp-endpoint", "http://collector:4318/"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(config.traces.enabled());
        assert!(config.traces.validate().is_ok());
        assert_eq!(
            config.traces.traces_url().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
    }

    #[test]
    fn bad_trace_settings_name_their_flag() {
        let e = refusal(&["--otlp-sample-ratio", "1.5"]);
        assert!(e.contains("--otlp-sample-ratio"), "{e}");
        let e = refusal(&["--otlp-batch-delay", "0s"]);
        assert!(e.contains("--otlp-batch-delay"), "{e}");
        for bad in ["collector:4318", "ftp://collector", "http://"] {
            let e = refusal(&["--otlp-endpoint", bad]);
            assert!(e.contains("--otlp-endpoint"), "{bad}: {e}");
        }
        let e = refusal(&["--otlp-endpoint", "grpc://user:secret@collector"]);
        assert!(!e.contains("secret"), "the password is not repeated: {e}");
    }
}
