//! How many turns run at once: at most so many on this replica, in one org and for
//! one principal. A turn takes a slot under all three caps at once (all or nothing,
//! so a waiting turn never holds a slot another could use), waits a bounded time for
//! room, and gives it back when it ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::access::AccessContext;
use crate::metrics::Metrics;

/// The caps (`--max-concurrent-turns*`) and how long a turn waits for room.
#[derive(Debug, Clone, Copy)]
pub struct SlotCaps {
    pub process: usize,
    pub per_org: usize,
    pub per_principal: usize,
    pub wait: Duration,
}

/// Which cap kept a turn from starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Process,
    Org,
    Principal,
}

impl Full {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Full::Process => "process_busy",
            Full::Org => "org_busy",
            Full::Principal => "principal_busy",
        }
    }
}

/// Who a turn runs for, as the caps count it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlotKey {
    pub org_id: String,
    /// [`principal_key`].
    pub principal: String,
}

/// The principal a message's turn counts against: the user for a token, the
/// visitor's address for an anonymous connection (an IPv6 visitor by its /64, which
/// one subscriber usually holds whole), or one shared key for anonymous connections
/// without an address (in-process).
pub fn principal_key(access: &AccessContext, client: Option<IpAddr>) -> String {
    match (&access.user_id, client) {
        (Some(user), _) if !access.anonymous => format!("user:{user}"),
        (_, Some(IpAddr::V4(v4))) => format!("ip:{v4}"),
        (_, Some(IpAddr::V6(v6))) => {
            let segments = v6.segments();
            format!(
                "ip:{:x}:{:x}:{:x}:{:x}::/64",
                segments[0], segments[1], segments[2], segments[3]
            )
        }
        _ => "anonymous".to_string(),
    }
}

#[derive(Default)]
struct Counts {
    process: usize,
    orgs: HashMap<String, usize>,
    principals: HashMap<(String, String), usize>,
}

/// The running turns of this replica, counted under the caps.
pub struct Slots {
    caps: SlotCaps,
    counts: Mutex<Counts>,
    freed: Notify,
    metrics: Arc<Metrics>,
}

/// A slot held by a running turn; dropping it gives it back.
pub struct SlotPermit {
    slots: Arc<Slots>,
    key: SlotKey,
}

impl Slots {
    pub fn new(caps: SlotCaps, metrics: Arc<Metrics>) -> Arc<Slots> {
        Arc::new(Slots {
            caps,
            counts: Mutex::new(Counts::default()),
            freed: Notify::new(),
            metrics,
        })
    }

    pub fn caps(&self) -> SlotCaps {
        self.caps
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take a slot for `key` if every cap has room; otherwise the first cap that is full
    /// (the narrowest first: a principal at its cap is told so, not that the replica is).
    fn try_take(&self, key: &SlotKey) -> Result<(), Full> {
        let mut counts = self.lock();
        let principal = (key.org_id.clone(), key.principal.clone());
        if counts.principals.get(&principal).copied().unwrap_or(0) >= self.caps.per_principal {
            return Err(Full::Principal);
        }
        if counts.orgs.get(&key.org_id).copied().unwrap_or(0) >= self.caps.per_org {
            return Err(Full::Org);
        }
        if counts.process >= self.caps.process {
            return Err(Full::Process);
        }
        counts.process += 1;
        *counts.orgs.entry(key.org_id.clone()).or_insert(0) += 1;
        *counts.principals.entry(principal).or_insert(0) += 1;
        self.metrics.turns_running.set(counts.process as i64);
        Ok(())
    }

    fn give_back(&self, key: &SlotKey) {
        let mut counts = self.lock();
        counts.process = counts.process.saturating_sub(1);
        // Entries go when they reach zero: the maps hold only orgs and principals with
        // a turn running.
        if let Some(n) = counts.orgs.get_mut(&key.org_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.orgs.remove(&key.org_id);
            }
        }
        let principal = (key.org_id.clone(), key.principal.clone());
        if let Some(n) = counts.principals.get_mut(&principal) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.principals.remove(&principal);
            }
        }
        self.metrics.turns_running.set(counts.process as i64);
        drop(counts);
        self.freed.notify_waiters();
    }

    /// A slot for `key`, waiting up to the caps' `wait` for room; past it, the cap that
    /// was still full. Waiters are not served strictly in order.
    pub async fn acquire(self: &Arc<Self>, key: SlotKey) -> Result<SlotPermit, Full> {
        let deadline = tokio::time::Instant::now() + self.caps.wait;
        let _waiting = WaitingGauge::enter(&self.metrics);
        loop {
            // Registered before the look, so a slot freed in between still wakes us.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self.try_take(&key) {
                Ok(()) => {
                    return Ok(SlotPermit {
                        slots: self.clone(),
                        key,
                    });
                }
                Err(full) => {
                    tokio::select! {
                        () = &mut freed => {}
                        () = tokio::time::sleep_until(deadline) => {
                            // One last look: a slot freed at the deadline counts.
                            return match self.try_take(&key) {
                                Ok(()) => Ok(SlotPermit { slots: self.clone(), key }),
                                Err(_) => Err(full),
                            };
                        }
                    }
                }
            }
        }
    }

    /// Turns holding a slot now.
    pub fn running(&self) -> usize {
        self.lock().process
    }
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        self.slots.give_back(&self.key);
    }
}

/// Counts a turn waiting for a slot while it waits (also when the wait is dropped).
struct WaitingGauge<'a>(&'a Metrics);

impl<'a> WaitingGauge<'a> {
    fn enter(metrics: &'a Metrics) -> WaitingGauge<'a> {
        metrics.turns_waiting_for_slot.inc();
        WaitingGauge(metrics)
    }
}

impl Drop for WaitingGauge<'_> {
    fn drop(&mut self) {
        self.0.turns_waiting_for_slot.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(process: usize, per_org: usize, per_principal: usize) -> Arc<Slots> {
        let caps = SlotCaps {
            process,
            per_org,
            per_principal,
            wait: Duration::from_secs(5),
        };
        Slots::new(caps, Arc::new(Metrics::new().unwrap()))
    }

    fn key(org: &str, principal: &str) -> SlotKey {
        SlotKey {
            org_id: org.into(),
            principal: principal.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_cap_holds_and_says_which_one_was_full() {
        let slots = slots(3, 2, 1);
        let a = slots.acquire(key("o1", "alice")).await.unwrap();
        assert_eq!(
            slots.acquire(key("o1", "alice")).await.err(),
            Some(Full::Principal)
        );
        let _b = slots.acquire(key("o1", "bob")).await.unwrap();
        assert_eq!(
            slots.acquire(key("o1", "carol")).await.err(),
            Some(Full::Org)
        );
        let _c = slots.acquire(key("o2", "dan")).await.unwrap();
        assert_eq!(
            slots.acquire(key("o3", "erin")).await.err(),
            Some(Full::Process)
        );
        assert_eq!(slots.running(), 3);
        drop(a);
        assert_eq!(slots.running(), 2);
        let _d = slots.acquire(key("o3", "erin")).await.unwrap();
        assert_eq!(slots.metrics.turns_running.get(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_turn_gets_the_slot_freed_within_the_wait() {
        let slots = slots(1, 1, 1);
        let first = slots.acquire(key("o", "p")).await.unwrap();
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(key("o", "q")).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(slots.metrics.turns_waiting_for_slot.get(), 1);
        drop(first);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(slots.metrics.turns_waiting_for_slot.get(), 0);
        assert_eq!(slots.running(), 0, "the waiter's permit was dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_is_bounded() {
        let slots = slots(1, 1, 1);
        let _held = slots.acquire(key("o", "p")).await.unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(
            slots.acquire(key("o2", "q")).await.err(),
            Some(Full::Process)
        );
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(slots.metrics.turns_waiting_for_slot.get(), 0);
    }

    #[test]
    fn principals_are_users_or_visitor_addresses() {
        let mut access = AccessContext {
            user_id: Some("u1".into()),
            org_id: "o".into(),
            groups: vec![],
            roles: vec![],
            anonymous: false,
            name: None,
        };
        assert_eq!(principal_key(&access, "10.0.0.1".parse().ok()), "user:u1");
        access.user_id = None;
        access.anonymous = true;
        assert_eq!(
            principal_key(&access, "10.0.0.1".parse().ok()),
            "ip:10.0.0.1"
        );
        assert_eq!(
            principal_key(&access, "2001:db8:1:2:3:4:5:6".parse().ok()),
            principal_key(&access, "2001:db8:1:2:ffff::1".parse().ok()),
            "one /64 is one visitor"
        );
        assert_eq!(principal_key(&access, None), "anonymous");
    }
}
