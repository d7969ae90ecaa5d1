//! One local subscription of a channel: pending (buffering) until its floor, the
//! stream's head read after the SUBSCRIBE, is known; then live above that floor.

use std::mem;
use std::sync::{Arc, Weak};

use switchboard_backplane::{Event, Offered, Seq, SubscriptionEnded, SubscriptionFeed};

use super::PubSubDispatcher;

/// One local subscription of a channel.
pub(super) struct Slot {
    pub(super) id: u64,
    pub(super) feed: SubscriptionFeed,
    pub(super) state: SlotState,
    pub(super) capacity: usize,
}

pub(super) enum SlotState {
    /// The SUBSCRIBE or the head read is in flight: hold what arrives (at most
    /// `capacity`), the floor is not known yet.
    Pending(Vec<Arc<Event>>),
    /// Deliver events with `seq > last`, then raise `last`: live order is strictly
    /// increasing even if something stale or duplicated shows up on the socket.
    Live { last: Seq },
}

impl Slot {
    /// Hands `event` on. Returns whether to keep the slot.
    pub(super) fn offer(&mut self, event: &Arc<Event>) -> bool {
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

    /// The floor is known: go live at `head` and release what was buffered above it.
    /// Returns whether to keep the slot.
    pub(super) fn go_live(&mut self, head: Seq) -> bool {
        let buffered = match mem::replace(&mut self.state, SlotState::Live { last: head }) {
            SlotState::Pending(buffered) => buffered,
            SlotState::Live { .. } => Vec::new(),
        };
        buffered.iter().all(|event| self.offer(event))
    }
}

/// Held by a [`Subscription`](switchboard_backplane::Subscription); dropping it forgets
/// the slot (and unsubscribes the channel when it was the last).
pub(super) struct Unsubscribe {
    pub(super) dispatcher: Weak<PubSubDispatcher>,
    pub(super) channel: String,
    pub(super) id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        if let Some(dispatcher) = self.dispatcher.upgrade() {
            dispatcher.forget(&self.channel, self.id);
        }
    }
}
