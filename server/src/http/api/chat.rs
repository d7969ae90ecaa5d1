//! `POST /v1/chat` (docs/protocol.md §6.15): send a customer's message and answer
//! with its completed reply, in one request. Without `session_id` a session is opened
//! first (as `POST /v1/sessions`); the message is accepted as `message.send` accepts
//! it (`assistant::intake`); the request then waits for its turn's `turn.end`
//! (`assistant::replies`), up to `timeout_ms`. When that runs out it answers 202 with
//! the turn to poll, and so it does at once when the replica starts closing. Waiting
//! requests are bounded per replica and per principal (`assistant::waiting`).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_protocol::ErrorCode;
use switchboard_protocol::client::MessageSend;
use utoipa::ToSchema;

use super::sessions::{CreateSession, open};
use super::turns::TurnEndFields;
use super::{refused, session_record};
use crate::access::policy;
use crate::assistant::cost::principal_key;
use crate::assistant::replies::{Progress, ReplyWatch, reply_progress};
use crate::assistant::waiting::WaitLimit;
use crate::error::ClientError;
use crate::http::client_ip::ClientIp;
use crate::http::credentials::OpeningCaller;
use crate::http::error::{ApiError, ApiJson, ErrorBody, json_error};
use crate::ids::session_stream;
use crate::state::AppState;

/// `timeout_ms` when the request gives none.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// The longest a synchronous chat waits for its reply.
pub const MAX_TIMEOUT_MS: u64 = 120_000;
/// `Retry-After` of a chat refused by the limits on waiting chats, in seconds.
const RETRY_AFTER_SECONDS: &str = "1";

/// A message to answer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// The session to speak in (its customer, or with its key in
    /// `Switchboard-Session-Key`); without it a session is opened for the caller.
    #[serde(default)]
    #[schema(nullable = false)]
    pub session_id: Option<String>,
    /// 1 to `--max-text-chars` characters, not only spaces.
    #[schema(min_length = 1)]
    pub text: String,
    /// Makes a retry safe: the same id in the same session appends nothing more, and
    /// answers the first attempt's message and reply (1 to 128 characters).
    #[serde(default)]
    #[schema(nullable = false, min_length = 1, max_length = 128)]
    pub client_message_id: Option<String>,
    /// For a new session only: kept with it (at most 4096 bytes serialized).
    #[serde(default)]
    #[schema(nullable = false, value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, Value>>,
    /// For a new session only: one of the org's named assistants to talk to
    /// (docs/protocol.md §6.19); absent: the default assistant.
    #[serde(default)]
    #[schema(nullable = false, pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub assistant: Option<String>,
    /// How long to wait for the reply, in ms: 1 to 120000 (default 30000).
    #[serde(
        default,
        deserialize_with = "switchboard_protocol::whole_number::option_u32"
    )]
    #[schema(nullable = false, minimum = 1, maximum = 120000)]
    pub timeout_ms: Option<u32>,
}

/// The reply (200), or where it stands when `timeout_ms` ran out (202).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatReply {
    pub session_id: String,
    /// A session opened by this request for an anonymous caller: its key (shown once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// The user `message`.
    pub message_id: String,
    /// The `seq` of the user `message`.
    pub message_seq: u64,
    /// The turn answering it (absent while it waits in the queue).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<String>,
    /// `completed`, `cancelled` or `failed` (200); `running` or `queued` (202).
    pub status: String,
    /// 202 only: where to ask again — the turn (`GET /v1/sessions/{id}/turns/{turn_id}`),
    /// or while queued the message's reply (`GET /v1/sessions/{id}/messages/{message_id}/reply`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll: Option<String>,
    /// 200: the rest of the `turn.end` event — its `seq`, the reply `text`, `usage`,
    /// `sources`, `error`, `code`, `retrying`, `assistant`.
    #[serde(flatten)]
    pub end: TurnEndFields,
}

/// Send a message and wait for its reply. 200 with the reply when the turn ends in
/// time; 202 with the turn to poll when `timeout_ms` runs out; 503 `unavailable` with
/// `Retry-After` when too many chats wait already.
#[utoipa::path(post, path = "/v1/chat", request_body = ChatRequest,
    params(("Switchboard-Session-Key" = Option<String>, Header, description = "the key of the anonymous session named by session_id")),
    responses((status = 200, body = ChatReply, description = "the turn ended"),
              (status = 202, body = ChatReply, description = "timeout_ms ran out: poll"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("bearer" = []), ()))]
pub async fn chat(
    State(state): State<AppState>,
    OpeningCaller(opening): OpeningCaller,
    ClientIp(client): ClientIp,
    ApiJson(request): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let timeout_ms = request.timeout_ms.map_or(DEFAULT_TIMEOUT_MS, u64::from);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ApiError(ClientError::bad_request(format!(
            "\"timeout_ms\" must be 1 to {MAX_TIMEOUT_MS}"
        ))));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    let caller = &opening.caller;
    let (access, existing) = match &request.session_id {
        Some(session_id) => {
            if request.metadata.is_some() || request.assistant.is_some() {
                return Err(ApiError(ClientError::bad_request(
                    "\"metadata\" and \"assistant\" belong to a new session: leave out \"session_id\", or them",
                )));
            }
            let record = session_record(&state, session_id).await?;
            let access = policy::http_chat(caller, record.as_ref(), opening.session_key.as_deref())
                .map_err(refused)?;
            (access, record)
        }
        None => (policy::open_session(caller).map_err(refused)?, None),
    };
    let principal = format!("{}/{}", access.org_id, principal_key(access, Some(client)));
    let _waiting = match state.sync_waits.admit(&principal) {
        Ok(permit) => permit,
        Err(limit) => return Ok(too_many_waiting(&state, limit)),
    };
    let (record, session_key) = match existing {
        Some(record) => (record, None),
        // No `session_id` (one that names no session was refused above).
        None => {
            let create = CreateSession {
                metadata: request.metadata,
                title: None,
                assistant: request.assistant,
            };
            open(&state, caller, client, create).await?
        }
    };
    let stream = session_stream(&record.session_id).map_err(|e| ApiError(e.into()))?;
    let mut watch = ReplyWatch::open(
        state.registry.clone(),
        state.backplane.clone(),
        stream.clone(),
        state.config.outbound_queue_bytes as usize,
    )
    .await?;
    let send = MessageSend {
        session_id: record.session_id.clone(),
        text: request.text,
        client_message_id: request.client_message_id,
    };
    let mut accepted = None;
    state
        .intake
        .accept(access, Some(client), Some(&record), send, |a| {
            accepted = Some(a.clone())
        })
        .await?;
    let accepted = accepted.ok_or_else(|| {
        ApiError(ClientError::new(
            ErrorCode::Internal,
            "the message was not acknowledged; send it again with the same client_message_id",
        ))
    })?;
    let progress = tokio::select! {
        progress = watch.reply_to(&accepted.message_id, accepted.seq, deadline) => progress?,
        // The replica is closing: answer where the reply stands (202, poll another
        // replica) rather than be cut off.
        () = state.shutdown.closed() => {
            reply_progress(state.backplane.as_ref(), &stream, &accepted.message_id)
                .await?
                .unwrap_or(Progress::Queued)
        }
    };
    drop(watch);
    let session_id = accepted.session_id;
    let mut reply = ChatReply {
        session_id: session_id.clone(),
        session_key,
        message_id: accepted.message_id,
        message_seq: accepted.seq,
        turn_id: None,
        status: String::new(),
        poll: None,
        end: TurnEndFields::default(),
    };
    let status = match progress {
        Progress::Ended(end) => {
            reply.turn_id = Some(end.turn_id.clone());
            reply.status = end.status.as_str().to_string();
            reply.end = end.into();
            StatusCode::OK
        }
        Progress::Running { turn_id } => {
            reply.poll = Some(format!("/v1/sessions/{session_id}/turns/{turn_id}"));
            reply.turn_id = Some(turn_id);
            reply.status = "running".into();
            StatusCode::ACCEPTED
        }
        Progress::Queued => {
            reply.poll = Some(format!(
                "/v1/sessions/{session_id}/messages/{}/reply",
                reply.message_id
            ));
            reply.status = "queued".into();
            StatusCode::ACCEPTED
        }
    };
    Ok((status, Json(reply)).into_response())
}

/// The 503 of a chat refused by the limits on waiting chats.
fn too_many_waiting(state: &AppState, limit: WaitLimit) -> Response {
    let message = match limit {
        WaitLimit::Process => format!(
            "{} synchronous chats are waiting on this server, the most at once; retry in a moment, or use the WebSocket or the session's event stream",
            state.sync_waits.max_process()
        ),
        WaitLimit::Principal => format!(
            "you have {} synchronous chats waiting, the most at once; wait for one to answer",
            state.sync_waits.max_per_principal()
        ),
    };
    let mut response = json_error(ErrorCode::Unavailable, &message);
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECONDS),
    );
    response
}
