//! How sessions end: a user erased, retention set per org, idle sessions expired.

use super::*;
use crate::Erased;

/// `erase_user` removes every session the user owns in that org, with their
/// transcripts, and says what it removed; the same user id in another org, other
/// users and anonymous sessions are untouched.
pub async fn erase_user_removes_only_that_user_in_that_org(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    let sessions = [
        ("u-1", "org-a", Some("u"), 3),
        ("u-2", "org-a", Some("u"), 2),
        ("u-3", "org-a", Some("u"), 0),
        ("u-elsewhere", "org-b", Some("u"), 4),
        ("v-1", "org-a", Some("v"), 1),
        ("anon", "org-a", None, 1),
    ];
    for (id, org, owner, entries) in sessions {
        create(&*store, &new_session(id, org, owner, NOW)).await;
        let batch: Vec<_> = (1..=entries)
            .map(|i| event(id, SEQ_BASE + i, NOW + i))
            .collect();
        store.write(&batch).await.unwrap();
    }

    let mut erased = store.erase_user("org-a", "u").await.unwrap();
    erased.session_ids.sort();
    assert_eq!(
        erased,
        Erased {
            session_ids: vec!["u-1".into(), "u-2".into(), "u-3".into()],
            entries: 5,
        }
    );
    for gone in ["u-1", "u-2", "u-3"] {
        assert_eq!(store.session(gone).await.unwrap(), None);
        assert!(all_entries(&*store, gone).await.is_empty());
    }
    for (kept, entries) in [("u-elsewhere", 4), ("v-1", 1), ("anon", 1)] {
        row(&*store, kept).await;
        assert_eq!(all_entries(&*store, kept).await.len(), entries, "{kept}");
    }
    assert_eq!(
        store.erase_user("org-a", "u").await.unwrap(),
        Erased::default()
    );
    assert_eq!(
        store.erase_user("org-c", "nobody").await.unwrap(),
        Erased::default()
    );
}

/// An org's retention reads back as set, changes, and clears; orgs are separate.
pub async fn retention_is_set_changed_and_cleared(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    assert_eq!(store.retention("org-a").await.unwrap(), None);
    store.set_retention("org-a", Some(30)).await.unwrap();
    assert_eq!(store.retention("org-a").await.unwrap(), Some(30));
    assert_eq!(
        store.retention("org-b").await.unwrap(),
        None,
        "orgs are separate"
    );
    store.set_retention("org-a", Some(7)).await.unwrap();
    assert_eq!(store.retention("org-a").await.unwrap(), Some(7));
    store.set_retention("org-b", Some(0)).await.unwrap();
    assert_eq!(store.retention("org-b").await.unwrap(), Some(0));
    store.set_retention("org-a", None).await.unwrap();
    assert_eq!(store.retention("org-a").await.unwrap(), None);
    store.set_retention("org-a", None).await.unwrap();
    assert_eq!(store.retention("org-b").await.unwrap(), Some(0));
    store.set_retention("org-c", Some(u32::MAX)).await.unwrap();
    assert_eq!(store.retention("org-c").await.unwrap(), Some(u32::MAX));
}

/// `expire` removes the sessions idle longer than their org's retention (the default
/// where the org has none), with their transcripts, and returns their ids; a session
/// idle exactly the retention stays, so does one whose last write was recent.
pub async fn expire_honours_org_retention_and_the_default(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    store.set_retention("short", Some(10)).await.unwrap();
    store
        .set_retention("forever", Some(u32::MAX))
        .await
        .unwrap();
    let idle = |days: u64| NOW - days * DAY;
    let sessions = [
        ("short-11d", "short", idle(11)),
        ("short-exactly-10d", "short", idle(10)),
        ("short-9d", "short", idle(9)),
        ("default-31d", "default", idle(31)),
        ("default-29d", "default", idle(29)),
        ("forever-900d", "forever", idle(900)),
        ("revived", "default", idle(40)),
    ];
    for (id, org, at) in sessions {
        create(&*store, &new_session(id, org, None, at)).await;
        store.write(&[event(id, 1, at)]).await.unwrap();
    }
    store.write(&[event("revived", 2, idle(1))]).await.unwrap();

    let mut expired = store.expire(NOW, 30, 100).await.unwrap();
    expired.sort();
    assert_eq!(expired, ["default-31d", "short-11d"]);
    for gone in ["default-31d", "short-11d"] {
        assert_eq!(store.session(gone).await.unwrap(), None);
        assert!(all_entries(&*store, gone).await.is_empty());
    }
    for kept in [
        "short-exactly-10d",
        "short-9d",
        "default-29d",
        "forever-900d",
        "revived",
    ] {
        let entries = if kept == "revived" { 2 } else { 1 };
        assert_eq!(all_entries(&*store, kept).await.len(), entries, "{kept}");
    }
    assert!(
        store.expire(NOW, 30, 100).await.unwrap().is_empty(),
        "nothing left to do"
    );

    // A shorter default reaches the orgs without their own retention only.
    let mut expired = store.expire(NOW, 20, 100).await.unwrap();
    expired.sort();
    assert_eq!(expired, ["default-29d"]);
    // Clearing an org's retention hands it to the default.
    store.set_retention("short", None).await.unwrap();
    assert!(store.expire(NOW, 20, 100).await.unwrap().is_empty());
    assert_eq!(
        store.expire(NOW + DAY, 10, 100).await.unwrap(),
        ["short-exactly-10d"]
    );
}

/// `expire` removes at most `limit` sessions per call, the longest idle first; called
/// again while it returns `limit`, it gets them all.
pub async fn expire_is_bounded_and_oldest_first(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    for (id, days) in [
        ("d50", 50),
        ("d40", 40),
        ("d45", 45),
        ("d60", 60),
        ("d35", 35),
    ] {
        create(&*store, &new_session(id, "org", None, NOW - days * DAY)).await;
    }
    create(&*store, &new_session("fresh", "org", None, NOW)).await;
    assert!(
        store.expire(NOW, 30, 0).await.unwrap().is_empty(),
        "limit 0"
    );
    assert_eq!(store.expire(NOW, 30, 2).await.unwrap(), ["d60", "d50"]);
    assert_eq!(store.expire(NOW, 30, 2).await.unwrap(), ["d45", "d40"]);
    assert_eq!(store.expire(NOW, 30, 2).await.unwrap(), ["d35"]);
    assert!(store.expire(NOW, 30, 2).await.unwrap().is_empty());
    row(&*store, "fresh").await;
}
