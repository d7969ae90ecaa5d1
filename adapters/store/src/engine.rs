//! What both SQL engines run the same way: a pool, the engine's reading of its errors,
//! and (in the modules that add to it) the methods whose statements and binds do not
//! differ between SQLite and PostgreSQL.

use sqlx::{Database, Pool};

use crate::StoreError;

/// A pool of `DB` and how the engine turns its errors into [`StoreError`]s.
pub(crate) struct Engine<'a, DB: Database> {
    pub(crate) pool: &'a Pool<DB>,
    pub(crate) error: fn(sqlx::Error) -> StoreError,
}

/// `impl Engine` with the methods given, for any database whose driver binds and reads
/// the column types the store uses (both engines' do). The bounds are written here
/// once for every module that adds shared methods.
macro_rules! shared_methods {
    ($($method:item)*) => {
        impl<DB> $crate::engine::Engine<'_, DB>
        where
            DB: ::sqlx::Database,
            for<'c> &'c ::sqlx::Pool<DB>: ::sqlx::Executor<'c, Database = DB>,
            <DB as ::sqlx::Database>::Arguments: ::sqlx::IntoArguments<DB>,
            for<'n> &'n str: ::sqlx::ColumnIndex<DB::Row>,
            for<'q> &'q str: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> Option<&'q str>: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> i64: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> bool: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'r> String: ::sqlx::Decode<'r, DB> + ::sqlx::Type<DB>,
            for<'r> Option<String>: ::sqlx::Decode<'r, DB> + ::sqlx::Type<DB>,
            for<'r> i64: ::sqlx::Decode<'r, DB> + ::sqlx::Type<DB>,
            for<'r> Option<i64>: ::sqlx::Decode<'r, DB> + ::sqlx::Type<DB>,
            for<'r> bool: ::sqlx::Decode<'r, DB> + ::sqlx::Type<DB>,
        {
            $($method)*
        }
    };
}
pub(crate) use shared_methods;
