//! The NATS backplane: many gateway replicas share streams, live delivery and records
//! through one NATS server or cluster with JetStream (nats-server 2.9 or newer; 2.9
//! has no per-message or per-key TTL, and nothing here needs one).
//!
//! ```rust,ignore
//! // SWITCHBOARD_BACKPLANE=nats://[user:password@]host:4222  (tls:// for TLS)
//! let backplane = NatsBackplane::connect(&url, "sb", retention).await?; // fails loud at boot
//! let backplane: Arc<dyn Backplane> = Arc::new(backplane);
//! ```
//!
//! The design (names on the server, costs, retention, live delivery, failures,
//! measurements) is described in `docs/backplanes.md`, "NATS". Where each concern lives:
//!
//! - `lib.rs`: [`NatsBackplane`] and its accessors.
//! - `options.rs`: [`NatsOptions`], every knob with its default; URL redaction.
//! - `boot.rs`: [`NatsBackplane::connect`]: the client's connection (credentials,
//!   TLS, its reconnect schedule), JetStream's presence, a boot that says how far it got.
//! - `setup.rs`: creating or updating the event stream and the records bucket, safe
//!   when replicas boot together.
//! - `layout.rs`: every name on the server ([`Layout`]), and how record keys become KV
//!   keys.
//! - `shared.rs`: what every operation needs, and its bound (`Unavailable` while
//!   disconnected, `Timeout` past the operation timeout).
//! - `backplane.rs`: the [`Backplane`] methods, each delegating to `history.rs`,
//!   `lifecycle.rs`, `live/` or `records.rs`.
//! - `history.rs`: `append` and `read`, and how [`Retention`] maps onto JetStream.
//! - `lifecycle.rs`: `delete_stream` (a subject purge) and `ensure_seq_above` (a
//!   check: the shared JetStream sequence cannot be raised).
//! - `live/`: live delivery: one NATS subscription per subscribed stream
//!   (`SubscriptionTable`), putting republished messages back in order, and
//!   every way a subscription ends.
//! - `records.rs`: records in a KV bucket, their time to live, the sweep.
//! - `error.rs`: [`ConnectError`], and how `async-nats` errors map onto [`ErrorKind`]s.
//!
//! [`Backplane`]: switchboard_backplane::Backplane
//! [`Retention`]: switchboard_backplane::Retention
//! [`ErrorKind`]: switchboard_backplane::ErrorKind

mod backplane;
mod boot;
mod error;
mod history;
mod layout;
mod lifecycle;
mod live;
mod options;
mod records;
mod setup;
mod shared;

use std::sync::Arc;

use switchboard_backplane::RecordError;

pub use error::{ConnectError, ConnectErrorKind};
pub use layout::{EXPIRES_HEADER, Layout, TRACEPARENT_HEADER, TS_HEADER, valid_prefix};
pub use options::{
    DEFAULT_SUBSCRIPTION_CAPACITY, NatsOptions, Storage, default_history_grace, redact_url,
};

use live::Live;
use shared::Shared;

/// The NATS backplane. **Scope: many replicas, one NATS deployment (a server or a
/// cluster) with JetStream.** `docs/backplanes.md` describes the layout and the
/// guarantees.
///
/// Cheap to share behind an `Arc`; one per replica (it holds one NATS connection).
/// Dropping it ends every live [`Subscription`](switchboard_backplane::Subscription)
/// (`Closed`) and closes the connection.
pub struct NatsBackplane {
    shared: Arc<Shared>,
    live: Live,
}

impl NatsBackplane {
    /// The names this backplane uses on NATS.
    pub fn layout(&self) -> &Layout {
        &self.shared.layout
    }

    /// How many streams this replica holds a live NATS subscription for (one per
    /// stream with at least one subscription, whatever their number): a gauge for
    /// metrics, and how tests check that dropping the last subscription unsubscribes.
    pub fn subscribed_streams(&self) -> usize {
        self.live.table.topic_count()
    }

    /// Purge expired records and delete markers from the bucket now (the background
    /// sweep does it every [`NatsOptions::record_sweep_interval`]). Returns how many
    /// keys were purged.
    pub async fn sweep_records(&self) -> Result<usize, RecordError> {
        self.shared
            .run_inner(records::sweep(&self.shared))
            .await
            .map_err(|(kind, detail)| RecordError::new(kind, detail))
    }
}

impl std::fmt::Debug for NatsBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBackplane")
            .field("stream", &self.shared.layout.stream_name())
            .field("bucket", &self.shared.layout.bucket())
            .field("retention", &self.shared.retention)
            .finish_non_exhaustive()
    }
}
