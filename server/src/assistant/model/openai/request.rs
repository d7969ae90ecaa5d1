//! The request body of one reply, in chat-completions shape: the prompt, the tools the
//! model may call, and the options (the turn's, else the config's).

use serde::Serialize;

use super::config::OpenAiConfig;
use crate::assistant::model::{ChatMessage, ChatRole, ToolDefinition, TurnRequest};

#[derive(Debug, Serialize)]
pub(super) struct ChatCompletionRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    stream: bool,
    stream_options: StreamOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Debug, Serialize)]
struct WireMessage<'a> {
    role: ChatRole,
    /// `null` for an assistant message that only calls tools.
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionCall<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Debug, Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a serde_json::Value,
}

pub(super) fn request_body<'a>(
    config: &'a OpenAiConfig,
    request: &'a TurnRequest,
) -> ChatCompletionRequest<'a> {
    let options = &request.options;
    ChatCompletionRequest {
        model: options.model.as_deref().unwrap_or(&config.default_model),
        messages: request.messages.iter().map(wire_message).collect(),
        stream: true,
        stream_options: StreamOptions {
            include_usage: true,
        },
        temperature: options.temperature.or(config.temperature),
        max_tokens: options.max_tokens.or(config.max_tokens),
        tools: request.tools.iter().map(wire_tool).collect(),
    }
}

fn wire_message(message: &ChatMessage) -> WireMessage<'_> {
    let only_calls = message.role == ChatRole::Assistant
        && message.content.is_empty()
        && !message.tool_calls.is_empty();
    WireMessage {
        role: message.role,
        content: (!only_calls).then_some(message.content.as_str()),
        tool_calls: message
            .tool_calls
            .iter()
            .map(|call| WireToolCall {
                id: &call.id,
                kind: "function",
                function: WireFunctionCall {
                    name: &call.name,
                    arguments: &call.arguments,
                },
            })
            .collect(),
        tool_call_id: message.tool_call_id.as_deref(),
    }
}

fn wire_tool(tool: &ToolDefinition) -> WireTool<'_> {
    WireTool {
        kind: "function",
        function: WireFunction {
            name: &tool.name,
            description: &tool.description,
            parameters: &tool.parameters,
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::config::tests::config;
    use super::*;
    use crate::access::AccessContext;
    use crate::assistant::model::{ModelOptions, ToolCall};

    fn turn_request(messages: Vec<ChatMessage>, tools: Vec<ToolDefinition>) -> TurnRequest {
        TurnRequest {
            session_id: "s_1".into(),
            turn_id: "t_1".into(),
            question: "q".into(),
            messages,
            documents: Vec::new(),
            tools,
            handoff_when_unanswered: false,
            options: ModelOptions::default(),
            access: AccessContext {
                user_id: None,
                org_id: "default".into(),
                groups: vec![],
                roles: vec![],
                anonymous: true,
                name: None,
            },
        }
    }

    #[test]
    fn the_request_carries_the_prompt_tools_and_options_in_openai_shape() {
        let mut assistant = ChatMessage::new(ChatRole::Assistant, "");
        assistant.tool_calls = vec![ToolCall {
            id: "call_1".into(),
            name: "lookup".into(),
            arguments: r#"{"q":"x"}"#.into(),
        }];
        let mut tool = ChatMessage::new(ChatRole::Tool, "found");
        tool.tool_call_id = Some("call_1".into());
        let mut request = turn_request(
            vec![
                ChatMessage::new(ChatRole::System, "be brief"),
                ChatMessage::new(ChatRole::User, "hi"),
                assistant,
                tool,
            ],
            vec![ToolDefinition {
                name: "lookup".into(),
                description: "Look it up".into(),
                parameters: json!({"type": "object"}),
            }],
        );
        request.options.max_tokens = Some(64);
        let config = config();
        let body = serde_json::to_value(request_body(&config, &request)).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "default-model",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]},
                    {"role": "tool", "content": "found", "tool_call_id": "call_1"},
                ],
                "stream": true,
                "stream_options": {"include_usage": true},
                "temperature": 0.5,
                "max_tokens": 64,
                "tools": [{"type": "function", "function": {
                    "name": "lookup", "description": "Look it up",
                    "parameters": {"type": "object"}}}],
            })
        );
    }

    #[test]
    fn options_override_the_config_and_no_tools_means_no_tools_field() {
        let mut request = turn_request(vec![ChatMessage::new(ChatRole::User, "hi")], vec![]);
        request.options.model = Some("org-model".into());
        request.options.temperature = Some(0.0);
        let config = config();
        let body = serde_json::to_value(request_body(&config, &request)).unwrap();
        assert_eq!(body["model"], "org-model");
        assert_eq!(body["temperature"], 0.0);
        assert!(body.get("tools").is_none(), "{body}");
        assert!(body.get("max_tokens").is_none(), "{body}");
    }
}
