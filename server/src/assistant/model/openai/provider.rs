//! [`OpenAiProvider`]: one reply is one request, sent again on a failure that may pass
//! (connect error, 429, 5xx) as long as no token has been read, so a retry cannot
//! duplicate text; then its streamed body is read by a [`ReplyReader`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use futures_util::stream::BoxStream;
use switchboard_backplane::Backoff;

use super::config::OpenAiConfig;
use super::errors::{
    error_body_message, idle_error, innermost_cause, malformed, send_failure_reason,
};
use super::probe::{PROBE_TTL, check_models};
use super::reader::ReplyReader;
use super::request::request_body;
use crate::assistant::model::{ModelChunk, ModelError, ModelProvider, TurnRequest};
use crate::health::{Probe, ProbeCache};
use futures_util::future::BoxFuture;

/// The longest pause between two attempts, before jitter.
const RETRY_BACKOFF_CAP: Duration = Duration::from_secs(30);

/// A [`ModelProvider`] for any OpenAI-compatible chat-completions server.
pub struct OpenAiProvider {
    shared: Arc<Shared>,
}

/// What every reply of one provider shares.
struct Shared {
    config: OpenAiConfig,
    /// `{base_url}/chat/completions`
    endpoint: String,
    /// Built once: it holds the connection pool.
    client: reqwest::Client,
    /// `{base_url}/models`, checked by `/health/deep`.
    models_url: String,
    probes: ProbeCache,
}

impl OpenAiProvider {
    pub fn new(config: OpenAiConfig) -> anyhow::Result<OpenAiProvider> {
        let endpoint = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        let models_url = format!("{}/models", config.base_url.trim_end_matches('/'));
        reqwest::Url::parse(&endpoint)
            .map_err(|e| anyhow::anyhow!("--model-base-url {:?}: {e}", config.base_url))?;
        // No total timeout: a long reply is fine as long as it keeps coming; silence is
        // caught by the idle timeout around every read.
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .use_rustls_tls()
            .build()
            .map_err(|e| anyhow::anyhow!("building the model's HTTP client: {e}"))?;
        Ok(OpenAiProvider {
            shared: Arc::new(Shared {
                config,
                endpoint,
                client,
                models_url,
                probes: ProbeCache::new(PROBE_TTL),
            }),
        })
    }
}

impl ModelProvider for OpenAiProvider {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn default_model(&self) -> &str {
        &self.shared.config.default_model
    }

    fn supports_tools(&self) -> bool {
        true
    }

    fn probe(&self) -> BoxFuture<'_, Probe> {
        let shared = &self.shared;
        Box::pin(shared.probes.get_or_check(|| {
            check_models(
                &shared.client,
                &shared.models_url,
                shared.config.api_key.as_ref().map(|k| k.expose()),
            )
        }))
    }

    fn reply(&self, request: TurnRequest) -> BoxStream<'static, Result<ModelChunk, ModelError>> {
        let shared = self.shared.clone();
        let body = match serde_json::to_vec(&request_body(&shared.config, &request)) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                let error = ModelError(format!("the model request could not be encoded: {e}"));
                return Box::pin(futures_util::stream::once(async move { Err(error) }));
            }
        };
        let reply = Reply {
            request: ReplyRequest {
                shared,
                body,
                turn_id: request.turn_id,
            },
            phase: Phase::NotStarted,
        };
        Box::pin(futures_util::stream::unfold(
            reply,
            |mut reply| async move {
                let item = reply.next().await?;
                Some((item, reply))
            },
        ))
    }
}

/// Where one reply is: not sent yet, reading its body, or over.
enum Phase {
    NotStarted,
    Reading(Box<ReplyReader>),
    Ended,
}

/// The state behind one reply stream.
struct Reply {
    request: ReplyRequest,
    phase: Phase,
}

/// What a reply sends upstream (kept apart from the reading state, which is not
/// `Sync`, so that the request futures are `Send`).
struct ReplyRequest {
    shared: Arc<Shared>,
    /// The serialized request, sent again as is on a retry.
    body: Bytes,
    turn_id: String,
}

/// Why one attempt failed, and whether another may follow.
struct AttemptError {
    error: ModelError,
    retryable: bool,
}

impl Reply {
    async fn next(&mut self) -> Option<Result<ModelChunk, ModelError>> {
        loop {
            match &mut self.phase {
                Phase::Ended => return None,
                Phase::Reading(reader) => {
                    let item = reader.next().await;
                    if matches!(item, None | Some(Err(_))) {
                        self.phase = Phase::Ended;
                    }
                    return item;
                }
                Phase::NotStarted => match self.request.open().await {
                    Ok(reader) => self.phase = Phase::Reading(Box::new(reader)),
                    Err(error) => {
                        self.phase = Phase::Ended;
                        return Some(Err(error));
                    }
                },
            }
        }
    }
}

impl ReplyRequest {
    /// Send the request until it is answered with a stream, retrying what may pass
    /// (no token has been sent yet, so a retry cannot duplicate text).
    async fn open(&self) -> Result<ReplyReader, ModelError> {
        let config = &self.shared.config;
        let mut attempt = 0;
        loop {
            match self.attempt().await {
                Ok(reader) => return Ok(reader),
                Err(failure) if failure.retryable && attempt < config.retries => {
                    let pause = retry_delay(config.retry_backoff, attempt);
                    tracing::warn!(
                        turn_id = %self.turn_id,
                        error = %failure.error,
                        retry_in = ?pause,
                        "model request failed; retrying"
                    );
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err(failure) => {
                    tracing::warn!(turn_id = %self.turn_id, error = %failure.error, "model request failed");
                    return Err(failure.error);
                }
            }
        }
    }

    async fn attempt(&self) -> Result<ReplyReader, AttemptError> {
        let shared = &self.shared;
        let config = &shared.config;
        let mut request = shared
            .client
            .post(&shared.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .body(self.body.clone());
        if let Some(key) = &config.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = match tokio::time::timeout(config.idle_timeout, request.send()).await {
            Err(_) => {
                return Err(AttemptError {
                    error: idle_error(config.idle_timeout),
                    retryable: false,
                });
            }
            Ok(Err(e)) => {
                return Err(AttemptError {
                    error: ModelError(format!(
                        "could not reach the model at {}: {}",
                        config.base_url,
                        send_failure_reason(&e, config.connect_timeout)
                    )),
                    retryable: e.is_connect() || e.is_timeout(),
                });
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if !status.is_success() {
            let message = error_body_message(response, config.idle_timeout).await;
            return Err(AttemptError {
                error: ModelError(format!(
                    "the model answered HTTP {}: {message}",
                    status.as_u16()
                )),
                retryable: status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status.is_server_error(),
            });
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("application/json") {
            // The server ignored `stream: true`, or reported an error with a 200.
            let message = error_body_message(response, config.idle_timeout).await;
            return Err(AttemptError {
                error: malformed(format!(
                    "expected text/event-stream, got application/json: {message}"
                )),
                retryable: false,
            });
        }
        let bytes = response.bytes_stream().map_err(|e| innermost_cause(&e));
        Ok(ReplyReader::new(bytes, config, self.turn_id.clone()))
    }
}

/// The pause before retry number `attempt` (0 for the first): `base · 2^attempt`, at
/// most [`RETRY_BACKOFF_CAP`], plus up to a quarter of it at random so that many turns
/// failing together do not retry in lockstep.
fn retry_delay(base: Duration, attempt: u32) -> Duration {
    Backoff::new(base, RETRY_BACKOFF_CAP)
        .with_jitter(0.25)
        .delay_for(attempt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_at_most_a_quarter_of_jitter() {
        for attempt in 0..4 {
            let base = Duration::from_millis(100) * 2u32.pow(attempt);
            let pause = retry_delay(Duration::from_millis(100), attempt);
            assert!(
                pause >= base && pause <= base + base / 4,
                "{attempt}: {pause:?}"
            );
        }
        // Past the cap the pause stops growing (jitter still applies), and a huge
        // attempt number does not overflow.
        for attempt in [9, 20, u32::MAX] {
            let pause = retry_delay(Duration::from_millis(100), attempt);
            assert!(
                pause >= RETRY_BACKOFF_CAP && pause <= RETRY_BACKOFF_CAP + RETRY_BACKOFF_CAP / 4,
                "{attempt}: {pause:?}"
            );
        }
    }
}
