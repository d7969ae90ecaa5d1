//! Why a process did not start.

/// A process that could not be started, or that did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The binary is nowhere it was looked for.
    #[error("{name} was not found (looked at {looked}): {hint}")]
    Missing {
        name: &'static str,
        /// The places looked at, in order.
        looked: String,
        /// How to get it.
        hint: String,
    },
    /// Spawning the process, or preparing its files, failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The process exited, or did not become ready in time; `detail` ends with its log.
    #[error("{name} did not start: {detail}")]
    NotReady { name: String, detail: String },
}

impl StartError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> StartError {
        StartError::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn io_at(what: &str, path: &std::path::Path, source: std::io::Error) -> StartError {
        StartError::io(format!("{what} {}", path.display()), source)
    }
}
