//! The NATS backplane: many gateway replicas share streams, live delivery and records
//! through one NATS server or cluster with JetStream (nats-server 2.9 or newer).
//!
//! DOCS_PLACEHOLDER

mod error;
mod history;
mod layout;
mod options;
mod records;
mod subscriber;

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions, ServerAddr};
use async_trait::async_trait;
use bytes::Bytes;
use switchboard_backplane::{
    AppendError, Backplane, ErrorKind, Event, EventBody, ReadError, RecordError, RecordKey, Replay,
    Retention, Seq, StreamName, SubscribeError, Subscription,
};

pub use error::{ConnectError, ConnectErrorKind};
pub use layout::{EXPIRES_HEADER, Layout, TS_HEADER, valid_prefix};
pub use options::{
    DEFAULT_SUBSCRIPTION_CAPACITY, NatsOptions, Storage, default_history_grace, redact_url,
};

use layout::Layout as Names;
use subscriber::{Live, Registry};

/// The NATS backplane. **Scope: many replicas, one NATS deployment (a server or a
/// cluster) with JetStream.** See the crate docs for the layout and the guarantees.
///
/// Cheap to share behind an `Arc`; one per replica (it holds one NATS connection).
/// Dropping it ends every live [`Subscription`] (`Closed`) and closes the connection.
pub struct NatsBackplane {
    shared: Arc<Shared>,
    live: Live,
}

/// What every operation needs.
pub(crate) struct Shared {
    client: Client,
    js: jetstream::Context,
    /// The events stream (handle only: no info request per use).
    events: jetstream::stream::Stream<()>,
    /// The stream behind the records bucket.
    records: jetstream::stream::Stream<()>,
    layout: Names,
    retention: Retention,
    op_timeout: Duration,
}

type OpResult<T> = Result<T, (ErrorKind, String)>;

impl Shared {
    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Run one async-nats call under the operation timeout.
    async fn run<T, E, F>(&self, call: F) -> OpResult<T>
    where
        F: Future<Output = Result<T, E>>,
        E: StdError + 'static,
    {
        self.run_inner(async {
            call.await
                .map_err(|err| (error::classify(&err), err.to_string()))
        })
        .await
    }

    /// Run an operation: at once `Unavailable` while the connection is down (the
    /// client would otherwise queue it until it reconnects), `Timeout` past the
    /// operation timeout. An operation never hangs.
    async fn run_inner<T, F>(&self, operation: F) -> OpResult<T>
    where
        F: Future<Output = OpResult<T>>,
    {
        if !self.connected() {
            return Err((
                ErrorKind::Unavailable,
                "not connected to NATS (reconnecting)".into(),
            ));
        }
        match tokio::time::timeout(self.op_timeout, operation).await {
            Ok(result) => result,
            Err(_) => Err((
                ErrorKind::Timeout,
                format!("NATS did not answer within {:?}", self.op_timeout),
            )),
        }
    }
}

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
        if !valid_prefix(&options.prefix) {
            return Err(fail(
                ConnectErrorKind::InvalidConfig,
                format!(
                    "the prefix '{}' must be 1 to {} characters of A-Z, a-z, 0-9, '_', '-'",
                    options.prefix,
                    layout::MAX_PREFIX_CHARS
                ),
            ));
        }
        match tokio::time::timeout(options.connect_timeout, boot(&options)).await {
            Ok(Ok(backplane)) => Ok(backplane),
            Ok(Err((kind, reason))) => Err(fail(kind, reason)),
            Err(_) => Err(fail(
                ConnectErrorKind::Timeout,
                format!(
                    "not ready within {:?} (is the server up, with JetStream?)",
                    options.connect_timeout
                ),
            )),
        }
    }

    /// The names this backplane uses on NATS.
    pub fn layout(&self) -> &Layout {
        &self.shared.layout
    }

    /// How many streams this replica holds a live NATS subscription for (one per
    /// stream with at least one [`Subscription`], whatever their number): a gauge for
    /// metrics, and how tests check that dropping the last subscription unsubscribes.
    pub fn subscribed_streams(&self) -> usize {
        self.live.registry.topic_count()
    }

    /// Purge expired records and delete markers from the bucket now (the background
    /// sweep does it every [`NatsOptions::record_sweep_interval`]). Returns how many
    /// keys were purged.
    pub async fn sweep_records(&self) -> Result<usize, RecordError> {
        self.shared
            .run_inner(records::sweep(&self.shared))
            .await
            .map_err(|(kind, detail)| RecordError::new(kind, detail))
    }
}

impl std::fmt::Debug for NatsBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBackplane")
            .field("stream", &self.shared.layout.stream_name())
            .field("bucket", &self.shared.layout.bucket())
            .field("retention", &self.shared.retention)
            .finish_non_exhaustive()
    }
}

/// Reconnect delays: at once, then doubling from 50 ms up to `max`, with up to 20%
/// jitter so replicas do not stampede a restarted server in step.
fn reconnect_delay(attempts: usize, max: Duration) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exponent = u32::try_from(attempts - 2).unwrap_or(u32::MAX).min(16);
    let base = Duration::from_millis(50)
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(max);
    let jitter_permille = switchboard_backplane::now_ms() % 200;
    base + base.mul_f64(jitter_permille as f64 / 1000.0)
}

type BootResult<T> = Result<T, (ConnectErrorKind, String)>;

async fn boot(options: &NatsOptions) -> BootResult<NatsBackplane> {
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

    let registry = Arc::new(Registry::default());
    let events_of = Arc::downgrade(&registry);
    let max_delay = options.max_reconnect_delay;
    let mut connect = ConnectOptions::new()
        .name(&options.client_name)
        .connection_timeout(options.connect_timeout)
        .request_timeout(Some(options.op_timeout))
        .ping_interval(options.ping_interval)
        .max_reconnects(None)
        .reconnect_delay_callback(move |attempts| reconnect_delay(attempts, max_delay))
        .event_callback(move |event| {
            let registry = events_of.upgrade();
            async move {
                if let Some(registry) = registry {
                    registry.on_client_event(event);
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
    let account: serde_json::Value = js
        .request("INFO", &serde_json::json!({}))
        .await
        .map_err(|err| no_jetstream(err.to_string()))?;
    if let Some(error) = account.get("error") {
        return Err(no_jetstream(error.to_string()));
    }

    let names = Names::new(&options.prefix);
    ensure_stream(&js, &names, options).await?;
    ensure_bucket(&js, &names, options).await?;
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
        spawn_sweeper(Arc::downgrade(&shared), interval);
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
            registry,
            client,
            events,
            layout: names,
            capacity: options.subscription_capacity.max(1),
            op_timeout: options.op_timeout,
            next_id: AtomicU64::new(0),
        },
    })
}

/// JetStream's per-subject limit for `max_events`: one more than `read` returns, the
/// witness that proves trimming (see `history`). `-1`: unlimited.
fn per_subject_limit(max_events: usize) -> i64 {
    i64::try_from(max_events)
        .ok()
        .and_then(|n| n.checked_add(1))
        .unwrap_or(-1)
}

fn storage_type(storage: Storage) -> stream::StorageType {
    match storage {
        Storage::File => stream::StorageType::File,
        Storage::Memory => stream::StorageType::Memory,
    }
}

/// The event stream's configuration for these options (see the crate docs' table).
fn events_config(names: &Names, options: &NatsOptions) -> stream::Config {
    let grace = options
        .history_grace
        .unwrap_or_else(|| default_history_grace(options.retention));
    stream::Config {
        name: names.stream_name(),
        description: Some(format!(
            "Switchboard events of deployment '{}' (managed by the gateway)",
            options.prefix
        )),
        subjects: vec![names.events_wildcard()],
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        max_messages_per_subject: per_subject_limit(options.retention.max_events),
        max_age: options.retention.max_age.saturating_add(grace),
        storage: storage_type(options.storage),
        num_replicas: options.stream_replicas.max(1),
        republish: Some(stream::Republish {
            source: names.events_wildcard(),
            destination: names.live_wildcard(),
            headers_only: false,
        }),
        ..Default::default()
    }
}

/// The bucket's stream, laid out as NATS KV does (so `nats kv` works on it), except
/// that reads go to the stream leader (`allow_direct: false`): a record written through
/// one replica is read back through another at once.
fn bucket_config(names: &Names, options: &NatsOptions) -> stream::Config {
    stream::Config {
        name: names.bucket_stream(),
        description: Some(format!(
            "Switchboard records of deployment '{}' (managed by the gateway)",
            options.prefix
        )),
        subjects: vec![names.bucket_filter()],
        max_messages_per_subject: 1,
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: false,
        storage: storage_type(options.storage),
        num_replicas: options.stream_replicas.max(1),
        ..Default::default()
    }
}

/// Whether `current` already has what `desired` asks for, in the fields we manage.
fn stream_matches(current: &stream::Config, desired: &stream::Config) -> bool {
    current.subjects == desired.subjects
        && current.max_messages_per_subject == desired.max_messages_per_subject
        && current.max_age == desired.max_age
        && current.republish == desired.republish
        && current.num_replicas == desired.num_replicas
}

/// `current` with the fields we manage taken from `desired`.
fn merged(current: &stream::Config, desired: &stream::Config) -> stream::Config {
    let mut config = current.clone();
    config.subjects = desired.subjects.clone();
    config.max_messages_per_subject = desired.max_messages_per_subject;
    config.max_age = desired.max_age;
    config.republish = desired.republish.clone();
    config.num_replicas = desired.num_replicas;
    config
}

/// Create the stream, or update the one there to `desired`. Idempotent, and safe when
/// several replicas boot at once: a create that loses the race reads and updates.
async fn ensure(js: &jetstream::Context, desired: stream::Config) -> BootResult<()> {
    let rejected = |what: &str, err: &dyn std::fmt::Display| {
        (
            ConnectErrorKind::Rejected,
            format!(
                "JetStream refused to {what} the stream {}: {err}",
                desired.name
            ),
        )
    };
    for _ in 0..3 {
        match js.get_stream(&desired.name).await {
            Ok(existing) => {
                let current = &existing.cached_info().config;
                if current.storage != desired.storage {
                    tracing::warn!(
                        stream = %desired.name,
                        "the stream's storage differs from the configured one; JetStream cannot change it, keeping {:?}",
                        current.storage
                    );
                }
                if stream_matches(current, &desired) {
                    return Ok(());
                }
                tracing::warn!(
                    stream = %desired.name,
                    "updating the stream's retention, subjects or replicas to this replica's configuration (every replica should use the same)"
                );
                return match js.update_stream(merged(current, &desired)).await {
                    Ok(_) => Ok(()),
                    Err(err) => Err(rejected("update", &err)),
                };
            }
            Err(err)
                if matches!(err.kind(), jetstream::context::GetStreamErrorKind::JetStream(e)
                    if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
            {
                match js.create_stream(desired.clone()).await {
                    Ok(_) => return Ok(()),
                    // Another replica created it first (with another configuration):
                    // go round and update it.
                    Err(err)
                        if matches!(err.kind(), jetstream::context::CreateStreamErrorKind::JetStream(e)
                            if e.error_code() == jetstream::ErrorCode::STREAM_NAME_EXIST) => {}
                    Err(err) => return Err(rejected("create", &err)),
                }
            }
            Err(err) => {
                let kind = match error::classify(&err) {
                    ErrorKind::Rejected => ConnectErrorKind::Rejected,
                    _ => ConnectErrorKind::NoJetStream,
                };
                return Err((
                    kind,
                    format!("cannot look up the stream {}: {err}", desired.name),
                ));
            }
        }
    }
    Err((
        ConnectErrorKind::Rejected,
        format!(
            "the stream {} kept changing while it was set up",
            desired.name
        ),
    ))
}

async fn ensure_stream(
    js: &jetstream::Context,
    names: &Names,
    options: &NatsOptions,
) -> BootResult<()> {
    ensure(js, events_config(names, options)).await
}

async fn ensure_bucket(
    js: &jetstream::Context,
    names: &Names,
    options: &NatsOptions,
) -> BootResult<()> {
    ensure(js, bucket_config(names, options)).await
}

/// Sweep the records bucket every `interval` (±10%) while the backplane lives.
fn spawn_sweeper(shared: std::sync::Weak<Shared>, interval: Duration) {
    tokio::spawn(async move {
        loop {
            let jitter = interval.mul_f64((switchboard_backplane::now_ms() % 200) as f64 / 1000.0);
            tokio::time::sleep(interval.mul_f64(0.9) + jitter).await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            match shared.run_inner(records::sweep(&shared)).await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "nats backplane: swept records"),
                Err((kind, detail)) => {
                    tracing::debug!(%kind, detail, "nats backplane: record sweep failed, retrying later");
                }
            }
        }
    });
}

#[async_trait]
impl Backplane for NatsBackplane {
    fn name(&self) -> &'static str {
        "nats"
    }

    async fn append(
        &self,
        stream: &StreamName,
        body: EventBody,
    ) -> Result<Arc<Event>, AppendError> {
        history::append(&self.shared, stream, body).await
    }

    async fn subscribe(&self, stream: &StreamName) -> Result<Subscription, SubscribeError> {
        self.live.subscribe(stream).await
    }

    async fn read(
        &self,
        stream: &StreamName,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Replay, ReadError> {
        history::read(&self.shared, stream, after, limit).await
    }

    async fn record_put(
        &self,
        key: &RecordKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), RecordError> {
        records::put(&self.shared, key, value, ttl).await
    }

    async fn record_create(
        &self,
        key: &RecordKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, RecordError> {
        records::create(&self.shared, key, value, ttl).await
    }

    async fn record_get(&self, key: &RecordKey) -> Result<Option<Bytes>, RecordError> {
        records::get(&self.shared, key).await
    }

    async fn record_delete(&self, key: &RecordKey) -> Result<bool, RecordError> {
        records::delete(&self.shared, key).await
    }

    async fn record_list(&self, namespace: &str) -> Result<Vec<(String, Bytes)>, RecordError> {
        records::list(&self.shared, namespace).await
    }

    /// Ready means JetStream answers for the events stream (one round trip).
    async fn ping(&self) -> Result<(), ReadError> {
        let shared = &self.shared;
        shared
            .run(async { shared.events.get_info().await.map(|_| ()) })
            .await
            .map_err(|(kind, detail)| ReadError::new(kind, detail))
    }
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

    #[test]
    fn per_subject_limit_keeps_one_witness() {
        assert_eq!(per_subject_limit(5), 6);
        assert_eq!(per_subject_limit(usize::MAX), -1);
    }
}
