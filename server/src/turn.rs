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

use serde_json::Value;

use crate::agent::{
    ChatMessage, ChatRole, ModelChunk, ModelProvider, ToolCall, TurnRequest, prompt,
};
use crate::approvals::{Approvals, Decision, PendingCall};
use crate::auth::AccessContext;
use crate::error::ClientError;
use crate::events::Events;
use crate::knowledge::{Document, KnowledgeBase};
use crate::metrics::Metrics;
use crate::model_settings::{ModelSettingsStore, ResolvedSettings};
use crate::session::{SessionStore, new_id};
use crate::tools::{CallContext, ToolOutcome, ToolRunner, ToolSpec};

/// History events read to find a turn's transcript (the retention caps it anyway).
const TRANSCRIPT_EVENTS: usize = 10_000;
/// Records namespace of cancel requests for turns running on another replica.
const TURN_CANCELS: &str = "turn-cancels";
/// How often a running turn looks for a cancel request made on another replica.
const REMOTE_CANCEL_POLL: Duration = Duration::from_millis(300);
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

    /// One turn: start, the model's rounds (deltas, tool calls), end, and the
    /// assistant message when completed.
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
        let settings = self.services.settings.resolve(&job.access.org_id).await;
        // Retrieval takes the asker's access context: only documents they may read
        // can reach the prompt, the reply or `sources`.
        let documents: Vec<_> = match self
            .knowledge
            .search(&job.question, &job.access, self.limits.prompt_documents)
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
        let transcript = match self
            .backplane
            .read(&job.stream, None, TRANSCRIPT_EVENTS)
            .await
        {
            Ok(replay) => prompt::transcript_before(&replay.events, &job.message_id),
            Err(e) => {
                tracing::warn!(session_id = %job.session_id, error = %e, "history unavailable; answering without the transcript");
                Vec::new()
            }
        };
        let messages = prompt::build(
            &settings.system_prompt,
            &documents,
            &transcript,
            self.limits.transcript_budget,
            &job.question,
        );
        let mut progress = Progress::default();
        let (status, error) = {
            let conversation = self.converse(
                &job,
                &turn_id,
                &settings,
                messages,
                documents,
                &mut progress,
            );
            tokio::pin!(conversation);
            let deadline = tokio::time::sleep(self.limits.deadline);
            tokio::pin!(deadline);
            let cancelled_elsewhere = self.cancelled_elsewhere(&turn_id);
            tokio::pin!(cancelled_elsewhere);
            // Whatever ends first drops the conversation, and with it the provider's
            // stream and its upstream request, and any wait for a tool decision.
            tokio::select! {
                biased;
                () = cancel.cancelled() => (TurnStatus::Cancelled, None),
                () = &mut cancelled_elsewhere => (TurnStatus::Cancelled, None),
                () = self.abort_all.cancelled() => (
                    TurnStatus::Failed,
                    Some("the gateway shut down before the reply was finished".to_string()),
                ),
                () = &mut deadline => (
                    TurnStatus::Failed,
                    Some(format!(
                        "the reply took longer than the turn deadline of {}",
                        humantime::format_duration(self.limits.deadline)
                    )),
                ),
                outcome = &mut conversation => outcome,
            }
        };
        let text = progress.text;
        let end = EventBody::TurnEnd {
            turn_id: turn_id.clone(),
            status,
            text: text.clone(),
            usage: progress.usage,
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

    /// The model's rounds: stream a reply; when it asks for tools, run them (after
    /// approval where required), give it the results and let it go on, at most
    /// `max_rounds` times.
    async fn converse(
        &self,
        job: &TurnJob,
        turn_id: &str,
        settings: &ResolvedSettings,
        mut messages: Vec<ChatMessage>,
        documents: Vec<Document>,
        progress: &mut Progress,
    ) -> (TurnStatus, Option<String>) {
        let tools: &[ToolSpec] = if self.provider.supports_tools() {
            &settings.tools
        } else {
            &[]
        };
        for _round in 0..self.limits.max_rounds {
            let mut reply = self.provider.reply(TurnRequest {
                session_id: job.session_id.clone(),
                turn_id: turn_id.to_string(),
                question: job.question.clone(),
                messages: messages.clone(),
                documents: documents.clone(),
                tools: tools.iter().map(ToolSpec::definition).collect(),
                options: settings.options.clone(),
                access: job.access.clone(),
            });
            let mut round_text = String::new();
            let mut calls = Vec::new();
            while let Some(chunk) = reply.next().await {
                match chunk {
                    Ok(ModelChunk::Delta(delta)) if delta.is_empty() => {}
                    Ok(ModelChunk::Delta(delta)) => {
                        let event = EventBody::TurnDelta {
                            turn_id: turn_id.to_string(),
                            text: delta.clone(),
                        };
                        if let Err(e) = self.events.append(&job.stream, event).await {
                            return (
                                TurnStatus::Failed,
                                Some(format!("the reply could not be recorded: {}", e.kind)),
                            );
                        }
                        progress.text.push_str(&delta);
                        round_text.push_str(&delta);
                    }
                    Ok(ModelChunk::Usage(usage)) => progress.add_usage(usage),
                    Ok(ModelChunk::ToolCalls(more)) => calls.extend(more),
                    Err(e) => return (TurnStatus::Failed, Some(e.0)),
                }
            }
            drop(reply);
            if calls.is_empty() {
                return (TurnStatus::Completed, None);
            }
            messages.push(ChatMessage {
                role: ChatRole::Assistant,
                content: round_text,
                tool_calls: calls.clone(),
                tool_call_id: None,
            });
            for call in calls {
                let outcome = match self.call_tool(job, turn_id, tools, &call).await {
                    Ok(outcome) => outcome,
                    Err(error) => return (TurnStatus::Failed, Some(error)),
                };
                messages.push(ChatMessage {
                    role: ChatRole::Tool,
                    content: outcome.output.to_string(),
                    tool_calls: Vec::new(),
                    tool_call_id: Some(call.id.clone()),
                });
            }
        }
        (
            TurnStatus::Failed,
            Some(format!(
                "the model kept calling tools; stopped after {} rounds (--tool-max-rounds)",
                self.limits.max_rounds
            )),
        )
    }

    /// One tool call: `tool.request`, the decision when the tool needs approval, the
    /// call to its endpoint, `tool.result`. A call that cannot run becomes a failed
    /// result the model can read; only a backplane that cannot record the exchange
    /// fails the turn.
    async fn call_tool(
        &self,
        job: &TurnJob,
        turn_id: &str,
        tools: &[ToolSpec],
        call: &ToolCall,
    ) -> Result<ToolOutcome, String> {
        let call_id = new_id("tc");
        let spec = tools.iter().find(|t| t.name == call.name);
        let arguments: Option<Value> = serde_json::from_str::<Value>(&call.arguments)
            .ok()
            .filter(Value::is_object);
        let requires_approval = spec.is_some_and(|s| s.requires_approval) && arguments.is_some();
        if requires_approval {
            let owner = match self.services.sessions.get(&job.session_id).await {
                Ok(Some(record)) => record.owner,
                _ => None,
            };
            let pending = PendingCall {
                session_id: job.session_id.clone(),
                turn_id: turn_id.to_string(),
                org_id: job.access.org_id.clone(),
                tool: call.name.clone(),
                owner,
            };
            if let Err(e) = self.services.approvals.open(&call_id, &pending).await {
                return Err(format!(
                    "the tool call could not be put up for approval: {}",
                    e.kind
                ));
            }
        }
        let request = EventBody::ToolRequest {
            turn_id: turn_id.to_string(),
            call_id: call_id.clone(),
            tool: call.name.clone(),
            arguments: arguments
                .clone()
                .unwrap_or_else(|| Value::String(call.arguments.clone())),
            requires_approval,
        };
        if let Err(e) = self.events.append(&job.stream, request).await {
            return Err(format!("the tool call could not be recorded: {}", e.kind));
        }
        let outcome = match (spec, &arguments) {
            (None, _) => ToolOutcome::failed(format!("there is no tool named {}", call.name)),
            (Some(_), None) => ToolOutcome::failed("the arguments are not a JSON object"),
            (Some(spec), Some(arguments)) => {
                let decision = if requires_approval {
                    self.services.approvals.wait(&call_id).await
                } else {
                    Decision::Approved
                };
                match decision {
                    Decision::Approved => {
                        let ctx = CallContext {
                            access: &job.access,
                            session_id: &job.session_id,
                            turn_id,
                            call_id: &call_id,
                        };
                        self.services.tools.run(spec, arguments, &ctx).await
                    }
                    Decision::Denied => ToolOutcome::failed("the user denied this tool call"),
                    Decision::TimedOut => ToolOutcome::failed(
                        "nobody approved this tool call in time, so it was denied",
                    ),
                }
            }
        };
        self.metrics
            .tool_calls
            .with_label_values(&[if outcome.ok { "ok" } else { "failed" }])
            .inc();
        let result = EventBody::ToolResult {
            turn_id: turn_id.to_string(),
            call_id,
            ok: outcome.ok,
            output: Some(outcome.output.clone()),
        };
        if let Err(e) = self.events.append(&job.stream, result).await {
            return Err(format!("the tool result could not be recorded: {}", e.kind));
        }
        Ok(outcome)
    }

    /// Completes when a member on another replica asks to cancel `turn_id` (see
    /// [`Turns::cancel_anywhere`]).
    async fn cancelled_elsewhere(&self, turn_id: &str) {
        let key = RecordKey::new(TURN_CANCELS, turn_id);
        loop {
            tokio::time::sleep(REMOTE_CANCEL_POLL).await;
            if let Ok(Some(_)) = self.backplane.record_get(&key).await {
                return;
            }
        }
    }

    /// `turn.cancel` for a turn this replica does not run: when a turn of the session
    /// holds the lease somewhere, leave a cancel request that its replica picks up.
    /// False when no turn of the session runs anywhere.
    pub async fn cancel_anywhere(
        &self,
        session_id: &str,
        turn_id: &str,
    ) -> Result<bool, ClientError> {
        if self.cancel(session_id, turn_id) {
            return Ok(true);
        }
        if !plausible_turn_id(turn_id) {
            return Ok(false);
        }
        let lease = self
            .backplane
            .record_get(&RecordKey::new(TURN_LEASES, session_id))
            .await?;
        if lease.is_none() {
            return Ok(false);
        }
        self.backplane
            .record_put(
                &RecordKey::new(TURN_CANCELS, turn_id),
                Bytes::from_static(b"1"),
                Some(self.limits.deadline + LEASE_MARGIN),
            )
            .await?;
        Ok(true)
    }
}

/// Turn ids are the gateway's own (`t_` and hex); anything else names no turn.
fn plausible_turn_id(turn_id: &str) -> bool {
    !turn_id.is_empty()
        && turn_id.len() <= 64
        && turn_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What a turn has produced so far; kept when it ends early.
#[derive(Default)]
struct Progress {
    text: String,
    usage: Option<Usage>,
}

impl Progress {
    /// Usage adds up over the rounds of a turn that calls tools.
    fn add_usage(&mut self, usage: Usage) {
        let total = self.usage.get_or_insert(Usage {
            prompt_tokens: 0,
            completion_tokens: 0,
            total_tokens: 0,
        });
        total.prompt_tokens += usage.prompt_tokens;
        total.completion_tokens += usage.completion_tokens;
        total.total_tokens += usage.total_tokens;
    }
}

#[cfg(test)]
mod tests {
    use switchboard_backplane::{MemoryBackplane, Retention};

    use super::*;
    use crate::agent::OfflineAgent;
    use crate::model_settings::ModelDefaults;

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
