//! One small error type per backplane operation, each with a closed set of kinds, so a
//! caller matches on what went wrong without parsing text.

use thiserror::Error;

/// What class of failure an operation met. Callers map `Unavailable` and `Timeout` to
/// the protocol's `unavailable` code, the rest to `internal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The backplane server cannot be reached (connection refused, closed, reconnecting).
    Unavailable,
    /// The server did not answer within the operation's deadline.
    Timeout,
    /// The server answered with data this build cannot read (corrupt or foreign format).
    InvalidData,
    /// The server refused the operation (e.g. a permission or a configuration error).
    Rejected,
}

impl ErrorKind {
    /// Whether retrying later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Unavailable | ErrorKind::Timeout)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorKind::Unavailable => "backplane unavailable",
            ErrorKind::Timeout => "backplane timed out",
            ErrorKind::InvalidData => "backplane returned invalid data",
            ErrorKind::Rejected => "backplane rejected the operation",
        })
    }
}

macro_rules! op_error {
    ($(#[$doc:meta])* $name:ident, $op:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Error)]
        #[error("{} failed: {kind}: {detail}", $op)]
        pub struct $name {
            pub kind: ErrorKind,
            pub detail: String,
        }

        impl $name {
            pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
                Self { kind, detail: detail.into() }
            }

            pub fn unavailable(detail: impl Into<String>) -> Self {
                Self::new(ErrorKind::Unavailable, detail)
            }
        }
    };
}

op_error!(
    /// `Backplane::append` failed: the event was not stored and has no `seq`.
    AppendError,
    "append"
);
op_error!(
    /// `Backplane::subscribe` failed: no live delivery was set up.
    SubscribeError,
    "subscribe"
);
op_error!(
    /// `Backplane::read` failed: no history was returned.
    ReadError,
    "read"
);
op_error!(
    /// A shared-record operation failed.
    RecordError,
    "record"
);
op_error!(
    /// `Backplane::delete_stream` or `Backplane::ensure_seq_above` failed: the stream
    /// may or may not have changed; both are safe to retry.
    StreamError,
    "stream operation"
);
