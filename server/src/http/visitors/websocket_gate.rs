//! Admission of a WebSocket upgrade, per client address as `--trusted-proxies` reads
//! it: open WebSockets per client (`--max-websockets-per-client`) and, for a client
//! behind a trusted proxy — whose TCP connections are the proxy's and so were not
//! counted at accept — new upgrades per minute (`--connections-per-minute-per-ip`).

use std::net::IpAddr;
use std::sync::Arc;

use prometheus::IntCounterVec;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::address_limits::{AddressLimits, AddressPermit};
use super::refusal::{PerAddressLabels, Refusal};
use crate::config::VisitorLimits;

const WEBSOCKET_LABELS: PerAddressLabels = PerAddressLabels {
    open_limit: "client_websockets",
    open_message: "this client holds its maximum number of open WebSockets \
                   (--max-websockets-per-client); close some or retry later",
    rate_limit: "client_websocket_rate",
    rate_message: "this client opened its WebSockets of the minute \
                   (--connections-per-minute-per-ip); retry after Retry-After seconds",
};

/// Counts open WebSockets per client.
#[derive(Debug, Clone)]
pub struct WebSocketGate {
    per_client: AddressLimits,
}

impl WebSocketGate {
    pub fn new(limits: &VisitorLimits) -> WebSocketGate {
        WebSocketGate {
            per_client: AddressLimits::new(
                limits.max_websockets_per_client,
                limits.connections_per_minute_per_ip,
            ),
        }
    }

    /// Admit an upgrade by `client` over a TCP connection from `peer`. The WebSocket
    /// counts until the permit drops.
    pub fn admit(&self, peer: IpAddr, client: IpAddr) -> Result<AddressPermit, Refusal> {
        let behind_proxy = peer != client;
        self.per_client
            .admit(client, behind_proxy)
            .map_err(|exceeded| Refusal::per_address(exceeded, WEBSOCKET_LABELS))
    }

    /// A long-lived member's places — a WebSocket, or an SSE stream, which holds a
    /// place like one: per client, then in the process (`--max-connections`). A
    /// refusal is counted in `refused` (`switchboard_connections_refused_total`).
    pub fn admit_member(
        &self,
        peer: IpAddr,
        client: IpAddr,
        process: &Arc<Semaphore>,
        refused: &IntCounterVec,
    ) -> Result<(AddressPermit, OwnedSemaphorePermit), Refusal> {
        let counted = |refusal: Refusal| {
            refused.with_label_values(&[refusal.limit]).inc();
            refusal
        };
        let client_permit = self.admit(peer, client).map_err(counted)?;
        let process_permit = process.clone().try_acquire_owned().map_err(|_| {
            counted(Refusal::process(
                "process_websockets",
                "this replica holds its maximum number of connections; retry another replica or later",
            ))
        })?;
        Ok((client_permit, process_permit))
    }
}
