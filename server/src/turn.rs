//! Agent turns. A turn belongs to its session, not to the socket that asked: it runs
//! on the replica that accepted the message, keeps running if that socket drops, and
//! stops on `turn.cancel`, on its deadline, or when the drain grace runs out.
//!
//! Turns of one session run one at a time, in the order their messages were
//! accepted; a worker task per busy session takes them from a bounded queue.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use switchboard_backplane::{Backplane, RecordKey, StreamName};
use switchboard_protocol::{ErrorCode, EventBody, Role, Source, TurnStatus, Usage};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::{ModelChunk, ModelProvider, TurnRequest};
use crate::auth::AccessContext;
use crate::error::ClientError;
use crate::events::Events;
use crate::knowledge::KnowledgeBase;
use crate::metrics::Metrics;
use crate::session::new_id;

/// Documents retrieved per turn.
const DOCUMENTS_PER_TURN: usize = 3;
/// Records namespace of per-session turn leases.
const TURN_LEASES: &str = "turn-leases";
/// How much longer than the turn deadline a lease lives.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// How long a turn keeps retrying to record its end through a backplane outage.
const END_PATIENCE: Duration = Duration::from_secs(30);

/// A message waiting for its reply.
#[derive(Debug, Clone)]
pub struct TurnJob {
    pub session_id: String,
    pub stream: StreamName,
    pub message_id: String,
    pub question: String,
    pub access: AccessContext,
}

struct RunningTurn {
    turn_id: String,
    cancel: CancellationToken,
}

#[derive(Default)]
struct SessionTurns {
    waiting: VecDeque<TurnJob>,
    running: Option<RunningTurn>,
}

/// Turn limits.
#[derive(Debug, Clone, Copy)]
pub struct TurnLimits {
    /// Turns that may wait behind the running one, per session.
    pub max_queued: usize,
    /// Longest a turn may run.
    pub deadline: Duration,
}

/// Every session with turns running or waiting on this replica.
pub struct Turns {
    /// A session is in the map exactly while its worker task runs.
    sessions: Mutex<HashMap<String, SessionTurns>>,
    /// For turn leases (one turn per session across replicas).
    backplane: Arc<dyn Backplane>,
    events: Events,
    knowledge: Arc<KnowledgeBase>,
    provider: Arc<dyn ModelProvider>,
    metrics: Arc<Metrics>,
    limits: TurnLimits,
    workers: TaskTracker,
    /// Cancelled when the drain grace runs out: remaining turns end `failed`.
    abort_all: CancellationToken,
}

impl Turns {
    pub fn new(
        backplane: Arc<dyn Backplane>,
        events: Events,
        knowledge: Arc<KnowledgeBase>,
        provider: Arc<dyn ModelProvider>,
        metrics: Arc<Metrics>,
        limits: TurnLimits,
    ) -> Arc<Turns> {
        Arc::new(Turns {
            backplane,
            sessions: Mutex::new(HashMap::new()),
            events,
            knowledge,
            provider,
            metrics,
            limits,
            workers: TaskTracker::new(),
            abort_all: CancellationToken::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionTurns>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `session_id` can queue one more turn.
    pub fn has_room(&self, session_id: &str) -> Result<(), ClientError> {
        let sessions = self.lock();
        match sessions.get(session_id) {
            Some(s) if s.waiting.len() >= self.limits.max_queued => Err(ClientError::new(
                ErrorCode::RateLimited,
                format!(
                    "{} messages are already waiting for a reply in this session; wait for a turn to end",
                    s.waiting.len()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Queue a turn; start the session's worker if it has none.
    pub fn enqueue(self: &Arc<Self>, job: TurnJob) {
        let session_id = job.session_id.clone();
        let mut sessions = self.lock();
        let start_worker = !sessions.contains_key(&session_id);
        sessions
            .entry(session_id.clone())
            .or_default()
            .waiting
            .push_back(job);
        drop(sessions);
        if start_worker {
            let turns = self.clone();
            self.workers
                .spawn(async move { turns.work(session_id).await });
        }
    }

    /// Cancel the running turn `turn_id` of `session_id`. False if it is not running.
    pub fn cancel(&self, session_id: &str, turn_id: &str) -> bool {
        let sessions = self.lock();
        match sessions.get(session_id).and_then(|s| s.running.as_ref()) {
            Some(running) if running.turn_id == turn_id => {
                running.cancel.cancel();
                true
            }
            _ => false,
        }
    }

    /// Wait for every queued and running turn to finish; after `grace`, end the rest
    /// `failed` and wait for them to record it.
    pub async fn drain(&self, grace: Duration) {
        self.workers.close();
        if tokio::time::timeout(grace, self.workers.wait())
            .await
            .is_err()
        {
            tracing::warn!("drain grace over: ending the remaining turns as failed");
            self.abort_all.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.workers.wait()).await;
        }
    }

    /// Number of sessions with turns running or waiting.
    pub fn busy_sessions(&self) -> usize {
        self.lock().len()
    }

    /// The session's worker: run its turns in order until none is left.
    async fn work(self: Arc<Self>, session_id: String) {
        loop {
            let next = {
                let mut sessions = self.lock();
                let Some(session) = sessions.get_mut(&session_id) else {
                    return;
                };
                match session.waiting.pop_front() {
                    Some(job) => {
                        let running = RunningTurn {
                            turn_id: new_id("t"),
                            cancel: CancellationToken::new(),
                        };
                        let next = (job, running.turn_id.clone(), running.cancel.clone());
                        session.running = Some(running);
                        next
                    }
                    None => {
                        sessions.remove(&session_id);
                        return;
                    }
                }
            };
            let (job, turn_id, cancel) = next;
            // Another replica may be running a turn of this session: wait for its lease.
            let lease = self.acquire_lease(&session_id).await;
            self.run(job, turn_id, cancel).await;
            if let Some(lease) = lease {
                self.release_lease(&session_id, &lease).await;
            }
            if let Some(session) = self.lock().get_mut(&session_id) {
                session.running = None;
            }
        }
    }

    /// Take the session's turn lease in the shared records, so that across replicas
    /// at most one turn of a session runs at a time. The lease outlives the turn
    /// deadline a little, so a replica that dies mid-turn frees it by expiry. Returns
    /// `None` only when the drain grace ran out while waiting.
    async fn acquire_lease(&self, session_id: &str) -> Option<String> {
        let key = RecordKey::new(TURN_LEASES, session_id);
        let holder = new_id("lease");
        let ttl = self.limits.deadline + LEASE_MARGIN;
        let mut backoff = Duration::from_millis(20);
        loop {
            match self
                .backplane
                .record_create(&key, Bytes::from(holder.clone()), Some(ttl))
                .await
            {
                Ok(true) => return Some(holder),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(session_id, error = %e, "turn lease unavailable; retrying")
                }
            }
            tokio::select! {
                () = self.abort_all.cancelled() => return None,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Give the lease back, if it is still ours.
    async fn release_lease(&self, session_id: &str, holder: &str) {
        let key = RecordKey::new(TURN_LEASES, session_id);
        match self.backplane.record_get(&key).await {
            Ok(Some(value)) if value.as_ref() == holder.as_bytes() => {
                if let Err(e) = self.backplane.record_delete(&key).await {
                    tracing::warn!(session_id, error = %e, "could not release a turn lease; it will expire");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(session_id, error = %e, "could not release a turn lease; it will expire")
            }
        }
    }

    /// One turn: start, deltas, end, and the assistant message when completed.
    async fn run(&self, job: TurnJob, turn_id: String, cancel: CancellationToken) {
        let start = EventBody::TurnStart {
            turn_id: turn_id.clone(),
            reply_to: job.message_id.clone(),
        };
        if let Err(e) = self
            .events
            .append_patiently(&job.stream, start, END_PATIENCE)
            .await
        {
            tracing::error!(session_id = %job.session_id, error = %e, "could not start a turn");
            self.metrics.turns.with_label_values(&["failed"]).inc();
            return;
        }
        let documents: Vec<_> = match self
            .knowledge
            .search(&job.question, &job.access, DOCUMENTS_PER_TURN)
            .await
        {
            Ok(hits) => hits.into_iter().map(|h| h.document).collect(),
            Err(e) => {
                tracing::warn!(session_id = %job.session_id, error = %e, "knowledge search failed; answering without documents");
                Vec::new()
            }
        };
        let sources: Vec<Source> = documents
            .iter()
            .map(|d| Source {
                doc_id: d.doc_id.clone(),
                title: d.title.clone(),
                uri: d.uri.clone(),
            })
            .collect();
        let mut reply = self.provider.reply(TurnRequest {
            session_id: job.session_id.clone(),
            turn_id: turn_id.clone(),
            question: job.question.clone(),
            transcript: Vec::new(),
            documents,
            access: job.access.clone(),
        });
        let deadline = tokio::time::sleep(self.limits.deadline);
        tokio::pin!(deadline);
        let mut text = String::new();
        let mut usage: Option<Usage> = None;
        let (status, error) = loop {
            let chunk = tokio::select! {
                biased;
                () = cancel.cancelled() => break (TurnStatus::Cancelled, None),
                () = self.abort_all.cancelled() => break (
                    TurnStatus::Failed,
                    Some("the gateway shut down before the reply was finished".to_string()),
                ),
                () = &mut deadline => break (
                    TurnStatus::Failed,
                    Some(format!(
                        "the reply took longer than the turn deadline of {}",
                        humantime::format_duration(self.limits.deadline)
                    )),
                ),
                chunk = reply.next() => chunk,
            };
            match chunk {
                None => break (TurnStatus::Completed, None),
                Some(Ok(ModelChunk::Usage(u))) => usage = Some(u),
                Some(Ok(ModelChunk::Delta(delta))) if delta.is_empty() => {}
                Some(Ok(ModelChunk::Delta(delta))) => {
                    let event = EventBody::TurnDelta {
                        turn_id: turn_id.clone(),
                        text: delta.clone(),
                    };
                    if let Err(e) = self.events.append(&job.stream, event).await {
                        break (
                            TurnStatus::Failed,
                            Some(format!("the reply could not be recorded: {}", e.kind)),
                        );
                    }
                    text.push_str(&delta);
                }
                Some(Err(e)) => break (TurnStatus::Failed, Some(e.0)),
            }
        };
        // Dropping the reply stream cancels the provider's work (and upstream request).
        drop(reply);
        let end = EventBody::TurnEnd {
            turn_id: turn_id.clone(),
            status,
            text: text.clone(),
            usage,
            sources: Some(sources),
            error,
        };
        if let Err(e) = self
            .events
            .append_patiently(&job.stream, end, END_PATIENCE)
            .await
        {
            tracing::error!(session_id = %job.session_id, %turn_id, error = %e, "could not record a turn's end");
        }
        if status == TurnStatus::Completed {
            let message = EventBody::Message {
                message_id: new_id("m"),
                role: Role::Assistant,
                text,
                author: Some("assistant".into()),
            };
            if let Err(e) = self
                .events
                .append_patiently(&job.stream, message, END_PATIENCE)
                .await
            {
                tracing::error!(session_id = %job.session_id, %turn_id, error = %e, "could not record the assistant message");
            }
        }
        self.metrics
            .turns
            .with_label_values(&[status.as_str()])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use switchboard_backplane::{MemoryBackplane, Retention};

    use super::*;
    use crate::agent::OfflineAgent;

    fn replica(backplane: &Arc<dyn Backplane>) -> Arc<Turns> {
        let metrics = Arc::new(Metrics::new().unwrap());
        Turns::new(
            backplane.clone(),
            Events::new(backplane.clone(), metrics.clone()),
            Arc::new(KnowledgeBase::new(backplane.clone())),
            Arc::new(OfflineAgent::new(Duration::from_millis(5))),
            metrics,
            TurnLimits {
                max_queued: 8,
                deadline: Duration::from_secs(30),
            },
        )
    }

    fn job(stream: &StreamName, n: usize) -> TurnJob {
        TurnJob {
            session_id: stream.id().to_string(),
            stream: stream.clone(),
            message_id: format!("m_{n}"),
            question: "anything at all".into(),
            access: AccessContext {
                user_id: None,
                org_id: "default".into(),
                groups: vec![],
                roles: vec![],
                anonymous: true,
            },
        }
    }

    /// Two replicas accepting messages for one session run its turns one at a time:
    /// every `turn.start` is followed by its own `turn.end` before the next starts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_never_run_two_turns_of_one_session_at_once() {
        let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention::default()));
        let (a, b) = (replica(&backplane), replica(&backplane));
        let stream = StreamName::session("s_lease").unwrap();
        for n in 0..3 {
            a.enqueue(job(&stream, 2 * n));
            b.enqueue(job(&stream, 2 * n + 1));
        }
        tokio::time::timeout(Duration::from_secs(20), async {
            while a.busy_sessions() + b.busy_sessions() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("all turns finish");
        let history = backplane.read(&stream, None, 10_000).await.unwrap();
        let mut running: Option<String> = None;
        let mut ended = 0;
        for event in &history.events {
            match &event.body {
                EventBody::TurnStart { turn_id, .. } => {
                    assert!(
                        running.is_none(),
                        "turn {turn_id} started while {running:?} ran"
                    );
                    running = Some(turn_id.clone());
                }
                EventBody::TurnDelta { turn_id, .. } => {
                    assert_eq!(running.as_ref(), Some(turn_id), "a delta outside its turn");
                }
                EventBody::TurnEnd { turn_id, .. } => {
                    assert_eq!(running.take().as_ref(), Some(turn_id));
                    ended += 1;
                }
                _ => {}
            }
        }
        assert_eq!(ended, 6);
    }
}
