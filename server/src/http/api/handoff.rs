//! Human handoff over HTTP (docs/protocol.md §6.13): the operator inbox, asking for a
//! person, claiming and releasing a conversation, and an org's handoff settings. The
//! same operations and answers as the WebSocket frames, decided by the same policy;
//! they need a token (a person acts), except the settings, which admin keys may set.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use switchboard_protocol::handoff::{
    Handoff, HandoffBy, HandoffSettings, Inbox, MAX_WAITING_MESSAGE_CHARS,
};
use utoipa::{IntoParams, ToSchema};

use super::{OrgQuery, administered_org, check_len, refused, session_record};
use crate::access::{AccessContext, Caller, policy};
use crate::error::ClientError;
use crate::http::credentials::Authed;
use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::records::sessions::SessionRecord;
use crate::state::AppState;

/// How many inbox entries (`GET /v1/inbox`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// 1 to 100 (default 100).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
}

/// Why a person is asked for (`POST …/handoff/request`).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct HandoffRequestBody {
    /// At most 500 characters are kept.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The person acting: handoff needs a token.
fn person(caller: &Caller) -> Result<&AccessContext, ApiError> {
    match caller {
        Caller::Token(access) => Ok(access),
        _ => Err(ApiError(ClientError::forbidden(
            "handoff is done by people: call with a user's token, not an API key",
        ))),
    }
}

/// The session, when it exists and `who` may see it (its owner or staff of its org).
async fn visible_session(
    state: &AppState,
    who: &AccessContext,
    session_id: &str,
) -> Result<SessionRecord, ApiError> {
    let record = session_record(state, session_id).await?;
    let Some(record) = record else {
        return Err(ApiError(ClientError::session_not_found()));
    };
    policy::join(who, &record, None).map_err(refused)?;
    Ok(record)
}

/// The org's conversations waiting for or held by a person, the longest first.
#[utoipa::path(get, path = "/v1/inbox", params(InboxQuery),
    responses((status = 200, body = Inbox), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn inbox(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(query): Query<InboxQuery>,
) -> Result<Json<Inbox>, ApiError> {
    let who = person(&caller)?;
    policy::read_inbox(who).map_err(refused)?;
    Ok(Json(state.handoff.inbox(&who.org_id, query.limit).await?))
}

/// Ask for a person (the session's owner, or staff on their behalf).
#[utoipa::path(post, path = "/v1/sessions/{session_id}/handoff/request",
    params(("session_id" = String, Path, description = "the session")),
    request_body = HandoffRequestBody,
    responses((status = 200, body = Handoff), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn request(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(session_id): Path<String>,
    ApiJson(body): ApiJson<HandoffRequestBody>,
) -> Result<Json<Handoff>, ApiError> {
    let who = person(&caller)?;
    let session = visible_session(&state, who, &session_id).await?;
    let handoff = state
        .handoff
        .request(&session, HandoffBy::Customer, body.reason.as_deref())
        .await?;
    Ok(Json(handoff))
}

/// Take the conversation (staff); `409` when another operator holds it.
#[utoipa::path(post, path = "/v1/sessions/{session_id}/handoff/claim",
    params(("session_id" = String, Path, description = "the session")),
    responses((status = 200, body = Handoff), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn claim(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(session_id): Path<String>,
) -> Result<Json<Handoff>, ApiError> {
    let who = person(&caller)?;
    let session = visible_session(&state, who, &session_id).await?;
    let handoff = state
        .handoff
        .claim(who, &session, state.turns.as_ref())
        .await?;
    Ok(Json(handoff))
}

/// Give the conversation back to the assistant (its holder, or an admin).
#[utoipa::path(post, path = "/v1/sessions/{session_id}/handoff/release",
    params(("session_id" = String, Path, description = "the session")),
    responses((status = 200, body = Handoff), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn release(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(session_id): Path<String>,
) -> Result<Json<Handoff>, ApiError> {
    let who = person(&caller)?;
    let session = visible_session(&state, who, &session_id).await?;
    let handoff = state.handoff.release(who, &session).await?;
    Ok(Json(handoff))
}

/// An org's handoff settings (the defaults where it set none).
#[utoipa::path(get, path = "/v1/admin/handoff", params(OrgQuery),
    responses((status = 200, body = HandoffSettings), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_settings(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(org): Query<OrgQuery>,
) -> Result<Json<HandoffSettings>, ApiError> {
    let org = administered_org(&caller, org.org_id.as_deref())?;
    Ok(Json(state.handoff.settings(&org).await?))
}

/// Set an org's handoff settings.
#[utoipa::path(put, path = "/v1/admin/handoff", params(OrgQuery), request_body = HandoffSettings,
    responses((status = 200, body = HandoffSettings), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_settings(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(org): Query<OrgQuery>,
    ApiJson(body): ApiJson<HandoffSettings>,
) -> Result<Json<HandoffSettings>, ApiError> {
    let org = administered_org(&caller, org.org_id.as_deref())?;
    check_len(
        "waiting_message",
        &body.waiting_message,
        MAX_WAITING_MESSAGE_CHARS,
    )?;
    state.handoff.set_settings(&org, Some(&body)).await?;
    Ok(Json(state.handoff.settings(&org).await?))
}

/// Clear an org's handoff settings: the defaults apply again.
#[utoipa::path(delete, path = "/v1/admin/handoff", params(OrgQuery),
    responses((status = 200, body = HandoffSettings), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_settings(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(org): Query<OrgQuery>,
) -> Result<Json<HandoffSettings>, ApiError> {
    let org = administered_org(&caller, org.org_id.as_deref())?;
    state.handoff.set_settings(&org, None).await?;
    Ok(Json(state.handoff.settings(&org).await?))
}
