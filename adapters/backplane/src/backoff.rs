//! The one retry schedule of the workspace: exponential backoff with jitter.
//!
//! Every loop that retries something remote (a resubscribe, a reconnect, a lease, an
//! append through an outage, a model request) waits by a [`Backoff`], so the delays,
//! their cap and their jitter are written once and tested once.

use std::time::Duration;

/// Delays that double from `first` up to `max`, each lengthened by a random share of
/// itself (up to `jitter`) so that many replicas failing together do not retry in
/// lockstep.
///
/// ```
/// # use std::time::Duration;
/// # use switchboard_backplane::Backoff;
/// let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
/// assert_eq!(backoff.next_delay(), Duration::from_millis(50));
/// assert_eq!(backoff.next_delay(), Duration::from_millis(100));
/// backoff.reset();
/// assert_eq!(backoff.next_delay(), Duration::from_millis(50));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    /// Share of a delay added at random, in `[0, 1]`.
    jitter: f64,
    next: Duration,
}

impl Backoff {
    /// Delays `first`, `2 × first`, … capped at `max`, with no jitter.
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            jitter: 0.0,
            next: first,
        }
    }

    /// Lengthen every delay by a random share of itself, up to `share` (clamped to
    /// `[0, 1]`): `0.25` makes a 100 ms delay anything from 100 to 125 ms.
    pub fn with_jitter(mut self, share: f64) -> Backoff {
        self.jitter = share.clamp(0.0, 1.0);
        self
    }

    /// The delay to wait now; the next one is twice as long, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        self.jittered(delay)
    }

    /// The delay of retry number `attempt` (0 for the first), without changing the
    /// schedule: for callers that count attempts themselves.
    pub fn delay_for(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        self.jittered(self.first.saturating_mul(factor).min(self.max))
    }

    /// Sleep for [`Backoff::next_delay`] (on the Tokio clock, so paused-clock tests
    /// see no real wait).
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// Start over from the first delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    fn jittered(&self, delay: Duration) -> Duration {
        if self.jitter <= 0.0 {
            return delay;
        }
        delay + delay.mul_f64(self.jitter * unit_random())
    }
}

/// A number in `[0, 1)` from the clock's nanoseconds and a per-process counter: enough
/// to spread retries apart, with no random-number crate.
fn unit_random() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    // splitmix64 of the two: consecutive calls land far apart.
    let mut z = nanos ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_up_to_the_cap_and_reset_starts_over() {
        let mut backoff = Backoff::new(20 * MS, 100 * MS);
        let delays: Vec<_> = (0..5).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays, [20 * MS, 40 * MS, 80 * MS, 100 * MS, 100 * MS]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), 20 * MS);
    }

    #[test]
    fn jitter_only_lengthens_and_by_at_most_its_share() {
        let mut backoff = Backoff::new(100 * MS, 100 * MS).with_jitter(0.25);
        let delays: Vec<_> = (0..200).map(|_| backoff.next_delay()).collect();
        assert!(delays.iter().all(|d| *d >= 100 * MS && *d <= 125 * MS));
        assert!(
            delays.iter().any(|d| *d != delays[0]),
            "jitter spreads the delays"
        );
    }

    #[test]
    fn delay_for_an_attempt_follows_the_same_schedule_without_overflow() {
        let backoff = Backoff::new(10 * MS, Duration::from_secs(1));
        assert_eq!(backoff.delay_for(0), 10 * MS);
        assert_eq!(backoff.delay_for(3), 80 * MS);
        assert_eq!(backoff.delay_for(u32::MAX), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_sleeps_on_the_tokio_clock() {
        let mut backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(60));
        let before = tokio::time::Instant::now();
        backoff.wait().await;
        assert_eq!(before.elapsed(), Duration::from_secs(30));
    }
}
