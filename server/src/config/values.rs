//! The types of flag values: secrets that never show in logs, API keys, the backplane
//! choice, durations.

use std::time::Duration;

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

/// Where conversations are kept (`--store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// An SQLite file in `--data-dir`.
    Sqlite,
    /// In memory ([`switchboard_store::MemoryStore`]): nothing survives a restart.
    Memory,
    /// A PostgreSQL URL.
    Postgres(String),
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
    use crate::config::parse_serve as parse;

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
}
