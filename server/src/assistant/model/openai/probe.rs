//! The model endpoint's check for `/health/deep`: `GET {base_url}/models` with the
//! API key, at most once per [`PROBE_TTL`], under [`PROBE_TIMEOUT`]. Messages name
//! what happened, never the URL or the key.

use std::time::Duration;

use crate::health::{Probe, ProbeStatus};

/// How long one check may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a check's result is reused, so `/health/deep` cannot hammer the provider.
pub const PROBE_TTL: Duration = Duration::from_secs(10);

/// Check the endpoint once.
pub(super) async fn check_models(
    client: &reqwest::Client,
    models_url: &str,
    api_key: Option<&str>,
) -> Probe {
    Probe::timed(PROBE_TIMEOUT, async {
        let mut request = client.get(models_url).timeout(PROBE_TIMEOUT);
        if let Some(key) = api_key {
            request = request.bearer_auth(key);
        }
        match request.send().await {
            Ok(response) => judge(response.status().as_u16()),
            Err(e) if e.is_timeout() => (
                ProbeStatus::Down,
                format!(
                    "no answer within {}",
                    humantime::format_duration(PROBE_TIMEOUT)
                ),
            ),
            Err(e) if e.is_connect() => (
                ProbeStatus::Down,
                "cannot connect to the model endpoint".to_string(),
            ),
            Err(_) => (
                ProbeStatus::Down,
                "the request to the model endpoint failed".to_string(),
            ),
        }
    })
    .await
}

/// What an HTTP status of `GET /models` says about the endpoint.
fn judge(status: u16) -> (ProbeStatus, String) {
    match status {
        200..=299 => (ProbeStatus::Ok, "the model endpoint answered".to_string()),
        401 | 403 => (
            ProbeStatus::Down,
            format!("the model endpoint refused the API key (HTTP {status})"),
        ),
        // Reachable; some compatible servers do not serve the model list.
        404 | 405 => (
            ProbeStatus::Ok,
            format!("the model endpoint is reachable (it does not list models: HTTP {status})"),
        ),
        429 => (
            ProbeStatus::Degraded,
            "the model endpoint is rate limiting (HTTP 429)".to_string(),
        ),
        _ => (
            ProbeStatus::Degraded,
            format!("the model endpoint answered HTTP {status}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_a_person_would() {
        assert_eq!(judge(200).0, ProbeStatus::Ok);
        assert_eq!(judge(404).0, ProbeStatus::Ok);
        assert_eq!(judge(401).0, ProbeStatus::Down);
        assert_eq!(judge(429).0, ProbeStatus::Degraded);
        assert_eq!(judge(503).0, ProbeStatus::Degraded);
    }
}
