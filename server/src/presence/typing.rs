//! The typing rate limit of one connection in one session: a `typing: true` is
//! forwarded at most once per [`TYPING_INTERVAL`]; the ones in between are dropped (the
//! forwarded one stands for them, and receivers show it for
//! `TYPING_SHOWN_MS`). A `typing: false` is forwarded only after a forwarded `true`,
//! so a client alternating the two reaches others at most twice per interval. Dropping
//! is silent: it is not an error and not a strike against the connection.

use std::time::Duration;

use switchboard_protocol::presence::{TYPING_INTERVAL_MS, TYPING_SHOWN_MS};
use tokio::time::Instant;

/// At most one forwarded `typing: true` per this long.
pub(super) const TYPING_INTERVAL: Duration = Duration::from_millis(TYPING_INTERVAL_MS);
/// How long receivers show a `typing: true` without a refresh.
const TYPING_SHOWN: Duration = Duration::from_millis(TYPING_SHOWN_MS);

#[derive(Debug, Default)]
pub(super) struct TypingGate {
    /// When the last `typing: true` was forwarded.
    last_true: Option<Instant>,
    /// A `typing: true` was forwarded and no `typing: false` since.
    started: bool,
}

impl TypingGate {
    /// Whether to forward this `typing` frame, sent at `now`.
    pub(super) fn pass(&mut self, typing: bool, now: Instant) -> bool {
        if typing {
            if self
                .last_true
                .is_some_and(|last| now.saturating_duration_since(last) < TYPING_INTERVAL)
            {
                return false;
            }
            self.last_true = Some(now);
            self.started = true;
            true
        } else {
            std::mem::replace(&mut self.started, false)
        }
    }

    /// Whether receivers may still show this connection as typing at `now` (so its
    /// leaving should clear it).
    pub(super) fn shown(&self, now: Instant) -> bool {
        self.started
            && self
                .last_true
                .is_some_and(|last| now.saturating_duration_since(last) < TYPING_SHOWN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of 50 `typing: true` within the interval is forwarded once; the next
    /// interval forwards one more.
    #[tokio::test(start_paused = true)]
    async fn a_burst_is_forwarded_once_per_interval() {
        let mut gate = TypingGate::default();
        let mut forwarded = 0;
        for _ in 0..50 {
            if gate.pass(true, Instant::now()) {
                forwarded += 1;
            }
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        assert_eq!(forwarded, 1, "50 frames in 500 ms");
        tokio::time::advance(TYPING_INTERVAL).await;
        assert!(gate.pass(true, Instant::now()));
        assert!(!gate.pass(true, Instant::now()));
    }

    /// `false` passes once after a forwarded `true`, never on its own, and does not
    /// reopen the interval: alternating reaches others at most twice per interval.
    #[tokio::test(start_paused = true)]
    async fn stopping_passes_once_after_a_start() {
        let mut gate = TypingGate::default();
        assert!(!gate.pass(false, Instant::now()), "nothing to stop");
        assert!(gate.pass(true, Instant::now()));
        assert!(gate.pass(false, Instant::now()));
        assert!(!gate.pass(false, Instant::now()));
        let mut forwarded = 0;
        for i in 0..20 {
            if gate.pass(i % 2 == 0, Instant::now()) {
                forwarded += 1;
            }
            tokio::time::advance(Duration::from_millis(50)).await;
        }
        assert!(forwarded <= 2, "{forwarded} forwarded in one second");
    }

    /// Receivers stop showing a start after `TYPING_SHOWN` without a refresh.
    #[tokio::test(start_paused = true)]
    async fn a_start_expires_for_receivers() {
        let mut gate = TypingGate::default();
        assert!(!gate.shown(Instant::now()));
        gate.pass(true, Instant::now());
        assert!(gate.shown(Instant::now()));
        tokio::time::advance(TYPING_SHOWN).await;
        assert!(!gate.shown(Instant::now()));
        gate.pass(true, Instant::now());
        gate.pass(false, Instant::now());
        assert!(!gate.shown(Instant::now()), "stopped");
    }
}
