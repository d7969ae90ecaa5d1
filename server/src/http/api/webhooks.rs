//! `/v1/admin/webhooks`: an org's webhook endpoints and their delivery logs
//! (docs/protocol.md §6.14, docs/webhooks.md).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_store::{WebhookDelivery, WebhookRow};
use utoipa::ToSchema;

use super::{OrgQuery, administered_org};
use crate::http::credentials::Authed;
use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;
use crate::webhooks::WebhookEventType;

/// An endpoint to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// `http(s)://…` on an origin allowed by `--webhook-endpoint-origins`.
    #[schema(
        max_length = 2048,
        pattern = r"^https?://([A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*(:[1-9][0-9]{0,3})?(/[^\s]*)?$"
    )]
    pub url: String,
    /// Event types: `conversation.created`, `handoff.requested`, `handoff.claimed`,
    /// `turn.failed`, `message.created`.
    #[schema(schema_with = event_names)]
    pub events: Vec<String>,
    /// The org. Required with an admin key (without it: `400`); a JWT admin acts on
    /// its own org, and may leave it out.
    #[serde(default)]
    #[schema(required = true, nullable = false, pattern = r"^[A-Za-z0-9_-]{1,256}$")]
    pub org_id: Option<String>,
}

/// A registered endpoint, with its signing secret: shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookCreated {
    pub webhook_id: String,
    pub org_id: String,
    pub url: String,
    pub events: Vec<String>,
    /// `whsec_…`: keys the HMAC-SHA256 of every delivery (docs/webhooks.md).
    pub secret: String,
    /// Milliseconds since the epoch.
    pub created_at: u64,
}

/// An endpoint as listed (no secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookBody {
    pub webhook_id: String,
    pub org_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: u64,
}

impl From<WebhookRow> for WebhookBody {
    fn from(row: WebhookRow) -> WebhookBody {
        WebhookBody {
            webhook_id: row.webhook_id,
            org_id: row.org_id,
            url: row.url,
            events: row.events,
            created_at: row.created_at,
        }
    }
}

/// An org's endpoints, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub org_id: String,
    pub webhooks: Vec<WebhookBody>,
}

/// One delivery after its latest attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryBody {
    /// The payload's `id` and `Switchboard-Webhook-Id`, the same on every attempt.
    pub id: String,
    pub event_type: String,
    pub attempts: u32,
    /// `pending` (a retry is scheduled), `delivered` or `failed`.
    pub outcome: String,
    /// The latest attempt's HTTP status, when the endpoint answered.
    pub last_status: Option<u16>,
    /// Why the latest attempt failed.
    pub last_error: Option<String>,
    /// When the first attempt was made (ms since the epoch).
    pub created_at: u64,
    /// When the latest attempt ended.
    pub updated_at: u64,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at: Option<u64>,
}

impl From<WebhookDelivery> for DeliveryBody {
    fn from(d: WebhookDelivery) -> DeliveryBody {
        DeliveryBody {
            id: d.delivery_id,
            event_type: d.event_type,
            attempts: d.attempts,
            outcome: d.outcome.as_str().to_string(),
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: d.created_at,
            updated_at: d.updated_at,
            next_attempt_at: d.next_attempt_at,
        }
    }
}

/// An endpoint's delivery log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryLog {
    pub webhook_id: String,
    pub deliveries: Vec<DeliveryBody>,
}

/// Register a webhook endpoint for an org.
#[utoipa::path(post, path = "/v1/admin/webhooks", request_body = WebhookRequest,
    responses((status = 201, body = WebhookCreated), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_webhook(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(request): ApiJson<WebhookRequest>,
) -> Result<(StatusCode, Json<WebhookCreated>), ApiError> {
    let org_id = administered_org(&caller, request.org_id.as_deref())?;
    let row = state
        .webhooks
        .register(&org_id, &request.url, &request.events)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated {
            webhook_id: row.webhook_id,
            org_id: row.org_id,
            url: row.url,
            events: row.events,
            secret: row.secret,
            created_at: row.created_at,
        }),
    ))
}

/// An org's webhook endpoints (without their secrets).
#[utoipa::path(get, path = "/v1/admin/webhooks", params(OrgQuery),
    responses((status = 200, body = WebhookList), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(query): Query<OrgQuery>,
) -> Result<Json<WebhookList>, ApiError> {
    let org_id = administered_org(&caller, query.org_id.as_deref())?;
    let rows = state.webhooks.list(&org_id).await?;
    Ok(Json(WebhookList {
        org_id,
        webhooks: rows.into_iter().map(WebhookBody::from).collect(),
    }))
}

/// Delete a webhook endpoint and its delivery log; pending deliveries are dropped.
#[utoipa::path(delete, path = "/v1/admin/webhooks/{webhook_id}",
    params(("webhook_id" = String, Path, description = "the endpoint"), OrgQuery),
    responses((status = 204, description = "deleted"), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(webhook_id): Path<String>,
    Query(query): Query<OrgQuery>,
) -> Result<StatusCode, ApiError> {
    let org_id = administered_org(&caller, query.org_id.as_deref())?;
    state.webhooks.remove(&org_id, &webhook_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook endpoint's delivery log: its newest deliveries, newest first.
#[utoipa::path(get, path = "/v1/admin/webhooks/{webhook_id}/deliveries",
    params(("webhook_id" = String, Path, description = "the endpoint"), OrgQuery),
    responses((status = 200, body = DeliveryLog), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn webhook_deliveries(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(webhook_id): Path<String>,
    Query(query): Query<OrgQuery>,
) -> Result<Json<DeliveryLog>, ApiError> {
    let org_id = administered_org(&caller, query.org_id.as_deref())?;
    let deliveries = state.webhooks.deliveries(&org_id, &webhook_id).await?;
    Ok(Json(DeliveryLog {
        webhook_id,
        deliveries: deliveries.into_iter().map(DeliveryBody::from).collect(),
    }))
}

/// `events`' schema: at least one of the known types.
fn event_names() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let names = WebhookEventType::ALL.map(WebhookEventType::as_str);
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(names)),
        )
        .min_items(Some(1))
        .build()
}
