//! Named assistants.

use super::*;
use crate::AssistantRow;

/// Assistant `name` of `org`, with a spec naming it.
fn assistant(org: &str, name: &str, at: u64) -> AssistantRow {
    AssistantRow {
        org_id: org.into(),
        name: name.into(),
        spec: format!(r#"{{"system_prompt":"You are {name} — ünïcode"}}"#),
        updated_at: at,
    }
}

/// Assistants read back as stored, by name within their org only; a put replaces one
/// of the same name; a delete says whether it existed.
pub async fn assistants_round_trip_per_org(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    for (org, name) in [("acme", "sales"), ("acme", "billing"), ("other", "sales")] {
        assert!(
            store
                .put_assistant(&assistant(org, name, NOW), 8)
                .await
                .unwrap()
        );
    }
    let names: Vec<String> = store
        .assistants("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["billing", "sales"]);
    let replaced = AssistantRow {
        spec: r#"{"model":"m2"}"#.into(),
        ..assistant("acme", "sales", NOW + 5)
    };
    assert!(store.put_assistant(&replaced, 8).await.unwrap());
    assert_eq!(
        store.assistant("acme", "sales").await.unwrap(),
        Some(replaced)
    );
    assert_eq!(
        store.assistant("other", "sales").await.unwrap(),
        Some(assistant("other", "sales", NOW))
    );
    assert_eq!(store.assistant("acme", "missing").await.unwrap(), None);
    assert!(store.delete_assistant("acme", "sales").await.unwrap());
    assert!(!store.delete_assistant("acme", "sales").await.unwrap());
    assert_eq!(store.assistant("acme", "sales").await.unwrap(), None);
    assert!(store.assistant("other", "sales").await.unwrap().is_some());
}

/// An org holds at most `max_per_org` assistants, even when puts race; replacing one
/// it has is always allowed.
pub async fn assistants_are_capped_per_org_under_races(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .put_assistant(&assistant("acme", &format!("a{i}"), NOW), 5)
                .await
                .unwrap()
        }));
    }
    let mut stored = 0;
    for task in tasks {
        if task.await.unwrap() {
            stored += 1;
        }
    }
    assert_eq!(stored, 5);
    let kept = store.assistants("acme").await.unwrap();
    assert_eq!(kept.len(), 5);
    let again = assistant("acme", &kept[0].name, NOW + 1);
    assert!(store.put_assistant(&again, 5).await.unwrap());
    assert!(
        store
            .put_assistant(&assistant("other", "a0", NOW), 5)
            .await
            .unwrap()
    );
}
