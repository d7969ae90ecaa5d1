//! The per-connection frame rate limit (`--max-frames-per-second`).

use switchboard_protocol::ErrorCode;

use crate::error::ClientError;

/// A token bucket: `rate` frames per second with bursts of `rate`.
pub(super) struct RateLimit {
    rate: f64,
    tokens: f64,
    last: tokio::time::Instant,
}

impl RateLimit {
    pub(super) fn new(rate: u32) -> RateLimit {
        RateLimit {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: tokio::time::Instant::now(),
        }
    }

    pub(super) fn allow(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The answer to a frame over the rate: it was not processed.
pub(super) fn rate_limited(rate: u32) -> ClientError {
    ClientError::new(
        ErrorCode::RateLimited,
        format!("more than {rate} frames per second; this frame was not processed, slow down"),
    )
}
