//! A stream's lifecycle beyond appends: deleting it (a JetStream purge of its subject)
//! and `ensure_seq_above`, which here can only check, never raise.

use switchboard_backplane::{ErrorKind, Seq, StreamError, StreamName};

use crate::shared::Shared;

/// Purge every message of the stream's subject (one `STREAM.PURGE` with a subject
/// filter): JetStream keeps nothing of it, so `read` sees a stream never used. Returns
/// whether a message was purged.
pub(crate) async fn delete(shared: &Shared, stream: &StreamName) -> Result<bool, StreamError> {
    let subject = shared.layout.event_subject(stream);
    let purged = shared
        .run(async { shared.events.purge().filter(subject).await })
        .await
        .map_err(|(kind, detail)| StreamError::new(kind, detail))?;
    Ok(purged.purged > 0)
}

/// A stream's `seq` is JetStream's stream sequence, shared by every subject of the
/// deployment and never going back while the JetStream stream exists; it cannot be set
/// for one subject. So this only checks (one `STREAM.INFO`) that the shared sequence is
/// already at `seq`, which makes every later append's `seq` greater: `Ok`, changing
/// nothing. Below it, the promise cannot be kept: `Rejected`.
pub(crate) async fn ensure_seq_above(shared: &Shared, seq: Seq) -> Result<(), StreamError> {
    let info = shared
        .run(shared.events.get_info())
        .await
        .map_err(|(kind, detail)| StreamError::new(kind, detail))?;
    let last = info.state.last_sequence;
    if last >= seq {
        return Ok(());
    }
    Err(StreamError::new(
        ErrorKind::Rejected,
        format!(
            "JetStream stream {} is at sequence {last}, below {seq}; the NATS backplane \
             cannot raise a stream's seq (its seq is the JetStream sequence, shared by all \
             streams)",
            shared.layout.stream_name()
        ),
    ))
}
