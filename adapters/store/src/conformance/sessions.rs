//! Sessions: create, read, update, delete.

use super::*;
use crate::{SessionChange, SessionState};

/// The store answers `ping` and has a name for logs and metrics.
pub async fn ping_answers(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    store.ping().await.unwrap();
    assert!(
        matches!(store.name(), "sqlite" | "postgres" | "memory"),
        "{}",
        store.name()
    );
}

/// Creating an id that exists returns `false` and changes nothing.
pub async fn create_twice_is_refused(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    let first = new_session("s1", "org", Some("alice"), NOW);
    create(&*store, &first).await;
    let before = row(&*store, "s1").await;
    let mut again = new_session("s1", "other-org", Some("mallory"), NOW + 5);
    again.metadata = Some(rich_metadata());
    assert!(!store.create_session(&again).await.unwrap());
    assert_eq!(row(&*store, "s1").await, before);
}

/// A session reads back as created, with the defaults of a new one; `None` fields stay
/// `None`; an unknown id reads as `None`.
pub async fn session_round_trips(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    let owned = NewSession {
        session_id: "s_owned".into(),
        org_id: "org_1".into(),
        owner: Some("user_ü".into()),
        key_sha256: None,
        created_at: NOW,
        metadata: Some(rich_metadata()),
        assistant: Some("billing_bot".into()),
    };
    let anonymous = NewSession {
        session_id: "s_anon".into(),
        org_id: "org_1".into(),
        owner: None,
        key_sha256: Some("ab".repeat(32)),
        created_at: NOW + 1,
        metadata: None,
        assistant: None,
    };
    create(&*store, &owned).await;
    create(&*store, &anonymous).await;
    for created in [&owned, &anonymous] {
        let expected = SessionRow {
            session_id: created.session_id.clone(),
            org_id: created.org_id.clone(),
            owner: created.owner.clone(),
            key_sha256: created.key_sha256.clone(),
            title: None,
            state: SessionState::Active,
            created_at: created.created_at,
            last_activity_at: created.created_at,
            last_seq: 0,
            preview: None,
            metadata: created.metadata.clone(),
            assistant: created.assistant.clone(),
        };
        assert_eq!(row(&*store, &created.session_id).await, expected);
    }
    assert_eq!(store.session("s_missing").await.unwrap(), None);
}

/// A rename sets the title, archive/unarchive the state; a `None` field is kept; it is
/// not activity; an unknown id gives `None`.
pub async fn update_changes_title_and_state_only(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    create(&*store, &new_session("s1", "org", Some("alice"), NOW)).await;
    store
        .write(&[event("s1", SEQ_BASE + 1, NOW + 10)])
        .await
        .unwrap();
    let before = row(&*store, "s1").await;

    let renamed = store
        .update_session(
            "s1",
            &SessionChange {
                title: Some("Trip to Lisbon".into()),
                state: None,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        renamed,
        SessionRow {
            title: Some("Trip to Lisbon".into()),
            ..before.clone()
        }
    );
    let archived = store
        .update_session(
            "s1",
            &SessionChange {
                title: None,
                state: Some(SessionState::Archived),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(archived.state, SessionState::Archived);
    assert_eq!(archived.title.as_deref(), Some("Trip to Lisbon"), "kept");
    assert_eq!(
        archived.last_activity_at, before.last_activity_at,
        "not activity"
    );
    assert_eq!(row(&*store, "s1").await, archived, "returned as stored");

    let both = store
        .update_session(
            "s1",
            &SessionChange {
                title: Some("Lisbon".into()),
                state: Some(SessionState::Active),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (both.title.as_deref(), both.state),
        (Some("Lisbon"), SessionState::Active)
    );
    let unchanged = store
        .update_session("s1", &SessionChange::default())
        .await
        .unwrap();
    assert_eq!(unchanged, Some(both));
    assert_eq!(
        store
            .update_session("s_missing", &SessionChange::default())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.session("s_missing").await.unwrap(),
        None,
        "not created"
    );
}

/// Deleting removes the session and its whole transcript (a new session with the same
/// id starts empty); deleting again returns `false`; other sessions are untouched.
pub async fn delete_removes_the_session_and_its_transcript(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    create(&*store, &new_session("s1", "org", None, NOW)).await;
    create(&*store, &new_session("s2", "org", None, NOW)).await;
    let batch: Vec<_> = (1..=20)
        .flat_map(|i| {
            [
                event("s1", SEQ_BASE + i, NOW + i),
                event("s2", SEQ_BASE + i, NOW + i),
            ]
        })
        .collect();
    store.write(&batch).await.unwrap();

    assert!(store.delete_session("s1").await.unwrap());
    assert_eq!(store.session("s1").await.unwrap(), None);
    assert!(all_entries(&*store, "s1").await.is_empty());
    assert!(!store.delete_session("s1").await.unwrap(), "gone already");
    assert_eq!(
        all_entries(&*store, "s2").await.len(),
        20,
        "the other session"
    );

    create(&*store, &new_session("s1", "org", None, NOW + 100)).await;
    assert!(
        all_entries(&*store, "s1").await.is_empty(),
        "a new s1 starts empty"
    );
    assert_eq!(row(&*store, "s1").await.last_seq, 0);
}
