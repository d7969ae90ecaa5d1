//! The shared state every handler and task gets: configuration, the backplane, the
//! conversation store and everything built on them, wired together once in [`AppState::build`].

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use switchboard_backplane::{Backplane, Retention};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::access::Authenticator;
use crate::assistant::approvals::{Approvals, DECISION_SAFETY_NET};
use crate::assistant::cost::CostControl;
use crate::assistant::handoff::Handoffs;
use crate::assistant::handoff::cache::HandoffCache;
use crate::assistant::intake::Intake;
use crate::assistant::knowledge::{self, KnowledgeBase, demo_documents};
use crate::assistant::model::{
    ModelOptions, ModelProvider, OfflineAgent, OpenAiConfig, OpenAiProvider,
};
use crate::assistant::named::NamedAssistants;
use crate::assistant::settings::{ModelDefaults, ModelSettingsStore};
use crate::assistant::tools::{self, ToolRunner};
use crate::assistant::turns::{
    CANCEL_SAFETY_NET, LeaseTiming, Replica, TurnLimits, TurnServices, Turns,
};
use crate::assistant::waiting::SyncWaits;
use crate::config::{BackplaneChoice, ModelProviderChoice, Reloading, ServeConfig};
use crate::conversations::retention::run_sweeps;
use crate::conversations::{Conversations, TranscriptReader, TranscriptWriter};
use crate::fanout::{Events, Outbound, Registry};
use crate::metrics::Metrics;
use crate::presence::{Presence, PresenceLimits, PresenceTiming};
use crate::records::session_quota::SessionQuota;
use crate::records::sessions::SessionStore;
use crate::shutdown::Shutdown;
use crate::webhooks::{HttpTransport, WebhookSettings, Webhooks};

/// The gateway's shared parts, one pointer to clone: every connection's task holds a
/// clone for its whole life, and an idle connection carries every byte of it.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    pub config: Arc<ServeConfig>,
    pub server_id: Arc<str>,
    pub backplane: Arc<dyn Backplane>,
    pub events: Events,
    pub registry: Arc<Registry>,
    /// Who is in each session and who is typing, across replicas.
    pub presence: Arc<Presence>,
    pub sessions: Arc<SessionStore>,
    /// Conversations as records: list, rename, delete, export, erase, retention.
    pub conversations: Arc<Conversations>,
    /// Keeps durable events in the store; flushed on drain.
    pub transcripts: TranscriptWriter,
    /// Outgoing webhooks: registration (admin API) and delivery.
    pub webhooks: Webhooks,
    /// Per-org model settings (admin API).
    pub model_settings: Arc<ModelSettingsStore>,
    /// The orgs' named assistants (admin API; chosen at `session.create`).
    pub assistants: Arc<NamedAssistants>,
    /// Tool calls waiting for a decision (`tool.decide`).
    pub approvals: Arc<Approvals>,
    /// Who holds each conversation (human handoff), and the operator inbox.
    pub handoff: Arc<Handoffs>,
    pub turns: Arc<Turns>,
    /// Accepts user messages (`message.send`).
    pub intake: Arc<Intake>,
    /// Synchronous chats waiting for their reply (`POST /v1/chat`), bounded.
    pub sync_waits: Arc<SyncWaits>,
    pub knowledge: Arc<KnowledgeBase>,
    /// Verifies tokens and API keys; replaced whole by a configuration reload (open
    /// connections keep the access context they were verified with).
    pub auth: ArcSwap<Authenticator>,
    /// What a configuration reload re-reads, and what it last applied.
    pub reloading: Reloading,
    pub metrics: Arc<Metrics>,
    pub shutdown: Shutdown,
    /// Open connections' outbound queues, for the heartbeat sweeper.
    pub connections: Arc<DashMap<u64, Arc<Outbound>>>,
    /// One permit per open WebSocket (`--max-connections`). The `/ws` handler takes
    /// an owned permit before the upgrade and moves it into the socket task, so the
    /// permit is released exactly when that task ends, however it ends.
    pub connection_limit: Arc<Semaphore>,
    /// Every socket task, so shutdown can wait for them.
    pub tracker: TaskTracker,
}

impl AppState {
    /// Build the state for a validated configuration. Fails on a knowledge file that
    /// cannot be read.
    pub async fn build(
        config: ServeConfig,
        backplane_choice: BackplaneChoice,
    ) -> anyhow::Result<AppState> {
        let retention = Retention {
            max_events: config.history_max_events as usize,
            max_age: config.history_max_age,
        };
        let backplane =
            crate::backplane::connect(&backplane_choice, &config.backplane_prefix, retention)
                .await?;
        let metrics = Arc::new(Metrics::new()?);
        let store_choice = crate::config::parse_store(&config.store)?;
        let store = crate::store::open(
            &store_choice,
            &config.data_dir,
            config.store_max_connections,
        )
        .await?;
        let transcripts = TranscriptWriter::start(store.clone(), metrics.clone());
        let knowledge = Arc::new(KnowledgeBase::configured(
            backplane.clone(),
            &config.document_quota,
            Some(metrics.clone()),
        ));
        if config.demo_seed {
            knowledge
                .ingest_all(demo_documents(&config.default_org))
                .await?;
        }
        if let Some(path) = &config.knowledge_file {
            let documents = knowledge::file::load(path, &config.default_org)?;
            knowledge.ingest_all(documents).await.map_err(|e| {
                anyhow::anyhow!("--knowledge-file (SWITCHBOARD_KNOWLEDGE_FILE): {e}")
            })?;
        }
        let provider: Arc<dyn ModelProvider> = match config.model_provider {
            ModelProviderChoice::Offline => Arc::new(OfflineAgent::new(config.offline_agent_delay)),
            ModelProviderChoice::Openai => Arc::new(OpenAiProvider::new(OpenAiConfig {
                base_url: config.model_base_url.clone(),
                api_key: config.model_api_key.clone(),
                default_model: config.model.clone(),
                temperature: config.model_temperature,
                max_tokens: config.model_max_tokens,
                connect_timeout: config.model_connect_timeout,
                idle_timeout: config.model_idle_timeout,
                retries: config.model_retries,
                retry_backoff: Duration::from_millis(250),
                coalesce_window: Duration::from_millis(5),
            })?),
        };
        let (webhooks, dispatcher) = Webhooks::new(
            store.clone(),
            metrics.clone(),
            WebhookSettings::new(&config.webhook_endpoint_origins),
            Arc::new(HttpTransport::new()?),
        );
        let events = Events::new(
            backplane.clone(),
            transcripts.clone(),
            webhooks.clone(),
            metrics.clone(),
        );
        let defaults = model_defaults(&config)?;
        let model_settings = Arc::new(ModelSettingsStore::new(backplane.clone(), defaults));
        let assistants = Arc::new(NamedAssistants::new(store.clone(), model_settings.clone()));
        let session_quota = Arc::new(SessionQuota::new(
            backplane.clone(),
            config.session_quotas.clone(),
            metrics.clone(),
        ));
        tokio::spawn(session_quota.clone().run_gauge());
        let sessions = Arc::new(SessionStore::new(
            backplane.clone(),
            store.clone(),
            config.history_max_age,
            webhooks.clone(),
            session_quota,
        ));
        dispatcher.start(sessions.clone());
        let handoff = Arc::new(Handoffs::new(
            store.clone(),
            events.clone(),
            HandoffCache::new(backplane.clone(), config.history_max_age),
        ));
        let services = TurnServices {
            settings: model_settings.clone(),
            assistants: assistants.clone(),
            handoff: handoff.clone(),
            tools: Arc::new(ToolRunner::new(
                config.tool_signing_key.clone(),
                config.tool_timeout,
            )?),
            approvals: Arc::new(Approvals::new(
                backplane.clone(),
                config.tool_approval_timeout,
                DECISION_SAFETY_NET,
            )),
            sessions: sessions.clone(),
            cost: CostControl::new(&config.cost, backplane.clone(), metrics.clone()),
        };
        let approvals = services.approvals.clone();
        let replica = Arc::new(Replica::new(
            backplane.clone(),
            metrics.clone(),
            LeaseTiming {
                beat: config.turn_lease_beat,
                lapse: config.turn_lease_lapse,
            },
        ));
        let turns = Turns::new(
            replica,
            backplane.clone(),
            events.clone(),
            knowledge.clone(),
            provider,
            services,
            metrics.clone(),
            turn_limits(&config),
            config.history_max_age,
        );
        turns.start_background().await;
        let presence = Presence::new(
            backplane.clone(),
            metrics.clone(),
            PresenceTiming {
                beat: config.turn_lease_beat,
                lapse: config.turn_lease_lapse,
            },
            PresenceLimits::default(),
        );
        presence.start().await;
        let conversations = Arc::new(Conversations::new(
            store.clone(),
            transcripts.clone(),
            turns.clone(),
            backplane.clone(),
            sessions.clone(),
            metrics.clone(),
            config.retention_days,
            presence.clone(),
        ));
        tokio::spawn(run_sweeps(conversations.clone(), config.retention_sweep));
        let shutdown = Shutdown::new();
        let intake = Arc::new(Intake::new(
            events.clone(),
            turns.clone(),
            shutdown.clone(),
            config.max_text_chars as usize,
        ));
        let sync_waits = Arc::new(SyncWaits::new(
            config.max_sync_chats as usize,
            config.max_sync_chats_per_principal as usize,
            metrics.sync_chats_waiting.clone(),
            metrics.sync_chats_refused.clone(),
        ));
        let auth = ArcSwap::from_pointee(Authenticator::from_config(&config).await?);
        Ok(AppState(Arc::new(Shared {
            auth,
            server_id: Arc::from(config.resolved_server_id()),
            registry: Arc::new(
                Registry::new(
                    backplane.clone(),
                    TranscriptReader::new(store.clone()),
                    metrics.clone(),
                )
                .with_replay_memory(config.replay_memory_bytes)
                .with_fanout_window(config.fanout_window),
            ),
            presence,
            sessions,
            conversations,
            transcripts,
            webhooks,
            model_settings,
            assistants,
            approvals,
            handoff,
            connection_limit: Arc::new(Semaphore::new(config.max_connections as usize)),
            config: Arc::new(config),
            backplane,
            events,
            turns,
            intake,
            sync_waits,
            knowledge,
            metrics,
            shutdown,
            connections: Arc::new(DashMap::new()),
            tracker: TaskTracker::new(),
            reloading: Reloading::default(),
        })))
    }
}

/// The gateway-wide model defaults a configuration sets: the system prompt, sampling
/// options and the `--tools-file` tools. Fails on a tools file that cannot be used.
pub fn model_defaults(config: &ServeConfig) -> anyhow::Result<ModelDefaults> {
    let tools = match &config.tools_file {
        Some(path) => tools::load_file(path)?,
        None => Vec::new(),
    };
    Ok(ModelDefaults::new(
        config.system_prompt.clone(),
        ModelOptions {
            model: None,
            temperature: config.model_temperature,
            max_tokens: config.model_max_tokens,
        },
        tools,
        &config.tool_endpoint_origins,
    ))
}

/// The limits on turns a configuration sets.
pub fn turn_limits(config: &ServeConfig) -> TurnLimits {
    TurnLimits {
        max_queued: config.max_queued_turns as usize,
        deadline: config.turn_deadline,
        prompt_documents: config.prompt_documents as usize,
        transcript_budget: config.transcript_token_budget as usize,
        max_rounds: config.tool_max_rounds as usize,
        cancel_safety_net: CANCEL_SAFETY_NET,
    }
}
