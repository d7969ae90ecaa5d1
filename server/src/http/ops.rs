//! The operations surface: `/health`, `/ready`, `/metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use switchboard_protocol::ErrorCode;

use super::error::json_error;
use crate::state::AppState;

/// 200 while the process runs.
pub async fn health() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// 200 when the backplane answers and the replica is not draining; else 503.
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.shutdown.is_draining() {
        return json_error(ErrorCode::Unavailable, "draining");
    }
    if let Err(e) = state.backplane.ping().await {
        tracing::warn!(error = %e, "not ready: backplane unreachable");
        return json_error(ErrorCode::Unavailable, "the backplane is unreachable");
    }
    if let Err(e) = state.conversations.store().ping().await {
        tracing::warn!(error = %e, "not ready: conversation store unreachable");
        return json_error(
            ErrorCode::Unavailable,
            "the conversation store is unreachable",
        );
    }
    axum::Json(serde_json::json!({"status": "ready"})).into_response()
}

/// Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.render() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render metrics");
            json_error(ErrorCode::Internal, "metrics could not be rendered")
        }
    }
}
