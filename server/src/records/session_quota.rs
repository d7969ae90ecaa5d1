//! Session quotas (docs/operations.md, "Running on the public internet"): before a
//! session is created, its principal's quotas and this replica's cap are checked.
//!
//! - Per principal, across replicas: a shared record, `session-quotas/<principal>`,
//!   holds when the principal created each session of the last
//!   `--unused-session-ttl` (a list of times, at most `--max-live-sessions-per-principal`
//!   long). It is changed by compare-and-set, so replicas sharing a backplane share
//!   the count; it expires with its newest entry.
//! - Per replica: [`LiveWindow`] counts the sessions this replica created in the
//!   same window (`--max-live-sessions`).
//!
//! A principal is a signed-in user (org and `user_id`) or an anonymous visitor's
//! address, an IPv6 one by its /64 (one host usually holds a whole /64). Keys are
//! hashed: the records name no user and no address.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use switchboard_backplane::{Backplane, RecordKey};
use switchboard_protocol::{ErrorCode, Principal};

use super::live_window::{LiveWindow, Reservation};
use crate::config::SessionQuotas;
use crate::error::ClientError;
use crate::metrics::Metrics;
use crate::records::namespace::SESSION_QUOTAS;

/// Compare-and-set attempts on a principal's record before giving up for now.
const CAS_ATTEMPTS: usize = 8;
const MINUTE_MS: u64 = 60_000;

/// The quotas, checked before each `session.create`.
pub struct SessionQuota {
    backplane: Arc<dyn Backplane>,
    limits: SessionQuotas,
    live: Mutex<LiveWindow>,
    metrics: Arc<Metrics>,
}

/// A principal's place in the quotas, held by a creation until it happened.
pub struct Admission {
    reservation: Reservation,
}

/// The creator of a session, as the quotas count it.
struct Creator {
    /// The record key: a hash.
    key: String,
    /// How an answer names it: "this user" or "this visitor".
    called: &'static str,
}

fn hash(parts: &[&str]) -> String {
    let mut digest = Sha256::new();
    for part in parts {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    digest.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Creator {
    fn of(access: &Principal, client: Option<IpAddr>) -> Creator {
        match (&access.user_id, access.anonymous) {
            (Some(user_id), false) => Creator {
                key: format!("u_{}", hash(&["user", &access.org_id, user_id])),
                called: "user",
            },
            _ => Creator {
                key: format!("v_{}", hash(&["visitor", &visitor_address(client)])),
                called: "visitor",
            },
        }
    }
}

/// The address a visitor is counted by: IPv4 as is, IPv6 by its /64.
fn visitor_address(client: Option<IpAddr>) -> String {
    match client.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        // In-process connections (tests) have no address: all of them are one visitor.
        None => "in-process".to_string(),
    }
}

/// What a principal's list of creation times says about one more at `now_ms`.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Create it; the list to store.
    Admit(Vec<u64>),
    /// `per_minute` sessions in the last minute; a place frees in this many ms.
    TooFast { count: usize, retry_ms: u64 },
    /// `max_live` live sessions; a place frees in this many ms.
    TooMany { count: usize, retry_ms: u64 },
}

fn judge(created: &[u64], now_ms: u64, limits: &SessionQuotas) -> Verdict {
    let ttl_ms = u64::try_from(limits.unused_session_ttl.as_millis()).unwrap_or(u64::MAX);
    // A time ahead of this replica's clock (another replica's skew) counts as now.
    let mut live: Vec<u64> = created
        .iter()
        .map(|&t| t.min(now_ms))
        .filter(|&t| t.saturating_add(ttl_ms) > now_ms)
        .collect();
    live.sort_unstable();
    let minute_ago = now_ms.saturating_sub(MINUTE_MS);
    let last_minute: Vec<u64> = live.iter().copied().filter(|&t| t > minute_ago).collect();
    if let Some(&oldest) = last_minute.first()
        && last_minute.len() >= limits.sessions_per_minute as usize
    {
        return Verdict::TooFast {
            count: last_minute.len(),
            retry_ms: (oldest + MINUTE_MS).saturating_sub(now_ms).max(1),
        };
    }
    if let Some(&oldest) = live.first()
        && live.len() >= limits.max_live_sessions_per_principal as usize
    {
        return Verdict::TooMany {
            count: live.len(),
            retry_ms: oldest.saturating_add(ttl_ms).saturating_sub(now_ms).max(1),
        };
    }
    live.push(now_ms);
    Verdict::Admit(live)
}

fn lock(window: &Mutex<LiveWindow>) -> MutexGuard<'_, LiveWindow> {
    window
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whole seconds, rounded up, for a message.
fn seconds(wait: Duration) -> u64 {
    wait.as_millis()
        .div_ceil(1000)
        .try_into()
        .unwrap_or(u64::MAX)
}

impl SessionQuota {
    pub fn new(
        backplane: Arc<dyn Backplane>,
        limits: SessionQuotas,
        metrics: Arc<Metrics>,
    ) -> SessionQuota {
        SessionQuota {
            backplane,
            live: Mutex::new(LiveWindow::new(limits.unused_session_ttl)),
            limits,
            metrics,
        }
    }

    /// `--unused-session-ttl`.
    pub fn unused_session_ttl(&self) -> Duration {
        self.limits.unused_session_ttl
    }

    fn refused(&self, limit: &str) {
        self.metrics
            .session_creations_refused
            .with_label_values(&[limit])
            .inc();
    }

    /// Take a place for one more session of `access` (from `client`), or the answer
    /// past a quota. A creation that then fails gives its place back with
    /// [`SessionQuota::cancel`].
    pub async fn admit(
        &self,
        access: &Principal,
        client: Option<IpAddr>,
    ) -> Result<Admission, ClientError> {
        let max = u64::from(self.limits.max_live_sessions);
        let reserved = {
            let mut live = lock(&self.live);
            let reserved = live.reserve(tokio::time::Instant::now(), max);
            self.metrics
                .sessions_live
                .set(i64::try_from(live.live(tokio::time::Instant::now())).unwrap_or(i64::MAX));
            reserved
        };
        let reservation = match reserved {
            Ok(reservation) => reservation,
            Err(wait) => {
                self.refused("process");
                return Err(ClientError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "this server holds {max} new sessions, its limit; retry in {} s, or join a session you already have",
                        seconds(wait)
                    ),
                )
                .retry_after(wait));
            }
        };
        match self
            .take_principal_place(&Creator::of(access, client))
            .await
        {
            Ok(()) => Ok(Admission { reservation }),
            Err(e) => {
                self.give_back(reservation);
                Err(e)
            }
        }
    }

    /// A creation that did not happen: its place in this replica's count is free
    /// again. (Its entry in the principal's record stays: failing closed, it counts
    /// until it expires.)
    pub fn cancel(&self, admission: Admission) {
        self.give_back(admission.reservation);
    }

    fn give_back(&self, reservation: Reservation) {
        let mut live = lock(&self.live);
        live.release(reservation);
        self.metrics
            .sessions_live
            .set(i64::try_from(live.live(tokio::time::Instant::now())).unwrap_or(i64::MAX));
    }

    /// Add now to the principal's record, unless a quota is full.
    async fn take_principal_place(&self, creator: &Creator) -> Result<(), ClientError> {
        let key = RecordKey::new(SESSION_QUOTAS, &creator.key);
        for _ in 0..CAS_ATTEMPTS {
            let current = self.backplane.record_get(&key).await?;
            let created: Vec<u64> = match &current {
                Some(bytes) => serde_json::from_slice(bytes).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "unreadable session quota record; starting it again");
                    Vec::new()
                }),
                None => Vec::new(),
            };
            let now_ms = switchboard_backplane::now_ms();
            let next = match judge(&created, now_ms, &self.limits) {
                Verdict::Admit(next) => next,
                Verdict::TooFast { count, retry_ms } => {
                    self.refused("per_minute");
                    let wait = Duration::from_millis(retry_ms);
                    return Err(ClientError::new(
                        ErrorCode::RateLimited,
                        format!(
                            "this {} created {count} sessions in the last minute, the limit; join a session you already have, or retry in {} s",
                            creator.called,
                            seconds(wait)
                        ),
                    )
                    .retry_after(wait));
                }
                Verdict::TooMany { count, retry_ms } => {
                    self.refused("per_principal");
                    let wait = Duration::from_millis(retry_ms);
                    return Err(ClientError::new(
                        ErrorCode::RateLimited,
                        format!(
                            "this {} holds {count} live sessions, the limit; join one of them, or retry in {} s",
                            creator.called,
                            seconds(wait)
                        ),
                    )
                    .retry_after(wait));
                }
            };
            let value = Bytes::from(serde_json::to_vec(&next).map_err(|e| {
                ClientError::new(ErrorCode::Internal, format!("session quota record: {e}"))
            })?);
            let ttl = Some(self.limits.unused_session_ttl);
            let stored = match current {
                None => self.backplane.record_create(&key, value, ttl).await?,
                Some(old) => {
                    self.backplane
                        .record_replace(&key, &old, Some(value), ttl)
                        .await?
                }
            };
            if stored {
                return Ok(());
            }
        }
        self.refused("contention");
        let wait = Duration::from_secs(1);
        Err(ClientError::new(
            ErrorCode::RateLimited,
            format!(
                "this {} is creating many sessions at once; retry in a second",
                creator.called
            ),
        )
        .retry_after(wait))
    }

    /// Keep `switchboard_sessions_live` current while nobody creates sessions.
    pub async fn run_gauge(self: Arc<Self>) {
        let every = lock(&self.live).resolution();
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let live = lock(&self.live).live(tokio::time::Instant::now());
            self.metrics
                .sessions_live
                .set(i64::try_from(live).unwrap_or(i64::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_backplane::memory::MemoryBackplane;

    fn limits(per_minute: u32, per_principal: u32, process: u32) -> SessionQuotas {
        SessionQuotas {
            sessions_per_minute: per_minute,
            max_live_sessions_per_principal: per_principal,
            max_live_sessions: process,
            unused_session_ttl: Duration::from_secs(3600),
        }
    }

    fn visitor() -> Principal {
        Principal {
            user_id: None,
            org_id: "default".into(),
            groups: vec![],
            roles: vec![],
            anonymous: true,
            name: None,
        }
    }

    fn user(id: &str) -> Principal {
        Principal {
            user_id: Some(id.into()),
            anonymous: false,
            ..visitor()
        }
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn the_minute_quota_frees_a_place_when_its_oldest_creation_is_a_minute_old() {
        let limits = limits(3, 100, 100);
        let now = 10_000_000;
        let created = [now - 50_000, now - 20_000, now - 1_000];
        assert_eq!(
            judge(&created, now, &limits),
            Verdict::TooFast {
                count: 3,
                retry_ms: 10_000
            }
        );
        // Older ones count as live, not in the minute.
        let created = [now - 3_000_000, now - 70_000, now - 1_000];
        let Verdict::Admit(next) = judge(&created, now, &limits) else {
            panic!("admitted");
        };
        assert_eq!(next, vec![now - 3_000_000, now - 70_000, now - 1_000, now]);
    }

    #[test]
    fn the_live_quota_counts_the_last_ttl_and_forgets_older_creations() {
        let limits = limits(100, 2, 100);
        let now = 10_000_000;
        let created = [now - 4_000_000, now - 3_000_000, now - 120_000];
        assert_eq!(
            judge(&created, now, &limits),
            Verdict::TooMany {
                count: 2,
                retry_ms: 600_000
            }
        );
        let created = [now - 4_000_000, now - 3_700_000, now - 120_000];
        assert!(matches!(judge(&created, now, &limits), Verdict::Admit(v) if v.len() == 2));
    }

    #[test]
    fn a_time_from_a_clock_ahead_counts_as_now_not_forever() {
        let limits = limits(1, 100, 100);
        let now = 10_000_000;
        assert_eq!(
            judge(&[u64::MAX], now, &limits),
            Verdict::TooFast {
                count: 1,
                retry_ms: 60_000
            }
        );
    }

    #[test]
    fn visitors_are_counted_by_address_an_ipv6_one_by_its_slash_64_and_users_by_org_and_id() {
        let key = |p: &Principal, c: Option<IpAddr>| Creator::of(p, c).key;
        assert_eq!(
            key(&visitor(), ip("10.0.0.1")),
            key(&visitor(), ip("10.0.0.1"))
        );
        assert_ne!(
            key(&visitor(), ip("10.0.0.1")),
            key(&visitor(), ip("10.0.0.2"))
        );
        assert_eq!(
            key(&visitor(), ip("2001:db8:1:2::1")),
            key(&visitor(), ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            key(&visitor(), ip("2001:db8:1:2::1")),
            key(&visitor(), ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            key(&visitor(), ip("::ffff:10.0.0.1")),
            key(&visitor(), ip("10.0.0.1"))
        );
        // A user is the same user from any address, and not a visitor.
        assert_eq!(
            key(&user("u1"), ip("10.0.0.1")),
            key(&user("u1"), ip("10.0.0.9"))
        );
        assert_ne!(
            key(&user("u1"), ip("10.0.0.1")),
            key(&user("u2"), ip("10.0.0.1"))
        );
        let other_org = Principal {
            org_id: "acme".into(),
            ..user("u1")
        };
        assert_ne!(key(&user("u1"), None), key(&other_org, None));
        assert!(!key(&visitor(), ip("10.0.0.1")).contains("10.0"), "hashed");
    }

    #[tokio::test]
    async fn replicas_sharing_a_backplane_share_a_principals_quota() {
        let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::default());
        let metrics = Arc::new(Metrics::new().unwrap());
        let a = SessionQuota::new(backplane.clone(), limits(3, 100, 100), metrics.clone());
        let b = SessionQuota::new(backplane.clone(), limits(3, 100, 100), metrics.clone());
        a.admit(&visitor(), ip("10.0.0.1")).await.unwrap();
        b.admit(&visitor(), ip("10.0.0.1")).await.unwrap();
        a.admit(&visitor(), ip("10.0.0.1")).await.unwrap();
        let refused = b.admit(&visitor(), ip("10.0.0.1")).await.err().unwrap();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert!(
            refused
                .message
                .contains("this visitor created 3 sessions in the last minute"),
            "{}",
            refused.message
        );
        let wait = refused.retry_after.unwrap();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        // Another visitor, and a user on the same address, have their own quota.
        b.admit(&visitor(), ip("10.0.0.2")).await.unwrap();
        b.admit(&user("u1"), ip("10.0.0.1")).await.unwrap();
        assert_eq!(
            metrics
                .session_creations_refused
                .with_label_values(&["per_minute"])
                .get(),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_process_cap_creation_is_unavailable_until_a_place_frees() {
        let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::default());
        let metrics = Arc::new(Metrics::new().unwrap());
        let quota = SessionQuota::new(backplane, limits(100, 100, 2), metrics.clone());
        let first = quota.admit(&visitor(), ip("10.0.0.1")).await.unwrap();
        quota.admit(&visitor(), ip("10.0.0.2")).await.unwrap();
        let refused = quota.admit(&visitor(), ip("10.0.0.3")).await.err().unwrap();
        assert_eq!(refused.code, ErrorCode::Unavailable);
        assert!(
            refused.message.contains("holds 2 new sessions"),
            "{}",
            refused.message
        );
        assert!(refused.retry_after.unwrap() >= Duration::from_secs(3600));
        assert_eq!(metrics.sessions_live.get(), 2);
        // A creation that failed gives its place back.
        quota.cancel(first);
        assert_eq!(metrics.sessions_live.get(), 1);
        quota.admit(&visitor(), ip("10.0.0.3")).await.unwrap();
        // After the ttl, the places are free again.
        tokio::time::advance(Duration::from_secs(3600 + 61)).await;
        quota.admit(&visitor(), ip("10.0.0.4")).await.unwrap();
        assert_eq!(metrics.sessions_live.get(), 1);
    }

    #[tokio::test]
    async fn a_refusal_by_the_principals_quota_does_not_take_a_place_in_the_process() {
        let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::default());
        let metrics = Arc::new(Metrics::new().unwrap());
        let quota = SessionQuota::new(backplane, limits(1, 100, 100), metrics.clone());
        quota.admit(&visitor(), ip("10.0.0.1")).await.unwrap();
        for _ in 0..5 {
            assert!(quota.admit(&visitor(), ip("10.0.0.1")).await.is_err());
        }
        assert_eq!(metrics.sessions_live.get(), 1);
    }
}
