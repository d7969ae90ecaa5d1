//! Where things live in Redis: every key and channel name this crate (and a direct
//! publisher) uses, built in one place so the table in `docs/backplanes.md` stays true.

use switchboard_backplane::{RecordKey, StreamName};

/// The prefix keys start with: `prefix` as given when it is empty or ends with `:`,
/// else with `:` added, so the gateway's `sb` and an operator's `sb:` both give
/// `sb:stream:…`. Errs with why a prefix cannot be used.
pub(crate) fn normalize_prefix(prefix: &str) -> Result<String, String> {
    check_prefix(prefix)?;
    if prefix.is_empty() || prefix.ends_with(':') {
        Ok(prefix.to_owned())
    } else {
        Ok(format!("{prefix}:"))
    }
}

/// Why a key prefix was refused.
fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.len() > 64 {
        return Err(format!(
            "the key prefix is {} bytes long; use at most 64",
            prefix.len()
        ));
    }
    // Braces would break the `{…}` hash tags that keep a stream's keys (and a record
    // namespace's keys) in one Redis Cluster slot; whitespace and control characters
    // make keys that operators cannot type.
    if let Some(c) = prefix
        .chars()
        .find(|c| matches!(c, '{' | '}') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "the key prefix {prefix:?} contains {c:?}; braces, whitespace and control characters are not allowed"
        ));
    }
    Ok(())
}

/// The two keys and the channel of one stream (the layout table of `docs/backplanes.md`).
///
/// The stream name sits in a `{…}` hash tag, so in a Redis Cluster both keys land in
/// one slot and the append script (which touches both) stays legal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamKeys {
    /// Hash: `seq` (newest assigned), `ts` (newest assigned), `trimmed` (highest seq
    /// retention removed).
    pub meta: String,
    /// Redis Stream: one entry per retained event, ID `<seq>-0`, fields `e` (the event
    /// JSON) and `t` (its `ts`).
    pub log: String,
    /// Pub/sub channel: every appended event's JSON, published by the append script.
    pub live: String,
}

impl StreamKeys {
    /// The keys of `stream` under `prefix`.
    pub fn new(prefix: &str, stream: &StreamName) -> StreamKeys {
        let base = format!("{prefix}stream:{{{}}}", stream.as_str());
        StreamKeys {
            meta: format!("{base}:meta"),
            log: format!("{base}:log"),
            live: format!("{base}:live"),
        }
    }
}

/// A record namespace as it appears in keys: unchanged when it is made of
/// `[A-Za-z0-9_.@-]` (every namespace the gateway uses), otherwise with each other byte
/// written `%XX`, so no namespace can end early and alias another (`a:b` + `c` versus
/// `a` + `b:c`) or break the hash tag.
pub(crate) fn encode_namespace(namespace: &str) -> String {
    let mut out = String::with_capacity(namespace.len());
    for byte in namespace.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'@' | b'-') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The value key of a record: `<prefix>rec:{<namespace>}:<key>`.
pub(crate) fn record(prefix: &str, key: &RecordKey) -> String {
    format!("{}{}", record_key_prefix(prefix, &key.namespace), key.key)
}

/// What every value key of `namespace` starts with: `<prefix>rec:{<namespace>}:`.
pub(crate) fn record_key_prefix(prefix: &str, namespace: &str) -> String {
    format!("{prefix}rec:{{{}}}:", encode_namespace(namespace))
}

/// The index of a namespace: `<prefix>recidx:{<namespace>}`, a sorted set of its keys
/// scored by expiry (ms since the epoch, `+inf` for none).
pub(crate) fn record_index(prefix: &str, namespace: &str) -> String {
    format!("{prefix}recidx:{{{}}}", encode_namespace(namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_share_one_hash_tag() {
        let keys = StreamKeys::new("sb:", &StreamName::session("s_42").unwrap());
        assert_eq!(keys.meta, "sb:stream:{session:s_42}:meta");
        assert_eq!(keys.log, "sb:stream:{session:s_42}:log");
        assert_eq!(keys.live, "sb:stream:{session:s_42}:live");
    }

    #[test]
    fn record_keys_cannot_alias_across_namespaces() {
        let a = record("sb:", &RecordKey::new("a:b", "c"));
        let b = record("sb:", &RecordKey::new("a", "b:c"));
        assert_ne!(a, b);
        assert_eq!(
            record("sb:", &RecordKey::new("sessions", "s_1")),
            "sb:rec:{sessions}:s_1"
        );
        assert_eq!(record_index("sb:", "sessions"), "sb:recidx:{sessions}");
        assert_eq!(encode_namespace("a}b"), "a%7Db");
    }

    #[test]
    fn prefixes_end_with_a_colon() {
        assert_eq!(normalize_prefix("sb").unwrap(), "sb:");
        assert_eq!(normalize_prefix("sb:").unwrap(), "sb:");
        assert_eq!(normalize_prefix("").unwrap(), "");
    }

    #[test]
    fn prefixes_with_braces_or_spaces_are_refused() {
        assert!(check_prefix("sb:").is_ok());
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("s{b").is_err());
        assert!(check_prefix("s b").is_err());
        assert!(check_prefix(&"x".repeat(65)).is_err());
    }
}
