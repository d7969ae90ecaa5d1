//! The prompt a model gets: the system prompt with the documents the asker may read,
//! the session's recent transcript within a token budget, then the question.
//!
//! Documents arrive already filtered by the asker's access context (docs/protocol.md
//! §7.2), so nothing here can put a document the asker may not read into a prompt.

use switchboard_protocol::{Event, EventBody, Role};

use super::{ChatMessage, ChatRole};
use crate::assistant::knowledge::Document;

/// The system prompt when neither the gateway nor the org sets one.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant for this website's visitors. \
Answer from the documents below when they cover the question, and say so when they do not. \
Be concise.";

/// Characters of one document put into the prompt at most, so one long document
/// cannot crowd out the rest.
const MAX_DOCUMENT_CHARS: usize = 6_000;

/// A rough token count (about 4 characters per token in English text), enough to
/// keep a transcript within a budget without a tokenizer per model.
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

/// One line of a session's transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptLine {
    pub role: Role,
    pub text: String,
    pub author: Option<String>,
}

/// The transcript before the message `question_id`, as much of its end as fits
/// `budget` tokens (whole messages), oldest first: the session's `message` events.
/// Events from that message on are left out (they are the question itself, or came
/// after it). Read from the question backwards, so a long history costs only what
/// the prompt keeps.
pub fn transcript_before<E: AsRef<Event>>(
    events: &[E],
    question_id: &str,
    budget: usize,
) -> Vec<TranscriptLine> {
    let is_question = |event: &E| matches!(&event.as_ref().body, EventBody::Message { message_id, .. } if message_id == question_id);
    let before = match events.iter().position(is_question) {
        Some(at) => &events[..at],
        None => events,
    };
    let mut lines = Vec::new();
    let mut used = 0;
    for event in before.iter().rev() {
        if let EventBody::Message {
            role, text, author, ..
        } = &event.as_ref().body
        {
            let cost = estimate_tokens(text);
            if used + cost > budget {
                break;
            }
            used += cost;
            lines.push(TranscriptLine {
                role: *role,
                text: text.clone(),
                author: author.clone(),
            });
        }
    }
    lines.reverse();
    lines
}

/// The system message: the prompt, then each document with its title and address.
fn system_message(system_prompt: &str, documents: &[Document]) -> ChatMessage {
    let mut content = system_prompt.trim().to_string();
    if !documents.is_empty() {
        content.push_str("\n\nDocuments:");
        for (n, doc) in documents.iter().enumerate() {
            content.push_str(&format!("\n\n[{}] {}", n + 1, doc.title));
            if let Some(uri) = &doc.uri {
                content.push_str(&format!(" ({uri})"));
            }
            content.push('\n');
            let text: String = doc.text.chars().take(MAX_DOCUMENT_CHARS).collect();
            content.push_str(&text);
        }
    }
    ChatMessage::new(ChatRole::System, content)
}

/// A transcript line as a chat message. A human operator speaks for the business, so
/// their words sit on the assistant's side, marked as theirs.
fn transcript_message(line: &TranscriptLine) -> ChatMessage {
    match line.role {
        Role::User => ChatMessage::new(ChatRole::User, line.text.clone()),
        Role::Assistant => ChatMessage::new(ChatRole::Assistant, line.text.clone()),
        Role::Operator => {
            let who = line.author.as_deref().unwrap_or("operator");
            ChatMessage::new(
                ChatRole::Assistant,
                format!("(human operator {who}) {}", line.text),
            )
        }
        Role::System => ChatMessage::new(ChatRole::System, line.text.clone()),
    }
}

/// The whole prompt: system message with documents, as much of the most recent
/// transcript as fits `transcript_budget` tokens (whole messages only), the question.
pub fn build(
    system_prompt: &str,
    documents: &[Document],
    transcript: &[TranscriptLine],
    transcript_budget: usize,
    question: &str,
) -> Vec<ChatMessage> {
    let mut recent = Vec::new();
    let mut used = 0;
    for line in transcript.iter().rev() {
        let cost = estimate_tokens(&line.text);
        if used + cost > transcript_budget {
            break;
        }
        used += cost;
        recent.push(transcript_message(line));
    }
    recent.reverse();
    let mut messages = Vec::with_capacity(recent.len() + 2);
    messages.push(system_message(system_prompt, documents));
    messages.extend(recent);
    messages.push(ChatMessage::new(ChatRole::User, question));
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assistant::knowledge::Acl;

    fn doc(id: &str, title: &str, text: &str) -> Document {
        Document {
            doc_id: id.into(),
            org_id: "acme".into(),
            title: title.into(),
            text: text.into(),
            uri: Some(format!("https://docs.example/{id}")),
            acl: Acl::default(),
        }
    }

    fn line(role: Role, text: &str) -> TranscriptLine {
        TranscriptLine {
            role,
            text: text.into(),
            author: None,
        }
    }

    #[test]
    fn the_system_message_carries_every_document_given_and_nothing_else() {
        let docs = [
            doc("d1", "Refunds", "Refunds take 5 days."),
            doc("d2", "Shipping", "We ship worldwide."),
        ];
        let prompt = build("Be brief.", &docs, &[], 100, "how long do refunds take?");
        assert_eq!(prompt.len(), 2);
        assert_eq!(prompt[0].role, ChatRole::System);
        let system = &prompt[0].content;
        assert!(system.starts_with("Be brief."));
        assert!(system.contains("[1] Refunds (https://docs.example/d1)\nRefunds take 5 days."));
        assert!(system.contains("[2] Shipping"));
        assert_eq!(
            prompt[1],
            ChatMessage::new(ChatRole::User, "how long do refunds take?")
        );
    }

    #[test]
    fn no_documents_means_no_documents_heading() {
        let prompt = build("Be brief.", &[], &[], 100, "hi");
        assert_eq!(prompt[0].content, "Be brief.");
    }

    #[test]
    fn the_transcript_keeps_the_newest_whole_messages_within_the_budget() {
        let transcript = [
            line(Role::User, &"a".repeat(400)),     // 100 tokens
            line(Role::Assistant, &"b".repeat(40)), // 10 tokens
            line(Role::User, &"c".repeat(40)),      // 10 tokens
        ];
        let prompt = build("S", &[], &transcript, 25, "q");
        let middle: Vec<&str> = prompt[1..prompt.len() - 1]
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        assert_eq!(middle, vec!["b".repeat(40), "c".repeat(40)]);
        assert_eq!(prompt[1].role, ChatRole::Assistant);
        assert_eq!(prompt[2].role, ChatRole::User);
        let none = build("S", &[], &transcript, 0, "q");
        assert_eq!(none.len(), 2);
    }

    #[test]
    fn operator_words_are_on_the_assistant_side_and_marked() {
        let transcript = [TranscriptLine {
            role: Role::Operator,
            text: "I can help".into(),
            author: Some("dana".into()),
        }];
        let prompt = build("S", &[], &transcript, 100, "q");
        assert_eq!(prompt[1].role, ChatRole::Assistant);
        assert_eq!(prompt[1].content, "(human operator dana) I can help");
    }

    /// A user's `message` event.
    fn message(seq: u64, id: &str, text: &str) -> std::sync::Arc<Event> {
        std::sync::Arc::new(Event {
            seq,
            ts: 0,
            traceparent: None,
            body: EventBody::Message {
                message_id: id.into(),
                role: Role::User,
                text: text.into(),
                author: None,
            },
        })
    }

    #[test]
    fn the_transcript_stops_before_the_question() {
        let events = [
            message(1, "m1", "first"),
            message(2, "m2", "the question"),
            message(3, "m3", "after"),
        ];
        let lines = transcript_before(&events, "m2", 100);
        assert_eq!(lines, vec![line(Role::User, "first")]);
    }

    #[test]
    fn the_transcript_keeps_the_latest_messages_that_fit() {
        // 2 tokens each (8 characters); the budget holds two of them.
        let events = [
            message(1, "m1", "oldest.."),
            message(2, "m2", "middle.."),
            message(3, "m3", "latest.."),
            message(4, "m4", "the question"),
        ];
        let lines = transcript_before(&events, "m4", 5);
        assert_eq!(
            lines,
            vec![line(Role::User, "middle.."), line(Role::User, "latest..")]
        );
        // The same lines as the prompt keeps of the whole transcript.
        let all = transcript_before(&events, "m4", usize::MAX);
        let prompt = build("system", &[], &all, 5, "the question");
        assert_eq!(prompt.len(), 4, "system, two lines, the question");
        assert_eq!(prompt[1].content, "middle..");
    }
}
