//! `GET /v1/sessions/{id}/stream`: a session's events as `text/event-stream` (docs/
//! protocol.md §6.16), for clients that cannot hold a WebSocket — a proxy that breaks
//! upgrades, a server that only speaks HTTP.
//!
//! An SSE stream is a member of the session's stream like a WebSocket connection that
//! joined it: the same join (the transcript, then the history, then live, with no gap
//! and no duplicate at the seams: `fanout::Registry::join_with_replay`), the same
//! bounded outbound queue (`fanout::Outbound`: a slow reader is closed and resumes
//! with `Last-Event-ID`), the same event frames byte for byte.
//!
//! - [`member`]: opening the membership, and what ends it (drain, token expiry);
//! - [`body`]: the queue written out as SSE events, and the final `close` event.

pub mod body;
pub mod member;

use std::time::Duration;

/// How often an idle stream sends a `: ping` comment, so proxies and browsers do not
/// time it out.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long a browser's `EventSource` waits before reconnecting (the `retry:` hint).
pub const RETRY: Duration = Duration::from_secs(2);
