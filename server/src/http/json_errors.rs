//! Every HTTP error is JSON of the protocol's shape, `{"error":{"code","message"}}`
//! (docs/protocol.md §6). Handlers answer errors through `ApiError`; this layer turns
//! everything else — an unknown route (404), a method the route lacks (405), a query
//! string or path that does not parse, a request to `/ws` that is not an upgrade, any
//! layer's refusal — into the same shape. The status is kept; the code follows it, and
//! the message is the refusal's own text, or one that says what to do.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use switchboard_protocol::ErrorCode;

/// The most of a refusal's text body kept as the message.
const MAX_MESSAGE_BYTES: usize = 1024;
/// Characters of the request path a message repeats.
const MAX_PATH_CHARS: usize = 200;

/// Answer every error that is not JSON yet in the protocol's error shape.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    // The path only: the query may hold `?token=`.
    let path: String = request.uri().path().chars().take(MAX_PATH_CHARS).collect();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_MESSAGE_BYTES)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty());
    let message = text.unwrap_or_else(|| default_message(status, &method, &path, &parts.headers));
    let body =
        serde_json::json!({"error": {"code": code_for(status).as_str(), "message": message}});
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body.to_string()))
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The protocol code of a status no handler chose.
fn code_for(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::CONFLICT => ErrorCode::Conflict,
        StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::URI_TOO_LONG
        | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ErrorCode::TooLarge,
        StatusCode::METHOD_NOT_ALLOWED
        | StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::NOT_ACCEPTABLE
        | StatusCode::NOT_IMPLEMENTED => ErrorCode::Unsupported,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => ErrorCode::Unavailable,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::BadRequest,
    }
}

/// A message for a refusal that came without text.
fn default_message(
    status: StatusCode,
    method: &Method,
    path: &str,
    headers: &axum::http::HeaderMap,
) -> String {
    match status {
        StatusCode::NOT_FOUND => {
            format!("no route {method} {path}: the HTTP API is described at /openapi.json")
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            format!("{path} does not take {method}; it takes {allowed}")
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than this route accepts".to_string()
        }
        other => format!(
            "the request was refused ({}); see /openapi.json",
            other.canonical_reason().unwrap_or("error")
        ),
    }
}
