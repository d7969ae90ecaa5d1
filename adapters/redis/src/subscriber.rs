//! Live delivery: one Redis pub/sub connection per [`RedisBackplane`](crate::RedisBackplane),
//! shared by every subscription of that replica.
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
//! - **Reference counting.** A channel is SUBSCRIBEd when its first local subscription is
//!   made and UNSUBSCRIBEd (by a small background task) once its last is dropped. Both
//!   decisions are taken under the `control` lock after looking at `routes`, so an
//!   UNSUBSCRIBE can never overtake the SUBSCRIBE of a newer subscriber.
//! - **The subscribe seam.** A new slot is registered *before* the SUBSCRIBE is sent and
//!   starts `Pending`, buffering what arrives. Once Redis confirmed the SUBSCRIBE, the
//!   stream's head `H` is read; the slot then goes live with floor `H`: buffered and
//!   later events with `seq <= H` are dropped, everything above is delivered. Every
//!   append after the head read has `seq > H` and was published after the SUBSCRIBE,
//!   so it arrives; anything stale (left in the socket from an earlier subscription of
//!   the same channel, or already on its way to this replica for another local
//!   subscriber) has `seq <= H`. Without the floor a new subscription of a busy stream
//!   started, within a few dozen tries, with an event whose append had returned before
//!   `subscribe` was even called (`a_new_subscription_of_a_busy_stream_starts_after_subscribe`
//!   in `tests/redis_specific.rs`).
//! - **Disconnects.** When the connection drops (the stream ends, or a periodic PING
//!   gets no answer) every live subscription ends with
//!   [`SubscriptionEnded::Disconnected`], `subscribe` answers `Unavailable`, and the
//!   dispatcher reconnects with exponential backoff (plus jitter) until it succeeds.
//!   Subscriptions are not silently resumed: events published while the connection was
//!   down are gone from pub/sub, so the gateway resubscribes and fills the gap from
//!   history.
//! - **Buffering.** The `redis` crate's driver task reads the socket into an unbounded
//!   channel that the dispatcher drains. The dispatcher never awaits anything but that
//!   channel (parse, short lock, `try_send`), so the channel stays near empty; the
//!   bounded queues are the per-subscription ones, where falling behind is visible.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use switchboard_backplane::{
    ErrorKind, Event, Offered, Seq, SubscribeError, Subscription, SubscriptionEnded,
    SubscriptionFeed,
};
use tokio::sync::Notify;

use crate::error::{kind_of, scrub};

/// Timing of the pub/sub connection.
#[derive(Debug, Clone)]
pub(crate) struct HubTiming {
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub ping_interval: Duration,
    pub reconnect_delay_min: Duration,
    pub reconnect_delay_max: Duration,
}

/// The live half of a Redis backplane: routes, the pub/sub connection's control, and the
/// channels waiting to be unsubscribed.
pub(crate) struct Hub {
    client: redis::Client,
    /// The command connection, only to wake it after an outage (see
    /// [`Hub::warm_commands`]).
    commands: redis::aio::ConnectionManager,
    timing: HubTiming,
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
    /// Set once by [`Hub::close`]; every later subscribe fails.
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

/// One local subscription of a channel.
struct Slot {
    id: u64,
    feed: SubscriptionFeed,
    state: SlotState,
    capacity: usize,
}

enum SlotState {
    /// The SUBSCRIBE or the head read is in flight: hold what arrives (at most
    /// `capacity`), the floor is not known yet.
    Pending(Vec<Arc<Event>>),
    /// Deliver events with `seq > last`, then raise `last`: live order is strictly
    /// increasing even if something stale or duplicated shows up on the socket.
    Live { last: Seq },
}

impl Slot {
    /// Hands `event` on. Returns whether to keep the slot.
    fn offer(&mut self, event: &Arc<Event>) -> bool {
        match &mut self.state {
            SlotState::Pending(buffer) => {
                if self.feed.is_closed() {
                    return false;
                }
                if buffer.len() >= self.capacity {
                    self.feed.end(SubscriptionEnded::Lagged);
                    return false;
                }
                buffer.push(event.clone());
                true
            }
            SlotState::Live { last } => {
                if event.seq <= *last {
                    return !self.feed.is_closed();
                }
                *last = event.seq;
                self.feed.offer(event.clone()) == Offered::Delivered
            }
        }
    }
}

/// Held by a [`Subscription`]; dropping it forgets the slot (and unsubscribes the
/// channel when it was the last).
struct Unsubscribe {
    hub: Weak<Hub>,
    channel: String,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.forget(&self.channel, self.id);
        }
    }
}

/// A poisoned lock only means a thread panicked holding it; every update keeps the
/// routes consistent step by step, so keep serving.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// A hub on an established pub/sub connection, with its two background tasks
    /// spawned: the dispatcher (routing, reconnecting) and the unsubscriber.
    pub(crate) fn start(
        client: redis::Client,
        commands: redis::aio::ConnectionManager,
        timing: HubTiming,
        target: String,
        secret: Option<String>,
        sink: PubSubSink,
        stream: PubSubStream,
    ) -> (Arc<Hub>, Vec<tokio::task::AbortHandle>) {
        let hub = Arc::new(Hub {
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
        let dispatcher = tokio::spawn(hub.clone().dispatch_forever(sink, stream));
        let unsubscriber = tokio::spawn(hub.clone().unsubscribe_forever());
        (
            hub,
            vec![dispatcher.abort_handle(), unsubscriber.abort_handle()],
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
                hub: Arc::downgrade(self),
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
        {
            let slot = &mut slots[index];
            let buffered = match mem::replace(&mut slot.state, SlotState::Live { last: head }) {
                SlotState::Pending(buffered) => buffered,
                SlotState::Live { .. } => Vec::new(),
            };
            if !buffered.iter().all(|event| slot.offer(event)) {
                slots.swap_remove(index);
            }
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
    /// the hub. One channel per command: the pub/sub sink pairs one reply with one
    /// request, and a multi-channel UNSUBSCRIBE answers once per channel.
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
                    // dispatcher; nothing to undo here.
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

    /// Routes messages until the connection is lost, then ends every subscription as
    /// `Disconnected`, reconnects with backoff, and starts over. Runs for the life of
    /// the hub.
    async fn dispatch_forever(self: Arc<Self>, mut sink: PubSubSink, mut stream: PubSubStream) {
        loop {
            let reason = self.pump(&mut stream, sink.clone()).await;
            drop(stream); // stops the connection's driver task
            tracing::warn!(
                target_server = %self.target,
                %reason,
                "redis pub/sub connection lost; ending live subscriptions as disconnected"
            );
            self.disconnected().await;
            (sink, stream) = self.reconnect().await;
            self.warm_commands().await;
            {
                let mut control = self.control.lock().await;
                control.sink = Some(sink.clone());
                control.subscribed.clear();
            }
            lock(&self.routes).connected = true;
            tracing::info!(target_server = %self.target, "redis pub/sub connection re-established");
        }
    }

    /// Routes messages from `stream` until it ends or a PING goes unanswered; returns
    /// why it stopped.
    async fn pump(&self, stream: &mut PubSubStream, mut sink: PubSubSink) -> String {
        let (interval, deadline) = (self.timing.ping_interval, self.timing.command_timeout);
        // A half-open TCP connection (a network partition, a paused VM) never ends the
        // stream by itself; a PING that goes unanswered does.
        let pinger = async move {
            loop {
                tokio::time::sleep(interval).await;
                match tokio::time::timeout(deadline, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return format!("PING failed: {error}"),
                    Err(_) => return format!("no answer to PING within {deadline:?}"),
                }
            }
        };
        tokio::pin!(pinger);
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => self.dispatch(&message),
                    None => return "the server closed the connection".to_owned(),
                },
                reason = &mut pinger => return scrub(reason, self.secret.as_deref()),
            }
        }
    }

    /// Hands one message to the channel's local subscriptions. Never waits.
    fn dispatch(&self, message: &redis::Msg) {
        let channel = message.get_channel_name();
        // Parsed once, shared by every local subscriber.
        let event = match serde_json::from_slice::<Event>(message.get_payload_bytes()) {
            Ok(event) => Arc::new(event),
            Err(error) => {
                // Only a publisher that bypasses the append script can put this here;
                // the same bytes are not in history either, so skipping keeps live and
                // history alike.
                tracing::warn!(%channel, %error, "ignoring a pub/sub message that is not a Switchboard event");
                return;
            }
        };
        let mut routes = lock(&self.routes);
        let Some(slots) = routes.channels.get_mut(channel) else {
            drop(routes);
            // Subscribed at Redis with nobody local (an UNSUBSCRIBE still in flight, or
            // a subscribe cancelled after Redis confirmed it): make sure it goes.
            self.schedule_unsubscribe(channel);
            return;
        };
        slots.retain_mut(|slot| slot.offer(&event));
        if slots.is_empty() {
            routes.channels.remove(channel);
            drop(routes);
            self.schedule_unsubscribe(channel);
        }
    }

    /// The connection is gone: end every subscription as `Disconnected` and refuse new
    /// ones until [`Hub::reconnect`] succeeds.
    async fn disconnected(&self) {
        let (channels, generation) = {
            let mut routes = lock(&self.routes);
            routes.connected = false;
            routes.generation += 1;
            (mem::take(&mut routes.channels), routes.generation)
        };
        for slot in channels.into_values().flatten() {
            let mut feed = slot.feed;
            feed.end(SubscriptionEnded::Disconnected);
        }
        let mut control = self.control.lock().await;
        control.sink = None;
        control.subscribed.clear();
        control.generation = generation;
    }

    /// Redis is back; make sure the command connection is too before subscribers are
    /// let in. The [`ConnectionManager`](redis::aio::ConnectionManager) reconnects on
    /// demand: the first command after an outage fails with the last failed attempt's
    /// error (and starts a new attempt). Without this PING, the first append after
    /// the pub/sub connection was back failed with "Reconnecting failed: Connection
    /// refused" (`outage_fails_fast_…` in tests/outage.rs).
    async fn warm_commands(&self) {
        let mut commands = self.commands.clone();
        for _ in 0..3 {
            let ping = tokio::time::timeout(
                self.timing.command_timeout,
                redis::cmd("PING").query_async::<redis::Value>(&mut commands),
            )
            .await;
            if matches!(ping, Ok(Ok(_))) {
                return;
            }
        }
    }

    /// A new pub/sub connection, trying until one works: exponential backoff from
    /// `reconnect_delay_min` to `reconnect_delay_max`, with jitter so that replicas
    /// do not reconnect in lockstep after a Redis restart.
    async fn reconnect(&self) -> (PubSubSink, PubSubStream) {
        let mut delay = self.timing.reconnect_delay_min;
        let mut attempt: u32 = 0;
        loop {
            tokio::time::sleep(jitter(delay)).await;
            attempt += 1;
            match tokio::time::timeout(self.timing.connect_timeout, self.client.get_async_pubsub())
                .await
            {
                Ok(Ok(pubsub)) => return pubsub.split(),
                Ok(Err(error)) => tracing::warn!(
                    target_server = %self.target,
                    attempt,
                    error = %scrub(error.to_string(), self.secret.as_deref()),
                    "redis pub/sub reconnect failed"
                ),
                Err(_) => tracing::warn!(
                    target_server = %self.target,
                    attempt,
                    "redis pub/sub reconnect timed out"
                ),
            }
            delay = (delay * 2).min(self.timing.reconnect_delay_max);
        }
    }
}

/// `delay` scaled by a factor in [0.5, 1.5), from the clock's nanoseconds (no RNG
/// dependency for this).
fn jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    delay.mul_f64(0.5 + f64::from(nanos % 1000) / 1000.0)
}
