//! What clap cannot check: relations between settings, the backplane URL and the store.

use super::serve::ServeConfig;
use super::values::{BackplaneChoice, ModelProviderChoice, StoreChoice, redact_url};

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
        if self.turn_lease_beat.is_zero() {
            return Err(ConfigError {
                flag: "--turn-lease-beat",
                env: "SWITCHBOARD_TURN_LEASE_BEAT",
                reason: "must be greater than zero".into(),
            });
        }
        if self.turn_lease_lapse < self.turn_lease_beat * 2 {
            return Err(ConfigError {
                flag: "--turn-lease-lapse",
                env: "SWITCHBOARD_TURN_LEASE_LAPSE",
                reason: format!(
                    "must be at least twice --turn-lease-beat ({}), or a replica would lapse between two heartbeats",
                    humantime::format_duration(self.turn_lease_beat)
                ),
            });
        }
        if self.default_org.contains('@')
            || !switchboard_protocol::StreamName::valid_id(&self.default_org)
        {
            return Err(ConfigError {
                flag: "--default-org",
                env: "SWITCHBOARD_DEFAULT_ORG",
                reason: format!(
                    "'{}' is not a valid org id: use 1 to {} characters of A-Z, a-z, 0-9, '_', '-'",
                    self.default_org,
                    switchboard_protocol::stream::MAX_STREAM_ID_CHARS
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
                        redact_url(&self.model_base_url)
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
        for origin in &self.webhook_endpoint_origins {
            check_origin(origin).map_err(|reason| ConfigError {
                flag: "--webhook-endpoint-origins",
                env: "SWITCHBOARD_WEBHOOK_ENDPOINT_ORIGINS",
                reason,
            })?;
        }
        if self.fanout_window > MAX_FANOUT_WINDOW {
            return Err(ConfigError {
                flag: "--fanout-window",
                env: "SWITCHBOARD_FANOUT_WINDOW",
                reason: "must be at most 1s: it is added to a busy session's delivery time".into(),
            });
        }
        self.http_timeouts.validate()?;
        self.traces.validate()?;
        parse_store(&self.store)?;
        parse_backplane(&self.backplane)
    }
}

/// The longest `--fanout-window`.
const MAX_FANOUT_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// An origin as an allow list takes it: `http(s)://host[:port]`, nothing after.
fn check_origin(origin: &str) -> Result<(), String> {
    let trimmed = origin.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed).ok();
    let ok = parsed.as_ref().is_some_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host().is_some()
            && u.username().is_empty()
            && u.path() == "/"
            && u.query().is_none()
            && u.fragment().is_none()
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{origin}' is not an origin: write scheme://host[:port], e.g. https://hooks.example.com"
        ))
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

/// The store `--store` names.
pub fn parse_store(value: &str) -> Result<StoreChoice, ConfigError> {
    let scheme = value.split_once("://").map(|(scheme, _)| scheme);
    match (value, scheme) {
        ("sqlite", _) => Ok(StoreChoice::Sqlite),
        ("memory", _) => Ok(StoreChoice::Memory),
        (_, Some("postgres" | "postgresql")) => Ok(StoreChoice::Postgres(value.to_string())),
        _ => Err(ConfigError {
            flag: "--store",
            env: "SWITCHBOARD_STORE",
            reason: format!(
                "'{}' is not a store: use sqlite (a file in --data-dir), postgres://user:password@host:5432/db, or memory",
                redact_url(value)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_serve as parse;

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
    fn webhook_origins_must_be_bare_origins() {
        let c = parse(&[
            "--webhook-endpoint-origins",
            "https://hooks.example.com,http://127.0.0.1:8080/",
        ])
        .unwrap();
        assert_eq!(c.webhook_endpoint_origins.len(), 2);
        c.validate().unwrap();
        for bad in [
            "hooks.example.com",
            "https://hooks.example.com/in",
            "ftp://h",
        ] {
            let c = parse(&["--webhook-endpoint-origins", bad]).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("SWITCHBOARD_WEBHOOK_ENDPOINT_ORIGINS"), "{e}");
        }
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
