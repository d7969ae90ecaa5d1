//! The schema's migrations, compiled in from `migrations/<engine>/` and applied on
//! open. Built by hand instead of with `sqlx::migrate!`, which needs sqlx's `macros`
//! feature (a second build of the drivers for the proc macro); the table they are
//! recorded in (`_sqlx_migrations`) and their checksums are the same.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// `(version, description, SQL)` of each migration, oldest first.
type Files = [(i64, &'static str, &'static str)];

const SQLITE: &Files = &[
    (
        1,
        "conversations",
        include_str!("../migrations/sqlite/0001_conversations.sql"),
    ),
    (
        2,
        "webhooks",
        include_str!("../migrations/sqlite/0002_webhooks.sql"),
    ),
    (
        3,
        "handoff",
        include_str!("../migrations/sqlite/0003_handoff.sql"),
    ),
];

const POSTGRES: &Files = &[
    (
        1,
        "conversations",
        include_str!("../migrations/postgres/0001_conversations.sql"),
    ),
    (
        2,
        "webhooks",
        include_str!("../migrations/postgres/0002_webhooks.sql"),
    ),
    (
        3,
        "handoff",
        include_str!("../migrations/postgres/0003_handoff.sql"),
    ),
];

pub(crate) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

pub(crate) fn postgres() -> Migrator {
    migrator(POSTGRES)
}

fn migrator(files: &Files) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}
