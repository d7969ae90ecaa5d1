//! What a configuration reload re-reads: the process's own argv with the clap command
//! it booted with (so the environment and `--settings-file` count exactly as at boot),
//! and the fingerprint of the configuration last applied.

use std::ffi::OsString;
use std::sync::OnceLock;

use clap::Command;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use super::command_line::{CommandLineError, Fingerprint, parse_command_line};
use super::serve::ServeConfig;

/// Where the running configuration came from.
struct Source {
    command: fn() -> Command,
    args: Vec<OsString>,
}

/// The reload's source and what it last applied. Without a source (a gateway built in
/// a test, not from a command line) a reload is refused.
#[derive(Default)]
pub struct Reloading {
    source: OnceLock<Source>,
    /// Held for a whole reload, so two never interleave.
    applied: tokio::sync::Mutex<Fingerprint>,
}

impl Reloading {
    /// Remember the command line the gateway booted from and the fingerprint of the
    /// configuration it runs. Only the first call counts.
    pub fn install(&self, command: fn() -> Command, args: Vec<OsString>, applied: Fingerprint) {
        if self.source.set(Source { command, args }).is_ok()
            && let Ok(mut fingerprint) = self.applied.try_lock()
        {
            *fingerprint = applied;
        }
    }

    /// Wait for any other reload to finish; the guard holds the applied fingerprint.
    pub async fn begin(&self) -> tokio::sync::MutexGuard<'_, Fingerprint> {
        self.applied.lock().await
    }

    /// Read the configuration again, as at boot. The error is one line a person can
    /// act on, without the value of any secret setting.
    pub fn read(&self) -> Result<(ServeConfig, Fingerprint), String> {
        let Some(source) = self.source.get() else {
            return Err(
                "this gateway was not started from a command line; there is nothing to re-read"
                    .into(),
            );
        };
        let command = (source.command)();
        let line = parse_command_line(command.clone(), &source.args).map_err(|e| match e {
            CommandLineError::Clap(e) => clap_reason(&command, &e),
            CommandLineError::SettingsFile(e) => e.to_string(),
        })?;
        match line.serve() {
            Some(Ok(parsed)) => Ok(parsed),
            Some(Err(e)) => Err(clap_reason(&command, &e)),
            None => Err("the gateway's command line does not run the gateway".into()),
        }
    }
}

/// clap's first line, unless it would repeat the value of a secret setting.
fn clap_reason(command: &Command, error: &clap::Error) -> String {
    let arg = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => Some(arg.clone()),
        _ => None,
    };
    let secret = arg.as_deref().is_some_and(|arg| {
        let long = arg.trim_start_matches("--").split([' ', '=']).next();
        command
            .get_arguments()
            .any(|a| a.get_long() == long && a.is_hide_env_values_set())
    });
    let shows_value = matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    );
    if secret && shows_value {
        // The parser's own reason, unless it repeats the value (or its secret part).
        let value = match error.get(ContextKind::InvalidValue) {
            Some(ContextValue::String(value)) => value.clone(),
            _ => String::new(),
        };
        let secret_part = value.split_once(':').map_or(value.as_str(), |(_, s)| s);
        let cause = std::error::Error::source(error)
            .map(|e| e.to_string())
            .filter(|cause| secret_part.is_empty() || !cause.contains(secret_part));
        return format!(
            "invalid value for {}: {}",
            arg.unwrap_or_default(),
            cause.unwrap_or_else(|| "see `switchboard serve --help`".into())
        );
    }
    let text = error.to_string();
    text.lines()
        .next()
        .unwrap_or("invalid command line")
        .trim_start_matches("error: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        serve: ServeConfig,
    }

    fn command() -> Command {
        <Flags as clap::CommandFactory>::command()
    }

    fn reading(args: &[&str]) -> Reloading {
        let reloading = Reloading::default();
        let args = std::iter::once("switchboard")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        reloading.install(command, args, Fingerprint::default());
        reloading
    }

    #[test]
    fn a_bad_secret_is_named_but_never_shown() {
        let e = reading(&["--admin-keys", "ops:short-hunter2"])
            .read()
            .unwrap_err();
        assert!(e.contains("--admin-keys"), "{e}");
        assert!(e.contains("shorter than 16 characters"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = reading(&["--max-text-chars", "lots"]).read().unwrap_err();
        assert!(e.contains("lots") && e.contains("--max-text-chars"), "{e}");
    }

    #[test]
    fn without_a_source_there_is_nothing_to_read() {
        let e = Reloading::default().read().unwrap_err();
        assert!(e.contains("not started from a command line"), "{e}");
        let (config, _) = reading(&["--max-text-chars", "9"]).read().unwrap();
        assert_eq!(config.max_text_chars, 9);
    }
}
