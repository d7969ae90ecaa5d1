//! Human handoff: who holds a conversation, changed by compare-and-set; the inbox; an
//! org's settings.

use super::*;
use crate::{HandoffRow, HandoffSettingsRow, HandoffState};

/// `set_handoff`, which must not fail: whether it changed the handoff.
async fn set(
    store: &dyn crate::ConversationStore,
    session_id: &str,
    expected: u64,
    new: &HandoffRow,
) -> bool {
    store.set_handoff(session_id, expected, new).await.unwrap()
}

fn waiting(since: u64, reason: &str) -> HandoffRow {
    HandoffRow {
        state: HandoffState::Waiting,
        operator: None,
        operator_name: None,
        reason: Some(reason.into()),
        since,
        version: 0,
    }
}

fn held_by(operator: &str, since: u64) -> HandoffRow {
    HandoffRow {
        state: HandoffState::Human,
        operator: Some(operator.into()),
        operator_name: Some(format!("{operator} (name)")),
        reason: None,
        since,
        version: 0,
    }
}

/// A new session is the assistant's since its creation, version 0; each change needs
/// the version it read and raises it by one; a stale version, a second change from
/// the same version, or an unknown session changes nothing.
pub async fn handoff_changes_by_compare_and_set(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    create(&*store, &new_session("s", "org-a", Some("u"), NOW)).await;
    assert_eq!(
        store.handoff("s").await.unwrap(),
        Some(HandoffRow::assistant(NOW))
    );
    assert_eq!(store.handoff("nope").await.unwrap(), None);

    assert!(set(&*store, "s", 0, &waiting(NOW + 1, "asked")).await);
    assert!(!set(&*store, "s", 0, &held_by("olga", NOW + 2)).await);
    let read = store.handoff("s").await.unwrap().unwrap();
    assert_eq!(
        read,
        HandoffRow {
            version: 1,
            ..waiting(NOW + 1, "asked")
        }
    );

    assert!(set(&*store, "s", 1, &held_by("olga", NOW + 2)).await);
    assert!(!set(&*store, "s", 1, &held_by("otto", NOW + 3)).await);
    let read = store.handoff("s").await.unwrap().unwrap();
    assert_eq!(
        read,
        HandoffRow {
            version: 2,
            ..held_by("olga", NOW + 2)
        }
    );
    assert!(!set(&*store, "nope", 0, &waiting(NOW, "x")).await);
    assert_eq!(store.handoff("nope").await.unwrap(), None);

    // Concurrent claims from one version: exactly one wins.
    let claims: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(
                async move { set(&*store, "s", 2, &held_by(&format!("op{i}"), NOW + 4)).await },
            )
        })
        .collect();
    let mut won = Vec::new();
    for claim in claims {
        won.push(claim.await.unwrap());
    }
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
}

/// The inbox holds an org's waiting and held sessions, the longest in that state
/// first, within the limit; released ones and other orgs' are not in it; a deleted
/// session leaves it with its handoff.
pub async fn inbox_lists_waiting_and_held_sessions_oldest_first(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    for (id, org) in [
        ("a1", "org-a"),
        ("a2", "org-a"),
        ("a3", "org-a"),
        ("a4", "org-a"),
        ("b1", "org-b"),
    ] {
        create(&*store, &new_session(id, org, Some("u"), NOW)).await;
    }
    assert!(store.inbox("org-a", 10).await.unwrap().is_empty());
    assert!(set(&*store, "a2", 0, &waiting(NOW + 5, "late")).await);
    assert!(set(&*store, "a1", 0, &waiting(NOW + 1, "early")).await);
    assert!(set(&*store, "a1", 1, &held_by("olga", NOW + 9)).await);
    assert!(set(&*store, "a3", 0, &waiting(NOW + 3, "mid")).await);
    assert!(set(&*store, "a4", 0, &waiting(NOW + 2, "gone")).await);
    assert!(set(&*store, "a4", 1, &HandoffRow::assistant(NOW + 4)).await);
    assert!(set(&*store, "b1", 0, &waiting(NOW, "other org")).await);

    let inbox = store.inbox("org-a", 10).await.unwrap();
    let ids: Vec<&str> = inbox.iter().map(|(s, _)| s.session_id.as_str()).collect();
    assert_eq!(ids, ["a3", "a2", "a1"]);
    assert_eq!(inbox[2].1.state, HandoffState::Human);
    assert_eq!(inbox[2].1.operator.as_deref(), Some("olga"));
    assert_eq!(inbox[0].0.org_id, "org-a");
    let first: Vec<String> = store
        .inbox("org-a", 2)
        .await
        .unwrap()
        .into_iter()
        .map(|(s, _)| s.session_id)
        .collect();
    assert_eq!(first, ["a3", "a2"]);

    assert!(store.delete_session("a3").await.unwrap());
    let ids: Vec<String> = store
        .inbox("org-a", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(s, _)| s.session_id)
        .collect();
    assert_eq!(ids, ["a2", "a1"]);
    assert_eq!(
        store
            .erase_user("org-a", "u")
            .await
            .unwrap()
            .session_ids
            .len(),
        3
    );
    assert!(store.inbox("org-a", 10).await.unwrap().is_empty());
    assert_eq!(store.inbox("org-b", 10).await.unwrap().len(), 1);
}

/// An org's handoff settings are stored, replaced and cleared; other orgs have none.
pub async fn handoff_settings_are_set_changed_and_cleared(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    assert_eq!(store.handoff_settings("org-a").await.unwrap(), None);
    let off = HandoffSettingsRow {
        enabled: false,
        waiting_message: None,
        when_unanswered: false,
    };
    store
        .set_handoff_settings("org-a", Some(&off))
        .await
        .unwrap();
    assert_eq!(store.handoff_settings("org-a").await.unwrap(), Some(off));
    let on = HandoffSettingsRow {
        enabled: true,
        waiting_message: Some("A person will answer within the hour.".into()),
        when_unanswered: true,
    };
    store
        .set_handoff_settings("org-a", Some(&on))
        .await
        .unwrap();
    assert_eq!(store.handoff_settings("org-a").await.unwrap(), Some(on));
    assert_eq!(store.handoff_settings("org-b").await.unwrap(), None);
    store.set_handoff_settings("org-a", None).await.unwrap();
    assert_eq!(store.handoff_settings("org-a").await.unwrap(), None);
}
