//! When a delivery is tried again, and which answers are worth another try.

use std::time::Duration;

/// How a delivery is retried: after attempt `n` fails retryably, the next comes
/// `first_delay × 2^(n-1)` later (1 s, 2 s, 4 s, 8 s, 16 s by default), until
/// `max_attempts` attempts were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first_delay: Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            first_delay: Duration::from_secs(1),
            max_attempts: 6,
        }
    }
}

impl RetryPolicy {
    /// How long after the failed attempt number `attempts` (1-based) the next one
    /// comes; `None` when that was the last.
    pub fn delay_after(&self, attempts: u32) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let doublings = attempts.saturating_sub(1).min(20);
        Some(self.first_delay.saturating_mul(1 << doublings))
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The endpoint answered with this status; `body` is the start of its answer.
    Answered { status: u16, body: String },
    /// No answer: a timeout, a refused connection, a TLS or protocol error.
    NoAnswer { error: String },
}

/// What an attempt means for its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Worth another attempt: a 5xx, a 429, no answer.
    Retry,
    /// Not worth another: any other status (a redirect is not followed).
    Refused,
}

impl Attempt {
    pub fn verdict(&self) -> Verdict {
        match self {
            Attempt::Answered { status, .. } if (200..300).contains(status) => Verdict::Delivered,
            Attempt::Answered { status, .. } if *status == 429 || *status >= 500 => Verdict::Retry,
            Attempt::Answered { .. } => Verdict::Refused,
            Attempt::NoAnswer { .. } => Verdict::Retry,
        }
    }

    /// The HTTP status, when the endpoint answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Attempt::Answered { status, .. } => Some(*status),
            Attempt::NoAnswer { .. } => None,
        }
    }

    /// What the delivery log says of a failed attempt (`None` for a delivered one).
    pub fn error(&self) -> Option<String> {
        match self {
            Attempt::Answered { status, .. } if (200..300).contains(status) => None,
            Attempt::Answered { status, body } if (300..400).contains(status) => Some(format!(
                "HTTP {status}: redirects are not followed; register the final URL{}",
                snippet(body)
            )),
            Attempt::Answered { status, body } => Some(format!("HTTP {status}{}", snippet(body))),
            Attempt::NoAnswer { error } => Some(error.clone()),
        }
    }
}

/// Characters of an endpoint's answer the delivery log keeps.
const SNIPPET_CHARS: usize = 200;

fn snippet(body: &str) -> String {
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return String::new();
    }
    let cut: String = flat.chars().take(SNIPPET_CHARS).collect();
    format!(": {cut}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_one_second_for_six_attempts() {
        let policy = RetryPolicy::default();
        let delays: Vec<_> = (1..=6).map(|n| policy.delay_after(n)).collect();
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(delays, [secs(1), secs(2), secs(4), secs(8), secs(16), None]);
        let huge = RetryPolicy {
            first_delay: Duration::from_secs(1),
            max_attempts: u32::MAX,
        };
        assert_eq!(huge.delay_after(1_000), Some(Duration::from_secs(1 << 20)));
    }

    #[test]
    fn only_2xx_delivers_and_only_5xx_429_and_silence_retry() {
        let answered = |status| Attempt::Answered {
            status,
            body: String::new(),
        };
        assert_eq!(answered(200).verdict(), Verdict::Delivered);
        assert_eq!(answered(204).verdict(), Verdict::Delivered);
        assert_eq!(answered(500).verdict(), Verdict::Retry);
        assert_eq!(answered(503).verdict(), Verdict::Retry);
        assert_eq!(answered(429).verdict(), Verdict::Retry);
        assert_eq!(answered(400).verdict(), Verdict::Refused);
        assert_eq!(answered(410).verdict(), Verdict::Refused);
        assert_eq!(answered(302).verdict(), Verdict::Refused);
        let silent = Attempt::NoAnswer {
            error: "timed out".into(),
        };
        assert_eq!(silent.verdict(), Verdict::Retry);
        assert_eq!(answered(200).error(), None);
        assert!(answered(302).error().unwrap().contains("redirects"));
        let failed = Attempt::Answered {
            status: 500,
            body: "  oops\n".repeat(100),
        };
        let error = failed.error().unwrap();
        assert!(error.starts_with("HTTP 500: oops oops"), "{error}");
        assert!(error.chars().count() <= 10 + SNIPPET_CHARS, "{error}");
    }
}
