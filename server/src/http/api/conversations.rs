//! Conversations over HTTP (docs/protocol.md §6.12): list, look up, rename/archive,
//! delete and export a session; erase a user; an org's retention. The same
//! operations and answers as the WebSocket frames (`session.list`, …), decided by the
//! same policy.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use switchboard_protocol::conversation::{
    ErasureReport, ExportFormat, ListScope, SessionList, SessionListing, SessionState,
    SessionSummary, SessionUpdate,
};
use utoipa::{IntoParams, ToSchema};

use super::OrgQuery;
use crate::conversations::retention::Retention;
use crate::http::credentials::Authed;
use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;

/// Which conversations to list (`GET /v1/sessions`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `mine` (default: the token's user's) or `org` (operators, admins, admin keys).
    pub scope: Option<ListScope>,
    /// Only this user's (with `scope=mine`, someone else's is none).
    pub owner: Option<String>,
    /// `active` or `archived` (default: both).
    pub state: Option<SessionState>,
    /// Only conversations last active at or after this time (ms since the epoch).
    pub active_since: Option<u64>,
    /// Only conversations last active before this time (ms since the epoch).
    pub active_before: Option<u64>,
    /// `next_cursor` of the previous page, as it came: the cursor is opaque, and a
    /// string this server did not give is `400`.
    pub cursor: Option<String>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// The org (required with an admin key).
    pub org_id: Option<String>,
}

/// List conversations, newest activity first.
#[utoipa::path(get, path = "/v1/sessions", params(ListQuery),
    responses((status = 200, body = SessionListing), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_sessions(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(query): Query<ListQuery>,
) -> Result<Json<SessionListing>, ApiError> {
    let request = SessionList {
        scope: query.scope.unwrap_or_default(),
        owner: query.owner,
        state: query.state,
        active_since: query.active_since,
        active_before: query.active_before,
        cursor: query.cursor,
        limit: query.limit,
    };
    let listing = state
        .conversations
        .list(&caller, &request, query.org_id.as_deref())
        .await?;
    Ok(Json(listing))
}

/// One conversation's summary.
#[utoipa::path(get, path = "/v1/sessions/{session_id}",
    params(("session_id" = String, Path, description = "the session")),
    responses((status = 200, body = SessionSummary), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_session(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(session_id): Path<String>,
) -> Result<Json<SessionSummary>, ApiError> {
    let summary = state
        .conversations
        .summary(&caller, &session_id, false)
        .await?;
    Ok(Json(summary))
}

/// A rename, an archive or an unarchive.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionChangeBody {
    /// 1 to 200 characters, not only spaces (runs of spaces become one).
    #[serde(default)]
    #[schema(nullable = false, min_length = 1, max_length = 200, pattern = r"\S")]
    pub title: Option<String>,
    #[serde(default)]
    #[schema(nullable = false)]
    pub state: Option<SessionState>,
}

/// Rename, archive or unarchive a conversation (its owner or an admin).
#[utoipa::path(patch, path = "/v1/sessions/{session_id}", request_body = SessionChangeBody,
    params(("session_id" = String, Path, description = "the session")),
    responses((status = 200, body = SessionSummary), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_session(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(session_id): Path<String>,
    ApiJson(body): ApiJson<SessionChangeBody>,
) -> Result<Json<SessionSummary>, ApiError> {
    let update = SessionUpdate {
        session_id,
        title: body.title,
        state: body.state,
    };
    let summary = state.conversations.update(&caller, &update, false).await?;
    Ok(Json(summary))
}

/// The deleted conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedSession {
    pub session_id: String,
}

/// Delete a conversation for good: record, transcript, history (its owner or an admin).
#[utoipa::path(delete, path = "/v1/sessions/{session_id}",
    params(("session_id" = String, Path, description = "the session")),
    responses((status = 200, body = DeletedSession), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_session(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(session_id): Path<String>,
) -> Result<Json<DeletedSession>, ApiError> {
    state
        .conversations
        .delete(&caller, &session_id, false)
        .await?;
    Ok(Json(DeletedSession { session_id }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `json` (default) or `markdown`.
    pub format: Option<ExportFormat>,
}

/// Export a conversation's transcript as a file (JSON or Markdown).
#[utoipa::path(get, path = "/v1/sessions/{session_id}/export",
    params(("session_id" = String, Path, description = "the session"), ExportQuery),
    responses((status = 200, description = "the transcript: application/json or text/markdown", content_type = "application/json"),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export_session(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(session_id): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = query.format.unwrap_or_default();
    let content = state
        .conversations
        .export(&caller, &session_id, format, false)
        .await?;
    let (content_type, extension) = match format {
        ExportFormat::Json => ("application/json", "json"),
        ExportFormat::Markdown => ("text/markdown; charset=utf-8", "md"),
    };
    // The id passed `session_stream` (letters, digits, `_`, `-`): safe in a header.
    let disposition = format!("attachment; filename=\"{session_id}.{extension}\"");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        content,
    )
        .into_response())
}

/// Erase a user: every conversation they own in the org, with transcripts, history
/// and records (admins).
#[utoipa::path(post, path = "/v1/admin/users/{user_id}/erase",
    params(("user_id" = String, Path, description = "the user"), OrgQuery),
    responses((status = 200, body = ErasureReport), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn erase_user(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(user_id): Path<String>,
    Query(org): Query<OrgQuery>,
) -> Result<Json<ErasureReport>, ApiError> {
    let report = state
        .conversations
        .erase_user(&caller, &user_id, org.org_id.as_deref())
        .await?;
    Ok(Json(report))
}

/// An org's retention.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetentionBody {
    /// Days a conversation is kept after its last activity (1 to 36,500).
    #[schema(minimum = 1, maximum = 36500)]
    #[serde(deserialize_with = "switchboard_protocol::whole_number::u32")]
    pub retention_days: u32,
    /// In answers: whether the org set it (else it is `--retention-days`).
    #[serde(default)]
    pub own: bool,
}

impl From<Retention> for RetentionBody {
    fn from(retention: Retention) -> RetentionBody {
        RetentionBody {
            retention_days: retention.days,
            own: retention.own,
        }
    }
}

/// An org's retention.
#[utoipa::path(get, path = "/v1/admin/retention", params(OrgQuery),
    responses((status = 200, body = RetentionBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_retention(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(org): Query<OrgQuery>,
) -> Result<Json<RetentionBody>, ApiError> {
    let retention = state
        .conversations
        .retention(&caller, org.org_id.as_deref())
        .await?;
    Ok(Json(RetentionBody::from(retention)))
}

/// Set an org's retention.
#[utoipa::path(put, path = "/v1/admin/retention", params(OrgQuery), request_body = RetentionBody,
    responses((status = 200, body = RetentionBody), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_retention(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(org): Query<OrgQuery>,
    ApiJson(body): ApiJson<RetentionBody>,
) -> Result<Json<RetentionBody>, ApiError> {
    let retention = state
        .conversations
        .set_retention(&caller, org.org_id.as_deref(), Some(body.retention_days))
        .await?;
    Ok(Json(RetentionBody::from(retention)))
}

/// Clear an org's retention: `--retention-days` applies again.
#[utoipa::path(delete, path = "/v1/admin/retention", params(OrgQuery),
    responses((status = 200, body = RetentionBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_retention(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(org): Query<OrgQuery>,
) -> Result<Json<RetentionBody>, ApiError> {
    let retention = state
        .conversations
        .set_retention(&caller, org.org_id.as_deref(), None)
        .await?;
    Ok(Json(RetentionBody::from(retention)))
}
