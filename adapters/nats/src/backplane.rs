//! The [`Backplane`] trait for [`NatsBackplane`], each method handed to the module that
//! owns its concern (`history.rs`, `lifecycle.rs`, `live/`, `records.rs`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use switchboard_backplane::{
    AppendError, Backplane, Event, EventBody, ReadError, RecordError, RecordKey, Replay, Seq,
    StreamError, StreamName, SubscribeError, Subscription,
};

use crate::{NatsBackplane, history, lifecycle, records};

#[async_trait]
impl Backplane for NatsBackplane {
    fn name(&self) -> &'static str {
        "nats"
    }

    async fn append(
        &self,
        stream: &StreamName,
        body: EventBody,
    ) -> Result<Arc<Event>, AppendError> {
        history::append(&self.shared, stream, body, None).await
    }

    /// The same, with `traceparent` in the message's `traceparent` header.
    async fn append_traced(
        &self,
        stream: &StreamName,
        body: EventBody,
        traceparent: Option<String>,
    ) -> Result<Arc<Event>, AppendError> {
        history::append(&self.shared, stream, body, traceparent).await
    }

    async fn subscribe(&self, stream: &StreamName) -> Result<Subscription, SubscribeError> {
        self.live.subscribe(stream).await
    }

    async fn read(
        &self,
        stream: &StreamName,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Replay, ReadError> {
        history::read(&self.shared, stream, after, limit).await
    }

    /// One subject purge. Live subscriptions stay and yield later appends: their
    /// `seq`s (JetStream's shared sequence) are above the deleted ones, and the first
    /// one, with no predecessor left on the subject, follows whatever came before.
    async fn delete_stream(&self, stream: &StreamName) -> Result<bool, StreamError> {
        lifecycle::delete(&self.shared, stream).await
    }

    /// Never raises (the seq is JetStream's shared sequence): `Ok` when that sequence
    /// is already at `seq`, marking nothing trimmed; `Rejected` below it.
    async fn ensure_seq_above(&self, _stream: &StreamName, seq: Seq) -> Result<(), StreamError> {
        lifecycle::ensure_seq_above(&self.shared, seq).await
    }

    async fn record_put(
        &self,
        key: &RecordKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), RecordError> {
        records::put(&self.shared, key, value, ttl).await
    }

    async fn record_create(
        &self,
        key: &RecordKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, RecordError> {
        records::create(&self.shared, key, value, ttl).await
    }

    async fn record_replace(
        &self,
        key: &RecordKey,
        expected: &[u8],
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool, RecordError> {
        records::replace(&self.shared, key, expected, new, ttl).await
    }

    async fn record_get(&self, key: &RecordKey) -> Result<Option<Bytes>, RecordError> {
        records::get(&self.shared, key).await
    }

    async fn record_delete(&self, key: &RecordKey) -> Result<bool, RecordError> {
        records::delete(&self.shared, key).await
    }

    async fn record_list(&self, namespace: &str) -> Result<Vec<(String, Bytes)>, RecordError> {
        records::list(&self.shared, namespace).await
    }

    /// Ready means JetStream answers for the events stream (one round trip).
    async fn ping(&self) -> Result<(), ReadError> {
        let shared = &self.shared;
        shared
            .run(async { shared.events.get_info().await.map(|_| ()) })
            .await
            .map_err(|(kind, detail)| ReadError::new(kind, detail))
    }
}
