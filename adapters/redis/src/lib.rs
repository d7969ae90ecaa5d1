//! The Redis backplane: many gateway replicas share streams, live delivery and records
//! through one Redis (6.2 or newer).
//!
//! ```rust,ignore
//! // SWITCHBOARD_BACKPLANE=redis://[user:password@]host:6379[/db]  (rediss:// for TLS)
//! let backplane = RedisBackplane::connect(&url, "sb", retention).await?; // fails loud at boot
//! let backplane: Arc<dyn Backplane> = Arc::new(backplane);
//! ```
//!
//! # Layout
//!
//! - `lib.rs`: [`RedisBackplane`]: connecting, the [`Backplane`] methods, [`RedisOptions`].
//! - `keys.rs`: every key and channel name ([`StreamKeys`]), in one place.
//! - `lua/*.lua`: the scripts; `append.lua` is also what direct publishers run.
//! - `subscriber.rs`: live delivery: the one pub/sub connection, its dispatcher task,
//!   reference-counted SUBSCRIBE/UNSUBSCRIBE, disconnects and reconnects.
//! - `error.rs`: [`ConnectError`] and how `redis` errors map to the backplane's
//!   [`ErrorKind`]s.
//!
//! # Keys and channels
//!
//! Every name starts with the deployment's prefix (here `sb:`: the gateway's
//! `--backplane-prefix`, default `sb`, plus a colon). `<stream>` is the stream name
//! (`session:s_42`, `org:acme`, `user:acme@YWxpY2U`); record namespaces are written as
//! they are when made of `[A-Za-z0-9_.@-]` (all of the gateway's are), other bytes as
//! `%XX`.
//!
//! | Name | Type | Holds | Expires |
//! |------|------|-------|---------|
//! | `sb:stream:{<stream>}:meta` | hash | `seq` (newest assigned), `ts` (newest assigned), `trimmed` (highest seq retention removed) | [`RedisOptions::stream_idle_ttl`] (7 days) after the last append |
//! | `sb:stream:{<stream>}:log` | stream | one entry per retained event: ID `<seq>-0`, field `e` = the event JSON, field `t` = its `ts` | `max_age` + 60 s after the last append |
//! | `sb:stream:{<stream>}:live` | pub/sub channel | the event JSON of every append, published by the append script | — |
//! | `sb:rec:{<namespace>}:<key>` | string | a record's value (bytes) | the record's TTL (`PX`) |
//! | `sb:recidx:{<namespace>}` | sorted set | the namespace's keys, scored by expiry in ms (`+inf`: none) | entries pruned on every write and list |
//!
//! The event JSON is the protocol's stored event, body fields inline:
//! `{"seq":1776000000000001,"ts":1776000000000,"type":"message","message_id":"m_1",…}`.
//!
//! The `{…}` hash tags keep a stream's two keys (and a namespace's keys) in one Redis
//! Cluster slot, so every script touches a single slot. (This client talks to one
//! endpoint: a standalone Redis, or a primary behind managed failover.)
//!
//! # Round trips
//!
//! | Operation | Round trips | How |
//! |-----------|-------------|-----|
//! | `append` | 1 | `EVALSHA` append script |
//! | `read` (any `limit`, incl. 0 for the head) | 1 | `EVALSHA` read script |
//! | `subscribe` | 1–2 | `SUBSCRIBE` (only for the replica's first subscription of the stream) + `HGET meta seq` |
//! | `record_put`, `record_create` | 1 | `EVALSHA` record script (`SET [NX] [PX]` + index) |
//! | `record_get` | 1 | `GET` |
//! | `record_delete` | 1 | `MULTI DEL ZREM EXEC`, pipelined |
//! | `record_list` | 1 | `EVALSHA` list script |
//! | `ping` | 1 | `PING` |
//!
//! Scripts are loaded at connect; after a Redis restart (empty script cache) the first
//! call of each falls back to `EVAL` once, by itself.
//!
//! # The append script
//!
//! One script, so seq assignment, storage, trimming and fan-out are one atomic step and
//! the order of `seq`, of history and of live delivery is the same for every replica
//! (Redis runs scripts one at a time). In order, it:
//!
//! 1. checks the body is a JSON object (it is spliced as text, never decoded: Lua's
//!    cjson would turn `18446744073709551615` into `1.844674407371e+19`);
//! 2. reads the server clock (`TIME`) and the stream's `meta`; `seq` = stored `seq` + 1
//!    (or a clock seed, below); `ts` = now in ms, never below the stored `ts`;
//! 3. builds the event as `{"seq":S,"ts":T,` + the body's fields + `}` and `XADD`s it with
//!    the explicit ID `S-0` (fields `e`, `t`);
//! 4. trims **exactly** by count (`XTRIM MAXLEN n`, no `~`) and by age (the oldest
//!    entries whose `t` is older than `max_age`, via `XTRIM MINID`), and stores the
//!    highest removed seq as `meta.trimmed`;
//! 5. `PUBLISH`es the same event JSON on the stream's channel;
//! 6. refreshes the TTLs (`PEXPIRE`) of `log` and `meta`, and returns `{seq, ts}`.
//!
//! The read script is read-only: it skips (rather than deletes) entries older than
//! `max_age`, so a stream nobody appends to never replays expired events; `trimmed` is
//! `max(meta.trimmed, the newest expired seq) > after`, and an empty log with a known
//! `seq` counts as everything trimmed.
//!
//! # Publishing directly
//!
//! A backend may append to a stream without a gateway in the path (protocol section 8) by
//! running **the same script** ([`append_script_source`], the file
//! `adapters/redis/src/lua/append.lua`): it gets the same atomic `seq` and `ts`, its event
//! lands in history and reaches every replica's subscribers, ordered with the gateway's
//! own appends. A worked example, for session `s_42` under the prefix `sb:` with the
//! default retention (1000 events, 24 h):
//!
//! ```text
//! redis-cli -h redis.internal --eval adapters/redis/src/lua/append.lua \
//!   'sb:stream:{session:s_42}:meta' 'sb:stream:{session:s_42}:log' , \
//!   'sb:stream:{session:s_42}:live' \
//!   '{"type":"event","name":"order.updated","data":{"order_id":"o_17","status":"shipped"},"publisher":"billing"}' \
//!   1000 86400000 86460000 604800000
//! 1) "1776000000000001"
//! 2) "1776000000000"
//! ```
//!
//! That is `EVAL <script> 2 KEYS[1] KEYS[2] ARGV[1..6]`, or `EVALSHA` with
//! [`append_script_sha1`] (answered `NOSCRIPT` after a Redis restart: then `EVAL`):
//!
//! | Argument | Value |
//! |----------|-------|
//! | `KEYS[1]` | `<prefix>stream:{<stream>}:meta` |
//! | `KEYS[2]` | `<prefix>stream:{<stream>}:log` |
//! | `ARGV[1]` | `<prefix>stream:{<stream>}:live` |
//! | `ARGV[2]` | the body: a JSON object with `type` and that event type's fields (for a backend event: `"type":"event"`, `name`, `data`, optional `publisher`), no top-level `seq` or `ts` |
//! | `ARGV[3]` | retention: events kept (the gateway's setting, e.g. `1000`) |
//! | `ARGV[4]` | retention: max age in ms (e.g. `86400000`) |
//! | `ARGV[5]` | TTL of the log in ms: max age + 60000 |
//! | `ARGV[6]` | TTL of the meta hash in ms: 604800000 (7 days), at least `ARGV[5]` |
//!
//! It returns `{seq, ts}`; a body that is not a JSON object is refused with
//! `ERR switchboard append: the body must be a JSON object` and nothing is stored. Pass
//! the gateway's retention: the script trims with what it is given. Never `PUBLISH` on
//! the channel yourself: such a message has no seq and no history, and subscribers
//! ignore what does not parse as an event. (`tests/redis_specific.rs` runs this exact
//! example.)
//!
//! # Why seq never goes backwards
//!
//! A reader keeps the last `seq` it saw (a gateway's live subscription, a client resuming
//! with `after`) and drops anything at or below it. So a stream's counter must not
//! restart while anyone may hold one of its seqs, and that can be long after the stream
//! went quiet. The counter lives in `meta`, whose TTL (7 days by default) is far longer
//! than the log's, and is refreshed by every append. When Redis has no counter for a
//! stream anyway (a new stream; or the meta expired, was evicted, flushed, or lost in a
//! restart without persistence) the script **seeds it from the server clock**:
//! `seq = now_ms × 1000 + 1` (and above the log's newest entry if one survived). That is
//! greater than any seq the stream handed out before as long as it averaged fewer than
//! 1000 appends per millisecond since its own seed, and it stays below 2^53 (exact in
//! JavaScript) until the year 2255. The price: seqs are large numbers
//! (`1776000000000001`) rather than 1, 2, 3; the protocol promises increasing, not
//! contiguous. The gain: after a Redis restart that lost everything, a gateway that
//! resubscribes sees new events with seqs above the ones it had, instead of silently
//! dropping them as duplicates.
//!
//! `ts` comes from the Redis server's clock (one clock for every replica) and never
//! goes backwards within a stream.
//!
//! # Live delivery
//!
//! Each [`RedisBackplane`] (one per gateway replica) holds **one** dedicated pub/sub
//! connection, multiplexing every channel, and a dispatcher task that parses each message
//! once and hands it to the local subscriptions with
//! [`SubscriptionFeed::offer`](switchboard_backplane::SubscriptionFeed::offer): a full
//! queue ends that subscription as `Lagged`, the dispatcher never waits. A channel is
//! `SUBSCRIBE`d when the replica's first subscription of the stream is made and
//! `UNSUBSCRIBE`d when its last is dropped. `subscribe` returns after Redis confirmed the
//! `SUBSCRIBE` and after reading the stream's head, which becomes the floor below which
//! nothing is delivered: every event appended after `subscribe` returns arrives, nothing
//! older does (see `subscriber.rs` for why the floor is needed).
//!
//! **Per-channel SUBSCRIBE, not one PSUBSCRIBE pattern.** Measured with
//! `tests/bench.rs` (release build, 2 cores, Redis 7.0 on loopback): 1000 streams, 10
//! replicas each serving a tenth of them, 50 000 events of ~210 bytes:
//!
//! | Mode | Setup per replica | Publishing 50 000 events | Messages delivered | Redis CPU |
//! |------|-------------------|--------------------------|--------------------|-----------|
//! | `SUBSCRIBE` per stream | 5.0–5.5 ms (100 × ~52 µs) | 121–147 ms | 50 000 | 0.09 s |
//! | `PSUBSCRIBE sb:stream:*` | 52–60 µs | 515–571 ms | 500 000 | 0.17–0.18 s |
//!
//! A pattern costs one round trip instead of one per stream, but then every replica
//! receives (and must parse, then discard) every event of every stream: with N replicas
//! Redis writes N× the messages, publishing got 4× slower and Redis CPU doubled at
//! N = 10, and it grows with N. A SUBSCRIBE costs ~50 µs once per stream per replica.
//!
//! When the pub/sub connection drops (the server closes it, or a PING every 10 s goes
//! unanswered), **every** live subscription ends with
//! [`SubscriptionEnded::Disconnected`](switchboard_backplane::SubscriptionEnded) (events
//! published meanwhile are gone from pub/sub; the gateway resubscribes and fills the gap
//! from history), `subscribe` answers `Unavailable`, and the dispatcher reconnects in the
//! background with exponential backoff (100 ms doubling to 5 s, ±50 % jitter).
//!
//! # Records
//!
//! `record_put`/`record_create` run one script: `SET` (with `NX` for create, `PX` for a
//! TTL) plus the namespace index, a sorted set scored by expiry, pruned of expired
//! entries on every write, so a namespace nobody lists (idempotency keys) keeps an index
//! as small as its live records. `record_list` prunes, then reads each indexed key, in
//! one script (atomic: no put can slip between the check and the prune). `SCAN MATCH`
//! was rejected: it walks the whole keyspace (every stream of the deployment) on each
//! list and may return a key twice.
//!
//! # Failures
//!
//! - **At boot** [`RedisBackplane::connect`] fails within
//!   [`RedisOptions::connect_timeout`] (5 s) when the URL is wrong
//!   ([`ConnectError::InvalidUrl`]), the server is unreachable
//!   ([`ConnectError::Unreachable`]) or silent ([`ConnectError::Timeout`]), refuses the
//!   credentials ([`ConnectError::Rejected`]), or is older than 6.2
//!   ([`ConnectError::Unsupported`]). No message contains the password.
//! - **At run time** operations fail with a kind, never hang: connection refused, reset
//!   or closed → `Unavailable`; no answer within [`RedisOptions::command_timeout`] (5 s)
//!   → `Timeout` (the outcome is then unknown: an append may have been stored); an
//!   unreadable answer → `InvalidData`; auth, ACL, OOM or a script error → `Rejected`.
//! - The command connection is a [`ConnectionManager`] with reconnect retries **off**:
//!   redis-rs' retries wait 1 s, then up to 60 s, between attempts, and a command waits
//!   for the pending reconnect; with its defaults an append during an outage hung for
//!   the whole 5 s command timeout. Without retries a command during an outage fails at
//!   once with `Unavailable` and triggers the next attempt; when the pub/sub connection
//!   comes back it PINGs the command connection before letting subscribers in, so the
//!   gateway's first command after an outage does not pay for the reconnect.
//! - **Persistence is Redis'**: history and records survive a gateway restart; they
//!   survive a Redis restart only with persistence on (`appendonly yes`;
//!   `appendfsync always` to keep every acknowledged append, as
//!   `tests/outage.rs` shows; `everysec` may lose up to a second). Run Redis with
//!   `maxmemory-policy noeviction`: an evicted log loses history silently (an evicted
//!   `meta` is survived, see above), while a full Redis under `noeviction` refuses
//!   appends with `Rejected` (OOM) that the gateway reports.
//!
//! # Measured
//!
//! Release build, 2 cores, Redis 7.0 on loopback (`tests/bench.rs`): a sequential append
//! takes ~107 µs (one `EVALSHA`, trimming included); 8 concurrent writers to one stream
//! reach ~28 000 appends/s; an append reaches a subscriber on another replica in
//! p50 125 µs / p99 175 µs; a read of 100 events takes ~350 µs. The conformance suite
//! (19 properties) runs in about 3–6 s against a real server.

mod error;
mod keys;
mod subscriber;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};
use switchboard_backplane::{
    AppendError, Backplane, ErrorKind, Event, EventBody, ReadError, RecordError, RecordKey, Replay,
    Retention, Seq, StreamName, SubscribeError, Subscription,
};

pub use error::ConnectError;
pub use keys::StreamKeys;
use subscriber::{Hub, HubTiming};

/// The append script's Lua source (see the crate docs for how to invoke it).
const APPEND_LUA: &str = include_str!("lua/append.lua");
const READ_LUA: &str = include_str!("lua/read.lua");
const RECORD_PUT_LUA: &str = include_str!("lua/record_put.lua");
const RECORD_LIST_LUA: &str = include_str!("lua/record_list.lua");

static APPEND: LazyLock<Script> = LazyLock::new(|| Script::new(APPEND_LUA));
static READ: LazyLock<Script> = LazyLock::new(|| Script::new(READ_LUA));
static RECORD_PUT: LazyLock<Script> = LazyLock::new(|| Script::new(RECORD_PUT_LUA));
static RECORD_LIST: LazyLock<Script> = LazyLock::new(|| Script::new(RECORD_LIST_LUA));

/// The Lua source of the append script: what a direct publisher runs with `EVAL` (or
/// `EVALSHA` [`append_script_sha1`]) to append an event with the same atomic `seq`
/// assignment as the gateway. Arguments: see the crate docs, "Publishing directly".
pub fn append_script_source() -> &'static str {
    APPEND_LUA
}

/// The SHA1 of [`append_script_source`], for `EVALSHA` (load it once with
/// `SCRIPT LOAD`, or fall back to `EVAL` on `NOSCRIPT`).
pub fn append_script_sha1() -> &'static str {
    APPEND.get_hash()
}

/// How many undelivered events a subscription may queue before it ends as `Lagged`.
pub const DEFAULT_SUBSCRIPTION_CAPACITY: usize = 4096;

/// Extra life of a stream's log key beyond `max_age`: by then every entry in it has
/// expired anyway, so the key can go without losing anything `read` would return.
const LOG_TTL_MARGIN: Duration = Duration::from_secs(60);

/// The longest `max_age` or TTL passed to Redis (100 years): Redis refuses expiry times
/// that overflow its clock, and `Duration::MAX` is a valid `Retention`.
const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Tuning of a [`RedisBackplane`]. The defaults suit production.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Undelivered events a subscription may queue before it ends as `Lagged`.
    /// Default [`DEFAULT_SUBSCRIPTION_CAPACITY`].
    pub subscription_capacity: usize,
    /// The whole of `connect` (and each later connection attempt) must finish within
    /// this. Default 5 s.
    pub connect_timeout: Duration,
    /// Each operation (append, read, records, ping, SUBSCRIBE) must be answered within
    /// this, else it fails with `Timeout` (its outcome then unknown). Default 5 s.
    pub command_timeout: Duration,
    /// How long a stream's `meta` hash (its `seq` counter, last `ts` and trimmed mark)
    /// outlives its last append; never shorter than the log's `max_age` + 60 s.
    /// Default 7 days. See the crate docs, "Why seq never goes backwards".
    pub stream_idle_ttl: Duration,
    /// How often the pub/sub connection is PINGed to notice a half-open connection
    /// (at least 100 ms). Default 10 s.
    pub ping_interval: Duration,
    /// First delay before reconnecting the pub/sub connection (at least 10 ms);
    /// doubles per failure. Default 100 ms.
    pub reconnect_delay_min: Duration,
    /// Longest delay between pub/sub reconnect attempts. Default 5 s.
    pub reconnect_delay_max: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            subscription_capacity: DEFAULT_SUBSCRIPTION_CAPACITY,
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(5),
            stream_idle_ttl: Duration::from_secs(7 * 24 * 3600),
            ping_interval: Duration::from_secs(10),
            reconnect_delay_min: Duration::from_millis(100),
            reconnect_delay_max: Duration::from_secs(5),
        }
    }
}

/// The Redis backplane. **Scope: many replicas; history and records survive a gateway
/// restart, not a Redis flush** (nor a Redis restart without persistence).
///
/// Each value is one replica's client: a [`ConnectionManager`] (one multiplexed
/// connection, reconnected on demand) for commands and one dedicated pub/sub
/// connection for live delivery, with a dispatcher task. Dropping it ends every live
/// subscription as `Closed` and stops its tasks. See the crate docs for the key
/// layout, the scripts and the failure behaviour.
pub struct RedisBackplane {
    commands: ConnectionManager,
    hub: Arc<Hub>,
    tasks: Vec<tokio::task::AbortHandle>,
    prefix: String,
    retention: Retention,
    options: RedisOptions,
    /// The server without credentials, for messages.
    target: String,
    /// The password, to scrub from any message that might quote it.
    secret: Option<String>,
}

impl std::fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("retention", &self.retention)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBackplane {
    fn drop(&mut self) {
        self.hub.close();
        for task in &self.tasks {
            task.abort();
        }
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

/// Milliseconds of `d`, rounded up (a 0.5 ms TTL is 1 ms, not "none"), capped at
/// [`LONGEST`].
fn millis(d: Duration) -> u64 {
    let d = d.min(LONGEST);
    let ms = d.as_millis() as u64;
    if Duration::from_millis(ms) < d {
        ms + 1
    } else {
        ms
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
                // (`outage_fails_fast_…` in tests/outage.rs), and could go on waiting
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
            for source in [APPEND_LUA, READ_LUA, RECORD_PUT_LUA, RECORD_LIST_LUA] {
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
        let timing = HubTiming {
            connect_timeout: options.connect_timeout,
            command_timeout: options.command_timeout,
            ping_interval: options.ping_interval.max(Duration::from_millis(100)),
            reconnect_delay_min,
            reconnect_delay_max: options.reconnect_delay_max.max(reconnect_delay_min),
        };
        let (hub, tasks) = Hub::start(
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
            hub,
            tasks,
            prefix,
            retention,
            options,
            target,
            secret,
        })
    }

    /// This backplane with room for `capacity` undelivered events per subscription (at
    /// least 1) before it ends as `Lagged`; applies to subscriptions made afterwards.
    pub fn with_subscription_capacity(mut self, capacity: usize) -> RedisBackplane {
        self.options.subscription_capacity = capacity.max(1);
        self
    }

    /// The retention this backplane applies.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// The key prefix, ending with `:` (unless empty).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The keys and channel of `stream` (see the crate docs' layout table).
    pub fn stream_keys(&self, stream: &StreamName) -> StreamKeys {
        StreamKeys::new(&self.prefix, stream)
    }

    /// Whether the pub/sub connection is up right now (`subscribe` answers
    /// `Unavailable` while it is not).
    pub fn is_live_connected(&self) -> bool {
        self.hub.is_connected()
    }

    /// How many streams this replica holds a Redis subscription for.
    pub fn subscribed_streams(&self) -> usize {
        self.hub.channel_count()
    }

    /// The server without credentials, e.g. `redis://10.0.0.5:6379/0`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// TTL of a stream's log key, in ms.
    fn log_ttl_ms(&self) -> u64 {
        millis(self.retention.max_age.min(LONGEST) + LOG_TTL_MARGIN)
    }

    /// TTL of a stream's meta key, in ms: never shorter than the log's.
    fn meta_ttl_ms(&self) -> u64 {
        millis(self.options.stream_idle_ttl).max(self.log_ttl_ms())
    }

    /// Runs `command` under the command timeout, as `(kind, message)` on failure.
    async fn run<T>(
        &self,
        what: &str,
        command: impl std::future::Future<Output = RedisResult<T>>,
    ) -> Result<T, (ErrorKind, String)> {
        match tokio::time::timeout(self.options.command_timeout, command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err((
                error::kind_of(&error),
                format!(
                    "{what} at {}: {}",
                    self.target,
                    error::scrub(error.to_string(), self.secret.as_deref())
                ),
            )),
            Err(_) => Err((
                ErrorKind::Timeout,
                format!(
                    "{what}: no answer from {} within {:?}",
                    self.target, self.options.command_timeout
                ),
            )),
        }
    }

    /// The stream's newest seq (0: none), as `subscribe` needs it.
    async fn head(&self, keys: &StreamKeys) -> Result<Seq, SubscribeError> {
        let mut con = self.commands.clone();
        let seq: Option<String> = self
            .run("HGET seq", async {
                redis::cmd("HGET")
                    .arg(&keys.meta)
                    .arg("seq")
                    .query_async(&mut con)
                    .await
            })
            .await
            .map_err(|(kind, detail)| SubscribeError::new(kind, detail))?;
        match seq {
            None => Ok(0),
            Some(text) => text.parse().map_err(|_| {
                SubscribeError::new(
                    ErrorKind::InvalidData,
                    format!("{}: seq is {text:?}, not a number", keys.meta),
                )
            }),
        }
    }
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

/// Parses a decimal seq or ts the scripts returned.
fn number(bytes: &[u8], what: &str) -> Result<u64, (ErrorKind, String)> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            (
                ErrorKind::InvalidData,
                format!(
                    "the script returned {what} {:?}, not a number",
                    String::from_utf8_lossy(bytes)
                ),
            )
        })
}

#[async_trait]
impl Backplane for RedisBackplane {
    fn name(&self) -> &'static str {
        "redis"
    }

    /// One round trip: `EVALSHA` of the append script (see the crate docs).
    async fn append(
        &self,
        stream: &StreamName,
        body: EventBody,
    ) -> Result<Arc<Event>, AppendError> {
        let keys = self.stream_keys(stream);
        let json = serde_json::to_string(&body).map_err(|error| {
            AppendError::new(
                ErrorKind::InvalidData,
                format!("event body is not JSON: {error}"),
            )
        })?;
        let mut con = self.commands.clone();
        let mut invocation = APPEND.prepare_invoke();
        invocation
            .key(&keys.meta)
            .key(&keys.log)
            .arg(&keys.live)
            .arg(json)
            .arg(self.retention.max_events.min(1 << 53) as u64)
            .arg(millis(self.retention.max_age))
            .arg(self.log_ttl_ms())
            .arg(self.meta_ttl_ms());
        let (seq, ts): (Vec<u8>, Vec<u8>) = self
            .run("append", invocation.invoke_async(&mut con))
            .await
            .map_err(|(kind, detail)| AppendError::new(kind, detail))?;
        let seq = number(&seq, "seq").map_err(|(kind, detail)| AppendError::new(kind, detail))?;
        let ts = number(&ts, "ts").map_err(|(kind, detail)| AppendError::new(kind, detail))?;
        Ok(Arc::new(Event { seq, ts, body }))
    }

    /// Registers locally, SUBSCRIBEs the stream's channel if this replica is not yet
    /// subscribed (waiting for Redis' confirmation), then reads the head (`HGET`) as
    /// the floor below which nothing is delivered.
    async fn subscribe(&self, stream: &StreamName) -> Result<Subscription, SubscribeError> {
        let keys = self.stream_keys(stream);
        self.hub
            .subscribe(
                &keys.live,
                self.options.subscription_capacity,
                self.head(&keys),
            )
            .await
    }

    /// One round trip: `EVALSHA` of the read script.
    async fn read(
        &self,
        stream: &StreamName,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Replay, ReadError> {
        let keys = self.stream_keys(stream);
        let after = after.unwrap_or(0);
        let mut con = self.commands.clone();
        let mut invocation = READ.prepare_invoke();
        invocation
            .key(&keys.meta)
            .key(&keys.log)
            .arg(after)
            .arg(limit.min(u32::MAX as usize) as u64)
            .arg(millis(self.retention.max_age));
        let out: Vec<Vec<u8>> = self
            .run("read", invocation.invoke_async(&mut con))
            .await
            .map_err(|(kind, detail)| ReadError::new(kind, detail))?;
        let [last_seq, trimmed_through, entries @ ..] = out.as_slice() else {
            return Err(ReadError::new(
                ErrorKind::InvalidData,
                format!(
                    "the read script returned {} values, not 2 or more",
                    out.len()
                ),
            ));
        };
        let last_seq =
            number(last_seq, "last_seq").map_err(|(kind, detail)| ReadError::new(kind, detail))?;
        let trimmed_through = number(trimmed_through, "trimmed")
            .map_err(|(kind, detail)| ReadError::new(kind, detail))?;
        let mut events = Vec::with_capacity(entries.len());
        for entry in entries {
            match serde_json::from_slice::<Event>(entry) {
                Ok(event) => events.push(Arc::new(event)),
                // Only a publisher that bypassed the body check could store this; one
                // bad entry must not make a whole session's history unreadable.
                Err(error) => tracing::warn!(
                    stream = %stream,
                    %error,
                    "skipping a history entry that is not a Switchboard event"
                ),
            }
        }
        Ok(Replay {
            events,
            last_seq,
            trimmed: trimmed_through > after,
        })
    }

    async fn record_put(
        &self,
        key: &RecordKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), RecordError> {
        self.store(key, value, ttl, false).await.map(|_| ())
    }

    async fn record_create(
        &self,
        key: &RecordKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, RecordError> {
        self.store(key, value, ttl, true).await
    }

    async fn record_get(&self, key: &RecordKey) -> Result<Option<Bytes>, RecordError> {
        let mut con = self.commands.clone();
        let value: Option<Vec<u8>> = self
            .run("record get", async {
                redis::cmd("GET")
                    .arg(keys::record(&self.prefix, key))
                    .query_async(&mut con)
                    .await
            })
            .await
            .map_err(|(kind, detail)| RecordError::new(kind, detail))?;
        Ok(value.map(Bytes::from))
    }

    async fn record_delete(&self, key: &RecordKey) -> Result<bool, RecordError> {
        let mut con = self.commands.clone();
        let (deleted, _): (u64, u64) = self
            .run("record delete", async {
                redis::pipe()
                    .atomic()
                    .del(keys::record(&self.prefix, key))
                    .zrem(keys::record_index(&self.prefix, &key.namespace), &key.key)
                    .query_async(&mut con)
                    .await
            })
            .await
            .map_err(|(kind, detail)| RecordError::new(kind, detail))?;
        Ok(deleted > 0)
    }

    async fn record_list(&self, namespace: &str) -> Result<Vec<(String, Bytes)>, RecordError> {
        let mut con = self.commands.clone();
        let mut invocation = RECORD_LIST.prepare_invoke();
        invocation
            .key(keys::record_index(&self.prefix, namespace))
            .arg(keys::record_key_prefix(&self.prefix, namespace));
        let flat: Vec<Vec<u8>> = self
            .run("record list", invocation.invoke_async(&mut con))
            .await
            .map_err(|(kind, detail)| RecordError::new(kind, detail))?;
        let mut list = Vec::with_capacity(flat.len() / 2);
        let mut pairs = flat.into_iter();
        while let (Some(key), Some(value)) = (pairs.next(), pairs.next()) {
            let key = String::from_utf8(key).map_err(|_| {
                RecordError::new(
                    ErrorKind::InvalidData,
                    format!("a key in record namespace {namespace:?} is not UTF-8"),
                )
            })?;
            list.push((key, Bytes::from(value)));
        }
        Ok(list)
    }

    async fn ping(&self) -> Result<(), ReadError> {
        let mut con = self.commands.clone();
        let _: String = self
            .run("PING", async {
                redis::cmd("PING").query_async(&mut con).await
            })
            .await
            .map_err(|(kind, detail)| ReadError::new(kind, detail))?;
        Ok(())
    }
}

impl RedisBackplane {
    /// `record_put` (`only_if_absent` false) and `record_create` (true): one round trip.
    async fn store(
        &self,
        key: &RecordKey,
        value: Bytes,
        ttl: Option<Duration>,
        only_if_absent: bool,
    ) -> Result<bool, RecordError> {
        let mut con = self.commands.clone();
        let mut invocation = RECORD_PUT.prepare_invoke();
        invocation
            .key(keys::record(&self.prefix, key))
            .key(keys::record_index(&self.prefix, &key.namespace))
            .arg(value.as_ref())
            .arg(ttl.map_or(0, |ttl| millis(ttl).max(1)))
            .arg(&key.key)
            .arg(if only_if_absent { "1" } else { "0" });
        let stored: i64 = self
            .run("record store", invocation.invoke_async(&mut con))
            .await
            .map_err(|(kind, detail)| RecordError::new(kind, detail))?;
        Ok(stored == 1)
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
    fn millis_rounds_up_and_caps() {
        assert_eq!(millis(Duration::from_micros(500)), 1);
        assert_eq!(millis(Duration::from_millis(300)), 300);
        assert_eq!(millis(Duration::MAX), LONGEST.as_millis() as u64);
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
