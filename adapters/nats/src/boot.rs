//! Booting: [`NatsBackplane::connect`]. Connects the client (credentials, TLS, its
//! reconnect schedule), checks JetStream is there, sets up the stream and the bucket
//! (`setup.rs`), all within `connect_timeout`; a boot that runs out of time says how
//! far it got.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::{ConnectOptions, ServerAddr};
use switchboard_backplane::{Backoff, Retention};

use crate::error::{ConnectError, ConnectErrorKind};
use crate::layout::{self, Layout};
use crate::live::{Live, SubscriptionTable};
use crate::options::{self, NatsOptions, redact_url};
use crate::shared::Shared;
use crate::{NatsBackplane, records, setup};

/// A boot step's failure: its class and a message (scrubbed before it leaves).
pub(crate) type BootResult<T> = Result<T, (ConnectErrorKind, String)>;

/// The first delay of the client's reconnect backoff (after the immediate first retry).
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(50);

/// Share of each reconnect delay added at random, so that replicas do not stampede a
/// restarted server in step.
const RECONNECT_JITTER: f64 = 0.2;

impl NatsBackplane {
    /// Connect to `url` (`nats://[user:password@]host:4222`, `tls://…`, comma-separated
    /// for a cluster) and make sure the deployment `prefix` has its stream and bucket,
    /// with every other option at its default (see [`NatsOptions`]).
    ///
    /// Fails within 5 s when the server cannot be reached, refuses the credentials or
    /// has no JetStream; the error never contains a credential.
    pub async fn connect(
        url: &str,
        prefix: &str,
        retention: Retention,
    ) -> Result<NatsBackplane, ConnectError> {
        NatsBackplane::connect_with(NatsOptions::new(url, prefix, retention)).await
    }

    /// [`NatsBackplane::connect`] with every option.
    pub async fn connect_with(options: NatsOptions) -> Result<NatsBackplane, ConnectError> {
        let target = redact_url(&options.url);
        let secrets = options::secrets(&options);
        let fail = |kind: ConnectErrorKind, reason: String| ConnectError {
            kind,
            target: target.clone(),
            reason: options::scrub(&reason, &secrets),
        };
        if !layout::valid_prefix(&options.prefix) {
            return Err(fail(
                ConnectErrorKind::InvalidConfig,
                format!(
                    "the prefix '{}' must be 1 to {} characters of A-Z, a-z, 0-9, '_', '-'",
                    options.prefix,
                    layout::MAX_PREFIX_CHARS
                ),
            ));
        }
        let stage = BootStage::new();
        match tokio::time::timeout(options.connect_timeout, boot(&options, &stage)).await {
            Ok(Ok(backplane)) => Ok(backplane),
            Ok(Err((kind, reason))) => Err(fail(kind, reason)),
            Err(_) => Err(fail(
                ConnectErrorKind::Timeout,
                format!(
                    "not ready within {:?}, still {} (is the server up, with JetStream?)",
                    options.connect_timeout,
                    stage.describe()
                ),
            )),
        }
    }
}

/// The client's delay before reconnect attempt `attempts` (counted from 1): none for
/// the first, so a short blip costs nothing; then the [`Backoff`] from 50 ms up to
/// `max`, each delay lengthened by up to [`RECONNECT_JITTER`] of itself.
fn reconnect_delay(attempts: usize, max: Duration) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let retry = u32::try_from(attempts - 2).unwrap_or(u32::MAX);
    Backoff::new(FIRST_RECONNECT_DELAY, max)
        .with_jitter(RECONNECT_JITTER)
        .delay_for(retry)
}

/// What a boot is doing, so that one that runs out of time can say where it stood.
struct BootStage(Mutex<&'static str>);

impl BootStage {
    fn new() -> BootStage {
        BootStage(Mutex::new("starting"))
    }

    fn enter(&self, doing: &'static str) {
        if let Ok(mut stage) = self.0.lock() {
            *stage = doing;
        }
    }

    fn describe(&self) -> &'static str {
        self.0.lock().map_or("booting", |stage| *stage)
    }
}

async fn boot(options: &NatsOptions, stage: &BootStage) -> BootResult<NatsBackplane> {
    let addrs = options
        .url
        .split(',')
        .map(|one| one.trim().parse::<ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| {
            (
                ConnectErrorKind::InvalidConfig,
                format!("not a NATS URL (want nats://host:4222 or tls://host:4222): {err}"),
            )
        })?;
    if addrs.is_empty() {
        return Err((ConnectErrorKind::InvalidConfig, "no server URL".into()));
    }

    let table = Arc::new(SubscriptionTable::default());
    let events_of = Arc::downgrade(&table);
    let max_delay = options.max_reconnect_delay;
    let mut connect = ConnectOptions::new()
        .name(&options.client_name)
        .connection_timeout(options.connect_timeout)
        .request_timeout(Some(options.op_timeout))
        .ping_interval(options.ping_interval)
        .max_reconnects(None)
        .reconnect_delay_callback(move |attempts| reconnect_delay(attempts, max_delay))
        .event_callback(move |event| {
            let table = events_of.upgrade();
            async move {
                if let Some(table) = table {
                    table.on_client_event(event);
                }
            }
        });
    // The client does not read credentials out of the URL itself: a `user:password@`
    // part becomes user and password, a lone `token@` a token (the NATS URL
    // convention); an explicit `token` option wins.
    match addrs
        .iter()
        .find_map(|addr| addr.username().map(|user| (user, addr.password())))
    {
        _ if options.token.is_some() => {}
        Some((user, Some(password))) => {
            connect = connect.user_and_password(
                options::percent_decode(user),
                options::percent_decode(password),
            );
        }
        Some((token, None)) => connect = connect.token(options::percent_decode(token)),
        None => {}
    }
    if let Some(token) = &options.token {
        connect = connect.token(token.clone());
    }
    if let Some(path) = &options.creds_file {
        connect = connect.credentials_file(path).await.map_err(|err| {
            (
                ConnectErrorKind::InvalidConfig,
                format!(
                    "cannot read the creds file {}: {}",
                    path.display(),
                    err.kind()
                ),
            )
        })?;
    }
    if let Some(path) = &options.tls_ca_file {
        connect = connect.add_root_certificates(path.clone());
    }
    if let Some((cert, key)) = &options.tls_client_cert {
        connect = connect.add_client_certificate(cert.clone(), key.clone());
    }

    stage.enter("connecting");
    let client = connect.connect(addrs).await.map_err(|err| {
        let kind = match err.kind() {
            async_nats::ConnectErrorKind::Authentication
            | async_nats::ConnectErrorKind::AuthorizationViolation => {
                ConnectErrorKind::Unauthorized
            }
            async_nats::ConnectErrorKind::ServerParse => ConnectErrorKind::InvalidConfig,
            _ => ConnectErrorKind::Unreachable,
        };
        (kind, format!("cannot connect: {err}"))
    })?;

    let mut js = jetstream::new(client.clone());
    js.set_timeout(options.op_timeout);
    // The raw account info request (the client's typed one expects fields 2.9 does
    // not send): any answer but an error means JetStream is there.
    let no_jetstream = |detail: String| {
        (
            ConnectErrorKind::NoJetStream,
            format!(
                "JetStream is not available on this server or account (start nats-server with -js): {detail}"
            ),
        )
    };
    stage.enter("waiting for JetStream's account info");
    let account: serde_json::Value = js
        .request("INFO", &serde_json::json!({}))
        .await
        .map_err(|err| no_jetstream(err.to_string()))?;
    if let Some(error) = account.get("error") {
        return Err(no_jetstream(error.to_string()));
    }

    let names = Layout::new(&options.prefix);
    let attempt = setup::attempt_timeout(options);
    stage.enter("setting up the event stream");
    setup::ensure(&js, setup::events_config(&names, options), attempt).await?;
    stage.enter("setting up the records bucket");
    setup::ensure(&js, setup::bucket_config(&names, options), attempt).await?;
    stage.enter("opening the event stream and the records bucket");
    let events = js
        .get_stream_no_info(names.stream_name())
        .await
        .map_err(|err| (ConnectErrorKind::InvalidConfig, err.to_string()))?;
    let records = js
        .get_stream_no_info(names.bucket_stream())
        .await
        .map_err(|err| (ConnectErrorKind::InvalidConfig, err.to_string()))?;

    let shared = Arc::new(Shared {
        client: client.clone(),
        js,
        events: events.clone(),
        records,
        layout: names.clone(),
        retention: options.retention,
        op_timeout: options.op_timeout,
    });
    if let Some(interval) = options.record_sweep_interval {
        records::spawn_sweeper(Arc::downgrade(&shared), interval);
    }
    tracing::info!(
        target = %redact_url(&options.url),
        stream = %names.stream_name(),
        bucket = %names.bucket(),
        "nats backplane ready"
    );
    Ok(NatsBackplane {
        shared,
        live: Live {
            table,
            client,
            events,
            layout: names,
            capacity: options.subscription_capacity.max(1),
            op_timeout: options.op_timeout,
            next_id: AtomicU64::new(0),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_back_off_to_the_cap() {
        let max = Duration::from_secs(2);
        assert_eq!(reconnect_delay(0, max), Duration::ZERO);
        assert_eq!(reconnect_delay(1, max), Duration::ZERO);
        assert!(reconnect_delay(2, max) >= Duration::from_millis(50));
        assert!(reconnect_delay(2, max) < Duration::from_millis(61));
        assert!(reconnect_delay(100, max) >= max);
        assert!(reconnect_delay(100, max) <= max.mul_f64(1.2));
    }
}
