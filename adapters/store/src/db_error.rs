//! sqlx's errors as [`StoreError`]s: whether a retry may help decides the variant.

use sqlx::error::DatabaseError;

use crate::StoreError;

/// Which database errors are transient (busy, shutting down, out of connections): each
/// engine names them by its own codes.
pub(crate) type IsTransient = fn(&dyn DatabaseError) -> bool;

/// `error` as a [`StoreError`]: the database unreachable or busy → `Unavailable`,
/// unreadable data → `InvalidData`, anything the database refused → `Rejected`. sqlx's
/// messages name neither the connection URL nor its password.
pub(crate) fn store_error(error: sqlx::Error, is_transient: IsTransient) -> StoreError {
    use sqlx::Error;
    match error {
        Error::Database(db) if is_transient(db.as_ref()) => StoreError::Unavailable(db.to_string()),
        Error::Database(db) => StoreError::Rejected(db.to_string()),
        Error::Io(_)
        | Error::Tls(_)
        | Error::Protocol(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed
        | Error::BeginFailed => StoreError::Unavailable(error.to_string()),
        Error::TypeNotFound { .. }
        | Error::ColumnIndexOutOfBounds { .. }
        | Error::ColumnNotFound(_)
        | Error::ColumnDecode { .. }
        | Error::Decode(_)
        | Error::RowNotFound => StoreError::InvalidData(error.to_string()),
        Error::Migrate(migrate) => StoreError::Rejected(format!("migration: {migrate}")),
        other => StoreError::Rejected(other.to_string()),
    }
}
