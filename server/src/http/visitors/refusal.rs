//! A connection or upgrade refused by a limit: the protocol's JSON error, its status
//! (429 for one client's limits, 503 for the process's) and `Retry-After`.

use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use switchboard_protocol::ErrorCode;

use super::address_limits::Exceeded;
use crate::http::error::json_error;

/// What to wait before retrying a limit on open connections: one closes at any time.
const RETRY_OPEN: Duration = Duration::from_secs(5);

/// Why a connection or an upgrade was refused.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The `limit` label of `switchboard_connections_refused_total`.
    pub limit: &'static str,
    pub code: ErrorCode,
    pub message: &'static str,
    pub retry_after: Duration,
}

impl Refusal {
    /// The process holds `--max-tcp-connections` or `--max-connections`, or tracks as
    /// many addresses as it may.
    pub fn process(limit: &'static str, message: &'static str) -> Refusal {
        Refusal {
            limit,
            code: ErrorCode::Unavailable,
            message,
            retry_after: RETRY_OPEN,
        }
    }

    /// One address is past a per-address limit. `open_limit`/`rate_limit` name the
    /// metric labels, `open`/`rate` the messages.
    pub fn per_address(exceeded: Exceeded, labels: PerAddressLabels) -> Refusal {
        match exceeded {
            Exceeded::Open => Refusal {
                limit: labels.open_limit,
                code: ErrorCode::RateLimited,
                message: labels.open_message,
                retry_after: RETRY_OPEN,
            },
            Exceeded::Rate { retry_after } => Refusal {
                limit: labels.rate_limit,
                code: ErrorCode::RateLimited,
                message: labels.rate_message,
                retry_after,
            },
            Exceeded::Table => Refusal::process(
                "addresses",
                "this replica is tracking as many visitor addresses as it may; retry later",
            ),
        }
    }

    /// `{"error":{"code","message"}}` with the code's status and `Retry-After` in whole
    /// seconds (rounded up, at least 1).
    pub fn response(&self) -> Response {
        let mut response = json_error(self.code, self.message);
        let seconds = self
            .retry_after
            .as_secs()
            .saturating_add(u64::from(self.retry_after.subsec_nanos() > 0))
            .max(1);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        response
    }
}

/// How a per-address table names its limits.
#[derive(Debug, Clone, Copy)]
pub struct PerAddressLabels {
    pub open_limit: &'static str,
    pub open_message: &'static str,
    pub rate_limit: &'static str,
    pub rate_message: &'static str,
}
