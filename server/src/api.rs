//! The `/v1` HTTP API (protocol section 6): publishing into streams, operator
//! messages (human handoff), session history, and knowledge-base administration.
//!
//! Who may call what is decided here, from [`Caller`]: API keys are deployment-wide,
//! JWT roles count within the token's own org only. A session of another org is
//! `not_found`, exactly like a session that does not exist. `docs/http-api.md` is the
//! contract for backends; `/openapi.json` describes it for machines.

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_backplane::{RecordKey, StreamName};
use switchboard_protocol::{ErrorCode, EventBody, EventFrame, Role};
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::{OpenApi, ToSchema};

use crate::auth::{AccessContext, Caller, ROLE_ADMIN, ROLE_OPERATOR, ROLE_PUBLISHER, has_role};
use crate::error::ClientError;
use crate::idempotency;
use crate::knowledge::{Acl, Document, KnowledgeError};
use crate::model_settings::OrgModelSettings;
use crate::routes::{bearer, json_error};
use crate::session::{SessionRecord, new_id};
use crate::state::AppState;
use crate::tools::ToolSpec;

/// Largest document body (`POST /v1/admin/documents`): 1 MiB of text plus the rest.
const MAX_DOCUMENT_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Most events one history request returns.
const MAX_HISTORY_EVENTS: usize = 1000;
/// Records namespace of publish idempotency keys.
const PUBLISH_KEYS: &str = "publish-keys";

/// An error answered as `{"error":{"code","message"}}` with the code's status.
pub struct ApiError(ClientError);

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> ApiError {
        ApiError(e)
    }
}

impl From<KnowledgeError> for ApiError {
    fn from(e: KnowledgeError) -> ApiError {
        ApiError(match e {
            KnowledgeError::Invalid(message) => ClientError::bad_request(message),
            KnowledgeError::Backplane(e) => ClientError::from(e),
            KnowledgeError::Index(message) => {
                tracing::error!(%message, "knowledge index error");
                ClientError::new(ErrorCode::Internal, "the knowledge index failed; retry")
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_error(self.0.code, &self.0.message)
    }
}

/// The error body of every failed request.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A protocol error code and a message a person can act on.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `too_large`, `unsupported`, `rate_limited`, `unavailable` or `internal`.
    pub code: String,
    pub message: String,
}

/// `Json<T>` whose rejections are protocol errors: a body over the route's limit is
/// `too_large`, a wrong content type `unsupported`, bad JSON `bad_request`.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(ApiError(match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => {
                    ClientError::new(ErrorCode::TooLarge, TOO_LARGE_MESSAGE)
                }
                StatusCode::UNSUPPORTED_MEDIA_TYPE => ClientError::new(
                    ErrorCode::Unsupported,
                    "send the body as JSON with Content-Type: application/json",
                ),
                _ => ClientError::bad_request(rejection.body_text()),
            })),
        }
    }
}

/// The most of an oversize body the gateway reads, and throws away, before it answers
/// 413. Answering first and closing would leave the rest of the body unread in the
/// socket, and the kernel then resets the connection: the client would see
/// "connection reset" instead of the 413 it needs to act on. A body declared larger
/// than this is refused without reading it (the client may then see the reset).
const OVERSIZE_BODY_DRAIN_BYTES: u64 = 1024 * 1024;

const TOO_LARGE_MESSAGE: &str = "the request body is larger than this route accepts";

/// `route` accepting bodies of at most `limit` bytes.
fn body_limit(route: MethodRouter<AppState>, limit: usize) -> MethodRouter<AppState> {
    route
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            refuse_declared_oversize(limit, request, next)
        }))
}

/// A body whose `Content-Length` is over `limit` (and at most
/// [`OVERSIZE_BODY_DRAIN_BYTES`]) is read to its end before the route answers; the
/// route then sees its first `limit + 1` bytes, so credentials are still checked
/// before the size (401 whatever the body) and the size refusal is the usual 413.
/// A larger one is answered unread, with `Connection: close`.
async fn refuse_declared_oversize(limit: usize, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(declared) = declared.filter(|&len| len > limit as u64) else {
        return next.run(request).await;
    };
    if declared > OVERSIZE_BODY_DRAIN_BYTES {
        // Not read: the connection cannot carry another request, and saying so keeps
        // the client from reusing it.
        let mut response = next.run(request).await;
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let (parts, body) = request.into_parts();
    let mut body = body.into_data_stream();
    let mut kept = Vec::with_capacity(limit + 1);
    while let Some(Ok(chunk)) = body.next().await {
        let room = (limit + 1).saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(kept)))
        .await
}

/// The `/v1` routes, with body limits and CORS for `--cors-origins`.
pub fn router(state: &AppState) -> anyhow::Result<Router<AppState>> {
    let publish_limit = state.config.max_publish_bytes as usize;
    let router = Router::new()
        .route("/v1/publish", body_limit(post(publish), publish_limit))
        .route(
            "/v1/sessions/{session_id}/messages",
            body_limit(post(operator_message), publish_limit),
        )
        .route("/v1/sessions/{session_id}/events", get(history))
        .route(
            "/v1/admin/documents",
            body_limit(
                post(put_document).get(list_documents),
                MAX_DOCUMENT_BODY_BYTES,
            ),
        )
        .route("/v1/admin/documents/{doc_id}", delete(delete_document))
        .route(
            "/v1/admin/model-settings",
            body_limit(
                get(get_model_settings)
                    .put(put_model_settings)
                    .delete(delete_model_settings),
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
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600));
    Ok(router.layer(cors))
}

/// The authenticated caller. As an extractor it runs before the body is read, so a
/// request with bad credentials is `401` whatever its body.
pub struct Authed(pub Caller);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Authed(
            state.auth.caller(bearer(&parts.headers).as_deref()).await?,
        ))
    }
}

fn forbidden(what: &str) -> ApiError {
    ApiError(ClientError::forbidden(format!(
        "these credentials may not {what}"
    )))
}

/// The session, if it exists and `visible` says the caller may see it; otherwise
/// `not_found`, the same answer either way.
async fn visible_session(
    state: &AppState,
    session_id: &str,
    visible: impl FnOnce(&SessionRecord) -> bool,
) -> Result<SessionRecord, ApiError> {
    if !StreamName::valid_id(session_id) {
        return Err(ApiError(ClientError::session_not_found()));
    }
    match state.sessions.get(session_id).await? {
        Some(record) if visible(&record) => Ok(record),
        _ => Err(ApiError(ClientError::session_not_found())),
    }
}

fn in_org(access: &AccessContext, org_id: &str) -> bool {
    access.org_id == org_id
}

// ---------------------------------------------------------------------------------
// POST /v1/publish
// ---------------------------------------------------------------------------------

/// Which stream an event goes to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PublishTarget {
    /// A session: every member, on every replica, with replay.
    Session(String),
    /// Every connection of one user, within an org (live only).
    User(String),
    /// Every connection of an org (live only).
    Org(String),
}

/// An event from a backend.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub target: PublishTarget,
    /// The event's name, 1–128 characters, e.g. `order.shipped`.
    pub name: String,
    /// Any JSON.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Value,
    /// Same key and target within 24 h: the first `seq`, nothing appended.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The org of a `user` target (publisher keys only; default `--default-org`).
    #[serde(default)]
    pub org_id: Option<String>,
}

/// Where the event landed.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishResponse {
    pub seq: u64,
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n == 0 || n > max {
        return Err(ApiError(ClientError::bad_request(format!(
            "\"{field}\" must be 1 to {max} characters"
        ))));
    }
    Ok(())
}

/// Publish an `event` into a session, a user's connections or an org's.
#[utoipa::path(post, path = "/v1/publish", request_body = PublishRequest,
    responses((status = 202, body = PublishResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
async fn publish(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(request): ApiJson<PublishRequest>,
) -> Result<(StatusCode, Json<PublishResponse>), ApiError> {
    let (publisher, own_org) = match caller {
        Caller::PublisherKey { name } => (name, None),
        Caller::Token(access) if has_role(&access, ROLE_PUBLISHER) => (
            access.user_id.clone().unwrap_or_else(|| "publisher".into()),
            Some(access.org_id),
        ),
        _ => {
            return Err(forbidden(
                "publish (needs a publisher key or role publisher)",
            ));
        }
    };
    check_len("name", &request.name, 128)?;
    if let (Some(own), Some(given)) = (&own_org, &request.org_id)
        && own != given
    {
        return Err(forbidden("publish on behalf of another org"));
    }
    if let Some(key) = &request.idempotency_key {
        check_len("idempotency_key", key, 128)?;
    }
    let stream = match &request.target {
        PublishTarget::Session(session_id) => {
            visible_session(&state, session_id, |record| {
                own_org.as_ref().is_none_or(|org| *org == record.org_id)
            })
            .await?;
            StreamName::session(session_id)
        }
        PublishTarget::User(user_id) => {
            let org = match (&own_org, &request.org_id) {
                (Some(own), _) => own.clone(),
                (None, given) => given
                    .clone()
                    .unwrap_or_else(|| state.config.default_org.clone()),
            };
            StreamName::user_in_org(&org, user_id)
        }
        PublishTarget::Org(org) => {
            if own_org.as_ref().is_some_and(|own| own != org) {
                return Err(forbidden("publish to another org"));
            }
            StreamName::org(org)
        }
    }
    .map_err(|e| ApiError(ClientError::bad_request(format!("target: {e}"))))?;

    let key = request
        .idempotency_key
        .as_ref()
        .map(|k| RecordKey::new(PUBLISH_KEYS, format!("{stream}/{k}")));
    let publish_id = new_id("p");
    if let Some(key) = &key
        && let Some(earlier) =
            idempotency::reserve(state.backplane.as_ref(), key, &publish_id).await?
    {
        return Ok((
            StatusCode::ACCEPTED,
            Json(PublishResponse {
                seq: earlier.seq.unwrap_or(0),
            }),
        ));
    }
    let body = EventBody::Custom {
        name: request.name,
        data: request.data,
        publisher: Some(publisher),
    };
    let appended = state.events.append(&stream, body).await;
    if let Some(key) = &key {
        let seq = appended.as_ref().ok().map(|e| e.seq);
        idempotency::settle(state.backplane.as_ref(), key, &publish_id, seq).await?;
    }
    let event = appended.map_err(ClientError::from)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(PublishResponse { seq: event.seq }),
    ))
}

// ---------------------------------------------------------------------------------
// POST /v1/sessions/{id}/messages
// ---------------------------------------------------------------------------------

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
async fn operator_message(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    Authed(caller): Authed,
    ApiJson(request): ApiJson<OperatorMessage>,
) -> Result<(StatusCode, Json<MessageResponse>), ApiError> {
    let (default_author, org) = match &caller {
        Caller::PublisherKey { name } => (name.clone(), None),
        Caller::Token(access)
            if has_role(access, ROLE_OPERATOR) || has_role(access, ROLE_PUBLISHER) =>
        {
            (
                access.user_id.clone().unwrap_or_else(|| "operator".into()),
                Some(access.org_id.clone()),
            )
        }
        _ => {
            return Err(forbidden(
                "post operator messages (needs role operator or publisher)",
            ));
        }
    };
    visible_session(&state, &session_id, |record| {
        org.as_ref().is_none_or(|org| *org == record.org_id)
    })
    .await?;
    check_len("text", &request.text, state.config.max_text_chars as usize)?;
    if let Some(author) = &request.author {
        check_len("author", author, 128)?;
    }
    let message_id = new_id("m");
    let body = EventBody::Message {
        message_id: message_id.clone(),
        role: Role::Operator,
        text: request.text,
        author: Some(request.author.unwrap_or(default_author)),
    };
    let stream = StreamName::session(&session_id)
        .map_err(|e| ApiError(ClientError::bad_request(e.to_string())))?;
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

// ---------------------------------------------------------------------------------
// GET /v1/sessions/{id}/events
// ---------------------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct HistoryQuery {
    /// Only events with a larger `seq` (default: all retained).
    pub after_seq: Option<u64>,
    /// At most this many events (default and maximum 1000).
    pub limit: Option<usize>,
}

/// A session's retained history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryResponse {
    pub session_id: String,
    /// The stream's newest `seq`.
    pub last_seq: u64,
    /// True when retention removed events after `after_seq`.
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
async fn history(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    Query(query): Query<HistoryQuery>,
    Authed(caller): Authed,
) -> Result<Json<HistoryResponse>, ApiError> {
    visible_session(&state, &session_id, |record| match &caller {
        Caller::PublisherKey { .. } | Caller::AdminKey { .. } => true,
        Caller::Token(access) => {
            in_org(access, &record.org_id)
                && (has_role(access, ROLE_ADMIN)
                    || (record.owner.is_some() && record.owner == access.user_id))
        }
    })
    .await?;
    let stream = StreamName::session(&session_id)
        .map_err(|e| ApiError(ClientError::bad_request(e.to_string())))?;
    let limit = query
        .limit
        .unwrap_or(MAX_HISTORY_EVENTS)
        .clamp(1, MAX_HISTORY_EVENTS);
    let replay = state
        .backplane
        .read(&stream, query.after_seq, limit)
        .await
        .map_err(ClientError::from)?;
    let events = replay
        .events
        .iter()
        .filter_map(|event| serde_json::to_value(EventFrame::new(&stream, event)).ok())
        .collect();
    Ok(Json(HistoryResponse {
        session_id,
        last_seq: replay.last_seq,
        trimmed: replay.trimmed,
        events,
    }))
}

// ---------------------------------------------------------------------------------
// /v1/admin/documents
// ---------------------------------------------------------------------------------

/// Which org an admin request acts on: an admin key names it; a JWT admin acts on
/// its own org only.
fn admin_org(caller: &Caller, requested: Option<&str>) -> Result<String, ApiError> {
    match caller {
        Caller::AdminKey { .. } => requested.map(str::to_string).ok_or_else(|| {
            ApiError(ClientError::bad_request(
                "org_id is required with an admin key",
            ))
        }),
        Caller::Token(access) if has_role(access, ROLE_ADMIN) => match requested {
            Some(org) if org != access.org_id => Err(forbidden("administer another org")),
            _ => Ok(access.org_id.clone()),
        },
        _ => Err(forbidden(
            "administer an org (needs an admin key or role admin)",
        )),
    }
}

/// A document to create or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentRequest {
    pub doc_id: String,
    pub org_id: String,
    pub title: String,
    pub text: String,
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default)]
    pub acl: AclBody,
}

/// Who may read a document (section 7).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AclBody {
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
}

/// The stored document's identity.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentRef {
    pub doc_id: String,
    pub org_id: String,
}

/// A document as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentBody {
    pub doc_id: String,
    pub org_id: String,
    pub title: String,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    pub acl: AclBody,
}

impl From<Document> for DocumentBody {
    fn from(d: Document) -> DocumentBody {
        DocumentBody {
            doc_id: d.doc_id,
            org_id: d.org_id,
            title: d.title,
            text: d.text,
            uri: d.uri,
            acl: AclBody {
                public: d.acl.public,
                groups: d.acl.groups,
                users: d.acl.users,
            },
        }
    }
}

/// An org's documents.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentList {
    pub org_id: String,
    pub documents: Vec<DocumentBody>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct OrgQuery {
    /// The org (required with an admin key; a JWT admin's own org otherwise).
    pub org_id: Option<String>,
}

/// Create or replace a document; searchable at once on every replica.
#[utoipa::path(post, path = "/v1/admin/documents", request_body = DocumentRequest,
    responses((status = 200, body = DocumentRef), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
async fn put_document(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(request): ApiJson<DocumentRequest>,
) -> Result<Json<DocumentRef>, ApiError> {
    let org_id = admin_org(&caller, Some(&request.org_id))?;
    let document = Document {
        doc_id: request.doc_id,
        org_id,
        title: request.title,
        text: request.text,
        uri: request.uri,
        acl: Acl {
            public: request.acl.public,
            groups: request.acl.groups,
            users: request.acl.users,
        },
    };
    let reference = DocumentRef {
        doc_id: document.doc_id.clone(),
        org_id: document.org_id.clone(),
    };
    state.knowledge.ingest(document).await?;
    Ok(Json(reference))
}

/// List an org's documents, sorted by `doc_id`.
#[utoipa::path(get, path = "/v1/admin/documents", params(OrgQuery),
    responses((status = 200, body = DocumentList), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_documents(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(query): Query<OrgQuery>,
) -> Result<Json<DocumentList>, ApiError> {
    let org_id = admin_org(&caller, query.org_id.as_deref())?;
    let documents = state.knowledge.list(&org_id).await?;
    Ok(Json(DocumentList {
        org_id,
        documents: documents.into_iter().map(DocumentBody::from).collect(),
    }))
}

/// Delete a document of an org.
#[utoipa::path(delete, path = "/v1/admin/documents/{doc_id}",
    params(("doc_id" = String, Path, description = "the document"), OrgQuery),
    responses((status = 204, description = "deleted"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_document(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(doc_id): Path<String>,
    Query(query): Query<OrgQuery>,
) -> Result<StatusCode, ApiError> {
    let org_id = admin_org(&caller, query.org_id.as_deref())?;
    if state.knowledge.delete(&org_id, &doc_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError(ClientError::new(
            ErrorCode::NotFound,
            format!("org {org_id} has no document {doc_id}"),
        )))
    }
}

// ---------------------------------------------------------------------------------
// Model settings
// ---------------------------------------------------------------------------------

/// Largest model-settings body (a long system prompt and a few dozen tools).
const MAX_SETTINGS_BODY_BYTES: usize = 256 * 1024;

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
async fn get_model_settings(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(query): Query<OrgQuery>,
) -> Result<Json<ModelSettingsBody>, ApiError> {
    let org_id = admin_org(&caller, query.org_id.as_deref())?;
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
async fn put_model_settings(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(query): Query<OrgQuery>,
    ApiJson(settings): ApiJson<OrgModelSettings>,
) -> Result<Json<ModelSettingsBody>, ApiError> {
    let org_id = admin_org(&caller, query.org_id.as_deref())?;
    state.model_settings.put(&org_id, &settings).await?;
    Ok(Json(ModelSettingsBody { org_id, settings }))
}

/// Forget an org's model settings; it uses the gateway's defaults again.
#[utoipa::path(delete, path = "/v1/admin/model-settings", params(OrgQuery),
    responses((status = 204, description = "deleted (or there were none)"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_model_settings(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(query): Query<OrgQuery>,
) -> Result<StatusCode, ApiError> {
    let org_id = admin_org(&caller, query.org_id.as_deref())?;
    state.model_settings.delete(&org_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------
// OpenAPI
// ---------------------------------------------------------------------------------

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A publisher or admin API key, or a JWT (roles publisher, operator, admin within its org)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI description of the `/v1` API, served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "Switchboard HTTP API", description = "Publish into sessions, users and orgs; hand off to operators; read history; manage the knowledge base and per-org model settings. See docs/http-api.md."),
    paths(publish, operator_message, history, put_document, list_documents, delete_document,
        get_model_settings, put_model_settings, delete_model_settings),
    components(schemas(ErrorBody, ErrorDetail, PublishTarget, PublishRequest, PublishResponse,
        OperatorMessage, MessageResponse, HistoryResponse, DocumentRequest, AclBody,
        DocumentRef, DocumentBody, DocumentList, ModelSettingsBody, OrgModelSettings, ToolSpec)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/openapi.json is what the code serves; `UPDATE_SCHEMAS=1` rewrites it.
    #[test]
    fn the_checked_in_openapi_document_matches_the_code() {
        let generated = format!(
            "{}\n",
            serde_json::to_string_pretty(&ApiDoc::openapi()).unwrap()
        );
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "docs/openapi.json is out of date: run `UPDATE_SCHEMAS=1 cargo test -p switchboard --lib openapi` and commit it"
        );
    }
}
