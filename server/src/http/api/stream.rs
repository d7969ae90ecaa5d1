//! `GET /v1/sessions/{id}/stream`: a session's events as `text/event-stream`
//! (docs/protocol.md §6.16). Everything HTTP can tell is checked here — limits,
//! credentials, `Last-Event-ID`, who may read the session — then the stream is a
//! member of the session like a WebSocket that joined it (`http::sse`).

use std::net::SocketAddr;

use axum::Extension;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use switchboard_backplane::Seq;
use switchboard_protocol::ErrorCode;

use super::{refused, session_record};
use crate::access::policy;
use crate::error::ClientError;
use crate::http::client_ip::ClientIp;
use crate::http::credentials::{bearer, session_key};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::sse::body::Feed;
use crate::http::sse::member::{self, Opening};
use crate::http::visitors::WebSocketGate;
use crate::ids::session_stream;
use crate::state::AppState;

/// The header a reconnecting `EventSource` sends: the `id` (`seq`) of the last event
/// it received.
const LAST_EVENT_ID: &str = "last-event-id";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Replay the events after this `seq` first (`Last-Event-ID` wins when both are sent).
    pub after_seq: Option<u64>,
    /// A JWT, for clients that cannot set `Authorization` (a browser's `EventSource`);
    /// as `/ws` accepts it. Never logged.
    pub token: Option<String>,
    /// An anonymous session's key, for clients that cannot set `Switchboard-Session-Key`.
    pub session_key: Option<String>,
}

/// Stream a session's events (Server-Sent Events): each event is `id: <seq>`,
/// `event: <type>`, `data: <the event frame a WebSocket member receives>`. The stream
/// opens with `session.joined` and the events after `Last-Event-ID` (or `after_seq`),
/// then continues live; `: ping` every 15 s; it ends with a `close` event (drain:
/// 1012 after `goaway`; token expiry: 4401 after an `error`; a slow reader: 4008).
#[utoipa::path(get, path = "/v1/sessions/{session_id}/stream",
    params(("session_id" = String, Path, description = "the session"),
           ("Last-Event-ID" = Option<u64>, Header, description = "resume after this seq"),
           ("Switchboard-Session-Key" = Option<String>, Header, description = "an anonymous session's key"),
           StreamQuery),
    responses((status = 200, description = "the session's events", content_type = "text/event-stream", body = String),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("bearer" = []), ()))]
#[allow(clippy::too_many_arguments)]
pub async fn stream(
    State(state): State<AppState>,
    Extension(gate): Extension<WebSocketGate>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ClientIp(client): ClientIp,
    Path(session_id): Path<String>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // An SSE stream holds a place like a WebSocket: per client and in the process.
    let (client_permit, process_permit) = match gate.admit_member(
        peer.ip(),
        client,
        &state.connection_limit,
        &state.metrics.connections_refused,
    ) {
        Ok(places) => places,
        Err(refusal) => return Ok(refusal.response()),
    };
    // As on `/ws`: an unusable `Authorization` header is refused even beside `?token=`.
    let credential = bearer(&headers)?.or(query.token);
    let key = session_key(&headers)?.or(query.session_key);
    let patience = state.config.http_timeouts.ws_handshake_timeout;
    let auth = state.auth.load_full();
    let checking = auth.stream_caller(credential.as_deref(), key.is_some());
    let (caller, expires_at) = tokio::time::timeout(patience, checking)
        .await
        .map_err(|_| {
            ClientError::new(
                ErrorCode::Unavailable,
                "checking this request's credentials took too long; retry later",
            )
        })??;
    let after = last_event_id(&headers)?.or(query.after_seq);
    let record = session_record(&state, &session_id).await?;
    policy::read_stream(&caller, record.as_ref(), key.as_deref()).map_err(refused)?;
    let stream = session_stream(&session_id).map_err(|e| ApiError(e.into()))?;
    let opening = Opening {
        assistant: record.as_ref().and_then(|r| r.assistant.clone()),
        stream,
        after,
        expires_at,
        process_permit,
        client_permit,
    };
    let feed: Feed = member::open(state, opening).await?;
    Ok(feed.into_response())
}

/// `Last-Event-ID`: the `seq` to resume after (absent or empty: none).
fn last_event_id(headers: &HeaderMap) -> Result<Option<Seq>, ClientError> {
    let Some(value) = headers.get(LAST_EVENT_ID) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("\u{fffd}").trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<Seq>().map(Some).map_err(|_| {
        ClientError::bad_request(
            "Last-Event-ID must be the seq of an event this stream sent (a non-negative integer)",
        )
    })
}
