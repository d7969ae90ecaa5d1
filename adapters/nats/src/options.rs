//! [`NatsOptions`]: everything [`NatsBackplane::connect_with`](crate::NatsBackplane::connect_with)
//! can be told, each with its default.

use std::path::PathBuf;
use std::time::Duration;

use switchboard_backplane::Retention;

/// How long a subscription may queue undelivered events before it ends as `Lagged`.
pub const DEFAULT_SUBSCRIPTION_CAPACITY: usize = 4096;

/// Where JetStream keeps the event stream and the records bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// On disk: events and records survive a server restart. The default.
    #[default]
    File,
    /// In memory: faster, lost when the server restarts. For tests and throwaway setups.
    Memory,
}

/// How to reach NATS and how to lay the backplane out on it.
///
/// Every replica of a deployment must use the same `prefix`, `retention`, `storage` and
/// `stream_replicas`: the stream and the bucket are shared, and the last replica to boot
/// writes its configuration to the server (a changed one is logged as a warning).
#[derive(Clone)]
#[non_exhaustive]
pub struct NatsOptions {
    /// `nats://[user:password@]host:4222` or `tls://…`; several servers of one cluster
    /// separated by commas. A token may stand alone as the user part
    /// (`nats://token@host:4222`).
    pub url: String,
    /// The deployment prefix: 1–32 characters of `[A-Za-z0-9_-]`. Separates deployments
    /// sharing one NATS account (stream `SWITCHBOARD_<prefix>`, subjects `<prefix>.…`,
    /// bucket `<prefix>_records`).
    pub prefix: String,
    /// History kept per stream (`docs/backplanes.md`, "Retention", says how it maps onto
    /// JetStream).
    pub retention: Retention,
    /// A `.creds` file (JWT + NKey seed), for operator-mode deployments. Default: none.
    pub creds_file: Option<PathBuf>,
    /// A token, instead of one in the URL. Default: none.
    pub token: Option<String>,
    /// Extra root certificates (PEM) to trust for `tls://`. Default: the system's roots.
    pub tls_ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), for servers that verify clients.
    pub tls_client_cert: Option<(PathBuf, PathBuf)>,
    /// The bound on booting: connecting, checking JetStream, creating or updating the
    /// stream and the bucket. Default 5 s; past it `connect` fails.
    pub connect_timeout: Duration,
    /// The bound on every operation at run time (append, read, subscribe, records,
    /// ping). Default 5 s; past it the operation fails with kind `Timeout`. While the
    /// connection is down operations fail at once with kind `Unavailable`.
    pub op_timeout: Duration,
    /// How often the client pings the server; two unanswered pings count as a lost
    /// connection. Default 10 s, so a silently dead link is noticed within ~20–30 s.
    pub ping_interval: Duration,
    /// The longest wait between reconnect attempts (they back off up to it). Default 2 s.
    pub max_reconnect_delay: Duration,
    /// Undelivered events a [`Subscription`](switchboard_backplane::Subscription) may hold
    /// before it ends as `Lagged`. Default [`DEFAULT_SUBSCRIPTION_CAPACITY`].
    pub subscription_capacity: usize,
    /// Where JetStream stores events and records. Default [`Storage::File`].
    pub storage: Storage,
    /// JetStream replicas of the stream and the bucket (1, or 3/5 on a cluster). Default 1.
    pub stream_replicas: usize,
    /// How long history stays on the server after `retention.max_age` made it
    /// unreadable, so `read` can still report `last_seq` and `trimmed` for a stream whose
    /// every event expired. `None` (the default): [`default_history_grace`], `max_age`
    /// clamped to 1 min ..= 1 h.
    pub history_grace: Option<Duration>,
    /// How often this replica sweeps expired records and old delete markers out of the
    /// bucket (NATS 2.9 has no per-key TTL). Default 5 min; `None` never.
    pub record_sweep_interval: Option<Duration>,
    /// The connection name the server shows (`nats server report connections`).
    pub client_name: String,
}

impl NatsOptions {
    /// Options with every default, for `url`, `prefix` and `retention`.
    pub fn new(url: impl Into<String>, prefix: impl Into<String>, retention: Retention) -> Self {
        NatsOptions {
            url: url.into(),
            prefix: prefix.into(),
            retention,
            creds_file: None,
            token: None,
            tls_ca_file: None,
            tls_client_cert: None,
            connect_timeout: Duration::from_secs(5),
            op_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(10),
            max_reconnect_delay: Duration::from_secs(2),
            subscription_capacity: DEFAULT_SUBSCRIPTION_CAPACITY,
            storage: Storage::File,
            stream_replicas: 1,
            history_grace: None,
            record_sweep_interval: Some(Duration::from_secs(300)),
            client_name: "switchboard".to_string(),
        }
    }
}

/// `max_age` clamped to 1 min ..= 1 h: long enough that a stream's head outlives its
/// readable history by a margin, short enough to cost little storage (at most an hour
/// of events past `max_age`, and never more than `max_events + 1` per stream).
pub fn default_history_grace(retention: Retention) -> Duration {
    retention
        .max_age
        .clamp(Duration::from_secs(60), Duration::from_secs(3600))
}

impl std::fmt::Debug for NatsOptions {
    /// Never prints a credential: the URL is redacted, the token and file paths elided.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsOptions")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("retention", &self.retention)
            .field("creds_file", &self.creds_file.as_ref().map(|_| "<set>"))
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("tls_ca_file", &self.tls_ca_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("op_timeout", &self.op_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("max_reconnect_delay", &self.max_reconnect_delay)
            .field("subscription_capacity", &self.subscription_capacity)
            .field("storage", &self.storage)
            .field("stream_replicas", &self.stream_replicas)
            .field("history_grace", &self.history_grace)
            .field("record_sweep_interval", &self.record_sweep_interval)
            .finish_non_exhaustive()
    }
}

/// `url` with any `user:password@` or `token@` part of each server replaced by `***@`,
/// for logs and error messages.
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let one = one.trim();
            let authority_start = one.find("://").map_or(0, |i| i + 3);
            let authority_end = one[authority_start..]
                .find('/')
                .map_or(one.len(), |i| authority_start + i);
            match one[authority_start..authority_end].rfind('@') {
                Some(at) => format!(
                    "{}***@{}",
                    &one[..authority_start],
                    &one[authority_start + at + 1..]
                ),
                None => one.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The secrets in `url` and `options`, to scrub from any text that leaves this crate.
pub(crate) fn secrets(options: &NatsOptions) -> Vec<String> {
    let mut secrets = Vec::new();
    for one in options.url.split(',') {
        let one = one.trim();
        let authority_start = one.find("://").map_or(0, |i| i + 3);
        let authority_end = one[authority_start..]
            .find('/')
            .map_or(one.len(), |i| authority_start + i);
        let authority = &one[authority_start..authority_end];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            secrets.push(userinfo.to_string());
            secrets.push(percent_decode(userinfo));
            if let Some((user, pass)) = userinfo.split_once(':') {
                for part in [user, pass] {
                    secrets.push(part.to_string());
                    secrets.push(percent_decode(part));
                }
            }
        }
    }
    if let Some(token) = &options.token {
        secrets.push(token.clone());
    }
    secrets.retain(|s| s.len() >= 3);
    // Longest first, so a password containing the user name is scrubbed whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
}

/// `%XX` escapes of a URL's user part decoded (a password may contain `@` or `:`).
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` with every secret replaced by `***`.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_string(), |text, secret| {
        text.replace(secret.as_str(), "***")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("nats://alice:s3cret@host:4222"),
            "nats://***@host:4222"
        );
        assert_eq!(redact_url("tls://tok@host:4222"), "tls://***@host:4222");
        assert_eq!(redact_url("nats://host:4222"), "nats://host:4222");
        assert_eq!(
            redact_url("nats://a:b@h1:4222, nats://h2:4222"),
            "nats://***@h1:4222,nats://h2:4222"
        );
        assert_eq!(redact_url("u:p@host:4222"), "***@host:4222");
    }

    #[test]
    fn secrets_are_scrubbed() {
        let mut options = NatsOptions::new(
            "nats://alice:s3cret-pw@host:4222",
            "sb",
            Retention::default(),
        );
        options.token = Some("tok-123".into());
        let secrets = secrets(&options);
        let text = "failed: alice:s3cret-pw@host and s3cret-pw and tok-123";
        let scrubbed = scrub(text, &secrets);
        assert!(!scrubbed.contains("s3cret"), "{scrubbed}");
        assert!(!scrubbed.contains("tok-123"), "{scrubbed}");
        let debug = format!("{options:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("tok-123"),
            "{debug}"
        );
    }

    #[test]
    fn url_user_parts_are_percent_decoded() {
        assert_eq!(percent_decode("p%40ss%3Aword"), "p@ss:word");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zzend%"), "bad%zzend%");
        let options = NatsOptions::new("nats://u:p%40ssword@h:1", "sb", Retention::default());
        assert_eq!(scrub("x p@ssword y", &secrets(&options)), "x *** y");
    }

    #[test]
    fn grace_is_clamped() {
        let r = |secs| Retention {
            max_events: 10,
            max_age: Duration::from_secs(secs),
        };
        assert_eq!(default_history_grace(r(0)), Duration::from_secs(60));
        assert_eq!(default_history_grace(r(600)), Duration::from_secs(600));
        assert_eq!(default_history_grace(r(86_400)), Duration::from_secs(3600));
    }
}
