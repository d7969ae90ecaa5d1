//! Command line and `SWITCHBOARD_*` environment configuration.
//!
//! Every limit is documented here in one sentence: its default, and what a client sees
//! when it is exceeded. A value that cannot work fails at boot with a message naming
//! the flag and its environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Switchboard: a WebSocket-first realtime chat gateway with a pluggable backplane.
///
/// With no subcommand, `switchboard` runs the gateway (the same as `switchboard
/// serve`), so the flags below are the gateway's.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeConfig,
}

impl Cli {
    /// The command to run: a subcommand, or `serve` with the top-level flags.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(Box::new(self.serve)))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: /ws, the HTTP API, /health, /ready and /metrics.
    Serve(Box<ServeConfig>),
    /// Publish an event straight onto the backplane (Redis or NATS), no gateway needed.
    Publish(Box<crate::publish::PublishArgs>),
}

/// Configuration of `switchboard serve`. Every flag can also be set through the
/// environment variable named in its help.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on. Port 0 picks a free port; the chosen address is printed
    /// on stdout as `listening on http://ADDR`.
    #[arg(long, env = "SWITCHBOARD_BIND", default_value = "0.0.0.0:8080")]
    pub bind: SocketAddr,

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

    /// Longest a turn may run (default 120s); then it ends `failed`.
    #[arg(long, env = "SWITCHBOARD_TURN_DEADLINE", default_value = "120s", value_parser = parse_duration)]
    pub turn_deadline: Duration,

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

    /// Shared secret for HS256 tokens. Prefer the environment variable: command lines
    /// show in process lists.
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

    /// A JWKS URL, fetched at boot and again on an unknown `kid`.
    #[arg(long, env = "SWITCHBOARD_JWKS_URL")]
    pub jwks_url: Option<String>,

    /// Least time between two JWKS refetches caused by unknown `kid`s (default 30s).
    #[arg(long, env = "SWITCHBOARD_JWKS_MIN_REFRESH", default_value = "30s", value_parser = parse_duration)]
    pub jwks_min_refresh: Duration,

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

/// A secret from the configuration. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;

    fn from_str(s: &str) -> Result<Secret, String> {
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        Ok(Secret(s.to_string()))
    }
}

/// `--model-provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelProviderChoice {
    /// The built-in offline agent.
    Offline,
    /// An OpenAI-compatible chat-completions server.
    Openai,
}

/// An API key: a name (shown as the `publisher` of events, and in logs) and a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub name: String,
    pub secret: Secret,
}

impl std::str::FromStr for ApiKey {
    type Err = String;

    /// `name:secret`, or a bare secret named `publisher`. Keys shorter than 16
    /// characters are refused: they can be guessed.
    fn from_str(s: &str) -> Result<ApiKey, String> {
        let (name, secret) = match s.split_once(':') {
            Some((name, secret)) => (name.trim(), secret.trim()),
            None => ("publisher", s.trim()),
        };
        if name.is_empty() || name.len() > 64 {
            return Err("a key's name must be 1 to 64 characters (write name:secret)".into());
        }
        if secret.chars().count() < 16 {
            return Err(format!(
                "the key named '{name}' is shorter than 16 characters; use a long random secret"
            ));
        }
        Ok(ApiKey {
            name: name.to_string(),
            secret: Secret(secret.to_string()),
        })
    }
}

/// Which backplane `--backplane` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackplaneChoice {
    Memory,
    Redis(String),
    Nats(String),
}

/// A configuration that parsed but cannot work.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {flag} ({env}): {reason}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub env: &'static str,
    pub reason: String,
}

impl ServeConfig {
    /// Check what clap cannot: relations between settings and the backplane URL.
    pub fn validate(&self) -> Result<BackplaneChoice, ConfigError> {
        if self.heartbeat.is_zero() {
            return Err(ConfigError {
                flag: "--heartbeat",
                env: "SWITCHBOARD_HEARTBEAT",
                reason: "must be greater than zero".into(),
            });
        }
        if self.heartbeat_timeout <= self.heartbeat {
            return Err(ConfigError {
                flag: "--heartbeat-timeout",
                env: "SWITCHBOARD_HEARTBEAT_TIMEOUT",
                reason: format!(
                    "must be longer than --heartbeat ({}), or every client would time out between pings",
                    humantime::format_duration(self.heartbeat)
                ),
            });
        }
        if self.history_max_age.is_zero() {
            return Err(ConfigError {
                flag: "--history-max-age",
                env: "SWITCHBOARD_HISTORY_MAX_AGE",
                reason: "must be greater than zero".into(),
            });
        }
        if self.turn_deadline.is_zero() {
            return Err(ConfigError {
                flag: "--turn-deadline",
                env: "SWITCHBOARD_TURN_DEADLINE",
                reason: "must be greater than zero".into(),
            });
        }
        if self.default_org.contains('@')
            || !switchboard_protocol::StreamName::valid_id(&self.default_org)
        {
            return Err(ConfigError {
                flag: "--default-org",
                env: "SWITCHBOARD_DEFAULT_ORG",
                reason: format!(
                    "'{}' is not a valid org id: use 1 to 128 characters of A-Z, a-z, 0-9, '_', '-'",
                    self.default_org
                ),
            });
        }
        if let Some(id) = &self.server_id
            && (id.is_empty() || id.len() > 64)
        {
            return Err(ConfigError {
                flag: "--server-id",
                env: "SWITCHBOARD_SERVER_ID",
                reason: "must be 1 to 64 characters".into(),
            });
        }
        if self.backplane_prefix.is_empty()
            || self.backplane_prefix.len() > 32
            || !self
                .backplane_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ConfigError {
                flag: "--backplane-prefix",
                env: "SWITCHBOARD_BACKPLANE_PREFIX",
                reason: "must be 1 to 32 characters of A-Z, a-z, 0-9, '_', '-'".into(),
            });
        }
        if self.model_provider == ModelProviderChoice::Openai {
            let base = reqwest::Url::parse(&self.model_base_url).ok();
            if !base.is_some_and(|u| matches!(u.scheme(), "http" | "https")) {
                return Err(ConfigError {
                    flag: "--model-base-url",
                    env: "SWITCHBOARD_MODEL_BASE_URL",
                    reason: format!(
                        "'{}' is not an http(s) URL; write e.g. https://api.openai.com/v1",
                        self.model_base_url
                    ),
                });
            }
        }
        if let Some(t) = self.model_temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(ConfigError {
                flag: "--model-temperature",
                env: "SWITCHBOARD_MODEL_TEMPERATURE",
                reason: "must be between 0 and 2".into(),
            });
        }
        if self.model_idle_timeout.is_zero() || self.model_connect_timeout.is_zero() {
            return Err(ConfigError {
                flag: "--model-idle-timeout / --model-connect-timeout",
                env: "SWITCHBOARD_MODEL_IDLE_TIMEOUT / SWITCHBOARD_MODEL_CONNECT_TIMEOUT",
                reason: "must be greater than zero".into(),
            });
        }
        if let Some(key) = &self.tool_signing_key
            && key.expose().len() < 32
        {
            return Err(ConfigError {
                flag: "--tool-signing-key",
                env: "SWITCHBOARD_TOOL_SIGNING_KEY",
                reason: "must be at least 32 characters".into(),
            });
        }
        if self.tools_file.is_some() && self.model_provider != ModelProviderChoice::Openai {
            return Err(ConfigError {
                flag: "--tools-file",
                env: "SWITCHBOARD_TOOLS_FILE",
                reason: "tools need a model that can call them: set --model-provider openai".into(),
            });
        }
        if self.tools_file.is_some() && self.tool_signing_key.is_none() {
            return Err(ConfigError {
                flag: "--tool-signing-key",
                env: "SWITCHBOARD_TOOL_SIGNING_KEY",
                reason: "is required with --tools-file: tool endpoints get the caller's identity signed with it".into(),
            });
        }
        parse_backplane(&self.backplane)
    }

    /// The replica name: `--server-id` or a random `replica-…`.
    pub fn resolved_server_id(&self) -> String {
        self.server_id.clone().unwrap_or_else(|| {
            let id = uuid::Uuid::new_v4().simple().to_string();
            format!("replica-{}", &id[..8])
        })
    }
}

/// The backplane a `--backplane` value names.
pub fn parse_backplane(value: &str) -> Result<BackplaneChoice, ConfigError> {
    let scheme = value.split_once("://").map(|(scheme, _)| scheme);
    match (value, scheme) {
        ("memory", _) => Ok(BackplaneChoice::Memory),
        (_, Some("redis" | "rediss")) => Ok(BackplaneChoice::Redis(value.to_string())),
        (_, Some("nats" | "tls")) => Ok(BackplaneChoice::Nats(value.to_string())),
        _ => Err(ConfigError {
            flag: "--backplane",
            env: "SWITCHBOARD_BACKPLANE",
            reason: format!(
                "'{}' is not a backplane: use memory, redis://host:6379, rediss://…, nats://host:4222 or tls://…",
                redact_url(value)
            ),
        }),
    }
}

/// A backplane URL with any password removed, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("'{text}' is not a duration ({e}); write e.g. 500ms, 30s, 5m, 24h"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServeConfig, String> {
        let mut full = vec!["switchboard", "serve"];
        full.extend_from_slice(args);
        match Cli::try_parse_from(full).map(Cli::into_command) {
            Ok(Command::Serve(c)) => Ok(*c),
            Ok(_) => Err("not serve".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn bare_switchboard_serves_with_top_level_flags() {
        let cli = Cli::try_parse_from(["switchboard", "--history-max-events", "7"]).unwrap();
        let Command::Serve(c) = cli.into_command() else {
            panic!("expected serve")
        };
        assert_eq!(c.history_max_events, 7);
    }

    #[test]
    fn defaults_are_valid() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.validate().unwrap(), BackplaneChoice::Memory);
        assert_eq!(c.history_max_events, 1000);
        assert!(c.allow_anonymous);
    }

    #[test]
    fn a_heartbeat_timeout_shorter_than_the_heartbeat_names_the_setting() {
        let c = parse(&["--heartbeat", "10s", "--heartbeat-timeout", "5s"]).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("--heartbeat-timeout"), "{e}");
        assert!(e.contains("SWITCHBOARD_HEARTBEAT_TIMEOUT"), "{e}");
    }

    #[test]
    fn a_bad_duration_says_how_to_write_one() {
        let e = parse(&["--history-max-age", "soon"]).unwrap_err();
        assert!(e.contains("--history-max-age"), "{e}");
        assert!(e.contains("24h"), "{e}");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let c = parse(&[
            "--jwt-hs256-secret",
            "s3cr3t-value-for-hs256",
            "--publisher-keys",
            "orders:pk_0123456789abcdef,crm:pk_fedcba9876543210",
        ])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(!shown.contains("pk_0123"), "{shown}");
        assert_eq!(c.publisher_keys.len(), 2);
        assert_eq!(c.publisher_keys[1].name, "crm");
    }

    #[test]
    fn short_api_keys_are_refused_at_boot() {
        let e = parse(&["--admin-keys", "ops:short"]).unwrap_err();
        assert!(
            e.contains("--admin-keys") && e.contains("16 characters"),
            "{e}"
        );
    }

    #[test]
    fn backplane_passwords_never_reach_messages() {
        assert_eq!(
            redact_url("redis://user:secret@host:6379"),
            "redis://***@host:6379"
        );
        let c = parse(&["--backplane", "bogus://u:hunter2@h"]).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("--backplane"), "{e}");
        assert_eq!(
            parse_backplane("rediss://u:p@h:6380").unwrap(),
            BackplaneChoice::Redis("rediss://u:p@h:6380".into())
        );
        assert!(matches!(
            parse_backplane("nats://h:4222"),
            Ok(BackplaneChoice::Nats(_))
        ));
    }
}
