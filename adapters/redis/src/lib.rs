//! The Redis backplane: many gateway replicas share streams, live delivery and records
//! through one Redis (6.2 or newer).
//!
//! ```rust,ignore
//! // SWITCHBOARD_BACKPLANE=redis://[user:password@]host:6379[/db]  (rediss:// for TLS)
//! let backplane = RedisBackplane::connect(&url, "sb", retention).await?; // fails loud at boot
//! let backplane: Arc<dyn Backplane> = Arc::new(backplane);
//! ```
//!
//! The design (keys, scripts, live delivery, failures, measurements) is described in
//! `docs/backplanes.md`, "Redis". Where each concern lives:
//!
//! - `lib.rs`: [`RedisBackplane`] and its accessors.
//! - `options.rs`: [`RedisOptions`], every knob with its default.
//! - `connect.rs`: [`RedisBackplane::connect`]: the URL, credentials, the version check,
//!   loading the scripts.
//! - `keys.rs`: every key and channel name ([`StreamKeys`]), in one place.
//! - `scripts.rs` and `lua/*.lua`: the Lua scripts; `append.lua` is also what direct
//!   publishers run ([`append_script_source`]).
//! - `command.rs`: running one command: its timeout, its failure as an [`ErrorKind`],
//!   numbers to and from Redis.
//! - `backplane.rs`: the [`Backplane`] methods, each delegating to `history.rs`,
//!   `lifecycle.rs`, `live/` or `records.rs`.
//! - `history.rs`: `append`, `read` and a stream's head.
//! - `lifecycle.rs`: `delete_stream` and `ensure_seq_above`.
//! - `records.rs`: records and their namespace index.
//! - `live/`: live delivery: the one pub/sub connection, its dispatcher
//!   (`PubSubDispatcher`), reference-counted SUBSCRIBE/UNSUBSCRIBE, reconnects.
//! - `error.rs`: [`ConnectError`] and how `redis` errors map to [`ErrorKind`]s.
//!
//! [`Backplane`]: switchboard_backplane::Backplane
//! [`ErrorKind`]: switchboard_backplane::ErrorKind

mod backplane;
mod command;
mod connect;
mod error;
mod history;
mod keys;
mod lifecycle;
mod live;
mod options;
mod records;
mod scripts;

use std::sync::Arc;

use redis::aio::ConnectionManager;
use switchboard_backplane::{Retention, StreamName};

pub use error::ConnectError;
pub use keys::StreamKeys;
pub use options::{DEFAULT_SUBSCRIPTION_CAPACITY, RedisOptions};
pub use scripts::{append_script_sha1, append_script_source};

use live::PubSubDispatcher;

/// The Redis backplane. **Scope: many replicas; history and records survive a gateway
/// restart, not a Redis flush** (nor a Redis restart without persistence).
///
/// Each value is one replica's client: a [`ConnectionManager`] (one multiplexed
/// connection, reconnected on demand) for commands and one dedicated pub/sub
/// connection for live delivery, with a dispatcher task. Dropping it ends every live
/// subscription as `Closed` and stops its tasks. `docs/backplanes.md` describes the key
/// layout, the scripts and the failure behaviour.
pub struct RedisBackplane {
    commands: ConnectionManager,
    pubsub: Arc<PubSubDispatcher>,
    tasks: Vec<tokio::task::AbortHandle>,
    prefix: String,
    retention: Retention,
    options: RedisOptions,
    /// The server without credentials, for messages.
    target: String,
    /// The password, to scrub from any message that might quote it.
    secret: Option<String>,
}

impl RedisBackplane {
    /// This backplane with room for `capacity` undelivered events per subscription (at
    /// least 1) before it ends as `Lagged`; applies to subscriptions made afterwards.
    pub fn with_subscription_capacity(mut self, capacity: usize) -> RedisBackplane {
        self.options.subscription_capacity = capacity.max(1);
        self
    }

    /// The retention this backplane applies.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// The key prefix, ending with `:` (unless empty).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The keys and channel of `stream` (the layout table of `docs/backplanes.md`).
    pub fn stream_keys(&self, stream: &StreamName) -> StreamKeys {
        StreamKeys::new(&self.prefix, stream)
    }

    /// Whether the pub/sub connection is up right now (`subscribe` answers
    /// `Unavailable` while it is not).
    pub fn is_live_connected(&self) -> bool {
        self.pubsub.is_connected()
    }

    /// How many streams this replica holds a Redis subscription for.
    pub fn subscribed_streams(&self) -> usize {
        self.pubsub.channel_count()
    }

    /// The server without credentials, e.g. `redis://10.0.0.5:6379/0`.
    pub fn target(&self) -> &str {
        &self.target
    }
}

impl std::fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("retention", &self.retention)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBackplane {
    fn drop(&mut self) {
        self.pubsub.close();
        for task in &self.tasks {
            task.abort();
        }
    }
}
