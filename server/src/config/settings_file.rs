//! `--settings-file`: `SWITCHBOARD_NAME=value` lines, read at boot and again on every
//! reload (SIGHUP, `POST /v1/admin/reload`). A value there counts below the same
//! setting on the command line or in the process environment, and above the built-in
//! default — so a mounted file (a Kubernetes ConfigMap or Secret) can change settings
//! of a running gateway, which its environment never can.
//!
//! Errors name the line and the setting, never the value: values may be secrets.

use std::path::Path;

/// The largest settings file read, in bytes.
pub const MAX_SETTINGS_FILE_BYTES: u64 = 1024 * 1024;

/// The setting that names the file itself; it cannot appear inside it.
pub const SETTINGS_FILE_ENV: &str = "SWITCHBOARD_SETTINGS_FILE";

/// A settings file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--settings-file ({SETTINGS_FILE_ENV}) {path}: {reason}")]
pub struct SettingsFileError {
    pub path: String,
    pub reason: String,
}

/// One `NAME=value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// Read and parse the file at `path`.
pub fn read(path: &Path) -> Result<Vec<Setting>, SettingsFileError> {
    let fail = |reason: String| SettingsFileError {
        path: path.display().to_string(),
        reason,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| fail(format!("cannot read it: {e}")))?
        .len();
    if size > MAX_SETTINGS_FILE_BYTES {
        return Err(fail(format!(
            "is {size} bytes, more than the {MAX_SETTINGS_FILE_BYTES} allowed"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    parse(&text).map_err(fail)
}

/// Parse `NAME=value` lines; blank lines and lines starting with `#` are skipped. A
/// value may be wrapped in one pair of double or single quotes, taken as is.
pub fn parse(text: &str) -> Result<Vec<Setting>, String> {
    let mut settings: Vec<Setting> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((name, value)) = trimmed.split_once('=') else {
            return Err(format!("line {line} is not NAME=value"));
        };
        let name = name.trim().trim_start_matches("export ").trim();
        if !name.starts_with("SWITCHBOARD_")
            || !name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!(
                "line {line}: '{}' is not a setting: names are SWITCHBOARD_… environment variables",
                name.chars().take(64).collect::<String>()
            ));
        }
        if name == SETTINGS_FILE_ENV {
            return Err(format!(
                "line {line}: {SETTINGS_FILE_ENV} cannot name another file"
            ));
        }
        if let Some(earlier) = settings.iter().find(|s| s.name == name) {
            return Err(format!(
                "line {line}: {name} is already set on line {}",
                earlier.line
            ));
        }
        settings.push(Setting {
            name: name.to_string(),
            value: unquote(value.trim()).to_string(),
            line,
        });
    }
    Ok(settings)
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_and_quotes() {
        let parsed = parse(
            "# keys\n\nSWITCHBOARD_ADMIN_KEYS=ops:sk_0123456789abcdef\nexport SWITCHBOARD_SYSTEM_PROMPT=\"Be brief = kind\"\n",
        )
        .unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].name, "SWITCHBOARD_ADMIN_KEYS");
        assert_eq!(parsed[0].value, "ops:sk_0123456789abcdef");
        assert_eq!(parsed[1].value, "Be brief = kind");
        assert_eq!(parsed[1].line, 4);
    }

    #[test]
    fn errors_name_the_line_never_the_value() {
        let e = parse("SWITCHBOARD_A=1\nhunter2secret\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse("HOME=/root").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        let e = parse("SWITCHBOARD_A=1\nSWITCHBOARD_A=2").unwrap_err();
        assert!(e.contains("already set on line 1"), "{e}");
        let e = parse("SWITCHBOARD_SETTINGS_FILE=/x").unwrap_err();
        assert!(e.contains("another file"), "{e}");
    }
}
