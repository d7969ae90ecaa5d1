//! One session's worker: while this replica owns the session's queue, end a turn its
//! previous owner left unfinished, answer the oldest waiting message, and look again;
//! release the queue when nothing is left.

use std::sync::Arc;
use std::time::Duration;

use switchboard_backplane::{Backoff, StreamName};
use switchboard_protocol::{EventBody, TurnEndCode, TurnStatus};
use tokio_util::sync::CancellationToken;

use super::admit::Admission;
use super::history;
use super::lease::{Held, Lease, OwnedLease, Queued, Running};
use super::{RunningTurn, TurnJob, Turns};
use crate::error::ClientError;
use crate::ids::{new_id, session_stream};

/// History events read to find a turn (the retention caps it anyway).
pub(super) const HISTORY_EVENTS: usize = 10_000;

/// The read (`after`, `limit`) of the history a turn answering the message at `seq`
/// draws on: the [`HISTORY_EVENTS`] events up to and including it, the latest ones
/// (a prompt keeps the latest messages that fit), never what came after it. An
/// unknown `seq` (0) reads from the oldest event.
pub(super) fn history_window(seq: u64) -> (Option<u64>, usize) {
    if seq == 0 {
        return (None, HISTORY_EVENTS);
    }
    let limit = usize::try_from(seq).map_or(HISTORY_EVENTS, |seq| seq.min(HISTORY_EVENTS));
    let after = seq.saturating_sub(limit as u64);
    ((after > 0).then_some(after), limit)
}
/// How many times one message is tried when the replicas answering it keep stopping:
/// a message that brings replicas down is not retried forever.
const MAX_ATTEMPTS: usize = 3;
/// How long an interrupted turn's end is retried through a backplane outage.
const END_PATIENCE: Duration = Duration::from_secs(30);

impl Turns {
    pub(super) async fn drain_queue(self: Arc<Self>, mut lease: OwnedLease) {
        let session_id = lease.session_id.clone();
        self.drain_queue_while_held(&mut lease).await;
        let mut sessions = self.lock();
        // A successor worker (after a takeover back to this replica) stays.
        if sessions
            .get(&session_id)
            .is_some_and(|w| w.token == lease.token())
        {
            sessions.remove(&session_id);
        }
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
            if let Some(running) = lease.lease().running.clone() {
                // This replica owns the queue and runs no turn of it: whoever started
                // this one stopped.
                match self.settle_interrupted(&stream, &running, lease).await {
                    Some(Held::Lost) => return,
                    Some(_) => continue,
                    None => {
                        tokio::select! {
                            () = lease.fence.cancelled() => return,
                            () = backoff.wait() => continue,
                        }
                    }
                }
            }
            let Some(next) = lease.lease().waiting.first().cloned() else {
                match lease.release(self).await {
                    Held::Kept | Held::Lost => return,
                    Held::Poked => continue,
                }
            };
            match self.services.handoff.assistant_answers(&session_id).await {
                Ok(true) => {}
                Ok(false) => {
                    // A person was asked for or holds the conversation: the AI stays
                    // silent, and the message is theirs to answer.
                    let skipped = next.message_id.clone();
                    let skip = move |queue: &mut Lease| {
                        if queue.waiting.first().map(|q| &q.message_id) == Some(&skipped) {
                            queue.waiting.remove(0);
                        }
                    };
                    if lease.update(self, &skip).await == Held::Lost {
                        return;
                    }
                    self.forget_job(&next.message_id).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(%session_id, error = %e.message, "cannot read who holds the conversation yet; retrying");
                    tokio::select! {
                        () = lease.fence.cancelled() => return,
                        () = backoff.wait() => continue,
                    }
                }
            }
            let found = async {
                let job = self.recall_job(&next.message_id).await?;
                let (after, limit) = history_window(next.seq);
                let replay = self.backplane.read(&stream, after, limit).await?;
                let mut question = history::question(&replay.events, &next.message_id);
                if question.is_none() && next.seq > 0 {
                    // Beyond the oldest events read above: read the message itself.
                    let at = self.backplane.read(&stream, Some(next.seq - 1), 1).await?;
                    question = history::question(&at.events, &next.message_id);
                }
                Ok::<_, ClientError>((job, replay, question))
            };
            let (job, replay, question) = match found.await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(%session_id, error = %e.message, "cannot read a queued message yet; retrying");
                    tokio::select! {
                        () = lease.fence.cancelled() => return,
                        () = backoff.wait() => continue,
                    }
                }
            };
            // A turn that can be answered needs its org's budget and a slot first.
            let admission = match (&job, &question) {
                (Some(job), Some(_)) => {
                    let admitted = tokio::select! {
                        () = lease.fence.cancelled() => return,
                        // Handed over at the top of the loop.
                        () = self.draining.cancelled() => continue,
                        admitted = self.admit(job) => admitted,
                    };
                    if matches!(admitted, Admission::Later) {
                        tokio::select! {
                            () = lease.fence.cancelled() => return,
                            () = backoff.wait() => continue,
                        }
                    }
                    Some(admitted)
                }
                _ => None,
            };
            backoff.reset();
            let turn_id = new_id("t");
            let running = Running {
                turn_id: turn_id.clone(),
                message: next.clone(),
            };
            let take = move |queue: &mut Lease| {
                if queue.waiting.first().map(|q| &q.message_id) == Some(&running.message.message_id)
                {
                    queue.waiting.remove(0);
                }
                queue.running = Some(running.clone());
            };
            if lease.update(self, &take).await == Held::Lost {
                return;
            }
            let cancel = CancellationToken::new();
            if let Some(worker) = self.lock().get_mut(&session_id)
                && worker.token == lease.token()
            {
                worker.running = Some(RunningTurn {
                    turn_id: turn_id.clone(),
                    cancel: cancel.clone(),
                });
            }
            match (job, question, admission) {
                (Some(job), Some(question), Some(Admission::Run(slot))) => {
                    let job = TurnJob {
                        session_id: session_id.clone(),
                        stream: stream.clone(),
                        message_id: next.message_id.clone(),
                        question,
                        access: job.access,
                    };
                    self.run(job, &replay.events, turn_id, cancel, lease.fence.clone())
                        .await;
                    drop(slot);
                }
                (_, _, Some(Admission::Refuse(code, why))) => {
                    self.end_unanswerable(&stream, &next.message_id, turn_id, &why, Some(code))
                        .await
                }
                (None, _, _) => {
                    let why = "this message can no longer be answered: who sent it is no longer known; send it again";
                    self.end_unanswerable(&stream, &next.message_id, turn_id, why, None)
                        .await
                }
                // `Later` went round the loop above; a job and a question always have
                // an admission.
                (Some(_), Some(_), _) => {}
                (Some(_), None, _) => {
                    let why = "this message left the session's retained history (--history-max-events) before its turn began, so it cannot be answered; send it again";
                    self.end_unanswerable(&stream, &next.message_id, turn_id, why, None)
                        .await
                }
            }
            if let Some(worker) = self.lock().get_mut(&session_id)
                && worker.token == lease.token()
            {
                worker.running = None;
            }
            if lease.fence.is_cancelled() {
                return;
            }
            if lease
                .update(self, &|queue: &mut Lease| queue.running = None)
                .await
                == Held::Lost
            {
                return;
            }
        }
    }

    /// A turn is marked running and this replica does not run it: its replica stopped
    /// (or this one could not clear the mark). End it `replica_lost` if it started and
    /// has no end, and put its message back first in line when it is tried again.
    /// `None`: history unavailable, try later.
    async fn settle_interrupted(
        &self,
        stream: &StreamName,
        running: &Running,
        lease: &mut OwnedLease,
    ) -> Option<Held> {
        // The turn's events came after its message.
        let after = running.message.seq.checked_sub(1);
        let replay = match self.backplane.read(stream, after, HISTORY_EVENTS).await {
            Ok(replay) => replay,
            Err(e) => {
                tracing::warn!(%stream, error = %e, "history unavailable; cannot settle an interrupted turn yet");
                return None;
            }
        };
        let (retry, losses) = match history::started(&replay, &running.turn_id) {
            // It never started: its message simply waits again.
            None => (true, running.message.losses),
            // It ended after all (its replica stopped between the end and the mark),
            // perhaps before its answer was written: write that first.
            Some(started) if started.ended => {
                if let Some(text) = started.owed_answer
                    && let Err(e) = self
                        .answer(
                            stream,
                            text,
                            super::run::author(self.named_assistant(stream.id()).await.as_ref()),
                        )
                        .await
                {
                    tracing::warn!(%stream, error = %e, "could not write an interrupted turn's answer yet");
                    return None;
                }
                (false, running.message.losses)
            }
            Some(started) => {
                let attempts = running.message.losses + 1;
                let retrying = !started.called_tool && attempts < MAX_ATTEMPTS;
                if !self
                    .end_interrupted(
                        stream,
                        &running.turn_id,
                        started.called_tool,
                        retrying,
                        attempts,
                        &lease.fence,
                    )
                    .await
                {
                    return None;
                }
                (retrying, attempts)
            }
        };
        let again = Queued {
            losses,
            ..running.message.clone()
        };
        let settle = move |queue: &mut Lease| {
            queue.running = None;
            if retry && !queue.holds(&again.message_id) {
                queue.waiting.insert(0, again.clone());
            }
        };
        let held = lease.update(self, &settle).await;
        if !retry && held != Held::Lost {
            self.forget_job(&running.message.message_id).await;
        }
        Some(held)
    }

    /// End a turn whose replica stopped: `failed`, `replica_lost`, and whether its
    /// message is answered again. Returns false when this replica lost the queue.
    async fn end_interrupted(
        &self,
        stream: &StreamName,
        turn_id: &str,
        called_tool: bool,
        retrying: bool,
        attempts: usize,
        fence: &CancellationToken,
    ) -> bool {
        let error = if called_tool {
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
            turn_id: turn_id.to_string(),
            status: TurnStatus::Failed,
            text: String::new(),
            usage: None,
            sources: None,
            error: Some(error),
            code: Some(TurnEndCode::ReplicaLost),
            retrying: Some(retrying),
            assistant: None,
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
                tracing::info!(%turn_id, retrying, "ended a turn whose replica stopped");
                self.metrics
                    .turns_replica_lost
                    .with_label_values(&[if retrying { "true" } else { "false" }])
                    .inc();
                self.metrics.turns.with_label_values(&["failed"]).inc();
                true
            }
            Err(e) => {
                tracing::error!(%turn_id, error = %e, "could not end a turn whose replica stopped");
                !fence.is_cancelled()
            }
        }
    }

    /// A message that cannot be answered (its sender is no longer known, its text
    /// left the history, its org's budget is spent, no slot was free in time) gets a
    /// turn that says why, with `code` where a client may tell causes apart, rather
    /// than silence or an answer with someone else's access.
    async fn end_unanswerable(
        &self,
        stream: &StreamName,
        message_id: &str,
        turn_id: String,
        why: &str,
        code: Option<TurnEndCode>,
    ) {
        let start = EventBody::TurnStart {
            turn_id: turn_id.clone(),
            reply_to: message_id.to_string(),
            assistant: None,
        };
        let end = EventBody::TurnEnd {
            turn_id,
            status: TurnStatus::Failed,
            text: String::new(),
            usage: None,
            sources: None,
            error: Some(why.to_string()),
            code,
            retrying: None,
            assistant: None,
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
