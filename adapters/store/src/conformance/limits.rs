//! Values at the edges of what the store keeps: u64 values are stored in 63 bits.

use super::*;
use crate::{Cursor, MAX_PAGE, StoreError};

/// A value past `i64::MAX` is an error (not a panic, not a wrapped number), and the
/// call that carried it changed nothing; bounds past it in questions just match
/// nothing (lower bounds) or everything (upper bounds).
pub async fn values_past_i64_are_errors_not_panics(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    let too_big = i64::MAX as u64 + 1;
    let refused = store
        .create_session(&new_session("s-late", "org", None, too_big))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Rejected(_))),
        "{refused:?}"
    );
    assert_eq!(store.session("s-late").await.unwrap(), None);

    create(&*store, &new_session("s1", "org", None, NOW)).await;
    let before = row(&*store, "s1").await;
    for bad in [event("s1", too_big, NOW), event("s1", 5, u64::MAX)] {
        let batch = [event("s1", 1, NOW + 1), bad];
        let refused = store.write(&batch).await;
        assert!(
            matches!(refused, Err(StoreError::Rejected(_))),
            "{refused:?}"
        );
    }
    assert!(
        all_entries(&*store, "s1").await.is_empty(),
        "nothing of either batch"
    );
    assert_eq!(row(&*store, "s1").await, before);

    let refused = store.expire(u64::MAX, 30, 10).await;
    assert!(
        matches!(refused, Err(StoreError::Rejected(_))),
        "{refused:?}"
    );
    row(&*store, "s1").await;

    let since_never = SessionQuery {
        active_since: Some(u64::MAX),
        ..query("org", MAX_PAGE)
    };
    assert!(
        store
            .list_sessions(&since_never)
            .await
            .unwrap()
            .sessions
            .is_empty()
    );
    let before_forever = SessionQuery {
        active_before: Some(u64::MAX),
        cursor: Some(Cursor {
            last_activity_at: u64::MAX,
            session_id: String::new(),
        }),
        ..query("org", MAX_PAGE)
    };
    assert_eq!(
        ids(&store.list_sessions(&before_forever).await.unwrap().sessions),
        ["s1"]
    );
}

/// Values up to `i64::MAX` (and `u32::MAX` retention with the greatest default) are
/// kept exactly, and expiry arithmetic on them neither overflows nor expires wrongly.
pub async fn values_near_i64_max_round_trip(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    let max = i64::MAX as u64;
    create(&*store, &new_session("s-max", "org", None, max - 10)).await;
    store
        .write(&[
            message("s-max", max, max, "the last word", Some("edge")),
            event("s-max", max - 1, max - 1),
        ])
        .await
        .unwrap();
    let edge = row(&*store, "s-max").await;
    assert_eq!(
        (edge.created_at, edge.last_activity_at, edge.last_seq),
        (max - 10, max, max)
    );
    assert_eq!(edge.preview.as_deref(), Some("the last word"));
    assert_eq!(seqs(&all_entries(&*store, "s-max").await), [max - 1, max]);
    assert_eq!(
        seqs(&store.transcript("s-max", max - 1, None, 10).await.unwrap()),
        [max]
    );

    create(&*store, &new_session("s-zero", "org", None, 0)).await;
    // The longest retention reaches back past the epoch: nothing is that old.
    assert!(store.expire(NOW, u32::MAX, 10).await.unwrap().is_empty());
    // The latest `now` expires the session idle since 0 and keeps the one active at it.
    assert_eq!(store.expire(max, 0, 10).await.unwrap(), ["s-zero"]);
    row(&*store, "s-max").await;
}
