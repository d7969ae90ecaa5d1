//! `POST /v1/publish`: an event from a backend into a session, a user's connections
//! or an org's.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_backplane::StreamName;
use switchboard_protocol::EventBody;
use utoipa::ToSchema;

use super::{check_len, refused, session_record};
use crate::access::policy::{self, Target};
use crate::error::ClientError;
use crate::fanout::events::Once;
use crate::http::credentials::Authed;
use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::ids::new_id;
use crate::records::idempotency;
use crate::state::AppState;
use crate::telemetry::spans;
use tracing::Instrument;

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
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
    /// Any JSON.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Value,
    /// Same key and target within 24 h: the first `seq`, nothing appended (1–128
    /// characters).
    #[serde(default)]
    #[schema(nullable = false, min_length = 1, max_length = 128)]
    pub idempotency_key: Option<String>,
    /// The org of a `user` target (publisher keys only; default `--default-org`).
    #[serde(default)]
    #[schema(nullable = false, pattern = r"^[A-Za-z0-9_-]{1,256}$")]
    pub org_id: Option<String>,
    /// Keep the event in the conversation's transcript (session targets only), so
    /// it replays and exports after the backplane's history dropped it.
    #[serde(default)]
    pub durable: bool,
}

/// Where the event landed.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishResponse {
    pub seq: u64,
}

fn bad_target(e: impl std::fmt::Display) -> ApiError {
    ApiError(ClientError::bad_request(format!("target: {e}")))
}

/// Publish an `event` into a session, a user's connections or an org's.
#[utoipa::path(post, path = "/v1/publish", request_body = PublishRequest,
    responses((status = 202, body = PublishResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn publish(
    State(state): State<AppState>,
    headers: HeaderMap,
    Authed(caller): Authed,
    ApiJson(request): ApiJson<PublishRequest>,
) -> Result<(StatusCode, Json<PublishResponse>), ApiError> {
    let kind = match request.target {
        PublishTarget::Session(_) => "session",
        PublishTarget::User(_) => "user",
        PublishTarget::Org(_) => "org",
    };
    let span = spans::publish(kind, &state.server_id, &headers);
    let published = publish_event(state, caller, request)
        .instrument(span.clone())
        .await;
    if let Ok((_, Json(PublishResponse { seq }))) = &published {
        spans::published(&span, *seq);
    }
    published
}

/// [`publish`] inside its span.
async fn publish_event(
    state: AppState,
    caller: crate::access::Caller,
    request: PublishRequest,
) -> Result<(StatusCode, Json<PublishResponse>), ApiError> {
    let publisher = policy::publisher(&caller).map_err(refused)?;
    check_len("name", &request.name, 128)?;
    if let Some(key) = &request.idempotency_key {
        check_len("idempotency_key", key, 128)?;
    }
    let on_behalf_of = request.org_id.as_deref();
    if request.durable && !matches!(request.target, PublishTarget::Session(_)) {
        return Err(ApiError(ClientError::bad_request(
            "durable applies to session targets only: user and org streams have no transcript",
        )));
    }
    let stream = match &request.target {
        PublishTarget::Session(session_id) => {
            let record = session_record(&state, session_id).await?;
            let org = record.as_ref().map(|r| r.org_id.as_str());
            policy::publish(&publisher, on_behalf_of, Target::Session { org }).map_err(refused)?;
            StreamName::session(session_id).map_err(bad_target)?
        }
        PublishTarget::User(user_id) => {
            policy::publish(&publisher, on_behalf_of, Target::User).map_err(refused)?;
            let org = match (&publisher.org, on_behalf_of) {
                (Some(own), _) => own.clone(),
                (None, given) => given
                    .map(str::to_string)
                    .unwrap_or_else(|| state.config.default_org.clone()),
            };
            StreamName::user_in_org(&org, user_id).map_err(bad_target)?
        }
        PublishTarget::Org(org) => {
            policy::publish(&publisher, on_behalf_of, Target::Org { org }).map_err(refused)?;
            StreamName::org(org).map_err(bad_target)?
        }
    };

    let key = request
        .idempotency_key
        .as_ref()
        .map(|k| idempotency::publish_key(&stream, k));
    let publish_id = new_id("p");
    let body = EventBody::Custom {
        name: request.name,
        data: request.data,
        publisher: Some(publisher.name),
        durable: request.durable,
    };
    let seq = match state
        .events
        // An `event` does not carry its publish id: a key whose attempt stopped
        // unsettled cannot be resolved, and answers `conflict` until it expires.
        .append_once(&stream, body, key.as_ref(), &publish_id, None)
        .await?
    {
        Once::Appended(event) => event.seq,
        Once::Earlier { seq, .. } => seq,
    };
    Ok((StatusCode::ACCEPTED, Json(PublishResponse { seq })))
}
