//! Live delivery: one Redis pub/sub connection per [`RedisBackplane`](crate::RedisBackplane),
//! shared by every subscription of that replica, run by a [`PubSubDispatcher`].
//!
//! ```text
//!                      subscribe(stream) ──► routes: channel → [slot, slot, …]
//!                             │                         ▲ (std mutex, never held
//!                             ▼                         │  across an await)
//!   control (async mutex): SUBSCRIBE / UNSUBSCRIBE ─► PubSubSink ─┐
//!                                                                  │ one TCP connection
//!   dispatcher task ◄── PubSubStream ◄── Redis ◄───────────────────┘
//!        │  parse each message ONCE into Arc<Event>
//!        └─► slot.offer(): try_send into the subscriber's bounded queue; a full queue
//!            ends that subscription as Lagged, a dropped one is forgotten. Never waits.
//! ```
//!
//! - `mod.rs` (here): subscribing and reference counting. A channel is SUBSCRIBEd when
//!   its first local subscription is made and UNSUBSCRIBEd (by a small background
//!   task) once its last is dropped. Both decisions are taken under the `control` lock
//!   after looking at `routes`, so an UNSUBSCRIBE can never overtake the SUBSCRIBE of a
//!   newer subscriber.
//! - `slot.rs`: one local subscription and the subscribe seam. A new slot is
//!   registered *before* the SUBSCRIBE is sent and starts `Pending`, buffering what
//!   arrives. Once Redis confirmed the SUBSCRIBE, the stream's head `H` is read; the
//!   slot then goes live with floor `H`: buffered and later events with `seq <= H` are
//!   dropped, everything above is delivered. Every append after the head read has
//!   `seq > H` and was published after the SUBSCRIBE, so it arrives; anything stale
//!   (left in the socket from an earlier subscription of the same channel, or already
//!   on its way to this replica for another local subscriber) has `seq <= H`. Without
//!   the floor a new subscription of a busy stream started, within a few dozen tries,
//!   with an event whose append had returned before `subscribe` was even called
//!   (`a_new_subscription_of_a_busy_stream_starts_after_subscribe` in
//!   `tests/redis_specific.rs`).
//! - `connection.rs`: the dispatcher task, disconnects and reconnects. When the
//!   connection drops (the stream ends, or a periodic PING gets no answer) every live
//!   subscription ends with [`SubscriptionEnded::Disconnected`], `subscribe` answers
//!   `Unavailable`, and the task reconnects on a [`Backoff`](switchboard_backplane::Backoff)
//!   until it succeeds. Subscriptions are not silently resumed: events published while
//!   the connection was down are gone from pub/sub, so the gateway resubscribes and
//!   fills the gap from history.
//!
//! **Buffering.** The `redis` crate's driver task reads the socket into an unbounded
//! channel that the dispatcher task drains. It never awaits anything but that channel
//! (parse, short lock, `try_send`), so the channel stays near empty; the bounded queues
//! are the per-subscription ones, where falling behind is visible.

mod connection;
mod slot;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::aio::{PubSubSink, PubSubStream};
use switchboard_backplane::{ErrorKind, Seq, SubscribeError, Subscription, SubscriptionEnded};
use tokio::sync::Notify;

use crate::error::{kind_of, scrub};
use slot::{Slot, SlotState, Unsubscribe};

/// Timing of the pub/sub connection.
#[derive(Debug, Clone)]
pub(crate) struct PubSubTiming {
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub ping_interval: Duration,
    pub reconnect_delay_min: Duration,
    pub reconnect_delay_max: Duration,
}

/// The live half of a Redis backplane: which local subscriptions listen on which
/// channel (`routes`), the pub/sub connection's control, and the channels waiting to be
/// unsubscribed. Its task reads the connection and hands each message on.
pub(crate) struct PubSubDispatcher {
    client: redis::Client,
    /// The command connection, only to wake it after an outage (see
    /// [`PubSubDispatcher::warm_commands`]).
    commands: redis::aio::ConnectionManager,
    timing: PubSubTiming,
    /// Names the server in logs (no password).
    target: String,
    secret: Option<String>,
    /// Lock order: `control` (async) may be held while `routes` is taken, never the
    /// reverse; `routes` is never held across an `.await`.
    routes: Mutex<Routes>,
    control: tokio::sync::Mutex<Control>,
    /// Channels whose last local subscription went away, for the unsubscriber task.
    /// A set, so it is bounded by the number of channels, whatever the churn.
    to_unsubscribe: Mutex<HashSet<String>>,
    unsubscribe_wake: Notify,
}

struct Routes {
    /// Whether the pub/sub connection is up (subscribe answers `Unavailable` when not).
    connected: bool,
    /// Set once by [`PubSubDispatcher::close`]; every later subscribe fails.
    closed: bool,
    /// Bumped on every disconnect, so a subscribe that started on a connection that died
    /// meanwhile notices.
    generation: u64,
    next_id: u64,
    channels: HashMap<String, Vec<Slot>>,
}

struct Control {
    sink: Option<PubSubSink>,
    /// The generation `sink` belongs to.
    generation: u64,
    /// Channels Redis confirmed on the current connection.
    subscribed: HashSet<String>,
}

/// A poisoned lock only means a thread panicked holding it; every update keeps the
/// routes consistent step by step, so keep serving.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PubSubDispatcher {
    /// A dispatcher on an established pub/sub connection, with its two background
    /// tasks spawned: the dispatcher task (routing, reconnecting) and the unsubscriber.
    pub(crate) fn start(
        client: redis::Client,
        commands: redis::aio::ConnectionManager,
        timing: PubSubTiming,
        target: String,
        secret: Option<String>,
        sink: PubSubSink,
        stream: PubSubStream,
    ) -> (Arc<PubSubDispatcher>, Vec<tokio::task::AbortHandle>) {
        let dispatcher = Arc::new(PubSubDispatcher {
            client,
            commands,
            timing,
            target,
            secret,
            routes: Mutex::new(Routes {
                connected: true,
                closed: false,
                generation: 0,
                next_id: 0,
                channels: HashMap::new(),
            }),
            control: tokio::sync::Mutex::new(Control {
                sink: Some(sink.clone()),
                generation: 0,
                subscribed: HashSet::new(),
            }),
            to_unsubscribe: Mutex::new(HashSet::new()),
            unsubscribe_wake: Notify::new(),
        });
        let routing = tokio::spawn(dispatcher.clone().dispatch_forever(sink, stream));
        let unsubscriber = tokio::spawn(dispatcher.clone().unsubscribe_forever());
        (
            dispatcher,
            vec![routing.abort_handle(), unsubscriber.abort_handle()],
        )
    }

    /// A live subscription of `channel` whose floor is `head` (the stream's newest seq,
    /// read after Redis confirmed the SUBSCRIBE). Returns once Redis confirmed it.
    pub(crate) async fn subscribe<F>(
        self: &Arc<Self>,
        channel: &str,
        capacity: usize,
        head: F,
    ) -> Result<Subscription, SubscribeError>
    where
        F: Future<Output = Result<Seq, SubscribeError>>,
    {
        // 1. Register first: whatever Redis sends after the SUBSCRIBE finds the slot.
        //    On any early return below, dropping `subscription` forgets the slot.
        let (subscription, id, generation) = {
            let mut routes = lock(&self.routes);
            if routes.closed {
                return Err(SubscribeError::unavailable("the backplane was shut down"));
            }
            if !routes.connected {
                return Err(SubscribeError::unavailable(format!(
                    "the pub/sub connection to Redis at {} is down; reconnecting",
                    self.target
                )));
            }
            routes.next_id += 1;
            let id = routes.next_id;
            let guard = Unsubscribe {
                dispatcher: Arc::downgrade(self),
                channel: channel.to_owned(),
                id,
            };
            let (subscription, feed) = Subscription::channel(capacity, Some(Box::new(guard)));
            routes
                .channels
                .entry(channel.to_owned())
                .or_default()
                .push(Slot {
                    id,
                    feed,
                    state: SlotState::Pending(Vec::new()),
                    capacity: capacity.max(1),
                });
            (subscription, id, routes.generation)
        };

        // 2. Make sure Redis confirmed a SUBSCRIBE of the channel on this connection.
        {
            let mut control = self.control.lock().await;
            if control.generation != generation {
                return Err(SubscribeError::unavailable(format!(
                    "the pub/sub connection to Redis at {} dropped; reconnecting",
                    self.target
                )));
            }
            if !control.subscribed.contains(channel) {
                let Some(sink) = control.sink.as_mut() else {
                    return Err(SubscribeError::unavailable("no pub/sub connection"));
                };
                match tokio::time::timeout(self.timing.command_timeout, sink.subscribe(channel))
                    .await
                {
                    Ok(Ok(())) => {
                        control.subscribed.insert(channel.to_owned());
                    }
                    Ok(Err(error)) => {
                        return Err(SubscribeError::new(
                            kind_of(&error),
                            format!(
                                "SUBSCRIBE at {}: {}",
                                self.target,
                                scrub(error.to_string(), self.secret.as_deref())
                            ),
                        ));
                    }
                    Err(_) => {
                        return Err(SubscribeError::new(
                            ErrorKind::Timeout,
                            format!(
                                "Redis at {} did not confirm SUBSCRIBE within {:?}",
                                self.target, self.timing.command_timeout
                            ),
                        ));
                    }
                }
            }
        }

        // 3. The head, read after the confirmation: every later append has a greater
        //    seq and was published to a channel we are subscribed to.
        let head = head.await?;

        // 4. Go live: release what was buffered above the floor. If the slot is gone
        //    (the connection dropped meanwhile, or it overflowed while pending), the
        //    subscription already holds its reason and reports it on first `next()`.
        let mut routes = lock(&self.routes);
        if let Some(slots) = routes.channels.get_mut(channel)
            && let Some(index) = slots.iter().position(|slot| slot.id == id)
            && !slots[index].go_live(head)
        {
            slots.swap_remove(index);
        }
        drop(routes);
        Ok(subscription)
    }

    /// Ends every subscription with `Closed`; later subscribes fail. The background
    /// tasks are aborted by the owner.
    pub(crate) fn close(&self) {
        let channels = {
            let mut routes = lock(&self.routes);
            routes.closed = true;
            routes.connected = false;
            mem::take(&mut routes.channels)
        };
        for slot in channels.into_values().flatten() {
            let mut feed = slot.feed;
            feed.end(SubscriptionEnded::Closed);
        }
    }

    /// How many channels have local subscriptions (for tests and metrics).
    pub(crate) fn channel_count(&self) -> usize {
        lock(&self.routes).channels.len()
    }

    /// Whether the pub/sub connection is up.
    pub(crate) fn is_connected(&self) -> bool {
        lock(&self.routes).connected
    }

    /// A subscription was dropped: forget its slot, and the channel with its last one.
    fn forget(&self, channel: &str, id: u64) {
        let mut routes = lock(&self.routes);
        let Some(slots) = routes.channels.get_mut(channel) else {
            return;
        };
        slots.retain(|slot| slot.id != id);
        if slots.is_empty() {
            routes.channels.remove(channel);
            drop(routes);
            self.schedule_unsubscribe(channel);
        }
    }

    fn schedule_unsubscribe(&self, channel: &str) {
        let fresh = lock(&self.to_unsubscribe).insert(channel.to_owned());
        if fresh {
            self.unsubscribe_wake.notify_one();
        }
    }

    /// UNSUBSCRIBEs channels that have no local subscription left. Runs for the life of
    /// the dispatcher. One channel per command: the pub/sub sink pairs one reply with
    /// one request, and a multi-channel UNSUBSCRIBE answers once per channel.
    async fn unsubscribe_forever(self: Arc<Self>) {
        loop {
            self.unsubscribe_wake.notified().await;
            let channels = mem::take(&mut *lock(&self.to_unsubscribe));
            if channels.is_empty() {
                continue;
            }
            let mut control = self.control.lock().await;
            for channel in channels {
                // Checked under `control`: a subscriber that registered since then
                // waits for this lock before deciding whether to SUBSCRIBE again.
                if lock(&self.routes).channels.contains_key(&channel) {
                    continue;
                }
                control.subscribed.remove(&channel);
                let Some(sink) = control.sink.as_mut() else {
                    continue;
                };
                match tokio::time::timeout(
                    self.timing.command_timeout,
                    sink.unsubscribe(channel.as_str()),
                )
                .await
                {
                    Ok(Ok(())) => {}
                    // A dead connection is noticed (and every channel dropped) by the
                    // dispatcher task; nothing to undo here.
                    Ok(Err(error)) => tracing::debug!(
                        %channel,
                        error = %scrub(error.to_string(), self.secret.as_deref()),
                        "redis UNSUBSCRIBE failed"
                    ),
                    Err(_) => tracing::debug!(%channel, "redis UNSUBSCRIBE timed out"),
                }
            }
        }
    }
}
