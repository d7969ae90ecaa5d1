//! Live delivery: one core NATS subscription per subscribed stream per replica, on the
//! subject JetStream republishes the stream's stored events to, shared by every local
//! [`Subscription`] of that stream and dropped with the last of them.
//!
//! ```text
//!  append ─► JetStream stores at seq N ─► republish <prefix>.live.<kind>.<id>
//!                                          headers: Nats-Sequence: N,
//!                                                   Nats-Last-Sequence: previous seq
//!                                                   of the same subject
//!                                                       │ (core NATS, this replica's
//!                                                       ▼  one connection)
//!                                     async-nats Subscriber (per stream)
//!                                                       │
//!                                        dispatcher task (per stream): follows the
//!                                        chain (each message names its predecessor),
//!                                        puts it back in order, then `offer`s one
//!                                        shared Arc<Event> to each feed
//!                                                       │ try_send, never waits
//!                                                       ▼
//!                                     Subscription (bounded queue) ─► gateway
//! ```
//!
//! What ends a subscription, instead of a silent hole:
//!
//! - its queue is full (`offer` reports it): `Lagged`;
//! - the chain breaks: a message arrived whose predecessor never did within
//!   [`REORDER_WAIT`] (core NATS dropped it on the way), or more than
//!   [`BUFFER_CAPACITY`] messages wait behind a missing one: `Lagged`;
//! - the client reports a slow consumer (its own buffer for a subscription overflowed,
//!   and it cannot say which): every subscription, `Lagged`;
//! - the connection drops (and, in case that event was lost, when it comes back):
//!   every subscription, `Disconnected`;
//! - the backplane is dropped or the client closes: `Closed`.
//!
//! The gateway then subscribes again and fills the gap with `read`.
//!
//! # Reordering
//!
//! nats-server 2.9 republishes a stored message from the goroutine of the connection
//! that published it, so appends racing from two connections (two replicas) can be
//! republished out of `seq` order (measured: ~10 swaps per 8,000 appends from four
//! connections). `Nats-Last-Sequence` names each message's predecessor on its subject,
//! so the dispatcher keeps recent messages keyed by predecessor and hands each
//! subscriber the successor of the last event it got: exact order, no guessing. A
//! successor that is late holds back the ones after it; one that never comes ends the
//! subscription after [`REORDER_WAIT`].
//!
//! # Only events after `subscribe` returned
//!
//! `subscribe` queues the SUBSCRIBE, then reads the stream's head (the newest stored
//! seq, `H`) on the same connection, so the server registered the SUBSCRIBE before it
//! answered: every event stored after `H` reaches the dispatcher. The new feed takes
//! events after `H` only (events that arrive while the head read is in flight wait in
//! the topic's buffer). So it yields exactly the events appended after
//! `subscribe` returned (and possibly some appended while it ran), never one before.
//! The cost is one round trip per `subscribe`. `H` is also where the feed's chain
//! starts: the first event it gets is the one whose predecessor is `H`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::{Client, Subscriber};
use futures_util::StreamExt;
use switchboard_backplane::{
    ErrorKind, Event, EventBody, Offered, Seq, StreamName, SubscribeError, Subscription,
    SubscriptionEnded, SubscriptionFeed,
};

use crate::error::classify;
use crate::layout::{Layout, TS_HEADER};

/// A poisoned lock only means a panic elsewhere; each update leaves the state whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every subscribed stream of this replica. Owned by the backplane; the client's event
/// callback and the subscription guards hold it weakly, so dropping the backplane ends
/// every subscription (`Closed`) and stops every dispatcher.
#[derive(Default)]
pub(crate) struct Registry {
    /// Lock order: this map, then a topic's state; never the other way round.
    topics: Mutex<HashMap<StreamName, TopicEntry>>,
    /// Whether the client has connected once (its first `Connected` event is the boot).
    connected_once: AtomicBool,
    /// Whether a `Disconnected` event came since the last `Connected`.
    disconnect_seen: AtomicBool,
}

struct TopicEntry {
    topic: Arc<Topic>,
    /// Live `Subscription`s (and `subscribe` calls in progress) of this stream.
    refs: usize,
}

/// One subscribed stream.
struct Topic {
    /// The core subscription's dispatcher, started by the first `subscribe`.
    dispatcher: tokio::sync::OnceCell<AbortOnDrop>,
    state: Mutex<TopicState>,
}

/// How long a subscriber waits for a missing predecessor (a reordered republish
/// arrives within microseconds; a dropped one never does) before it ends as `Lagged`.
pub const REORDER_WAIT: Duration = Duration::from_millis(500);

/// How many received messages a topic keeps for subscribers that have not taken them
/// yet (waiting behind a missing predecessor, or for their head read). Past it the
/// subscribers that still need the oldest end as `Lagged`.
pub const BUFFER_CAPACITY: usize = 4096;

/// A received message, waiting until every subscriber that needs it took it.
struct Entry {
    seq: Seq,
    /// `None`: not an event body (skipped, but still a link of the chain).
    event: Option<Arc<Event>>,
}

/// The chain of one topic and its subscribers. Pure bookkeeping, no I/O.
#[derive(Default)]
struct TopicState {
    /// Received messages by the seq of their predecessor on the subject (0: none).
    buffer: BTreeMap<Seq, Entry>,
    slots: Vec<Slot>,
}

/// One local subscriber of a topic.
struct Slot {
    id: u64,
    feed: SubscriptionFeed,
    /// The seq of the last event this subscriber got (its chain position); `None`
    /// while `subscribe` reads the head, which becomes the first position.
    cursor: Option<Seq>,
    /// The newest seq evicted from the buffer while `cursor` was unknown.
    missed: Option<Seq>,
    /// Since when the successor of `cursor` is missing while later messages are here.
    stuck_since: Option<Instant>,
}

impl TopicState {
    /// Take a republished message: `seq` stored after `previous` (0: nothing before it
    /// was retained) on the subject.
    fn receive(&mut self, seq: Seq, previous: Seq, event: Option<Arc<Event>>, now: Instant) {
        if let Some(old) = self.buffer.insert(previous, Entry { seq, event })
            && old.seq != seq
        {
            tracing::warn!(
                previous,
                seq,
                other = old.seq,
                "nats backplane: two messages claim the same predecessor (was the stream purged?)"
            );
        }
        self.advance_all(now);
        self.evict_overflow();
        self.prune();
    }

    /// Set the first chain position of subscriber `id` (the head it read) and hand it
    /// whatever already arrived after it.
    fn resolve(&mut self, id: u64, head: Seq, now: Instant) {
        let Some(index) = self.slots.iter().position(|slot| slot.id == id) else {
            return;
        };
        let slot = &mut self.slots[index];
        slot.cursor = Some(head);
        if slot.missed.take().is_some_and(|missed| missed > head) {
            slot.feed.end(SubscriptionEnded::Lagged);
            self.slots.remove(index);
        } else if !advance(&self.buffer, slot, now) {
            self.slots.remove(index);
        }
        self.prune();
    }

    /// End subscribers whose missing predecessor is overdue.
    fn expire(&mut self, now: Instant) {
        self.slots.retain_mut(|slot| match slot.stuck_since {
            Some(since) if now.saturating_duration_since(since) >= REORDER_WAIT => {
                tracing::warn!(
                    after = slot.cursor,
                    "nats backplane: a live event never arrived, subscription ends as lagged"
                );
                slot.feed.end(SubscriptionEnded::Lagged);
                false
            }
            _ => true,
        });
        self.prune();
    }

    /// When the next subscriber becomes overdue, if one is waiting.
    fn deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|slot| slot.stuck_since)
            .min()
            .map(|since| since + REORDER_WAIT)
    }

    fn end_all(&mut self, reason: SubscriptionEnded) {
        for mut slot in self.slots.drain(..) {
            slot.feed.end(reason);
        }
        self.buffer.clear();
    }

    fn advance_all(&mut self, now: Instant) {
        let buffer = &self.buffer;
        self.slots.retain_mut(|slot| advance(buffer, slot, now));
    }

    /// Past [`BUFFER_CAPACITY`], drop the oldest messages; subscribers that still needed
    /// one end (or will, once their head read says so).
    fn evict_overflow(&mut self) {
        while self.buffer.len() > BUFFER_CAPACITY {
            let Some(oldest) = self.buffer.values().map(|entry| entry.seq).min() else {
                return;
            };
            self.buffer.retain(|_, entry| entry.seq != oldest);
            self.slots.retain_mut(|slot| match slot.cursor {
                Some(cursor) if cursor < oldest => {
                    slot.feed.end(SubscriptionEnded::Lagged);
                    false
                }
                Some(_) => true,
                None => {
                    slot.missed = Some(slot.missed.map_or(oldest, |m| m.max(oldest)));
                    true
                }
            });
        }
    }

    /// Forget messages every subscriber is past. While a head read is in flight
    /// nothing is forgotten: that subscriber's position is not known yet.
    fn prune(&mut self) {
        if self.slots.iter().any(|slot| slot.cursor.is_none()) {
            return;
        }
        match self.slots.iter().filter_map(|slot| slot.cursor).min() {
            Some(min) => self.buffer.retain(|_, entry| entry.seq > min),
            None => self.buffer.clear(),
        }
    }
}

/// Hand `slot` every buffered event that follows its position, in chain order. Returns
/// false when the subscription ended (full or dropped) and the slot should go.
fn advance(buffer: &BTreeMap<Seq, Entry>, slot: &mut Slot, now: Instant) -> bool {
    let Some(mut cursor) = slot.cursor else {
        return true;
    };
    loop {
        let next = buffer
            .get(&cursor)
            // No successor by name: a message with no retained predecessor (after the
            // subject's whole history expired) follows whatever came before it.
            .or_else(|| buffer.get(&0).filter(|entry| entry.seq > cursor));
        let Some(entry) = next.filter(|entry| entry.seq > cursor) else {
            break;
        };
        if let Some(event) = &entry.event
            && slot.feed.offer(event.clone()) != Offered::Delivered
        {
            return false;
        }
        cursor = entry.seq;
    }
    slot.cursor = Some(cursor);
    let waiting = buffer.values().any(|entry| entry.seq > cursor);
    slot.stuck_since = if waiting {
        Some(slot.stuck_since.unwrap_or(now))
    } else {
        None
    };
    true
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Held by a [`Subscription`]: dropping it removes the feed, and the last one of a
/// stream unsubscribes.
struct FeedGuard {
    registry: Weak<Registry>,
    stream: StreamName,
    id: u64,
}

impl Drop for FeedGuard {
    fn drop(&mut self) {
        let Some(registry) = self.registry.upgrade() else {
            return;
        };
        let removed = {
            let mut topics = lock(&registry.topics);
            let Some(entry) = topics.get_mut(&self.stream) else {
                return;
            };
            lock(&entry.topic.state)
                .slots
                .retain(|slot| slot.id != self.id);
            entry.refs -= 1;
            if entry.refs == 0 {
                topics.remove(&self.stream)
            } else {
                None
            }
        };
        // Dropped outside the map lock: this aborts the dispatcher, whose `Subscriber`
        // sends the UNSUBSCRIBE as it drops.
        drop(removed);
    }
}

impl Registry {
    /// End every subscription with `reason` and forget the chains (whatever comes next
    /// starts a new one: after a disconnect, messages were missed by design).
    pub(crate) fn end_all(&self, reason: SubscriptionEnded) {
        let topics: Vec<Arc<Topic>> = lock(&self.topics)
            .values()
            .map(|entry| entry.topic.clone())
            .collect();
        for topic in topics {
            lock(&topic.state).end_all(reason);
        }
    }

    /// What the client's event callback does with each event.
    pub(crate) fn on_client_event(&self, event: async_nats::Event) {
        match event {
            async_nats::Event::Connected => {
                let first = !self.connected_once.swap(true, Ordering::SeqCst);
                let saw_disconnect = self.disconnect_seen.swap(false, Ordering::SeqCst);
                if first {
                    tracing::debug!("nats backplane: connected");
                } else {
                    tracing::info!("nats backplane: reconnected");
                    // The client reports events through a small queue it may drop from
                    // when full; a reconnect without the disconnect before it means that
                    // disconnect was lost, and so were live events: end them now.
                    if !saw_disconnect {
                        self.end_all(SubscriptionEnded::Disconnected);
                    }
                }
            }
            async_nats::Event::Disconnected => {
                tracing::warn!(
                    "nats backplane: connection lost; reconnecting, live subscriptions end"
                );
                self.disconnect_seen.store(true, Ordering::SeqCst);
                self.end_all(SubscriptionEnded::Disconnected);
            }
            async_nats::Event::SlowConsumer(sid) => {
                // The client's buffer of one subscription overflowed and it dropped a
                // message; it does not say which stream, so every subscription ends.
                tracing::warn!(sid, "nats backplane: slow consumer, live subscriptions end");
                self.end_all(SubscriptionEnded::Lagged);
            }
            async_nats::Event::Closed => {
                self.end_all(SubscriptionEnded::Closed);
            }
            async_nats::Event::LameDuckMode => {
                tracing::warn!("nats backplane: server entered lame duck mode");
            }
            async_nats::Event::Draining => {}
            async_nats::Event::ServerError(err) => {
                tracing::warn!(error = %err, "nats backplane: server error");
            }
            async_nats::Event::ClientError(err) => {
                tracing::warn!(error = %err, "nats backplane: client error");
            }
        }
    }

    /// How many streams have a live core subscription.
    pub(crate) fn topic_count(&self) -> usize {
        lock(&self.topics).len()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.end_all(SubscriptionEnded::Closed);
    }
}

/// Live delivery of one backplane: the registry plus what `subscribe` needs.
pub(crate) struct Live {
    pub(crate) registry: Arc<Registry>,
    pub(crate) client: Client,
    pub(crate) events: jetstream::stream::Stream<()>,
    pub(crate) layout: Layout,
    pub(crate) capacity: usize,
    pub(crate) op_timeout: Duration,
    pub(crate) next_id: AtomicU64,
}

fn subscribe_error(kind: ErrorKind, detail: impl Into<String>) -> SubscribeError {
    SubscribeError::new(kind, detail)
}

impl Live {
    pub(crate) async fn subscribe(
        &self,
        stream: &StreamName,
    ) -> Result<Subscription, SubscribeError> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(SubscribeError::unavailable("not connected to NATS"));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let topic = {
            let mut topics = lock(&self.registry.topics);
            let entry = topics.entry(stream.clone()).or_insert_with(|| TopicEntry {
                topic: Arc::new(Topic {
                    dispatcher: tokio::sync::OnceCell::new(),
                    state: Mutex::new(TopicState::default()),
                }),
                refs: 0,
            });
            entry.refs += 1;
            entry.topic.clone()
        };
        // From here on dropping `guard` (or the subscription that owns it) undoes the
        // registration, on every path out of this function.
        let guard = FeedGuard {
            registry: Arc::downgrade(&self.registry),
            stream: stream.clone(),
            id,
        };

        let live_subject = self.layout.live_subject(stream);
        let started = tokio::time::timeout(
            self.op_timeout,
            topic.dispatcher.get_or_try_init(|| async {
                let subscriber = self.client.subscribe(live_subject).await?;
                let dispatcher = tokio::spawn(dispatch(subscriber, Arc::downgrade(&topic)));
                Ok::<_, async_nats::SubscribeError>(AbortOnDrop(dispatcher))
            }),
        )
        .await;
        match started {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                drop(guard);
                return Err(subscribe_error(classify(&err), err.to_string()));
            }
            Err(_) => {
                drop(guard);
                return Err(subscribe_error(
                    ErrorKind::Timeout,
                    "subscribing took longer than the operation timeout",
                ));
            }
        }

        let (subscription, feed) = Subscription::channel(self.capacity, Some(Box::new(guard)));
        lock(&topic.state).slots.push(Slot {
            id,
            feed,
            cursor: None,
            missed: None,
            stuck_since: None,
        });

        // The head read goes out on the same connection after the SUBSCRIBE, so when it
        // answers, the server has registered the subscription.
        let head = tokio::time::timeout(
            self.op_timeout,
            crate::history::head(&self.events, &self.layout.event_subject(stream)),
        )
        .await;
        let head = match head {
            Ok(Ok(head)) => head.map_or(0, |message| message.sequence),
            Ok(Err((kind, detail))) => return Err(subscribe_error(kind, detail)),
            Err(_) => {
                return Err(subscribe_error(
                    ErrorKind::Timeout,
                    "reading the stream head took longer than the operation timeout",
                ));
            }
        };

        lock(&topic.state).resolve(id, head, Instant::now());
        // No slot: a disconnect ended it while the head was read; the subscription is
        // returned already ended and says why on its first `next`.
        Ok(subscription)
    }
}

/// The dispatcher of one topic: reads the core subscription until it ends or the topic
/// is dropped (which aborts this task), and wakes up when a subscriber waiting for a
/// missing message becomes overdue.
async fn dispatch(mut subscriber: Subscriber, topic: Weak<Topic>) {
    loop {
        let deadline = match topic.upgrade() {
            Some(topic) => lock(&topic.state).deadline(),
            None => return,
        };
        let message = match deadline {
            Some(deadline) => {
                tokio::select! {
                    message = subscriber.next() => message,
                    () = tokio::time::sleep_until(deadline.into()) => {
                        if let Some(topic) = topic.upgrade() {
                            lock(&topic.state).expire(Instant::now());
                        }
                        continue;
                    }
                }
            }
            None => subscriber.next().await,
        };
        let Some(topic) = topic.upgrade() else {
            return;
        };
        match message {
            Some(message) => topic.deliver(message),
            None => {
                // The client closed for good.
                lock(&topic.state).end_all(SubscriptionEnded::Closed);
                return;
            }
        }
    }
}

fn header_u64(message: &async_nats::Message, name: &str) -> Option<u64> {
    message
        .headers
        .as_ref()?
        .get(name)?
        .as_str()
        .trim()
        .parse()
        .ok()
}

impl Topic {
    fn deliver(&self, message: async_nats::Message) {
        let Some(seq) = header_u64(&message, async_nats::header::NATS_SEQUENCE.as_ref()) else {
            tracing::warn!(subject = %message.subject, "nats backplane: live message without Nats-Sequence ignored");
            return;
        };
        let previous =
            header_u64(&message, async_nats::header::NATS_LAST_SEQUENCE.as_ref()).unwrap_or(0);
        let ts = header_u64(&message, TS_HEADER).unwrap_or_else(switchboard_backplane::now_ms);
        let event = match serde_json::from_slice::<EventBody>(&message.payload) {
            Ok(body) => Some(Arc::new(Event { seq, ts, body })),
            Err(err) => {
                // `read` skips it too, so live and history stay the same sequence.
                tracing::warn!(subject = %message.subject, seq, error = %err, "nats backplane: message that is not an event body ignored");
                None
            }
        };

        lock(&self.state).receive(seq, previous, event, Instant::now());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use switchboard_backplane::EventBody;

    fn event(seq: Seq) -> Option<Arc<Event>> {
        Some(Arc::new(Event {
            seq,
            ts: 1,
            body: EventBody::TurnDelta {
                turn_id: "t".into(),
                text: seq.to_string(),
            },
        }))
    }

    /// A state with one subscriber at chain position `head`, and its subscription.
    fn one_subscriber(head: Seq, capacity: usize) -> (TopicState, Subscription) {
        let mut state = TopicState::default();
        let (subscription, feed) = Subscription::channel(capacity, None);
        state.slots.push(Slot {
            id: 1,
            feed,
            cursor: None,
            missed: None,
            stuck_since: None,
        });
        state.resolve(1, head, Instant::now());
        (state, subscription)
    }

    /// What the subscription holds now: the seqs, then why it ended (if it did).
    async fn drain(subscription: &mut Subscription) -> (Vec<Seq>, Option<SubscriptionEnded>) {
        let mut seqs = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_millis(20), subscription.next()).await {
                Ok(Ok(event)) => seqs.push(event.seq),
                Ok(Err(reason)) => return (seqs, Some(reason)),
                Err(_) => return (seqs, None),
            }
        }
    }

    #[tokio::test]
    async fn reordered_republishes_are_delivered_in_seq_order() {
        let (mut state, mut sub) = one_subscriber(4, 16);
        let now = Instant::now();
        // Stored 5, 6, 7, 9 (8 went to another subject); republished 6, 9, 5, 7.
        state.receive(6, 5, event(6), now);
        state.receive(9, 7, event(9), now);
        assert!(state.deadline().is_some(), "waiting for 5");
        state.receive(5, 4, event(5), now);
        state.receive(7, 6, event(7), now);
        assert_eq!(drain(&mut sub).await, (vec![5, 6, 7, 9], None));
        assert_eq!(state.deadline(), None);
        assert!(state.buffer.is_empty(), "delivered messages are forgotten");
    }

    #[tokio::test]
    async fn a_message_that_never_comes_ends_the_subscription_as_lagged() {
        let (mut state, mut sub) = one_subscriber(0, 16);
        let now = Instant::now();
        state.receive(1, 0, event(1), now);
        state.receive(3, 2, event(3), now); // 2 was lost
        state.expire(now + REORDER_WAIT / 2);
        assert_eq!(state.slots.len(), 1, "still waiting");
        state.expire(now + REORDER_WAIT);
        assert!(state.slots.is_empty());
        assert_eq!(
            drain(&mut sub).await,
            (vec![1], Some(SubscriptionEnded::Lagged)),
            "a gap-free prefix, then lagged"
        );
    }

    #[tokio::test]
    async fn events_before_the_head_are_not_delivered() {
        let (mut state, mut sub) = one_subscriber(10, 16);
        let now = Instant::now();
        state.receive(9, 8, event(9), now); // in flight from before `subscribe`
        state.receive(10, 9, event(10), now);
        state.receive(11, 10, event(11), now);
        assert_eq!(drain(&mut sub).await, (vec![11], None));
    }

    #[tokio::test]
    async fn messages_arriving_during_the_head_read_are_kept_for_it() {
        let mut state = TopicState::default();
        let (mut sub, feed) = Subscription::channel(16, None);
        state.slots.push(Slot {
            id: 7,
            feed,
            cursor: None,
            missed: None,
            stuck_since: None,
        });
        let now = Instant::now();
        state.receive(3, 2, event(3), now);
        state.receive(4, 3, event(4), now);
        state.resolve(7, 3, now);
        assert_eq!(drain(&mut sub).await, (vec![4], None));
    }

    #[tokio::test]
    async fn skipped_messages_keep_the_chain() {
        let (mut state, mut sub) = one_subscriber(0, 16);
        let now = Instant::now();
        state.receive(1, 0, event(1), now);
        state.receive(2, 1, None, now); // not an event body
        state.receive(3, 2, event(3), now);
        assert_eq!(drain(&mut sub).await, (vec![1, 3], None));
    }

    #[tokio::test]
    async fn a_full_queue_ends_the_subscription_as_lagged() {
        let (mut state, mut sub) = one_subscriber(0, 2);
        let now = Instant::now();
        for seq in 1..=5 {
            state.receive(seq, seq - 1, event(seq), now);
        }
        assert!(state.slots.is_empty());
        assert_eq!(
            drain(&mut sub).await,
            (vec![1, 2], Some(SubscriptionEnded::Lagged))
        );
    }

    #[tokio::test]
    async fn a_message_without_retained_predecessor_follows_the_cursor() {
        let (mut state, mut sub) = one_subscriber(5, 16);
        // Everything of the subject expired before 9 was stored.
        state.receive(9, 0, event(9), Instant::now());
        assert_eq!(drain(&mut sub).await, (vec![9], None));
    }

    #[tokio::test]
    async fn ending_all_clears_subscribers_and_buffer() {
        let (mut state, mut sub) = one_subscriber(0, 16);
        state.receive(2, 1, event(2), Instant::now());
        state.end_all(SubscriptionEnded::Disconnected);
        assert!(state.slots.is_empty() && state.buffer.is_empty());
        assert_eq!(
            drain(&mut sub).await,
            (vec![], Some(SubscriptionEnded::Disconnected))
        );
        let registry = Registry::default();
        registry.end_all(SubscriptionEnded::Disconnected);
        assert_eq!(registry.topic_count(), 0);
    }
}
