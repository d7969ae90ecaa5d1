//! Flags: How many sessions a principal or visitor may create, and how long unused ones live.

use std::time::Duration;

use clap::Args;

use super::values::parse_duration;

/// How many sessions a principal or visitor may create, and how long unused ones live.
///
/// A principal is a signed-in user (org and `user_id`) or, for anonymous visitors, the
/// visitor's address (`--trusted-proxies`; an IPv6 address counts by its /64).
#[derive(Debug, Clone, Args)]
pub struct SessionQuotas {
    /// Sessions one principal may create per rolling minute, across replicas (default
    /// 30). One more `session.create` is answered `error` `rate_limited` with
    /// `retry_after_ms`; the connection stays open.
    #[arg(long, env = "SWITCHBOARD_SESSIONS_PER_MINUTE", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub sessions_per_minute: u32,

    /// Live sessions one principal may hold, across replicas (default 300): sessions
    /// it created within the last `--unused-session-ttl`. One more `session.create`
    /// is answered `error` `rate_limited` with `retry_after_ms`.
    #[arg(long, env = "SWITCHBOARD_MAX_LIVE_SESSIONS_PER_PRINCIPAL", default_value_t = 300,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_live_sessions_per_principal: u32,

    /// Live sessions this replica holds (default 50000): sessions created here within
    /// the last `--unused-session-ttl`, whoever created them. One more
    /// `session.create` is answered `error` `unavailable` with `retry_after_ms`.
    #[arg(long, env = "SWITCHBOARD_MAX_LIVE_SESSIONS", default_value_t = 50_000,
          value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub max_live_sessions: u32,

    /// How long the shared record of a session that has no message yet is kept
    /// (default 1h), instead of `--history-max-age`. Joining it later still works: the
    /// record is read again from the conversation store.
    #[arg(long, env = "SWITCHBOARD_UNUSED_SESSION_TTL", default_value = "1h",
          value_parser = parse_unused_ttl)]
    pub unused_session_ttl: Duration,
}

impl Default for SessionQuotas {
    fn default() -> SessionQuotas {
        SessionQuotas {
            sessions_per_minute: 30,
            max_live_sessions_per_principal: 300,
            max_live_sessions: 50_000,
            unused_session_ttl: Duration::from_secs(3600),
        }
    }
}

/// At least a minute: a shorter life would make the per-minute quota the only one.
fn parse_unused_ttl(text: &str) -> Result<Duration, String> {
    let ttl = parse_duration(text)?;
    if ttl < Duration::from_secs(60) {
        return Err(format!(
            "`{text}` is under a minute; use e.g. `10m` or `1h`"
        ));
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use crate::config::parse_serve;

    #[test]
    fn defaults_and_overrides() {
        let config = parse_serve(&[]).unwrap();
        let quotas = config.session_quotas;
        assert_eq!(quotas.sessions_per_minute, 30);
        assert_eq!(quotas.max_live_sessions_per_principal, 300);
        assert_eq!(quotas.max_live_sessions, 50_000);
        assert_eq!(quotas.unused_session_ttl.as_secs(), 3600);
        let config =
            parse_serve(&["--sessions-per-minute", "5", "--unused-session-ttl", "10m"]).unwrap();
        assert_eq!(config.session_quotas.sessions_per_minute, 5);
        assert_eq!(config.session_quotas.unused_session_ttl.as_secs(), 600);
        let refused = parse_serve(&["--unused-session-ttl", "5s"]).unwrap_err();
        assert!(refused.contains("under a minute"), "{refused}");
        assert!(parse_serve(&["--sessions-per-minute", "0"]).is_err());
    }
}
