//! The text of the errors a reply can end with: the upstream's own words where it
//! gave some, cut to a length a user can read, and never reqwest's outer wrapping.

use std::time::Duration;

use crate::assistant::model::ModelError;

/// How much of an HTTP error body is read, and how much of it reaches the user.
const ERROR_BODY_READ_LIMIT: usize = 16 * 1024;
const ERROR_BODY_SHOWN_CHARS: usize = 300;

/// The message of an OpenAI-style error value: `{"message": …}`, `{"error": {"message":
/// …}}`, `{"error": "…"}` or a bare string.
pub(super) fn error_message(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(map) => map
            .get("message")
            .and_then(|m| m.as_str().map(str::to_string))
            .or_else(|| map.get("error").and_then(error_message)),
        _ => None,
    }
}

pub(super) fn malformed(what: impl std::fmt::Display) -> ModelError {
    ModelError(format!("the model sent a malformed stream: {what}"))
}

pub(super) fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

pub(super) fn idle_error(idle: Duration) -> ModelError {
    ModelError(format!(
        "the model sent nothing for {} (--model-idle-timeout)",
        humantime::format_duration(idle)
    ))
}

/// The innermost cause of a failed request (e.g. `Connection refused (os error 111)`),
/// which says more than reqwest's outer "error sending request for url".
pub(super) fn send_failure_reason(error: &reqwest::Error, connect_timeout: Duration) -> String {
    if error.is_timeout() {
        return format!(
            "no connection within {} (--model-connect-timeout)",
            humantime::format_duration(connect_timeout)
        );
    }
    innermost_cause(error)
}

pub(super) fn innermost_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The upstream's own words from an error response: `error.message` of a JSON body,
/// or the start of the body as text, or the status's reason when the body is empty.
pub(super) async fn error_body_message(mut response: reqwest::Response, idle: Duration) -> String {
    let status = response.status();
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_READ_LIMIT {
        match tokio::time::timeout(idle, response.chunk()).await {
            Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&body);
    let from_json = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|value| error_message(&value));
    let message = from_json.unwrap_or_else(|| text.trim().to_string());
    if message.is_empty() {
        status.canonical_reason().unwrap_or("no body").to_string()
    } else {
        truncate_chars(&message, ERROR_BODY_SHOWN_CHARS)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn error_messages_come_from_any_common_error_shape() {
        for (value, expected) in [
            (json!({"error": {"message": "bad key"}}), Some("bad key")),
            (json!({"error": "overloaded"}), Some("overloaded")),
            (json!({"message": "nope"}), Some("nope")),
            (json!({"detail": "?"}), None),
        ] {
            assert_eq!(error_message(&value).as_deref(), expected, "{value}");
        }
        assert_eq!(truncate_chars("héllo", 2), "hé…");
        assert_eq!(truncate_chars("hé", 2), "hé");
    }
}
