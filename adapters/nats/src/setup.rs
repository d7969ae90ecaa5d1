//! The event stream and the records bucket: their configuration for a set of options,
//! and [`ensure`], which creates or updates one, safe when replicas boot together.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use switchboard_backplane::ErrorKind;

use crate::boot::BootResult;
use crate::error::{self, ConnectErrorKind};
use crate::layout::Layout;
use crate::options::{NatsOptions, Storage, default_history_grace};

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

/// The event stream's configuration for these options (the table in
/// `docs/backplanes.md`).
pub(crate) fn events_config(names: &Layout, options: &NatsOptions) -> stream::Config {
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
pub(crate) fn bucket_config(names: &Layout, options: &NatsOptions) -> stream::Config {
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
pub(crate) fn attempt_timeout(options: &NatsOptions) -> Duration {
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
pub(crate) async fn ensure(
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

#[cfg(test)]
mod tests {
    use super::*;

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
