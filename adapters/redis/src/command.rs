//! Running one command: under the command timeout, failing as `(kind, message)` with
//! the password scrubbed; and the numbers that go to and come from Redis.

use std::future::Future;
use std::time::Duration;

use redis::RedisResult;
use switchboard_backplane::ErrorKind;

use crate::RedisBackplane;
use crate::error;

/// A failure as the backplane errors take it: a kind and a message.
pub(crate) type Failure = (ErrorKind, String);

/// The longest `max_age` or TTL passed to Redis (100 years): Redis refuses expiry times
/// that overflow its clock, and `Duration::MAX` is a valid `Retention`.
pub(crate) const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl RedisBackplane {
    /// Runs `command` under the command timeout, as `(kind, message)` on failure.
    pub(crate) async fn run<T>(
        &self,
        what: &str,
        command: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.options.command_timeout, command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err((
                error::kind_of(&error),
                format!(
                    "{what} at {}: {}",
                    self.target,
                    error::scrub(error.to_string(), self.secret.as_deref())
                ),
            )),
            Err(_) => Err((
                ErrorKind::Timeout,
                format!(
                    "{what}: no answer from {} within {:?}",
                    self.target, self.options.command_timeout
                ),
            )),
        }
    }
}

/// Milliseconds of `d`, rounded up (a 0.5 ms TTL is 1 ms, not "none"), capped at
/// [`LONGEST`].
pub(crate) fn millis(d: Duration) -> u64 {
    let d = d.min(LONGEST);
    let ms = d.as_millis() as u64;
    if Duration::from_millis(ms) < d {
        ms + 1
    } else {
        ms
    }
}

/// Parses a decimal seq or ts the scripts returned.
pub(crate) fn number(bytes: &[u8], what: &str) -> Result<u64, Failure> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            (
                ErrorKind::InvalidData,
                format!(
                    "the script returned {what} {:?}, not a number",
                    String::from_utf8_lossy(bytes)
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_rounds_up_and_caps() {
        assert_eq!(millis(Duration::from_micros(500)), 1);
        assert_eq!(millis(Duration::from_millis(300)), 300);
        assert_eq!(millis(Duration::MAX), LONGEST.as_millis() as u64);
    }
}
