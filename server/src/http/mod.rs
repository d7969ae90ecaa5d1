//! The HTTP surface (docs/protocol.md §6): [`app`] builds the router for `main` and
//! for tests alike.
//!
//! - [`ws`]: `GET /ws`, the WebSocket upgrade;
//! - [`sse`]: `GET /v1/sessions/{id}/stream`, a session's events as Server-Sent Events;
//! - [`ops`]: `/health`, `/ready`, `/metrics`;
//! - [`ops`]: `/health`, `/ready`, `/metrics`; [`health_deep`]: `/health/deep`;
//! - [`request_metrics`]: HTTP requests counted and timed by route template;
//! - [`api`]: the `/v1` API for backends, operators and admins, and `/openapi.json`;
//! - [`widget`]: `/widget.js` and the demo page `/`;
//! - [`console`]: the operator console `/console`;
//! - [`assets`]: how those embedded files are served;
//! - [`error`], [`credentials`], [`body_limit`]: what every route shares;
//! - [`json_errors`]: every error without a JSON body (an unknown route, a bad query
//!   string, a layer's refusal) gets one, in the protocol's error shape;
//! - [`lingering_close`]: every accepted TCP connection reads its peer's unread input
//!   before closing, so a refusal is not lost to a reset;
//! - [`listener`]: the accept loop, its timeouts and the refusals of [`visitors`], the
//!   limits per visitor address.

pub mod api;
pub mod assets;
pub mod body_limit;
pub mod client_ip;
pub mod console;
pub mod credentials;
pub mod error;
pub mod health_deep;
pub mod json_errors;
pub mod lingering_close;
pub mod listener;
pub mod ops;
pub mod request_metrics;
pub mod sse;
pub mod visitors;
pub mod widget;
pub mod ws;

use axum::routing::get;
use axum::{Extension, Router};
use tower_http::trace::TraceLayer;

use crate::state::AppState;

/// The router with every route, over `state`.
pub fn app(state: AppState) -> anyhow::Result<Router> {
    let websockets = visitors::WebSocketGate::new(&state.config.visitors);
    Ok(Router::new()
        .route("/ws", get(ws::upgrade))
        .route("/health", get(ops::health))
        .route("/health/deep", get(health_deep::deep))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(api::openapi::serve))
        .merge(api::router(&state)?)
        .merge(widget::router())
        .merge(console::router())
        .layer(Extension(websockets))
        .layer(axum::middleware::from_fn(json_errors::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_metrics::record,
        ))
        // The span names the path only: the query may hold `?token=`, which must never
        // reach a log line, at any level.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::extract::Request| {
            tracing::debug_span!("http", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state))
}
