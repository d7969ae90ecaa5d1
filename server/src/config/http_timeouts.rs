//! Flags: How long the HTTP server waits for a request's headers, an idle keep-alive connection and a WebSocket handshake.

use std::time::Duration;

use clap::Args;

use super::ConfigError;
use super::values::parse_duration;

/// How long the HTTP server waits for a request's headers, an idle keep-alive connection and a WebSocket handshake.
#[derive(Debug, Clone, Args)]
pub struct HttpTimeouts {
    /// How long a new TCP connection may take to send its first request's headers,
    /// counted from the accept (default 10s). Past it the connection is closed without
    /// an answer. At most `--http-idle-timeout`.
    #[arg(long, env = "SWITCHBOARD_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http_header_timeout: Duration,

    /// How long a kept-alive connection may wait for its next request's headers,
    /// counted from the end of the previous response (default 30s). Past it the
    /// connection is closed; the client opens a new one.
    #[arg(long, env = "SWITCHBOARD_HTTP_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub http_idle_timeout: Duration,

    /// How long `GET /ws` may take between its request and the upgrade — checking the
    /// credentials included (default 10s). Past it the upgrade is refused with HTTP 503
    /// `unavailable` and `Retry-After`.
    #[arg(long, env = "SWITCHBOARD_WS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub ws_handshake_timeout: Duration,
}

impl HttpTimeouts {
    /// Zero would close every connection at once; a header timeout over the idle
    /// timeout would not be the first request's bound (hyper's idle timer also runs
    /// while the first request's headers arrive).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let zero = |flag, env| ConfigError {
            flag,
            env,
            reason: "must be greater than zero".into(),
        };
        if self.http_header_timeout.is_zero() {
            return Err(zero(
                "--http-header-timeout",
                "SWITCHBOARD_HTTP_HEADER_TIMEOUT",
            ));
        }
        if self.http_idle_timeout.is_zero() {
            return Err(zero("--http-idle-timeout", "SWITCHBOARD_HTTP_IDLE_TIMEOUT"));
        }
        if self.ws_handshake_timeout.is_zero() {
            return Err(zero(
                "--ws-handshake-timeout",
                "SWITCHBOARD_WS_HANDSHAKE_TIMEOUT",
            ));
        }
        if self.http_header_timeout > self.http_idle_timeout {
            return Err(ConfigError {
                flag: "--http-header-timeout",
                env: "SWITCHBOARD_HTTP_HEADER_TIMEOUT",
                reason: format!(
                    "must not be longer than --http-idle-timeout ({})",
                    humantime::format_duration(self.http_idle_timeout)
                ),
            });
        }
        Ok(())
    }
}
