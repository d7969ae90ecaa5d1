//! Which local connections are members of which stream, and how a connection joins
//! one: live only (user and org streams), or with a replay of history (sessions).
//!
//! A [`Hub`](super::hub) exists per stream while it has local members: the first member
//! creates it and its one backplane subscription, the last one drops both. Creation
//! and last-leave run under the map's entry lock, so a join can never land in a hub
//! that is being removed.
//!
//! Joining with replay follows the seam rule of the backplane contract: the member is
//! added as *pending* (the hub buffers live events for it), history is read and sent,
//! then the buffer is flushed minus what the replay already delivered, and the member
//! turns live.
//!
//! A replay holds one page of history at a time, sized to the room in the member's
//! outbound queue (at most the queue's budget, by the largest event seen so far) and
//! reserved against the process's [`ReplayBudget`]: a member that does not read
//! makes its replay wait with a small page, not with a full one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use switchboard_backplane::{Backplane, Replay, Seq, StreamName};
use switchboard_protocol::EventFrame;

use super::hub::{ConnectionId, DEFAULT_FANOUT_WINDOW, Hub, HubShared, Member, MemberState, PAGE};
use super::outbound::Outbound;
use super::replay_budget::{DEFAULT_REPLAY_MEMORY_BYTES, ReplayBudget};
use crate::conversations::TranscriptReader;
use crate::error::ClientError;
use crate::metrics::Metrics;

/// How long a join waits for the stream's first subscription.
const SUBSCRIBE_PATIENCE: Duration = Duration::from_secs(5);
/// How long a replay waits for room in a member's outbound queue per frame.
const REPLAY_PATIENCE: Duration = Duration::from_secs(10);
/// Fewest events a replay asks per history read.
const MIN_REPLAY_PAGE: usize = 8;
/// What a replay assumes an event's frame takes until it has seen one.
const FIRST_FRAME_ESTIMATE: usize = 16 * 1024;
/// Least a replay assumes an event's frame takes.
const MIN_FRAME_ESTIMATE: usize = 256;

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
    /// The older part of session replays, past what the backplane's history keeps.
    transcripts: TranscriptReader,
    metrics: Arc<Metrics>,
    replay_budget: ReplayBudget,
    /// `--fanout-window`: how often a busy stream delivers to its members.
    fanout_window: Duration,
}

impl Registry {
    pub fn new(
        backplane: Arc<dyn Backplane>,
        transcripts: TranscriptReader,
        metrics: Arc<Metrics>,
    ) -> Registry {
        let replay_budget =
            ReplayBudget::new(DEFAULT_REPLAY_MEMORY_BYTES, metrics.replay_bytes.clone());
        Registry {
            hubs: DashMap::new(),
            backplane,
            transcripts,
            metrics,
            replay_budget,
            fanout_window: DEFAULT_FANOUT_WINDOW,
        }
    }

    /// A busy stream delivers at most once per `window` (`--fanout-window`).
    pub fn with_fanout_window(mut self, window: Duration) -> Registry {
        self.fanout_window = window;
        self
    }

    /// Replays of this process hold at most `bytes` of history at once
    /// (`--replay-memory-bytes`).
    pub fn with_replay_memory(mut self, bytes: u64) -> Registry {
        self.replay_budget = ReplayBudget::new(bytes, self.metrics.replay_bytes.clone());
        self
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
            self.metrics.streams_subscribed.inc();
            Hub::start(
                stream,
                self.backplane.clone(),
                self.metrics.clone(),
                self.fanout_window,
            )
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
        let mut frame_estimate = FIRST_FRAME_ESTIMATE;
        loop {
            // Room first: a member that does not read gets a small page, not a full one.
            let room = outbound
                .room_for_replay(REPLAY_PATIENCE)
                .await
                .min(self.replay_budget.total_bytes());
            let limit = (room / frame_estimate).clamp(MIN_REPLAY_PAGE, PAGE);
            let _held = self
                .replay_budget
                .hold(limit.saturating_mul(frame_estimate), REPLAY_PATIENCE)
                .await?;
            let started = Instant::now();
            let page: Result<Replay, _> = self.backplane.read(&hub.stream, cursor, limit).await;
            self.metrics.observe_backplane("read", started, &page);
            let page = page?;
            if let Some(joined) = joined.take() {
                let from = after.unwrap_or(0);
                let first = page.events.first().map(|e| e.seq);
                // Older than the history: the transcript, up to where the history
                // starts. Without an answer from the store, the replay is the
                // history alone (`recovered: false` when it was trimmed).
                let mut older = Vec::new();
                let mut stored = !page.trimmed;
                if TranscriptReader::needed(&hub.stream, from, first, page.last_seq) {
                    match self.transcripts.page(&hub.stream, from, first).await {
                        Ok(events) => {
                            older = events;
                            stored = true;
                        }
                        Err(e) => {
                            tracing::warn!(stream = %hub.stream, error = %e, "replay without the transcript: the store did not answer");
                        }
                    }
                }
                let last_stored = older.last().map_or(0, |e| e.seq);
                let frame = joined(JoinInfo {
                    last_seq: page.last_seq.max(last_stored),
                    trimmed: !stored,
                });
                if outbound
                    .enqueue_patiently(frame, REPLAY_PATIENCE)
                    .await
                    .is_err()
                {
                    return Err(closing());
                }
                while !older.is_empty() {
                    let full = older.len() >= switchboard_store::MAX_TRANSCRIPT_PAGE;
                    for event in &older {
                        self.send_replayed(hub, outbound, event).await?;
                    }
                    let newest = older.last().map_or(from, |e| e.seq);
                    // A store that stops answering mid-replay fails the join (the
                    // client retries) rather than leaving a hole in it.
                    older = if full {
                        self.transcripts
                            .page(&hub.stream, newest, first)
                            .await
                            .map_err(ClientError::from)?
                    } else {
                        Vec::new()
                    };
                }
            }
            let read = page.events.len();
            let mut largest = MIN_FRAME_ESTIMATE;
            // By value: each event is let go of once queued.
            for event in page.events {
                largest = largest.max(self.send_replayed(hub, outbound, &event).await?);
                cursor = Some(event.seq);
            }
            frame_estimate = largest;
            if read < limit {
                // A short page holds everything retained up to its `last_seq`.
                return Ok(page.last_seq.max(cursor.unwrap_or(0)));
            }
        }
    }

    /// Queue one replayed event, waiting for room up to [`REPLAY_PATIENCE`]; the
    /// size of its frame.
    async fn send_replayed(
        &self,
        hub: &HubShared,
        outbound: &Arc<Outbound>,
        event: &switchboard_backplane::Event,
    ) -> Result<usize, ClientError> {
        let frame = Utf8Bytes::from(EventFrame::new(&hub.stream, event).to_json());
        let len = frame.len();
        outbound
            .enqueue_patiently(frame, REPLAY_PATIENCE)
            .await
            .map_err(|_| closing())?;
        Ok(len)
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
    use switchboard_backplane::{ReadError, SubscribeError, Subscription};
    use switchboard_protocol::EventBody;

    use super::*;
    use crate::fanout::outbound::{OutboundReceiver, Outgoing};
    use crate::test_backplane::{Hooks, Watched};

    /// Counts subscriptions and remembers the `limit` of each history read.
    #[derive(Default)]
    struct Counting {
        subscribes: AtomicUsize,
        read_limits: std::sync::Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl Hooks for Counting {
        async fn subscribe(
            &self,
            inner: &dyn Backplane,
            s: &StreamName,
        ) -> Result<Subscription, SubscribeError> {
            self.subscribes.fetch_add(1, Ordering::SeqCst);
            inner.subscribe(s).await
        }
        async fn read(
            &self,
            inner: &dyn Backplane,
            s: &StreamName,
            a: Option<Seq>,
            l: usize,
        ) -> Result<Replay, ReadError> {
            self.read_limits.lock().unwrap().push(l);
            inner.read(s, a, l).await
        }
    }

    async fn setup() -> (Arc<Watched<Counting>>, Registry) {
        let backplane = Arc::new(Watched::new(Counting::default()));
        let store = switchboard_store::MemoryStore::new();
        let registry = Registry::new(
            backplane.clone(),
            TranscriptReader::new(Arc::new(store)),
            Arc::new(Metrics::new().unwrap()),
        );
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
        let (backplane, registry) = setup().await;
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

    /// Frames a member has been handed so far (without waiting), taken off its queue.
    /// `writer`: also as its writer takes them, so their bytes leave the queue's count;
    /// without it they stay counted, as for a writer that has fallen behind.
    fn take_seqs(rx: &mut OutboundReceiver, writer: Option<&Outbound>) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Ok(Outgoing::Text(text)) = rx.rx.try_recv() {
            if let Some(outbound) = writer {
                outbound.dequeued(text.len());
            }
            seqs.push(seq_of(&text));
        }
        seqs
    }

    /// Frames a member has been handed so far, still counted as queued.
    fn queued_seqs(rx: &mut OutboundReceiver) -> Vec<u64> {
        take_seqs(rx, None)
    }

    /// What a member's writer does: take every queued frame. Returns their seqs.
    fn writer_takes(rx: &mut OutboundReceiver, outbound: &Outbound) -> Vec<u64> {
        take_seqs(rx, Some(outbound))
    }

    /// Connection 1 joined to `stream` on a paused clock, its `joined` frame taken by
    /// its writer, so its queue starts empty.
    async fn member_with_empty_queue(
        registry: &Registry,
        stream: &StreamName,
    ) -> (Arc<Outbound>, OutboundReceiver) {
        let (outbound, mut rx) = Outbound::new(1 << 20);
        registry
            .join_with_replay(stream, 1, &outbound, None, |_| "joined".into())
            .await
            .unwrap();
        assert_eq!(next_text(&mut rx).await.as_str(), "joined");
        outbound.dequeued("joined".len());
        (outbound, rx)
    }

    /// Let the hub task run until it waits again (on a paused clock).
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// While the members' writers keep up, every event of a busy stream goes out at
    /// once: no window, however close together the events come.
    #[tokio::test(start_paused = true)]
    async fn a_busy_stream_whose_writers_keep_up_delivers_every_event_at_once() {
        let (backplane, registry) = setup().await;
        let stream = StreamName::session("s_keeps_up").unwrap();
        let (outbound, mut rx) = member_with_empty_queue(&registry, &stream).await;
        for i in 1..=20 {
            tokio::time::advance(Duration::from_millis(1)).await;
            backplane.append(&stream, delta(i)).await.unwrap();
            settle().await;
            assert_eq!(
                writer_takes(&mut rx, &outbound),
                vec![i as u64],
                "event {i}"
            );
        }
        registry.leave(&stream, 1);
    }

    /// Once a round finds the members behind (frames of earlier rounds still queued),
    /// events arriving within the window of that round wait for its end and go out
    /// together, in order; after a pause longer than the window, and once the writers
    /// have caught up, delivery is immediate again.
    #[tokio::test(start_paused = true)]
    async fn a_busy_stream_whose_members_fall_behind_delivers_once_per_window() {
        let (backplane, registry) = setup().await;
        let stream = StreamName::session("s_behind").unwrap();
        let (outbound, mut rx) = member_with_empty_queue(&registry, &stream).await;
        let step = Duration::from_millis(1);

        // The writer takes nothing from here on: frames stay counted as queued.
        backplane.append(&stream, delta(1)).await.unwrap();
        settle().await;
        assert_eq!(queued_seqs(&mut rx), vec![1], "a quiet stream: at once");
        tokio::time::advance(step).await;
        backplane.append(&stream, delta(2)).await.unwrap();
        settle().await;
        assert_eq!(
            queued_seqs(&mut rx),
            vec![2],
            "the last round found no one behind: at once"
        );

        for i in 3..=4 {
            tokio::time::advance(step).await;
            backplane.append(&stream, delta(i)).await.unwrap();
        }
        tokio::time::advance(Duration::from_millis(5)).await;
        settle().await;
        assert_eq!(
            queued_seqs(&mut rx),
            Vec::<u64>::new(),
            "behind, inside the window"
        );
        tokio::time::advance(DEFAULT_FANOUT_WINDOW).await;
        settle().await;
        assert_eq!(queued_seqs(&mut rx), vec![3, 4], "one round, in order");

        tokio::time::advance(DEFAULT_FANOUT_WINDOW * 3).await;
        backplane.append(&stream, delta(5)).await.unwrap();
        settle().await;
        assert_eq!(queued_seqs(&mut rx), vec![5], "quiet again: at once");

        // The writer catches up; the next round finds no one behind.
        outbound.dequeued(outbound.queued_bytes());
        tokio::time::advance(DEFAULT_FANOUT_WINDOW * 3).await;
        backplane.append(&stream, delta(6)).await.unwrap();
        settle().await;
        assert_eq!(writer_takes(&mut rx, &outbound), vec![6]);
        tokio::time::advance(step).await;
        backplane.append(&stream, delta(7)).await.unwrap();
        settle().await;
        assert_eq!(
            writer_takes(&mut rx, &outbound),
            vec![7],
            "caught up: busy, yet at once"
        );
        registry.leave(&stream, 1);
    }

    /// A member joining while events are being appended receives every event exactly
    /// once, in order: replay and live meet with no gap and no duplicate.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn joining_during_appends_has_no_gap_and_no_duplicate() {
        let (backplane, registry) = setup().await;
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

    /// A joiner of a large session that does not read holds at most about its
    /// outbound queue's budget of history, not a 256-event page, while its replay
    /// waits for it (issue 20, L9); one that reads gets everything, in order.
    #[tokio::test(start_paused = true)]
    async fn a_joiner_that_does_not_read_holds_history_only_up_to_its_queue_budget() {
        const QUEUE: usize = 64 * 1024;
        const TOTAL: usize = 600;
        let (backplane, registry) = setup().await;
        let stream = StreamName::session("s_big").unwrap();
        let text = "x".repeat(4000);
        for i in 0..TOTAL {
            let body = EventBody::TurnDelta {
                turn_id: "t".into(),
                text: format!("{i} {text}"),
            };
            backplane.append(&stream, body).await.unwrap();
        }
        let frame_bytes = 4100;
        let (outbound, _never_read) = Outbound::new(QUEUE);
        let refused = registry
            .join_with_replay(&stream, 1, &outbound, None, |_| "joined".into())
            .await;
        assert!(
            refused.is_err(),
            "the silent joiner is closed as a slow consumer"
        );
        let limits = std::mem::take(&mut *backplane.read_limits.lock().unwrap());
        let largest = limits.iter().max().copied().unwrap_or(0);
        assert!(
            largest * frame_bytes <= 2 * QUEUE,
            "a page of {largest} events (~{} KiB) held for a queue of {} KiB: {limits:?}",
            largest * frame_bytes / 1024,
            QUEUE / 1024
        );

        // A reader gets all of it, page after page.
        let (outbound, mut rx) = Outbound::new(QUEUE);
        let reader = tokio::spawn(async move {
            let mut seqs = Vec::new();
            while seqs.len() < TOTAL {
                let frame = next_text(&mut rx).await;
                rx.outbound.dequeued(frame.len());
                if frame.as_str() != "joined" {
                    seqs.push(seq_of(&frame));
                }
            }
            seqs
        });
        registry
            .join_with_replay(&stream, 2, &outbound, None, |_| "joined".into())
            .await
            .unwrap();
        let seqs = reader.await.unwrap();
        assert_eq!(seqs, (1..=TOTAL as u64).collect::<Vec<_>>());
    }
}
