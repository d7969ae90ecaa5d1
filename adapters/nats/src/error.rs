//! [`ConnectError`] (boot) and how `async-nats` errors map onto the backplane's
//! [`ErrorKind`]s (run time).

use std::error::Error as StdError;

use async_nats::jetstream;
use switchboard_backplane::ErrorKind;
use thiserror::Error;

/// Why [`NatsBackplane::connect`](crate::NatsBackplane::connect) failed. The message
/// names the server with its credentials redacted and never contains a password, a
/// token or a creds file's content.
#[derive(Debug, Clone, Error)]
#[error("nats backplane at {target}: {reason}")]
pub struct ConnectError {
    /// What went wrong, as a closed set.
    pub kind: ConnectErrorKind,
    /// The server URL, redacted.
    pub target: String,
    /// A human sentence, already scrubbed of credentials.
    pub reason: String,
}

/// The classes of boot failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectErrorKind {
    /// The options are wrong (prefix, URL, a certificate or creds file that cannot be read).
    InvalidConfig,
    /// No server answered (refused, unreachable, DNS, TLS handshake).
    Unreachable,
    /// The server refused the credentials.
    Unauthorized,
    /// The server answered but has no JetStream (start it with `-js`).
    NoJetStream,
    /// JetStream refused to create or update the stream or the bucket.
    Rejected,
    /// Booting did not finish within `connect_timeout`.
    Timeout,
}

/// The [`ErrorKind`] for an `async-nats` error: the first error in its source chain
/// that says what happened decides.
pub(crate) fn classify(err: &(dyn StdError + 'static)) -> ErrorKind {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(err) = current {
        if let Some(err) = err.downcast_ref::<jetstream::context::RequestError>() {
            return match err.kind() {
                jetstream::context::RequestErrorKind::TimedOut => ErrorKind::Timeout,
                jetstream::context::RequestErrorKind::NoResponders => ErrorKind::Unavailable,
                jetstream::context::RequestErrorKind::InvalidSubject => ErrorKind::Rejected,
                jetstream::context::RequestErrorKind::Other => ErrorKind::Unavailable,
            };
        }
        if let Some(err) = err.downcast_ref::<async_nats::RequestError>() {
            return match err.kind() {
                async_nats::RequestErrorKind::TimedOut => ErrorKind::Timeout,
                async_nats::RequestErrorKind::NoResponders => ErrorKind::Unavailable,
                _ => ErrorKind::Unavailable,
            };
        }
        if let Some(err) = err.downcast_ref::<jetstream::context::PublishError>() {
            return match err.kind() {
                jetstream::context::PublishErrorKind::TimedOut => ErrorKind::Timeout,
                // 503 from JetStream: no stream leader right now (restart, election)
                // or the stream is gone; both clear up or need an operator, and the
                // gateway treats them alike.
                jetstream::context::PublishErrorKind::StreamNotFound
                | jetstream::context::PublishErrorKind::BrokenPipe => ErrorKind::Unavailable,
                jetstream::context::PublishErrorKind::MaxPayloadExceeded
                | jetstream::context::PublishErrorKind::WrongLastSequence
                | jetstream::context::PublishErrorKind::WrongLastMessageId => ErrorKind::Rejected,
                _ => match err.source() {
                    Some(source) => classify(source),
                    None => ErrorKind::Unavailable,
                },
            };
        }
        if err.downcast_ref::<jetstream::Error>().is_some() {
            // An error JetStream's API answered with (a JSON `error`): it refused.
            return ErrorKind::Rejected;
        }
        if err.downcast_ref::<serde_json::Error>().is_some() {
            return ErrorKind::InvalidData;
        }
        if let Some(err) = err.downcast_ref::<std::io::Error>() {
            return match err.kind() {
                std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
                _ => ErrorKind::Unavailable,
            };
        }
        current = err.source();
    }
    ErrorKind::Unavailable
}

/// Whether `err` (or its source chain) is JetStream's "wrong last sequence" answer to
/// an expected-last-subject-sequence publish: someone else wrote the key first.
pub(crate) fn is_wrong_last_sequence(err: &(dyn StdError + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(err) = current {
        if let Some(err) = err.downcast_ref::<jetstream::context::PublishError>()
            && err.kind() == jetstream::context::PublishErrorKind::WrongLastSequence
        {
            return true;
        }
        if let Some(err) = err.downcast_ref::<jetstream::Error>()
            && err.error_code() == jetstream::ErrorCode::STREAM_WRONG_LAST_SEQUENCE
        {
            return true;
        }
        current = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_errors_map_to_kinds() {
        let err =
            jetstream::context::PublishError::new(jetstream::context::PublishErrorKind::TimedOut);
        assert_eq!(classify(&err), ErrorKind::Timeout);
        let err = jetstream::context::PublishError::new(
            jetstream::context::PublishErrorKind::StreamNotFound,
        );
        assert_eq!(classify(&err), ErrorKind::Unavailable);
        let err = jetstream::context::PublishError::new(
            jetstream::context::PublishErrorKind::WrongLastSequence,
        );
        assert!(is_wrong_last_sequence(&err));
    }

    #[test]
    fn connect_errors_are_nameable_and_print_their_target() {
        let err = ConnectError {
            kind: ConnectErrorKind::NoJetStream,
            target: "nats://***@host:4222".into(),
            reason: "JetStream is not enabled".into(),
        };
        assert_eq!(
            err.to_string(),
            "nats backplane at nats://***@host:4222: JetStream is not enabled"
        );
    }
}
