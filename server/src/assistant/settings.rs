//! Per-org model settings (model, system prompt, sampling, tools), kept in the shared
//! records so every replica answers an org the same way, and edited through
//! `/v1/admin/model-settings`. What an org leaves unset falls back to the gateway's
//! flags.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchboard_backplane::{Backplane, RecordKey};
use utoipa::ToSchema;

use crate::assistant::model::ModelOptions;
use crate::assistant::model::prompt::DEFAULT_SYSTEM_PROMPT;
use crate::assistant::tools::{self, ToolSpec};
use crate::error::ClientError;
use crate::records::namespace::MODEL_SETTINGS;
/// Longest system prompt an org may set, in characters.
const MAX_SYSTEM_PROMPT_CHARS: usize = 16_000;
/// Most tools an org may define.
const MAX_TOOLS: usize = 32;
/// The largest `max_tokens` an org may set (above any model's output limit).
const MAX_MAX_TOKENS: u32 = 1_000_000;

/// An org's settings. Every field is optional; unset means the gateway's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgModelSettings {
    /// Model name sent upstream, 1 to 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200)]
    pub model: Option<String>,
    /// The system prompt, at most 16,000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 16000)]
    pub system_prompt: Option<String>,
    /// 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f32>,
    /// Most tokens an answer may have, 1 to 1,000,000.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "switchboard_protocol::whole_number::option_u32"
    )]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_tokens: Option<u32>,
    /// The org's tools, replacing the gateway's `--tools-file` tools for this org
    /// (an empty list turns tools off). Endpoints must be on an origin the operator
    /// allowed with `--tool-endpoint-origins`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "switchboard_protocol::object_only::option_vec"
    )]
    #[schema(schema_with = tools_schema)]
    pub tools: Option<Vec<ToolSpec>>,
}

/// `tools`' schema: at most [`MAX_TOOLS`], no two alike (names must differ too, which
/// JSON Schema cannot say).
fn tools_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type([Type::Array, Type::Null].into_iter().collect::<SchemaType>())
        .description(Some(
            "The org's tools, replacing the gateway's --tools-file tools for this org (an empty list turns tools off). Names must differ from each other and from the gateway's own tools (400 otherwise). Endpoints must be on an origin the operator allowed with --tool-endpoint-origins (403 otherwise).",
        ))
        .items(utoipa::openapi::Ref::from_schema_name("ToolSpec"))
        .max_items(Some(MAX_TOOLS))
        .unique_items(true)
        .build()
}

impl OrgModelSettings {
    /// These settings, with what they leave unset taken from `under`.
    pub fn over(self, under: OrgModelSettings) -> OrgModelSettings {
        OrgModelSettings {
            model: self.model.or(under.model),
            system_prompt: self.system_prompt.or(under.system_prompt),
            temperature: self.temperature.or(under.temperature),
            max_tokens: self.max_tokens.or(under.max_tokens),
            tools: self.tools.or(under.tools),
        }
    }
}

/// The gateway-wide defaults.
#[derive(Debug, Clone)]
pub struct ModelDefaults {
    pub system_prompt: String,
    pub options: ModelOptions,
    pub tools: Vec<ToolSpec>,
    /// Origins org tools may call: `--tool-endpoint-origins` plus the tools file's own.
    pub allowed_tool_origins: Vec<String>,
}

/// Settings for one turn: the org's, over the defaults.
#[derive(Debug, Clone)]
pub struct ResolvedSettings {
    pub system_prompt: String,
    pub options: ModelOptions,
    pub tools: Vec<ToolSpec>,
}

pub struct ModelSettingsStore {
    backplane: Arc<dyn Backplane>,
    /// Replaced whole by a configuration reload; a turn reads them once.
    defaults: arc_swap::ArcSwap<ModelDefaults>,
}

impl ModelDefaults {
    pub fn new(
        system_prompt: Option<String>,
        options: ModelOptions,
        tools: Vec<ToolSpec>,
        extra_origins: &[String],
    ) -> ModelDefaults {
        let mut allowed_tool_origins: Vec<String> = extra_origins
            .iter()
            .map(|o| o.trim_end_matches('/').to_string())
            .collect();
        allowed_tool_origins.extend(tools.iter().filter_map(ToolSpec::origin));
        ModelDefaults {
            system_prompt: system_prompt.unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.to_string()),
            options,
            tools,
            allowed_tool_origins,
        }
    }
}

impl ModelSettingsStore {
    pub fn new(backplane: Arc<dyn Backplane>, defaults: ModelDefaults) -> ModelSettingsStore {
        ModelSettingsStore {
            backplane,
            defaults: arc_swap::ArcSwap::from_pointee(defaults),
        }
    }

    /// Replace the gateway-wide defaults (a configuration reload): turns that start
    /// afterwards use them.
    pub fn set_defaults(&self, defaults: ModelDefaults) {
        self.defaults.store(Arc::new(defaults));
    }

    /// The org's own settings, if it has any.
    pub async fn get(&self, org_id: &str) -> Result<Option<OrgModelSettings>, ClientError> {
        let raw = self
            .backplane
            .record_get(&RecordKey::new(MODEL_SETTINGS, org_id))
            .await?;
        Ok(raw.and_then(|raw| match serde_json::from_slice(&raw) {
            Ok(settings) => Some(settings),
            Err(e) => {
                tracing::error!(org_id, error = %e, "unreadable model settings; using the defaults");
                None
            }
        }))
    }

    /// Check and store an org's settings, replacing what it had.
    pub async fn put(&self, org_id: &str, settings: &OrgModelSettings) -> Result<(), ClientError> {
        self.check(settings)?;
        let value = serde_json::to_vec(settings)
            .map_err(|e| ClientError::bad_request(format!("settings: {e}")))?;
        self.backplane
            .record_put(
                &RecordKey::new(MODEL_SETTINGS, org_id),
                Bytes::from(value),
                None,
            )
            .await?;
        Ok(())
    }

    /// Forget an org's settings; it gets the defaults again. Whether it had any.
    pub async fn delete(&self, org_id: &str) -> Result<bool, ClientError> {
        Ok(self
            .backplane
            .record_delete(&RecordKey::new(MODEL_SETTINGS, org_id))
            .await?)
    }

    /// Whether `settings` may be stored (an org's, or a named assistant's): `bad_request`
    /// for their shape, `forbidden` for what the operator forbids.
    pub fn check(&self, settings: &OrgModelSettings) -> Result<(), ClientError> {
        self.validate(settings).map_err(ClientError::bad_request)?;
        match self.forbidden(settings) {
            Some(refusal) => Err(ClientError::forbidden(refusal)),
            None => Ok(()),
        }
    }

    fn validate(&self, settings: &OrgModelSettings) -> Result<(), String> {
        if let Some(model) = &settings.model
            && !(1..=200).contains(&model.chars().count())
        {
            return Err("model must be 1 to 200 characters".into());
        }
        if let Some(prompt) = &settings.system_prompt
            && prompt.chars().count() > MAX_SYSTEM_PROMPT_CHARS
        {
            return Err(format!(
                "system_prompt is longer than {MAX_SYSTEM_PROMPT_CHARS} characters"
            ));
        }
        if let Some(t) = settings.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err("temperature must be between 0 and 2".into());
        }
        if let Some(n) = settings.max_tokens
            && !(1..=MAX_MAX_TOKENS).contains(&n)
        {
            return Err(format!("max_tokens must be 1 to {MAX_MAX_TOKENS}"));
        }
        if let Some(tools) = &settings.tools {
            if tools.len() > MAX_TOOLS {
                return Err(format!("at most {MAX_TOOLS} tools"));
            }
            tools::validate(tools)?;
            for tool in tools {
                if let Some(refusal) = tools::shadows(tool, &self.defaults.load().tools) {
                    return Err(refusal);
                }
            }
        }
        Ok(())
    }

    /// What the operator forbids in `settings`, apart from its shape: tool endpoints
    /// off the allowed origins.
    fn forbidden(&self, settings: &OrgModelSettings) -> Option<String> {
        let tools = settings.tools.as_deref()?;
        tools::origin_refused(tools, &self.defaults.load().allowed_tool_origins)
    }

    /// The settings a turn in `org_id` runs with: a named assistant's (`assistant`),
    /// over the org's, over the gateway's. A backplane error falls back to the
    /// defaults: a turn should not fail because its org's settings are unreadable.
    pub async fn resolve(
        &self,
        org_id: &str,
        assistant: Option<&OrgModelSettings>,
    ) -> ResolvedSettings {
        let org = match self.get(org_id).await {
            Ok(org) => org.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(org_id, error = %e.message, "model settings unavailable; using the defaults");
                OrgModelSettings::default()
            }
        };
        let org = match assistant {
            Some(named) => named.clone().over(org),
            None => org,
        };
        let defaults = self.defaults.load_full();
        let defaults = &*defaults;
        ResolvedSettings {
            system_prompt: org
                .system_prompt
                .unwrap_or_else(|| defaults.system_prompt.clone()),
            options: ModelOptions {
                model: org.model.or_else(|| defaults.options.model.clone()),
                temperature: org.temperature.or(defaults.options.temperature),
                max_tokens: org.max_tokens.or(defaults.options.max_tokens),
            },
            tools: match org.tools {
                Some(tools) => tools
                    .into_iter()
                    .filter(|tool| {
                        // Stored before shadowing was refused: never offered.
                        let refusal = tools::shadows(tool, &defaults.tools);
                        if let Some(refusal) = &refusal {
                            tracing::warn!(org_id, "an org tool is left out: {refusal}");
                        }
                        refusal.is_none()
                    })
                    .collect(),
                None => defaults.tools.clone(),
            },
        }
    }
}
