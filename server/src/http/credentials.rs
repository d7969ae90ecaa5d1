//! Credentials of a request: the `Authorization: Bearer` header (an API key or a JWT),
//! and on the session routes the `Switchboard-Session-Key` header, with which a
//! request without credentials acts as an anonymous session's visitor (where
//! `--allow-anonymous` is on).
//!
//! The scheme is matched case-insensitively and followed by one or more spaces (RFC
//! 9110 §11.4, RFC 6750 §2.1). A header that is present but unusable — another scheme,
//! no credential, several headers, bytes that are not text — is refused, never read
//! as "no credentials": on `/ws` that would silently make the visitor anonymous.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use switchboard_protocol::ErrorCode;

use super::error::ApiError;
use crate::access::Caller;
use crate::error::ClientError;
use crate::state::AppState;

/// The scheme of a bearer credential.
const BEARER: &str = "Bearer";

/// The credential of the `Authorization` header: `Ok(None)` when there is no header,
/// the token of a `Bearer` one, or `unauthorized` for a header that cannot be used.
pub fn bearer(headers: &HeaderMap) -> Result<Option<String>, ClientError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(unusable("send one Authorization header, not several"));
    }
    let Ok(value) = value.to_str() else {
        return Err(unusable("the Authorization header is not plain text"));
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case(BEARER) {
        return Err(unusable(
            "the Authorization header must be `Bearer <token>` (another scheme, or none, was sent)",
        ));
    }
    let credential = rest.trim_start_matches(' ').trim_end();
    if credential.is_empty() {
        return Err(unusable(
            "the Authorization header has no credential after `Bearer `",
        ));
    }
    Ok(Some(credential.to_string()))
}

fn unusable(message: &str) -> ClientError {
    ClientError::new(ErrorCode::Unauthorized, message)
}

/// The authenticated caller. As an extractor it runs before the body is read, so a
/// request with bad credentials is `401` whatever its body.
pub struct Authed(pub Caller);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential = bearer(&parts.headers)?;
        Ok(Authed(
            state.auth.load_full().caller(credential.as_deref()).await?,
        ))
    }
}

/// The header an anonymous session's key travels in over HTTP.
pub const SESSION_KEY_HEADER: &str = "switchboard-session-key";

/// The caller of a session route, and the session key it presents (the
/// `Switchboard-Session-Key` header). Without credentials it is an anonymous visitor
/// when `--allow-anonymous` is on and it presents a key; otherwise as [`Authed`].
pub struct SessionCaller {
    pub caller: Caller,
    pub session_key: Option<String>,
}

/// Like [`SessionCaller`], for routes that open a session (`POST /v1/sessions`,
/// `POST /v1/chat`): without credentials, an anonymous visitor whenever
/// `--allow-anonymous` is on.
pub struct OpeningCaller(pub SessionCaller);

/// The session key of a request: `None` without the header; `unauthorized` for one
/// that cannot be a key (several, empty, not text).
pub fn session_key(headers: &HeaderMap) -> Result<Option<String>, ClientError> {
    let mut values = headers.get_all(SESSION_KEY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(unusable(
            "send one Switchboard-Session-Key header, not several",
        ));
    }
    match value.to_str().map(str::trim) {
        Ok(key) if !key.is_empty() => Ok(Some(key.to_string())),
        _ => Err(unusable(
            "the Switchboard-Session-Key header must hold the session_key given when the session was created",
        )),
    }
}

async fn session_caller(
    parts: &Parts,
    state: &AppState,
    opening: bool,
) -> Result<SessionCaller, ApiError> {
    let credential = bearer(&parts.headers)?;
    let session_key = session_key(&parts.headers)?;
    let welcome = opening || session_key.is_some();
    let caller = state
        .auth
        .load_full()
        .caller_or_anonymous(credential.as_deref(), welcome)
        .await?;
    Ok(SessionCaller {
        caller,
        session_key,
    })
}

impl FromRequestParts<AppState> for SessionCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        session_caller(parts, state, false).await
    }
}

impl FromRequestParts<AppState> for OpeningCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(OpeningCaller(session_caller(parts, state, true).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(values: &[&[u8]]) -> Result<Option<String>, ClientError> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::AUTHORIZATION,
                header::HeaderValue::from_bytes(value).expect("a header value"),
            );
        }
        bearer(&headers)
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_spaces_may_repeat() {
        for value in [
            &b"Bearer t1"[..],
            b"bearer t1",
            b"BEARER   t1",
            b"Bearer t1  ",
        ] {
            assert_eq!(read(&[value]).unwrap(), Some("t1".to_string()), "{value:?}");
        }
        assert_eq!(read(&[]).unwrap(), None);
    }

    #[test]
    fn an_unusable_header_is_unauthorized() {
        for value in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Bearer",
            b"Bearer    ",
            b"Bearer\tt1",
            b"Bearert1",
            b"t1",
            b"Bearer \xff",
        ] {
            let refused = read(&[value]).unwrap_err();
            assert_eq!(refused.code, ErrorCode::Unauthorized, "{value:?}");
        }
        assert!(read(&[b"Bearer a", b"Bearer b"]).is_err());
    }
}
