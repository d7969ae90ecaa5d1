//! `GET /ws`: everything HTTP can tell is read here, before the upgrade —
//! credentials, peer, origin, limits (per client: `http::visitors`; per process:
//! `--max-connections`) and the connection permit — then the socket is handed to
//! `connection::serve`. Checking the credentials gets `--ws-handshake-timeout`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use futures_util::{FutureExt, StreamExt};
use serde::Deserialize;
use switchboard_protocol::{ErrorCode, SUBPROTOCOL};

use super::client_ip::ClientIp;
use super::credentials::bearer;
use super::error::json_error;
use super::visitors::{Refusal, WebSocketGate};
use crate::connection::{self, Handshake};
use crate::state::AppState;

/// Bytes the WebSocket codec reads per socket read. The codec allocates this buffer
/// up front, zero-fills it on its first read and keeps it for the connection's life,
/// so every idle connection pays it in full: the library default (128 KiB) would
/// dominate, and 2 KiB was a quarter of an idle connection (docs/benchmarks.md).
/// Client frames are small JSON commands, most of them within one read; a larger one
/// takes several. A frame over `--max-frame-bytes` is refused after its header, and
/// the lingering close (`http::lingering_close`) reads the rest, so the peer still gets
/// close 1009 rather than a reset.
const READ_BUFFER_BYTES: usize = 256;
/// Bytes the codec gathers before writing to the socket.
const WRITE_BUFFER_BYTES: usize = 8 * 1024;

#[derive(Deserialize)]
pub struct WsQuery {
    pub token: Option<String>,
}

/// Everything HTTP can tell is read here, before the upgrade: credentials, peer,
/// limits and the connection permit.
#[allow(clippy::too_many_arguments)]
pub async fn upgrade(
    State(state): State<AppState>,
    Extension(websockets): Extension<WebSocketGate>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ClientIp(client): ClientIp,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let (client_permit, permit) = match websockets.admit_member(
        peer.ip(),
        client,
        &state.connection_limit,
        &state.metrics.connections_refused,
    ) {
        Ok(places) => places,
        Err(refusal) => return refusal.response(),
    };
    if !origin_allowed(&state.config.ws_allowed_origins, &headers) {
        return json_error(
            ErrorCode::Forbidden,
            "this page's origin may not open a WebSocket to this gateway (see --ws-allowed-origins)",
        );
    }
    // An `Authorization` header that cannot be used is refused even beside a
    // `?token=`: never ignored, which would make the visitor anonymous.
    let token = bearer(&headers).map(|header_token| query.token.or(header_token));
    let handshake_timeout = state.config.http_timeouts.ws_handshake_timeout;
    let checked = tokio::time::timeout(handshake_timeout, async {
        match token {
            Ok(token) => state.auth.load_full().authenticate(token.as_deref()).await,
            Err(refused) => Err(refused),
        }
    })
    .await;
    let Ok(access) = checked else {
        state
            .metrics
            .http_timeouts
            .with_label_values(&["ws_handshake"])
            .inc();
        return Refusal {
            limit: "ws_handshake",
            code: ErrorCode::Unavailable,
            message: "checking this connection's credentials took longer than \
                      --ws-handshake-timeout; retry later",
            retry_after: Duration::from_secs(1),
        }
        .response();
    };
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
                client: Some(client),
            };
            // Built here, not inside an `async` block: a block would keep its own copy
            // of every argument beside the task it awaits (rust-lang/rust#62958),
            // and every idle connection carries this future for its whole life.
            let task = connection::serve(sink, stream, state, handshake, permit);
            // The client's place is held as long as its socket task runs.
            tracker.track_future(task.map(move |()| drop(client_permit)))
        })
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
