//! Transcripts: what `write` stores and changes on its sessions, what `transcript`
//! reads back.

use super::*;
use crate::{MAX_TRANSCRIPT_PAGE, SessionChange, SessionState};

/// Entries read back exactly as written (seq, ts, kind, the event text byte for
/// byte), oldest first, across batches and sessions.
pub async fn write_stores_entries_as_given(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    create(&*store, &new_session("s1", "org", None, NOW)).await;
    create(&*store, &new_session("s2", "org", None, NOW)).await;
    let mut odd = message("s1", SEQ_BASE + 3, NOW + 3, "héllo \"you\"\n", None);
    odd.entry.event = "{ \"type\": \"message\",  \"text\": \"spacing kept\" }".into();
    // Written out of order, across two batches and two sessions.
    store
        .write(&[
            event("s1", SEQ_BASE + 5, NOW + 5),
            odd.clone(),
            event("s2", 7, NOW),
        ])
        .await
        .unwrap();
    store
        .write(&[event("s1", SEQ_BASE + 1, NOW + 1)])
        .await
        .unwrap();
    store.write(&[]).await.unwrap();

    let s1 = all_entries(&*store, "s1").await;
    assert_eq!(seqs(&s1), vec![SEQ_BASE + 1, SEQ_BASE + 3, SEQ_BASE + 5]);
    assert_eq!(s1[1], odd.entry);
    assert_eq!(s1[0], event("s1", SEQ_BASE + 1, NOW + 1).entry);
    assert_eq!(
        all_entries(&*store, "s2").await,
        vec![event("s2", 7, NOW).entry]
    );
}

/// An entry whose `(session_id, seq)` is stored already is skipped: within a batch,
/// across batches, and without touching the session again.
pub async fn write_is_idempotent_per_session_and_seq(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    create(&*store, &new_session("s1", "org", None, NOW)).await;
    create(&*store, &new_session("s2", "org", None, NOW)).await;
    let first = message("s1", SEQ_BASE + 1, NOW + 1, "first", Some("first"));
    let mut twin = message("s1", SEQ_BASE + 1, NOW + 99, "twin", Some("twin"));
    twin.entry.event = "{\"type\":\"message\",\"text\":\"twin\"}".into();
    store.write(&[first.clone(), twin.clone()]).await.unwrap();
    let after_first = row(&*store, "s1").await;
    assert_eq!(after_first.preview.as_deref(), Some("first"));

    // The same batch again, then the twin alone: nothing changes.
    store.write(&[first.clone(), twin.clone()]).await.unwrap();
    store.write(&[twin]).await.unwrap();
    assert_eq!(all_entries(&*store, "s1").await, vec![first.entry.clone()]);
    assert_eq!(row(&*store, "s1").await, after_first);

    // The same seq in another session is another entry.
    store
        .write(&[message("s2", SEQ_BASE + 1, NOW + 1, "s2's", None)])
        .await
        .unwrap();
    assert_eq!(all_entries(&*store, "s2").await.len(), 1);
    assert_eq!(all_entries(&*store, "s1").await, vec![first.entry]);
}

/// Entries of sessions that do not exist (never created, or deleted) are skipped
/// without failing the batch, and create nothing.
pub async fn write_skips_unknown_sessions(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    create(&*store, &new_session("known", "org", None, NOW)).await;
    create(&*store, &new_session("deleted", "org", None, NOW)).await;
    assert!(store.delete_session("deleted").await.unwrap());
    store
        .write(&[
            event("ghost", 1, NOW),
            event("known", 1, NOW + 1),
            event("deleted", 1, NOW),
            message("ghost", 2, NOW, "boo", Some("boo")),
            event("known", 2, NOW + 2),
        ])
        .await
        .unwrap();
    assert_eq!(seqs(&all_entries(&*store, "known").await), vec![1, 2]);
    for gone in ["ghost", "deleted"] {
        assert_eq!(
            store.session(gone).await.unwrap(),
            None,
            "{gone} not created"
        );
        assert!(
            all_entries(&*store, gone).await.is_empty(),
            "{gone} has no entries"
        );
    }
    // A batch of unknown sessions only.
    store.write(&[event("ghost", 3, NOW)]).await.unwrap();
    assert_eq!(store.session("ghost").await.unwrap(), None);
}

/// Stored entries move `last_activity_at` and `last_seq` forward, never back: an
/// older entry arriving late (or a newer seq with an older ts) is stored but does not
/// rewind the session.
pub async fn activity_and_seq_move_forward_never_back(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    create(&*store, &new_session("s1", "org", None, NOW)).await;
    store
        .write(&[event("s1", SEQ_BASE + 10, NOW + 5_000)])
        .await
        .unwrap();
    let moved = row(&*store, "s1").await;
    assert_eq!(
        (moved.last_seq, moved.last_activity_at),
        (SEQ_BASE + 10, NOW + 5_000)
    );

    // Older in both.
    store
        .write(&[event("s1", SEQ_BASE + 4, NOW + 3_000)])
        .await
        .unwrap();
    let after_late = row(&*store, "s1").await;
    assert_eq!(
        (after_late.last_seq, after_late.last_activity_at),
        (SEQ_BASE + 10, NOW + 5_000)
    );
    assert_eq!(
        all_entries(&*store, "s1").await.len(),
        2,
        "the late entry is stored"
    );

    // Newer seq, older ts (clocks of two replicas): each moves on its own.
    store
        .write(&[event("s1", SEQ_BASE + 11, NOW + 4_000)])
        .await
        .unwrap();
    let mixed = row(&*store, "s1").await;
    assert_eq!(
        (mixed.last_seq, mixed.last_activity_at),
        (SEQ_BASE + 11, NOW + 5_000)
    );

    // Within one batch, the greatest of each wins whatever the order.
    store
        .write(&[
            event("s1", SEQ_BASE + 30, NOW + 6_000),
            event("s1", SEQ_BASE + 20, NOW + 9_000),
            event("s1", SEQ_BASE + 25, NOW + 7_000),
        ])
        .await
        .unwrap();
    let batch = row(&*store, "s1").await;
    assert_eq!(
        (batch.last_seq, batch.last_activity_at),
        (SEQ_BASE + 30, NOW + 9_000)
    );
    assert_eq!(batch.created_at, NOW, "created_at never moves");
}

/// The preview is the newest message's: an entry without a preview keeps it, and an
/// older message arriving late does not replace a newer one.
pub async fn preview_follows_the_newest_message(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    create(&*store, &new_session("s1", "org", None, NOW)).await;
    store
        .write(&[message("s1", SEQ_BASE + 2, NOW + 2, "second", None)])
        .await
        .unwrap();
    assert_eq!(row(&*store, "s1").await.preview.as_deref(), Some("second"));

    store
        .write(&[event("s1", SEQ_BASE + 3, NOW + 3)])
        .await
        .unwrap();
    assert_eq!(
        row(&*store, "s1").await.preview.as_deref(),
        Some("second"),
        "kept"
    );

    store
        .write(&[message("s1", SEQ_BASE + 1, NOW + 1, "first, late", None)])
        .await
        .unwrap();
    assert_eq!(
        row(&*store, "s1").await.preview.as_deref(),
        Some("second"),
        "not rewound"
    );

    store
        .write(&[
            message("s1", SEQ_BASE + 6, NOW + 6, "sixth", None),
            message("s1", SEQ_BASE + 5, NOW + 5, "fifth", None),
            event("s1", SEQ_BASE + 7, NOW + 7),
        ])
        .await
        .unwrap();
    assert_eq!(row(&*store, "s1").await.preview.as_deref(), Some("sixth"));
}

/// A title hint names a session that has no title (the oldest hint of a batch wins),
/// and never replaces a title, whether from a hint or a rename.
pub async fn title_hint_only_names_untitled_sessions(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    create(&*store, &new_session("s1", "org", None, NOW)).await;
    create(&*store, &new_session("s2", "org", None, NOW)).await;
    store
        .write(&[event("s1", SEQ_BASE + 1, NOW + 1)])
        .await
        .unwrap();
    assert_eq!(row(&*store, "s1").await.title, None, "no hint, no title");

    store
        .write(&[
            message(
                "s1",
                SEQ_BASE + 4,
                NOW + 4,
                "later question",
                Some("later question"),
            ),
            message(
                "s1",
                SEQ_BASE + 2,
                NOW + 2,
                "first question",
                Some("first question"),
            ),
        ])
        .await
        .unwrap();
    assert_eq!(
        row(&*store, "s1").await.title.as_deref(),
        Some("first question")
    );
    store
        .write(&[message("s1", SEQ_BASE + 9, NOW + 9, "next", Some("next"))])
        .await
        .unwrap();
    assert_eq!(
        row(&*store, "s1").await.title.as_deref(),
        Some("first question")
    );

    let rename = SessionChange {
        title: Some("Renamed".into()),
        state: None,
    };
    store.update_session("s2", &rename).await.unwrap().unwrap();
    store
        .write(&[message("s2", SEQ_BASE + 1, NOW + 1, "hello", Some("hello"))])
        .await
        .unwrap();
    assert_eq!(row(&*store, "s2").await.title.as_deref(), Some("Renamed"));
}

/// A new message makes an archived session active again; other events do not, nor
/// does a message older than the session's newest entry.
pub async fn a_new_message_makes_an_archived_session_active(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    create(&*store, &new_session("s1", "org", None, NOW)).await;
    store
        .write(&[message("s1", SEQ_BASE + 5, NOW + 5, "hi", None)])
        .await
        .unwrap();
    let archive = SessionChange {
        title: None,
        state: Some(SessionState::Archived),
    };
    store.update_session("s1", &archive).await.unwrap().unwrap();

    store
        .write(&[event("s1", SEQ_BASE + 6, NOW + 6)])
        .await
        .unwrap();
    assert_eq!(
        row(&*store, "s1").await.state,
        SessionState::Archived,
        "not a message"
    );
    store
        .write(&[message("s1", SEQ_BASE + 1, NOW + 1, "old", None)])
        .await
        .unwrap();
    assert_eq!(
        row(&*store, "s1").await.state,
        SessionState::Archived,
        "an old message"
    );

    store
        .write(&[message("s1", SEQ_BASE + 7, NOW + 7, "back again", None)])
        .await
        .unwrap();
    assert_eq!(row(&*store, "s1").await.state, SessionState::Active);
}

/// `transcript` returns `after < seq < before`, oldest first, at most
/// `min(limit, MAX_TRANSCRIPT_PAGE)`; unknown sessions and empty ranges read empty.
pub async fn transcript_pages_with_after_before_and_limit(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    create(&*store, &new_session("s1", "org", None, NOW)).await;
    let total = MAX_TRANSCRIPT_PAGE as u64 + 20;
    let batch: Vec<_> = (1..=total)
        .map(|i| event("s1", SEQ_BASE + i, NOW + i))
        .collect();
    store.write(&batch).await.unwrap();
    let range = |from: u64, to: u64| (from..=to).map(|i| SEQ_BASE + i).collect::<Vec<_>>();
    let read = |after: u64, before: Option<u64>, limit: usize| {
        let store = store.clone();
        async move { seqs(&store.transcript("s1", after, before, limit).await.unwrap()) }
    };

    assert_eq!(read(SEQ_BASE + 10, None, 5).await, range(11, 15));
    assert_eq!(
        read(SEQ_BASE + 10, Some(SEQ_BASE + 20), 100).await,
        range(11, 19)
    );
    assert_eq!(
        read(SEQ_BASE + 10, Some(SEQ_BASE + 11), 100).await,
        Vec::<u64>::new()
    );
    assert_eq!(read(0, None, 3).await, range(1, 3));
    assert_eq!(
        read(SEQ_BASE + total - 2, None, 100).await,
        range(total - 1, total)
    );
    assert_eq!(read(SEQ_BASE + total, None, 100).await, Vec::<u64>::new());
    assert_eq!(read(0, None, 0).await, Vec::<u64>::new(), "limit 0");
    assert_eq!(
        read(0, None, usize::MAX).await,
        range(1, MAX_TRANSCRIPT_PAGE as u64)
    );
    assert_eq!(
        read(0, Some(u64::MAX), 2).await,
        range(1, 2),
        "a bound past every seq is no bound"
    );
    assert_eq!(read(u64::MAX, None, 10).await, Vec::<u64>::new());
    assert!(
        store
            .transcript("nobody", 0, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
