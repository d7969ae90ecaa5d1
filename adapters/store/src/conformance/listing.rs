//! Listing sessions: order, filters, pages, org isolation.

use super::*;
use crate::{Cursor, MAX_PAGE, SessionChange, SessionState};

/// Newest activity first; ties by greater `session_id` first, comparing ids bytewise
/// (as Rust's `str` does: `"s-B" < "s-a"`), whatever the database's collation.
pub async fn list_orders_by_activity_then_id(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    for (id, at) in [
        ("s-a", NOW + 50),
        ("s-B", NOW + 50),
        ("s-c", NOW + 50),
        ("s-ä", NOW + 50),
        ("s-old", NOW),
        ("s-new", NOW + 99),
    ] {
        create(&*store, &new_session(id, "org", None, at)).await;
    }
    // Activity from writes counts like creation time.
    create(&*store, &new_session("s-written", "org", None, NOW - 10)).await;
    store
        .write(&[event("s-written", 1, NOW + 70)])
        .await
        .unwrap();

    let listed = store.list_sessions(&query("org", MAX_PAGE)).await.unwrap();
    assert_eq!(
        ids(&listed.sessions),
        ["s-new", "s-written", "s-ä", "s-c", "s-a", "s-B", "s-old"],
    );
    assert_eq!(listed.next, None, "everything fit");
}

/// The owner, state and activity-window filters, alone and together; `active_since`
/// includes its time, `active_before` excludes its own.
pub async fn list_filters_by_owner_state_and_time(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    let sessions = [
        ("a1", Some("alice"), NOW + 1),
        ("a2", Some("alice"), NOW + 2),
        ("a3", Some("alice"), NOW + 3),
        ("b1", Some("bob"), NOW + 2),
        ("anon", None, NOW + 2),
    ];
    for (id, owner, at) in sessions {
        create(&*store, &new_session(id, "org", owner, at)).await;
    }
    let archive = SessionChange {
        title: None,
        state: Some(SessionState::Archived),
    };
    store.update_session("a2", &archive).await.unwrap().unwrap();
    let list = |query: SessionQuery| {
        let store = store.clone();
        async move { ids(&all_pages(&*store, query).await) }
    };
    let base = query("org", MAX_PAGE);

    let alice = SessionQuery {
        owner: Some("alice".into()),
        ..base.clone()
    };
    assert_eq!(list(alice.clone()).await, ["a3", "a2", "a1"]);
    let active_alice = SessionQuery {
        state: Some(SessionState::Active),
        ..alice.clone()
    };
    assert_eq!(list(active_alice).await, ["a3", "a1"]);
    let archived = SessionQuery {
        state: Some(SessionState::Archived),
        ..base.clone()
    };
    assert_eq!(list(archived).await, ["a2"]);
    let window = SessionQuery {
        active_since: Some(NOW + 2),
        active_before: Some(NOW + 3),
        ..base.clone()
    };
    assert_eq!(list(window.clone()).await, ["b1", "anon", "a2"]);
    let alice_window = SessionQuery {
        owner: Some("alice".into()),
        ..window
    };
    assert_eq!(list(alice_window).await, ["a2"]);
    let since = SessionQuery {
        active_since: Some(NOW + 3),
        ..base.clone()
    };
    assert_eq!(list(since).await, ["a3"]);
    let before = SessionQuery {
        active_before: Some(NOW + 2),
        ..base.clone()
    };
    assert_eq!(list(before).await, ["a1"]);
    let nobody = SessionQuery {
        owner: Some("carol".into()),
        ..base
    };
    assert!(list(nobody).await.is_empty());
}

/// Following `next` lists every session exactly once, in order, whatever the page size
/// and however many share an activity time; `next` is `None` on the last page, also
/// when it is exactly full. A session created between pages (newer than the cursor)
/// does not show up again in later pages.
pub async fn list_pages_without_gap_or_duplicate(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    // 23 sessions in 5 activity times: many ties across page boundaries.
    for i in 0..23u64 {
        let id = format!("s{:02}", (i * 7) % 23);
        create(&*store, &new_session(&id, "org", None, NOW + i % 5)).await;
    }
    let everything = store.list_sessions(&query("org", MAX_PAGE)).await.unwrap();
    assert_eq!(everything.sessions.len(), 23);
    for size in [1, 2, 5, 7, 22, 23] {
        let paged = all_pages(&*store, query("org", size)).await;
        assert_eq!(ids(&paged), ids(&everything.sessions), "pages of {size}");
    }
    // 23 sessions in pages of 23: full, and nothing follows.
    assert_eq!(
        store.list_sessions(&query("org", 23)).await.unwrap().next,
        None
    );

    let first = store.list_sessions(&query("org", 10)).await.unwrap();
    let cursor = first.next.clone().unwrap();
    let last = first.sessions.last().unwrap();
    assert_eq!(
        cursor,
        Cursor {
            last_activity_at: last.last_activity_at,
            session_id: last.session_id.clone(),
        }
    );
    create(&*store, &new_session("s-newest", "org", None, NOW + 100)).await;
    let rest = all_pages(
        &*store,
        SessionQuery {
            cursor: Some(cursor),
            ..query("org", 4)
        },
    )
    .await;
    let mut seen = ids(&first.sessions);
    seen.extend(ids(&rest));
    assert_eq!(seen, ids(&everything.sessions), "no gap, no duplicate");
}

/// A page holds at most `MAX_PAGE` sessions, and at least one (a limit of 0 counts
/// as 1).
pub async fn list_limit_is_clamped(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    let total = MAX_PAGE + 5;
    for i in 0..total {
        let at = NOW + i as u64;
        create(&*store, &new_session(&format!("s{i:03}"), "org", None, at)).await;
    }
    let huge = store
        .list_sessions(&query("org", usize::MAX))
        .await
        .unwrap();
    assert_eq!(huge.sessions.len(), MAX_PAGE);
    assert!(huge.next.is_some());
    let zero = store.list_sessions(&query("org", 0)).await.unwrap();
    assert_eq!(ids(&zero.sessions), [format!("s{:03}", total - 1)]);
    assert!(zero.next.is_some());
    assert_eq!(all_pages(&*store, query("org", 0)).await.len(), total);
}

/// A listing never shows another org's sessions, not even those of a user with the
/// same id there.
pub async fn list_never_shows_another_orgs_sessions(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    for (id, org, owner) in [
        ("a-1", "org-a", Some("u1")),
        ("a-2", "org-a", None),
        ("b-1", "org-b", Some("u1")),
        ("b-2", "org-b", Some("u2")),
        ("ab-1", "org-ab", Some("u1")),
    ] {
        create(&*store, &new_session(id, org, owner, NOW)).await;
    }
    let org_a = all_pages(&*store, query("org-a", 1)).await;
    assert_eq!(ids(&org_a), ["a-2", "a-1"]);
    assert!(org_a.iter().all(|r| r.org_id == "org-a"));
    let u1_in_b = SessionQuery {
        owner: Some("u1".into()),
        ..query("org-b", MAX_PAGE)
    };
    assert_eq!(ids(&all_pages(&*store, u1_in_b).await), ["b-1"]);
    assert!(
        all_pages(&*store, query("org", MAX_PAGE)).await.is_empty(),
        "no prefix match"
    );
    assert!(
        all_pages(&*store, query("ORG-A", MAX_PAGE))
            .await
            .is_empty(),
        "case counts"
    );
}
