//! Errors over HTTP: `{"error":{"code","message"}}` with the status of the protocol
//! code (docs/protocol.md §6), for every route and every rejection.

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use switchboard_protocol::ErrorCode;
use utoipa::ToSchema;

use crate::assistant::knowledge::KnowledgeError;
use crate::error::ClientError;

/// The message of a 413.
const TOO_LARGE_MESSAGE: &str = "the request body is larger than this route accepts";

/// A JSON error body: `{"error":{"code","message"}}`.
pub fn json_error(code: ErrorCode, message: &str) -> Response {
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({"error": {"code": code.as_str(), "message": message}});
    (status, axum::Json(body)).into_response()
}

/// An error answered as `{"error":{"code","message"}}` with the code's status.
pub struct ApiError(pub ClientError);

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
            KnowledgeError::Quota { message, .. } => ClientError::new(ErrorCode::TooLarge, message),
            KnowledgeError::Contended(message) => ClientError::new(ErrorCode::Unavailable, message),
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
/// `too_large`, a wrong content type `unsupported`, bad JSON `bad_request`. Every
/// body of the API is a JSON object: anything else (an array, which serde would
/// read into a struct field by field) is `bad_request` too.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<serde_json::Value>::from_request(req, state).await {
            Ok(Json(value)) if !value.is_object() => Err(ApiError(ClientError::bad_request(
                "the body must be a JSON object",
            ))),
            Ok(Json(value)) => serde_json::from_value(value).map(ApiJson).map_err(|e| {
                ApiError(ClientError::bad_request(format!(
                    "the JSON body does not fit this route: {e}"
                )))
            }),
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
