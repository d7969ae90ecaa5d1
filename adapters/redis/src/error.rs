//! Errors: what `connect` reports at boot, and how a `redis` error becomes one of the
//! backplane's [`ErrorKind`]s.

use std::time::Duration;

use switchboard_backplane::ErrorKind;
use thiserror::Error;

/// Why [`RedisBackplane::connect`](crate::RedisBackplane::connect) failed. Meant to be
/// printed at boot: every message names the server (never its password) and says what
/// to fix.
#[derive(Debug, Clone, Error)]
pub enum ConnectError {
    /// The URL is not a Redis URL this build can use.
    #[error(
        "invalid Redis URL: {0} (expected redis://[user:password@]host[:port][/db] or rediss://…)"
    )]
    InvalidUrl(String),
    /// The key prefix cannot be used.
    #[error("invalid Redis key prefix: {0}")]
    InvalidPrefix(String),
    /// The server could not be reached (refused, reset, DNS, TLS).
    #[error("cannot reach Redis at {target}: {detail}")]
    Unreachable { target: String, detail: String },
    /// The server did not answer in time.
    #[error("Redis at {target} did not answer within {after:?}")]
    Timeout { target: String, after: Duration },
    /// The server answered but refused us (authentication, ACL, a command it lacks).
    #[error("Redis at {target} refused the connection: {detail}")]
    Rejected { target: String, detail: String },
    /// The server is too old or lacks a feature this backplane needs.
    #[error("Redis at {target} is not usable: {detail}")]
    Unsupported { target: String, detail: String },
}

impl ConnectError {
    /// The backplane [`ErrorKind`] closest to this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ConnectError::Unreachable { .. } => ErrorKind::Unavailable,
            ConnectError::Timeout { .. } => ErrorKind::Timeout,
            ConnectError::InvalidUrl(_)
            | ConnectError::InvalidPrefix(_)
            | ConnectError::Rejected { .. }
            | ConnectError::Unsupported { .. } => ErrorKind::Rejected,
        }
    }
}

/// The backplane kind of a `redis` error.
///
/// Connection loss in any form (refused, reset, closed, the manager reconnecting) is
/// `Unavailable`; an I/O timeout is `Timeout`; an answer this build cannot read is
/// `InvalidData`; everything the server refused on purpose (auth, ACL, OOM, a script
/// error) is `Rejected`.
pub(crate) fn kind_of(error: &redis::RedisError) -> ErrorKind {
    use redis::ErrorKind as K;
    if error.is_timeout() {
        return ErrorKind::Timeout;
    }
    if error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
    {
        return ErrorKind::Unavailable;
    }
    match error.kind() {
        // A server still loading its dataset after a restart, a cluster resharding or
        // failing over: all pass by themselves.
        K::BusyLoadingError
        | K::TryAgain
        | K::ClusterDown
        | K::MasterDown
        | K::ClusterConnectionNotFound => ErrorKind::Unavailable,
        K::TypeError | K::ParseError => ErrorKind::InvalidData,
        _ => ErrorKind::Rejected,
    }
}

/// `error` as text with `secret` (a password) blotted out, however the library chose
/// to word it.
pub(crate) fn scrub(text: String, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() && text.contains(secret) => text.replace(secret, "***"),
        _ => text,
    }
}
