//! Free ports of 127.0.0.1 for servers the kit starts.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};

/// The lowest port handed out.
const LOW: u16 = 10_000;

/// A port of 127.0.0.1 that was free a moment ago, chosen **below** the kernel's
/// ephemeral range: a server that is stopped and restarted leaves its port unbound for a
/// while, and a port from the ephemeral range could meanwhile be handed to a gateway
/// binding port 0 or to an outgoing connection of a test running in parallel. Ports are
/// picked at random (not in sequence), so test processes running at once rarely try the
/// same one; a caller still retries with another port when its server cannot bind.
///
/// Panics when 200 random ports in the range are all taken.
pub fn free_port() -> u16 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let high = high();
    for _ in 0..200 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
        hasher.write_u32(std::process::id());
        let offset = hasher.finish() % u64::from(high - LOW);
        let port = LOW + u16::try_from(offset).unwrap_or(0);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found in 127.0.0.1:{LOW}..{high}");
}

/// The end (exclusive) of the range: the start of the kernel's ephemeral range.
fn high() -> u16 {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    ephemeral_low.max(LOW + 2_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ports come from below the ephemeral range, and never one that is bound. (Binding
    /// a returned port again is no test of that: the tests beside this one start
    /// servers on ports from the same range, and may take it in between.)
    #[test]
    fn free_ports_are_below_the_ephemeral_range_and_never_a_bound_one() {
        let held: Vec<TcpListener> = (0..50)
            .filter_map(|_| TcpListener::bind(("127.0.0.1", free_port())).ok())
            .collect();
        assert!(held.len() >= 40, "most free ports can be bound at once");
        let taken: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()).unwrap_or(0))
            .collect();
        assert!(
            taken.iter().all(|&p| (LOW..high()).contains(&p)),
            "{taken:?}"
        );
        for _ in 0..500 {
            let port = free_port();
            assert!(!taken.contains(&port), "{port} is bound by this test");
        }
    }
}
