//! The offline agent: answers from the documents retrieval found, quoting the
//! sentences that match the question best. It needs no key and no network, so the
//! gateway runs out of the box and tests are deterministic.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use switchboard_protocol::Usage;

use super::{ChatRole, HANDOFF_TOOL, ModelChunk, ModelError, ModelProvider, ToolCall, TurnRequest};
use crate::assistant::knowledge::terms;

/// Words per `turn.delta`.
const WORDS_PER_DELTA: usize = 3;
/// Words quoted from each document at most.
const WORDS_PER_DOCUMENT: usize = 80;

/// Phrases with which a customer asks for a person (lowercase).
const ASKS_FOR_A_PERSON: &[&str] = &[
    "human",
    "real person",
    "a person",
    "talk to someone",
    "speak to someone",
    "an operator",
    "representative",
];

/// What the offline agent says once it asked for a person.
pub const HANDED_OFF: &str =
    "I have asked a person from the team to join this conversation. They will be with you shortly.";

/// Whether the offline agent asks for a person instead of answering: when it may (the
/// handoff tool is offered), it has not yet, and the customer asks for one or — if
/// the org wants it — the knowledge base has nothing.
fn hands_off(request: &TurnRequest) -> bool {
    let offered = request.tools.iter().any(|t| t.name == HANDOFF_TOOL);
    let question = request.question.to_lowercase();
    let asked = ASKS_FOR_A_PERSON.iter().any(|p| question.contains(p));
    let unanswered = request.documents.is_empty() && request.handoff_when_unanswered;
    offered && !after_a_tool(request) && (asked || unanswered)
}

/// Whether this round follows a tool call (the prompt ends with its result).
fn after_a_tool(request: &TurnRequest) -> bool {
    request
        .messages
        .last()
        .is_some_and(|m| m.role == ChatRole::Tool)
}

/// The built-in agent. `delay` is the pause between deltas, so answers stream.
pub struct OfflineAgent {
    delay: Duration,
}

impl OfflineAgent {
    pub fn new(delay: Duration) -> OfflineAgent {
        OfflineAgent { delay }
    }

    /// The whole answer to `request`.
    pub fn compose(request: &TurnRequest) -> String {
        if request.documents.is_empty() {
            return "I could not find anything about that in the knowledge base. Try asking about a topic it covers.".into();
        }
        let query = terms(&request.question);
        let parts: Vec<String> = request
            .documents
            .iter()
            .map(|doc| {
                format!(
                    "From \"{}\": {}",
                    doc.title,
                    best_sentences(&doc.text, &query)
                )
            })
            .collect();
        parts.join("\n\n")
    }
}

/// The document's sentences that share most words with the query, in document
/// order, up to [`WORDS_PER_DOCUMENT`] words.
fn best_sentences(text: &str, query: &[String]) -> String {
    let sentences = split_sentences(text);
    let mut ranked: Vec<(usize, usize)> = sentences
        .iter()
        .enumerate()
        .map(|(i, s)| (i, terms(s).iter().filter(|t| query.contains(t)).count()))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut chosen = Vec::new();
    let mut words = 0;
    for (i, _) in ranked {
        let n = sentences[i].split_whitespace().count();
        if words > 0 && words + n > WORDS_PER_DOCUMENT {
            continue;
        }
        chosen.push(i);
        words += n;
        if words >= WORDS_PER_DOCUMENT {
            break;
        }
    }
    chosen.sort_unstable();
    let quoted: Vec<&str> = chosen.into_iter().map(|i| sentences[i]).collect();
    let joined = quoted.join(" ");
    // A single sentence longer than the budget is cut at a word boundary.
    let mut out: Vec<&str> = joined.split_whitespace().collect();
    if out.len() > WORDS_PER_DOCUMENT {
        out.truncate(WORDS_PER_DOCUMENT);
        return format!("{}…", out.join(" "));
    }
    out.join(" ")
}

/// Sentences end at `.`, `!` or `?` followed by whitespace, so `session.join` and
/// `v1.2` stay whole.
fn split_sentences(text: &str) -> Vec<&str> {
    let mut sentences = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let ends = matches!(c, '.' | '!' | '?')
            && chars.peek().is_none_or(|(_, next)| next.is_whitespace());
        if ends {
            let end = i + c.len_utf8();
            sentences.push(text[start..end].trim());
            start = end;
        }
    }
    sentences.push(text[start..].trim());
    sentences.retain(|s| !s.is_empty());
    sentences
}

/// Split `text` into chunks of a few words, keeping every character (spaces and
/// newlines included) so the chunks concatenate back to `text` exactly.
fn chunks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut words = 0;
    let mut in_word = false;
    for c in text.chars() {
        let starts_word = !c.is_whitespace() && !in_word;
        if starts_word {
            if words == WORDS_PER_DELTA {
                out.push(std::mem::take(&mut current));
                words = 0;
            }
            words += 1;
        }
        in_word = !c.is_whitespace();
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

impl ModelProvider for OfflineAgent {
    fn name(&self) -> &'static str {
        "offline"
    }

    fn supports_handoff(&self) -> bool {
        true
    }

    fn reply(&self, request: TurnRequest) -> BoxStream<'static, Result<ModelChunk, ModelError>> {
        if hands_off(&request) {
            let call = ToolCall {
                id: "offline_handoff".into(),
                name: HANDOFF_TOOL.into(),
                arguments: serde_json::json!({ "reason": request.question }).to_string(),
            };
            return futures_util::stream::iter([Ok(ModelChunk::ToolCalls(vec![call]))]).boxed();
        }
        let answer = if after_a_tool(&request) {
            HANDED_OFF.to_string()
        } else {
            Self::compose(&request)
        };
        let prompt_tokens = (request.question.split_whitespace().count()
            + request
                .documents
                .iter()
                .map(|d| d.text.split_whitespace().count())
                .sum::<usize>()) as u64;
        let completion_tokens = answer.split_whitespace().count() as u64;
        let usage = Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        };
        let delay = self.delay;
        let deltas = futures_util::stream::iter(chunks(&answer)).then(move |chunk| async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(ModelChunk::Delta(chunk))
        });
        deltas
            .chain(futures_util::stream::once(async move {
                Ok(ModelChunk::Usage(usage))
            }))
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assistant::knowledge::{Acl, Document};

    fn request(question: &str, docs: Vec<Document>) -> TurnRequest {
        TurnRequest {
            session_id: "s".into(),
            turn_id: "t".into(),
            question: question.into(),
            messages: vec![],
            tools: vec![],
            handoff_when_unanswered: false,
            options: Default::default(),
            documents: docs,
            access: crate::access::AccessContext {
                user_id: None,
                org_id: "o".into(),
                groups: vec![],
                roles: vec![],
                anonymous: true,
                name: None,
            },
        }
    }

    #[test]
    fn sentences_split_at_punctuation_before_whitespace_only() {
        assert_eq!(
            split_sentences("Send session.join first. Then wait! Done"),
            ["Send session.join first.", "Then wait!", "Done"]
        );
    }

    #[test]
    fn chunks_concatenate_back_to_the_text() {
        let text = "From \"A\": one two  three four.\n\nFrom \"B\": five six seven";
        let parts = chunks(text);
        assert!(parts.len() > 2);
        assert_eq!(parts.concat(), text);
    }

    #[tokio::test]
    async fn the_reply_streams_several_deltas_then_usage() {
        let doc = Document {
            doc_id: "d".into(),
            org_id: "o".into(),
            title: "Refunds".into(),
            text: "Refunds are paid within five days. Shipping is free. Refunds need a receipt."
                .into(),
            uri: None,
            acl: Acl::default(),
        };
        let chunks: Vec<_> = OfflineAgent::new(Duration::ZERO)
            .reply(request("how do refunds work", vec![doc]))
            .collect()
            .await;
        let text: String = chunks
            .iter()
            .filter_map(|c| match c {
                Ok(ModelChunk::Delta(t)) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert!(chunks.len() > 3);
        assert!(
            text.starts_with("From \"Refunds\": Refunds are paid"),
            "{text}"
        );
        assert!(matches!(chunks.last(), Some(Ok(ModelChunk::Usage(_)))));
    }
}
