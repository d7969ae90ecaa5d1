//! The [`SubscriptionTable`]: which streams this replica holds a core NATS subscription
//! for, how many local subscriptions share each, and what the client's connection
//! events (disconnect, reconnect, slow consumer, close) do to them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use switchboard_backplane::{StreamName, SubscriptionEnded};

use super::{Topic, lock};

/// Every subscribed stream of this replica. Owned by the backplane; the client's event
/// callback and the subscription guards hold it weakly, so dropping the backplane ends
/// every subscription (`Closed`) and stops every dispatcher task.
#[derive(Default)]
pub(crate) struct SubscriptionTable {
    /// Lock order: this map, then a topic's state; never the other way round.
    pub(super) topics: Mutex<HashMap<StreamName, TopicEntry>>,
    /// Whether the client has connected once (its first `Connected` event is the boot).
    connected_once: AtomicBool,
    /// Whether a `Disconnected` event came since the last `Connected`.
    disconnect_seen: AtomicBool,
}

pub(super) struct TopicEntry {
    pub(super) topic: Arc<Topic>,
    /// Live `Subscription`s (and `subscribe` calls in progress) of this stream.
    pub(super) refs: usize,
}

/// Held by a [`Subscription`](switchboard_backplane::Subscription): dropping it removes
/// the feed, and the last one of a stream unsubscribes.
pub(super) struct FeedGuard {
    pub(super) table: Weak<SubscriptionTable>,
    pub(super) stream: StreamName,
    pub(super) id: u64,
}

impl Drop for FeedGuard {
    fn drop(&mut self) {
        let Some(table) = self.table.upgrade() else {
            return;
        };
        let removed = {
            let mut topics = lock(&table.topics);
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
        // Dropped outside the map lock: this aborts the dispatcher task, whose
        // `Subscriber` sends the UNSUBSCRIBE as it drops.
        drop(removed);
    }
}

impl SubscriptionTable {
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

impl Drop for SubscriptionTable {
    fn drop(&mut self) {
        self.end_all(SubscriptionEnded::Closed);
    }
}
