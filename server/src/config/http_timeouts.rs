//! Flags: How long the HTTP server waits for a request's headers, an idle keep-alive connection and a WebSocket handshake.

use clap::Args;

/// How long the HTTP server waits for a request's headers, an idle keep-alive connection and a WebSocket handshake.
#[derive(Debug, Clone, Default, Args)]
pub struct HttpTimeouts {}
