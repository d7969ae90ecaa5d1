//! Every error code and WebSocket close code of the protocol, in one file
//! (docs/protocol.md §5.2, §5.4).
//!
//! # Close code ranges
//!
//! | code | meaning | should the client reconnect? |
//! |---|---|---|
//! | 1009 | a frame exceeded `max_frame_bytes` | yes, after fixing the frame |
//! | 1011 | the handshake could not be completed (the JWT keys cannot be fetched), or the connection failed on the server | yes, with backoff |
//! | 1012 | the replica is draining (after a `goaway` frame) | yes, at once, with `after_seq` |
//! | 4008 | slow consumer: the outbound queue overflowed | yes, with `after_seq`: nothing is lost |
//! | 4029 | too many bad or rate-limited frames in a row | yes, with backoff, and fix the client |
//! | 4401 | unauthorized or token expired | only with a new token |
//! | 4000 | the peer stopped answering heartbeats | yes, with `after_seq` |
//!
//! Codes 4000–4399 are "reconnect and resume"; 4400–4499 are "do not reconnect with the
//! same credentials". Widget and SDK authors should read only this file.

use serde::{Deserialize, Serialize};

/// The `code` of an `error` frame (WebSocket) or of an HTTP error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, an unknown `type`, or a missing or mistyped field.
    BadRequest,
    /// The credentials did not verify: at the handshake the connection closes with 4401;
    /// a refused `auth.refresh` leaves it open with its current token.
    Unauthorized,
    /// The token expired without an `auth.refresh`; the connection closes with 4401.
    TokenExpired,
    /// The principal may not do this.
    Forbidden,
    /// No such session, turn, tool call or document, or one the principal may not see:
    /// the two are indistinguishable.
    NotFound,
    /// The request conflicts with the current state (e.g. a limit on joined sessions, a
    /// tool call already decided).
    Conflict,
    /// A frame or a field is larger than the configured limit.
    TooLarge,
    /// Too fast: frames over the configured rate, or too many turns queued in a session.
    RateLimited,
    /// The org's daily token budget (`--org-daily-token-budget`) is spent: no new turn
    /// starts until it resets at 00:00 UTC. The message was not stored.
    BudgetExhausted,
    /// The server does not support this (e.g. a binary frame).
    Unsupported,
    /// The backplane is unreachable, the replica is draining, or the JWT keys cannot be
    /// fetched; retry later (on another replica).
    Unavailable,
    /// A bug or an unexpected failure on the server.
    Internal,
}

impl ErrorCode {
    /// The wire spelling, e.g. `"bad_request"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::BudgetExhausted => "budget_exhausted",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status that goes with this code on the HTTP surface.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized | ErrorCode::TokenExpired => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::TooLarge => 413,
            ErrorCode::RateLimited | ErrorCode::BudgetExhausted => 429,
            ErrorCode::Unsupported => 415,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the server closed a WebSocket. `code()` is what goes in the close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1009: a frame larger than `max_frame_bytes`.
    MessageTooBig,
    /// 1011: the handshake could not be completed (the JWT keys cannot be fetched), or
    /// the connection failed on the server (its task panicked).
    InternalError,
    /// 1012: the replica is draining; a `goaway` frame came first. Resume elsewhere.
    Draining,
    /// 4000: no frame (not even a pong) arrived within the heartbeat timeout.
    HeartbeatTimeout,
    /// 4008: the client did not read fast enough and its outbound queue overflowed.
    SlowConsumer,
    /// 4029: too many bad or rate-limited frames in a row.
    TooManyBadFrames,
    /// 4401: the credentials did not verify, or the token expired.
    Unauthorized,
}

impl CloseCode {
    /// The numeric close code.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::MessageTooBig => 1009,
            CloseCode::InternalError => 1011,
            CloseCode::Draining => 1012,
            CloseCode::HeartbeatTimeout => 4000,
            CloseCode::SlowConsumer => 4008,
            CloseCode::TooManyBadFrames => 4029,
            CloseCode::Unauthorized => 4401,
        }
    }

    /// The close frame's reason text (at most 123 bytes by RFC 6455).
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::MessageTooBig => "frame too large",
            CloseCode::InternalError => "internal error",
            CloseCode::Draining => "draining",
            CloseCode::HeartbeatTimeout => "heartbeat timeout",
            CloseCode::SlowConsumer => "slow consumer",
            CloseCode::TooManyBadFrames => "too many bad frames",
            CloseCode::Unauthorized => "unauthorized",
        }
    }

    /// Whether a client should reconnect (and resume with `after_seq`) after this close.
    pub fn should_reconnect(self) -> bool {
        !matches!(self, CloseCode::Unauthorized)
    }

    /// The close code for a numeric value, if it is one of ours.
    pub fn from_code(code: u16) -> Option<CloseCode> {
        [
            CloseCode::MessageTooBig,
            CloseCode::InternalError,
            CloseCode::Draining,
            CloseCode::HeartbeatTimeout,
            CloseCode::SlowConsumer,
            CloseCode::TooManyBadFrames,
            CloseCode::Unauthorized,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_have_their_wire_spelling() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::TokenExpired,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::TooLarge,
            ErrorCode::RateLimited,
            ErrorCode::BudgetExhausted,
            ErrorCode::Unsupported,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, code);
        }
    }

    #[test]
    fn close_codes_round_trip_through_their_numbers() {
        for code in [1009, 1011, 1012, 4000, 4008, 4029, 4401] {
            assert_eq!(CloseCode::from_code(code).map(CloseCode::code), Some(code));
        }
        assert_eq!(CloseCode::from_code(1000), None);
        assert!(!CloseCode::Unauthorized.should_reconnect());
        assert!(CloseCode::SlowConsumer.should_reconnect());
    }
}
