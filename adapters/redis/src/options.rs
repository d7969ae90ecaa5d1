//! [`RedisOptions`]: everything [`RedisBackplane::connect_with`](crate::RedisBackplane::connect_with)
//! can be told, each with its default.

use std::time::Duration;

/// How many undelivered events a subscription may queue before it ends as `Lagged`.
pub const DEFAULT_SUBSCRIPTION_CAPACITY: usize = 4096;

/// Tuning of a [`RedisBackplane`](crate::RedisBackplane). The defaults suit production.
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
    /// Default 7 days. See `docs/backplanes.md`, "Why seq never goes backwards".
    pub stream_idle_ttl: Duration,
    /// How often the pub/sub connection is PINGed to notice a half-open connection
    /// (at least 100 ms). Default 10 s.
    pub ping_interval: Duration,
    /// First delay before reconnecting the pub/sub connection (at least 10 ms);
    /// doubles per failure. Default 100 ms.
    pub reconnect_delay_min: Duration,
    /// Longest delay between pub/sub reconnect attempts, before jitter. Default 5 s.
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
