//! Credentials of an HTTP request: `Authorization: Bearer` (an API key or a JWT).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::error::ApiError;
use crate::access::Caller;
use crate::state::AppState;

/// The credential of an `Authorization: Bearer` header.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_string())
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
