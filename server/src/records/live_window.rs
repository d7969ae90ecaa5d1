//! This replica's live sessions: how many sessions it created within the last
//! `--unused-session-ttl`, counted in coarse time buckets so the count costs a few
//! hundred bytes whatever the number of sessions.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Buckets one window is cut into: the count is exact to a sixtieth of the window.
const BUCKETS: u32 = 60;

/// Sessions created in the last `ttl`, by bucket.
#[derive(Debug)]
pub struct LiveWindow {
    ttl: Duration,
    width: Duration,
    /// `(bucket start, sessions created in it)`, oldest first.
    buckets: VecDeque<(Instant, u64)>,
    total: u64,
}

/// A session counted in the window, to give back if its creation did not happen.
#[derive(Debug, Clone, Copy)]
pub struct Reservation {
    bucket: Instant,
}

impl LiveWindow {
    pub fn new(ttl: Duration) -> LiveWindow {
        LiveWindow {
            ttl,
            width: (ttl / BUCKETS).max(Duration::from_secs(1)),
            buckets: VecDeque::new(),
            total: 0,
        }
    }

    /// Forget buckets whose every session is older than the window.
    fn expire(&mut self, now: Instant) {
        while let Some(&(start, count)) = self.buckets.front() {
            // A bucket counts until its newest possible session left the window.
            if start + self.width + self.ttl > now {
                break;
            }
            self.total = self.total.saturating_sub(count);
            self.buckets.pop_front();
        }
    }

    /// Live sessions now.
    pub fn live(&mut self, now: Instant) -> u64 {
        self.expire(now);
        self.total
    }

    /// Count one more session, unless `max` are live: then how long until one leaves.
    pub fn reserve(&mut self, now: Instant, max: u64) -> Result<Reservation, Duration> {
        self.expire(now);
        if self.total >= max {
            let wait = self.buckets.front().map_or(self.width, |&(start, _)| {
                (start + self.width + self.ttl).saturating_duration_since(now)
            });
            return Err(wait.max(Duration::from_secs(1)));
        }
        let bucket = match self.buckets.back_mut() {
            Some((start, count)) if now < *start + self.width => {
                *count += 1;
                *start
            }
            _ => {
                self.buckets.push_back((now, 1));
                now
            }
        };
        self.total += 1;
        Ok(Reservation { bucket })
    }

    /// Uncount a reserved session whose creation was refused or failed.
    pub fn release(&mut self, reservation: Reservation) {
        if let Some((_, count)) = self
            .buckets
            .iter_mut()
            .find(|(start, count)| *start == reservation.bucket && *count > 0)
        {
            *count -= 1;
            self.total = self.total.saturating_sub(1);
        }
    }

    /// How often [`LiveWindow::live`] changes at most: the bucket width.
    pub fn resolution(&self) -> Duration {
        self.width
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sessions_leave_the_window_after_the_ttl_and_free_their_places() {
        let ttl = Duration::from_secs(3600);
        let mut window = LiveWindow::new(ttl);
        let start = Instant::now();
        for _ in 0..3 {
            window.reserve(Instant::now(), 3).unwrap();
        }
        let wait = window.reserve(Instant::now(), 3).unwrap_err();
        assert!(
            wait >= ttl && wait <= ttl + window.resolution(),
            "the first place frees after the ttl: {wait:?}"
        );
        tokio::time::advance(ttl / 2).await;
        assert_eq!(window.live(Instant::now()), 3, "still live half-way");
        assert!(window.reserve(Instant::now(), 3).is_err());
        tokio::time::advance(ttl / 2 + window.resolution()).await;
        assert_eq!(window.live(Instant::now()), 0, "all gone after the ttl");
        assert!(Instant::now() >= start + ttl);
        window.reserve(Instant::now(), 3).unwrap();
        assert_eq!(window.live(Instant::now()), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_reservation_gives_its_place_back() {
        let mut window = LiveWindow::new(Duration::from_secs(600));
        let reservation = window.reserve(Instant::now(), 1).unwrap();
        assert!(window.reserve(Instant::now(), 1).is_err());
        window.release(reservation);
        assert_eq!(window.live(Instant::now()), 0);
        window.reserve(Instant::now(), 1).unwrap();
        // A second release of the same bucket finds it counted once only.
        window.release(reservation);
        window.release(reservation);
        assert_eq!(window.live(Instant::now()), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_a_bucket_per_sixtieth_of_the_window_however_many_sessions() {
        let ttl = Duration::from_secs(600);
        let mut window = LiveWindow::new(ttl);
        for _ in 0..600 {
            for _ in 0..100 {
                window.reserve(Instant::now(), u64::MAX).unwrap();
            }
            tokio::time::advance(Duration::from_secs(2)).await;
        }
        assert!(window.buckets.len() <= BUCKETS as usize + 1);
        assert!(window.live(Instant::now()) <= 100 * 305);
    }
}
