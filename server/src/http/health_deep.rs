//! `GET /health/deep`: each dependency checked at once, concurrently, each under a
//! timeout — the backplane, the conversation store, the model endpoint and, with
//! `--jwks-url`, the JWKS URL. 200 when every check is `ok`, 503 otherwise.
//!
//! Open like `/health`: the body names each dependency's kind, status, latency and a
//! short message, and never a URL, a host, a credential or a key. The checks that cost
//! the other side something (the model endpoint, the JWKS URL) are cached for 10 s, so
//! calling this route often cannot hammer them.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::health::{Probe, ProbeStatus};
use crate::state::AppState;

/// How long the backplane's and the store's checks may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the cached checks may take, their own timeout included.
const CACHED_CHECK_TIMEOUT: Duration = Duration::from_millis(2500);

/// One dependency in the answer.
#[derive(Debug, Serialize)]
struct Check {
    /// `redis`, `nats`, `memory`; `sqlite`, `postgres`; `openai`, `offline`; `jwks_url`.
    kind: &'static str,
    status: ProbeStatus,
    latency_ms: u64,
    message: String,
    /// Whether this is an earlier check's result (cached checks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    cached: Option<bool>,
}

impl Check {
    fn of(kind: &'static str, probe: Probe, cacheable: bool) -> Check {
        Check {
            kind,
            status: probe.status,
            latency_ms: u64::try_from(probe.latency.as_millis()).unwrap_or(u64::MAX),
            message: probe.message,
            cached: cacheable.then_some(probe.cached),
        }
    }
}

#[derive(Debug, Serialize)]
struct DeepHealth {
    /// The worst of the checks.
    status: ProbeStatus,
    checks: Checks,
}

#[derive(Debug, Serialize)]
struct Checks {
    backplane: Check,
    store: Check,
    model: Check,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks: Option<Check>,
}

/// `GET /health/deep`.
pub async fn deep(State(state): State<AppState>) -> Response {
    let backplane = Probe::timed(CHECK_TIMEOUT, async {
        match state.backplane.ping().await {
            Ok(()) => (ProbeStatus::Ok, "answering".to_string()),
            Err(e) => {
                tracing::warn!(error = %e, "deep health: backplane unreachable");
                (
                    ProbeStatus::Down,
                    "the backplane is unreachable".to_string(),
                )
            }
        }
    });
    let store = Probe::timed(CHECK_TIMEOUT, async {
        match state.conversations.store().ping().await {
            Ok(()) => (ProbeStatus::Ok, "answering".to_string()),
            Err(e) => {
                tracing::warn!(error = %e, "deep health: conversation store unreachable");
                (
                    ProbeStatus::Down,
                    "the conversation store is unreachable".to_string(),
                )
            }
        }
    });
    let provider = state.turns.provider().clone();
    let model = bounded(provider.probe());
    let auth = state.auth.load_full();
    let jwks = async {
        match tokio::time::timeout(CACHED_CHECK_TIMEOUT, auth.jwks_probe()).await {
            Ok(probe) => probe,
            Err(_) => Some(too_slow()),
        }
    };
    let (backplane, store, model, jwks) = tokio::join!(backplane, store, model, jwks);
    let checks = Checks {
        backplane: Check::of(state.backplane.name(), backplane, false),
        store: Check::of(state.conversations.store().name(), store, false),
        model: Check::of(provider.name(), model, true),
        jwks: jwks.map(|probe| Check::of("jwks_url", probe, true)),
    };
    let statuses = [
        Some(checks.backplane.status),
        Some(checks.store.status),
        Some(checks.model.status),
        checks.jwks.as_ref().map(|c| c.status),
    ];
    let status = statuses
        .into_iter()
        .flatten()
        .max_by_key(|s| match s {
            ProbeStatus::Ok => 0,
            ProbeStatus::Degraded => 1,
            ProbeStatus::Down => 2,
        })
        .unwrap_or(ProbeStatus::Ok);
    let code = if status == ProbeStatus::Ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(DeepHealth { status, checks })).into_response()
}

async fn bounded(probe: impl std::future::Future<Output = Probe>) -> Probe {
    tokio::time::timeout(CACHED_CHECK_TIMEOUT, probe)
        .await
        .unwrap_or_else(|_| too_slow())
}

fn too_slow() -> Probe {
    Probe::new(
        ProbeStatus::Down,
        format!(
            "no answer within {}",
            humantime::format_duration(CACHED_CHECK_TIMEOUT)
        ),
        CACHED_CHECK_TIMEOUT,
    )
}
