//! Fresh paths for data directories, logs and files tests write, and reading a log's
//! tail.
//!
//! Everything goes under `switchboard-tests/` in the system's temporary directory. A
//! handle that created a file or directory removes it when it drops after a passing
//! test, and keeps it (printing where it is) after a failing one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The directory every path of [`temp_path`] is in (created on first use).
pub fn root() -> PathBuf {
    std::env::temp_dir().join("switchboard-tests")
}

/// A fresh path `<root>/<stem>-<pid>-<n>.<ext>`, unique within this machine's test runs
/// (the process id) and within this process (a counter). Nothing is created at the path
/// itself; its directory exists.
///
/// Panics when the directory cannot be created.
pub fn temp_path(stem: &str, ext: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = root();
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("create the test directory {}: {e}", dir.display()));
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{stem}-{}-{n}.{ext}", std::process::id()))
}

/// The last `lines` lines of the file at `path` (empty when it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
