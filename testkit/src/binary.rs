//! Where the binaries the kit runs are.

use std::path::PathBuf;

use crate::StartError;

/// Where a binary is: `$<env>` if set, else the fixed path its Debian package installs,
/// else the first `name` on `PATH`.
pub(crate) fn find_binary(
    name: &'static str,
    env: &str,
    fixed: &str,
    package: &str,
) -> Result<PathBuf, StartError> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    let fixed_path = PathBuf::from(fixed);
    if fixed_path.is_file() {
        return Ok(fixed_path);
    }
    on_path(name).ok_or_else(|| StartError::Missing {
        name,
        looked: format!("${env}, {fixed} and $PATH"),
        hint: format!(
            "these tests run a real {name}: run ./scripts/test, which installs it \
             (apt-get install {package})"
        ),
    })
}

/// `name` in a directory of `PATH`.
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_says_how_to_get_it() {
        let missing = find_binary(
            "no-such-server",
            "SWITCHBOARD_TESTKIT_NO_SUCH_VARIABLE",
            "/nonexistent/no-such-server",
            "no-such-package",
        )
        .map(|found| found.display().to_string());
        let Err(error) = missing else {
            panic!("found {missing:?}");
        };
        let text = error.to_string();
        assert!(
            text.contains("no-such-server was not found")
                && text.contains("./scripts/test")
                && text.contains("apt-get install no-such-package"),
            "{text}"
        );
    }
}
