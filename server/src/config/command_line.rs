//! Reading the command line, the environment and `--settings-file` — at boot and again
//! on every reload, from the same argv: a value on the command line wins over the
//! environment, which wins over the settings file, which wins over the default.
//!
//! The clap command is passed in (the binary's `Cli::command`), so this layer does not
//! depend on the subcommands above it.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap::{ArgMatches, Command, FromArgMatches};
use sha2::{Digest, Sha256};

use super::ServeConfig;
use super::settings_file::{self, SettingsFileError};

/// The subcommand that runs the gateway (also the default with no subcommand).
const SERVE: &str = "serve";

/// Why the command line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CommandLineError {
    #[error(transparent)]
    Clap(#[from] clap::Error),
    #[error(transparent)]
    SettingsFile(#[from] SettingsFileError),
}

/// The parsed command line, with `--settings-file` applied.
pub struct CommandLine {
    pub matches: ArgMatches,
    command: Command,
}

/// What every `serve` setting was set to, as one digest per flag: enough to tell
/// which settings a reload changed, without keeping their values (some are secrets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint(BTreeMap<String, [u8; 32]>);

impl Fingerprint {
    /// The flags (`--name`) whose values differ between `self` and `other`.
    pub fn changed(&self, other: &Fingerprint) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .keys()
            .chain(other.0.keys())
            .filter(|name| self.0.get(*name) != other.0.get(*name))
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// What runs after applying `self` over `running`: `self`'s values for the settings
    /// `live` says were applied, `running`'s for the others (they wait for a restart,
    /// and keep being reported until then).
    pub fn applied_over(&self, running: &Fingerprint, live: impl Fn(&str) -> bool) -> Fingerprint {
        let names = self.0.keys().chain(running.0.keys());
        let mut applied = BTreeMap::new();
        for name in names {
            let source = if live(name) { &self.0 } else { &running.0 };
            if let Some(digest) = source.get(name) {
                applied.insert(name.clone(), *digest);
            }
        }
        Fingerprint(applied)
    }

    /// Record the contents of a file a setting names, under `--flag (contents)`, so
    /// an edited file counts as a change of that setting.
    pub fn add_file(&mut self, flag: &str, contents: &[u8]) {
        self.0.insert(
            format!("{flag} (contents)"),
            Sha256::digest(contents).into(),
        );
    }
}

/// Parse `args` (argv, program name first) with `command`: once as given, then, when
/// the gateway is to run and `--settings-file` names a file, again with the file's
/// settings as defaults.
pub fn parse_command_line(
    command: Command,
    args: &[OsString],
) -> Result<CommandLine, CommandLineError> {
    // Parsing builds a command, after which defaults no longer change it: keep one
    // unbuilt for the second pass.
    let mut built = command.clone();
    let first = built.try_get_matches_from_mut(args)?;
    let settings_path = serve_matches(&first)
        .and_then(|m| m.try_get_one::<PathBuf>("settings_file").ok().flatten())
        .cloned();
    let Some(path) = settings_path else {
        return Ok(CommandLine {
            matches: first,
            command: built,
        });
    };
    let mut command = command;
    for setting in settings_file::read(&path)? {
        command = with_default(command, &setting).map_err(|reason| SettingsFileError {
            path: path.display().to_string(),
            reason,
        })?;
    }
    let matches = command.try_get_matches_from_mut(args)?;
    Ok(CommandLine { matches, command })
}

impl CommandLine {
    /// The gateway's configuration and its fingerprint, when the command runs it.
    pub fn serve(&self) -> Option<Result<(ServeConfig, Fingerprint), clap::Error>> {
        let matches = serve_matches(&self.matches)?;
        let config = match ServeConfig::from_arg_matches(matches) {
            Ok(config) => config,
            Err(e) => return Some(Err(e)),
        };
        let mut digests = BTreeMap::new();
        for arg in self.command.get_arguments() {
            let Some(long) = arg.get_long() else {
                continue;
            };
            let Ok(Some(values)) = matches.try_get_raw(arg.get_id().as_str()) else {
                continue;
            };
            let mut hash = Sha256::new();
            for value in values {
                hash.update(value.as_encoded_bytes());
                hash.update([0u8]);
            }
            digests.insert(format!("--{long}"), hash.finalize().into());
        }
        Some(Ok((config, Fingerprint(digests))))
    }
}

/// The matches that hold `serve`'s flags: the subcommand's, or the top level's when
/// no subcommand was given; `None` for another subcommand.
fn serve_matches(matches: &ArgMatches) -> Option<&ArgMatches> {
    match matches.subcommand() {
        Some((SERVE, sub)) => Some(sub),
        Some(_) => None,
        None => Some(matches),
    }
}

/// `command` with the setting as the default of the flag whose environment variable
/// it names, at the top level and in `serve`.
fn with_default(command: Command, setting: &settings_file::Setting) -> Result<Command, String> {
    let id_of = |c: &Command| {
        c.get_arguments()
            .find(|a| a.get_env() == Some(OsStr::new(&setting.name)))
            .map(|a| (a.get_id().to_string(), a.get_value_delimiter()))
    };
    let Some((top, delimiter)) = id_of(&command) else {
        return Err(format!(
            "line {}: {} is not a setting of switchboard serve",
            setting.line, setting.name
        ));
    };
    // clap splits a list from the environment, but not a default: split it here.
    let values: Vec<String> = match delimiter {
        Some(d) => setting.value.split(d).map(str::to_string).collect(),
        None => vec![setting.value.clone()],
    };
    let mut command = command.mut_arg(top, |a| a.default_values(values.clone()));
    if let Some((sub, _)) = command.find_subcommand(SERVE).and_then(id_of) {
        command = command.mut_subcommand(SERVE, |s| s.mut_arg(sub, |a| a.default_values(values)));
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    #[command(args_conflicts_with_subcommands = true)]
    struct Flags {
        #[command(subcommand)]
        command: Option<Sub>,
        #[command(flatten)]
        serve: ServeConfig,
    }

    #[derive(clap::Subcommand)]
    enum Sub {
        Serve(Box<ServeConfig>),
    }

    fn parse(args: &[&str]) -> Result<(ServeConfig, Fingerprint), String> {
        let args: Vec<OsString> = std::iter::once("switchboard")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let line = parse_command_line(<Flags as clap::CommandFactory>::command(), &args)
            .map_err(|e| e.to_string())?;
        line.serve().expect("serve").map_err(|e| e.to_string())
    }

    fn settings(text: &str) -> (tempfile_path::Guard, String) {
        let guard = tempfile_path::Guard::new(text);
        let path = guard.path().display().to_string();
        (guard, path)
    }

    /// A file removed on drop, without another dependency.
    mod tempfile_path {
        pub struct Guard(std::path::PathBuf);
        impl Guard {
            pub fn new(text: &str) -> Guard {
                let path = std::env::temp_dir()
                    .join(format!("sb-settings-{}.env", uuid::Uuid::new_v4().simple()));
                std::fs::write(&path, text).unwrap();
                Guard(path)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Guard {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn the_settings_file_counts_below_the_command_line() {
        let (_file, path) = settings(
            "SWITCHBOARD_MAX_TEXT_CHARS=123\nSWITCHBOARD_TURN_DEADLINE=7s\nSWITCHBOARD_ADMIN_KEYS=a:sk_aaaaaaaaaaaaaaaa,b:sk_bbbbbbbbbbbbbbbb\nSWITCHBOARD_DEMO_SEED=true\n",
        );
        let (c, _) = parse(&["--settings-file", &path, "--turn-deadline", "9s"]).unwrap();
        assert_eq!(c.max_text_chars, 123);
        assert_eq!(c.turn_deadline, std::time::Duration::from_secs(9));
        assert_eq!(c.admin_keys.len(), 2, "a list splits on commas");
        assert!(c.demo_seed);
        let (c, _) = parse(&["serve", "--settings-file", &path]).unwrap();
        assert_eq!(c.max_text_chars, 123, "serve reads it too");
    }

    #[test]
    fn an_unknown_setting_or_bad_value_fails_naming_it() {
        let (_file, path) = settings("SWITCHBOARD_NO_SUCH_THING=1\n");
        let e = parse(&["--settings-file", &path]).unwrap_err();
        assert!(e.contains("SWITCHBOARD_NO_SUCH_THING"), "{e}");
        let (_file, path) = settings("SWITCHBOARD_MAX_TEXT_CHARS=lots\n");
        let e = parse(&["--settings-file", &path]).unwrap_err();
        assert!(e.contains("max-text-chars"), "{e}");
    }

    #[test]
    fn the_fingerprint_names_what_changed() {
        let (_a, a) = settings("SWITCHBOARD_MAX_TEXT_CHARS=100\n");
        let (_b, b) = settings("SWITCHBOARD_MAX_TEXT_CHARS=200\n");
        let (_, before) = parse(&["--settings-file", &a]).unwrap();
        let (_, same) = parse(&["--settings-file", &a]).unwrap();
        let (_, after) = parse(&["--settings-file", &b]).unwrap();
        assert!(before.changed(&same).is_empty());
        assert_eq!(
            before.changed(&after),
            vec!["--max-text-chars", "--settings-file"]
        );
    }
}
