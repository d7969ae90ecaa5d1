//! Ids: the ones the gateway makes, and the checks on ids a client sends back
//! (docs/protocol.md §1).

use switchboard_backplane::StreamName;

use crate::error::ClientError;

/// The longest session id a client may send, on the WebSocket and over HTTP alike
/// (server-made ids are 34 characters).
pub const MAX_SESSION_ID_CHARS: usize = 128;

/// The longest id of a turn or a tool call the gateway would make.
const MAX_OWN_ID_CHARS: usize = 64;

/// A new id: `prefix`, `_` and a random UUID in simple form. Every id the gateway
/// makes has this shape: sessions `s_…`, connections `c_…`, messages `m_…`, turns
/// `t_…`, tool calls `tc_…`, publishes `p_…`, leases `lease_…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Whether `id` could be one the gateway made (a turn or a tool call a client names).
/// Anything else names nothing, and must not reach a record key.
pub fn is_plausible_own_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_OWN_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Why a client's session id cannot name a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSessionId(pub String);

/// The stream of a session id a client sent.
pub fn session_stream(session_id: &str) -> Result<StreamName, BadSessionId> {
    if session_id.chars().count() > MAX_SESSION_ID_CHARS {
        return Err(BadSessionId(format!(
            "session_id: at most {MAX_SESSION_ID_CHARS} characters"
        )));
    }
    StreamName::session(session_id).map_err(|e| BadSessionId(format!("session_id: {e}")))
}

impl From<BadSessionId> for ClientError {
    /// On the WebSocket a malformed id is a bad frame; HTTP answers `not_found` instead
    /// (see `http::api`), as for any session it cannot show.
    fn from(e: BadSessionId) -> ClientError {
        ClientError::bad_request(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_ids_carry_their_prefix_and_are_plausible() {
        let id = new_id("tc");
        assert!(id.starts_with("tc_") && id.len() == 35, "{id}");
        assert!(is_plausible_own_id(&id));
        assert!(!is_plausible_own_id(""));
        assert!(!is_plausible_own_id("t_1/../x"));
        assert!(!is_plausible_own_id(&"t".repeat(65)));
    }

    #[test]
    fn session_ids_are_limited_to_128_characters() {
        assert!(session_stream(&"s".repeat(128)).is_ok());
        assert!(session_stream(&"s".repeat(129)).is_err());
        assert!(session_stream("s 1").is_err());
    }
}
