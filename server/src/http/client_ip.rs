//! Who a request comes from, for per-visitor limits: the TCP peer's address, or —
//! when that peer is one of `--trusted-proxies` — the address the proxies name in
//! `X-Forwarded-For`. The header is read right to left, skipping trusted proxies, so a
//! visitor cannot choose its own address by sending the header itself: only what a
//! trusted proxy appended counts.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::state::AppState;

const FORWARDED_FOR: &str = "x-forwarded-for";

/// The visitor's address as [`client_ip`] decides it. A request without a peer
/// address (in-process tests) counts as the unspecified address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<ClientIp, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(ClientIp(client_ip(
            peer,
            &parts.headers,
            &state.config.visitors.trusted_proxies,
        )))
    }
}

/// The peer, unless it is a trusted proxy: then the rightmost `X-Forwarded-For` entry
/// that is not a trusted proxy (an unreadable entry stops the walk at the proxy that
/// wrote it; a header of trusted proxies only gives its leftmost entry).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let entries: Vec<&str> = headers
        .get_all(FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    for entry in entries.iter().rev() {
        let Some(ip) = parse_entry(entry) else {
            return client;
        };
        client = ip;
        if !is_trusted(&ip) {
            return ip;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[::1]:5678`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(FORWARDED_FOR, value.parse().unwrap());
        }
        map
    }

    fn proxies() -> Vec<IpNet> {
        vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let claimed = headers(&["203.0.113.9"]);
        assert_eq!(
            client_ip(ip("198.51.100.7"), &claimed, &proxies()),
            ip("198.51.100.7")
        );
        assert_eq!(client_ip(ip("10.1.2.3"), &claimed, &[]), ip("10.1.2.3"));
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_entry_is_the_client() {
        // The visitor sent a forged first entry; its own address was appended by the
        // first proxy, then the second proxy's by the last.
        let chain = headers(&["1.1.1.1, 198.51.100.7", "10.0.0.5"]);
        assert_eq!(
            client_ip(ip("10.0.0.9"), &chain, &proxies()),
            ip("198.51.100.7")
        );
        let with_port = headers(&["[2001:db8::1]:443"]);
        assert_eq!(
            client_ip(ip("::1"), &with_port, &proxies()),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn an_unreadable_entry_stops_at_the_proxy_that_wrote_it() {
        let chain = headers(&["198.51.100.7, garbage, 10.0.0.5"]);
        assert_eq!(
            client_ip(ip("10.0.0.9"), &chain, &proxies()),
            ip("10.0.0.5")
        );
        assert_eq!(
            client_ip(ip("10.0.0.9"), &HeaderMap::new(), &proxies()),
            ip("10.0.0.9")
        );
        let only_proxies = headers(&["10.0.0.1, 10.0.0.2"]);
        assert_eq!(
            client_ip(ip("10.0.0.9"), &only_proxies, &proxies()),
            ip("10.0.0.1")
        );
    }
}
