//! Waiting for something to become true, bounded: [`eventually`], and [`POLL`], the
//! interval tests look again at.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

/// How long a test waits before it looks again at something that is not there yet: a
/// server becoming ready, a counter reaching a value, a replica noticing an outage.
/// Short, so a test takes about as long as what it waits for.
pub const POLL: Duration = Duration::from_millis(20);

/// What a probe of [`eventually`] returns: done with a value, or not yet.
///
/// - `Option<T>`: `Some(value)` is done.
/// - `Result<T, E>`: `Ok(value)` is done; the last `Err` is shown if time runs out.
/// - `bool`: `true` is done.
pub trait Attempt {
    type Value;

    /// The value when done; otherwise what to report if this stays the last attempt.
    fn outcome(self) -> Result<Self::Value, Option<String>>;
}

impl<T> Attempt for Option<T> {
    type Value = T;

    fn outcome(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Debug> Attempt for Result<T, E> {
    type Value = T;

    fn outcome(self) -> Result<T, Option<String>> {
        self.map_err(|e| Some(format!("{e:?}")))
    }
}

impl Attempt for bool {
    type Value = ();

    fn outcome(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

/// Calls `probe` every [`POLL`] until it is done (see [`Attempt`]) and returns its value;
/// panics with `what` (and the last failed attempt, when the probe says one) when
/// `within` passes first. A probe still running when time is up is dropped.
pub async fn eventually<A, F, Fut>(within: Duration, what: &str, mut probe: F) -> A::Value
where
    A: Attempt,
    F: FnMut() -> Fut,
    Fut: Future<Output = A>,
{
    let mut last = None;
    let polling = async {
        loop {
            match probe().await.outcome() {
                Ok(value) => return value,
                Err(failed) => last = failed,
            }
            tokio::time::sleep(POLL).await;
        }
    };
    match tokio::time::timeout(within, polling).await {
        Ok(value) => value,
        Err(_) => match last {
            Some(last) => panic!("{what}: not within {within:?}; last attempt: {last}"),
            None => panic!("{what}: not within {within:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_the_first_value_a_probe_is_done_with() {
        let calls = AtomicUsize::new(0);
        let found = eventually(Duration::from_secs(5), "the third call", || async {
            let n = calls.fetch_add(1, Ordering::Relaxed) + 1;
            (n >= 3).then_some(n)
        })
        .await;
        assert_eq!(found, 3);
    }

    #[tokio::test]
    async fn accepts_results_and_bools() {
        let ok: u8 = eventually(Duration::from_secs(5), "ok", || async {
            Ok::<u8, String>(7)
        })
        .await;
        assert_eq!(ok, 7);
        eventually(Duration::from_secs(5), "true", || async { true }).await;
    }

    #[tokio::test]
    async fn a_probe_never_done_panics_with_what_and_the_last_error() {
        let waited = tokio::spawn(eventually(
            Duration::from_millis(100),
            "the impossible",
            || async { Err::<(), _>("still no") },
        ))
        .await
        .unwrap_err();
        let message = waited.into_panic();
        let message = message.downcast_ref::<String>().unwrap();
        assert!(
            message.starts_with("the impossible: not within 100ms")
                && message.ends_with("last attempt: \"still no\""),
            "{message}"
        );
    }
}
