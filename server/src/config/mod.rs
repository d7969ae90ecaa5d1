//! Configuration of `switchboard serve`: every flag, each also settable through the
//! `SWITCHBOARD_*` environment variable named in its help.
//!
//! Every limit is documented on its flag in one sentence: its default, and what a
//! client sees when it is exceeded. A value that cannot work fails at boot with a
//! message naming the flag and its environment variable.
//!
//! - [`serve`]: the flags ([`ServeConfig`]).
//! - [`command_line`]: argv, the environment and `--settings-file`, read at boot and
//!   on every reload.
//! - [`visitors`], [`session_quotas`], [`http_timeouts`], [`cost`],
//!   [`document_quota`]: limits for a gateway on the public internet, each group
//!   flattened into [`ServeConfig`].
//! - [`reloading`]: what a configuration reload re-reads.
//! - [`settings_file`]: `--settings-file`, the settings a reload can change.
//! - [`traces`]: OpenTelemetry trace export ([`TraceExport`]).
//! - [`validate`]: what clap cannot check: relations between settings, the backplane URL.
//! - [`values`]: the types of flag values (secrets, API keys, the backplane choice,
//!   durations).

mod command_line;
mod cost;
mod document_quota;
mod http_timeouts;
mod reloading;
mod serve;
mod session_quotas;
pub mod settings_file;
mod traces;
mod validate;
mod values;
mod visitors;

pub use command_line::{CommandLine, CommandLineError, Fingerprint, parse_command_line};
pub use cost::CostLimits;
pub use document_quota::DocumentQuota;
pub use http_timeouts::HttpTimeouts;
pub use reloading::Reloading;
pub use serve::ServeConfig;
pub use session_quotas::SessionQuotas;
pub use traces::TraceExport;
pub use validate::{ConfigError, parse_backplane, parse_store};
pub use values::{
    ApiKey, BackplaneChoice, ModelProviderChoice, Secret, StoreChoice, parse_duration, redact_url,
};
pub use visitors::VisitorLimits;

/// Parse `switchboard serve` flags alone, for tests of the configuration.
#[cfg(test)]
pub(crate) fn parse_serve(args: &[&str]) -> Result<ServeConfig, String> {
    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        serve: ServeConfig,
    }
    let mut full = vec!["switchboard"];
    full.extend_from_slice(args);
    <Flags as clap::Parser>::try_parse_from(full)
        .map(|f| f.serve)
        .map_err(|e| e.to_string())
}
