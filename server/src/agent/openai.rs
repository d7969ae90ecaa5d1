//! An OpenAI-compatible chat-completions client that streams over SSE.
//! (Being implemented: see the issue-6 helper.)

use std::time::Duration;

use futures_util::stream::BoxStream;

use super::{ModelChunk, ModelError, ModelProvider, TurnRequest};
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
    /// Retries before the first token, with exponential backoff from `retry_backoff`.
    pub retries: u32,
    pub retry_backoff: Duration,
    /// Deltas arriving within this window of each other are sent as one.
    pub coalesce_window: Duration,
}

pub struct OpenAiProvider {
    _config: OpenAiConfig,
}

impl OpenAiProvider {
    pub fn new(config: OpenAiConfig) -> anyhow::Result<OpenAiProvider> {
        Ok(OpenAiProvider { _config: config })
    }
}

impl ModelProvider for OpenAiProvider {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn supports_tools(&self) -> bool {
        true
    }

    fn reply(&self, _request: TurnRequest) -> BoxStream<'static, Result<ModelChunk, ModelError>> {
        Box::pin(futures_util::stream::once(async {
            Err(ModelError("not implemented yet".into()))
        }))
    }
}
