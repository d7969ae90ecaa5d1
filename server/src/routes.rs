//! HTTP routes: `/ws`, `/health`, `/ready`, `/metrics`. [`app`] builds the router for
//! `main` and for tests alike.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use serde::Deserialize;
use switchboard_protocol::{ErrorCode, SUBPROTOCOL};
use tower_http::trace::TraceLayer;

use crate::connection::{self, Handshake};
use crate::state::AppState;

/// Bytes the WebSocket codec reads per socket read. The codec allocates this buffer
/// up front, zero-fills it on its first read and keeps it for the connection's life,
/// so every idle connection pays it in full: the library default (128 KiB) would
/// dominate, and 2 KiB was a quarter of an idle connection (docs/benchmarks.md).
/// Client frames are small JSON commands, most of them within one read; a larger one
/// takes several. A frame over `--max-frame-bytes` is refused after its header, and
/// the lingering close (lingering_close.rs) reads the rest, so the peer still gets
/// close 1009 rather than a reset.
const READ_BUFFER_BYTES: usize = 256;
/// Bytes the codec gathers before writing to the socket.
const WRITE_BUFFER_BYTES: usize = 8 * 1024;

/// The router with every route, over `state`.
pub fn app(state: AppState) -> anyhow::Result<Router> {
    Ok(Router::new()
        .route("/ws", get(ws_upgrade))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(crate::api::openapi))
        .merge(crate::api::router(&state)?)
        .merge(crate::widget::router())
        // The span names the path only: the query may hold `?token=`, which must never
        // reach a log line, at any level.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::extract::Request| {
            tracing::debug_span!("http", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state))
}

/// A JSON error body: `{"error":{"code","message"}}`.
pub fn json_error(code: ErrorCode, message: &str) -> Response {
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({"error": {"code": code.as_str(), "message": message}});
    (status, axum::Json(body)).into_response()
}

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
}

/// Everything HTTP can tell is read here, before the upgrade: credentials, peer,
/// limits and the connection permit.
async fn ws_upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Ok(permit) = state.connection_limit.clone().try_acquire_owned() else {
        return json_error(
            ErrorCode::Unavailable,
            "this replica holds its maximum number of connections; retry another replica or later",
        );
    };
    if !origin_allowed(&state.config.ws_allowed_origins, &headers) {
        return json_error(
            ErrorCode::Forbidden,
            "this page's origin may not open a WebSocket to this gateway (see --ws-allowed-origins)",
        );
    }
    let token = query.token.or_else(|| bearer(&headers));
    let access = state.auth.authenticate(token.as_deref()).await;
    let max_frame = state.config.max_frame_bytes as usize;
    upgrade
        .protocols([SUBPROTOCOL])
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(
            WRITE_BUFFER_BYTES + max_frame.max(state.config.outbound_queue_bytes as usize),
        )
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| {
            let (sink, stream) = socket.split();
            let tracker = state.tracker.clone();
            let handshake = Handshake {
                access,
                peer: Some(peer),
            };
            tracker.track_future(connection::serve(sink, stream, state, handshake, permit))
        })
}

/// The credential of an `Authorization: Bearer` header.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_string())
}

/// Browsers always send `Origin` on a WebSocket upgrade; servers and CLIs usually do
/// not, and they are not what an origin allowlist protects against.
fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    if allowed.is_empty() {
        return true;
    }
    match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        None => true,
        Some(Ok(origin)) => allowed.iter().any(|a| a.trim_end_matches('/') == origin),
        Some(Err(_)) => false,
    }
}

async fn health() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.shutdown.is_draining() {
        return json_error(ErrorCode::Unavailable, "draining");
    }
    match state.backplane.ping().await {
        Ok(()) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: backplane unreachable");
            json_error(ErrorCode::Unavailable, "the backplane is unreachable")
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
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
