//! One stream's chain: the republished messages a topic holds, keyed by their
//! predecessor, and where each local subscriber stands in it. Pure bookkeeping, no I/O.
//!
//! # Reordering
//!
//! nats-server 2.9 republishes a stored message from the goroutine of the connection
//! that published it, so appends racing from two connections (two replicas) can be
//! republished out of `seq` order (measured: ~10 swaps per 8,000 appends from four
//! connections). `Nats-Last-Sequence` names each message's predecessor on its subject,
//! so the topic keeps recent messages keyed by predecessor and hands each subscriber
//! the successor of the last event it got: exact order, no guessing. A successor that
//! is late holds back the ones after it; one that never comes ends the subscription
//! after [`REORDER_WAIT`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_backplane::{Event, Offered, Seq, SubscriptionEnded, SubscriptionFeed};

/// How long a subscriber waits for a missing predecessor (a reordered republish
/// arrives within microseconds; a dropped one never does) before it ends as `Lagged`.
pub(crate) const REORDER_WAIT: Duration = Duration::from_millis(500);

/// How many received messages a topic keeps for subscribers that have not taken them
/// yet (waiting behind a missing predecessor, or for their head read). Past it the
/// subscribers that still need the oldest end as `Lagged`.
pub(crate) const BUFFER_CAPACITY: usize = 4096;

/// A received message, waiting until every subscriber that needs it took it.
struct Entry {
    seq: Seq,
    /// `None`: not an event body (skipped, but still a link of the chain).
    event: Option<Arc<Event>>,
}

/// The chain of one topic and its subscribers. Pure bookkeeping, no I/O.
#[derive(Default)]
pub(super) struct TopicState {
    /// Received messages by the seq of their predecessor on the subject (0: none).
    buffer: BTreeMap<Seq, Entry>,
    pub(super) slots: Vec<Slot>,
}

/// One local subscriber of a topic.
pub(super) struct Slot {
    pub(super) id: u64,
    pub(super) feed: SubscriptionFeed,
    /// The seq of the last event this subscriber got (its chain position); `None`
    /// while `subscribe` reads the head, which becomes the first position.
    pub(super) cursor: Option<Seq>,
    /// The newest seq evicted from the buffer while `cursor` was unknown.
    pub(super) missed: Option<Seq>,
    /// Since when the successor of `cursor` is missing while later messages are here.
    pub(super) stuck_since: Option<Instant>,
}

impl TopicState {
    /// Take a republished message: `seq` stored after `previous` (0: nothing before it
    /// was retained) on the subject.
    pub(super) fn receive(
        &mut self,
        seq: Seq,
        previous: Seq,
        event: Option<Arc<Event>>,
        now: Instant,
    ) {
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
    pub(super) fn resolve(&mut self, id: u64, head: Seq, now: Instant) {
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
    pub(super) fn expire(&mut self, now: Instant) {
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
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|slot| slot.stuck_since)
            .min()
            .map(|since| since + REORDER_WAIT)
    }

    pub(super) fn end_all(&mut self, reason: SubscriptionEnded) {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::live::SubscriptionTable;
    use switchboard_backplane::{EventBody, Subscription};

    fn event(seq: Seq) -> Option<Arc<Event>> {
        Some(Arc::new(Event {
            seq,
            ts: 1,
            traceparent: None,
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
        let table = SubscriptionTable::default();
        table.end_all(SubscriptionEnded::Disconnected);
        assert_eq!(table.topic_count(), 0);
    }
}
