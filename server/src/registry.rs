//! The local registry: which connections of this replica are members of which
//! stream, and the one backplane subscription per stream that feeds them.
//!
//! A [`Hub`] exists per stream while it has local members. Its task holds the
//! subscription, serializes each event **once** and hands the shared bytes to every
//! member's outbound queue without waiting. When the subscription ends (the hub fell
//! behind, the backplane reconnected) the task subscribes again and fills the gap from
//! history, so members never miss an event and never see one twice.
//!
//! Joining with replay follows the seam rule of the backplane contract: the member is
//! added as *pending* (live events are buffered for it), history is read and sent,
//! then the buffer is flushed minus what the replay already delivered, and the member
//! turns live.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use switchboard_backplane::{Backplane, Event, Replay, Seq, StreamName};
use switchboard_protocol::EventFrame;
use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

use crate::connection::outbound::Outbound;
use crate::error::ClientError;
use crate::metrics::Metrics;

/// Events read from history per backplane round trip during a replay.
const REPLAY_PAGE: usize = 256;
/// Live events buffered for a member while its replay runs; more and it is treated
/// as a slow consumer (it resumes with `after_seq`).
const MAX_PENDING_EVENTS: usize = 8192;
/// How long a join waits for the stream's first subscription.
const SUBSCRIBE_PATIENCE: Duration = Duration::from_secs(5);
/// How long a replay waits for room in a member's outbound queue per frame.
const REPLAY_PATIENCE: Duration = Duration::from_secs(10);
/// Resubscribe backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A connection's identity inside this replica.
pub type ConnectionId = u64;

enum MemberState {
    /// Replay in progress: live events wait here.
    Pending(Vec<(Seq, Utf8Bytes)>),
    /// Live: events with `seq > after` go straight to the outbound queue.
    Live { after: Seq },
}

struct Member {
    outbound: Arc<Outbound>,
    state: MemberState,
}

struct HubState {
    members: HashMap<ConnectionId, Member>,
    /// The newest seq delivered to members; later duplicates (from a gap fill) are
    /// dropped.
    last_delivered: Option<Seq>,
    /// Every event up to here has reached the members: the stream's head when the
    /// hub first subscribed, then each delivered seq.
    covered: Seq,
}

struct HubShared {
    stream: StreamName,
    state: Mutex<HubState>,
    /// True once the first subscription is established.
    subscribed: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

/// One stream's local fan-out.
struct Hub {
    shared: Arc<HubShared>,
    _task: AbortOnDropHandle<()>,
}

/// What a join reports before the replay, for `session.joined`.
#[derive(Debug, Clone, Copy)]
pub struct JoinInfo {
    pub last_seq: Seq,
    pub trimmed: bool,
}

/// Streams with local members, and their hubs.
pub struct Registry {
    hubs: DashMap<StreamName, Hub>,
    backplane: Arc<dyn Backplane>,
    metrics: Arc<Metrics>,
}

impl HubShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hand one event to every member: serialized once, shared by all.
    fn deliver(&self, event: &Event) {
        let frame = Utf8Bytes::from(EventFrame::new(&self.stream, event).to_json());
        let mut state = self.lock();
        if state.last_delivered.is_some_and(|last| event.seq <= last) {
            return;
        }
        state.last_delivered = Some(event.seq);
        state.covered = state.covered.max(event.seq);
        let mut delivered = 0;
        for member in state.members.values_mut() {
            match &mut member.state {
                MemberState::Pending(buffer) => {
                    if buffer.len() < MAX_PENDING_EVENTS {
                        buffer.push((event.seq, frame.clone()));
                    } else {
                        member
                            .outbound
                            .close_with(switchboard_protocol::CloseCode::SlowConsumer);
                    }
                }
                MemberState::Live { after } => {
                    if event.seq > *after && member.outbound.enqueue(frame.clone()).is_ok() {
                        delivered += 1;
                    }
                }
            }
        }
        self.metrics.events_delivered.inc_by(delivered);
    }
}

/// The hub task: subscribe, fill gaps, deliver; resubscribe with backoff whenever the
/// subscription ends.
async fn run_hub(shared: Arc<HubShared>, backplane: Arc<dyn Backplane>) {
    let mut backoff = BACKOFF_MIN;
    // The stream's head when the first subscription was made: the gap fill after a
    // resubscribe starts here if nothing was delivered yet.
    let mut floor: Option<Seq> = None;
    loop {
        let started = Instant::now();
        let subscribed = backplane.subscribe(&shared.stream).await;
        shared
            .metrics
            .observe_backplane("subscribe", started, &subscribed);
        let mut subscription = match subscribed {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(stream = %shared.stream, error = %e, "subscribe failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let resume_from = shared.lock().last_delivered.or(floor);
        match resume_from {
            Some(after) => {
                if let Err(e) = fill_gap(&shared, backplane.as_ref(), after).await {
                    tracing::warn!(stream = %shared.stream, error = %e, "gap fill failed; resubscribing");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
            None => match backplane.read(&shared.stream, None, 0).await {
                Ok(head) => {
                    floor = Some(head.last_seq);
                    let mut state = shared.lock();
                    state.covered = state.covered.max(head.last_seq);
                }
                Err(e) => {
                    tracing::warn!(stream = %shared.stream, error = %e, "reading the stream head failed; resubscribing");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        }
        backoff = BACKOFF_MIN;
        shared.subscribed.send_replace(true);
        loop {
            match subscription.next().await {
                Ok(event) => shared.deliver(&event),
                Err(reason) => {
                    tracing::warn!(stream = %shared.stream, ?reason, "subscription ended; resubscribing");
                    break;
                }
            }
        }
    }
}

/// Deliver every retained event after `after` (a resubscribe may have missed them).
async fn fill_gap(
    shared: &HubShared,
    backplane: &dyn Backplane,
    mut after: Seq,
) -> Result<(), switchboard_backplane::ReadError> {
    loop {
        let page = backplane
            .read(&shared.stream, Some(after), REPLAY_PAGE)
            .await?;
        for event in &page.events {
            shared.deliver(event);
            after = event.seq;
        }
        if page.events.len() < REPLAY_PAGE {
            return Ok(());
        }
    }
}

impl Registry {
    pub fn new(backplane: Arc<dyn Backplane>, metrics: Arc<Metrics>) -> Registry {
        Registry {
            hubs: DashMap::new(),
            backplane,
            metrics,
        }
    }

    /// Add `connection` to `stream`'s hub (creating it and its subscription if this is
    /// the first local member), in `state`. Runs under the map's entry lock so a
    /// concurrent last-leave cannot remove the hub in between.
    fn add_member(
        &self,
        stream: &StreamName,
        connection: ConnectionId,
        outbound: Arc<Outbound>,
        state: MemberState,
    ) -> Arc<HubShared> {
        let hub = self.hubs.entry(stream.clone()).or_insert_with(|| {
            let (subscribed, _) = watch::channel(false);
            let shared = Arc::new(HubShared {
                stream: stream.clone(),
                state: Mutex::new(HubState {
                    members: HashMap::new(),
                    last_delivered: None,
                    covered: 0,
                }),
                subscribed,
                metrics: self.metrics.clone(),
            });
            let task = tokio::spawn(run_hub(shared.clone(), self.backplane.clone()));
            self.metrics.streams_subscribed.inc();
            Hub {
                shared,
                _task: AbortOnDropHandle::new(task),
            }
        });
        hub.shared
            .lock()
            .members
            .insert(connection, Member { outbound, state });
        hub.shared.clone()
    }

    /// Join a stream live only (user and org streams: no replay in v1).
    pub fn join_live(
        &self,
        stream: &StreamName,
        connection: ConnectionId,
        outbound: Arc<Outbound>,
    ) {
        self.add_member(stream, connection, outbound, MemberState::Live { after: 0 });
    }

    /// Wait until `stream`'s hub has its backplane subscription, for at most
    /// [`SUBSCRIBE_PATIENCE`]; false if it has none by then, or no hub.
    pub async fn wait_subscribed(&self, stream: &StreamName) -> bool {
        let Some(mut subscribed) = self
            .hubs
            .get(stream)
            .map(|hub| hub.shared.subscribed.subscribe())
        else {
            return false;
        };
        tokio::time::timeout(SUBSCRIBE_PATIENCE, subscribed.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Join a stream with replay of history after `after`, then live, with no gap and
    /// no duplicate. `joined` builds the frame that precedes the replay
    /// (`session.joined`) from what the first history read found.
    pub async fn join_with_replay(
        &self,
        stream: &StreamName,
        connection: ConnectionId,
        outbound: &Arc<Outbound>,
        after: Option<Seq>,
        joined: impl FnOnce(JoinInfo) -> Utf8Bytes,
    ) -> Result<(), ClientError> {
        let hub = self.add_member(
            stream,
            connection,
            outbound.clone(),
            MemberState::Pending(Vec::new()),
        );
        match self.replay(&hub, outbound, after, joined).await {
            Ok(threshold) => {
                let mut state = hub.lock();
                if let Some(member) = state.members.get_mut(&connection)
                    && let MemberState::Pending(buffer) =
                        std::mem::replace(&mut member.state, MemberState::Live { after: threshold })
                {
                    for (seq, frame) in buffer {
                        if seq > threshold && member.outbound.enqueue(frame).is_err() {
                            break;
                        }
                    }
                }
                Ok(())
            }
            Err(e) => {
                self.leave(stream, connection);
                Err(e)
            }
        }
    }

    /// Send `joined` and the history after `after`; return the seq up to which the
    /// replay covered the stream.
    async fn replay(
        &self,
        hub: &HubShared,
        outbound: &Arc<Outbound>,
        after: Option<Seq>,
        joined: impl FnOnce(JoinInfo) -> Utf8Bytes,
    ) -> Result<Seq, ClientError> {
        // Subscribe first (the hub does), then read: nothing can fall in between.
        let mut subscribed = hub.subscribed.subscribe();
        if tokio::time::timeout(SUBSCRIBE_PATIENCE, subscribed.wait_for(|s| *s))
            .await
            .map_or(true, |r| r.is_err())
        {
            return Err(ClientError::new(
                switchboard_protocol::ErrorCode::Unavailable,
                "could not subscribe to the session on the backplane; retry in a moment",
            ));
        }
        let mut cursor = after;
        let mut joined = Some(joined);
        loop {
            let started = Instant::now();
            let page: Result<Replay, _> =
                self.backplane.read(&hub.stream, cursor, REPLAY_PAGE).await;
            self.metrics.observe_backplane("read", started, &page);
            let page = page?;
            if let Some(joined) = joined.take() {
                let frame = joined(JoinInfo {
                    last_seq: page.last_seq,
                    trimmed: page.trimmed,
                });
                if outbound
                    .enqueue_patiently(frame, REPLAY_PATIENCE)
                    .await
                    .is_err()
                {
                    return Err(closing());
                }
            }
            for event in &page.events {
                let frame = Utf8Bytes::from(EventFrame::new(&hub.stream, event).to_json());
                if outbound
                    .enqueue_patiently(frame, REPLAY_PATIENCE)
                    .await
                    .is_err()
                {
                    return Err(closing());
                }
                cursor = Some(event.seq);
            }
            if page.events.len() < REPLAY_PAGE {
                // A short page holds everything retained up to its `last_seq`.
                return Ok(page.last_seq.max(cursor.unwrap_or(0)));
            }
        }
    }

    /// Remove `connection` from `stream`; the last member drops the subscription.
    pub fn leave(&self, stream: &StreamName, connection: ConnectionId) {
        let removed = self.hubs.remove_if(stream, |_, hub| {
            let mut state = hub.shared.lock();
            state.members.remove(&connection);
            state.members.is_empty()
        });
        if removed.is_some() {
            self.metrics.streams_subscribed.dec();
        }
    }

    /// Wait (up to `patience`) until every hub has handed its members every event
    /// appended to its stream so far. Drain calls this after the last turn ends, so
    /// the `goaway` that follows cannot overtake a turn's final events.
    pub async fn settle(&self, patience: Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        let hubs: Vec<Arc<HubShared>> = self.hubs.iter().map(|h| h.shared.clone()).collect();
        for hub in hubs {
            let Ok(head) = self.backplane.read(&hub.stream, None, 0).await else {
                continue;
            };
            while hub.lock().covered < head.last_seq && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Number of streams with local members.
    pub fn stream_count(&self) -> usize {
        self.hubs.len()
    }
}

fn closing() -> ClientError {
    ClientError::new(
        switchboard_protocol::ErrorCode::Unavailable,
        "the connection is closing",
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use bytes::Bytes;
    use switchboard_backplane::{
        AppendError, MemoryBackplane, ReadError, RecordError, RecordKey, Retention, SubscribeError,
        Subscription,
    };
    use switchboard_protocol::EventBody;

    use super::*;
    use crate::connection::outbound::{OutboundReceiver, Outgoing};

    /// A memory backplane that counts subscriptions.
    struct Counting {
        inner: MemoryBackplane,
        subscribes: AtomicUsize,
    }

    #[async_trait]
    impl Backplane for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        async fn append(&self, s: &StreamName, b: EventBody) -> Result<Arc<Event>, AppendError> {
            self.inner.append(s, b).await
        }
        async fn subscribe(&self, s: &StreamName) -> Result<Subscription, SubscribeError> {
            self.subscribes.fetch_add(1, Ordering::SeqCst);
            self.inner.subscribe(s).await
        }
        async fn read(
            &self,
            s: &StreamName,
            a: Option<Seq>,
            l: usize,
        ) -> Result<Replay, ReadError> {
            self.inner.read(s, a, l).await
        }
        async fn record_put(
            &self,
            k: &RecordKey,
            v: Bytes,
            t: Option<Duration>,
        ) -> Result<(), RecordError> {
            self.inner.record_put(k, v, t).await
        }
        async fn record_create(
            &self,
            k: &RecordKey,
            v: Bytes,
            t: Option<Duration>,
        ) -> Result<bool, RecordError> {
            self.inner.record_create(k, v, t).await
        }
        async fn record_get(&self, k: &RecordKey) -> Result<Option<Bytes>, RecordError> {
            self.inner.record_get(k).await
        }
        async fn record_delete(&self, k: &RecordKey) -> Result<bool, RecordError> {
            self.inner.record_delete(k).await
        }
        async fn record_list(&self, n: &str) -> Result<Vec<(String, Bytes)>, RecordError> {
            self.inner.record_list(n).await
        }
        async fn ping(&self) -> Result<(), ReadError> {
            self.inner.ping().await
        }
    }

    fn setup() -> (Arc<Counting>, Registry) {
        let backplane = Arc::new(Counting {
            inner: MemoryBackplane::new(Retention::default()),
            subscribes: AtomicUsize::new(0),
        });
        let registry = Registry::new(backplane.clone(), Arc::new(Metrics::new().unwrap()));
        (backplane, registry)
    }

    fn delta(i: usize) -> EventBody {
        EventBody::TurnDelta {
            turn_id: "t".into(),
            text: format!("{i} "),
        }
    }

    async fn next_text(rx: &mut OutboundReceiver) -> Utf8Bytes {
        match tokio::time::timeout(Duration::from_secs(10), rx.rx.recv()).await {
            Ok(Some(Outgoing::Text(text))) => text,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    fn seq_of(frame: &Utf8Bytes) -> u64 {
        let value: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
        value["seq"].as_u64().unwrap()
    }

    /// Three local members of one stream share one backplane subscription, and every
    /// member receives the very same bytes for an event: it was serialized once.
    #[tokio::test]
    async fn one_subscription_per_stream_and_one_serialization_per_event() {
        let (backplane, registry) = setup();
        let stream = StreamName::session("s_1").unwrap();
        let mut members = Vec::new();
        for connection in 0..3 {
            let (outbound, mut rx) = Outbound::new(1 << 20);
            registry
                .join_with_replay(&stream, connection, &outbound, None, |_| "joined".into())
                .await
                .unwrap();
            assert_eq!(next_text(&mut rx).await.as_str(), "joined");
            members.push((outbound, rx));
        }
        assert_eq!(backplane.subscribes.load(Ordering::SeqCst), 1);
        assert_eq!(registry.stream_count(), 1);

        backplane.append(&stream, delta(1)).await.unwrap();
        let mut frames = Vec::new();
        for (_, rx) in &mut members {
            frames.push(next_text(rx).await);
        }
        assert_eq!(seq_of(&frames[0]), 1);
        let first = frames[0].as_str().as_ptr();
        assert!(
            frames.iter().all(|f| f.as_str().as_ptr() == first),
            "every member got the same allocation"
        );

        for connection in 0..3 {
            registry.leave(&stream, connection);
        }
        assert_eq!(registry.stream_count(), 0, "the last leave drops the hub");
    }

    /// A member joining while events are being appended receives every event exactly
    /// once, in order: replay and live meet with no gap and no duplicate.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn joining_during_appends_has_no_gap_and_no_duplicate() {
        let (backplane, registry) = setup();
        let registry = Arc::new(registry);
        let stream = StreamName::session("s_2").unwrap();
        // An existing member keeps the hub alive throughout.
        let (keeper, _keeper_rx) = Outbound::new(1 << 24);
        registry
            .join_with_replay(&stream, 0, &keeper, None, |_| "joined".into())
            .await
            .unwrap();
        const TOTAL: usize = 400;
        let writer = {
            let backplane = backplane.clone();
            let stream = stream.clone();
            tokio::spawn(async move {
                for i in 1..=TOTAL {
                    backplane.append(&stream, delta(i)).await.unwrap();
                    if i % 7 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        };
        let mut joiners = Vec::new();
        for connection in 1..=5 {
            tokio::task::yield_now().await;
            let (outbound, rx) = Outbound::new(1 << 24);
            registry
                .join_with_replay(&stream, connection, &outbound, None, |_| "joined".into())
                .await
                .unwrap();
            joiners.push((outbound, rx));
        }
        writer.await.unwrap();
        for (_, rx) in &mut joiners {
            assert_eq!(next_text(rx).await.as_str(), "joined");
            let mut seqs = Vec::new();
            while seqs.last() != Some(&(TOTAL as u64)) {
                seqs.push(seq_of(&next_text(rx).await));
            }
            let expected: Vec<u64> = (1..=TOTAL as u64).collect();
            assert_eq!(seqs, expected);
        }
    }
}
