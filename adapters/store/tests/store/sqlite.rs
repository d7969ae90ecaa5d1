//! What only the SQLite store promises: its file keeps everything across a restart,
//! its directory is made for it, in-memory stores are separate, and two stores on one
//! file (two processes' worth) write without failing each other.

use serde_json::json;
use switchboard_store::{
    ConversationStore, SessionChange, SessionQuery, SessionState, SqliteStore, StoreError,
};

use crate::support::{ScratchDir, entry, session};

/// Everything: sessions (with metadata, title, state, preview), transcripts and
/// retention, read back from a store reopened on the same file.
#[tokio::test]
async fn a_reopened_file_keeps_everything() {
    let scratch = ScratchDir::new();
    let path = scratch.file();
    let store = SqliteStore::open(&path).await.unwrap();
    let mut first = session("s1", "org", 1_000);
    first.owner = Some("alice".into());
    first.metadata = json!({"plan": "pro"}).as_object().cloned();
    store.create_session(&first).await.unwrap();
    store
        .create_session(&session("s2", "org", 2_000))
        .await
        .unwrap();
    let batch: Vec<_> = (1..=300)
        .map(|seq| entry(if seq % 3 == 0 { "s2" } else { "s1" }, seq))
        .collect();
    store.write(&batch).await.unwrap();
    let archive = SessionChange {
        title: Some("Kept".into()),
        state: Some(SessionState::Archived),
    };
    store.update_session("s1", &archive).await.unwrap().unwrap();
    store.set_retention("org", Some(12)).await.unwrap();

    let listing = SessionQuery {
        org_id: "org".into(),
        owner: None,
        state: None,
        active_since: None,
        active_before: None,
        cursor: None,
        limit: 10,
    };
    let sessions_before = store.list_sessions(&listing).await.unwrap();
    let s1_before = store.transcript("s1", 0, None, 1000).await.unwrap();
    let s2_before = store.transcript("s2", 0, None, 1000).await.unwrap();
    store.close().await;

    let reopened = SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        reopened.list_sessions(&listing).await.unwrap(),
        sessions_before
    );
    assert_eq!(sessions_before.sessions.len(), 2);
    assert_eq!(
        reopened.transcript("s1", 0, None, 1000).await.unwrap(),
        s1_before
    );
    assert_eq!(
        reopened.transcript("s2", 0, None, 1000).await.unwrap(),
        s2_before
    );
    assert_eq!((s1_before.len(), s2_before.len()), (200, 100));
    assert_eq!(reopened.retention("org").await.unwrap(), Some(12));
    let s1 = reopened.session("s1").await.unwrap().unwrap();
    assert_eq!(s1.title.as_deref(), Some("Kept"));
    assert_eq!(s1.metadata, first.metadata);
}

/// A store that was not closed (the process died) keeps what it committed too: the
/// WAL is read back on open.
#[tokio::test]
async fn a_file_left_open_keeps_what_was_committed() {
    let scratch = ScratchDir::new();
    let path = scratch.file();
    let store = SqliteStore::open(&path).await.unwrap();
    store
        .create_session(&session("s1", "org", 1_000))
        .await
        .unwrap();
    store
        .write(&[entry("s1", 1), entry("s1", 2)])
        .await
        .unwrap();
    // Another store on the file while the first still holds its connections and WAL.
    let second = SqliteStore::open(&path).await.unwrap();
    assert_eq!(second.transcript("s1", 0, None, 10).await.unwrap().len(), 2);
    drop(store);
    assert_eq!(second.session("s1").await.unwrap().unwrap().last_seq, 2);
}

/// `open` makes the file's missing directories, and fails (without panicking) where
/// no file can be.
#[tokio::test]
async fn open_makes_directories_and_fails_cleanly_where_it_cannot() {
    let scratch = ScratchDir::new();
    let nested = scratch
        .file()
        .with_extension("d")
        .join("a/b/conversations.sqlite");
    let store = SqliteStore::open(&nested).await.unwrap();
    store.ping().await.unwrap();
    assert!(nested.is_file());

    // The path is a directory.
    let error = SqliteStore::open(nested.parent().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    // A component of the path is a file.
    let error = SqliteStore::open(&nested.join("below-a-file.sqlite"))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

/// Each in-memory store is its own database.
#[tokio::test]
async fn in_memory_stores_are_separate() {
    let one = SqliteStore::in_memory().await.unwrap();
    let two = SqliteStore::in_memory().await.unwrap();
    assert!(one.create_session(&session("s1", "org", 1)).await.unwrap());
    assert!(two.create_session(&session("s1", "org", 1)).await.unwrap());
    one.write(&[entry("s1", 1)]).await.unwrap();
    assert!(two.transcript("s1", 0, None, 10).await.unwrap().is_empty());
}

/// Two stores on one file, as two processes would hold, writing and sweeping at once:
/// every call succeeds (writers wait for the lock instead of failing) and every entry
/// is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_write_at_once() {
    let scratch = ScratchDir::new();
    let path = scratch.file();
    let stores = [
        SqliteStore::open(&path).await.unwrap(),
        SqliteStore::open(&path).await.unwrap(),
    ];
    for s in 0..4 {
        stores[0]
            .create_session(&session(&format!("s{s}"), "org", 1))
            .await
            .unwrap();
    }
    let mut writers = Vec::new();
    for (w, store) in stores.iter().enumerate() {
        for task in 0..3u64 {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                for round in 0..20u64 {
                    // Both stores write the same entries: idempotence under contention.
                    let base = (task * 20 + round) * 10;
                    let mut batch: Vec<_> = (0..10u64)
                        .map(|i| entry(&format!("s{}", i % 4), base + i + 1))
                        .collect();
                    if w == 1 {
                        batch.reverse();
                    }
                    store.write(&batch).await.unwrap();
                    store.expire(1, 0, 10).await.unwrap();
                }
            }));
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let mut total = 0;
    for s in 0..4 {
        let entries = stores[1]
            .transcript(&format!("s{s}"), 0, None, 1000)
            .await
            .unwrap();
        let mut seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        seqs.dedup();
        assert_eq!(seqs.len(), entries.len(), "no entry twice");
        total += entries.len();
    }
    assert_eq!(
        total, 600,
        "every (session, seq) of 3 tasks × 20 rounds × 10, once"
    );
}
