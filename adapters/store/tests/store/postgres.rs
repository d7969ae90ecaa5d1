//! What only the PostgreSQL store promises: connecting fails fast and clearly (without
//! the password), a restarted server is used again, and replicas writing the same
//! sessions at once neither deadlock nor store an entry twice.

use std::time::{Duration, Instant};

use switchboard_store::{ConversationStore, PostgresStore, StoreError};
use switchboard_testkit::{PostgresServer, eventually, free_port};

use crate::support::{entry, session};

const PASSWORD: &str = "hunter2-not-for-logs";

/// Nothing listens at the address: `Unavailable`, soon, naming where it tried and not
/// the password.
#[tokio::test]
async fn nothing_listening_fails_fast_without_the_password() {
    let port = free_port();
    let url = format!("postgres://app:{PASSWORD}@127.0.0.1:{port}/chat");
    let started = Instant::now();
    let error = PostgresStore::connect(&url, 2).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    let StoreError::Unavailable(message) = &error else {
        panic!("{error:?}");
    };
    assert!(
        message.contains(&format!("127.0.0.1:{port}/chat")),
        "{message}"
    );
    assert!(
        !format!("{error} {error:?}").contains(PASSWORD),
        "{error:?}"
    );
}

/// A database that does not exist is refused (`Rejected`: retrying will not help), and
/// the message says so without the password.
#[tokio::test]
async fn a_missing_database_is_rejected_without_the_password() {
    let server = PostgresServer::start();
    let url = format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{}/no_such_db",
        server.port()
    );
    let error = PostgresStore::connect(&url, 2).await.unwrap_err();
    let StoreError::Rejected(message) = &error else {
        panic!("{error:?}");
    };
    assert!(message.contains("no_such_db"), "{message}");
    assert!(
        !format!("{error} {error:?}").contains(PASSWORD),
        "{error:?}"
    );
}

/// A server that accepts the connection but never answers (frozen): `Unavailable`
/// within the connect timeout, not a hang.
#[tokio::test]
async fn a_server_that_never_answers_fails_within_the_timeout() {
    let server = PostgresServer::start();
    server.freeze();
    let started = Instant::now();
    let error = PostgresStore::connect(&server.url(), 2).await.unwrap_err();
    let took = started.elapsed();
    server.thaw();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

/// While the server is down, calls fail soon as `Unavailable` (transient); once it is back
/// the same store works again, with everything committed before the outage.
#[tokio::test]
async fn the_store_works_again_after_the_server_restarts() {
    let mut server = PostgresServer::start();
    let store = PostgresStore::connect(&server.url(), 2).await.unwrap();
    store
        .create_session(&session("s1", "org", 1))
        .await
        .unwrap();
    store
        .write(&[entry("s1", 1), entry("s1", 2)])
        .await
        .unwrap();

    server.stop();
    let started = Instant::now();
    let error = store.write(&[entry("s1", 3)]).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let error = store.session("s1").await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    server.restart();
    eventually(Duration::from_secs(15), "the store answers again", || {
        store.ping()
    })
    .await;
    store.write(&[entry("s1", 3)]).await.unwrap();
    let seqs: Vec<u64> = store
        .transcript("s1", 0, None, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
}

/// Two replicas (stores on one database) write the same entries of the same sessions
/// in opposite orders while a third sweeps and another erases: no call fails (no
/// deadlock), every entry is stored once, and each session ends at its greatest seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_writing_the_same_sessions_at_once_neither_deadlock_nor_duplicate() {
    let server = PostgresServer::start();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(PostgresStore::connect(&server.url(), 4).await.unwrap());
    }
    for s in 0..6 {
        replicas[0]
            .create_session(&session(&format!("s{s}"), "org", 1_790_000_000_000))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for (r, replica) in replicas.iter().enumerate() {
        for task in 0..3u64 {
            let replica = replica.clone();
            tasks.push(tokio::spawn(async move {
                for round in 0..15u64 {
                    let base = (task * 15 + round) * 12;
                    let mut batch: Vec<_> = (0..12u64)
                        .map(|i| entry(&format!("s{}", i % 6), base + i + 1))
                        .collect();
                    if r == 1 {
                        batch.reverse();
                    }
                    replica.write(&batch).await.unwrap();
                    // Sessions are active: sweeping finds nothing, but locks as it looks.
                    replica.expire(1_790_000_000_000, 30, 10).await.unwrap();
                    replica.erase_user("org", "nobody").await.unwrap();
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut total = 0;
    for s in 0..6u64 {
        let id = format!("s{s}");
        let entries = replicas[1].transcript(&id, 0, None, 1000).await.unwrap();
        total += entries.len();
        let newest = entries.iter().map(|e| e.seq).max().unwrap();
        assert_eq!(
            replicas[0].session(&id).await.unwrap().unwrap().last_seq,
            newest
        );
    }
    assert_eq!(total, 3 * 15 * 12, "every (session, seq) once");
}
