//! The in-memory backplane: the embedded default, for one replica.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{
    AppendError, Backplane, Event, EventBody, Offered, ReadError, RecordError, RecordKey, Replay,
    Retention, Seq, StreamError, StreamName, SubscribeError, Subscription, SubscriptionEnded,
    SubscriptionFeed,
};

/// How many undelivered events a subscription may queue before it ends as `Lagged`.
pub const DEFAULT_SUBSCRIPTION_CAPACITY: usize = 4096;

/// The in-memory backplane. **Scope: one replica; nothing survives a restart.**
///
/// Everything lives in this process: history, live fan-out and records. Use it for a
/// single gateway and for tests; run Redis or NATS when several replicas share
/// sessions.
///
/// Each stream has its own [`Mutex`] (never held across an `.await`). `append` assigns
/// `seq`, stores the event and offers it to every live subscription under that one
/// lock, so the order of `seq`, of history and of live delivery is the same by
/// construction. A subscriber that does not keep up ends as `Lagged`; an append never
/// waits for a subscriber.
///
/// Memory is bounded by [`Retention`]: per stream, at most `max_events` events, and
/// events older than `max_age` are dropped when the stream is next touched or by a
/// periodic sweep. A stream whose history is empty keeps a few bytes (its last `seq`)
/// so that `seq` never restarts, except through `delete_stream`. A stream that never
/// had an event and has no live subscription is forgotten by that sweep: nothing of
/// it can be observed (a read answers as for an unknown stream), and a session that
/// was created, subscribed and left costs nothing here afterwards.
///
/// `delete_stream` forgets the stream entirely (the name too: a user stream's name
/// identifies its user), so its `seq` starts again at 1; its live subscriptions end as
/// `Closed` after what was already queued, since a new history's `seq`s would go
/// backwards for them. `ensure_seq_above` raises `last_seq` (and `trimmed_through`)
/// and drops the retained history, all of which lies below the new `seq`.
pub struct MemoryBackplane {
    retention: Retention,
    subscription_capacity: usize,
    /// Lock order: a stream lock is never held while this map lock is taken. The
    /// sweep takes stream locks under the map lock, only of streams nobody else holds.
    streams: Mutex<HashMap<StreamName, Arc<Mutex<StreamState>>>>,
    records: Mutex<HashMap<String, HashMap<String, Record>>>,
    last_sweep: Mutex<Instant>,
}

/// One stream: retained history, its position, and its live subscribers.
#[derive(Default)]
struct StreamState {
    /// Retained events, oldest first, each with the monotonic instant it was appended.
    /// Age retention uses that instant, not `ts`, so a wall-clock jump neither keeps
    /// events forever nor drops a whole history at once.
    history: VecDeque<(Instant, Arc<Event>)>,
    /// The newest `seq` ever assigned (`0`: none). Survives trimming, so `seq` keeps
    /// increasing after the whole history expired.
    last_seq: Seq,
    /// The newest `ts` ever assigned: `ts` never goes backwards within a stream, even
    /// if the wall clock does.
    last_ts: u64,
    /// The highest `seq` retention removed (`0`: none). `read` reports `trimmed` when
    /// this is above the caller's `after`.
    trimmed_through: Seq,
    feeds: Vec<SubscriptionFeed>,
}

struct Record {
    value: Bytes,
    /// `None`: no time to live.
    expires_at: Option<Instant>,
}

impl Record {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// A poisoned lock only means another task panicked while holding it; every update
/// here leaves the state consistent at each step, so keep serving rather than cascade
/// the panic into every caller.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `now + ttl`, or `None` (never) when the sum does not fit an `Instant`.
fn expiry(now: Instant, ttl: Option<Duration>) -> Option<Instant> {
    ttl.and_then(|ttl| now.checked_add(ttl))
}

impl StreamState {
    /// Drop events beyond `max_events` or older than `max_age`, oldest first.
    fn apply_retention(&mut self, retention: &Retention, now: Instant) {
        while let Some((appended_at, event)) = self.history.front() {
            let too_many = self.history.len() > retention.max_events;
            let too_old = now.saturating_duration_since(*appended_at) > retention.max_age;
            if !too_many && !too_old {
                break;
            }
            self.trimmed_through = event.seq;
            self.history.pop_front();
        }
        // A burst may have grown the buffer far beyond what is retained now; give the
        // memory back so an idle stream costs what it holds, not what it once held.
        if self.history.capacity() > 64 && self.history.len() < self.history.capacity() / 4 {
            self.history.shrink_to(self.history.len() * 2);
        }
    }

    /// Forget subscriptions whose [`Subscription`] was dropped.
    fn prune_feeds(&mut self) {
        self.feeds.retain(|feed| !feed.is_closed());
    }
}

impl MemoryBackplane {
    /// A backplane keeping `retention` of history per stream, with subscriptions of
    /// [`DEFAULT_SUBSCRIPTION_CAPACITY`] events.
    pub fn new(retention: Retention) -> MemoryBackplane {
        MemoryBackplane::with_subscription_capacity(retention, DEFAULT_SUBSCRIPTION_CAPACITY)
    }

    /// Like [`MemoryBackplane::new`], with room for `capacity` undelivered events per
    /// subscription (at least 1) before it ends as `Lagged`.
    pub fn with_subscription_capacity(retention: Retention, capacity: usize) -> MemoryBackplane {
        MemoryBackplane {
            retention,
            subscription_capacity: capacity.max(1),
            streams: Mutex::new(HashMap::new()),
            records: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// The retention this backplane applies.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// The state of `stream`, created empty if needed.
    fn stream_state(&self, stream: &StreamName) -> Arc<Mutex<StreamState>> {
        lock(&self.streams)
            .entry(stream.clone())
            .or_default()
            .clone()
    }

    /// The state of `stream` if it was ever appended to or subscribed. Reads do not
    /// create state, so probing random names costs no memory.
    fn existing_stream_state(&self, stream: &StreamName) -> Option<Arc<Mutex<StreamState>>> {
        lock(&self.streams).get(stream).cloned()
    }

    /// Whether `stream` holds nothing anyone could observe: never appended to (nor
    /// raised by `ensure_seq_above`), no live subscription. Forgetting it loses nothing.
    fn forgettable(state: &StreamState) -> bool {
        state.last_seq == 0
            && state.history.is_empty()
            && state.feeds.iter().all(|feed| feed.is_closed())
    }

    /// How often idle streams and records are swept for expired entries.
    fn sweep_interval(&self) -> Duration {
        self.retention
            .max_age
            .clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// Age retention normally runs when a stream is touched; a stream nobody touches
    /// again would keep its expired history (and a record nobody reads, its value)
    /// forever. So at most once per interval, an append, a subscribe or a record write
    /// sweeps everything. It costs one short lock per stream, paid by whichever call
    /// comes due. Streams that hold nothing are forgotten.
    fn sweep_if_due(&self, now: Instant) {
        {
            let mut last = lock(&self.last_sweep);
            if now.saturating_duration_since(*last) < self.sweep_interval() {
                return;
            }
            *last = now;
        }
        // Clone the handles so the map lock is released before any stream lock is taken.
        let states: Vec<_> = lock(&self.streams).values().cloned().collect();
        for state in states {
            let mut state = lock(&state);
            state.apply_retention(&self.retention, now);
            state.prune_feeds();
        }
        // Only a stream whose handle the map alone holds: nobody is between taking it
        // and locking it (to subscribe or append), and nobody can take it while the
        // map is locked. So its lock is free, and what it holds is final.
        lock(&self.streams)
            .retain(|_, state| Arc::strong_count(state) > 1 || !Self::forgettable(&lock(state)));
        let mut records = lock(&self.records);
        records.retain(|_, namespace| {
            namespace.retain(|_, record| record.is_live(now));
            !namespace.is_empty()
        });
    }

    #[cfg(test)]
    fn feed_count(&self, stream: &StreamName) -> usize {
        self.existing_stream_state(stream)
            .map_or(0, |state| lock(&state).feeds.len())
    }

    #[cfg(test)]
    fn stream_count(&self) -> usize {
        lock(&self.streams).len()
    }
}

impl Default for MemoryBackplane {
    fn default() -> Self {
        MemoryBackplane::new(Retention::default())
    }
}

impl std::fmt::Debug for MemoryBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackplane")
            .field("retention", &self.retention)
            .field("subscription_capacity", &self.subscription_capacity)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Backplane for MemoryBackplane {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn append(
        &self,
        stream: &StreamName,
        body: EventBody,
    ) -> Result<Arc<Event>, AppendError> {
        self.append_traced(stream, body, None).await
    }

    async fn append_traced(
        &self,
        stream: &StreamName,
        body: EventBody,
        traceparent: Option<String>,
    ) -> Result<Arc<Event>, AppendError> {
        let now = Instant::now();
        self.sweep_if_due(now);
        let state = self.stream_state(stream);
        let mut state = lock(&state);
        // Seq assignment, storage and fan-out happen under this one lock: that is what
        // makes live order equal seq order equal history order.
        let seq = state.last_seq + 1;
        let ts = crate::now_ms().max(state.last_ts);
        let event = Arc::new(Event {
            seq,
            ts,
            traceparent,
            body,
        });
        state.last_seq = seq;
        state.last_ts = ts;
        state.history.push_back((now, event.clone()));
        state.apply_retention(&self.retention, now);
        // `offer` never waits: a full queue ends that subscription as `Lagged` (it
        // drains what it has, then reports why), so one slow reader cannot stall the
        // stream. Ended and dropped subscriptions are forgotten here.
        state
            .feeds
            .retain_mut(|feed| feed.offer(event.clone()) == Offered::Delivered);
        Ok(event)
    }

    async fn subscribe(&self, stream: &StreamName) -> Result<Subscription, SubscribeError> {
        self.sweep_if_due(Instant::now());
        let (subscription, feed) = Subscription::channel(self.subscription_capacity, None);
        let state = self.stream_state(stream);
        let mut state = lock(&state);
        // Pruned here too, so a stream that is subscribed and dropped over and over
        // without appends does not pile up dead feeds.
        state.prune_feeds();
        // Registered under the stream lock: every append that returns after this point
        // is offered to the new feed, and none before it is.
        state.feeds.push(feed);
        Ok(subscription)
    }

    async fn read(
        &self,
        stream: &StreamName,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Replay, ReadError> {
        let Some(state) = self.existing_stream_state(stream) else {
            return Ok(Replay::default());
        };
        let mut state = lock(&state);
        // Without this, an idle stream would replay events older than `max_age` until
        // its next append.
        state.apply_retention(&self.retention, Instant::now());
        let after = after.unwrap_or(0);
        let start = state
            .history
            .partition_point(|(_, event)| event.seq <= after);
        let events = state
            .history
            .range(start..)
            .take(limit)
            .map(|(_, event)| event.clone())
            .collect();
        Ok(Replay {
            events,
            last_seq: state.last_seq,
            trimmed: state.trimmed_through > after,
        })
    }

    async fn delete_stream(&self, stream: &StreamName) -> Result<bool, StreamError> {
        // Out of the map first: an append after this creates a new stream. One that
        // took the old handle before lands in the state forgotten here, as if it ran
        // just before the delete.
        let Some(state) = lock(&self.streams).remove(stream) else {
            return Ok(false);
        };
        let mut state = lock(&state);
        let held_anything = state.last_seq > 0 || !state.history.is_empty();
        for feed in &mut state.feeds {
            feed.end(SubscriptionEnded::Closed);
        }
        *state = StreamState::default();
        Ok(held_anything)
    }

    async fn ensure_seq_above(&self, stream: &StreamName, seq: Seq) -> Result<(), StreamError> {
        if seq == 0 {
            return Ok(());
        }
        let state = self.stream_state(stream);
        let mut state = lock(&state);
        if state.last_seq >= seq {
            return Ok(());
        }
        // Every retained event is at or below the old `last_seq`, so below `seq`: all
        // of it now counts as trimmed, and `read` must not return part of it while
        // reporting the rest as removed.
        state.history.clear();
        state.last_seq = seq;
        state.trimmed_through = seq;
        Ok(())
    }

    async fn record_put(
        &self,
        key: &RecordKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), RecordError> {
        self.sweep_if_due(Instant::now());
        let expires_at = expiry(Instant::now(), ttl);
        lock(&self.records)
            .entry(key.namespace.clone())
            .or_default()
            .insert(key.key.clone(), Record { value, expires_at });
        Ok(())
    }

    async fn record_create(
        &self,
        key: &RecordKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, RecordError> {
        let now = Instant::now();
        self.sweep_if_due(now);
        let mut records = lock(&self.records);
        let namespace = records.entry(key.namespace.clone()).or_default();
        if namespace
            .get(&key.key)
            .is_some_and(|record| record.is_live(now))
        {
            return Ok(false);
        }
        let expires_at = expiry(now, ttl);
        namespace.insert(key.key.clone(), Record { value, expires_at });
        Ok(true)
    }

    async fn record_replace(
        &self,
        key: &RecordKey,
        expected: &[u8],
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool, RecordError> {
        let now = Instant::now();
        let mut records = lock(&self.records);
        let Some(namespace) = records.get_mut(&key.namespace) else {
            return Ok(false);
        };
        let matches = namespace
            .get(&key.key)
            .is_some_and(|record| record.is_live(now) && record.value.as_ref() == expected);
        if !matches {
            return Ok(false);
        }
        match new {
            Some(value) => {
                let expires_at = expiry(now, ttl);
                namespace.insert(key.key.clone(), Record { value, expires_at });
            }
            None => {
                namespace.remove(&key.key);
                if namespace.is_empty() {
                    records.remove(&key.namespace);
                }
            }
        }
        Ok(true)
    }

    async fn record_get(&self, key: &RecordKey) -> Result<Option<Bytes>, RecordError> {
        let now = Instant::now();
        let mut records = lock(&self.records);
        let Some(namespace) = records.get_mut(&key.namespace) else {
            return Ok(None);
        };
        match namespace.get(&key.key) {
            Some(record) if record.is_live(now) => Ok(Some(record.value.clone())),
            Some(_) => {
                namespace.remove(&key.key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn record_delete(&self, key: &RecordKey) -> Result<bool, RecordError> {
        let now = Instant::now();
        let mut records = lock(&self.records);
        let Some(namespace) = records.get_mut(&key.namespace) else {
            return Ok(false);
        };
        let removed = namespace.remove(&key.key);
        if namespace.is_empty() {
            records.remove(&key.namespace);
        }
        Ok(removed.is_some_and(|record| record.is_live(now)))
    }

    async fn record_list(&self, namespace: &str) -> Result<Vec<(String, Bytes)>, RecordError> {
        let now = Instant::now();
        let mut records = lock(&self.records);
        let Some(entries) = records.get_mut(namespace) else {
            return Ok(Vec::new());
        };
        entries.retain(|_, record| record.is_live(now));
        let list = entries
            .iter()
            .map(|(key, record)| (key.clone(), record.value.clone()))
            .collect();
        if entries.is_empty() {
            records.remove(namespace);
        }
        Ok(list)
    }

    async fn ping(&self) -> Result<(), ReadError> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn body(i: usize) -> EventBody {
        EventBody::TurnDelta {
            turn_id: "t".into(),
            text: i.to_string(),
        }
    }

    fn stream(id: &str) -> StreamName {
        StreamName::session(id).unwrap()
    }

    #[tokio::test]
    async fn dropped_subscriptions_are_pruned_on_append_and_on_subscribe() {
        let bp = MemoryBackplane::new(Retention::default());
        let s = stream("s1");
        for _ in 0..10 {
            drop(bp.subscribe(&s).await.unwrap());
        }
        // Each subscribe pruned the feeds dropped before it: only the last one is left.
        assert_eq!(bp.feed_count(&s), 1);
        bp.append(&s, body(0)).await.unwrap();
        assert_eq!(bp.feed_count(&s), 0);

        let _live = bp.subscribe(&s).await.unwrap();
        bp.append(&s, body(1)).await.unwrap();
        assert_eq!(bp.feed_count(&s), 1);
    }

    #[tokio::test]
    async fn a_lagged_feed_is_forgotten_and_the_subscriber_drains_then_sees_lagged() {
        let bp = MemoryBackplane::with_subscription_capacity(Retention::default(), 3);
        let s = stream("s1");
        let mut sub = bp.subscribe(&s).await.unwrap();
        for i in 0..5 {
            bp.append(&s, body(i)).await.unwrap();
        }
        assert_eq!(bp.feed_count(&s), 0);
        for seq in 1..=3 {
            assert_eq!(sub.next().await.unwrap().seq, seq);
        }
        assert_eq!(sub.next().await.unwrap_err(), SubscriptionEnded::Lagged);
        assert_eq!(sub.next().await.unwrap_err(), SubscriptionEnded::Lagged);
    }

    #[tokio::test]
    async fn seq_keeps_increasing_after_the_whole_history_expired() {
        let retention = Retention {
            max_events: 10,
            max_age: Duration::from_millis(20),
        };
        let bp = MemoryBackplane::new(retention);
        let s = stream("s1");
        let first = bp.append(&s, body(0)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        let replay = bp.read(&s, None, 10).await.unwrap();
        assert!(replay.events.is_empty());
        assert!(replay.trimmed);
        assert_eq!(replay.last_seq, first.seq);
        let second = bp.append(&s, body(1)).await.unwrap();
        assert!(second.seq > first.seq);
        assert!(second.ts >= first.ts);
    }

    #[tokio::test]
    async fn deleting_a_stream_forgets_it_and_ends_its_subscriptions_after_what_was_queued() {
        let bp = MemoryBackplane::default();
        let s = stream("s1");
        let mut sub = bp.subscribe(&s).await.unwrap();
        bp.append(&s, body(0)).await.unwrap();
        assert!(bp.delete_stream(&s).await.unwrap());
        assert_eq!(bp.stream_count(), 0, "nothing of the stream is kept");
        assert_eq!(sub.next().await.unwrap().seq, 1, "queued before the delete");
        assert_eq!(sub.next().await.unwrap_err(), SubscriptionEnded::Closed);
        assert_eq!(
            bp.append(&s, body(1)).await.unwrap().seq,
            1,
            "a new history"
        );
    }

    #[tokio::test]
    async fn reading_an_unknown_stream_creates_no_state() {
        let bp = MemoryBackplane::default();
        for i in 0..100 {
            let replay = bp
                .read(&stream(&format!("nope{i}")), None, 10)
                .await
                .unwrap();
            assert!(replay.events.is_empty());
            assert_eq!(replay.last_seq, 0);
            assert!(!replay.trimmed);
        }
        assert_eq!(bp.stream_count(), 0);
    }

    #[tokio::test]
    async fn a_burst_does_not_pin_its_buffer() {
        let retention = Retention {
            max_events: 10_000,
            max_age: Duration::from_millis(20),
        };
        let bp = MemoryBackplane::new(retention);
        let s = stream("s1");
        for i in 0..5000 {
            bp.append(&s, body(i)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(bp.read(&s, None, 10).await.unwrap().events.is_empty());
        let state = bp.existing_stream_state(&s).unwrap();
        assert!(lock(&state).history.capacity() <= 64);
    }

    /// Make the next call that sweeps do it now.
    fn make_sweep_due(bp: &MemoryBackplane) {
        *lock(&bp.last_sweep) = Instant::now()
            .checked_sub(Duration::from_secs(120))
            .unwrap();
    }

    #[tokio::test]
    async fn streams_subscribed_then_left_without_an_event_are_forgotten_by_the_sweep() {
        let bp = MemoryBackplane::default();
        // Sessions created and abandoned: each stream subscribed, then unsubscribed.
        for i in 0..1000 {
            drop(
                bp.subscribe(&stream(&format!("abandoned{i}")))
                    .await
                    .unwrap(),
            );
        }
        let watched = stream("watched");
        let mut live = bp.subscribe(&watched).await.unwrap();
        let spoken = stream("spoken");
        let first = bp.append(&spoken, body(0)).await.unwrap();
        let raised = stream("raised");
        bp.ensure_seq_above(&raised, 7).await.unwrap();
        assert_eq!(bp.stream_count(), 1003);

        make_sweep_due(&bp);
        bp.record_put(&RecordKey::new("ns", "k"), Bytes::from_static(b"v"), None)
            .await
            .unwrap();
        assert_eq!(
            bp.stream_count(),
            3,
            "only the subscribed stream and those with a seq are kept"
        );
        // What was kept still works, and `seq` never restarts.
        assert_eq!(
            bp.append(&spoken, body(1)).await.unwrap().seq,
            first.seq + 1
        );
        assert_eq!(bp.append(&raised, body(1)).await.unwrap().seq, 8);
        bp.append(&watched, body(2)).await.unwrap();
        assert_eq!(live.next().await.unwrap().seq, 1);
        // A forgotten stream reads as one never used, and starts at 1.
        let forgotten = stream("abandoned0");
        let replay = bp.read(&forgotten, None, 10).await.unwrap();
        assert!(replay.events.is_empty() && replay.last_seq == 0 && !replay.trimmed);
        assert_eq!(bp.append(&forgotten, body(0)).await.unwrap().seq, 1);
    }

    #[tokio::test]
    async fn a_stream_whose_handle_is_held_is_not_forgotten_under_its_holder() {
        let bp = MemoryBackplane::default();
        let s = stream("s1");
        drop(bp.subscribe(&s).await.unwrap());
        // A subscribe that took the handle and is about to lock it.
        let held = bp.stream_state(&s);
        make_sweep_due(&bp);
        drop(bp.subscribe(&stream("other")).await.unwrap());
        assert!(bp.existing_stream_state(&s).is_some());
        drop(held);
        make_sweep_due(&bp);
        bp.record_create(&RecordKey::new("ns", "k"), Bytes::from_static(b"v"), None)
            .await
            .unwrap();
        assert!(bp.existing_stream_state(&s).is_none());
    }

    #[tokio::test]
    async fn expired_records_are_purged_by_the_sweep() {
        let retention = Retention {
            max_events: 10,
            max_age: Duration::from_millis(1),
        };
        let bp = MemoryBackplane::new(retention);
        let key = RecordKey::new("ns", "k");
        bp.record_put(
            &key,
            Bytes::from_static(b"v"),
            Some(Duration::from_millis(1)),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Force the sweep to be due.
        *lock(&bp.last_sweep) = Instant::now().checked_sub(Duration::from_secs(2)).unwrap();
        bp.append(&stream("s1"), body(0)).await.unwrap();
        assert!(lock(&bp.records).is_empty());
    }
}
