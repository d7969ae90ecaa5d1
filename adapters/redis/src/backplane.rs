//! The [`Backplane`] trait for [`RedisBackplane`], each method handed to the module
//! that owns its concern (`history.rs`, `lifecycle.rs`, `live/`, `records.rs`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use switchboard_backplane::{
    AppendError, Backplane, Event, EventBody, ReadError, RecordError, RecordKey, Replay, Seq,
    StreamError, StreamName, SubscribeError, Subscription,
};

use crate::RedisBackplane;

#[async_trait]
impl Backplane for RedisBackplane {
    fn name(&self) -> &'static str {
        "redis"
    }

    /// One round trip: `EVALSHA` of the append script.
    async fn append(
        &self,
        stream: &StreamName,
        body: EventBody,
    ) -> Result<Arc<Event>, AppendError> {
        self.append_event(stream, body, None).await
    }

    /// The same, with `traceparent` stored in the event's JSON (docs/protocol.md §8.1).
    async fn append_traced(
        &self,
        stream: &StreamName,
        body: EventBody,
        traceparent: Option<String>,
    ) -> Result<Arc<Event>, AppendError> {
        self.append_event(stream, body, traceparent).await
    }

    /// Registers locally, SUBSCRIBEs the stream's channel if this replica is not yet
    /// subscribed (waiting for Redis' confirmation), then reads the head (`HGET`) as
    /// the floor below which nothing is delivered.
    async fn subscribe(&self, stream: &StreamName) -> Result<Subscription, SubscribeError> {
        let keys = self.stream_keys(stream);
        self.pubsub
            .subscribe(
                &keys.live,
                self.options.subscription_capacity,
                self.head(&keys),
            )
            .await
    }

    /// One round trip: `EVALSHA` of the read script.
    async fn read(
        &self,
        stream: &StreamName,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Replay, ReadError> {
        self.read_history(stream, after, limit).await
    }

    /// One `DEL` of the stream's meta and log keys. Live subscriptions stay: they
    /// yield later appends whose `seq` is above the last one they delivered (a new
    /// history's `seq` is seeded from the clock, so normally it is).
    async fn delete_stream(&self, stream: &StreamName) -> Result<bool, StreamError> {
        self.delete_stream_keys(stream).await
    }

    /// One round trip: `EVALSHA` of the ensure-seq script. At most 2^53.
    async fn ensure_seq_above(&self, stream: &StreamName, seq: Seq) -> Result<(), StreamError> {
        self.raise_seq(stream, seq).await
    }

    async fn record_put(
        &self,
        key: &RecordKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), RecordError> {
        self.store_record(key, value, ttl, false).await.map(|_| ())
    }

    async fn record_create(
        &self,
        key: &RecordKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, RecordError> {
        self.store_record(key, value, ttl, true).await
    }

    async fn record_replace(
        &self,
        key: &RecordKey,
        expected: &[u8],
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool, RecordError> {
        self.replace_record(key, expected, new, ttl).await
    }

    async fn record_get(&self, key: &RecordKey) -> Result<Option<Bytes>, RecordError> {
        self.get_record(key).await
    }

    async fn record_delete(&self, key: &RecordKey) -> Result<bool, RecordError> {
        self.delete_record(key).await
    }

    async fn record_list(&self, namespace: &str) -> Result<Vec<(String, Bytes)>, RecordError> {
        self.list_records(namespace).await
    }

    async fn ping(&self) -> Result<(), ReadError> {
        let mut con = self.commands.clone();
        let _: String = self
            .run("PING", async {
                redis::cmd("PING").query_async(&mut con).await
            })
            .await
            .map_err(|(kind, detail)| ReadError::new(kind, detail))?;
        Ok(())
    }
}
