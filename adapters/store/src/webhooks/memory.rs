//! The webhook part of [`crate::MemoryStore`]'s state: endpoints and their delivery
//! logs in maps, with the SQL stores' orders, bounds and limits.

use std::collections::{BTreeMap, HashMap};

use crate::convert::to_db;
use crate::{MAX_DELIVERY_PAGE, StoreError, WebhookDelivery, WebhookRow};

#[derive(Debug, Default)]
pub(crate) struct Webhooks {
    /// By `webhook_id`.
    endpoints: BTreeMap<String, WebhookRow>,
    /// By `webhook_id`, then `delivery_id`.
    deliveries: HashMap<String, HashMap<String, WebhookDelivery>>,
}

/// Newest first: the greater `created_at`, ties the greater id (bytewise).
fn newest_first(a: &WebhookDelivery, b: &WebhookDelivery) -> std::cmp::Ordering {
    (b.created_at, &b.delivery_id).cmp(&(a.created_at, &a.delivery_id))
}

impl Webhooks {
    pub(crate) fn create(
        &mut self,
        webhook: &WebhookRow,
        max_per_org: usize,
    ) -> Result<bool, StoreError> {
        to_db(webhook.created_at, "created_at")?;
        if self.endpoints.contains_key(&webhook.webhook_id) {
            return Err(StoreError::Rejected(format!(
                "webhook {} exists",
                webhook.webhook_id
            )));
        }
        let count = self
            .endpoints
            .values()
            .filter(|w| w.org_id == webhook.org_id)
            .count();
        if count >= max_per_org {
            return Ok(false);
        }
        self.endpoints
            .insert(webhook.webhook_id.clone(), webhook.clone());
        Ok(true)
    }

    pub(crate) fn of_org(&self, org_id: &str) -> Vec<WebhookRow> {
        let mut rows: Vec<WebhookRow> = self
            .endpoints
            .values()
            .filter(|w| w.org_id == org_id)
            .cloned()
            .collect();
        rows.sort_by(|a, b| (a.created_at, &a.webhook_id).cmp(&(b.created_at, &b.webhook_id)));
        rows
    }

    fn exists_in(&self, org_id: &str, webhook_id: &str) -> bool {
        self.endpoints
            .get(webhook_id)
            .is_some_and(|w| w.org_id == org_id)
    }

    pub(crate) fn delete(&mut self, org_id: &str, webhook_id: &str) -> bool {
        if !self.exists_in(org_id, webhook_id) {
            return false;
        }
        self.endpoints.remove(webhook_id);
        self.deliveries.remove(webhook_id);
        true
    }

    pub(crate) fn record(
        &mut self,
        delivery: &WebhookDelivery,
        keep: usize,
    ) -> Result<bool, StoreError> {
        // The SQL stores refuse what does not fit a BIGINT: so does this.
        to_db(delivery.created_at, "created_at")?;
        to_db(delivery.updated_at, "updated_at")?;
        if let Some(at) = delivery.next_attempt_at {
            to_db(at, "next_attempt_at")?;
        }
        if !self.endpoints.contains_key(&delivery.webhook_id) {
            return Ok(false);
        }
        let log = self
            .deliveries
            .entry(delivery.webhook_id.clone())
            .or_default();
        let mut stored = delivery.clone();
        if let Some(earlier) = log.get(&delivery.delivery_id) {
            stored.created_at = earlier.created_at;
        }
        log.insert(stored.delivery_id.clone(), stored);
        if log.len() > keep {
            let mut all: Vec<&WebhookDelivery> = log.values().collect();
            all.sort_by(|a, b| newest_first(a, b));
            let dropped: Vec<String> = all
                .iter()
                .skip(keep)
                .map(|d| d.delivery_id.clone())
                .collect();
            for id in dropped {
                log.remove(&id);
            }
        }
        Ok(true)
    }

    pub(crate) fn log(
        &self,
        org_id: &str,
        webhook_id: &str,
        max: usize,
    ) -> Option<Vec<WebhookDelivery>> {
        if !self.exists_in(org_id, webhook_id) {
            return None;
        }
        let mut all: Vec<WebhookDelivery> = self
            .deliveries
            .get(webhook_id)
            .map(|log| log.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(newest_first);
        all.truncate(max.min(MAX_DELIVERY_PAGE));
        Some(all)
    }
}
