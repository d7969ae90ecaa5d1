//! Flags that say who a visitor is and how many connections one may hold.

use clap::Args;
use ipnet::IpNet;

/// Per-visitor connection limits, and how a visitor's address is found.
#[derive(Debug, Clone, Args)]
pub struct VisitorLimits {
    /// Proxies (addresses or CIDR ranges, comma-separated) whose `X-Forwarded-For`
    /// is believed when they are the TCP peer (default: none, so the peer is the
    /// visitor). Per-visitor limits key anonymous visitors by that address.
    #[arg(long, env = "SWITCHBOARD_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<IpNet>,

    /// Open TCP connections one peer address may hold (default 64; IPv6 counts per
    /// /64; peers in `--trusted-proxies` are exempt). One more is answered HTTP 429
    /// `rate_limited` with `Retry-After`, and closed.
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS_PER_IP", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections_per_ip: u32,

    /// New TCP connections one peer address may open per minute, all of them at once
    /// if it likes (default 600; IPv6 per /64; trusted proxies exempt, their clients'
    /// WebSocket upgrades count instead). Past it: HTTP 429 `rate_limited` with
    /// `Retry-After` (seconds until the next one is allowed), and the connection closes.
    #[arg(long, env = "SWITCHBOARD_CONNECTIONS_PER_MINUTE_PER_IP", default_value_t = 600,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub connections_per_minute_per_ip: u32,

    /// Open WebSockets one client address may hold, that address read through
    /// `--trusted-proxies` (default 32; IPv6 per /64). One more upgrade is refused with
    /// HTTP 429 `rate_limited` and `Retry-After`.
    #[arg(long, env = "SWITCHBOARD_MAX_WEBSOCKETS_PER_CLIENT", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_websockets_per_client: u32,

    /// Open TCP connections this process accepts from everyone together (default 0:
    /// the open-files limit less a quarter of it, at least 128 less, kept for the
    /// store, the backplane and refusals). One more is answered HTTP 503 `unavailable`
    /// with `Retry-After`, and closed; past that the process never runs out of file
    /// descriptors, so `/health` keeps answering once the flood stops.
    #[arg(long, env = "SWITCHBOARD_MAX_TCP_CONNECTIONS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub max_tcp_connections: u64,
}

/// `10.0.0.0/8`, or a bare address (one host).
fn parse_net(value: &str) -> Result<IpNet, String> {
    let value = value.trim();
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{value}` is neither an address nor a CIDR range like 10.0.0.0/8"))
}
