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
    (
        4,
        "transcript rowid",
        include_str!("../migrations/sqlite/0004_transcript_rowid.sql"),
    ),
    (
        5,
        "assistants",
        include_str!("../migrations/sqlite/0005_assistants.sql"),
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
    (
        4,
        "assistants",
        include_str!("../migrations/postgres/0004_assistants.sql"),
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

#[cfg(test)]
mod tests {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    use super::*;
    use crate::{ConversationStore, SqliteStore, TranscriptEntry, TranscriptWrite};

    fn write(seq: u64, text: &str) -> TranscriptWrite {
        TranscriptWrite {
            session_id: "s1".into(),
            entry: TranscriptEntry {
                seq,
                ts: 1_000 + seq,
                kind: "message".into(),
                event: format!("{{\"text\":\"{text}\"}}"),
            },
            preview: None,
            title_hint: None,
        }
    }

    /// A file written by the schema before the transcript became a rowid table keeps
    /// its entries through the upgrade, and each `(session, seq)` is still stored once.
    #[tokio::test]
    async fn an_sqlite_file_of_the_clustered_transcript_is_upgraded_with_its_entries() {
        let dir = switchboard_testkit::temp_path("migrate", "d");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("conversations.sqlite");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let old = SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .unwrap();
        migrator(&SQLITE[..3]).run(&old).await.unwrap();
        sqlx::query(
            "INSERT INTO sessions (session_id, org_id, state, created_at, last_activity_at, last_seq) \
             VALUES ('s1', 'org', 'active', 1000, 1002, 2)",
        )
        .execute(&old)
        .await
        .unwrap();
        for seq in [2_i64, 1] {
            sqlx::query(
                "INSERT INTO transcript (session_id, seq, ts, kind, event) VALUES ('s1', ?, ?, 'message', ?)",
            )
            .bind(seq)
            .bind(1_000 + seq)
            .bind(format!("{{\"text\":\"kept {seq}\"}}"))
            .execute(&old)
            .await
            .unwrap();
        }
        old.close().await;

        let store = SqliteStore::open(&path).await.unwrap();
        store
            .write(&[write(2, "a second copy"), write(3, "new")])
            .await
            .unwrap();
        let entries = store.transcript("s1", 0, None, 10).await.unwrap();
        let texts: Vec<&str> = entries.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(
            texts,
            [
                "{\"text\":\"kept 1\"}",
                "{\"text\":\"kept 2\"}",
                "{\"text\":\"new\"}"
            ]
        );
        assert_eq!(store.session("s1").await.unwrap().unwrap().last_seq, 3);
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
