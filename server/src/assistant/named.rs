//! Named assistants: an org's assistants, each a name, a display name, model settings
//! over the org's, and the documents it may draw on. A session picks one when it is
//! created and keeps it; a session without one talks to the default assistant (the
//! org's model settings over the gateway's flags).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_store::{AssistantRow, ConversationStore};
use utoipa::ToSchema;

use crate::assistant::settings::{ModelSettingsStore, OrgModelSettings};
use crate::error::ClientError;

/// Most assistants an org may define.
pub const MAX_ASSISTANTS_PER_ORG: usize = 32;
/// Most document prefixes an assistant may list.
pub const MAX_DOCUMENT_PREFIXES: usize = 64;
/// Longest display name, in characters.
const MAX_DISPLAY_NAME_CHARS: usize = 100;
/// Longest description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 1_000;

/// An assistant's definition, as an admin writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssistantSpec {
    /// Shown as the author of its replies, 1 to 100 characters (default: its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
    /// For people choosing an assistant, at most 1,000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// Model, system prompt, sampling and tools, over the org's own settings (what it
    /// leaves unset comes from `/v1/admin/model-settings`, then the gateway's flags).
    #[serde(
        default,
        deserialize_with = "switchboard_protocol::object_only::object"
    )]
    pub settings: OrgModelSettings,
    /// The documents it may draw on: `doc_id` prefixes (at most 64, each 1 to 128 of
    /// the `doc_id` characters). Absent: every document of the org; `[]`: none. Only
    /// ever narrows who may read what (docs/protocol.md §7): a reader still sees only
    /// the documents their access admits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 64)]
    pub documents: Option<Vec<String>>,
}

impl AssistantSpec {
    /// The name its replies carry as their author.
    pub fn author(&self, name: &str) -> String {
        self.display_name
            .clone()
            .unwrap_or_else(|| name.to_string())
    }
}

/// An org's assistant, as stored and listed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NamedAssistant {
    pub name: String,
    pub org_id: String,
    #[serde(flatten)]
    pub spec: AssistantSpec,
    /// When it was last written, milliseconds since the epoch.
    pub updated_at: u64,
}

/// Whether `name` may name an assistant: 1 to 64 of `A-Z a-z 0-9 _ -`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `prefix` may be a document prefix: 1 to 128 of the `doc_id` characters.
fn valid_prefix(prefix: &str) -> bool {
    (1..=128).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn bad_name(name: &str) -> ClientError {
    ClientError::bad_request(format!(
        "{name:?} is not an assistant name: use 1 to 64 of A-Z, a-z, 0-9, '_' and '-'"
    ))
}

/// The org's named assistants, kept in the conversation store.
pub struct NamedAssistants {
    store: Arc<dyn ConversationStore>,
    settings: Arc<ModelSettingsStore>,
}

impl NamedAssistants {
    pub fn new(
        store: Arc<dyn ConversationStore>,
        settings: Arc<ModelSettingsStore>,
    ) -> NamedAssistants {
        NamedAssistants { store, settings }
    }

    /// Check and store `org_id`'s assistant `name`, replacing one of that name.
    pub async fn put(
        &self,
        org_id: &str,
        name: &str,
        spec: AssistantSpec,
    ) -> Result<NamedAssistant, ClientError> {
        if !valid_name(name) {
            return Err(bad_name(name));
        }
        validate(&spec).map_err(ClientError::bad_request)?;
        self.settings.check(&spec.settings)?;
        let row = AssistantRow {
            org_id: org_id.to_string(),
            name: name.to_string(),
            spec: serde_json::to_string(&spec)
                .map_err(|e| ClientError::bad_request(format!("assistant: {e}")))?,
            updated_at: switchboard_backplane::now_ms(),
        };
        if !self
            .store
            .put_assistant(&row, MAX_ASSISTANTS_PER_ORG)
            .await?
        {
            return Err(ClientError::new(
                switchboard_protocol::ErrorCode::Conflict,
                format!(
                    "the org has {MAX_ASSISTANTS_PER_ORG} assistants, the most it may have; delete one first"
                ),
            ));
        }
        Ok(NamedAssistant {
            name: row.name,
            org_id: row.org_id,
            spec,
            updated_at: row.updated_at,
        })
    }

    /// The org's assistants, by name. One that cannot be read is left out (and logged).
    pub async fn list(&self, org_id: &str) -> Result<Vec<NamedAssistant>, ClientError> {
        Ok(self
            .store
            .assistants(org_id)
            .await?
            .into_iter()
            .filter_map(parse)
            .collect())
    }

    /// The org's assistant `name`, if it has one.
    pub async fn get(
        &self,
        org_id: &str,
        name: &str,
    ) -> Result<Option<NamedAssistant>, ClientError> {
        if !valid_name(name) {
            return Ok(None);
        }
        Ok(self.store.assistant(org_id, name).await?.and_then(parse))
    }

    /// Forget the org's assistant `name`. Whether it existed.
    pub async fn delete(&self, org_id: &str, name: &str) -> Result<bool, ClientError> {
        if !valid_name(name) {
            return Ok(false);
        }
        Ok(self.store.delete_assistant(org_id, name).await?)
    }

    /// The assistant a new session of `org_id` asks for (`requested`), which must
    /// exist: its name, or `None` for the default assistant.
    pub async fn for_new_session(
        &self,
        org_id: &str,
        requested: Option<&str>,
    ) -> Result<Option<String>, ClientError> {
        let Some(name) = requested else {
            return Ok(None);
        };
        if !valid_name(name) {
            return Err(bad_name(name));
        }
        match self.get(org_id, name).await? {
            Some(assistant) => Ok(Some(assistant.name)),
            None => Err(ClientError::new(
                switchboard_protocol::ErrorCode::NotFound,
                format!(
                    "this org has no assistant named {name:?}; leave \"assistant\" out for the default assistant"
                ),
            )),
        }
    }
}

fn parse(row: AssistantRow) -> Option<NamedAssistant> {
    match serde_json::from_str::<AssistantSpec>(&row.spec) {
        Ok(spec) => Some(NamedAssistant {
            name: row.name,
            org_id: row.org_id,
            spec,
            updated_at: row.updated_at,
        }),
        Err(e) => {
            tracing::error!(org_id = %row.org_id, assistant = %row.name, error = %e, "unreadable assistant; left out");
            None
        }
    }
}

/// What is wrong with `spec` apart from its model settings, if anything.
fn validate(spec: &AssistantSpec) -> Result<(), String> {
    if let Some(name) = &spec.display_name {
        let n = name.chars().count();
        if n == 0 || n > MAX_DISPLAY_NAME_CHARS || name.trim().is_empty() {
            return Err(format!(
                "display_name must be 1 to {MAX_DISPLAY_NAME_CHARS} characters, not only spaces"
            ));
        }
    }
    if let Some(description) = &spec.description
        && description.chars().count() > MAX_DESCRIPTION_CHARS
    {
        return Err(format!(
            "description is longer than {MAX_DESCRIPTION_CHARS} characters"
        ));
    }
    if let Some(prefixes) = &spec.documents {
        if prefixes.len() > MAX_DOCUMENT_PREFIXES {
            return Err(format!(
                "documents lists more than {MAX_DOCUMENT_PREFIXES} prefixes"
            ));
        }
        if let Some(bad) = prefixes.iter().find(|p| !valid_prefix(p)) {
            return Err(format!(
                "documents: {bad:?} is not a doc_id prefix (1 to 128 of A-Z, a-z, 0-9, '_', '.', ':', '-')"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_prefixes_keep_to_their_alphabets() {
        assert!(valid_name("billing-bot_2"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"a".repeat(65)));
        assert!(valid_prefix("hr:policies."));
        assert!(!valid_prefix("hr/*"));
        assert!(!valid_prefix(""));
    }

    #[test]
    fn a_spec_is_checked_field_by_field() {
        let ok = AssistantSpec {
            display_name: Some("Billing".into()),
            documents: Some(vec!["billing:".into()]),
            ..AssistantSpec::default()
        };
        assert_eq!(validate(&ok), Ok(()));
        let blank = AssistantSpec {
            display_name: Some("  ".into()),
            ..AssistantSpec::default()
        };
        assert!(validate(&blank).is_err());
        let too_many = AssistantSpec {
            documents: Some(vec!["a".into(); MAX_DOCUMENT_PREFIXES + 1]),
            ..AssistantSpec::default()
        };
        assert!(validate(&too_many).is_err());
        let bad_prefix = AssistantSpec {
            documents: Some(vec!["a*".into()]),
            ..AssistantSpec::default()
        };
        assert!(validate(&bad_prefix).unwrap_err().contains("\"a*\""));
    }

    #[test]
    fn unknown_fields_are_refused_and_the_author_defaults_to_the_name() {
        assert!(serde_json::from_str::<AssistantSpec>(r#"{"prompt":"x"}"#).is_err());
        assert!(serde_json::from_str::<AssistantSpec>(r#"{"settings":[null,null]}"#).is_err());
        assert!(serde_json::from_str::<AssistantSpec>(r#"{"settings":{"x":1}}"#).is_err());
        let spec: AssistantSpec =
            serde_json::from_str(r#"{"settings":{"system_prompt":"Be brief."}}"#).unwrap();
        assert_eq!(spec.author("sales"), "sales");
        assert_eq!(spec.settings.system_prompt.as_deref(), Some("Be brief."));
    }
}
