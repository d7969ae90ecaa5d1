//! A session's turns and tool calls over HTTP (docs/protocol.md §6.15): read a
//! turn or a message's reply, cancel a turn (`turn.cancel`), decide a tool call (`tool.decide`). The caller
//! must be one who may join the session (`policy::http_member`); the rest is decided
//! exactly as for the frames.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_protocol::{ErrorCode, Source, TurnEndCode, Usage};
use utoipa::ToSchema;

use super::{refused, session_record};
use crate::access::AccessContext;
use crate::access::policy;
use crate::assistant::replies::{Progress, TurnEnded, reply_progress, turn_progress};
use crate::conversations::TranscriptReader;
use crate::error::ClientError;
use crate::http::credentials::SessionCaller;
use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::ids::session_stream;
use crate::state::AppState;

/// The principal `caller` acts as in `session_id`, when it may act there.
async fn member(
    state: &AppState,
    caller: &SessionCaller,
    session_id: &str,
) -> Result<AccessContext, ApiError> {
    let record = session_record(state, session_id).await?;
    let access = policy::http_member(
        &caller.caller,
        record.as_ref(),
        caller.session_key.as_deref(),
    )
    .map_err(refused)?;
    Ok(access.clone())
}

/// The fields of a `turn.end` event besides `turn_id` and `status`: present once the
/// turn ended.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct TurnEndFields {
    /// The `seq` of the `turn.end` event.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub seq: Option<u64>,
    /// The whole reply (partial when not completed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub text: Option<String>,
    /// Token counts, as the model reported them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<Object>)]
    pub usage: Option<Usage>,
    /// The documents the reply drew on (`doc_id`, `title`, `uri`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<Vec<Object>>)]
    pub sources: Option<Vec<Source>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<String>,
    /// Why a `failed` turn failed, where it matters (`replica_lost`,
    /// `rate_limited`, `budget_exhausted`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<String>)]
    pub code: Option<TurnEndCode>,
    /// With `replica_lost`: whether a new turn answers the same message.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub retrying: Option<bool>,
    /// The named assistant that answered (docs/protocol.md §6.19).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub assistant: Option<String>,
}

impl From<TurnEnded> for TurnEndFields {
    fn from(end: TurnEnded) -> TurnEndFields {
        TurnEndFields {
            seq: Some(end.seq),
            text: Some(end.text),
            usage: end.usage,
            sources: end.sources,
            error: end.error,
            code: end.code,
            retrying: end.retrying,
            assistant: end.assistant,
        }
    }
}

/// Where a turn stands: `running`, or its `turn.end`'s fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct TurnState {
    pub session_id: String,
    pub turn_id: String,
    /// `running`, `completed`, `cancelled` or `failed`.
    pub status: String,
    /// Once ended, the rest of the `turn.end` event.
    #[serde(flatten)]
    pub end: TurnEndFields,
}

impl TurnState {
    pub fn of(session_id: String, turn_id: String, progress: Progress) -> TurnState {
        match progress {
            Progress::Ended(end) => TurnState {
                session_id,
                turn_id,
                status: end.status.as_str().to_string(),
                end: end.into(),
            },
            Progress::Running { .. } | Progress::Queued => TurnState {
                session_id,
                turn_id,
                status: "running".into(),
                end: TurnEndFields::default(),
            },
        }
    }
}

fn no_turn(session_id: &str, turn_id: &str) -> ApiError {
    ApiError(ClientError::new(
        ErrorCode::NotFound,
        format!("no turn {turn_id} is known in session {session_id}"),
    ))
}

/// A turn: `running`, or how it ended (the `turn.end` fields). Turns are found in
/// the session's retained history and, once the history dropped them, in its
/// transcript.
#[utoipa::path(get, path = "/v1/sessions/{session_id}/turns/{turn_id}",
    params(("session_id" = String, Path, description = "the session"),
           ("turn_id" = String, Path, description = "the turn (`turn.start`'s `turn_id`)"),
           ("Switchboard-Session-Key" = Option<String>, Header, description = "an anonymous session's key")),
    responses((status = 200, body = TurnState), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ()))]
pub async fn get_turn(
    State(state): State<AppState>,
    caller: SessionCaller,
    Path((session_id, turn_id)): Path<(String, String)>,
) -> Result<Json<TurnState>, ApiError> {
    member(&state, &caller, &session_id).await?;
    if turn_id.is_empty() || turn_id.chars().count() > switchboard_protocol::MAX_FRAME_ID_CHARS {
        return Err(no_turn(&session_id, &turn_id));
    }
    let stream = session_stream(&session_id).map_err(|e| ApiError(e.into()))?;
    let running = state.turns.running_turn(&session_id).await?;
    let transcripts = TranscriptReader::new(state.conversations.store().clone());
    let progress = turn_progress(
        state.backplane.as_ref(),
        &transcripts,
        &stream,
        &turn_id,
        running.as_deref(),
    )
    .await?
    .ok_or_else(|| no_turn(&session_id, &turn_id))?;
    Ok(Json(TurnState::of(session_id, turn_id, progress)))
}

/// Where the reply to a message stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplyState {
    pub session_id: String,
    pub message_id: String,
    /// The turn answering it (absent while `queued`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub turn_id: Option<String>,
    /// `queued` (no turn answers it yet), `running`, `completed`, `cancelled` or
    /// `failed`.
    pub status: String,
    /// Once ended, the rest of the `turn.end` event.
    #[serde(flatten)]
    pub end: TurnEndFields,
}

/// The reply to a message: `queued` (waiting for its turn), `running` with the
/// turn's id, or how the turn ended. Read from the session's retained history: a
/// message it no longer holds is `404`.
#[utoipa::path(get, path = "/v1/sessions/{session_id}/messages/{message_id}/reply",
    params(("session_id" = String, Path, description = "the session"),
           ("message_id" = String, Path, description = "the message (`message_id` of its 202)"),
           ("Switchboard-Session-Key" = Option<String>, Header, description = "an anonymous session's key")),
    responses((status = 200, body = ReplyState), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ()))]
pub async fn get_reply(
    State(state): State<AppState>,
    caller: SessionCaller,
    Path((session_id, message_id)): Path<(String, String)>,
) -> Result<Json<ReplyState>, ApiError> {
    member(&state, &caller, &session_id).await?;
    let stream = session_stream(&session_id).map_err(|e| ApiError(e.into()))?;
    let progress = reply_progress(state.backplane.as_ref(), &stream, &message_id)
        .await?
        .ok_or_else(|| {
            ApiError(ClientError::new(
                ErrorCode::NotFound,
                format!(
                    "no message {message_id} is in the retained history of session {session_id}"
                ),
            ))
        })?;
    let (turn_id, status, end) = match progress {
        Progress::Queued => (None, "queued".to_string(), TurnEndFields::default()),
        Progress::Running { turn_id } => (
            Some(turn_id),
            "running".to_string(),
            TurnEndFields::default(),
        ),
        Progress::Ended(end) => (
            Some(end.turn_id.clone()),
            end.status.as_str().to_string(),
            end.into(),
        ),
    };
    Ok(Json(ReplyState {
        session_id,
        message_id,
        turn_id,
        status,
        end,
    }))
}

/// The cancel that was asked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelAccepted {
    pub session_id: String,
    pub turn_id: String,
}

/// Cancel a running turn (`turn.cancel`), wherever it runs. It ends with a `turn.end`
/// of status `cancelled` that every member sees (`GET .../turns/{turn_id}` shows it).
#[utoipa::path(post, path = "/v1/sessions/{session_id}/turns/{turn_id}/cancel",
    params(("session_id" = String, Path, description = "the session"),
           ("turn_id" = String, Path, description = "the running turn"),
           ("Switchboard-Session-Key" = Option<String>, Header, description = "an anonymous session's key")),
    responses((status = 202, body = CancelAccepted), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ()))]
pub async fn cancel_turn(
    State(state): State<AppState>,
    caller: SessionCaller,
    Path((session_id, turn_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<CancelAccepted>), ApiError> {
    member(&state, &caller, &session_id).await?;
    if !state.turns.cancel_anywhere(&session_id, &turn_id).await? {
        return Err(ApiError(ClientError::new(
            ErrorCode::NotFound,
            format!("no turn {turn_id} is running in session {session_id}"),
        )));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(CancelAccepted {
            session_id,
            turn_id,
        }),
    ))
}

/// `approve` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Deny,
}

/// A decision on a tool call: `{"approved": true}` as in the `tool.decide` frame, or
/// `{"decision": "approve"}`; exactly one of the two.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolDecisionBody {
    #[serde(default)]
    #[schema(nullable = false)]
    pub approved: Option<bool>,
    #[serde(default)]
    #[schema(nullable = false)]
    pub decision: Option<Decision>,
}

/// The decision taken: the `tool.decided` frame's fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolDecided {
    pub session_id: String,
    pub call_id: String,
    pub approved: bool,
}

/// Approve or deny a tool call waiting for a decision (`tool.decide`). Who may: the
/// member whose message asked; an operator or admin of the org whose groups include
/// all the asker's; in an anonymous session, any key holder.
#[utoipa::path(post, path = "/v1/sessions/{session_id}/tool-calls/{call_id}/decision",
    request_body = ToolDecisionBody,
    params(("session_id" = String, Path, description = "the session"),
           ("call_id" = String, Path, description = "the `tool.request`'s `call_id`"),
           ("Switchboard-Session-Key" = Option<String>, Header, description = "an anonymous session's key")),
    responses((status = 200, body = ToolDecided), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []), ()))]
pub async fn decide_tool_call(
    State(state): State<AppState>,
    caller: SessionCaller,
    Path((session_id, call_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ToolDecisionBody>,
) -> Result<Json<ToolDecided>, ApiError> {
    let access = member(&state, &caller, &session_id).await?;
    let approved = match (body.approved, body.decision) {
        (Some(approved), None) => approved,
        (None, Some(decision)) => decision == Decision::Approve,
        _ => {
            return Err(ApiError(ClientError::bad_request(
                "send exactly one of \"approved\" (true or false) and \"decision\" (\"approve\" or \"deny\")",
            )));
        }
    };
    state
        .approvals
        .decide(&access, &session_id, &call_id, approved)
        .await?;
    Ok(Json(ToolDecided {
        session_id,
        call_id,
        approved,
    }))
}
