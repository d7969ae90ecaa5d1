//! Admission of a TCP connection at accept, when only the peer's address is known:
//! open connections for the whole process (`--max-tcp-connections`), and open and new
//! connections per peer address (`--max-connections-per-ip`,
//! `--connections-per-minute-per-ip`). A peer in `--trusted-proxies` carries many
//! visitors, so only the process-wide cap applies to it; its visitors are counted at
//! their WebSocket upgrade ([`super::websocket_gate`]).

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::address_limits::{AddressLimits, AddressPermit};
use super::refusal::{PerAddressLabels, Refusal};
use crate::config::VisitorLimits;

/// File descriptors kept out of `--max-tcp-connections`' automatic value, at least:
/// the store, the backplane, files, the listener and refusals being answered.
const RESERVED_FILES: u64 = 128;
/// The automatic cap when the open-files limit cannot be read or is tiny.
const FALLBACK_CAP: u64 = 16;

const TCP_LABELS: PerAddressLabels = PerAddressLabels {
    open_limit: "ip_open",
    open_message: "this address holds its maximum number of open connections \
                   (--max-connections-per-ip); close some or retry later",
    rate_limit: "ip_rate",
    rate_message: "this address opened its connections of the minute \
                   (--connections-per-minute-per-ip); retry after Retry-After seconds",
};

/// Decides, per accepted TCP connection, whether it may be served.
#[derive(Debug)]
pub struct ConnectionGate {
    process: Arc<Semaphore>,
    cap: u64,
    per_ip: AddressLimits,
    trusted: Vec<IpNet>,
    open: IntGauge,
}

impl ConnectionGate {
    /// The gate for `limits`; `open` counts the connections it admitted and has not
    /// seen close.
    pub fn new(limits: &VisitorLimits, open: IntGauge) -> ConnectionGate {
        let cap = process_cap(limits.max_tcp_connections, open_files_limit());
        ConnectionGate {
            process: Arc::new(Semaphore::new(
                usize::try_from(cap).unwrap_or(Semaphore::MAX_PERMITS),
            )),
            cap,
            per_ip: AddressLimits::new(
                limits.max_connections_per_ip,
                limits.connections_per_minute_per_ip,
            ),
            trusted: limits.trusted_proxies.clone(),
            open,
        }
    }

    /// Open TCP connections the process accepts at once.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Admit a connection from `peer`, or say which limit refuses it. The connection
    /// counts until the permit drops.
    pub fn admit(&self, peer: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let address = if self.trusted.iter().any(|net| net.contains(&peer)) {
            None
        } else {
            Some(
                self.per_ip
                    .admit(peer, true)
                    .map_err(|exceeded| Refusal::per_address(exceeded, TCP_LABELS))?,
            )
        };
        let Ok(process) = self.process.clone().try_acquire_owned() else {
            return Err(Refusal::process(
                "process_open",
                "this replica holds its maximum number of open connections \
                 (--max-tcp-connections); retry another replica or later",
            ));
        };
        self.open.inc();
        Ok(ConnectionPermit {
            _address: address,
            _process: process,
            open: self.open.clone(),
        })
    }
}

/// An admitted connection; dropping it (when its socket closes) frees its place.
#[derive(Debug)]
pub struct ConnectionPermit {
    _address: Option<AddressPermit>,
    _process: OwnedSemaphorePermit,
    open: IntGauge,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// `--max-tcp-connections`, or for 0 the open-files limit less a quarter of it (at
/// least [`RESERVED_FILES`] less).
fn process_cap(flag: u64, open_files: Option<u64>) -> u64 {
    if flag > 0 {
        return flag;
    }
    let Some(limit) = open_files else {
        // No limit at all: the flag's own ceiling.
        return 10_000_000;
    };
    let reserved = (limit / 4).max(RESERVED_FILES);
    limit.saturating_sub(reserved).max(FALLBACK_CAP)
}

/// The soft open-files limit, `None` when unlimited.
fn open_files_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_automatic_cap_leaves_room_below_the_open_files_limit() {
        assert_eq!(process_cap(500, Some(256)), 500);
        assert_eq!(process_cap(0, Some(256)), 128);
        assert_eq!(process_cap(0, Some(1024)), 768);
        assert_eq!(process_cap(0, Some(100)), FALLBACK_CAP);
        assert_eq!(process_cap(0, None), 10_000_000);
    }

    fn limits(args: &[&str]) -> VisitorLimits {
        crate::config::parse_serve(args).unwrap().visitors
    }

    #[tokio::test(start_paused = true)]
    async fn peers_are_capped_but_trusted_proxies_only_by_the_process_cap() {
        let gauge = IntGauge::new("open", "open").unwrap();
        let gate = ConnectionGate::new(
            &limits(&[
                "--max-connections-per-ip",
                "2",
                "--max-tcp-connections",
                "5",
                "--trusted-proxies",
                "10.0.0.0/8",
            ]),
            gauge.clone(),
        );
        let visitor: IpAddr = "198.51.100.4".parse().unwrap();
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let mut held = vec![gate.admit(visitor).unwrap(), gate.admit(visitor).unwrap()];
        let refused = gate.admit(visitor).unwrap_err();
        assert_eq!(
            (refused.limit, refused.code.http_status()),
            ("ip_open", 429)
        );
        held.push(gate.admit(proxy).unwrap());
        held.push(gate.admit(proxy).unwrap());
        held.push(gate.admit(proxy).unwrap());
        assert_eq!(gauge.get(), 5);
        let full = gate.admit(proxy).unwrap_err();
        assert_eq!((full.limit, full.code.http_status()), ("process_open", 503));
        held.clear();
        assert_eq!(gauge.get(), 0);
        gate.admit(visitor).unwrap();
    }
}
