//! The backplane: what carries events between replicas, keeps their history and holds
//! the small records every replica shares.
//!
//! # The contract, method by method
//!
//! - [`Backplane::append`] stores an event at the end of a stream and returns it with
//!   the `seq` and `ts` **the backplane** assigned. `seq` is strictly increasing within a
//!   stream (not promised contiguous). Appends to one stream are totally ordered: the
//!   order of `seq` is the order of history and the order of live delivery. An append
//!   that returned `Ok` is durable for as long as retention keeps it.
//!   [`Backplane::append_traced`] is the same with a trace context (a W3C
//!   `traceparent`) that travels with the event to every reader.
//! - [`Backplane::subscribe`] returns a live [`Subscription`] that yields every event
//!   appended to the stream **after** `subscribe` returned, in `seq` order, with no
//!   duplicate. When the backplane cannot keep that promise (the subscriber fell behind,
//!   the connection to the server dropped) the subscription **ends** with a
//!   [`SubscriptionEnded`] reason instead of skipping events silently; the caller then
//!   subscribes again and fills the gap with `read(after = last seq it saw)`.
//! - [`Backplane::read`] returns retained history after a `seq`, oldest first, at most
//!   `limit` events, with the stream's newest `seq` and a `trimmed` flag that is true
//!   when retention already removed events the caller asked for.
//! - [`Backplane::delete_stream`] removes a stream for good: its history, its `seq`
//!   counter and whatever else the backplane keeps for it (privacy erasure, deleted
//!   sessions). Afterwards `read` answers as for a stream never used (no events,
//!   `last_seq` 0, nothing trimmed). A later append starts a new history whose `seq`s
//!   are **not** promised to be above the deleted ones. A live subscription of the
//!   stream never yields an event of the deleted history it had not already been
//!   handed: it delivers what was queued before the delete, then either ends or yields
//!   only events appended after the delete (which one is the implementation's, see
//!   each backplane's docs); a caller deleting a stream drops its subscriptions.
//! - [`Backplane::ensure_seq_above`] makes every later append get a `seq` above a given
//!   one, for a stream whose transcript lives on elsewhere (the conversation store)
//!   while the backplane forgot it. When that raises the stream's `seq`, the history
//!   up to it counts as trimmed: `read(after = a)` with `a` below it reports
//!   `trimmed`, and `last_seq` is at least the given `seq`. When the stream's `seq` is
//!   already there, nothing changes. A backplane that cannot raise a stream's `seq`
//!   (NATS, whose `seq` is one sequence shared by all streams) changes nothing and
//!   marks nothing trimmed: it answers `Ok` when its shared sequence is already past
//!   the given `seq` (so later appends are above it anyway), an error otherwise.
//! - Records (`record_*`) are small shared values (sessions, documents, idempotency
//!   keys, turn leases) in namespaces, with an optional time to live;
//!   `record_create` and `record_replace` are the compare-and-set operations.
//!
//! # Resume without gap or duplicate
//!
//! The seam between live and history is where resume bugs live. The rule every caller
//! follows: **subscribe first, then read history, then drop live events whose `seq` the
//! replay already delivered.** Events appended between the two calls show up in both;
//! none can fall between them. The conformance suite checks exactly this.
//!
//! Every implementation must pass every function of the conformance suite, the module
//! `conformance` (behind the `conformance` feature, which tests turn on).

pub mod backoff;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod error;
pub mod memory;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

pub use backoff::Backoff;
pub use error::{AppendError, ErrorKind, ReadError, RecordError, StreamError, SubscribeError};
pub use memory::MemoryBackplane;
pub use switchboard_protocol::{Event, EventBody, Seq, StoredBody, StreamName};

/// How much history a backplane keeps per stream. An event is dropped when it is more
/// than `max_events` behind the newest or older than `max_age`, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_events: usize,
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_events: 1000,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// History after a position, as [`Backplane::read`] returns it.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// Retained events with `seq > after`, oldest first, at most `limit` of them.
    pub events: Vec<Arc<Event>>,
    /// The newest `seq` of the stream when the read ran (`0` if it never had an event),
    /// whether or not it is still retained.
    pub last_seq: Seq,
    /// True when events with `seq > after` were already removed by retention, so the
    /// replay starts later than asked.
    pub trimmed: bool,
}

/// Why a [`Subscription`] stopped yielding events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionEnded {
    /// The subscriber did not keep up; events were not delivered live.
    Lagged,
    /// The connection to the backplane server was lost.
    Disconnected,
    /// The backplane shut down.
    Closed,
}

/// Live events of one stream. See [`Backplane::subscribe`] for the promise it keeps.
/// Dropping it unsubscribes.
pub struct Subscription {
    events: mpsc::Receiver<Arc<Event>>,
    ended: Arc<std::sync::Mutex<Option<SubscriptionEnded>>>,
    _guard: Option<Box<dyn Send + Sync>>,
}

/// The producing half of a [`Subscription`], held by a backplane implementation.
pub struct SubscriptionFeed {
    events: mpsc::Sender<Arc<Event>>,
    ended: Arc<std::sync::Mutex<Option<SubscriptionEnded>>>,
}

/// What [`SubscriptionFeed::offer`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    Delivered,
    /// The subscriber's queue was full: the subscription is now ended as `Lagged`.
    Lagged,
    /// The subscriber dropped its [`Subscription`]; forget this feed.
    Gone,
}

impl Subscription {
    /// A subscription and its feed, with room for `capacity` undelivered events. The
    /// guard is dropped with the subscription (implementations unsubscribe there).
    pub fn channel(
        capacity: usize,
        guard: Option<Box<dyn Send + Sync>>,
    ) -> (Subscription, SubscriptionFeed) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let ended = Arc::new(std::sync::Mutex::new(None));
        (
            Subscription {
                events: rx,
                ended: ended.clone(),
                _guard: guard,
            },
            SubscriptionFeed { events: tx, ended },
        )
    }

    /// The next live event if one is already queued; `None` when none is (or the
    /// subscription ended: [`Subscription::next`] then says why).
    pub fn try_next(&mut self) -> Option<Arc<Event>> {
        self.events.try_recv().ok()
    }

    /// The next live event, or why the subscription ended. After an `Err` it stays ended.
    pub async fn next(&mut self) -> Result<Arc<Event>, SubscriptionEnded> {
        match self.events.recv().await {
            Some(event) => Ok(event),
            None => Err(self
                .ended
                .lock()
                .ok()
                .and_then(|e| *e)
                .unwrap_or(SubscriptionEnded::Closed)),
        }
    }
}

impl SubscriptionFeed {
    /// Hand an event to the subscriber without waiting. A full queue ends the
    /// subscription as `Lagged` rather than blocking the stream or dropping silently.
    pub fn offer(&mut self, event: Arc<Event>) -> Offered {
        match self.events.try_send(event) {
            Ok(()) => Offered::Delivered,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.end(SubscriptionEnded::Lagged);
                Offered::Lagged
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Offered::Gone,
        }
    }

    /// End the subscription with `reason`; the subscriber sees it after the events
    /// already queued. Later offers report `Gone`.
    pub fn end(&mut self, reason: SubscriptionEnded) {
        if let Ok(mut ended) = self.ended.lock() {
            ended.get_or_insert(reason);
        }
        // Replace the sender with a closed one so the receiver ends once drained.
        let (closed, _) = mpsc::channel(1);
        self.events = closed;
    }

    /// Whether the subscriber dropped its [`Subscription`].
    pub fn is_closed(&self) -> bool {
        self.events.is_closed()
    }
}

/// A key in the shared records: a namespace (`sessions`, `idempotency`, `documents`)
/// and a key within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordKey {
    pub namespace: String,
    pub key: String,
}

impl RecordKey {
    pub fn new(namespace: impl Into<String>, key: impl Into<String>) -> RecordKey {
        RecordKey {
            namespace: namespace.into(),
            key: key.into(),
        }
    }
}

/// Where events and shared records live. See the crate docs for the contract.
#[async_trait]
pub trait Backplane: Send + Sync + 'static {
    /// A short name for logs and metrics: `memory`, `redis`, `nats`.
    fn name(&self) -> &'static str;

    /// Append `body` to `stream`; the backplane assigns `seq` and `ts`. Ordered per
    /// stream with live delivery. On error nothing was stored.
    async fn append(&self, stream: &StreamName, body: EventBody)
    -> Result<Arc<Event>, AppendError>;

    /// [`Backplane::append`], carrying the W3C `traceparent` of the span that appended
    /// with the event: live deliveries and reads of it have it in
    /// [`Event::traceparent`], on every replica. The default drops it (for backplanes
    /// that cannot carry it); the memory, Redis and NATS backplanes carry it.
    async fn append_traced(
        &self,
        stream: &StreamName,
        body: EventBody,
        traceparent: Option<String>,
    ) -> Result<Arc<Event>, AppendError> {
        let _ = traceparent;
        self.append(stream, body).await
    }

    /// Live events appended after this call returns, in order, until the subscription
    /// ends with a reason. One subscription per stream per replica is the intended use.
    async fn subscribe(&self, stream: &StreamName) -> Result<Subscription, SubscribeError>;

    /// Retained events with `seq > after` (all retained events when `after` is `None`),
    /// oldest first, at most `limit`. See [`Replay`].
    async fn read(
        &self,
        stream: &StreamName,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Replay, ReadError>;

    /// Remove `stream` for good: its history, its `seq` counter and any metadata kept
    /// for it. Returns whether the backplane held anything of it (events, or a `seq`
    /// counter). Afterwards `read` answers as for a stream never used; a later append
    /// starts a new history, with `seq`s not promised above the deleted ones. Live
    /// subscriptions of it deliver what was already queued, then end or yield only
    /// later appends (see each implementation).
    async fn delete_stream(&self, stream: &StreamName) -> Result<bool, StreamError>;

    /// Make every later append to `stream` get a `seq` above `seq`. If the stream's
    /// `seq` is below, it is raised to `seq` and everything up to `seq` counts as
    /// trimmed (`read(after = a < seq)` reports `trimmed`, `last_seq >= seq`); if not,
    /// nothing changes. A backplane that cannot raise (NATS) answers `Ok` only where
    /// later appends are above `seq` anyway, and marks nothing trimmed.
    async fn ensure_seq_above(&self, stream: &StreamName, seq: Seq) -> Result<(), StreamError>;

    /// Store `value` at `key`, replacing any value, expiring after `ttl` if given.
    async fn record_put(
        &self,
        key: &RecordKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), RecordError>;

    /// Store `value` at `key` only if no live value is there. Returns whether it stored.
    /// Atomic across replicas: of two concurrent creates, exactly one returns `true`.
    async fn record_create(
        &self,
        key: &RecordKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, RecordError>;

    /// Replace the live value at `key` with `new` (remove it, for `None`) only if that
    /// value is exactly `expected` now; a replacement expires after `ttl` if given.
    /// Returns whether it did. Atomic across replicas: of two concurrent replaces that
    /// expect the same value, exactly one returns `true`. An absent or expired value
    /// never matches.
    async fn record_replace(
        &self,
        key: &RecordKey,
        expected: &[u8],
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool, RecordError>;

    /// The live value at `key`.
    async fn record_get(&self, key: &RecordKey) -> Result<Option<Bytes>, RecordError>;

    /// Remove `key`. Returns whether a live value was there.
    async fn record_delete(&self, key: &RecordKey) -> Result<bool, RecordError>;

    /// Every live `(key, value)` of a namespace, in no particular order.
    async fn record_list(&self, namespace: &str) -> Result<Vec<(String, Bytes)>, RecordError>;

    /// Whether the backplane is reachable now (for `/ready`).
    async fn ping(&self) -> Result<(), ReadError>;
}

/// Milliseconds since the Unix epoch, for `ts`.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
