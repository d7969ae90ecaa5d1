//! Dependency checks for `GET /health/deep`: what one check found, and a cache so a
//! check that costs the other side something (the model endpoint, the JWKS URL)
//! runs at most once per interval however often the route is called.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// How a dependency is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeStatus {
    /// Answering as it should.
    Ok,
    /// Answering, but not well (rate limited, server errors): work may fail.
    Degraded,
    /// Not answering, or refusing the gateway: work that needs it fails.
    Down,
}

/// What one check found. The message is for a person and never holds a URL, a
/// credential or a key.
#[derive(Debug, Clone)]
pub struct Probe {
    pub status: ProbeStatus,
    pub message: String,
    /// How long the check took.
    pub latency: Duration,
    /// Whether this is an earlier check's result, from the cache.
    pub cached: bool,
}

impl Probe {
    pub fn new(status: ProbeStatus, message: impl Into<String>, latency: Duration) -> Probe {
        Probe {
            status,
            message: message.into(),
            latency,
            cached: false,
        }
    }

    /// Run `check` under `timeout`, timing it; running out is `down`.
    pub async fn timed<F>(timeout: Duration, check: F) -> Probe
    where
        F: Future<Output = (ProbeStatus, String)>,
    {
        let started = Instant::now();
        match tokio::time::timeout(timeout, check).await {
            Ok((status, message)) => Probe::new(status, message, started.elapsed()),
            Err(_) => Probe::new(
                ProbeStatus::Down,
                format!("no answer within {}", humantime::format_duration(timeout)),
                started.elapsed(),
            ),
        }
    }
}

/// The last result of a costly check, reused for `ttl`. Callers that arrive while a
/// check runs wait for it instead of starting their own.
pub struct ProbeCache {
    ttl: Duration,
    last: tokio::sync::Mutex<Option<(Instant, Probe)>>,
}

impl ProbeCache {
    pub fn new(ttl: Duration) -> ProbeCache {
        ProbeCache {
            ttl,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The cached result if younger than the ttl, else `check`'s (then cached).
    pub async fn get_or_check<F, Fut>(&self, check: F) -> Probe
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Probe>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, probe)) = last.as_ref()
            && at.elapsed() < self.ttl
        {
            return Probe {
                cached: true,
                ..probe.clone()
            };
        }
        let probe = check().await;
        *last = Some((Instant::now(), probe.clone()));
        probe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_check_is_reused_for_its_ttl_then_run_again() {
        let cache = ProbeCache::new(Duration::from_secs(10));
        let runs = std::sync::atomic::AtomicUsize::new(0);
        let check = || async {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Probe::new(ProbeStatus::Ok, "fine", Duration::from_millis(3))
        };
        assert!(!cache.get_or_check(check).await.cached);
        tokio::time::advance(Duration::from_secs(9)).await;
        let again = cache.get_or_check(check).await;
        assert!(again.cached);
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!cache.get_or_check(check).await.cached);
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_runs_out_of_time_is_down() {
        let probe = Probe::timed(Duration::from_secs(2), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (ProbeStatus::Ok, String::new())
        })
        .await;
        assert_eq!(probe.status, ProbeStatus::Down);
        assert!(probe.message.contains("2s"), "{}", probe.message);
    }
}
