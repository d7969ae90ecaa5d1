//! Write throughput of the conversation stores: `entries` transcript entries (about
//! 300 bytes of event each, as a message) over `sessions` sessions, written in batches
//! of `batch` as the gateway does, one batch at a time. Prints entries per second for
//! SQLite on a file, SQLite in memory, and PostgreSQL (a server of the test kit, so
//! `./scripts/test` must have installed PostgreSQL).
//!
//! ```text
//! cargo run --release -p switchboard-store --example store_bench -- [entries] [batch] [sessions]
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)] // a measuring tool: fail loudly

use std::time::Instant;

use serde_json::json;
use switchboard_store::{
    ConversationStore, NewSession, PostgresStore, SqliteStore, TranscriptEntry, TranscriptWrite,
};
use switchboard_testkit::{PostgresServer, temp_path};

#[tokio::main]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().unwrap());
    let entries = args.next().unwrap_or(30_000);
    let batch = args.next().unwrap_or(200);
    let sessions = args.next().unwrap_or(100);
    println!("{entries} entries, batches of {batch}, over {sessions} sessions");

    let dir = temp_path("store-bench", "d");
    let file = SqliteStore::open(&dir.join("bench.sqlite")).await.unwrap();
    measure("sqlite file", &file, entries, batch, sessions).await;
    file.close().await;
    let _ = std::fs::remove_dir_all(&dir);

    let memory = SqliteStore::in_memory().await.unwrap();
    measure("sqlite memory", &memory, entries, batch, sessions).await;

    let server = PostgresServer::start();
    let postgres = PostgresStore::connect(&server.url(), 4).await.unwrap();
    measure("postgres", &postgres, entries, batch, sessions).await;
}

async fn measure(
    name: &str,
    store: &dyn ConversationStore,
    entries: usize,
    batch: usize,
    sessions: usize,
) {
    let now = 1_790_000_000_000u64;
    for s in 0..sessions {
        let session = NewSession {
            session_id: format!("s{s:04}"),
            org_id: "org".into(),
            owner: Some(format!("user{}", s % 10)),
            key_sha256: None,
            created_at: now,
            metadata: None,
            assistant: None,
        };
        store.create_session(&session).await.unwrap();
    }
    let writes: Vec<TranscriptWrite> = (0..entries)
        .map(|i| {
            let seq = 1_800_000_000_000_000 + i as u64;
            let text = format!("message {i} {}", "lorem ipsum ".repeat(20));
            TranscriptWrite {
                session_id: format!("s{:04}", i % sessions),
                entry: TranscriptEntry {
                    seq,
                    ts: now + i as u64,
                    kind: "message".into(),
                    event:
                        json!({"type": "message", "seq": seq, "role": "assistant", "text": text})
                            .to_string(),
                },
                preview: Some(text.chars().take(80).collect()),
                title_hint: (i < sessions).then(|| format!("question {i}")),
            }
        })
        .collect();
    let started = Instant::now();
    for chunk in writes.chunks(batch) {
        store.write(chunk).await.unwrap();
    }
    let took = started.elapsed();
    println!(
        "{name:>14}: {:>8.0} entries/s ({:.1} ms per batch of {batch})",
        entries as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / writes.chunks(batch).len() as f64,
    );
}
