//! Stream names: `session:<id>`, `user:<id>`, `org:<id>`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Which kind of stream a name denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// A chat session: replayable history.
    Session,
    /// Every connection of one user: live only in v1.
    User,
    /// Every connection of one org: live only in v1.
    Org,
}

impl StreamKind {
    /// The prefix before the colon.
    pub fn prefix(self) -> &'static str {
        match self {
            StreamKind::Session => "session",
            StreamKind::User => "user",
            StreamKind::Org => "org",
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
pub const MAX_STREAM_ID_CHARS: usize = 128;

impl StreamName {
    /// A stream of `kind` with `id`. The id must be 1–128 characters of
    /// `[A-Za-z0-9_.@-]` (`.` is excluded for NATS subjects, see [`StreamName::valid_id`]).
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

    /// `user:<id>`.
    pub fn user(id: &str) -> Result<StreamName, StreamNameError> {
        Self::new(StreamKind::User, id)
    }

    /// `org:<id>`.
    pub fn org(id: &str) -> Result<StreamName, StreamNameError> {
        Self::new(StreamKind::Org, id)
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
    fn ids_that_would_break_keys_or_subjects_are_refused() {
        for bad in ["", "a.b", "a b", "a*", "a>", "a:b", &"x".repeat(129)] {
            assert!(StreamName::session(bad).is_err(), "{bad:?} accepted");
        }
        assert!("topic:x".parse::<StreamName>().is_err());
        assert!("nocolon".parse::<StreamName>().is_err());
    }
}
