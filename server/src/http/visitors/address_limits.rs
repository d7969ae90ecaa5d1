//! Counting per address: connections open at once and new ones per minute (a token
//! bucket that holds a minute's worth). IPv6 addresses count per /64, the block one
//! subscriber usually gets, so a visitor cannot walk its own prefix to escape.
//!
//! The table forgets an address as soon as it has nothing open and a full bucket, and
//! holds at most [`MAX_ADDRESSES`]; past that, new addresses are refused until older
//! ones are forgotten, so a flood of addresses costs bounded memory.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// Addresses tracked at once, per table.
pub const MAX_ADDRESSES: usize = 65_536;
/// How often at most a full table is swept for addresses it may forget.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Which limit refused an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// It holds its maximum number of open connections.
    Open,
    /// It opened its connections of the minute; the next is allowed after the wait.
    Rate { retry_after: Duration },
    /// The table holds [`MAX_ADDRESSES`] others.
    Table,
}

/// Open connections and new ones per minute, per address.
#[derive(Debug, Clone)]
pub struct AddressLimits {
    max_open: u32,
    /// A minute divided by the connections allowed in it.
    interval: Duration,
    /// How far ahead of now `full_at` may run: the burst, less the one being admitted.
    burst: Duration,
    table: Arc<Mutex<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<IpAddr, Entry>,
    swept: Option<Instant>,
}

#[derive(Debug)]
struct Entry {
    open: u32,
    /// When the bucket is full again (a generic cell rate algorithm's "theoretical
    /// arrival time"): each connection pushes it one interval later; it may run at
    /// most a minute less one interval ahead of now. Integer time, so exact.
    full_at: Instant,
}

impl Entry {
    fn forgettable(&self, now: Instant) -> bool {
        self.open == 0 && self.full_at <= now
    }
}

impl AddressLimits {
    /// `max_open` connections at once and `per_minute` new ones per address.
    pub fn new(max_open: u32, per_minute: u32) -> AddressLimits {
        let per_minute = per_minute.max(1);
        let interval = Duration::from_secs(60) / per_minute;
        AddressLimits {
            max_open,
            interval,
            burst: interval.saturating_mul(per_minute.saturating_sub(1)),
            table: Arc::default(),
        }
    }

    /// Count one more connection of `ip`, charging its bucket when `charge_rate`, or
    /// say which limit it is past. The count drops with the permit.
    pub fn admit(&self, ip: IpAddr, charge_rate: bool) -> Result<AddressPermit, Exceeded> {
        let key = address_key(ip);
        let now = Instant::now();
        let mut table = self.lock();
        if !table.entries.contains_key(&key) && table.entries.len() >= MAX_ADDRESSES {
            let due = table
                .swept
                .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY);
            if due {
                table.swept = Some(now);
                table.entries.retain(|_, entry| !entry.forgettable(now));
            }
            if table.entries.len() >= MAX_ADDRESSES {
                return Err(Exceeded::Table);
            }
        }
        let entry = table.entries.entry(key).or_insert(Entry {
            open: 0,
            full_at: now,
        });
        if entry.open >= self.max_open {
            return Err(Exceeded::Open);
        }
        if charge_rate {
            let ahead = entry.full_at.saturating_duration_since(now);
            if ahead > self.burst {
                return Err(Exceeded::Rate {
                    retry_after: ahead.saturating_sub(self.burst),
                });
            }
            let from = entry.full_at.max(now);
            entry.full_at = from.checked_add(self.interval).unwrap_or(from);
        }
        entry.open = entry.open.saturating_add(1);
        Ok(AddressPermit {
            key,
            limits: self.clone(),
        })
    }

    /// Connections `ip` holds open now.
    pub fn open(&self, ip: IpAddr) -> u32 {
        self.lock()
            .entries
            .get(&address_key(ip))
            .map_or(0, |entry| entry.open)
    }

    /// Addresses the table remembers.
    pub fn tracked(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent between statements: a panic elsewhere while it
        // was held leaves nothing half-written.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn release(&self, key: IpAddr) {
        let now = Instant::now();
        let mut table = self.lock();
        let forget = table.entries.get_mut(&key).is_some_and(|entry| {
            entry.open = entry.open.saturating_sub(1);
            entry.forgettable(now)
        });
        if forget {
            table.entries.remove(&key);
        }
    }
}

/// One counted connection; dropping it uncounts it.
#[derive(Debug)]
pub struct AddressPermit {
    key: IpAddr,
    limits: AddressLimits,
}

impl Drop for AddressPermit {
    fn drop(&mut self) {
        self.limits.release(self.key);
    }
}

/// IPv4 (and IPv4-mapped IPv6) as is; other IPv6 as its /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = v6.to_bits() & !u128::from(u64::MAX);
                IpAddr::V6(Ipv6Addr::from_bits(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn open_connections_are_capped_per_address_and_freed_on_drop() {
        let limits = AddressLimits::new(2, 1_000);
        let a = limits.admit(ip("198.51.100.1"), true).unwrap();
        let _b = limits.admit(ip("198.51.100.1"), true).unwrap();
        assert_eq!(
            limits.admit(ip("198.51.100.1"), true).unwrap_err(),
            Exceeded::Open
        );
        // Another address has its own count.
        let _other = limits.admit(ip("198.51.100.2"), true).unwrap();
        drop(a);
        assert_eq!(limits.open(ip("198.51.100.1")), 1);
        limits.admit(ip("198.51.100.1"), true).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_allows_a_minute_at_once_then_refills_and_says_when() {
        let limits = AddressLimits::new(1_000, 60);
        let visitor = ip("203.0.113.7");
        let mut held = Vec::new();
        for _ in 0..60 {
            held.push(limits.admit(visitor, true).unwrap());
        }
        let Err(Exceeded::Rate { retry_after }) = limits.admit(visitor, true) else {
            panic!("the 61st connection of the minute was admitted");
        };
        assert_eq!(retry_after, Duration::from_secs(1));
        // Uncharged admissions (a direct client's upgrade) do not spend the bucket.
        held.push(limits.admit(visitor, false).unwrap());
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(matches!(
            limits.admit(visitor, true),
            Err(Exceeded::Rate { .. })
        ));
        tokio::time::advance(Duration::from_millis(1)).await;
        held.push(limits.admit(visitor, true).unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let limits = AddressLimits::new(1, 1_000);
        let _first = limits.admit(ip("2001:db8:1:2::1"), true).unwrap();
        assert_eq!(
            limits.admit(ip("2001:db8:1:2:ffff::9"), true).unwrap_err(),
            Exceeded::Open
        );
        let _next_prefix = limits.admit(ip("2001:db8:1:3::1"), true).unwrap();
        let _v4 = limits.admit(ip("192.0.2.1"), true).unwrap();
        assert_eq!(
            limits.admit(ip("::ffff:192.0.2.1"), true).unwrap_err(),
            Exceeded::Open
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_forgets_idle_addresses_and_stays_bounded() {
        let limits = AddressLimits::new(4, 1);
        for n in 0..10u32 {
            drop(limits.admit(IpAddr::from(n.to_be_bytes()), false).unwrap());
        }
        // Nothing open, bucket full: forgotten at once.
        assert_eq!(limits.tracked(), 0);
        let mut held = Vec::new();
        for n in 0..MAX_ADDRESSES as u32 {
            held.push(limits.admit(IpAddr::from(n.to_be_bytes()), true).unwrap());
        }
        let newcomer = IpAddr::from([203, 0, 113, 1]);
        assert_eq!(limits.admit(newcomer, true).unwrap_err(), Exceeded::Table);
        // Closed, but their buckets are not full yet: still remembered for a minute.
        held.clear();
        tokio::time::advance(SWEEP_EVERY).await;
        assert_eq!(limits.admit(newcomer, true).unwrap_err(), Exceeded::Table);
        tokio::time::advance(Duration::from_secs(60)).await;
        limits.admit(newcomer, true).unwrap();
        // Only the newcomer, whose bucket refills for a minute, is remembered.
        assert_eq!(limits.tracked(), 1);
    }
}
