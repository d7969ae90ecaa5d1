//! Agent turns. A turn belongs to its session, not to the socket that asked: it runs
//! on the replica that accepted the message, keeps running if that socket drops, and
//! stops on `turn.cancel`, on its deadline, or when the drain grace runs out.
//!
//! Turns of one session run one at a time, in the order their messages were
//! accepted; a worker task per busy session takes them from a bounded queue.
//!
//! - this module: the per-session queues and their workers;
//! - [`lease`]: one turn per session across replicas;
//! - [`run`]: one turn from `turn.start` to `turn.end`;
//! - [`converse`]: the model's rounds and the tool calls between them;
//! - [`cancel`]: `turn.cancel` from any replica.

mod cancel;
mod converse;
mod lease;
mod run;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_backplane::{Backplane, StreamName};
use switchboard_protocol::ErrorCode;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::AccessContext;
use crate::assistant::approvals::Approvals;
use crate::assistant::knowledge::KnowledgeBase;
use crate::assistant::model::ModelProvider;
use crate::assistant::settings::ModelSettingsStore;
use crate::assistant::tools::ToolRunner;
use crate::error::ClientError;
use crate::fanout::Events;
use crate::ids::new_id;
use crate::metrics::Metrics;
use crate::records::sessions::SessionStore;

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
    /// Documents retrieved into each prompt.
    pub prompt_documents: usize,
    /// Tokens of earlier messages kept in each prompt.
    pub transcript_budget: usize,
    /// Model rounds per turn (each tool exchange starts another).
    pub max_rounds: usize,
}

/// What turns use besides the backplane: org settings, tools and their approvals,
/// session records (for who may approve).
pub struct TurnServices {
    pub settings: Arc<ModelSettingsStore>,
    pub tools: Arc<ToolRunner>,
    pub approvals: Arc<Approvals>,
    pub sessions: Arc<SessionStore>,
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
    services: TurnServices,
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
        services: TurnServices,
        metrics: Arc<Metrics>,
        limits: TurnLimits,
    ) -> Arc<Turns> {
        Arc::new(Turns {
            backplane,
            sessions: Mutex::new(HashMap::new()),
            events,
            knowledge,
            provider,
            services,
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
}

#[cfg(test)]
mod tests {
    use switchboard_backplane::{MemoryBackplane, Retention};

    use switchboard_protocol::EventBody;

    use super::*;
    use crate::assistant::model::OfflineAgent;
    use crate::assistant::settings::ModelDefaults;

    fn replica(backplane: &Arc<dyn Backplane>) -> Arc<Turns> {
        let metrics = Arc::new(Metrics::new().unwrap());
        let services = TurnServices {
            settings: Arc::new(ModelSettingsStore::new(
                backplane.clone(),
                ModelDefaults::new(None, Default::default(), vec![], &[]),
            )),
            tools: Arc::new(ToolRunner::new(None, Duration::from_secs(1)).unwrap()),
            approvals: Arc::new(Approvals::new(backplane.clone(), Duration::from_secs(1))),
            sessions: Arc::new(SessionStore::new(
                backplane.clone(),
                Duration::from_secs(60),
            )),
        };
        Turns::new(
            backplane.clone(),
            Events::new(backplane.clone(), metrics.clone()),
            Arc::new(KnowledgeBase::new(backplane.clone())),
            Arc::new(OfflineAgent::new(Duration::from_millis(5))),
            services,
            metrics,
            TurnLimits {
                max_queued: 8,
                deadline: Duration::from_secs(30),
                prompt_documents: 3,
                transcript_budget: 1000,
                max_rounds: 4,
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
