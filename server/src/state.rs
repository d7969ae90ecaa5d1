//! The shared state every handler and task gets: configuration, the backplane and
//! everything built on it.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use switchboard_backplane::{Backplane, Retention};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::agent::{ModelOptions, ModelProvider, OfflineAgent, OpenAiConfig, OpenAiProvider};
use crate::approvals::Approvals;
use crate::config::{BackplaneChoice, ModelProviderChoice, ServeConfig};
use crate::connection::outbound::Outbound;
use crate::events::Events;
use crate::knowledge::{Document, KnowledgeBase, demo_documents};
use crate::metrics::Metrics;
use crate::model_settings::{ModelDefaults, ModelSettingsStore};
use crate::registry::Registry;
use crate::session::SessionStore;
use crate::shutdown::Shutdown;
use crate::tools::ToolRunner;
use crate::turn::{TurnLimits, TurnServices, Turns};

/// Cheap to clone: every field is shared.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServeConfig>,
    pub server_id: Arc<str>,
    pub backplane: Arc<dyn Backplane>,
    pub events: Events,
    pub registry: Arc<Registry>,
    pub sessions: Arc<SessionStore>,
    /// Per-org model settings (admin API).
    pub model_settings: Arc<ModelSettingsStore>,
    /// Tool calls waiting for a decision (`tool.decide`).
    pub approvals: Arc<Approvals>,
    pub turns: Arc<Turns>,
    pub knowledge: Arc<KnowledgeBase>,
    /// Verifies tokens and API keys.
    pub auth: Arc<crate::auth::Authenticator>,
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
            crate::backplanes::connect(&backplane_choice, &config.backplane_prefix, retention)
                .await?;
        let metrics = Arc::new(Metrics::new()?);
        let knowledge = Arc::new(KnowledgeBase::new(backplane.clone()));
        if config.demo_seed {
            knowledge
                .ingest_all(demo_documents(&config.default_org))
                .await?;
        }
        if let Some(path) = &config.knowledge_file {
            let documents = load_knowledge_file(path, &config.default_org)?;
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
        let events = Events::new(backplane.clone(), metrics.clone());
        let tools = match &config.tools_file {
            Some(path) => crate::tools::load_file(path)?,
            None => Vec::new(),
        };
        let defaults = ModelDefaults::new(
            config.system_prompt.clone(),
            ModelOptions {
                model: None,
                temperature: config.model_temperature,
                max_tokens: config.model_max_tokens,
            },
            tools,
            &config.tool_endpoint_origins,
        );
        let model_settings = Arc::new(ModelSettingsStore::new(backplane.clone(), defaults));
        let sessions = Arc::new(SessionStore::new(backplane.clone(), config.history_max_age));
        let services = TurnServices {
            settings: model_settings.clone(),
            tools: Arc::new(ToolRunner::new(
                config.tool_signing_key.clone(),
                config.tool_timeout,
            )?),
            approvals: Arc::new(Approvals::new(
                backplane.clone(),
                config.tool_approval_timeout,
            )),
            sessions: sessions.clone(),
        };
        let approvals = services.approvals.clone();
        let turns = Turns::new(
            backplane.clone(),
            events.clone(),
            knowledge.clone(),
            provider,
            services,
            metrics.clone(),
            TurnLimits {
                max_queued: config.max_queued_turns as usize,
                deadline: config.turn_deadline,
                prompt_documents: config.prompt_documents as usize,
                transcript_budget: config.transcript_token_budget as usize,
                max_rounds: config.tool_max_rounds as usize,
            },
        );
        let auth = Arc::new(crate::auth::Authenticator::from_config(&config).await?);
        Ok(AppState {
            auth,
            server_id: Arc::from(config.resolved_server_id()),
            registry: Arc::new(Registry::new(backplane.clone(), metrics.clone())),
            sessions,
            model_settings,
            approvals,
            connection_limit: Arc::new(Semaphore::new(config.max_connections as usize)),
            config: Arc::new(config),
            backplane,
            events,
            turns,
            knowledge,
            metrics,
            shutdown: Shutdown::new(),
            connections: Arc::new(DashMap::new()),
            tracker: TaskTracker::new(),
        })
    }
}

/// A document as written in a `--knowledge-file`: the org defaults to the default org.
#[derive(serde::Deserialize)]
struct FileDocument {
    doc_id: String,
    org_id: Option<String>,
    title: String,
    text: String,
    uri: Option<String>,
    #[serde(default)]
    acl: crate::knowledge::Acl,
}

fn load_knowledge_file(path: &std::path::Path, default_org: &str) -> anyhow::Result<Vec<Document>> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "--knowledge-file (SWITCHBOARD_KNOWLEDGE_FILE): cannot read {}",
            path.display()
        )
    })?;
    let documents: Vec<FileDocument> = serde_json::from_str(&text).with_context(|| {
        format!(
            "--knowledge-file (SWITCHBOARD_KNOWLEDGE_FILE): {} is not a JSON array of documents",
            path.display()
        )
    })?;
    Ok(documents
        .into_iter()
        .map(|d| Document {
            doc_id: d.doc_id,
            org_id: d.org_id.unwrap_or_else(|| default_org.to_string()),
            title: d.title,
            text: d.text,
            uri: d.uri,
            acl: d.acl,
        })
        .collect())
}

/// Ping every connection each `--heartbeat`; close the ones silent for longer than
/// `--heartbeat-timeout` with 4000. One task for all connections: a timer per socket
/// would cost memory on every idle connection.
pub async fn heartbeat_sweeper(state: AppState) {
    let mut tick = tokio::time::interval(state.config.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            () = state.shutdown.closed() => return,
            _ = tick.tick() => {}
        }
        for entry in state.connections.iter() {
            let outbound = entry.value();
            if outbound.silent_for() > state.config.heartbeat_timeout {
                if outbound.close_code().is_none() {
                    state.metrics.disconnects.with_label_values(&["4000"]).inc();
                }
                outbound.close_with(switchboard_protocol::CloseCode::HeartbeatTimeout);
            } else {
                outbound.ping();
            }
        }
    }
}
