//! A conversation's transcript as a file: JSON (the summary and every stored event,
//! exactly as replayed) or Markdown (for people: the title, then each message with
//! its author and time, tool calls and turn outcomes in brief).

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::json;
use switchboard_protocol::conversation::{ExportFormat, SessionSummary};
use switchboard_protocol::handoff::HandoffState;
use switchboard_protocol::{Event, EventBody, Role, TurnStatus};

/// Render `events` of the conversation `summary` as `format`.
pub fn render(summary: &SessionSummary, events: &[Arc<Event>], format: ExportFormat) -> String {
    match format {
        ExportFormat::Json => {
            let events: Vec<&Event> = events.iter().map(|e| e.as_ref()).collect();
            json!({ "session": summary, "events": events }).to_string()
        }
        ExportFormat::Markdown => markdown(summary, events),
    }
}

fn markdown(summary: &SessionSummary, events: &[Arc<Event>]) -> String {
    let mut out = String::new();
    let title = summary.title.as_deref().unwrap_or("Conversation");
    let _ = writeln!(out, "# {}\n", one_line(title));
    let _ = writeln!(
        out,
        "- Conversation: `{}`\n- Started: {}\n- Last activity: {}\n",
        summary.session_id,
        time(summary.created_at),
        time(summary.last_activity_at)
    );
    for event in events {
        match &event.body {
            EventBody::Message {
                role, text, author, ..
            } => {
                let who = match (role, author) {
                    (_, Some(author)) => author.clone(),
                    (Role::User, None) => "User".into(),
                    (Role::Assistant, None) => "Assistant".into(),
                    (Role::Operator, None) => "Operator".into(),
                    (Role::System, None) => "System".into(),
                };
                let _ = writeln!(out, "**{}** · {}\n", one_line(&who), time(event.ts));
                let _ = writeln!(out, "{}\n", quote_free(text));
            }
            EventBody::ToolRequest { tool, .. } => {
                let _ = writeln!(out, "_Tool call: {}_\n", one_line(tool));
            }
            EventBody::ToolResult { ok, .. } => {
                let outcome = if *ok {
                    "succeeded"
                } else {
                    "failed or refused"
                };
                let _ = writeln!(out, "_Tool call {outcome}_\n");
            }
            EventBody::TurnEnd { status, .. } if *status != TurnStatus::Completed => {
                let _ = writeln!(out, "_The answer ended: {}_\n", status.as_str());
            }
            EventBody::Custom { name, .. } => {
                let _ = writeln!(out, "_Event: {}_\n", one_line(name));
            }
            EventBody::Handoff {
                state, operator, ..
            } => {
                let name = operator
                    .as_ref()
                    .map(|o| one_line(o.name.as_deref().unwrap_or(&o.user_id)))
                    .unwrap_or_default();
                let line = match state {
                    HandoffState::Waiting => "A person was asked for".to_string(),
                    HandoffState::Human => format!("{name} took the conversation"),
                    HandoffState::Assistant => {
                        format!("{name} gave the conversation back to the assistant")
                    }
                };
                let _ = writeln!(out, "_{}_\n", line.trim());
            }
            _ => {}
        }
    }
    out
}

/// The last millisecond RFC 3339 can write (9999-12-31T23:59:59.999Z).
const LAST_RFC3339_MS: u64 = 253_402_300_799_999;

/// `ms` since the epoch as an RFC 3339 UTC time; past year 9999, the number.
fn time(ms: u64) -> String {
    if ms > LAST_RFC3339_MS {
        return format!("{ms} ms after 1970");
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(at).to_string()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Message text as Markdown paragraphs; a line that would start a heading is
/// escaped so a message cannot forge the export's structure.
fn quote_free(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with('#') {
                format!("\\{}", line.trim_start())
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use switchboard_protocol::conversation::SessionState;

    use super::*;

    fn summary() -> SessionSummary {
        SessionSummary {
            session_id: "s_1".into(),
            org_id: "acme".into(),
            owner: Some("u1".into()),
            title: Some("Refunds".into()),
            state: SessionState::Active,
            created_at: 0,
            last_activity_at: 60_000,
            last_seq: 2,
            preview: None,
            metadata: None,
            assistant: None,
        }
    }

    fn message(seq: u64, role: Role, text: &str) -> Arc<Event> {
        Arc::new(Event {
            seq,
            ts: seq * 1000,
            traceparent: None,
            body: EventBody::Message {
                message_id: format!("m_{seq}"),
                role,
                text: text.into(),
                author: None,
            },
        })
    }

    #[test]
    fn times_past_year_9999_are_written_as_numbers() {
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
        assert_eq!(time(LAST_RFC3339_MS), "9999-12-31T23:59:59Z");
        assert_eq!(time(u64::MAX), "18446744073709551615 ms after 1970");
    }

    #[test]
    fn json_holds_the_summary_and_the_events_as_replayed() {
        let events = vec![message(1, Role::User, "hi")];
        let text = render(&summary(), &events, ExportFormat::Json);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["session"]["title"], "Refunds");
        assert_eq!(value["events"][0]["seq"], 1);
        assert_eq!(value["events"][0]["type"], "message");
        assert_eq!(value["events"][0]["text"], "hi");
    }

    #[test]
    fn markdown_reads_as_a_transcript_and_messages_cannot_forge_headings() {
        let events = vec![
            message(1, Role::User, "How do refunds work?\n# Fake heading"),
            message(2, Role::Assistant, "Within 30 days."),
        ];
        let text = render(&summary(), &events, ExportFormat::Markdown);
        assert!(text.starts_with("# Refunds\n"), "{text}");
        assert!(text.contains("**User** · 1970-01-01T00:00:01Z"), "{text}");
        assert!(
            text.contains("**Assistant** · 1970-01-01T00:00:02Z\n\nWithin 30 days."),
            "{text}"
        );
        assert!(text.contains("\\# Fake heading"), "{text}");
        assert_eq!(text.matches("\n# ").count(), 0, "{text}");
    }

    #[test]
    fn markdown_tells_who_held_the_conversation() {
        use switchboard_protocol::handoff::{HandoffBy, Staffer};
        let handoff = |seq: u64, state, operator: Option<&str>| {
            Arc::new(Event {
                seq,
                ts: seq * 1000,
                traceparent: None,
                body: EventBody::Handoff {
                    state,
                    by: HandoffBy::Operator,
                    operator: operator.map(|name| Staffer {
                        user_id: "olga".into(),
                        name: Some(name.into()),
                    }),
                    reason: None,
                    notice: None,
                },
            })
        };
        let events = vec![
            handoff(1, HandoffState::Waiting, None),
            handoff(2, HandoffState::Human, Some("Dana")),
            handoff(3, HandoffState::Assistant, Some("Dana")),
        ];
        let text = render(&summary(), &events, ExportFormat::Markdown);
        assert!(text.contains("_A person was asked for_"), "{text}");
        assert!(text.contains("_Dana took the conversation_"), "{text}");
        assert!(
            text.contains("_Dana gave the conversation back to the assistant_"),
            "{text}"
        );
    }
}
