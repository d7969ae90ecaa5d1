//! The NATS backplane: many gateway replicas share streams, live delivery and records
//! through one NATS server or cluster with JetStream (nats-server 2.9 or newer; 2.9
//! has no per-message or per-key TTL, and nothing here needs one).
//!
//! ```rust,ignore
//! // SWITCHBOARD_BACKPLANE=nats://[user:password@]host:4222  (tls:// for TLS)
//! let backplane = NatsBackplane::connect(&url, "sb", retention).await?; // fails loud at boot
//! let backplane: Arc<dyn Backplane> = Arc::new(backplane);
//! ```
//!
//! # Layout
//!
//! - `lib.rs`: [`NatsBackplane`]: booting (connect, check JetStream, create or update
//!   the stream and the bucket), the [`Backplane`] methods.
//! - `options.rs`: [`NatsOptions`], every knob with its default; URL redaction.
//! - `layout.rs`: every name on the server ([`Layout`]), and how record keys become KV
//!   keys.
//! - `history.rs`: `append` and `read`, and how [`Retention`] maps onto JetStream.
//! - `subscriber.rs`: live delivery: one NATS subscription per subscribed stream, its
//!   dispatcher, putting republished messages back in order, and every way a
//!   subscription ends.
//! - `records.rs`: records in a KV bucket, their time to live, the sweep.
//! - `error.rs`: [`ConnectError`], and how `async-nats` errors map onto [`ErrorKind`]s.
//!
//! # On the server
//!
//! Every name starts with the deployment prefix (here `sb`, the gateway's
//! `--backplane-prefix`). `<kind>:<id>` is a Switchboard stream (`session:s_42`,
//! `org:acme`, `user:acme@YWxpY2U`); ids are `[A-Za-z0-9_@-]`, valid subject tokens.
//!
//! | Name | What | Holds | Kept |
//! |------|------|-------|------|
//! | `SWITCHBOARD_sb` | JetStream stream: limits retention, discard old, file storage, 1 replica ([`NatsOptions`] changes the last two) | every event of the deployment, on subjects `sb.ev.>` | `max_msgs_per_subject` = `max_events + 1`, `max_age` = `max_age` + [`history_grace`](NatsOptions::history_grace) |
//! | `sb.ev.<kind>.<id>` | a subject of that stream (`session:s_42` → `sb.ev.session.s_42`) | the events of one Switchboard stream; payload = the event body JSON, header `Switchboard-Ts` = its `ts` | as above |
//! | `sb.live.<kind>.<id>` | core NATS subject the stream **republishes** every stored message to | the same message plus headers `Nats-Sequence` (the seq), `Nats-Last-Sequence` (the previous seq of the same subject), `Nats-Subject`, `Nats-Stream` | not stored |
//! | `sb_records` | KV bucket (stream `KV_sb_records`, subjects `$KV.sb_records.>`, history 1, leader reads) | records: key `<namespace>.<key>`, value the caller's bytes, header `Switchboard-Expires-At` (ms) for a TTL | until deleted or expired and swept |
//! | (ephemeral) | pull consumers, memory, 1 replica | none: one per `read` with events to return and per `record_list`, deleted right after (30 s inactivity at worst) | |
//!
//! `seq` is JetStream's stream sequence, shared by every subject of the deployment:
//! strictly increasing per Switchboard stream, not contiguous (allowed by the
//! protocol), and it never restarts, not even after a stream's whole history expired.
//! `ts` is the appending replica's clock in ms (the `Switchboard-Ts` header).
//!
//! # Publishing without the gateway (protocol section 8)
//!
//! A backend publishes an event body (the JSON of a session event, section 4, with no
//! `seq` or `ts`) to `sb.ev.<kind>.<id>`. JetStream stores it and gives it its seq;
//! every replica with members on that stream delivers it live, in order, and `read`
//! replays it. With the `nats` CLI:
//!
//! ```text
//! # With the ack (it carries the seq):
//! nats req sb.ev.session.s_42 '{"type":"event","name":"order.updated","data":{"order":7},"publisher":"billing"}'
//! {"stream":"SWITCHBOARD_sb","seq":1234}
//!
//! # Fire and forget (JetStream still stores it, with a seq):
//! nats pub sb.ev.session.s_42 '{"type":"message","message_id":"m_1","role":"operator","text":"On it."}'
//!
//! # Optionally carry your own ts (ms since the epoch):
//! nats req -H Switchboard-Ts:1700000000000 sb.ev.session.s_42 '{"type":"event","name":"ping","data":null}'
//! ```
//!
//! Without `Switchboard-Ts`, `read` reports the time JetStream stored the event and live
//! delivery the time it arrived (the two differ by the delivery latency, milliseconds).
//! A user stream's id is `<org>@<base64url(user id)>` (see
//! `StreamName::user_in_org`), so the subject of user `alice@example.com` of org
//! `acme` is `sb.ev.user.acme@YWxpY2VAZXhhbXBsZS5jb20`. A payload that is not an event
//! body is skipped (and logged) by `read` and live delivery alike; its seq is simply
//! never seen. An error answer from `nats req` (503: no stream leader right now) means
//! nothing was stored.
//!
//! # What each operation costs
//!
//! | Operation | Round trips |
//! |-----------|-------------|
//! | `append` | 1: one JetStream publish and its ack (the ack carries the seq) |
//! | `subscribe` | 1: SUBSCRIBE (the first local subscriber of a stream only) and a read of the stream's head |
//! | `read(after, 0)` (the head) | 1–2: three requests at once (head, oldest, count), plus one if `after` is inside the history; no consumer |
//! | `read(after ≥ head, n)` | 1: the head says there is nothing after `after` |
//! | `read(after, n)` otherwise | 3 + 1 per 1024 events: head, create a consumer from `after + 1`, fetch; the consumer is deleted without waiting |
//! | records | see `records.rs`: 1 for `put`, `get`, `create` of a fresh key; 2 for `delete`, `list` |
//! | `ping` | 1: the event stream's info (ready means JetStream answers for it) |
//!
//! # Retention, `last_seq` and `trimmed`
//!
//! JetStream keeps one message more per subject than `read` may return, and keeps
//! messages `history_grace` longer than `max_age`; `read` applies the exact retention
//! itself (by the count of messages after each one, and by JetStream's stored time).
//! The extra message, and the expired-but-kept ones, are the proof that something was
//! trimmed, so `trimmed` is exact, and `last_seq` survives the expiry of a stream's
//! whole history, at no cost on `append`. A stream idle for longer than `max_age` +
//! `history_grace` is forgotten: it then reads like a new one (`last_seq` 0). Details
//! in `history.rs`.
//!
//! # Live delivery
//!
//! A replica holds one core NATS subscription per stream with local subscribers (on
//! `sb.live.<kind>.<id>`, shared by all of them, unsubscribed with the last), and hands
//! every event to each [`Subscription`] with a non-blocking `offer`. A subscription
//! ends instead of skipping: `Lagged` when its queue is full or an event was lost on
//! the way (`Nats-Last-Sequence` names each event's predecessor, so a missing one is
//! noticed, and the reordering nats-server 2.9 does for concurrent publishers is
//! undone exactly), `Disconnected` when the connection drops, `Closed` when the
//! backplane is dropped. Details in `subscriber.rs`.
//!
//! **Per-stream subscriptions, not one wildcard.** Measured with the `nats_bench`
//! example: 20,000 events on 100 streams, a replica whose members watch one of them
//! receives 200 messages with per-stream subscriptions and all 20,000 with a wildcard
//! (`sb.live.>`), every replica paying for the whole deployment's traffic (15 ms of
//! client time here just to receive and discard them; it grows with replicas × total
//! traffic). A per-stream subscription costs one SUBSCRIBE, made together with the head
//! read `subscribe` needs anyway (p50 160 µs).
//!
//! # Failures
//!
//! - **Boot** fails within [`NatsOptions::connect_timeout`] (5 s) with a
//!   [`ConnectError`] when the server is unreachable, refuses the credentials, has no
//!   JetStream, or refuses the stream or bucket; a timeout says how far the boot got
//!   (connecting, JetStream's account info, the stream, the bucket). Messages never
//!   contain credentials. Credentials: `user:password@` or `token@` in the URL,
//!   [`NatsOptions::token`], or [`NatsOptions::creds_file`].
//! - **Several replicas booting at once** all succeed: creating the stream and the
//!   bucket is idempotent; a replica with another retention updates the stream (with a
//!   warning). Every replica of a deployment must use the same retention. The losers
//!   of a concurrent create may be told the subjects overlap the winner's stream, or
//!   get no answer at all (nats-io/nats-server#3677): both look again, each request of
//!   the set-up bounded by a quarter of `connect_timeout`.
//! - **At run time** the client reconnects by itself (at once, then backing off from
//!   50 ms to [`NatsOptions::max_reconnect_delay`], 2 s, with jitter) and resubscribes.
//!   While disconnected every operation fails at once with `Unavailable`, and every live
//!   subscription ends `Disconnected`, so the gateway resubscribes and fills the gap
//!   with `read`. An operation in flight when the connection drops waits at most
//!   [`NatsOptions::op_timeout`] (5 s): it succeeds if the client reconnects and resends
//!   it in time, else fails with `Timeout`, which for `append` means *unknown* (the
//!   server may have stored the event before the link broke).
//! - **Durability**: an `append` that returned `Ok` is in JetStream's store; the outage
//!   test kills the server (SIGKILL) while appending and finds every acked event after
//!   the restart. With 1 replica an event lives on one server's disk; run 3 replicas
//!   ([`NatsOptions::stream_replicas`]) on a cluster to survive losing a server.
//!
//! # Measured
//!
//! On this project's 2-core test machine, local nats-server 2.9.10, file storage,
//! release build (`cargo run --release -p switchboard-nats --example nats_bench`):
//!
//! | What | p50 | p99 |
//! |------|-----|-----|
//! | `append`, one writer | 119 µs | 214 µs |
//! | `append` → event on a live subscription | 116 µs | 184 µs |
//! | `subscribe` to a new stream | 160 µs | 257 µs |
//! | `read` caught up (`after` = head) | 114 µs | 171 µs |
//! | `read(None, 0)` (head) | 250 µs | 473 µs |
//! | `read` 100 of 1,000 | 1.1 ms | 3.1 ms |
//! | `read` 1,000 | 3.9 ms | 6.8 ms |
//!
//! 16 concurrent writers on 16 streams: ~38,000 appends/s. After the server is
//! restarted, the backplane is usable again ~100 ms later (outage test).
//!
//! # Caveats
//!
//! - Age retention compares JetStream's stored time (the server's clock) with the
//!   gateway's clock: keep clocks in sync (NTP); a skew shifts expiry by the skew.
//! - `ts` is the appending replica's clock, so across replicas with skewed clocks it
//!   can go backwards between consecutive events (seq never does).
//! - On a cluster, each `read` that returns events creates an ephemeral consumer,
//!   which JetStream places through its meta leader: fine for joins and resumes, not
//!   for a hot loop. Head reads and caught-up reads create none.

mod error;
mod history;
mod layout;
mod options;
mod records;
mod subscriber;

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
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

    let names = Names::new(&options.prefix);
    let attempt = attempt_timeout(options);
    stage.enter("setting up the event stream");
    ensure(&js, events_config(&names, options), attempt).await?;
    stage.enter("setting up the records bucket");
    ensure(&js, bucket_config(&names, options), attempt).await?;
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

/// JetStream's `max_age` for `age`: zero (no age limit) when it would not fit the
/// server's nanosecond counter.
fn physical_max_age(age: Duration) -> Duration {
    if age.as_nanos() >= i64::MAX as u128 {
        Duration::ZERO
    } else {
        age
    }
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
        max_age: physical_max_age(options.retention.max_age.saturating_add(grace)),
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

/// How long one JetStream management request of the boot may take before it is
/// asked again: a quarter of the boot's budget (at least 250 ms). Replicas creating
/// the same stream at once can have a request go unanswered (nats-io/nats-server#3677,
/// nats-io/nats.go#949); waiting out the whole budget on it would fail the boot,
/// while asking again finds the stream the other replica made.
fn attempt_timeout(options: &NatsOptions) -> Duration {
    (options.connect_timeout / 4).max(Duration::from_millis(250))
}

/// What one round of [`ensure`] found.
enum Round {
    Done,
    /// Look again: another replica created the stream meanwhile.
    Again,
    /// The create was refused because its subjects overlap another stream's (the
    /// refusal, should it stand).
    Overlapped((ConnectErrorKind, String)),
}

/// Create the stream, or update the one there to `desired`. Idempotent, and safe when
/// several replicas boot at once: a create that loses the race reads and updates.
async fn ensure(
    js: &jetstream::Context,
    desired: stream::Config,
    attempt: Duration,
) -> BootResult<()> {
    const ROUNDS: usize = 4;
    let mut overlapped = false;
    for _ in 0..ROUNDS {
        match tokio::time::timeout(attempt, ensure_round(js, &desired)).await {
            Ok(Ok(Round::Done)) => return Ok(()),
            Ok(Err(err)) => return Err(err),
            Ok(Ok(Round::Again)) => {}
            // A create racing another replica's can be told that its subjects overlap
            // the stream that replica has just made (nats-server 2.9 checks subjects
            // before names): look again once, the stream is there now. A second
            // overlap is a real one, with someone else's stream.
            Ok(Ok(Round::Overlapped(refusal))) if overlapped => return Err(refusal),
            Ok(Ok(Round::Overlapped(_))) => overlapped = true,
            Err(_) => tracing::warn!(
                stream = %desired.name,
                "JetStream did not answer within {attempt:?} while setting up the stream; asking again"
            ),
        }
    }
    Err((
        ConnectErrorKind::Rejected,
        format!(
            "the stream {} kept changing, or JetStream kept not answering, while it was set up ({ROUNDS} tries)",
            desired.name
        ),
    ))
}

async fn ensure_round(js: &jetstream::Context, desired: &stream::Config) -> BootResult<Round> {
    let rejected = |what: &str, err: &dyn std::fmt::Display| {
        (
            ConnectErrorKind::Rejected,
            format!(
                "JetStream refused to {what} the stream {}: {err}",
                desired.name
            ),
        )
    };
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
            if stream_matches(current, desired) {
                return Ok(Round::Done);
            }
            tracing::warn!(
                stream = %desired.name,
                "updating the stream's retention, subjects or replicas to this replica's configuration (every replica should use the same)"
            );
            match js.update_stream(merged(current, desired)).await {
                Ok(_) => Ok(Round::Done),
                Err(err) => Err(rejected("update", &err)),
            }
        }
        Err(err)
            if matches!(err.kind(), jetstream::context::GetStreamErrorKind::JetStream(e)
                if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            match js.create_stream(desired.clone()).await {
                Ok(_) => Ok(Round::Done),
                // Another replica created it first (with another configuration): go
                // round and update it.
                Err(err)
                    if matches!(err.kind(), jetstream::context::CreateStreamErrorKind::JetStream(e)
                        if e.error_code() == jetstream::ErrorCode::STREAM_NAME_EXIST) =>
                {
                    Ok(Round::Again)
                }
                Err(err)
                    if matches!(err.kind(), jetstream::context::CreateStreamErrorKind::JetStream(e)
                        if e.error_code() == jetstream::ErrorCode::STREAM_SUBJECT_OVERLAP) =>
                {
                    Ok(Round::Overlapped(rejected("create", &err)))
                }
                Err(err) => Err(rejected("create", &err)),
            }
        }
        Err(err) => {
            let kind = match error::classify(&err) {
                ErrorKind::Rejected => ConnectErrorKind::Rejected,
                _ => ConnectErrorKind::NoJetStream,
            };
            Err((
                kind,
                format!("cannot look up the stream {}: {err}", desired.name),
            ))
        }
    }
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
    fn an_unbounded_age_is_no_age_limit() {
        assert_eq!(physical_max_age(Duration::MAX), Duration::ZERO);
        assert_eq!(
            physical_max_age(Duration::from_secs(60)),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn per_subject_limit_keeps_one_witness() {
        assert_eq!(per_subject_limit(5), 6);
        assert_eq!(per_subject_limit(usize::MAX), -1);
    }
}
