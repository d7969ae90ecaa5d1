//! Stream names: `session:<id>`, `user:<id>`, `org:<id>` (docs/protocol.md §1.1, §8.2),
//! and the gateway's internal `control:<replica_id>`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Which kind of stream a name denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// A chat session: replayable history.
    Session,
    /// Every connection of one user: live only in v1.
    User,
    /// Every connection of one org: live only in v1.
    Org,
    /// One replica's wake-up hints from the other replicas (`control:<replica_id>`).
    /// Internal: only [`StreamName::control`] makes one. Clients name streams through
    /// [`StreamName::session`], [`StreamName::user_in_org`] and [`StreamName::org`],
    /// and parsing a name ([`FromStr`]) refuses this kind, so no socket, publish or
    /// CLI argument can reach a replica's control stream.
    Control,
    /// An org's staff — its `operator` and `admin` connections — live only
    /// (`staff:<org_id>`): the operator inbox's changes. Internal like
    /// [`StreamKind::Control`]: only [`StreamName::staff`] makes one, and no publish
    /// can reach it.
    Staff,
}

impl StreamKind {
    /// The prefix before the colon.
    pub fn prefix(self) -> &'static str {
        match self {
            StreamKind::Session => "session",
            StreamKind::User => "user",
            StreamKind::Org => "org",
            StreamKind::Control => "control",
            StreamKind::Staff => "staff",
        }
    }
}

/// A validated stream name. Cheap to clone (the text is shared).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StreamName {
    kind: StreamKind,
    full: Arc<str>,
}

/// Why a text is not a stream name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamNameError(pub String);

impl fmt::Display for StreamNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StreamNameError {}

/// The longest id a stream may have (ids end up in Redis keys and NATS subjects).
pub const MAX_STREAM_ID_CHARS: usize = 256;

impl StreamName {
    /// A stream of `kind` with `id`. The id must be 1 to [`MAX_STREAM_ID_CHARS`]
    /// characters of `[A-Za-z0-9_@-]` (see [`StreamName::valid_id`]).
    pub fn new(kind: StreamKind, id: &str) -> Result<StreamName, StreamNameError> {
        if !Self::valid_id(id) {
            return Err(StreamNameError(format!(
                "'{id}' is not a valid {} id: use 1 to {MAX_STREAM_ID_CHARS} characters of A-Z, a-z, 0-9, '_', '-', '@'",
                kind.prefix()
            )));
        }
        Ok(StreamName {
            kind,
            full: Arc::from(format!("{}:{id}", kind.prefix())),
        })
    }

    /// `session:<id>`.
    pub fn session(id: &str) -> Result<StreamName, StreamNameError> {
        Self::new(StreamKind::Session, id)
    }

    /// `user:<id>`, for an id already in stream form (see [`StreamName::user_in_org`]).
    pub fn user(id: &str) -> Result<StreamName, StreamNameError> {
        Self::new(StreamKind::User, id)
    }

    /// The stream of user `user_id` within org `org_id`: `user:<org>@<base64url(user_id)>`.
    ///
    /// User streams belong to an org, so a publisher of one org can never reach a user
    /// of another that happens to share an id. The user id is base64url-encoded (no
    /// padding) so any `sub` — emails, `auth0|123` — makes a valid Redis key and NATS
    /// subject token; on sockets the stream still reads `user:<user_id>`.
    pub fn user_in_org(org_id: &str, user_id: &str) -> Result<StreamName, StreamNameError> {
        if org_id.contains('@') || !Self::valid_id(org_id) {
            return Err(StreamNameError(format!("'{org_id}' is not a valid org id")));
        }
        if user_id.is_empty() {
            return Err(StreamNameError("a user id may not be empty".into()));
        }
        Self::new(
            StreamKind::User,
            &format!("{org_id}@{}", URL_SAFE_NO_PAD.encode(user_id.as_bytes())),
        )
    }

    /// The name shown on sockets: `user:<user_id>` for user streams (the org and the
    /// encoding are internal), the full name otherwise.
    pub fn wire_name(&self) -> Cow<'_, str> {
        if self.kind == StreamKind::User
            && let Some((_, encoded)) = self.id().split_once('@')
            && let Ok(bytes) = URL_SAFE_NO_PAD.decode(encoded)
            && let Ok(user_id) = String::from_utf8(bytes)
        {
            return Cow::Owned(format!("user:{user_id}"));
        }
        Cow::Borrowed(&self.full)
    }

    /// `org:<id>`.
    pub fn org(id: &str) -> Result<StreamName, StreamNameError> {
        Self::new(StreamKind::Org, id)
    }

    /// `control:<replica_id>`: the replica's internal control stream (see
    /// [`StreamKind::Control`]).
    pub fn control(replica_id: &str) -> Result<StreamName, StreamNameError> {
        Self::new(StreamKind::Control, replica_id)
    }

    /// `staff:<org_id>`: the org's staff stream (see [`StreamKind::Staff`]).
    pub fn staff(org_id: &str) -> Result<StreamName, StreamNameError> {
        Self::new(StreamKind::Staff, org_id)
    }

    /// Whether `id` may name a stream. Ids become Redis keys and NATS subject tokens, so
    /// the alphabet excludes whitespace, `.`, `*`, `>` and `:`.
    pub fn valid_id(id: &str) -> bool {
        !id.is_empty()
            && id.chars().count() <= MAX_STREAM_ID_CHARS
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '@'))
    }

    /// The kind of stream.
    pub fn kind(&self) -> StreamKind {
        self.kind
    }

    /// The id after the colon.
    pub fn id(&self) -> &str {
        &self.full[self.kind.prefix().len() + 1..]
    }

    /// The full name, `kind:id`.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl FromStr for StreamName {
    type Err = StreamNameError;

    fn from_str(s: &str) -> Result<StreamName, StreamNameError> {
        let (prefix, id) = s.split_once(':').ok_or_else(|| {
            StreamNameError(format!("'{s}' is not a stream name: expected kind:id"))
        })?;
        let kind = match prefix {
            "session" => StreamKind::Session,
            "user" => StreamKind::User,
            "org" => StreamKind::Org,
            // Internal to the gateway: nothing parsed from outside may name one.
            "control" | "staff" => {
                return Err(StreamNameError(format!(
                    "'{s}' is not a stream clients or publishers can name: expected session, user or org"
                )));
            }
            other => {
                return Err(StreamNameError(format!(
                    "unknown stream kind '{other}': expected session, user or org"
                )));
            }
        };
        StreamName::new(kind, id)
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamName({})", self.full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_parse_and_print() {
        let s: StreamName = "session:s_abc".parse().unwrap();
        assert_eq!(s.kind(), StreamKind::Session);
        assert_eq!(s.id(), "s_abc");
        assert_eq!(s.to_string(), "session:s_abc");
        assert_eq!(StreamName::user("u1").unwrap().as_str(), "user:u1");
        assert_eq!(StreamName::org("acme").unwrap().id(), "acme");
    }

    #[test]
    fn user_streams_are_per_org_and_show_the_plain_user_id() {
        let a = StreamName::user_in_org("acme", "alice@example.com").unwrap();
        let b = StreamName::user_in_org("globex", "alice@example.com").unwrap();
        assert_ne!(a, b, "the same user id in two orgs is two streams");
        assert_eq!(a.as_str(), "user:acme@YWxpY2VAZXhhbXBsZS5jb20");
        assert_eq!(a.wire_name(), "user:alice@example.com");
        assert_eq!(
            StreamName::user_in_org("acme", "auth0|42")
                .unwrap()
                .wire_name(),
            "user:auth0|42"
        );
        assert!(StreamName::user_in_org("ac@me", "u").is_err());
        assert_eq!(StreamName::org("acme").unwrap().wire_name(), "org:acme");
    }

    #[test]
    fn ids_that_would_break_keys_or_subjects_are_refused() {
        for bad in ["", "a.b", "a b", "a*", "a>", "a:b", &"x".repeat(257)] {
            assert!(StreamName::session(bad).is_err(), "{bad:?} accepted");
        }
        assert!("topic:x".parse::<StreamName>().is_err());
        assert!("nocolon".parse::<StreamName>().is_err());
    }

    #[test]
    fn control_streams_are_made_only_by_their_constructor() {
        let control = StreamName::control("r_1").unwrap();
        assert_eq!(control.kind(), StreamKind::Control);
        assert_eq!(control.as_str(), "control:r_1");
        assert_eq!(control.id(), "r_1");
        assert!("control:r_1".parse::<StreamName>().is_err());
        assert!("staff:acme".parse::<StreamName>().is_err());
        assert_eq!(StreamName::staff("acme").unwrap().as_str(), "staff:acme");
        // The constructors clients' names go through never make one.
        for text in ["control:r_1", "control", "r_1"] {
            for made in [
                StreamName::session(text),
                StreamName::org(text),
                StreamName::user(text),
                StreamName::user_in_org("acme", text),
            ]
            .into_iter()
            .flatten()
            {
                assert_ne!(made.kind(), StreamKind::Control, "{made:?}");
                assert!(!made.as_str().starts_with("control:"), "{made:?}");
            }
        }
    }
}
