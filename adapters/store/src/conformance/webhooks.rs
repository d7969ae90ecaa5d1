//! Webhook endpoints and their delivery logs.

use super::*;
use crate::{DeliveryOutcome, MAX_DELIVERY_PAGE, StoreError, WebhookDelivery, WebhookRow};

/// An endpoint of `org` created at `at`.
fn endpoint(id: &str, org: &str, at: u64) -> WebhookRow {
    WebhookRow {
        webhook_id: id.into(),
        org_id: org.into(),
        url: format!("https://hooks.example/{id}"),
        events: vec!["conversation.created".into(), "turn.failed".into()],
        secret: format!("whsec_{id}"),
        created_at: at,
    }
}

/// A delivery to `webhook` whose first attempt was at `at`, pending after one attempt.
fn delivery(webhook: &str, id: &str, at: u64) -> WebhookDelivery {
    WebhookDelivery {
        webhook_id: webhook.into(),
        delivery_id: id.into(),
        event_type: "conversation.created".into(),
        attempts: 1,
        outcome: DeliveryOutcome::Pending,
        last_status: Some(500),
        last_error: Some("HTTP 500".into()),
        created_at: at,
        updated_at: at + 10,
        next_attempt_at: Some(at + 1_000),
    }
}

fn delivery_ids(log: &[WebhookDelivery]) -> Vec<String> {
    log.iter().map(|d| d.delivery_id.clone()).collect()
}

/// Endpoints round-trip exactly (events in order, the secret), are listed per org
/// oldest first, and an org never sees, deletes or reads another org's.
pub async fn webhooks_round_trip_per_org(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    let later = endpoint("wh_b", "acme", NOW + 5);
    let first = WebhookRow {
        events: vec!["message.created".into(), "handoff.claimed".into()],
        url: "http://127.0.0.1:9/hook?x=ü".into(),
        ..endpoint("wh_a", "acme", NOW)
    };
    let tie = endpoint("wh_0", "acme", NOW + 5);
    let other = endpoint("wh_c", "globex", NOW);
    for webhook in [&later, &first, &tie, &other] {
        assert!(store.create_webhook(webhook, 10).await.unwrap());
    }
    assert_eq!(
        store.webhooks("acme").await.unwrap(),
        [first.clone(), tie, later]
    );
    assert_eq!(store.webhooks("globex").await.unwrap(), [other]);
    assert!(store.webhooks("initech").await.unwrap().is_empty());

    assert!(!store.delete_webhook("globex", "wh_a").await.unwrap());
    assert_eq!(
        store
            .webhook_deliveries("globex", "wh_a", 10)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.webhooks("acme").await.unwrap()[0], first);
    assert_eq!(
        store.webhook_deliveries("acme", "wh_a", 10).await.unwrap(),
        Some(Vec::new())
    );

    let again = store
        .create_webhook(&endpoint("wh_a", "acme", NOW), 10)
        .await;
    assert!(matches!(again, Err(StoreError::Rejected(_))), "{again:?}");
}

/// An org holds at most `max_per_org` endpoints; a refused one changes nothing, other
/// orgs are not counted, and a deletion makes room again.
pub async fn webhooks_are_capped_per_org(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    for i in 0..3 {
        let webhook = endpoint(&format!("wh_{i}"), "acme", NOW + i);
        assert!(store.create_webhook(&webhook, 3).await.unwrap());
    }
    assert!(
        store
            .create_webhook(&endpoint("wh_x", "globex", NOW), 3)
            .await
            .unwrap()
    );
    let over = endpoint("wh_3", "acme", NOW + 3);
    assert!(!store.create_webhook(&over, 3).await.unwrap());
    assert_eq!(store.webhooks("acme").await.unwrap().len(), 3);
    assert!(store.delete_webhook("acme", "wh_1").await.unwrap());
    assert!(!store.delete_webhook("acme", "wh_1").await.unwrap());
    assert!(store.create_webhook(&over, 3).await.unwrap());
    assert!(
        !store
            .create_webhook(&endpoint("wh_4", "acme", NOW), 3)
            .await
            .unwrap()
    );
}

/// Racing registrations cannot take more places than the cap leaves.
pub async fn racing_registrations_respect_the_cap(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let webhook = endpoint(&format!("wh_{i}"), "acme", NOW);
            store.create_webhook(&webhook, 5).await.unwrap()
        }));
    }
    let mut created = 0;
    for task in tasks {
        if task.await.unwrap() {
            created += 1;
        }
    }
    assert_eq!(created, 5);
    assert_eq!(store.webhooks("acme").await.unwrap().len(), 5);
}

/// A delivery is replaced by its later attempts (keeping when it began), listed
/// newest first, and only the newest `keep` of an endpoint stay.
pub async fn deliveries_are_updated_listed_newest_first_and_bounded(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    create_endpoints(&*store, &["wh_a", "wh_b"]).await;
    for i in 0..5u64 {
        let d = delivery("wh_a", &format!("d_{i}"), NOW + i);
        assert!(store.record_delivery(&d, 3).await.unwrap());
    }
    let tied = delivery("wh_a", "d_9", NOW + 4);
    assert!(store.record_delivery(&tied, 3).await.unwrap());
    assert!(
        store
            .record_delivery(&delivery("wh_b", "d_0", NOW), 3)
            .await
            .unwrap()
    );
    let log = store
        .webhook_deliveries("acme", "wh_a", 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery_ids(&log), ["d_9", "d_4", "d_3"]);
    assert_eq!(log[0], tied);

    let delivered = WebhookDelivery {
        attempts: 3,
        outcome: DeliveryOutcome::Delivered,
        last_status: Some(204),
        last_error: None,
        created_at: NOW + 999,
        updated_at: NOW + 3_000,
        next_attempt_at: None,
        ..delivery("wh_a", "d_3", NOW + 3)
    };
    assert!(store.record_delivery(&delivered, 3).await.unwrap());
    let log = store
        .webhook_deliveries("acme", "wh_a", 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery_ids(&log), ["d_9", "d_4"]);
    let log = store
        .webhook_deliveries("acme", "wh_a", usize::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        log[2],
        WebhookDelivery {
            created_at: NOW + 3,
            ..delivered
        },
        "a later attempt keeps when the delivery began"
    );
    let other = store
        .webhook_deliveries("acme", "wh_b", 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery_ids(&other), ["d_0"]);
}

/// A page holds at most `MAX_DELIVERY_PAGE` deliveries whatever the limit asked.
pub async fn delivery_pages_are_clamped(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    create_endpoints(&*store, &["wh_a"]).await;
    let keep = MAX_DELIVERY_PAGE + 5;
    for i in 0..keep as u64 {
        let d = delivery("wh_a", &format!("d_{i:04}"), NOW + i);
        store.record_delivery(&d, keep).await.unwrap();
    }
    let log = store
        .webhook_deliveries("acme", "wh_a", usize::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log.len(), MAX_DELIVERY_PAGE);
    assert_eq!(log[0].delivery_id, format!("d_{:04}", keep - 1));
}

/// Deleting an endpoint removes its log; deliveries recorded for an endpoint that
/// does not exist (deleted meanwhile) are skipped; erasing a user leaves webhooks be.
pub async fn deliveries_go_with_their_endpoint(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    create_endpoints(&*store, &["wh_a"]).await;
    assert!(
        store
            .record_delivery(&delivery("wh_a", "d_1", NOW), 10)
            .await
            .unwrap()
    );
    create(&*store, &new_session("s1", "acme", Some("alice"), NOW)).await;
    store.erase_user("acme", "alice").await.unwrap();
    let log = store.webhook_deliveries("acme", "wh_a", 10).await.unwrap();
    assert_eq!(log.map(|l| l.len()), Some(1));

    assert!(store.delete_webhook("acme", "wh_a").await.unwrap());
    assert!(
        !store
            .record_delivery(&delivery("wh_a", "d_2", NOW), 10)
            .await
            .unwrap()
    );
    // Registered again under the same id: it starts with an empty log.
    create_endpoints(&*store, &["wh_a"]).await;
    assert_eq!(
        store.webhook_deliveries("acme", "wh_a", 10).await.unwrap(),
        Some(Vec::new())
    );
}

/// Times past `i64::MAX` are refused, as everywhere in the store.
pub async fn webhook_values_past_i64_are_errors(factory: &dyn StoreFactory) {
    let store = factory.make().await;
    let too_big = i64::MAX as u64 + 1;
    let refused = store
        .create_webhook(&endpoint("wh_late", "acme", too_big), 10)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Rejected(_))),
        "{refused:?}"
    );
    assert!(store.webhooks("acme").await.unwrap().is_empty());
    create_endpoints(&*store, &["wh_a"]).await;
    let late = WebhookDelivery {
        next_attempt_at: Some(too_big),
        ..delivery("wh_a", "d_1", NOW)
    };
    let refused = store.record_delivery(&late, 10).await;
    assert!(
        matches!(refused, Err(StoreError::Rejected(_))),
        "{refused:?}"
    );
    let log = store.webhook_deliveries("acme", "wh_a", 10).await.unwrap();
    assert_eq!(log, Some(Vec::new()));
}

/// Registers endpoints of `acme` with these ids.
async fn create_endpoints(store: &dyn ConversationStore, ids: &[&str]) {
    for id in ids {
        assert!(
            store
                .create_webhook(&endpoint(id, "acme", NOW), 10)
                .await
                .unwrap()
        );
    }
}
