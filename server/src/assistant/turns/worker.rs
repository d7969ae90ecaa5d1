//! One session's worker: while this replica holds the session's lease, read the
//! backlog from history, end a turn its previous owner left unfinished, answer the
//! oldest waiting message, and look again; release the lease when nothing is left.

use std::sync::Arc;
use std::time::Duration;

use switchboard_backplane::Backoff;
use switchboard_protocol::{EventBody, TurnEndCode, TurnStatus};
use tokio_util::sync::CancellationToken;

use super::backlog::{self, Unfinished};
use super::lease::{Held, OwnedLease};
use super::{RunningTurn, TurnJob, Turns};
use crate::ids::{new_id, session_stream};

/// History events read to find the backlog (the retention caps it anyway).
pub(super) const HISTORY_EVENTS: usize = 10_000;
/// How many times one message is tried when the replicas answering it keep stopping:
/// a message that brings replicas down is not retried forever.
const MAX_ATTEMPTS: usize = 3;
/// How long an interrupted turn's end is retried through a backplane outage.
const END_PATIENCE: Duration = Duration::from_secs(30);

impl Turns {
    pub(super) async fn drain_queue(self: Arc<Self>, mut lease: OwnedLease) {
        let session_id = lease.session_id.clone();
        self.drain_queue_while_held(&mut lease).await;
        self.lock().remove(&session_id);
    }

    async fn drain_queue_while_held(&self, lease: &mut OwnedLease) {
        let session_id = lease.session_id.clone();
        let Ok(stream) = session_stream(&session_id) else {
            // Leases are only made for sessions that have a stream.
            let _ = lease.release(self).await;
            return;
        };
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        loop {
            if lease.fence.is_cancelled() {
                return;
            }
            if self.draining.is_cancelled() {
                // Another replica takes the rest at once.
                lease.hand_over(self).await;
                return;
            }
            let history = match self.backplane.read(&stream, None, HISTORY_EVENTS).await {
                Ok(replay) => replay.events,
                Err(e) => {
                    tracing::warn!(%session_id, error = %e, "history unavailable; cannot read the turn queue yet");
                    tokio::select! {
                        () = lease.fence.cancelled() => return,
                        () = backoff.wait() => continue,
                    }
                }
            };
            backoff.reset();
            let backlog = backlog::scan(&history);
            if let Some(unfinished) = backlog.unfinished {
                // This replica owns the queue and runs no turn of it: whoever started
                // this one stopped.
                if !self
                    .end_interrupted(&stream, &unfinished, &lease.fence)
                    .await
                {
                    return;
                }
                continue;
            }
            let Some(next) = backlog.waiting.first() else {
                match lease.release(self).await {
                    Held::Kept | Held::Lost => return,
                    Held::Poked => continue,
                }
            };
            let queued = backlog.waiting.len().saturating_sub(1);
            if lease.set_queued(self, queued).await == Held::Lost {
                return;
            }
            let access = match self.recall_asker(&next.message_id).await {
                Ok(access) => access,
                Err(e) => {
                    tracing::warn!(%session_id, error = %e, "cannot read who asked; retrying");
                    tokio::select! {
                        () = lease.fence.cancelled() => return,
                        () = backoff.wait() => continue,
                    }
                }
            };
            let turn_id = new_id("t");
            let cancel = CancellationToken::new();
            if let Some(slot) = self.lock().get_mut(&session_id) {
                *slot = Some(RunningTurn {
                    turn_id: turn_id.clone(),
                    cancel: cancel.clone(),
                });
            }
            match access {
                Some(access) => {
                    let job = TurnJob {
                        session_id: session_id.clone(),
                        stream: stream.clone(),
                        message_id: next.message_id.clone(),
                        question: next.text.clone(),
                        access,
                    };
                    self.run(job, turn_id, cancel, lease.fence.clone()).await;
                }
                None => {
                    self.end_unanswerable(&stream, &next.message_id, turn_id)
                        .await
                }
            }
            if let Some(slot) = self.lock().get_mut(&session_id) {
                *slot = None;
            }
        }
    }

    /// End a turn whose replica stopped: `failed`, `replica_lost`, and whether its
    /// message is answered again. Returns false when this replica lost the queue.
    async fn end_interrupted(
        &self,
        stream: &switchboard_backplane::StreamName,
        unfinished: &Unfinished,
        fence: &CancellationToken,
    ) -> bool {
        let attempts = unfinished.earlier_losses + 1;
        let retrying = !unfinished.called_tool && attempts < MAX_ATTEMPTS;
        let error = if unfinished.called_tool {
            "the replica writing this reply stopped after the reply called a tool; it is not \
             repeated by itself, so the tool does not run twice: send the message again to continue"
                .to_string()
        } else if retrying {
            "the replica writing this reply stopped; a new reply to the same message follows"
                .to_string()
        } else {
            format!(
                "the replicas writing a reply to this message stopped {attempts} times; it is not \
                 tried again by itself: send the message again to continue"
            )
        };
        let end = EventBody::TurnEnd {
            turn_id: unfinished.turn_id.clone(),
            status: TurnStatus::Failed,
            text: String::new(),
            usage: None,
            sources: None,
            error: Some(error),
            code: Some(TurnEndCode::ReplicaLost),
            retrying: Some(retrying),
        };
        if fence.is_cancelled() {
            return false;
        }
        match self
            .events
            .append_patiently(stream, end, END_PATIENCE)
            .await
        {
            Ok(_) => {
                tracing::info!(turn_id = %unfinished.turn_id, retrying, "ended a turn whose replica stopped");
                self.metrics
                    .turns_replica_lost
                    .with_label_values(&[if retrying { "true" } else { "false" }])
                    .inc();
                self.metrics.turns.with_label_values(&["failed"]).inc();
                true
            }
            Err(e) => {
                tracing::error!(turn_id = %unfinished.turn_id, error = %e, "could not end a turn whose replica stopped");
                !fence.is_cancelled()
            }
        }
    }

    /// A message whose sender is no longer known cannot be answered with the right
    /// access: say so rather than answer it with someone else's.
    async fn end_unanswerable(
        &self,
        stream: &switchboard_backplane::StreamName,
        message_id: &str,
        turn_id: String,
    ) {
        let start = EventBody::TurnStart {
            turn_id: turn_id.clone(),
            reply_to: message_id.to_string(),
        };
        let end = EventBody::TurnEnd {
            turn_id,
            status: TurnStatus::Failed,
            text: String::new(),
            usage: None,
            sources: None,
            error: Some(
                "this message can no longer be answered: who sent it is no longer known; send it again"
                    .into(),
            ),
            code: None,
            retrying: None,
        };
        for body in [start, end] {
            if let Err(e) = self
                .events
                .append_patiently(stream, body, END_PATIENCE)
                .await
            {
                tracing::error!(%stream, error = %e, "could not record an unanswerable message");
                return;
            }
        }
        self.metrics.turns.with_label_values(&["failed"]).inc();
    }
}
