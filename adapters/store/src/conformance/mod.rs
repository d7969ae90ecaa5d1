//! The conformance suite: one function per promise of the [`ConversationStore`]
//! contract, run by every store (SQLite on a file and in memory, PostgreSQL, memory).
//!
//! # Usage
//!
//! This module exists with the crate's `conformance` feature, which turns on for this
//! crate's own tests (`tests/store/conformance.rs`). A test module implements
//! [`StoreFactory`] and expands [`conformance_tests!`](crate::conformance_tests):
//!
//! ```ignore
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use switchboard_store::conformance::StoreFactory;
//! use switchboard_store::{ConversationStore, MemoryStore};
//!
//! struct Memory;
//!
//! #[async_trait]
//! impl StoreFactory for Memory {
//!     async fn make(&self) -> Arc<dyn ConversationStore> {
//!         Arc::new(MemoryStore::new())
//!     }
//! }
//!
//! switchboard_store::conformance_tests!(Memory);
//! ```
//!
//! The macro expands to one `#[tokio::test]` per promise (multi-threaded runtime, two
//! workers), each under [`TEST_TIMEOUT`]. The calling crate needs `tokio` (with
//! `macros` and `rt-multi-thread`) as a dev-dependency.
//!
//! # What a factory must provide
//!
//! Every [`StoreFactory::make`] call returns an **empty** store of its own: the tests
//! count sessions and expire whatever is idle.
//!
//! This is test-support code compiled into the library so tests can call it; it panics
//! on any violation, hence the `unwrap`s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod assistants;
mod handoff;
mod lifecycle;
mod limits;
mod listing;
mod sessions;
mod transcript;
mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

pub use assistants::*;
pub use handoff::*;
pub use lifecycle::*;
pub use limits::*;
pub use listing::*;
pub use sessions::*;
pub use transcript::*;
pub use webhooks::*;

use crate::{
    ConversationStore, NewSession, SessionQuery, SessionRow, TranscriptEntry, TranscriptWrite,
};

/// How long one conformance test may run before it fails as hung.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Makes stores for the conformance suite.
#[async_trait]
pub trait StoreFactory: Send + Sync {
    /// A fresh, empty store, sharing nothing with any other this factory made. Panics
    /// if it cannot (this is test support).
    async fn make(&self) -> Arc<dyn ConversationStore>;
}

/// Runs one conformance test under [`TEST_TIMEOUT`], failing with the test's name if it
/// hangs. The [`conformance_tests!`](crate::conformance_tests) macro wraps every test in it.
pub async fn run<F: Future<Output = ()>>(name: &str, test: F) {
    if tokio::time::timeout(TEST_TIMEOUT, test).await.is_err() {
        panic!("conformance test `{name}` did not finish within {TEST_TIMEOUT:?}");
    }
}

/// Expands to one `#[tokio::test]` per conformance promise, each calling the function
/// of [`conformance`](crate::conformance) with the same name on a value of `$factory`
/// (an expression evaluated once per test, whose type implements
/// [`StoreFactory`](crate::conformance::StoreFactory)), under
/// [`TEST_TIMEOUT`](crate::conformance::TEST_TIMEOUT).
#[macro_export]
macro_rules! conformance_tests {
    (@each ($factory:expr) $($name:ident)*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let factory = $factory;
                $crate::conformance::run(
                    ::std::stringify!($name),
                    $crate::conformance::$name(&factory),
                )
                .await;
            }
        )*
    };
    ($factory:expr $(,)?) => {
        $crate::conformance_tests!(@each ($factory)
            ping_answers
            create_twice_is_refused
            session_round_trips
            update_changes_title_and_state_only
            delete_removes_the_session_and_its_transcript
            write_stores_entries_as_given
            write_is_idempotent_per_session_and_seq
            write_skips_unknown_sessions
            activity_and_seq_move_forward_never_back
            preview_follows_the_newest_message
            title_hint_only_names_untitled_sessions
            a_new_message_makes_an_archived_session_active
            transcript_pages_with_after_before_and_limit
            list_orders_by_activity_then_id
            list_filters_by_owner_state_and_time
            list_pages_without_gap_or_duplicate
            list_limit_is_clamped
            list_never_shows_another_orgs_sessions
            erase_user_removes_only_that_user_in_that_org
            retention_is_set_changed_and_cleared
            expire_honours_org_retention_and_the_default
            expire_is_bounded_and_oldest_first
            values_past_i64_are_errors_not_panics
            values_near_i64_max_round_trip
            handoff_changes_by_compare_and_set
            inbox_lists_waiting_and_held_sessions_oldest_first
            handoff_settings_are_set_changed_and_cleared
            webhooks_round_trip_per_org
            webhooks_are_capped_per_org
            racing_registrations_respect_the_cap
            deliveries_are_updated_listed_newest_first_and_bounded
            delivery_pages_are_clamped
            deliveries_go_with_their_endpoint
            webhook_values_past_i64_are_errors
            assistants_round_trip_per_org
            assistants_are_capped_per_org_under_races
        );
    };
}

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// A day in milliseconds.
const DAY: u64 = 86_400_000;

/// A `seq` as the Redis backplane makes them (milliseconds × 1000 + a counter).
const SEQ_BASE: u64 = 1_800_000_000_000_000;

/// A time (ms) well after the epoch, so "days ago" stays positive.
const NOW: u64 = 1_780_000_000_000;

/// A session of `org` owned by `owner` (anonymous when `None`), created at `at`.
fn new_session(id: &str, org: &str, owner: Option<&str>, at: u64) -> NewSession {
    NewSession {
        session_id: id.into(),
        org_id: org.into(),
        owner: owner.map(Into::into),
        key_sha256: None,
        created_at: at,
        metadata: None,
        assistant: None,
    }
}

/// Creates the session, which must be new.
async fn create(store: &dyn ConversationStore, session: &NewSession) {
    assert!(
        store.create_session(session).await.unwrap(),
        "{} is new",
        session.session_id
    );
}

/// A non-message event (no preview, no title hint).
fn event(session: &str, seq: u64, ts: u64) -> TranscriptWrite {
    TranscriptWrite {
        session_id: session.into(),
        entry: TranscriptEntry {
            seq,
            ts,
            kind: "turn.end".into(),
            event: json!({"type": "turn.end", "seq": seq, "ts": ts}).to_string(),
        },
        preview: None,
        title_hint: None,
    }
}

/// A message event with its preview, and a title hint when it is a user's.
fn message(session: &str, seq: u64, ts: u64, text: &str, hint: Option<&str>) -> TranscriptWrite {
    TranscriptWrite {
        session_id: session.into(),
        entry: TranscriptEntry {
            seq,
            ts,
            kind: "message".into(),
            event: json!({"type": "message", "seq": seq, "ts": ts, "text": text}).to_string(),
        },
        preview: Some(text.into()),
        title_hint: hint.map(Into::into),
    }
}

/// The session, which must exist.
async fn row(store: &dyn ConversationStore, id: &str) -> SessionRow {
    store
        .session(id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("session {id} exists"))
}

/// Every entry of a session.
async fn all_entries(store: &dyn ConversationStore, id: &str) -> Vec<TranscriptEntry> {
    store.transcript(id, 0, None, usize::MAX).await.unwrap()
}

/// The seqs of `entries`.
fn seqs(entries: &[TranscriptEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

/// A query of `org` with no filter.
fn query(org: &str, limit: usize) -> SessionQuery {
    SessionQuery {
        org_id: org.into(),
        owner: None,
        state: None,
        active_since: None,
        active_before: None,
        cursor: None,
        limit,
    }
}

/// The ids of `rows`.
fn ids(rows: &[SessionRow]) -> Vec<String> {
    rows.iter().map(|r| r.session_id.clone()).collect()
}

/// Every session `query` lists, page after page (following `next`), checking that no
/// page is larger than asked and that every page but the last sets `next`.
async fn all_pages(store: &dyn ConversationStore, mut query: SessionQuery) -> Vec<SessionRow> {
    let mut rows = Vec::new();
    for _ in 0..10_000 {
        let page = store.list_sessions(&query).await.unwrap();
        assert!(page.sessions.len() <= query.limit.clamp(1, crate::MAX_PAGE));
        rows.extend(page.sessions);
        match page.next {
            Some(cursor) => query.cursor = Some(cursor),
            None => return rows,
        }
    }
    panic!("listing never ended");
}

/// Metadata with nesting, unicode and every JSON kind.
fn rich_metadata() -> Map<String, Value> {
    let Value::Object(map) = json!({
        "plan": "pro",
        "seats": 12,
        "ratio": 0.5,
        "beta": true,
        "none": null,
        "tags": ["a", "ü", "中文"],
        "nested": {"deep": {"quote": "say \"hi\"\n"}},
    }) else {
        unreachable!("an object literal")
    };
    map
}
