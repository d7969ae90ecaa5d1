//! A session over HTTP (docs/protocol.md §6.5, §6.15): `POST /v1/sessions` (open one, as
//! `session.create`), `POST /v1/sessions/{id}/messages` (a customer's message, which
//! queues a turn as `message.send` does, or an operator's) and
//! `GET /v1/sessions/{id}/events` (its retained history).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_protocol::client::MessageSend;
use switchboard_protocol::conversation::SessionUpdate;
use switchboard_protocol::{ErrorCode, EventFrame, Role};
use utoipa::ToSchema;

use super::{check_len, refused, session_record};
use crate::access::Caller;
use crate::access::policy::{self, HttpSpeaker};
use crate::conversations::TranscriptReader;
use crate::error::ClientError;
use crate::http::client_ip::ClientIp;
use crate::http::credentials::{Authed, OpeningCaller, SessionCaller};
use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::ids::session_stream;
use crate::records::sessions::SessionRecord;
use crate::state::AppState;

/// Most events one history request returns.
const MAX_HISTORY_EVENTS: usize = 1000;

/// A message into a session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// 1 to `--max-text-chars` characters, not only spaces.
    #[schema(min_length = 1)]
    pub text: String,
    /// Operator messages only: shown as the message's author (default: the caller's
    /// name). 1 to 128 characters.
    #[serde(default)]
    #[schema(nullable = false, min_length = 1, max_length = 128)]
    pub author: Option<String>,
    /// Makes a retry safe: the same id in the same session appends nothing more and
    /// answers the first attempt's `message_id` and `seq` (1 to 128 characters).
    #[serde(default)]
    #[schema(nullable = false, min_length = 1, max_length = 128)]
    pub client_message_id: Option<String>,
}

/// The appended message: the `message.accepted` frame's fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageResponse {
    pub session_id: String,
    pub message_id: String,
    /// The `seq` of the `message` event.
    pub seq: u64,
    /// `user` (the session's customer: an AI turn is queued; follow it with
    /// `GET /v1/sessions/{id}/messages/{message_id}/reply`) or `operator` (no turn).
    pub role: String,
}

/// Post a message into a session. The session's customer (its owner; in an anonymous
/// session whoever presents its key in `Switchboard-Session-Key`) posts a `user`
/// message that queues an AI turn; staff of its org, publisher keys and tokens with
/// role `operator` or `publisher` post an `operator` message (human handoff), which
/// starts none.
#[utoipa::path(post, path = "/v1/sessions/{session_id}/messages", request_body = PostMessage,
    params(("session_id" = String, Path, description = "the session"),
           ("Switchboard-Session-Key" = Option<String>, Header, description = "an anonymous session's key")),
    responses((status = 202, body = MessageResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = []), ()))]
pub async fn post_message(
    State(state): State<AppState>,
    session_caller: SessionCaller,
    ClientIp(client): ClientIp,
    Path(session_id): Path<String>,
    ApiJson(request): ApiJson<PostMessage>,
) -> Result<(StatusCode, Json<MessageResponse>), ApiError> {
    let SessionCaller {
        caller,
        session_key,
    } = &session_caller;
    let record = session_record(&state, &session_id).await?;
    let speaker =
        policy::http_speaker(caller, record.as_ref(), session_key.as_deref()).map_err(refused)?;
    let send = MessageSend {
        session_id: session_id.clone(),
        text: request.text,
        client_message_id: request.client_message_id,
    };
    let (accepted, role) = match speaker {
        HttpSpeaker::Customer(access) => {
            if request.author.is_some() {
                return Err(ApiError(ClientError::bad_request(
                    "\"author\" is for operator messages; a customer's message is signed by its sender",
                )));
            }
            let mut accepted = None;
            state
                .intake
                .accept(access, Some(client), record.as_ref(), send, |a| {
                    accepted = Some(a.clone())
                })
                .await?;
            let accepted = accepted.ok_or_else(|| {
                ApiError(ClientError::new(
                    ErrorCode::Internal,
                    "the message was not acknowledged; send it again with the same client_message_id",
                ))
            })?;
            (accepted, Role::User)
        }
        HttpSpeaker::Operator(operator) => {
            if let Some(author) = &request.author {
                check_len("author", author, 128)?;
            }
            let author = Some(request.author.unwrap_or(operator.name));
            let accepted = state.intake.post_operator_message(send, author).await?;
            (accepted, Role::Operator)
        }
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageResponse {
            session_id: accepted.session_id,
            message_id: accepted.message_id,
            seq: accepted.seq,
            role: role_name(role).to_string(),
        }),
    ))
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Operator => "operator",
        Role::System => "system",
    }
}

/// A new session.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// Free-form JSON object kept with the session (at most 4096 bytes serialized).
    #[serde(default)]
    #[schema(nullable = false, value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, Value>>,
    /// The conversation's title (1 to 200 characters, not only spaces); without one
    /// the first message names it.
    #[serde(default)]
    #[schema(nullable = false, min_length = 1, max_length = 200, pattern = r"\S")]
    pub title: Option<String>,
    /// One of the org's named assistants to talk to (docs/protocol.md §6.19); absent:
    /// the default assistant.
    #[serde(default)]
    #[schema(nullable = false, pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub assistant: Option<String>,
}

/// The created session: the `session.created` frame's fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionCreated {
    pub session_id: String,
    /// The stream's newest `seq` (0 for a new session).
    pub seq: u64,
    /// Anonymous sessions only: the key that opens it (the `Switchboard-Session-Key`
    /// header, `session_key` of `session.join`). Shown once, never stored in clear.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// The session's named assistant; absent: the default assistant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assistant: Option<String>,
}

/// Open a session, owned by the caller (a JWT's user; without credentials, where
/// `--allow-anonymous` is on, an anonymous session with a key). Same rules as
/// `session.create`: session quotas, metadata size, refused while draining.
#[utoipa::path(post, path = "/v1/sessions", request_body = CreateSession,
    responses((status = 201, body = SessionCreated), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("bearer" = []), ()))]
pub async fn create_session(
    State(state): State<AppState>,
    OpeningCaller(opening): OpeningCaller,
    ClientIp(client): ClientIp,
    ApiJson(request): ApiJson<CreateSession>,
) -> Result<(StatusCode, Json<SessionCreated>), ApiError> {
    let (record, session_key) = open(&state, &opening.caller, client, request).await?;
    let stream = session_stream(&record.session_id).map_err(|e| ApiError(e.into()))?;
    let head = state
        .backplane
        .read(&stream, None, 0)
        .await
        .map_err(ClientError::from)?;
    Ok((
        StatusCode::CREATED,
        Json(SessionCreated {
            session_id: record.session_id,
            seq: head.last_seq,
            session_key,
            assistant: record.assistant,
        }),
    ))
}

/// Open a session for `caller` (`POST /v1/sessions`, `POST /v1/chat`), titled when
/// asked.
pub(super) async fn open(
    state: &AppState,
    caller: &Caller,
    client: std::net::IpAddr,
    request: CreateSession,
) -> Result<(SessionRecord, Option<String>), ApiError> {
    let access = policy::open_session(caller).map_err(refused)?;
    if let Some(title) = &request.title {
        check_len("title", title, 200)?;
        if title.trim().is_empty() {
            return Err(ApiError(ClientError::bad_request(
                "\"title\" must not be only spaces",
            )));
        }
    }
    let assistant = state
        .assistants
        .for_new_session(&access.org_id, request.assistant.as_deref())
        .await?;
    let (record, key) = state
        .sessions
        .open(
            &state.shutdown,
            access,
            Some(client),
            request.metadata,
            assistant,
        )
        .await?;
    if let Some(title) = request.title {
        let update = SessionUpdate {
            session_id: record.session_id.clone(),
            title: Some(title),
            state: None,
        };
        // Its creator may rename it (an anonymous creator, as the key holder).
        state.conversations.update(caller, &update, true).await?;
    }
    Ok((record, key))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only events with a larger `seq` (default: all retained).
    pub after_seq: Option<u64>,
    /// At most this many events (default and maximum 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// A session's events after `after_seq`: older ones from its transcript (no deltas),
/// then the backplane's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryResponse {
    pub session_id: String,
    /// The stream's newest `seq`.
    pub last_seq: u64,
    /// True when events after `after_seq` are missing: the history dropped them and
    /// the transcript does not keep them.
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
pub async fn history(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(session_id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<HistoryResponse>, ApiError> {
    let record = session_record(&state, &session_id).await?;
    policy::read_history(&caller, record.as_ref()).map_err(refused)?;
    let stream = session_stream(&session_id).map_err(|e| ApiError(e.into()))?;
    let limit = query
        .limit
        .unwrap_or(MAX_HISTORY_EVENTS)
        .clamp(1, MAX_HISTORY_EVENTS);
    let replay = state
        .backplane
        .read(&stream, query.after_seq, limit)
        .await
        .map_err(ClientError::from)?;
    // Older than the history: the transcript, as joins replay it.
    let after = query.after_seq.unwrap_or(0);
    let first = replay.events.first().map(|e| e.seq);
    let mut trimmed = replay.trimmed;
    let mut older = Vec::new();
    if TranscriptReader::needed(&stream, after, first, replay.last_seq) {
        older = TranscriptReader::new(state.conversations.store().clone())
            .page(&stream, after, first)
            .await
            .map_err(ClientError::from)?;
        trimmed = false;
    }
    let last_seq = replay.last_seq.max(older.last().map_or(0, |e| e.seq));
    let events = older
        .iter()
        .chain(replay.events.iter())
        .take(limit)
        .filter_map(|event| serde_json::to_value(EventFrame::new(&stream, event)).ok())
        .collect();
    Ok(Json(HistoryResponse {
        session_id,
        last_seq,
        trimmed,
        events,
    }))
}
