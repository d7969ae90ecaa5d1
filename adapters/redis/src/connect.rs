//! Connecting: the URL and its credentials, the command connection, the version check,
//! loading the scripts, and the pub/sub connection live delivery starts on.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use switchboard_backplane::{ErrorKind, Retention};

use crate::error::{self, ConnectError};
use crate::live::{PubSubDispatcher, PubSubTiming};
use crate::{RedisBackplane, RedisOptions, keys, scripts};

impl RedisBackplane {
    /// Connects to the Redis at `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `rediss://…` for TLS), keeping every key under `prefix` (`sb` and `sb:` both
    /// give keys `sb:stream:…`; no braces or whitespace), with default
    /// [`RedisOptions`].
    ///
    /// Fails (within [`RedisOptions::connect_timeout`]) when the URL is wrong, the
    /// server is unreachable or refuses the credentials, or is older than 6.2: a
    /// misconfigured backplane stops the gateway at boot. No error message contains
    /// the password.
    pub async fn connect(
        url: &str,
        prefix: &str,
        retention: Retention,
    ) -> Result<RedisBackplane, ConnectError> {
        RedisBackplane::connect_with(url, prefix, retention, RedisOptions::default()).await
    }

    /// [`RedisBackplane::connect`] with explicit [`RedisOptions`].
    pub async fn connect_with(
        url: &str,
        prefix: &str,
        retention: Retention,
        options: RedisOptions,
    ) -> Result<RedisBackplane, ConnectError> {
        let raw_secret = raw_password(url);
        let prefix = keys::normalize_prefix(prefix).map_err(ConnectError::InvalidPrefix)?;
        let client = redis::Client::open(url).map_err(|error| {
            let shown = error::scrub(url.to_owned(), raw_secret.as_deref());
            let detail = error::scrub(error.to_string(), raw_secret.as_deref());
            ConnectError::InvalidUrl(format!("{shown:?}: {detail}"))
        })?;
        let info = client.get_connection_info();
        let target = redacted(info);
        // Scrub the decoded password, and the raw one if they differ.
        let secret = info.redis.password.clone().or(raw_secret.clone());
        let scrubbed = |error: &redis::RedisError| {
            let text = error::scrub(error.to_string(), secret.as_deref());
            error::scrub(text, raw_secret.as_deref())
        };
        if matches!(info.addr, redis::ConnectionAddr::TcpTls { .. }) {
            // redis builds rustls with no crypto provider feature; this crate enables
            // ring. rustls picks ring by itself while it is the only provider feature
            // in the build, but panics on the first handshake if another crate also
            // enables aws-lc-rs. Installing ring as the process default (a no-op when
            // the process already chose one) keeps `rediss://` working either way.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }

        let connecting = async {
            let config = ConnectionManagerConfig::new()
                // One attempt per reconnect. redis-rs 0.32 retries with backon's
                // exponential backoff, whose first delay is 1 s (`min_delay`) times
                // `factor` per step, capped at 60 s, and every command waits for the
                // pending reconnect: with the default 6 retries, an append during an
                // outage hung until our 5 s command timeout instead of failing
                // (`outage_fails_fast_…` in tests/redis_backplane/outage.rs), and could go on waiting
                // out a 60 s step after Redis was back. With none, a command during an
                // outage fails at once as `Unavailable` and starts the next attempt.
                .set_number_of_retries(0)
                .set_connection_timeout(options.connect_timeout)
                .set_response_timeout(options.command_timeout);
            let mut commands = ConnectionManager::new_with_config(client.clone(), config)
                .await
                .map_err(|error| {
                    classify(&error, &target, scrubbed(&error), options.connect_timeout)
                })?;

            let info: String = redis::cmd("INFO")
                .arg("server")
                .query_async(&mut commands)
                .await
                .map_err(|error| {
                    classify(&error, &target, scrubbed(&error), options.connect_timeout)
                })?;
            match redis_version(&info) {
                Some(version) if version >= (6, 2) => {}
                Some((major, minor)) => {
                    return Err(ConnectError::Unsupported {
                        target: target.clone(),
                        detail: format!(
                            "version {major}.{minor}; this backplane needs 6.2 or newer (XTRIM MINID, exclusive XRANGE)"
                        ),
                    });
                }
                None => {
                    tracing::warn!(target_server = %target, "could not read the Redis version; assuming 6.2 or newer");
                }
            }
            // Load every script now: the first append needs no NOSCRIPT round trip,
            // and a server with scripting disabled fails here, at boot.
            let mut load = redis::pipe();
            for source in scripts::ALL {
                load.cmd("SCRIPT").arg("LOAD").arg(source);
            }
            let _: Vec<String> = load.query_async(&mut commands).await.map_err(|error| {
                classify(&error, &target, scrubbed(&error), options.connect_timeout)
            })?;

            let pubsub = client.get_async_pubsub().await.map_err(|error| {
                classify(&error, &target, scrubbed(&error), options.connect_timeout)
            })?;
            Ok::<_, ConnectError>((commands, pubsub))
        };
        let (commands, pubsub) = tokio::time::timeout(options.connect_timeout, connecting)
            .await
            .map_err(|_| ConnectError::Timeout {
                target: target.clone(),
                after: options.connect_timeout,
            })??;

        let (sink, stream) = pubsub.split();
        // Floors, so that a zero in the options cannot turn the pinger or the
        // reconnect loop into a busy loop.
        let reconnect_delay_min = options.reconnect_delay_min.max(Duration::from_millis(10));
        let timing = PubSubTiming {
            connect_timeout: options.connect_timeout,
            command_timeout: options.command_timeout,
            ping_interval: options.ping_interval.max(Duration::from_millis(100)),
            reconnect_delay_min,
            reconnect_delay_max: options.reconnect_delay_max.max(reconnect_delay_min),
        };
        let (pubsub, tasks) = PubSubDispatcher::start(
            client,
            commands.clone(),
            timing,
            target.clone(),
            secret.clone(),
            sink,
            stream,
        );
        tracing::info!(target_server = %target, %prefix, "redis backplane connected");
        Ok(RedisBackplane {
            commands,
            pubsub,
            tasks,
            prefix,
            retention,
            options,
            target,
            secret,
        })
    }
}

/// The password of a `scheme://user:password@host…` URL as written (maybe still
/// percent-encoded), to scrub it from error text even when the URL does not parse.
fn raw_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    (!password.is_empty()).then(|| password.to_owned())
}

/// `redis://host:port/db` (or `rediss://…`, `unix:…`) without credentials.
fn redacted(info: &redis::ConnectionInfo) -> String {
    let db = info.redis.db;
    match &info.addr {
        redis::ConnectionAddr::Tcp(host, port) => format!("redis://{host}:{port}/{db}"),
        redis::ConnectionAddr::TcpTls { host, port, .. } => format!("rediss://{host}:{port}/{db}"),
        redis::ConnectionAddr::Unix(path) => format!("unix://{}?db={db}", path.display()),
    }
}

/// Parses `major.minor` out of `INFO server`.
fn redis_version(info: &str) -> Option<(u32, u32)> {
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))?
        .trim();
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// A connect-time `redis` error as a [`ConnectError`].
fn classify(
    error: &redis::RedisError,
    target: &str,
    detail: String,
    timeout: Duration,
) -> ConnectError {
    let target = target.to_owned();
    match error.kind() {
        redis::ErrorKind::AuthenticationFailed => ConnectError::Rejected { target, detail },
        redis::ErrorKind::InvalidClientConfig => ConnectError::InvalidUrl(detail),
        _ if error.is_timeout() => ConnectError::Timeout {
            target,
            after: timeout,
        },
        _ if error::kind_of(error) == ErrorKind::Unavailable => {
            ConnectError::Unreachable { target, detail }
        }
        _ => ConnectError::Rejected { target, detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_found_for_scrubbing() {
        assert_eq!(
            raw_password("redis://user:s3cr%40t@host:6379/0").as_deref(),
            Some("s3cr%40t")
        );
        assert_eq!(raw_password("rediss://:pw@host").as_deref(), Some("pw"));
        assert_eq!(raw_password("redis://host:6379"), None);
        assert_eq!(raw_password("redis://user@host"), None);
    }

    #[test]
    fn versions_are_read_from_info() {
        assert_eq!(
            redis_version("# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"),
            Some((7, 0))
        );
        assert_eq!(redis_version("nothing"), None);
    }
}
