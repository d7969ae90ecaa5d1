//! The store's one error type.

use thiserror::Error;

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database cannot be reached or did not answer (retrying later may succeed).
    #[error("conversation store unavailable: {0}")]
    Unavailable(String),
    /// The database holds data this build cannot read.
    #[error("conversation store returned invalid data: {0}")]
    InvalidData(String),
    /// The database refused the operation (a constraint, a permission, a migration).
    #[error("conversation store rejected the operation: {0}")]
    Rejected(String),
}

impl StoreError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
