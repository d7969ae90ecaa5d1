//! The flags of `switchboard serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::values::{ApiKey, ModelProviderChoice, Secret, parse_duration};
use super::{CostLimits, DocumentQuota, HttpTimeouts, SessionQuotas, TraceExport, VisitorLimits};

/// Configuration of `switchboard serve`. Every flag can also be set through the
/// environment variable named in its help.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on. Port 0 picks a free port; the chosen address is printed
    /// on stdout as `listening on http://ADDR`.
    #[arg(long, env = "SWITCHBOARD_BIND", default_value = "0.0.0.0:8080")]
    pub bind: SocketAddr,

    #[command(flatten)]
    pub visitors: VisitorLimits,

    #[command(flatten)]
    pub session_quotas: SessionQuotas,

    #[command(flatten)]
    pub http_timeouts: HttpTimeouts,

    #[command(flatten)]
    pub cost: CostLimits,

    #[command(flatten)]
    pub document_quota: DocumentQuota,

    /// A file of `SWITCHBOARD_NAME=value` lines, read at boot and on every reload
    /// (SIGHUP, `POST /v1/admin/reload`). A setting there counts below the same one on
    /// the command line or in the environment, above the default; docs/operations.md
    /// lists which settings a reload applies to a running gateway.
    #[arg(long, env = "SWITCHBOARD_SETTINGS_FILE")]
    pub settings_file: Option<PathBuf>,
    #[command(flatten)]
    pub traces: TraceExport,

    /// This replica's name in `welcome.server_id`, logs and metrics. Default: a
    /// random `replica-…` name.
    #[arg(long, env = "SWITCHBOARD_SERVER_ID")]
    pub server_id: Option<String>,

    /// Where events, history and shared records live: `memory` (one replica only),
    /// `redis://…` / `rediss://…` (Redis, TLS), or `nats://…` / `tls://…` (NATS with
    /// JetStream). Credentials go in the URL. Unreachable at boot: the gateway exits.
    #[arg(long, env = "SWITCHBOARD_BACKPLANE", default_value = "memory")]
    pub backplane: String,

    /// Prefix of every Redis key, NATS subject, stream and bucket this deployment
    /// uses (default `sb`), so several deployments can share one server.
    #[arg(long, env = "SWITCHBOARD_BACKPLANE_PREFIX", default_value = "sb")]
    pub backplane_prefix: String,

    /// History kept per stream, in events (default 1000). Older events are trimmed;
    /// a client resuming from before them gets `recovered: false`.
    #[arg(long, env = "SWITCHBOARD_HISTORY_MAX_EVENTS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub history_max_events: u64,

    /// History kept per stream, in time (default 24h), e.g. `30m`, `24h`, `7d`.
    #[arg(long, env = "SWITCHBOARD_HISTORY_MAX_AGE", default_value = "24h", value_parser = parse_duration)]
    pub history_max_age: Duration,

    /// Where conversations (sessions and their transcripts) are kept: `sqlite` (a
    /// file in `--data-dir`; one replica), `postgres://…` (shared by many replicas;
    /// credentials in the URL), or `memory` (nothing survives a restart; for tests).
    /// Unreachable or unwritable at boot: the gateway exits.
    #[arg(long, env = "SWITCHBOARD_STORE", default_value = "sqlite")]
    pub store: String,

    /// Directory of the SQLite store (default `./data`), created if missing.
    #[arg(long, env = "SWITCHBOARD_DATA_DIR", default_value = "./data")]
    pub data_dir: std::path::PathBuf,

    /// PostgreSQL connections each replica keeps open at most (default 10).
    #[arg(long, env = "SWITCHBOARD_STORE_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub store_max_connections: u32,

    /// Days a conversation is kept after its last activity (default 90), for orgs
    /// that set none of their own (`PUT /v1/admin/retention`).
    #[arg(long, env = "SWITCHBOARD_RETENTION_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_days: u32,

    /// How often conversations idle past their retention are removed (default 10m).
    #[arg(long, env = "SWITCHBOARD_RETENTION_SWEEP", default_value = "10m", value_parser = parse_duration)]
    pub retention_sweep: Duration,

    /// Largest WebSocket frame a client may send, in bytes (default 65536). Larger:
    /// `error` `too_large`, then close 1009.
    #[arg(long, env = "SWITCHBOARD_MAX_FRAME_BYTES", default_value_t = 65536,
          value_parser = clap::value_parser!(u64).range(256..=16 * 1024 * 1024))]
    pub max_frame_bytes: u64,

    /// Longest `message.send` text, in characters (default 8000). Longer: `error`
    /// `too_large`; the connection stays open.
    #[arg(long, env = "SWITCHBOARD_MAX_TEXT_CHARS", default_value_t = 8000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_text_chars: u64,

    /// Frames a connection may send per second, with bursts of as many (default 20).
    /// Faster: each extra frame gets `error` `rate_limited` and is not processed.
    #[arg(long, env = "SWITCHBOARD_MAX_FRAMES_PER_SECOND", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_frames_per_second: u32,

    /// Bad or rate-limited frames in a row before the server closes with 4029
    /// (default 10). Any good frame resets the count.
    #[arg(long, env = "SWITCHBOARD_MAX_BAD_FRAMES", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_bad_frames: u32,

    /// Bytes waiting to be written to one socket before the client counts as a slow
    /// consumer and is closed with 4008 (default 1 MiB). Bounds server memory per
    /// connection; the client loses nothing and resumes with `after_seq`.
    #[arg(long, env = "SWITCHBOARD_OUTBOUND_QUEUE_BYTES", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(4096..=1024 * 1024 * 1024))]
    pub outbound_queue_bytes: u64,

    /// While a stream's members fall behind (a quarter of them still had frames
    /// queued at its last delivery), it delivers to them at most once per window
    /// (default 10ms): events that arrive sooner wait for the window's end and go out
    /// together, so a backlogged session costs one socket write per window rather
    /// than per event. While the writers keep up, every event goes out at once.
    /// 0 never waits.
    #[arg(long, env = "SWITCHBOARD_FANOUT_WINDOW", default_value = "10ms", value_parser = parse_duration)]
    pub fanout_window: Duration,

    /// Bytes of history all joiners' replays may hold at once in this process
    /// (default 67108864 = 64 MiB). Each replay also holds at most about its
    /// connection's `--outbound-queue-bytes`. A join that finds no room within 10 s
    /// gets `error` `unavailable` (join again in a moment).
    #[arg(long, env = "SWITCHBOARD_REPLAY_MEMORY_BYTES", default_value_t = 64 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(65536..=64 * 1024 * 1024 * 1024))]
    pub replay_memory_bytes: u64,

    /// How often the server pings each connection (default 25s).
    #[arg(long, env = "SWITCHBOARD_HEARTBEAT", default_value = "25s", value_parser = parse_duration)]
    pub heartbeat: Duration,

    /// A connection that sends nothing (not even a pong) for this long is closed with
    /// 4000 (default 60s). Must exceed `--heartbeat`.
    #[arg(long, env = "SWITCHBOARD_HEARTBEAT_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub heartbeat_timeout: Duration,

    /// Org of anonymous connections (default `default`).
    #[arg(long, env = "SWITCHBOARD_DEFAULT_ORG", default_value = "default")]
    pub default_org: String,

    /// Whether connections without a token are accepted as anonymous (default true).
    /// When false, they get `error` `unauthorized` and close 4401.
    #[arg(long, env = "SWITCHBOARD_ALLOW_ANONYMOUS", default_value_t = true, action = clap::ArgAction::Set)]
    pub allow_anonymous: bool,

    /// Seed the knowledge base with demo documents (public, in the default org) so
    /// the offline agent has something to answer from.
    #[arg(long, env = "SWITCHBOARD_DEMO_SEED", default_value_t = false)]
    pub demo_seed: bool,

    /// Load documents into the knowledge base at boot from a JSON array of
    /// `{"doc_id","org_id"?,"title","text","uri"?,"acl"?}`.
    #[arg(long, env = "SWITCHBOARD_KNOWLEDGE_FILE")]
    pub knowledge_file: Option<PathBuf>,

    /// Sessions one connection may join at once (default 16). One more: `conflict`.
    #[arg(long, env = "SWITCHBOARD_MAX_SESSIONS_PER_CONNECTION", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub max_sessions_per_connection: u64,

    /// Open WebSocket connections this replica accepts (default 100000). More: the
    /// upgrade is refused with HTTP 503.
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_connections: u64,

    /// Turns that may wait behind the running one in a session (default 8). One more
    /// `message.send`: `rate_limited`, and nothing is appended.
    #[arg(long, env = "SWITCHBOARD_MAX_QUEUED_TURNS", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_queued_turns: u64,

    /// Synchronous chats (`POST /v1/chat`) this replica lets wait for their reply at
    /// once (default 1000). One more: HTTP 503 `unavailable` with `Retry-After`.
    #[arg(long, env = "SWITCHBOARD_MAX_SYNC_CHATS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_sync_chats: u64,

    /// Synchronous chats one principal (a user, or an anonymous visitor's address)
    /// may have waiting at once on this replica (default 8). One more: HTTP 503
    /// `unavailable` with `Retry-After`.
    #[arg(long, env = "SWITCHBOARD_MAX_SYNC_CHATS_PER_PRINCIPAL", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_sync_chats_per_principal: u64,

    /// Longest a turn may run (default 120s); then it ends `failed`.
    #[arg(long, env = "SWITCHBOARD_TURN_DEADLINE", default_value = "120s", value_parser = parse_duration)]
    pub turn_deadline: Duration,

    /// How often a replica renews its heartbeat, which keeps the sessions whose turns
    /// it runs its own (default 1s).
    #[arg(long, env = "SWITCHBOARD_TURN_LEASE_BEAT", default_value = "1s", value_parser = parse_duration)]
    pub turn_lease_beat: Duration,

    /// How long a replica's heartbeat lives without renewal (default 4s). When it
    /// lapses, another replica ends the turn it was running (`replica_lost`) and
    /// answers its sessions' messages. At least twice `--turn-lease-beat`.
    #[arg(long, env = "SWITCHBOARD_TURN_LEASE_LAPSE", default_value = "4s", value_parser = parse_duration)]
    pub turn_lease_lapse: Duration,

    /// On SIGTERM, how long turns in flight may take to finish before they are ended
    /// `failed` and the process exits (default 25s). Keep it below the orchestrator's
    /// termination grace period.
    #[arg(long, env = "SWITCHBOARD_DRAIN_GRACE", default_value = "25s", value_parser = parse_duration)]
    pub drain_grace: Duration,

    /// Pause between the offline agent's `turn.delta` events (default 40ms), so its
    /// answers stream like a model's.
    #[arg(long, env = "SWITCHBOARD_OFFLINE_AGENT_DELAY", default_value = "40ms", value_parser = parse_duration)]
    pub offline_agent_delay: Duration,

    /// Who writes replies: `offline` (default: answers from the knowledge base, no
    /// key, no network) or `openai` (any OpenAI-compatible chat-completions server:
    /// OpenAI, vLLM, Ollama, LiteLLM…, see the `--model-*` flags).
    #[arg(long, env = "SWITCHBOARD_MODEL_PROVIDER", default_value = "offline")]
    pub model_provider: ModelProviderChoice,

    /// Base URL of the OpenAI-compatible API; the gateway POSTs
    /// `{base}/chat/completions` (default https://api.openai.com/v1).
    #[arg(
        long,
        env = "SWITCHBOARD_MODEL_BASE_URL",
        default_value = "https://api.openai.com/v1"
    )]
    pub model_base_url: String,

    /// API key sent as `Authorization: Bearer`; optional for local servers. Prefer
    /// the environment variable.
    #[arg(long, env = "SWITCHBOARD_MODEL_API_KEY", hide_env_values = true)]
    pub model_api_key: Option<Secret>,

    /// Model name sent upstream (default gpt-4o-mini); an org's settings may override it.
    #[arg(long, env = "SWITCHBOARD_MODEL", default_value = "gpt-4o-mini")]
    pub model: String,

    /// Sampling temperature sent upstream (default: the upstream's own).
    #[arg(long, env = "SWITCHBOARD_MODEL_TEMPERATURE")]
    pub model_temperature: Option<f32>,

    /// Most tokens a reply may have (default: the upstream's own limit).
    #[arg(long, env = "SWITCHBOARD_MODEL_MAX_TOKENS")]
    pub model_max_tokens: Option<u32>,

    /// Longest wait to connect to the model (default 5s).
    #[arg(long, env = "SWITCHBOARD_MODEL_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub model_connect_timeout: Duration,

    /// Longest silence from the model, before its first byte or between two chunks
    /// (default 30s); longer and the turn ends `failed`.
    #[arg(long, env = "SWITCHBOARD_MODEL_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub model_idle_timeout: Duration,

    /// Retries of a request that failed before its first token (connection refused,
    /// HTTP 429 or 5xx), with exponential backoff (default 2). Never after a token.
    #[arg(long, env = "SWITCHBOARD_MODEL_RETRIES", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(0..=10))]
    pub model_retries: u32,

    /// The system prompt: who the assistant is and how it answers (default: a short
    /// prompt that asks it to answer from the documents given). An org may override it.
    #[arg(long, env = "SWITCHBOARD_SYSTEM_PROMPT")]
    pub system_prompt: Option<String>,

    /// Tokens of earlier messages kept in the prompt, newest first (default 2000,
    /// estimated at 4 characters per token).
    #[arg(long, env = "SWITCHBOARD_TRANSCRIPT_TOKEN_BUDGET", default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub transcript_token_budget: u32,

    /// Documents retrieved into each prompt (default 3), only ones the asker may read.
    #[arg(long, env = "SWITCHBOARD_PROMPT_DOCUMENTS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(0..=20))]
    pub prompt_documents: u32,

    /// JSON file of tools offered to the model: `[{"name","description","parameters",
    /// "endpoint","requires_approval"}]` (see docs/tools.md). Needs `--model-provider openai`.
    #[arg(long, env = "SWITCHBOARD_TOOLS_FILE")]
    pub tools_file: Option<PathBuf>,

    /// Origins (`scheme://host:port`) that tools set through the admin API may call, comma
    /// separated. The tools file's own endpoints are always allowed. Default: none.
    #[arg(long, env = "SWITCHBOARD_TOOL_ENDPOINT_ORIGINS", value_delimiter = ',')]
    pub tool_endpoint_origins: Vec<String>,

    /// Origins (`scheme://host:port`) webhook endpoints registered through the admin API
    /// may be on, comma separated (docs/webhooks.md). Default: none, and every
    /// registration is refused with `400`.
    #[arg(
        long,
        env = "SWITCHBOARD_WEBHOOK_ENDPOINT_ORIGINS",
        value_delimiter = ','
    )]
    pub webhook_endpoint_origins: Vec<String>,

    /// Key that signs the `X-Switchboard-Identity` token sent to tool endpoints (HS256,
    /// at least 32 characters). Required when tools are configured.
    #[arg(long, env = "SWITCHBOARD_TOOL_SIGNING_KEY", hide_env_values = true)]
    pub tool_signing_key: Option<Secret>,

    /// How long a tool call that needs approval waits for `tool.decide` (default 2m);
    /// no decision by then counts as denied.
    #[arg(long, env = "SWITCHBOARD_TOOL_APPROVAL_TIMEOUT", default_value = "2m", value_parser = parse_duration)]
    pub tool_approval_timeout: Duration,

    /// Longest a tool endpoint may take to answer (default 15s).
    #[arg(long, env = "SWITCHBOARD_TOOL_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub tool_timeout: Duration,

    /// Model rounds per turn at most (default 4): a model that keeps calling tools is
    /// stopped, and the turn ends `failed`.
    #[arg(long, env = "SWITCHBOARD_TOOL_MAX_ROUNDS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=32))]
    pub tool_max_rounds: u32,

    /// Shared secret for HS256 tokens, at least 32 bytes (a shorter one is refused at
    /// boot). Prefer the environment variable: command lines show in process lists.
    #[arg(long, env = "SWITCHBOARD_JWT_HS256_SECRET", hide_env_values = true)]
    pub jwt_hs256_secret: Option<Secret>,

    /// PEM file of the public key that verifies tokens (with `--jwt-algorithm`).
    #[arg(long, env = "SWITCHBOARD_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,

    /// Algorithm of `--jwt-public-key-file`: `RS256`, `ES256` or `EdDSA`.
    #[arg(long, env = "SWITCHBOARD_JWT_ALGORITHM")]
    pub jwt_algorithm: Option<String>,

    /// A JWKS document (file) whose keys verify tokens, chosen by `kid`.
    #[arg(long, env = "SWITCHBOARD_JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,

    /// A JWKS URL, fetched at boot and again on an unknown `kid`: `https://` only (an
    /// `http://` one is refused at boot), and a redirect is not followed (the boot
    /// fails naming the status).
    #[arg(long, env = "SWITCHBOARD_JWKS_URL")]
    pub jwks_url: Option<String>,

    /// Least time between two JWKS refetches caused by unknown `kid`s (default 30s,
    /// at least 1s: a shorter one is refused at boot). Meanwhile a token naming an
    /// unknown `kid` is refused with 4401.
    #[arg(long, env = "SWITCHBOARD_JWKS_MIN_REFRESH", default_value = "30s", value_parser = parse_duration)]
    pub jwks_min_refresh: Duration,

    /// TESTS ONLY: accept a plain `http://` --jwks-url (default false: https only, an
    /// http URL is refused at boot). Over http anyone on the path can swap the keys.
    #[arg(
        long,
        env = "SWITCHBOARD_INSECURE_JWKS_HTTP_FOR_TESTS",
        default_value_t = false
    )]
    pub insecure_jwks_http_for_tests: bool,

    /// Required `iss` of tokens, if set.
    #[arg(long, env = "SWITCHBOARD_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` of tokens, if set.
    #[arg(long, env = "SWITCHBOARD_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Clock skew allowed on `exp` and `nbf` (default 30s).
    #[arg(long, env = "SWITCHBOARD_JWT_LEEWAY", default_value = "30s", value_parser = parse_duration)]
    pub jwt_leeway: Duration,

    /// Token claim holding the org id (default `org_id`).
    #[arg(long, env = "SWITCHBOARD_JWT_ORG_CLAIM", default_value = "org_id")]
    pub jwt_org_claim: String,

    /// Token claim holding the groups (default `groups`).
    #[arg(long, env = "SWITCHBOARD_JWT_GROUPS_CLAIM", default_value = "groups")]
    pub jwt_groups_claim: String,

    /// Token claim holding the roles (default `roles`).
    #[arg(long, env = "SWITCHBOARD_JWT_ROLES_CLAIM", default_value = "roles")]
    pub jwt_roles_claim: String,

    /// Publisher API keys, `name:secret` comma-separated: trusted backends that may
    /// publish into any session, user or org.
    #[arg(
        long,
        env = "SWITCHBOARD_PUBLISHER_KEYS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub publisher_keys: Vec<ApiKey>,

    /// Admin API keys, `name:secret` comma-separated: manage any org's documents and
    /// read any session's history.
    #[arg(
        long,
        env = "SWITCHBOARD_ADMIN_KEYS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub admin_keys: Vec<ApiKey>,

    /// Browser origins allowed to call the HTTP API (CORS), comma-separated. Default:
    /// none.
    #[arg(long, env = "SWITCHBOARD_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Browser origins allowed to open /ws, comma-separated. A listed-origins gateway
    /// refuses other browsers' upgrades with 403. Default: any origin.
    #[arg(long, env = "SWITCHBOARD_WS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub ws_allowed_origins: Vec<String>,

    /// Largest `POST /v1/publish` body, in bytes (default 262144). Larger: 413
    /// `too_large`.
    #[arg(long, env = "SWITCHBOARD_MAX_PUBLISH_BYTES", default_value_t = 262_144,
          value_parser = clap::value_parser!(u64).range(256..=16 * 1024 * 1024))]
    pub max_publish_bytes: u64,

    /// Log format: `text` or `json`. Levels come from `RUST_LOG` (default `info`).
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    pub log_format: String,
}

impl ServeConfig {
    /// The replica name: `--server-id` or a random `replica-…`.
    pub fn resolved_server_id(&self) -> String {
        self.server_id.clone().unwrap_or_else(|| {
            let id = uuid::Uuid::new_v4().simple().to_string();
            format!("replica-{}", &id[..8])
        })
    }
}
