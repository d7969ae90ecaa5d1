//! A session over HTTP: `POST /v1/sessions/{id}/messages` (a human operator's message:
//! handoff) and `GET /v1/sessions/{id}/events` (its retained history).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_protocol::{EventBody, EventFrame, Role};
use utoipa::ToSchema;

use super::{check_len, refused, session_record};
use crate::access::policy;
use crate::conversations::TranscriptReader;
use crate::error::ClientError;
use crate::http::credentials::Authed;
use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::ids::{new_id, session_stream};
use crate::state::AppState;

/// Most events one history request returns.
const MAX_HISTORY_EVENTS: usize = 1000;

/// A human operator's message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorMessage {
    /// 1 to `--max-text-chars` characters.
    pub text: String,
    /// Shown as the message's author (default: the caller's name).
    #[serde(default)]
    pub author: Option<String>,
}

/// The appended message.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageResponse {
    pub message_id: String,
    pub seq: u64,
}

/// Post an operator's message into a session (human handoff; no agent turn starts).
#[utoipa::path(post, path = "/v1/sessions/{session_id}/messages", request_body = OperatorMessage,
    params(("session_id" = String, Path, description = "the session")),
    responses((status = 202, body = MessageResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn operator_message(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(session_id): Path<String>,
    ApiJson(request): ApiJson<OperatorMessage>,
) -> Result<(StatusCode, Json<MessageResponse>), ApiError> {
    let operator = policy::operator(&caller).map_err(refused)?;
    let record = session_record(&state, &session_id).await?;
    policy::post_operator_message(&operator, record.as_ref()).map_err(refused)?;
    check_len("text", &request.text, state.intake.max_text_chars())?;
    if let Some(author) = &request.author {
        check_len("author", author, 128)?;
    }
    let message_id = new_id("m");
    let body = EventBody::Message {
        message_id: message_id.clone(),
        role: Role::Operator,
        text: request.text,
        author: Some(request.author.unwrap_or(operator.name)),
    };
    let stream = session_stream(&session_id).map_err(|e| ApiError(e.into()))?;
    let event = state
        .events
        .append(&stream, body)
        .await
        .map_err(ClientError::from)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageResponse {
            message_id,
            seq: event.seq,
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only events with a larger `seq` (default: all retained).
    pub after_seq: Option<u64>,
    /// At most this many events (default and maximum 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// A session's events after `after_seq`: older ones from its transcript (no deltas),
/// then the backplane's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryResponse {
    pub session_id: String,
    /// The stream's newest `seq`.
    pub last_seq: u64,
    /// True when events after `after_seq` are missing: the history dropped them and
    /// the transcript does not keep them.
    pub trimmed: bool,
    /// Events exactly as sockets receive them, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
}

/// Read a session's retained history.
#[utoipa::path(get, path = "/v1/sessions/{session_id}/events",
    params(("session_id" = String, Path, description = "the session"), HistoryQuery),
    responses((status = 200, body = HistoryResponse), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn history(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(session_id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<HistoryResponse>, ApiError> {
    let record = session_record(&state, &session_id).await?;
    policy::read_history(&caller, record.as_ref()).map_err(refused)?;
    let stream = session_stream(&session_id).map_err(|e| ApiError(e.into()))?;
    let limit = query
        .limit
        .unwrap_or(MAX_HISTORY_EVENTS)
        .clamp(1, MAX_HISTORY_EVENTS);
    let replay = state
        .backplane
        .read(&stream, query.after_seq, limit)
        .await
        .map_err(ClientError::from)?;
    // Older than the history: the transcript, as joins replay it.
    let after = query.after_seq.unwrap_or(0);
    let first = replay.events.first().map(|e| e.seq);
    let mut trimmed = replay.trimmed;
    let mut older = Vec::new();
    if TranscriptReader::needed(&stream, after, first, replay.last_seq) {
        older = TranscriptReader::new(state.conversations.store().clone())
            .page(&stream, after, first)
            .await
            .map_err(ClientError::from)?;
        trimmed = false;
    }
    let last_seq = replay.last_seq.max(older.last().map_or(0, |e| e.seq));
    let events = older
        .iter()
        .chain(replay.events.iter())
        .take(limit)
        .filter_map(|event| serde_json::to_value(EventFrame::new(&stream, event)).ok())
        .collect();
    Ok(Json(HistoryResponse {
        session_id,
        last_seq,
        trimmed,
        events,
    }))
}
