//! How to reach an OpenAI-compatible upstream.

use std::time::Duration;

use crate::config::Secret;

/// How to reach the upstream.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// e.g. `https://api.openai.com/v1`; requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    pub api_key: Option<Secret>,
    /// Used when the request's options name no model.
    pub default_model: String,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub connect_timeout: Duration,
    /// Longest silence before the first byte or between chunks.
    pub idle_timeout: Duration,
    /// Retries before the first token (a retry after one could duplicate text).
    pub retries: u32,
    /// The pause before the first retry; each next pause doubles, up to 30 s, and is
    /// lengthened by up to a quarter of itself at random.
    pub retry_backoff: Duration,
    /// Deltas arriving within this window of each other are sent as one.
    pub coalesce_window: Duration,
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A config for unit tests: nothing listens at its base URL.
    pub(in super::super) fn config() -> OpenAiConfig {
        OpenAiConfig {
            base_url: "http://127.0.0.1:9/v1/".into(),
            api_key: None,
            default_model: "default-model".into(),
            temperature: Some(0.5),
            max_tokens: None,
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            retries: 0,
            retry_backoff: Duration::from_millis(10),
            coalesce_window: Duration::from_millis(5),
        }
    }
}
