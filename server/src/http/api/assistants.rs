//! `/v1/admin/assistants`: an org's named assistants (docs/protocol.md §6.15).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::{OrgQuery, administered_org};
use crate::assistant::named::{AssistantSpec, NamedAssistant};
use crate::error::ClientError;
use crate::http::credentials::Authed;
use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;

/// An org's assistants, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantList {
    pub org_id: String,
    pub assistants: Vec<NamedAssistant>,
}

fn no_such_assistant(name: &str) -> ApiError {
    ApiError(ClientError::new(
        switchboard_protocol::ErrorCode::NotFound,
        format!("this org has no assistant named {name:?}"),
    ))
}

/// List an org's named assistants.
#[utoipa::path(get, path = "/v1/admin/assistants", params(OrgQuery),
    responses((status = 200, body = AssistantList), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_assistants(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(query): Query<OrgQuery>,
) -> Result<Json<AssistantList>, ApiError> {
    let org_id = administered_org(&caller, query.org_id.as_deref())?;
    let assistants = state.assistants.list(&org_id).await?;
    Ok(Json(AssistantList { org_id, assistants }))
}

/// Read one of an org's named assistants.
#[utoipa::path(get, path = "/v1/admin/assistants/{name}",
    params(("name" = String, Path, description = "the assistant's name"), OrgQuery),
    responses((status = 200, body = NamedAssistant), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_assistant(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(name): Path<String>,
    Query(query): Query<OrgQuery>,
) -> Result<Json<NamedAssistant>, ApiError> {
    let org_id = administered_org(&caller, query.org_id.as_deref())?;
    match state.assistants.get(&org_id, &name).await? {
        Some(assistant) => Ok(Json(assistant)),
        None => Err(no_such_assistant(&name)),
    }
}

/// Create or replace one of an org's named assistants. Sessions created with it use
/// the new definition from their next turn.
#[utoipa::path(put, path = "/v1/admin/assistants/{name}",
    params(("name" = String, Path, description = "1 to 64 of A-Z, a-z, 0-9, '_', '-'"), OrgQuery),
    request_body = AssistantSpec,
    responses((status = 200, body = NamedAssistant), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_assistant(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(name): Path<String>,
    Query(query): Query<OrgQuery>,
    ApiJson(spec): ApiJson<AssistantSpec>,
) -> Result<Json<NamedAssistant>, ApiError> {
    let org_id = administered_org(&caller, query.org_id.as_deref())?;
    Ok(Json(state.assistants.put(&org_id, &name, spec).await?))
}

/// Delete one of an org's named assistants. Its sessions stay, answered by the
/// default assistant from their next turn.
#[utoipa::path(delete, path = "/v1/admin/assistants/{name}",
    params(("name" = String, Path, description = "the assistant's name"), OrgQuery),
    responses((status = 204, description = "deleted"), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_assistant(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(name): Path<String>,
    Query(query): Query<OrgQuery>,
) -> Result<StatusCode, ApiError> {
    let org_id = administered_org(&caller, query.org_id.as_deref())?;
    if state.assistants.delete(&org_id, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_such_assistant(&name))
    }
}
