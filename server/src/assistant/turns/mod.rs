//! Agent turns. A turn belongs to its session, not to the socket or the replica that
//! accepted the message: the session's queue is shared (in the backplane's records),
//! any replica may drain it, and a replica that stops mid-answer is replaced.
//!
//! Turns of one session run one at a time, in the order their messages were
//! accepted, on the replica that holds the session's lease.
//!
//! - this module: the replica's sessions and the public entry points;
//! - [`replica`]: this replica's identity and heartbeat;
//! - [`lease`]: a session's queue and which replica drains it;
//! - [`history`]: what the session's history says about a turn or a message;
//! - [`worker`]: draining one session's queue;
//! - [`admit`]: whether a turn may start now (its org's token budget, a slot under
//!   the caps on concurrent turns);
//! - [`takeover`]: taking over the queues of replicas that stopped;
//! - [`jobs`]: the access context each message is answered with;
//! - [`run`]: one turn from `turn.start` to `turn.end`;
//! - [`converse`]: the model's rounds and the tool calls between them;
//! - [`cancel`]: `turn.cancel` from any replica;
//! - [`listen`]: this replica's control stream, where other replicas' hints (a cancel,
//!   a tool decision) wake the turn they concern.

mod admit;
mod cancel;
mod converse;
mod history;
mod jobs;
mod lease;
mod listen;
pub mod replica;
mod run;
mod stop;
mod takeover;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use switchboard_backplane::{Backplane, StreamName};
use switchboard_protocol::ErrorCode;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::AccessContext;
use crate::assistant::approvals::Approvals;
use crate::assistant::cost::CostControl;
use crate::assistant::handoff::Handoffs;
use crate::assistant::knowledge::KnowledgeBase;
use crate::assistant::model::ModelProvider;
use crate::assistant::named::NamedAssistants;
use crate::assistant::settings::ModelSettingsStore;
use crate::assistant::tools::ToolRunner;
use crate::error::ClientError;
use crate::fanout::Events;
use crate::metrics::Metrics;
use crate::records::sessions::SessionStore;

pub use cancel::CANCEL_SAFETY_NET;
pub use lease::{Claim, OwnedLease};
pub use replica::{LeaseTiming, Replica};

/// A message about to be answered.
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

/// This replica's worker for one session.
struct Worker {
    /// The lease's token: tells this worker from a successor after a takeover.
    token: String,
    /// The fence of the identity the lease was taken under.
    fence: CancellationToken,
    running: Option<RunningTurn>,
}

/// Turn limits.
#[derive(Debug, Clone, Copy)]
pub struct TurnLimits {
    /// Turns that may wait behind the running one, per session (approximate across
    /// replicas: counted in the session's lease).
    pub max_queued: usize,
    /// Longest a turn may run.
    pub deadline: Duration,
    /// Documents retrieved into each prompt.
    pub prompt_documents: usize,
    /// Tokens of earlier messages kept in each prompt.
    pub transcript_budget: usize,
    /// Model rounds per turn (each tool exchange starts another).
    pub max_rounds: usize,
    /// How often a running turn reads its cancel record without a hint
    /// ([`CANCEL_SAFETY_NET`] outside tests).
    pub cancel_safety_net: Duration,
}

/// What turns use besides the backplane: org settings, tools and their approvals,
/// session records (for who may approve).
pub struct TurnServices {
    pub settings: Arc<ModelSettingsStore>,
    /// The org's named assistants, one of which a session may talk to.
    pub assistants: Arc<NamedAssistants>,
    /// Who holds each conversation: no turn runs while a person is asked for or holds it.
    pub handoff: Arc<Handoffs>,
    pub tools: Arc<ToolRunner>,
    pub approvals: Arc<Approvals>,
    pub sessions: Arc<SessionStore>,
    /// The caps on concurrent turns and each org's token budget.
    pub cost: Arc<CostControl>,
}

/// The sessions whose queues this replica drains, and everything a turn needs.
pub struct Turns {
    /// A session is in the map exactly while this replica's worker for it runs.
    sessions: Mutex<HashMap<String, Worker>>,
    /// This replica's leases that no worker drained at the last look for orphans.
    unattended: Mutex<HashSet<(String, String)>>,
    /// Turns running here, by turn id, woken by a cancel hint (see [`cancel`]).
    cancel_hints: DashMap<String, Arc<Notify>>,
    replica: Arc<Replica>,
    backplane: Arc<dyn Backplane>,
    events: Events,
    knowledge: Arc<KnowledgeBase>,
    provider: Arc<dyn ModelProvider>,
    services: TurnServices,
    metrics: Arc<Metrics>,
    /// Replaced by a configuration reload; a turn reads them as it starts.
    limits: arc_swap::ArcSwap<TurnLimits>,
    /// How long a message's asker is remembered (`--history-max-age`).
    jobs_ttl: Duration,
    workers: TaskTracker,
    /// The heartbeat, the watch for orphaned queues and the control stream.
    background: TaskTracker,
    /// Cancelled on SIGTERM: workers hand their queues over after the running turn.
    draining: CancellationToken,
    /// Cancelled after the drain: the heartbeat and the control stream stop.
    stopped: CancellationToken,
    /// Cancelled when the drain grace runs out: remaining turns end `failed`.
    abort_all: CancellationToken,
}

impl Turns {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        replica: Arc<Replica>,
        backplane: Arc<dyn Backplane>,
        events: Events,
        knowledge: Arc<KnowledgeBase>,
        provider: Arc<dyn ModelProvider>,
        services: TurnServices,
        metrics: Arc<Metrics>,
        limits: TurnLimits,
        jobs_ttl: Duration,
    ) -> Arc<Turns> {
        Arc::new(Turns {
            sessions: Mutex::new(HashMap::new()),
            unattended: Mutex::new(HashSet::new()),
            cancel_hints: DashMap::new(),
            replica,
            backplane,
            events,
            knowledge,
            provider,
            services,
            metrics,
            limits: arc_swap::ArcSwap::from_pointee(limits),
            jobs_ttl,
            workers: TaskTracker::new(),
            background: TaskTracker::new(),
            draining: CancellationToken::new(),
            stopped: CancellationToken::new(),
            abort_all: CancellationToken::new(),
        })
    }

    /// Announce this replica and start its heartbeat, its watch for orphaned queues
    /// and its control stream. Until the first heartbeat is taken the replica claims
    /// no session.
    pub async fn start_background(self: &Arc<Self>) {
        if let Err(e) = self.replica.renew().await {
            tracing::warn!(error = %e, "first heartbeat not taken; retrying every beat");
        }
        let turns = self.clone();
        let stop = self.stopped.clone();
        self.background
            .spawn(async move { turns.replica.keep_alive(stop).await });
        self.background.spawn(self.clone().watch_for_orphans());
        self.background.spawn(self.clone().listen_for_hints());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Worker>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn unattended_lock(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        self.unattended.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a live worker of this replica drains `session_id` under lease `token`.
    fn drains(&self, session_id: &str, token: &str) -> bool {
        self.lock()
            .get(session_id)
            .is_some_and(|w| w.token == token && !w.fence.is_cancelled())
    }

    /// Whether `session_id` can queue one more turn, as its lease counts them.
    pub async fn has_room(&self, session_id: &str) -> Result<(), ClientError> {
        match self.lease_of(session_id).await? {
            Some(lease) if lease.waiting.len() >= self.limits.load().max_queued => {
                Err(ClientError::new(
                    ErrorCode::RateLimited,
                    format!(
                        "{} messages are already waiting for a reply in this session; wait for a turn to end",
                        lease.waiting.len()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// `Ok` while `org_id` has tokens left today (`--org-daily-token-budget`);
    /// `budget_exhausted` once they are spent.
    pub async fn check_budget(&self, org_id: &str) -> Result<(), ClientError> {
        self.services.cost.budget.check(org_id).await
    }

    /// `message_id` was appended to `session_id`: queue it. When this replica becomes
    /// the one draining the queue, the caller starts the worker with [`Turns::start`]
    /// (after acknowledging the message, so the sender hears that first).
    pub async fn enqueue(
        &self,
        session_id: &str,
        message_id: &str,
        seq: u64,
    ) -> Result<Claim, ClientError> {
        if !self.replica.is_alive() {
            // A replica the others may count dead must not claim anything.
            self.replica.renew().await?;
        }
        Ok(self.claim_or_poke(session_id, message_id, seq).await?)
    }

    /// A retried send of `message_id`, accepted earlier: queue it unless it is queued
    /// or was answered (its first attempt may have stopped between append and queue).
    pub async fn enqueue_again(
        &self,
        session_id: &str,
        stream: &StreamName,
        message_id: &str,
        seq: u64,
    ) -> Result<Claim, ClientError> {
        if self
            .lease_of(session_id)
            .await?
            .is_some_and(|lease| lease.holds(message_id))
        {
            return Ok(Claim::Poked);
        }
        // Its turn, if any, came after it.
        let replay = self
            .backplane
            .read(stream, seq.checked_sub(1), worker::HISTORY_EVENTS)
            .await?;
        if history::answered(&replay, message_id) != Some(false) {
            return Ok(Claim::Poked);
        }
        self.enqueue(session_id, message_id, seq).await
    }

    /// Start draining the queue of an owned lease.
    pub fn start(self: &Arc<Self>, lease: OwnedLease) {
        let mut sessions = self.lock();
        if let Some(worker) = sessions.get(&lease.session_id)
            && !worker.fence.is_cancelled()
        {
            // Cannot happen: a lease is claimed or taken over only when absent or
            // orphaned. Refuse to run a second worker all the same.
            tracing::error!(session_id = %lease.session_id, "a worker already drains this session");
            return;
        }
        // A fenced worker (this replica's previous identity) is on its way out.
        sessions.insert(
            lease.session_id.clone(),
            Worker {
                token: lease.token().to_string(),
                fence: lease.fence.clone(),
                running: None,
            },
        );
        drop(sessions);
        let turns = self.clone();
        self.workers
            .spawn(async move { turns.drain_queue(lease).await });
    }

    /// Cancel the running turn `turn_id` of `session_id`. False if it is not running.
    pub fn cancel(&self, session_id: &str, turn_id: &str) -> bool {
        let sessions = self.lock();
        match sessions.get(session_id).and_then(|w| w.running.as_ref()) {
            Some(running) if running.turn_id == turn_id => {
                running.cancel.cancel();
                true
            }
            _ => false,
        }
    }

    /// SIGTERM: take no further queued messages (other replicas take them), finish the
    /// running turns; after `grace`, end the rest `failed`. Then stop the heartbeat.
    pub async fn drain(&self, grace: Duration) {
        self.draining.cancel();
        self.workers.close();
        if tokio::time::timeout(grace, self.workers.wait())
            .await
            .is_err()
        {
            tracing::warn!("drain grace over: ending the remaining turns as failed");
            self.abort_all.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.workers.wait()).await;
        }
        self.stopped.cancel();
        self.background.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.background.wait()).await;
    }

    /// The turn running in `session_id` now, on any replica, as its lease names it.
    pub async fn running_turn(&self, session_id: &str) -> Result<Option<String>, ClientError> {
        Ok(self
            .lease_of(session_id)
            .await?
            .and_then(|lease| lease.running.map(|running| running.turn_id)))
    }

    /// The provider that writes replies (for its name and `/health/deep`).
    pub fn provider(&self) -> &Arc<dyn ModelProvider> {
        &self.provider
    }

    /// The limits turns start with now.
    pub fn limits(&self) -> TurnLimits {
        **self.limits.load()
    }

    /// Replace the limits (a configuration reload): turns that start afterwards, and
    /// messages queued afterwards, use them; a running turn keeps its deadline.
    pub fn set_limits(&self, limits: TurnLimits) {
        self.limits.store(std::sync::Arc::new(limits));
    }

    /// Number of sessions whose queue this replica drains.
    pub fn busy_sessions(&self) -> usize {
        self.lock().len()
    }

    /// This replica's current id (its heartbeat record's key).
    pub fn replica_id(&self) -> String {
        self.replica.id()
    }
}

#[cfg(test)]
mod tests;
