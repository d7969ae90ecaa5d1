//! This replica's control stream, `control:<replica_id>`: the hints other replicas
//! send it (see [`crate::assistant::control`]) wake the turn they concern, which then
//! reads its record. The stream follows the replica's current id (a replica that
//! lapses starts over under a new one) and is subscribed again whenever its
//! subscription ends. Hints sent while no subscription was there are lost, so after
//! every (re)subscription each waiting turn reads its records once.

use std::sync::Arc;
use std::time::Duration;

use switchboard_backplane::{Backoff, StreamName, Subscription};
use tokio::time::Instant;

use super::Turns;
use crate::assistant::control::Hint;

/// Waits between subscriptions grow from the first to the last while they keep
/// failing or ending at once; one that lived longer than the last starts over.
const RESUBSCRIBE_FIRST: Duration = Duration::from_millis(50);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(2);

impl Turns {
    /// Listen until the drain is over (`stopped`): running turns still take cancels
    /// while the drain finishes them.
    pub(super) async fn listen_for_hints(self: Arc<Self>) {
        let mut backoff = Backoff::new(RESUBSCRIBE_FIRST, RESUBSCRIBE_MAX).with_jitter(0.25);
        loop {
            let (replica_id, fence) = self.replica.identity();
            let Ok(stream) = StreamName::control(&replica_id) else {
                // Replica ids are made by `new_id`, always a valid stream id.
                tracing::error!(%replica_id, "no control stream for this replica id");
                return;
            };
            let subscribed = tokio::select! {
                () = self.stopped.cancelled() => return,
                subscribed = self.backplane.subscribe(&stream) => subscribed,
            };
            let mut subscription = match subscribed {
                Ok(subscription) => subscription,
                Err(e) => {
                    tracing::warn!(%stream, error = %e, "cannot subscribe to the control stream; retrying");
                    tokio::select! {
                        () = self.stopped.cancelled() => return,
                        () = backoff.wait() => continue,
                    }
                }
            };
            let since = Instant::now();
            self.wake_all_cancels();
            self.services.approvals.wake_all();
            tokio::select! {
                () = self.stopped.cancelled() => return,
                // A new id: the old stream's hints concern turns that stopped with it.
                () = fence.cancelled() => continue,
                () = self.take_hints(&mut subscription) => {}
            }
            if since.elapsed() > RESUBSCRIBE_MAX {
                backoff.reset();
            }
            tokio::select! {
                () = self.stopped.cancelled() => return,
                () = backoff.wait() => {}
            }
        }
    }

    /// Act on hints until the subscription ends.
    async fn take_hints(&self, subscription: &mut Subscription) {
        loop {
            match subscription.next().await {
                Ok(event) => match Hint::parse(&event.body) {
                    Some(Hint::Cancel { turn_id }) => self.wake_cancel(&turn_id),
                    Some(Hint::Decided { call_id }) => self.services.approvals.wake(&call_id),
                    None => tracing::debug!(
                        seq = event.seq,
                        "not a hint on the control stream; ignored"
                    ),
                },
                Err(ended) => {
                    tracing::info!(
                        ?ended,
                        "control stream subscription ended; subscribing again"
                    );
                    return;
                }
            }
        }
    }
}
