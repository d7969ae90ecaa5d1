//! Every NATS name the backplane uses, in one place: the JetStream stream, its subjects,
//! the live subjects it republishes to, the records bucket and how a record key becomes
//! a KV key. `docs/backplanes.md` has the same layout as a table.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use switchboard_backplane::StreamName;

/// The longest deployment prefix accepted (the gateway's `--backplane-prefix` is 1–32).
pub const MAX_PREFIX_CHARS: usize = 32;

/// Header carrying the `ts` (ms since the Unix epoch) the appender gave an event. A
/// message without it (a direct publisher that did not set it) gets the time JetStream
/// stored it at on `read`, and the time it arrived on live delivery.
pub const TS_HEADER: &str = "Switchboard-Ts";

/// Header carrying an event's W3C trace context (`Event::traceparent`), the header
/// name W3C Trace Context gives it. Absent: the append was not traced.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// Header carrying when a record expires (ms since the Unix epoch). Absent: never.
/// The KV value itself stays the caller's bytes, so `nats kv get` shows them as they are.
pub const EXPIRES_HEADER: &str = "Switchboard-Expires-At";

/// The KV operation header (`DEL`, `PURGE`), as the NATS KV convention spells it.
pub const KV_OPERATION_HEADER: &str = "KV-Operation";

/// Whether `prefix` may name a deployment: 1–32 characters of `[A-Za-z0-9_-]`, so it is
/// a valid subject token, stream name part and bucket name part.
pub fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_CHARS
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The names of one deployment (one prefix).
#[derive(Debug, Clone)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// The layout of `prefix`, which must be [`valid_prefix`].
    pub fn new(prefix: &str) -> Layout {
        Layout {
            prefix: prefix.to_string(),
        }
    }

    /// The JetStream stream holding every event of the deployment: `SWITCHBOARD_<prefix>`.
    pub fn stream_name(&self) -> String {
        format!("SWITCHBOARD_{}", self.prefix)
    }

    /// What the stream captures: `<prefix>.ev.>`.
    pub fn events_wildcard(&self) -> String {
        format!("{}.ev.>", self.prefix)
    }

    /// Where the stream republishes every stored event: `<prefix>.live.>`.
    pub fn live_wildcard(&self) -> String {
        format!("{}.live.>", self.prefix)
    }

    /// The subject events of `stream` are stored under: `session:s1` becomes
    /// `<prefix>.ev.session.s1`. Stream ids are `[A-Za-z0-9_@-]`, valid subject tokens.
    pub fn event_subject(&self, stream: &StreamName) -> String {
        format!(
            "{}.ev.{}.{}",
            self.prefix,
            stream.kind().prefix(),
            stream.id()
        )
    }

    /// The subject stored events of `stream` are republished to, for live delivery.
    pub fn live_subject(&self, stream: &StreamName) -> String {
        format!(
            "{}.live.{}.{}",
            self.prefix,
            stream.kind().prefix(),
            stream.id()
        )
    }

    /// The KV bucket holding the shared records: `<prefix>_records`.
    pub fn bucket(&self) -> String {
        format!("{}_records", self.prefix)
    }

    /// The JetStream stream behind the bucket: `KV_<prefix>_records`.
    pub fn bucket_stream(&self) -> String {
        format!("KV_{}", self.bucket())
    }

    /// The subject of one record: `$KV.<bucket>.<namespace token>.<key token>`.
    pub fn record_subject(&self, namespace: &str, key: &str) -> String {
        format!(
            "$KV.{}.{}.{}",
            self.bucket(),
            encode_token(namespace),
            encode_token(key)
        )
    }

    /// The filter matching every record of a namespace.
    pub fn namespace_filter(&self, namespace: &str) -> String {
        format!("$KV.{}.{}.>", self.bucket(), encode_token(namespace))
    }

    /// The filter matching every record of the bucket.
    pub fn bucket_filter(&self) -> String {
        format!("$KV.{}.>", self.bucket())
    }

    /// The record key of a record subject of `namespace`, or `None` if the subject is
    /// not one this layout writes.
    pub fn key_of_subject(&self, namespace: &str, subject: &str) -> Option<String> {
        let rest = subject.strip_prefix(&format!(
            "$KV.{}.{}.",
            self.bucket(),
            encode_token(namespace)
        ))?;
        decode_token(rest)
    }
}

/// One namespace or key as a KV key token. Text made of `[A-Za-z0-9_-]` (every name
/// the gateway uses) is written as it is, so operators can read it; anything else
/// (dots, spaces, unicode, the empty string) as `=` followed by its base64url (no
/// padding). `=` never starts a plain token, so the mapping is one to one.
pub fn encode_token(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        text.to_string()
    } else {
        format!("={}", URL_SAFE_NO_PAD.encode(text.as_bytes()))
    }
}

/// The inverse of [`encode_token`]; `None` for a token it never writes.
pub fn decode_token(token: &str) -> Option<String> {
    match token.strip_prefix('=') {
        Some(encoded) => URL_SAFE_NO_PAD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None if !token.is_empty() && !token.contains('.') => Some(token.to_string()),
        None => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_plain_names_stay_readable() {
        for text in [
            "sessions",
            "s_42-x",
            "",
            "a.b",
            "with space",
            "=",
            "=abc",
            "ünï 🚀",
            "*",
            ">",
        ] {
            let token = encode_token(text);
            assert!(!token.is_empty());
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-=".contains(&b)),
                "{token:?} is not a valid KV key token"
            );
            assert_eq!(decode_token(&token).as_deref(), Some(text), "{token:?}");
        }
        assert_eq!(encode_token("sessions"), "sessions");
        assert_ne!(encode_token("=abc"), "=abc");
    }

    #[test]
    fn subjects_follow_the_documented_layout() {
        let layout = Layout::new("sb");
        let stream = StreamName::session("s_1").unwrap();
        assert_eq!(layout.stream_name(), "SWITCHBOARD_sb");
        assert_eq!(layout.event_subject(&stream), "sb.ev.session.s_1");
        assert_eq!(layout.live_subject(&stream), "sb.live.session.s_1");
        let user = StreamName::user_in_org("acme", "alice@example.com").unwrap();
        assert!(layout.event_subject(&user).starts_with("sb.ev.user.acme@"));
        assert_eq!(layout.bucket(), "sb_records");
        assert_eq!(
            layout.record_subject("sessions", "a.b"),
            format!("$KV.sb_records.sessions.={}", URL_SAFE_NO_PAD.encode("a.b"))
        );
        assert_eq!(
            layout.key_of_subject("sessions", &layout.record_subject("sessions", "a.b")),
            Some("a.b".to_string())
        );
        assert_eq!(
            layout.key_of_subject("other", &layout.record_subject("sessions", "k")),
            None
        );
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(valid_prefix("sb"));
        assert!(valid_prefix("a-b_C9"));
        assert!(!valid_prefix(""));
        assert!(!valid_prefix("a.b"));
        assert!(!valid_prefix("a b"));
        assert!(!valid_prefix(&"x".repeat(33)));
    }
}
