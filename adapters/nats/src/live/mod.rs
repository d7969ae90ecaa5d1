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
//! - `mod.rs` (here): `subscribe`, and each stream's dispatcher task.
//! - `table.rs`: the [`SubscriptionTable`]: which streams this replica subscribes to,
//!   reference-counted, and what the client's connection events do to them.
//! - `chain.rs`: one stream's chain of messages and its subscribers' positions in it:
//!   reordering, gaps, overflow. Pure bookkeeping, no I/O.
//!
//! What ends a subscription, instead of a silent hole:
//!
//! - its queue is full (`offer` reports it): `Lagged`;
//! - the chain breaks: a message arrived whose predecessor never did within
//!   [`REORDER_WAIT`](chain::REORDER_WAIT) (core NATS dropped it on the way), or more than
//!   [`BUFFER_CAPACITY`](chain::BUFFER_CAPACITY) messages wait behind a missing one:
//!   `Lagged`;
//! - the client reports a slow consumer (its own buffer for a subscription overflowed,
//!   and it cannot say which): every subscription, `Lagged`;
//! - the connection drops (and, in case that event was lost, when it comes back):
//!   every subscription, `Disconnected`;
//! - the backplane is dropped or the client closes: `Closed`.
//!
//! The gateway then subscribes again and fills the gap with `read`.
//!
//! # Only events after `subscribe` returned
//!
//! `subscribe` queues the SUBSCRIBE, then reads the stream's head (the newest stored
//! seq, `H`) on the same connection, so the server registered the SUBSCRIBE before it
//! answered: every event stored after `H` reaches the dispatcher task. The new feed
//! takes events after `H` only (events that arrive while the head read is in flight
//! wait in the stream's buffer). So it yields exactly the events appended after
//! `subscribe` returned (and possibly some appended while it ran), never one before.
//! The cost is one round trip per `subscribe`. `H` is also where the feed's chain
//! starts: the first event it gets is the one whose predecessor is `H`.

mod chain;
mod table;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::{Client, Subscriber};
use futures_util::StreamExt;
use switchboard_backplane::{
    ErrorKind, Event, EventBody, StreamName, SubscribeError, Subscription, SubscriptionEnded,
};

use crate::error::classify;
use crate::layout::{Layout, TS_HEADER};
use chain::{Slot, TopicState};
pub(crate) use table::SubscriptionTable;
use table::{FeedGuard, TopicEntry};

/// A poisoned lock only means a panic elsewhere; each update leaves the state whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One subscribed stream.
struct Topic {
    /// The core subscription's dispatcher task, started by the first `subscribe`.
    dispatcher: tokio::sync::OnceCell<AbortOnDrop>,
    state: Mutex<TopicState>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Live delivery of one backplane: the subscription table plus what `subscribe` needs.
pub(crate) struct Live {
    pub(crate) table: Arc<SubscriptionTable>,
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
            let mut topics = lock(&self.table.topics);
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
            table: Arc::downgrade(&self.table),
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

/// The dispatcher task of one topic: reads the core subscription until it ends or the
/// topic is dropped (which aborts this task), and wakes up when a subscriber waiting
/// for a missing message becomes overdue.
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
            Ok(body) => Some(Arc::new(Event {
                seq,
                ts,
                traceparent: crate::history::traceparent_of(message.headers.as_ref()),
                body,
            })),
            Err(err) => {
                // `read` skips it too, so live and history stay the same sequence.
                tracing::warn!(subject = %message.subject, seq, error = %err, "nats backplane: message that is not an event body ignored");
                None
            }
        };

        lock(&self.state).receive(seq, previous, event, Instant::now());
    }
}
