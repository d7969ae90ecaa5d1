//! A [`ConversationStore::write`](crate::ConversationStore::write) batch planned for the
//! database: values checked, each `(session_id, seq)` once, and what the entries that
//! were stored change on their sessions. Both engines store the same way from this plan.

use std::collections::{BTreeMap, HashSet};

use crate::convert::to_db;
use crate::{StoreError, TranscriptWrite};

/// One entry of a batch, as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry<'a> {
    pub session_id: &'a str,
    pub seq: i64,
    pub ts: i64,
    pub kind: &'a str,
    pub event: &'a str,
    pub preview: Option<&'a str>,
    pub title_hint: Option<&'a str>,
}

/// The batch's entries in batch order, the first of each `(session_id, seq)` only (a
/// later one would be skipped as stored already). An error, before anything is stored,
/// when a value does not fit the store.
pub(crate) fn entries(batch: &[TranscriptWrite]) -> Result<Vec<Entry<'_>>, StoreError> {
    let mut seen = HashSet::with_capacity(batch.len());
    let mut entries = Vec::with_capacity(batch.len());
    for write in batch {
        let entry = Entry {
            session_id: &write.session_id,
            seq: to_db(write.entry.seq, "seq")?,
            ts: to_db(write.entry.ts, "ts")?,
            kind: &write.entry.kind,
            event: &write.entry.event,
            preview: write.preview.as_deref(),
            title_hint: write.title_hint.as_deref(),
        };
        if seen.insert((entry.session_id, entry.seq)) {
            entries.push(entry);
        }
    }
    Ok(entries)
}

/// The `entries` a statement stored, given the `(session_id, seq)` it returned for
/// them, in `entries` order.
pub(crate) fn stored<'a, 'e>(
    entries: impl IntoIterator<Item = &'e Entry<'a>>,
    inserted: &[(String, i64)],
) -> Vec<&'e Entry<'a>>
where
    'a: 'e,
{
    let inserted: HashSet<(&str, i64)> = inserted
        .iter()
        .map(|(session_id, seq)| (session_id.as_str(), *seq))
        .collect();
    entries
        .into_iter()
        .filter(|entry| inserted.contains(&(entry.session_id, entry.seq)))
        .collect()
}

/// What a session's newly stored entries change on it. Applied with the session's row
/// locked, against its values then: `last_activity_at` and `last_seq` become the larger
/// of old and new, the preview is set (and an archived session made active again) only
/// by an entry newer than the old `last_seq`, the title only when there is none.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SessionUpdate<'a> {
    pub session_id: &'a str,
    /// The newest `ts` stored.
    pub last_activity_at: i64,
    /// The greatest `seq` stored.
    pub last_seq: i64,
    /// The `seq` and preview of the newest stored entry with a preview (a message).
    pub preview: Option<(i64, &'a str)>,
    /// The hint of the oldest stored entry with one (the first user message).
    pub title_hint: Option<&'a str>,
}

/// One update per session of the `stored` entries, in `session_id` order (the order
/// rows are locked in, so concurrent writers cannot deadlock).
pub(crate) fn session_updates<'a, 'e>(
    stored: impl IntoIterator<Item = &'e Entry<'a>>,
) -> Vec<SessionUpdate<'a>>
where
    'a: 'e,
{
    let mut updates: BTreeMap<&'a str, (SessionUpdate<'a>, i64)> = BTreeMap::new();
    for entry in stored {
        let (update, hint_seq) = updates.entry(entry.session_id).or_insert_with(|| {
            (
                SessionUpdate {
                    session_id: entry.session_id,
                    last_activity_at: entry.ts,
                    last_seq: entry.seq,
                    preview: None,
                    title_hint: None,
                },
                i64::MAX,
            )
        });
        update.last_activity_at = update.last_activity_at.max(entry.ts);
        update.last_seq = update.last_seq.max(entry.seq);
        if let Some(preview) = entry.preview
            && update.preview.is_none_or(|(seq, _)| entry.seq > seq)
        {
            update.preview = Some((entry.seq, preview));
        }
        if let Some(hint) = entry.title_hint
            && entry.seq < *hint_seq
        {
            update.title_hint = Some(hint);
            *hint_seq = entry.seq;
        }
    }
    updates.into_values().map(|(update, _)| update).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TranscriptEntry;

    fn write(
        session: &str,
        seq: u64,
        preview: Option<&str>,
        hint: Option<&str>,
    ) -> TranscriptWrite {
        TranscriptWrite {
            session_id: session.into(),
            entry: TranscriptEntry {
                seq,
                ts: seq.saturating_add(1000),
                kind: "message".into(),
                event: format!("{{\"seq\":{seq}}}"),
            },
            preview: preview.map(Into::into),
            title_hint: hint.map(Into::into),
        }
    }

    #[test]
    fn a_repeated_entry_is_planned_once_and_the_first_wins() {
        let batch = [
            write("a", 1, Some("first"), None),
            write("a", 1, Some("again"), None),
            write("b", 1, None, None),
        ];
        let planned = entries(&batch).unwrap();
        assert_eq!(planned.len(), 2);
        assert_eq!(planned[0].preview, Some("first"));
        assert_eq!(planned[1].session_id, "b");
    }

    #[test]
    fn a_value_past_i64_fails_the_whole_batch() {
        let batch = [write("a", 1, None, None), write("a", u64::MAX, None, None)];
        assert!(matches!(entries(&batch), Err(StoreError::Rejected(_))));
    }

    #[test]
    fn updates_take_the_newest_preview_and_the_oldest_hint_whatever_the_order() {
        let batch = [
            write("b", 7, Some("seven"), Some("late hint")),
            write("b", 5, Some("five"), Some("early hint")),
            write("b", 9, None, None),
            write("a", 2, None, None),
        ];
        let planned = entries(&batch).unwrap();
        let updates = session_updates(&planned);
        assert_eq!(
            updates,
            vec![
                SessionUpdate {
                    session_id: "a",
                    last_activity_at: 1002,
                    last_seq: 2,
                    preview: None,
                    title_hint: None,
                },
                SessionUpdate {
                    session_id: "b",
                    last_activity_at: 1009,
                    last_seq: 9,
                    preview: Some((7, "seven")),
                    title_hint: Some("early hint"),
                },
            ]
        );
    }
}
