//! Which events a conversation keeps, and what each changes on its session: a
//! transcript holds messages, each turn's end (its whole text, status, usage and
//! sources), tool calls and their results, handoff changes, and backend events
//! published as durable.
//! `turn.start` and `turn.delta` are not kept: a completed turn replays as its
//! `turn.end` and the assistant's `message`.

use std::sync::Arc;

use switchboard_protocol::{Event, EventBody, Role, StreamKind, StreamName};
use switchboard_store::{TranscriptEntry, TranscriptWrite};

/// Characters of the last message a listing shows.
pub const PREVIEW_CHARS: usize = 160;
/// Characters of the first user message that become the title.
pub const TITLE_CHARS: usize = 80;

/// Whether the transcript keeps `body`.
pub fn is_durable(body: &EventBody) -> bool {
    match body {
        EventBody::Message { .. }
        | EventBody::TurnEnd { .. }
        | EventBody::ToolRequest { .. }
        | EventBody::ToolResult { .. }
        | EventBody::Handoff { .. } => true,
        EventBody::Custom { durable, .. } => *durable,
        EventBody::TurnStart { .. }
        | EventBody::TurnDelta { .. }
        | EventBody::InboxChanged { .. } => false,
    }
}

/// The store write for `event` of `stream`, when the transcript keeps it (session
/// streams only).
pub fn write_for(stream: &StreamName, event: &Arc<Event>) -> Option<TranscriptWrite> {
    if stream.kind() != StreamKind::Session || !is_durable(&event.body) {
        return None;
    }
    let json = serde_json::to_string(event.as_ref()).ok()?;
    let (preview, title_hint) = match &event.body {
        EventBody::Message { role, text, .. } => (
            Some(shorten(text, PREVIEW_CHARS)),
            (*role == Role::User).then(|| shorten(text, TITLE_CHARS)),
        ),
        _ => (None, None),
    };
    Some(TranscriptWrite {
        session_id: stream.id().to_string(),
        entry: TranscriptEntry {
            seq: event.seq,
            ts: event.ts,
            kind: event.body.type_name().to_string(),
            event: json,
        },
        preview,
        title_hint,
    })
}

/// The event a stored entry holds; `None` (logged) when it cannot be read.
pub fn event_of(session_id: &str, entry: &TranscriptEntry) -> Option<Arc<Event>> {
    match serde_json::from_str::<Event>(&entry.event) {
        Ok(event) => Some(Arc::new(event)),
        Err(e) => {
            tracing::error!(session_id, seq = entry.seq, error = %e, "unreadable transcript entry skipped");
            None
        }
    }
}

/// `text` on one line, cut to `max` characters (with `…` when cut).
fn shorten(text: &str, max: usize) -> String {
    // Only the words that can show: a long answer is not flattened whole.
    let mut flat = String::new();
    let mut chars = 0;
    for word in text.split_whitespace() {
        if chars > max {
            break;
        }
        if !flat.is_empty() {
            flat.push(' ');
            chars += 1;
        }
        flat.push_str(word);
        chars += word.chars().count();
    }
    if chars <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(body: EventBody) -> Arc<Event> {
        Arc::new(Event {
            seq: 7,
            ts: 1000,
            traceparent: None,
            body,
        })
    }

    #[test]
    fn deltas_and_starts_are_not_kept_and_custom_events_only_when_durable() {
        let stream = StreamName::session("s_1").unwrap();
        let delta = event(EventBody::TurnDelta {
            turn_id: "t_1".into(),
            text: "x".into(),
        });
        assert!(write_for(&stream, &delta).is_none());
        let start = event(EventBody::TurnStart {
            turn_id: "t_1".into(),
            reply_to: "m_1".into(),
            assistant: None,
        });
        assert!(write_for(&stream, &start).is_none());
        let custom = |durable| {
            event(EventBody::Custom {
                name: "order".into(),
                data: serde_json::json!({}),
                publisher: None,
                durable,
            })
        };
        assert!(write_for(&stream, &custom(false)).is_none());
        assert!(write_for(&stream, &custom(true)).is_some());
        let user_stream = StreamName::user("u1").unwrap();
        assert!(write_for(&user_stream, &custom(true)).is_none());
    }

    #[test]
    fn a_user_message_gives_the_title_hint_and_every_message_the_preview() {
        let stream = StreamName::session("s_1").unwrap();
        let long = "word ".repeat(100);
        let user = event(EventBody::Message {
            message_id: "m_1".into(),
            role: Role::User,
            text: long.clone(),
            author: None,
        });
        let write = write_for(&stream, &user).unwrap();
        assert_eq!(write.session_id, "s_1");
        assert_eq!(write.entry.seq, 7);
        assert_eq!(write.entry.kind, "message");
        assert_eq!(
            write.title_hint.as_ref().unwrap().chars().count(),
            TITLE_CHARS
        );
        assert!(write.title_hint.unwrap().ends_with('…'));
        assert_eq!(write.preview.unwrap().chars().count(), PREVIEW_CHARS);
        let back = event_of("s_1", &write.entry).unwrap();
        assert_eq!(*back, *user);
        let assistant = event(EventBody::Message {
            message_id: "m_2".into(),
            role: Role::Assistant,
            text: "Short\nanswer".into(),
            author: None,
        });
        let write = write_for(&stream, &assistant).unwrap();
        assert_eq!(write.title_hint, None);
        assert_eq!(write.preview.as_deref(), Some("Short answer"));
    }

    #[test]
    fn shortening_flattens_whitespace_and_cuts_at_the_limit() {
        assert_eq!(shorten("  a\n\tb  c ", 10), "a b c");
        assert_eq!(shorten("abcd efgh", 9), "abcd efgh");
        assert_eq!(shorten("abcd efgh", 8), "abcd ef…");
        assert_eq!(shorten("abcd  efgh ijkl", 6), "abcd …");
        let long = "word ".repeat(10_000);
        let cut = shorten(&long, 20);
        assert_eq!(cut, "word word word word…");
        assert_eq!(shorten("éé éé", 4), "éé …");
    }
}
