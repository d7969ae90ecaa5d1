//! The transcript as the older part of a replay: events the backplane's history no
//! longer holds, read from the store with their original `seq`s.

use std::sync::Arc;

use switchboard_protocol::{Event, Seq, StreamKind, StreamName};
use switchboard_store::{ConversationStore, MAX_TRANSCRIPT_PAGE, StoreError};

use super::transcript::event_of;

/// Reads stored events for replays.
#[derive(Clone)]
pub struct TranscriptReader {
    store: Arc<dyn ConversationStore>,
}

impl TranscriptReader {
    pub fn new(store: Arc<dyn ConversationStore>) -> TranscriptReader {
        TranscriptReader { store }
    }

    /// Whether a join of `stream` after `after`, whose history read found `first` as
    /// its oldest event and `last_seq` as the newest `seq`, needs the transcript: a
    /// session stream whose history does not start right after `after`, and that has
    /// newer events (or a backplane that forgot the stream: `last_seq` 0).
    pub fn needed(stream: &StreamName, after: Seq, first: Option<Seq>, last_seq: Seq) -> bool {
        stream.kind() == StreamKind::Session
            && first != after.checked_add(1)
            && (last_seq > after || last_seq == 0)
    }

    /// Up to [`MAX_TRANSCRIPT_PAGE`] stored events of `stream` with
    /// `after < seq < before`, oldest first.
    pub async fn page(
        &self,
        stream: &StreamName,
        after: Seq,
        before: Option<Seq>,
    ) -> Result<Vec<Arc<Event>>, StoreError> {
        let session_id = stream.id();
        let entries = self
            .store
            .transcript(session_id, after, before, MAX_TRANSCRIPT_PAGE)
            .await?;
        Ok(entries
            .iter()
            .filter_map(|entry| event_of(session_id, entry))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transcript_is_read_only_where_the_history_does_not_start_at_the_join() {
        let session = StreamName::session("s_1").unwrap();
        // History starts right after the join point: nothing older is missing.
        assert!(!TranscriptReader::needed(&session, 4, Some(5), 9));
        // Trimmed (or another backplane's non-contiguous seqs): ask the store.
        assert!(TranscriptReader::needed(&session, 4, Some(8), 9));
        // Empty history (a restarted in-memory backplane) with newer events.
        assert!(TranscriptReader::needed(&session, 0, None, 9));
        // Empty history that never had events (a new backplane): ask too.
        assert!(TranscriptReader::needed(&session, 0, None, 0));
        // Nothing newer than the join point anywhere.
        assert!(!TranscriptReader::needed(&session, 9, None, 9));
        // A backplane that forgot the stream cannot tell: ask.
        assert!(TranscriptReader::needed(&session, 12, None, 0));
        let user = StreamName::user("u1").unwrap();
        assert!(!TranscriptReader::needed(&user, 0, None, 9));
    }
}
