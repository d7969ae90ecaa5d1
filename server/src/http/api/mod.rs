//! The `/v1` HTTP API (docs/protocol.md §6): publishing into streams, sessions
//! (open, send, cancel a turn, decide a tool call, read a turn), synchronous chat,
//! operator messages (human handoff), session history, conversations (list, rename, delete,
//! export, erase, retention), knowledge-base, model-settings, named-assistant and webhook
//! administration. `docs/http-api.md` is the guide for backends; `/openapi.json`
//! describes it for machines ([`openapi`]).
//!
//! Handlers authenticate with [`Authed`](super::credentials::Authed) (before the body
//! is read) and ask `access::policy` what the caller may do: API keys are
//! deployment-wide, JWT roles count within the token's own org, and a session of
//! another org is `not_found`, exactly like one that does not exist.

pub mod assistants;
pub mod chat;
pub mod conversations;
pub mod documents;
pub mod handoff;
pub mod model_settings;
pub mod openapi;
pub mod publish;
pub mod reload;
pub mod sessions;
pub mod stream;
pub mod turns;
pub mod webhooks;

use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::body_limit::body_limit;
use super::error::ApiError;
use crate::access::Caller;
use crate::access::policy::{self, Refusal};
use crate::error::ClientError;
use crate::ids::session_stream;
use crate::records::sessions::SessionRecord;
use crate::state::AppState;

/// Largest document body (`POST /v1/admin/documents`): 1 MiB of text plus the rest.
const MAX_DOCUMENT_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Largest body of a rename, a retention setting or a webhook registration.
const MAX_SMALL_BODY_BYTES: usize = 16 * 1024;
/// Largest model-settings body (a long system prompt and a few dozen tools).
const MAX_SETTINGS_BODY_BYTES: usize = 256 * 1024;

/// The `/v1` routes, with body limits and CORS for `--cors-origins`.
pub fn router(state: &AppState) -> anyhow::Result<Router<AppState>> {
    let publish_limit = state.config.max_publish_bytes as usize;
    let router = Router::new()
        .route(
            "/v1/publish",
            body_limit(post(publish::publish), publish_limit),
        )
        .route(
            "/v1/sessions/{session_id}/messages",
            body_limit(post(sessions::post_message), publish_limit),
        )
        .route("/v1/sessions/{session_id}/events", get(sessions::history))
        .route("/v1/sessions/{session_id}/stream", get(stream::stream))
        .route(
            "/v1/sessions",
            body_limit(
                get(conversations::list_sessions).post(sessions::create_session),
                MAX_SMALL_BODY_BYTES,
            ),
        )
        .route("/v1/chat", body_limit(post(chat::chat), publish_limit))
        .route(
            "/v1/sessions/{session_id}/turns/{turn_id}",
            get(turns::get_turn),
        )
        .route(
            "/v1/sessions/{session_id}/messages/{message_id}/reply",
            get(turns::get_reply),
        )
        .route(
            "/v1/sessions/{session_id}/turns/{turn_id}/cancel",
            post(turns::cancel_turn),
        )
        .route(
            "/v1/sessions/{session_id}/tool-calls/{call_id}/decision",
            body_limit(post(turns::decide_tool_call), MAX_SMALL_BODY_BYTES),
        )
        .route(
            "/v1/sessions/{session_id}",
            body_limit(
                get(conversations::get_session)
                    .patch(conversations::update_session)
                    .delete(conversations::delete_session),
                MAX_SMALL_BODY_BYTES,
            ),
        )
        .route(
            "/v1/sessions/{session_id}/export",
            get(conversations::export_session),
        )
        .route(
            "/v1/admin/users/{user_id}/erase",
            post(conversations::erase_user),
        )
        .route(
            "/v1/admin/retention",
            body_limit(
                get(conversations::get_retention)
                    .put(conversations::put_retention)
                    .delete(conversations::delete_retention),
                MAX_SMALL_BODY_BYTES,
            ),
        )
        .route("/v1/inbox", get(handoff::inbox))
        .route(
            "/v1/sessions/{session_id}/handoff/request",
            body_limit(post(handoff::request), MAX_SMALL_BODY_BYTES),
        )
        .route(
            "/v1/sessions/{session_id}/handoff/claim",
            post(handoff::claim),
        )
        .route(
            "/v1/sessions/{session_id}/handoff/release",
            post(handoff::release),
        )
        .route(
            "/v1/admin/handoff",
            body_limit(
                get(handoff::get_settings)
                    .put(handoff::put_settings)
                    .delete(handoff::delete_settings),
                MAX_SMALL_BODY_BYTES,
            ),
        )
        .route(
            "/v1/admin/documents",
            body_limit(
                post(documents::put_document).get(documents::list_documents),
                MAX_DOCUMENT_BODY_BYTES,
            ),
        )
        .route(
            "/v1/admin/documents/{doc_id}",
            delete(documents::delete_document),
        )
        .route(
            "/v1/admin/webhooks",
            body_limit(
                post(webhooks::create_webhook).get(webhooks::list_webhooks),
                MAX_SMALL_BODY_BYTES,
            ),
        )
        .route(
            "/v1/admin/webhooks/{webhook_id}",
            delete(webhooks::delete_webhook),
        )
        .route(
            "/v1/admin/webhooks/{webhook_id}/deliveries",
            get(webhooks::webhook_deliveries),
        )
        .route("/v1/admin/reload", post(reload::reload_configuration))
        .route("/v1/admin/assistants", get(assistants::list_assistants))
        .route(
            "/v1/admin/assistants/{name}",
            body_limit(
                get(assistants::get_assistant)
                    .put(assistants::put_assistant)
                    .delete(assistants::delete_assistant),
                MAX_SETTINGS_BODY_BYTES,
            ),
        )
        .route(
            "/v1/admin/model-settings",
            body_limit(
                get(model_settings::get_model_settings)
                    .put(model_settings::put_model_settings)
                    .delete(model_settings::delete_model_settings),
                MAX_SETTINGS_BODY_BYTES,
            ),
        );
    if state.config.cors_origins.is_empty() {
        return Ok(router);
    }
    let origins = state
        .config
        .cors_origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o.trim_end_matches('/')).map_err(|_| {
                anyhow::anyhow!(
                    "--cors-origins (SWITCHBOARD_CORS_ORIGINS): '{o}' is not a valid origin"
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("last-event-id"),
            header::HeaderName::from_static(super::credentials::SESSION_KEY_HEADER),
        ])
        .max_age(std::time::Duration::from_secs(600));
    Ok(router.layer(cors))
}

/// The record of a session named in a path or body: `None` when there is none, or the
/// id cannot name one (over `ids::MAX_SESSION_ID_CHARS`, bad characters): over HTTP
/// both are `not_found`.
async fn session_record(
    state: &AppState,
    session_id: &str,
) -> Result<Option<SessionRecord>, ApiError> {
    if session_stream(session_id).is_err() {
        return Ok(None);
    }
    Ok(state.sessions.get(session_id).await?)
}

/// A refusal of the policy, as an HTTP answer (hidden: the session `not_found`).
fn refused(refusal: Refusal) -> ApiError {
    ApiError(refusal.into_error(ClientError::session_not_found))
}

/// Which org an admin request acts on: an admin key names it (`org_id` is required);
/// a JWT admin acts on its own org only.
fn administered_org(caller: &Caller, requested: Option<&str>) -> Result<String, ApiError> {
    Ok(policy::administered_org(caller, requested)?)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrgQuery {
    /// The org. Required with an admin key (without it: `400`); a JWT admin acts on
    /// its own org, and may leave it out.
    #[param(required = true, pattern = r"^[A-Za-z0-9_-]{1,256}$")]
    pub org_id: Option<String>,
}

/// A text field of 1 to `max` characters.
fn check_len(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n == 0 || n > max {
        return Err(ApiError(ClientError::bad_request(format!(
            "\"{field}\" must be 1 to {max} characters"
        ))));
    }
    Ok(())
}
