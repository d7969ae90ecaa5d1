//! Flags that say who a visitor is and how many connections one may hold.

use clap::Args;
use ipnet::IpNet;

/// Per-visitor connection limits, and how a visitor's address is found.
#[derive(Debug, Clone, Default, Args)]
pub struct VisitorLimits {
    /// Proxies (addresses or CIDR ranges, comma-separated) whose `X-Forwarded-For`
    /// is believed when they are the TCP peer (default: none, so the peer is the
    /// visitor). Per-visitor limits key anonymous visitors by that address.
    #[arg(long, env = "SWITCHBOARD_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<IpNet>,
}

/// `10.0.0.0/8`, or a bare address (one host).
fn parse_net(value: &str) -> Result<IpNet, String> {
    let value = value.trim();
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{value}` is neither an address nor a CIDR range like 10.0.0.0/8"))
}
