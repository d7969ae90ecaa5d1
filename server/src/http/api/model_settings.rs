//! `/v1/admin/model-settings`: an org's model, system prompt, sampling and tools.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::{OrgQuery, administered_org};
use crate::assistant::settings::OrgModelSettings;
use crate::http::credentials::Authed;
use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;

/// An org's model settings, with the org they belong to.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelSettingsBody {
    pub org_id: String,
    /// The org's own settings (empty: it uses the gateway's defaults).
    pub settings: OrgModelSettings,
}

/// An org's model settings (what it set; unset fields use the gateway's flags).
#[utoipa::path(get, path = "/v1/admin/model-settings", params(OrgQuery),
    responses((status = 200, body = ModelSettingsBody), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_model_settings(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(query): Query<OrgQuery>,
) -> Result<Json<ModelSettingsBody>, ApiError> {
    let org_id = administered_org(&caller, query.org_id.as_deref())?;
    let settings = state.model_settings.get(&org_id).await?.unwrap_or_default();
    Ok(Json(ModelSettingsBody { org_id, settings }))
}

/// Replace an org's model settings: model, system prompt, sampling, tools. Used by
/// every replica from the next turn on.
#[utoipa::path(put, path = "/v1/admin/model-settings", params(OrgQuery),
    request_body = OrgModelSettings,
    responses((status = 200, body = ModelSettingsBody), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_model_settings(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(query): Query<OrgQuery>,
    ApiJson(settings): ApiJson<OrgModelSettings>,
) -> Result<Json<ModelSettingsBody>, ApiError> {
    let org_id = administered_org(&caller, query.org_id.as_deref())?;
    state.model_settings.put(&org_id, &settings).await?;
    Ok(Json(ModelSettingsBody { org_id, settings }))
}

/// Forget an org's model settings; it uses the gateway's defaults again.
#[utoipa::path(delete, path = "/v1/admin/model-settings", params(OrgQuery),
    responses((status = 204, description = "deleted (or there were none)"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_model_settings(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(query): Query<OrgQuery>,
) -> Result<StatusCode, ApiError> {
    let org_id = administered_org(&caller, query.org_id.as_deref())?;
    state.model_settings.delete(&org_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
