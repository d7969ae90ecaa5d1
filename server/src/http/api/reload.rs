//! `POST /v1/admin/reload`: reload the configuration now, as SIGHUP does.

use axum::Json;
use axum::extract::State;

use crate::access::{Caller, policy};
use crate::error::ClientError;
use crate::http::credentials::Authed;
use crate::http::error::{ApiError, ErrorBody};
use crate::reload::{Reloaded, Trigger, reload};
use crate::state::AppState;

/// Read the configuration again (command line, environment, `--settings-file` and the
/// files they name), validate it as at boot, and apply what can change live: API
/// keys, JWT and JWKS settings, the system prompt, sampling defaults, `--tools-file`
/// and limits on what comes next (docs/operations.md). Open connections stay open.
/// A configuration that does not validate is rejected with `400` naming the setting,
/// and the running one stays whole.
#[utoipa::path(post, path = "/v1/admin/reload",
    responses((status = 200, body = Reloaded, description = "applied: what changed, and what waits for a restart"),
              (status = 400, body = ErrorBody, description = "rejected: the running configuration is unchanged"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reload_configuration(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<Reloaded>, ApiError> {
    policy::reload_configuration(&caller)
        .map_err(|r| ApiError(r.into_error(ClientError::session_not_found)))?;
    let by = match &caller {
        Caller::AdminKey { name } => format!("admin key {name}"),
        Caller::Token(access) => format!(
            "token {}/{}",
            access.org_id,
            access.user_id.as_deref().unwrap_or("-")
        ),
        Caller::PublisherKey { name } => format!("publisher key {name}"),
    };
    match reload(&state, Trigger::Admin { by }).await {
        Ok(reloaded) => Ok(Json(reloaded)),
        Err(rejected) => Err(ApiError(ClientError::bad_request(format!(
            "the configuration was not reloaded: {}",
            rejected.reason
        )))),
    }
}
