//! Errors that reach a client: always one of the protocol's codes with a message a
//! person can act on.

use switchboard_backplane::{AppendError, ReadError, RecordError, StreamError, SubscribeError};
use switchboard_protocol::ErrorCode;

/// An error answered to a client frame or an HTTP request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ClientError {
    pub code: ErrorCode,
    pub message: String,
    /// When a retry can succeed (`retry_after_ms` of the `error` frame), if known.
    pub retry_after: Option<std::time::Duration>,
}

impl ClientError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ClientError {
        ClientError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, telling the client when a retry can succeed.
    pub fn retry_after(mut self, wait: std::time::Duration) -> ClientError {
        self.retry_after = Some(wait);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ClientError {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ClientError {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// The one answer for a session that does not exist or may not be seen: the same
    /// text either way, so nobody learns whether another org's session exists.
    pub fn session_not_found() -> ClientError {
        Self::new(
            ErrorCode::NotFound,
            "no such session, or this connection may not join it (check the session id, and the session_key for anonymous sessions)",
        )
    }

    pub fn draining() -> ClientError {
        Self::new(
            ErrorCode::Unavailable,
            "this replica is draining; reconnect (to another replica) and retry",
        )
    }
}

macro_rules! from_backplane {
    ($($t:ty),*) => {$(
        impl From<$t> for ClientError {
            fn from(e: $t) -> ClientError {
                if e.kind.is_transient() {
                    tracing::warn!(error = %e, "backplane unavailable");
                    ClientError::new(
                        ErrorCode::Unavailable,
                        "the backplane is unavailable right now; retry in a moment",
                    )
                } else {
                    tracing::error!(error = %e, "backplane error");
                    ClientError::new(ErrorCode::Internal, "the server could not complete this request")
                }
            }
        }
    )*};
}

from_backplane!(
    AppendError,
    ReadError,
    RecordError,
    StreamError,
    SubscribeError
);

impl From<switchboard_store::StoreError> for ClientError {
    fn from(e: switchboard_store::StoreError) -> ClientError {
        if e.is_transient() {
            tracing::warn!(error = %e, "conversation store unavailable");
            ClientError::new(
                ErrorCode::Unavailable,
                "the conversation store is unavailable right now; retry in a moment",
            )
        } else {
            tracing::error!(error = %e, "conversation store error");
            ClientError::new(
                ErrorCode::Internal,
                "the server could not complete this request",
            )
        }
    }
}
