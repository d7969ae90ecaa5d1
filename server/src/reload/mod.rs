//! Live reload (docs/operations.md): SIGHUP ([`signal`]) and `POST /v1/admin/reload`
//! read the configuration again — the same argv, environment and `--settings-file`
//! as at boot, and the files they name — validate all of it as at boot, and only
//! then swap in the parts a running gateway can change without dropping a
//! connection ([`LIVE_SETTINGS`]). Anything wrong and the running configuration
//! stays whole. Each reload is logged (setting names only, never values) and counted
//! in `switchboard_config_reloads_total{result}`.
//!
//! Open connections keep the access context they were verified with and the limits
//! their `welcome` announced; the new keys and limits apply to what comes next.

pub mod signal;

use std::sync::Arc;

use serde::Serialize;

use crate::access::Authenticator;
use crate::config::{Fingerprint, ServeConfig};
use crate::state::{AppState, model_defaults, turn_limits};

/// The settings a reload applies to a running gateway. Every other setting that
/// changed is reported under `restart_required` and waits for a restart.
pub const LIVE_SETTINGS: &[&str] = &[
    // Who may call: API keys, anonymous access, token verification.
    "--publisher-keys",
    "--admin-keys",
    "--allow-anonymous",
    "--jwt-hs256-secret",
    "--jwt-public-key-file",
    "--jwt-public-key-file (contents)",
    "--jwt-algorithm",
    "--jwks-file",
    "--jwks-file (contents)",
    "--jwks-url",
    "--jwks-min-refresh",
    "--insecure-jwks-http-for-tests",
    "--jwt-issuer",
    "--jwt-audience",
    "--jwt-leeway",
    "--jwt-org-claim",
    "--jwt-groups-claim",
    "--jwt-roles-claim",
    // What the model is told and may call.
    "--system-prompt",
    "--model-temperature",
    "--model-max-tokens",
    "--tools-file",
    "--tools-file (contents)",
    "--tool-endpoint-origins",
    // Limits on what comes next.
    "--max-text-chars",
    "--max-queued-turns",
    "--turn-deadline",
    "--prompt-documents",
    "--transcript-token-budget",
    "--tool-max-rounds",
    // The file itself (its path is fixed by argv and the environment).
    "--settings-file",
];

/// What a reload that was applied changed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub result: &'static str,
    /// Settings whose new values now apply (flag names; `(contents)` for a file that
    /// changed under the same path). Empty when nothing changed.
    #[schema(example = json!(["--admin-keys", "--max-text-chars"]))]
    pub applied: Vec<String>,
    /// Settings that changed but apply only after a restart.
    #[schema(example = json!(["--backplane"]))]
    pub restart_required: Vec<String>,
}

/// Why a reload was rejected (the running configuration is unchanged).
#[derive(Debug, Clone)]
pub struct Rejected {
    /// One line naming the setting at fault; never a secret's value.
    pub reason: String,
}

/// What triggered a reload, for the log.
#[derive(Debug, Clone)]
pub enum Trigger {
    Signal,
    /// `POST /v1/admin/reload`, by an admin key's name or a token's `org/user`.
    Admin {
        by: String,
    },
}

/// Reload now: read, validate, then apply or keep the running configuration.
/// Concurrent reloads run one after the other.
pub async fn reload(state: &AppState, trigger: Trigger) -> Result<Reloaded, Rejected> {
    let mut applied = state.reloading.begin().await;
    let started = std::time::Instant::now();
    match prepare(state).await {
        Ok(next) => {
            let changed = applied.changed(&next.fingerprint);
            let (live, restart_required): (Vec<String>, Vec<String>) = changed
                .into_iter()
                .partition(|name| LIVE_SETTINGS.contains(&name.as_str()));
            let now_running = next
                .install(state)
                .applied_over(&applied, |name| LIVE_SETTINGS.contains(&name));
            *applied = now_running;
            state
                .metrics
                .config_reloads
                .with_label_values(&["ok"])
                .inc();
            tracing::info!(
                ?trigger,
                elapsed_ms = started.elapsed().as_millis() as u64,
                applied = ?live,
                restart_required = ?restart_required,
                "configuration reloaded"
            );
            if !restart_required.is_empty() {
                tracing::warn!(
                    settings = ?restart_required,
                    "these settings changed but apply only after a restart"
                );
            }
            Ok(Reloaded {
                result: "ok",
                applied: live,
                restart_required,
            })
        }
        Err(reason) => {
            state
                .metrics
                .config_reloads
                .with_label_values(&["rejected"])
                .inc();
            tracing::warn!(?trigger, %reason, "configuration reload rejected; the running configuration stays");
            Err(Rejected { reason })
        }
    }
}

/// A new configuration, read and validated, with every part built and ready to swap.
struct Prepared {
    fingerprint: Fingerprint,
    auth: Authenticator,
    defaults: crate::assistant::settings::ModelDefaults,
    turn_limits: crate::assistant::turns::TurnLimits,
    max_text_chars: usize,
}

impl Prepared {
    /// Swap every part in; the fingerprint of what now runs.
    fn install(self, state: &AppState) -> Fingerprint {
        state.auth.store(Arc::new(self.auth));
        state.model_settings.set_defaults(self.defaults);
        state.turns.set_limits(self.turn_limits);
        state.intake.set_max_text_chars(self.max_text_chars);
        self.fingerprint
    }
}

async fn prepare(state: &AppState) -> Result<Prepared, String> {
    let (config, mut fingerprint) = state.reloading.read()?;
    config.validate().map_err(|e| e.to_string())?;
    add_file_contents(&config, &mut fingerprint);
    let auth = Authenticator::from_config(&config)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let defaults = model_defaults(&config).map_err(|e| format!("{e:#}"))?;
    Ok(Prepared {
        fingerprint,
        auth,
        defaults,
        turn_limits: turn_limits(&config),
        max_text_chars: usize::try_from(config.max_text_chars).unwrap_or(usize::MAX),
    })
}

/// Add the contents of the files the configuration names (a file edited under the
/// same path is a change of its setting). A file that cannot be read adds nothing;
/// building the part that needs it fails and names it.
pub fn add_file_contents(config: &ServeConfig, fingerprint: &mut Fingerprint) {
    let files = [
        ("--jwt-public-key-file", &config.jwt_public_key_file),
        ("--jwks-file", &config.jwks_file),
        ("--tools-file", &config.tools_file),
    ];
    for (flag, path) in files {
        if let Some(contents) = path.as_deref().and_then(|p| std::fs::read(p).ok()) {
            fingerprint.add_file(flag, &contents);
        }
    }
}
