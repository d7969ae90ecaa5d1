//! A backplane for unit tests that watch or break a few operations: [`Watched`] passes
//! every call to an inner backplane (a memory one by default) unless its [`Hooks`]
//! take it, so a test double states only what it changes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchboard_backplane::{
    AppendError, Backplane, Event, EventBody, MemoryBackplane, ReadError, RecordError, RecordKey,
    Replay, Retention, Seq, StreamError, StreamName, SubscribeError, Subscription,
};

/// What a test double does instead of the inner backplane; every method passes the
/// call on unless overridden.
#[async_trait::async_trait]
pub trait Hooks: Send + Sync + 'static {
    async fn append(
        &self,
        inner: &dyn Backplane,
        s: &StreamName,
        b: EventBody,
    ) -> Result<Arc<Event>, AppendError> {
        inner.append(s, b).await
    }
    async fn subscribe(
        &self,
        inner: &dyn Backplane,
        s: &StreamName,
    ) -> Result<Subscription, SubscribeError> {
        inner.subscribe(s).await
    }
    async fn read(
        &self,
        inner: &dyn Backplane,
        s: &StreamName,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Replay, ReadError> {
        inner.read(s, after, limit).await
    }
    async fn record_put(
        &self,
        inner: &dyn Backplane,
        k: &RecordKey,
        v: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), RecordError> {
        inner.record_put(k, v, ttl).await
    }
    async fn record_create(
        &self,
        inner: &dyn Backplane,
        k: &RecordKey,
        v: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, RecordError> {
        inner.record_create(k, v, ttl).await
    }
    async fn record_replace(
        &self,
        inner: &dyn Backplane,
        k: &RecordKey,
        expected: &[u8],
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool, RecordError> {
        inner.record_replace(k, expected, new, ttl).await
    }
    async fn record_get(
        &self,
        inner: &dyn Backplane,
        k: &RecordKey,
    ) -> Result<Option<Bytes>, RecordError> {
        inner.record_get(k).await
    }
    async fn record_delete(
        &self,
        inner: &dyn Backplane,
        k: &RecordKey,
    ) -> Result<bool, RecordError> {
        inner.record_delete(k).await
    }
    async fn record_list(
        &self,
        inner: &dyn Backplane,
        n: &str,
    ) -> Result<Vec<(String, Bytes)>, RecordError> {
        inner.record_list(n).await
    }
}

/// A backplane seen through `hooks` (reachable as fields of the double: `Watched`
/// derefs to its hooks).
pub struct Watched<H> {
    pub inner: Arc<dyn Backplane>,
    pub hooks: H,
}

impl<H: Hooks> Watched<H> {
    /// `hooks` over a fresh memory backplane with the default retention.
    pub fn new(hooks: H) -> Watched<H> {
        Watched::over(Arc::new(MemoryBackplane::new(Retention::default())), hooks)
    }

    /// `hooks` over `inner` (a backplane others use directly too).
    pub fn over(inner: Arc<dyn Backplane>, hooks: H) -> Watched<H> {
        Watched { inner, hooks }
    }
}

impl<H> std::ops::Deref for Watched<H> {
    type Target = H;
    fn deref(&self) -> &H {
        &self.hooks
    }
}

#[async_trait::async_trait]
impl<H: Hooks> Backplane for Watched<H> {
    fn name(&self) -> &'static str {
        "watched"
    }
    async fn append(&self, s: &StreamName, b: EventBody) -> Result<Arc<Event>, AppendError> {
        self.hooks.append(self.inner.as_ref(), s, b).await
    }
    async fn subscribe(&self, s: &StreamName) -> Result<Subscription, SubscribeError> {
        self.hooks.subscribe(self.inner.as_ref(), s).await
    }
    async fn read(&self, s: &StreamName, a: Option<Seq>, l: usize) -> Result<Replay, ReadError> {
        self.hooks.read(self.inner.as_ref(), s, a, l).await
    }
    async fn delete_stream(&self, s: &StreamName) -> Result<bool, StreamError> {
        self.inner.delete_stream(s).await
    }
    async fn ensure_seq_above(&self, s: &StreamName, seq: Seq) -> Result<(), StreamError> {
        self.inner.ensure_seq_above(s, seq).await
    }
    async fn record_put(
        &self,
        k: &RecordKey,
        v: Bytes,
        t: Option<Duration>,
    ) -> Result<(), RecordError> {
        self.hooks.record_put(self.inner.as_ref(), k, v, t).await
    }
    async fn record_create(
        &self,
        k: &RecordKey,
        v: Bytes,
        t: Option<Duration>,
    ) -> Result<bool, RecordError> {
        self.hooks.record_create(self.inner.as_ref(), k, v, t).await
    }
    async fn record_get(&self, k: &RecordKey) -> Result<Option<Bytes>, RecordError> {
        self.hooks.record_get(self.inner.as_ref(), k).await
    }
    async fn record_delete(&self, k: &RecordKey) -> Result<bool, RecordError> {
        self.hooks.record_delete(self.inner.as_ref(), k).await
    }
    async fn record_replace(
        &self,
        k: &RecordKey,
        e: &[u8],
        n: Option<Bytes>,
        t: Option<Duration>,
    ) -> Result<bool, RecordError> {
        self.hooks
            .record_replace(self.inner.as_ref(), k, e, n, t)
            .await
    }
    async fn record_list(&self, n: &str) -> Result<Vec<(String, Bytes)>, RecordError> {
        self.hooks.record_list(self.inner.as_ref(), n).await
    }
    async fn ping(&self) -> Result<(), ReadError> {
        self.inner.ping().await
    }
}
