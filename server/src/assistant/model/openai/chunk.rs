//! One `chat.completion.chunk` payload at a time: its text, its usage, a reported
//! error, and tool calls, which arrive in fragments and are handed on whole when the
//! choice finishes.

use std::collections::BTreeMap;

use serde::Deserialize;
use switchboard_protocol::Usage;

use super::errors::{error_message, malformed, truncate_chars};
use crate::assistant::model::{ModelError, ToolCall};

/// How much of a malformed `data:` line an error quotes.
const MALFORMED_QUOTE_CHARS: usize = 80;

/// One `chat.completion.chunk`; every field optional, since compatible servers differ
/// in what they leave out.
#[derive(Debug, Deserialize)]
struct StreamChunk {
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    /// Some servers report a failure mid-stream as `{"error": {...}}` (or a string).
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<ChoiceDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChoiceDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallFragment>>,
}

#[derive(Debug, Deserialize)]
struct ToolCallFragment {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionFragment>,
}

#[derive(Debug, Deserialize)]
struct FunctionFragment {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: Option<u64>,
}

/// Tool calls arrive in fragments (id and name first, then pieces of the JSON
/// arguments), keyed by `index`; they are handed on whole at the end of the round.
#[derive(Debug, Default)]
pub(super) struct ToolCallAssembler {
    calls: BTreeMap<u32, PartialToolCall>,
}

#[derive(Debug, Default)]
struct PartialToolCall {
    id: String,
    name: String,
    arguments: String,
}

impl ToolCallAssembler {
    fn add(&mut self, fragment: ToolCallFragment) {
        let call = self.calls.entry(fragment.index).or_default();
        if let Some(id) = fragment.id.filter(|id| !id.is_empty()) {
            call.id = id;
        }
        if let Some(function) = fragment.function {
            if let Some(name) = function.name.filter(|n| !n.is_empty()) {
                call.name = name;
            }
            if let Some(arguments) = function.arguments {
                call.arguments.push_str(&arguments);
            }
        }
    }

    /// The assembled calls, in index order; `None` when there were none.
    pub(super) fn take(&mut self) -> Result<Option<Vec<ToolCall>>, ModelError> {
        if self.calls.is_empty() {
            return Ok(None);
        }
        let calls = std::mem::take(&mut self.calls);
        calls
            .into_iter()
            .map(|(index, call)| {
                if call.name.is_empty() {
                    return Err(malformed(format!("tool call {index} has no function name")));
                }
                Ok(ToolCall {
                    // A few servers leave the id out; the follow-up round still needs one.
                    id: if call.id.is_empty() {
                        format!("call_{index}")
                    } else {
                        call.id
                    },
                    name: call.name,
                    arguments: if call.arguments.is_empty() {
                        "{}".to_string()
                    } else {
                        call.arguments
                    },
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// What one SSE `data:` payload meant.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Decoded {
    pub(super) delta: Option<String>,
    pub(super) usage: Option<Usage>,
    pub(super) tool_calls: Option<Vec<ToolCall>>,
    /// `data: [DONE]`
    pub(super) done: bool,
}

/// Reads `chat.completion.chunk` payloads one by one, remembering what spans them.
#[derive(Debug, Default)]
pub(super) struct ChunkDecoder {
    pub(super) tool_calls: ToolCallAssembler,
    /// A `finish_reason` arrived: the reply is whole even if `[DONE]` never does.
    pub(super) finished: bool,
}

impl ChunkDecoder {
    pub(super) fn decode(&mut self, data: &str) -> Result<Decoded, ModelError> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(Decoded::default());
        }
        if data == "[DONE]" {
            return Ok(Decoded {
                tool_calls: self.tool_calls.take()?,
                done: true,
                ..Decoded::default()
            });
        }
        let chunk: StreamChunk = serde_json::from_str(data).map_err(|e| {
            malformed(format!(
                "{e} in `{}`",
                truncate_chars(data, MALFORMED_QUOTE_CHARS)
            ))
        })?;
        if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
            return Err(ModelError(format!(
                "the model reported an error: {}",
                error_message(&error).unwrap_or_else(|| error.to_string())
            )));
        }
        let mut decoded = Decoded {
            usage: chunk.usage.map(|u| Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                total_tokens: u
                    .total_tokens
                    .unwrap_or(u.prompt_tokens + u.completion_tokens),
            }),
            ..Decoded::default()
        };
        // Only the first choice is the reply (the request never asks for `n` > 1).
        let Some(choice) = chunk
            .choices
            .into_iter()
            .flatten()
            .find(|choice| choice.index == 0)
        else {
            return Ok(decoded);
        };
        if let Some(delta) = choice.delta {
            decoded.delta = delta.content.filter(|text| !text.is_empty());
            for fragment in delta.tool_calls.into_iter().flatten() {
                self.tool_calls.add(fragment);
            }
        }
        if choice.finish_reason.is_some() {
            self.finished = true;
            decoded.tool_calls = self.tool_calls.take()?;
        }
        Ok(decoded)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tool_call_fragments_are_assembled_into_whole_calls_at_the_finish() {
        let mut decoder = ChunkDecoder::default();
        let fragments = [
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": "call_a", "type": "function", "function": {"name": "lookup", "arguments": ""}},
            ]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 1, "id": "call_b", "function": {"name": "weather", "arguments": "{\"city\""}},
            ]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": "{\"q\":"}},
            ]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": "\"refunds\"}"}},
                {"index": 1, "function": {"arguments": ":\"Oslo\"}"}},
            ]}}]}),
        ];
        for fragment in &fragments {
            let decoded = decoder.decode(&fragment.to_string()).unwrap();
            assert_eq!(decoded, Decoded::default(), "nothing is handed on mid-call");
        }
        let finish = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]});
        let decoded = decoder.decode(&finish.to_string()).unwrap();
        assert_eq!(
            decoded.tool_calls,
            Some(vec![
                ToolCall {
                    id: "call_a".into(),
                    name: "lookup".into(),
                    arguments: r#"{"q":"refunds"}"#.into()
                },
                ToolCall {
                    id: "call_b".into(),
                    name: "weather".into(),
                    arguments: r#"{"city":"Oslo"}"#.into()
                },
            ])
        );
        assert!(decoder.finished);
        assert_eq!(decoder.decode("[DONE]").unwrap().tool_calls, None);
    }

    #[test]
    fn usage_errors_and_garbage_are_decoded_into_what_they_mean() {
        let mut decoder = ChunkDecoder::default();
        let usage = json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}});
        assert_eq!(
            decoder.decode(&usage.to_string()).unwrap().usage,
            Some(Usage {
                prompt_tokens: 7,
                completion_tokens: 3,
                total_tokens: 10
            })
        );
        let error = json!({"error": {"message": "context length exceeded", "type": "invalid_request_error"}});
        assert_eq!(
            decoder.decode(&error.to_string()).unwrap_err().0,
            "the model reported an error: context length exceeded"
        );
        let garbage = decoder.decode("{\"choices\": [").unwrap_err().0;
        assert!(
            garbage.starts_with("the model sent a malformed stream: ")
                && garbage.contains("{\"choices\": ["),
            "{garbage}"
        );
        assert!(decoder.decode("[DONE]").unwrap().done);
    }
}
