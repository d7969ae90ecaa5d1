//! Registering, listing and deleting an org's endpoints, and reading their delivery
//! logs. Who may is decided by `access::policy` before these run; an endpoint is only
//! ever looked up within the org the caller administers, so another org's is
//! `not_found`, as one that does not exist.

use switchboard_backplane::now_ms;
use switchboard_protocol::ErrorCode;
use switchboard_store::{WebhookDelivery, WebhookRow};

use super::Webhooks;
use super::event::WebhookEventType;
use super::signature::new_secret;
use crate::error::ClientError;
use crate::ids::{is_plausible_own_id, new_id};

/// Longest endpoint URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

impl Webhooks {
    /// Register an endpoint of `org_id` at `url` for `events` (wire names). The
    /// answer carries the new secret: the only time anyone sees it.
    pub async fn register(
        &self,
        org_id: &str,
        url: &str,
        events: &[String],
    ) -> Result<WebhookRow, ClientError> {
        let url = checked_url(url, &self.shared.settings.allowed_origins)?;
        let events = checked_events(events)?;
        let row = WebhookRow {
            webhook_id: new_id("wh"),
            org_id: org_id.to_string(),
            url,
            events,
            secret: new_secret(),
            created_at: now_ms(),
        };
        let max = self.shared.settings.limits.max_endpoints_per_org;
        if !self.shared.store.create_webhook(&row, max).await? {
            return Err(ClientError::new(
                ErrorCode::Conflict,
                format!(
                    "org {org_id} has {max} webhook endpoints, the most it may have; delete one first (DELETE /v1/admin/webhooks/{{webhook_id}})"
                ),
            ));
        }
        self.shared.endpoints.forget(org_id);
        Ok(row)
    }

    /// `org_id`'s endpoints, oldest first.
    pub async fn list(&self, org_id: &str) -> Result<Vec<WebhookRow>, ClientError> {
        Ok(self.shared.store.webhooks(org_id).await?)
    }

    /// Delete `org_id`'s endpoint `webhook_id` and its log; its pending deliveries on
    /// this replica are dropped at once, on others within `ENDPOINTS_TTL`.
    pub async fn remove(&self, org_id: &str, webhook_id: &str) -> Result<(), ClientError> {
        if !is_plausible_own_id(webhook_id)
            || !self.shared.store.delete_webhook(org_id, webhook_id).await?
        {
            return Err(not_found());
        }
        self.shared.endpoints.forget(org_id);
        self.shared.queues.stop(webhook_id);
        Ok(())
    }

    /// The delivery log of `org_id`'s endpoint `webhook_id`, newest first.
    pub async fn deliveries(
        &self,
        org_id: &str,
        webhook_id: &str,
    ) -> Result<Vec<WebhookDelivery>, ClientError> {
        if !is_plausible_own_id(webhook_id) {
            return Err(not_found());
        }
        let keep = self.shared.settings.limits.log_keep;
        self.shared
            .store
            .webhook_deliveries(org_id, webhook_id, keep)
            .await?
            .ok_or_else(not_found)
    }
}

fn not_found() -> ClientError {
    ClientError::new(
        ErrorCode::NotFound,
        "no such webhook endpoint in this org (list them: GET /v1/admin/webhooks)",
    )
}

/// `url` if it is an http(s) URL without credentials on an allowed origin.
fn checked_url(url: &str, allowed: &[String]) -> Result<String, ClientError> {
    if url.is_empty() || url.len() > MAX_URL_BYTES {
        return Err(ClientError::bad_request(format!(
            "\"url\" must be 1 to {MAX_URL_BYTES} bytes"
        )));
    }
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            ClientError::bad_request(format!(
                "\"url\" '{url}' is not an http(s) URL; write e.g. https://hooks.example.com/switchboard"
            ))
        })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ClientError::bad_request(
            "\"url\" must not carry credentials (user:password@); deliveries are signed instead",
        ));
    }
    let origin = parsed.origin().ascii_serialization();
    if !allowed.contains(&origin) {
        let listed = if allowed.is_empty() {
            "none is allowed yet".to_string()
        } else {
            format!("allowed: {}", allowed.join(", "))
        };
        return Err(ClientError::forbidden(format!(
            "webhook endpoint origin {origin} is not allowed ({listed}); the operator lists allowed origins in --webhook-endpoint-origins (SWITCHBOARD_WEBHOOK_ENDPOINT_ORIGINS)"
        )));
    }
    Ok(parsed.to_string())
}

/// `events` if every one is a known type and there is at least one; duplicates go.
fn checked_events(events: &[String]) -> Result<Vec<String>, ClientError> {
    if events.is_empty() {
        return Err(ClientError::bad_request(format!(
            "\"events\" must name at least one event type: {}",
            WebhookEventType::names()
        )));
    }
    let mut kept: Vec<String> = Vec::new();
    for name in events {
        if WebhookEventType::parse(name).is_none() {
            return Err(ClientError::bad_request(format!(
                "unknown event type '{}'; the event types are {}",
                name.chars().take(64).collect::<String>(),
                WebhookEventType::names()
            )));
        }
        if !kept.contains(name) {
            kept.push(name.clone());
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec![
            "https://hooks.example.com".into(),
            "http://127.0.0.1:8080".into(),
        ]
    }

    #[test]
    fn only_http_urls_on_an_allowed_origin_pass() {
        assert_eq!(
            checked_url("https://hooks.example.com/in?x=1", &allowed()).unwrap(),
            "https://hooks.example.com/in?x=1"
        );
        assert!(checked_url("https://HOOKS.example.com:443/in", &allowed()).is_ok());
        assert!(checked_url("http://127.0.0.1:8080/", &allowed()).is_ok());
        for refused in [
            "http://127.0.0.1:8081/",
            "http://hooks.example.com/in",
            "https://hooks.example.com.evil.test/",
            "http://169.254.169.254/latest/meta-data",
        ] {
            let e = checked_url(refused, &allowed()).unwrap_err();
            assert_eq!(e.code, ErrorCode::Forbidden);
            assert!(e.message.contains("--webhook-endpoint-origins"), "{e}");
        }
        let e = checked_url("https://hooks.example.com/", &[]).unwrap_err();
        assert!(e.message.contains("none is allowed"), "{e}");
        for bad in [
            "",
            "ftp://hooks.example.com/",
            "hooks.example.com",
            "file:///etc",
        ] {
            assert!(checked_url(bad, &allowed()).is_err(), "{bad}");
        }
        let e = checked_url("https://u:p@hooks.example.com/", &allowed()).unwrap_err();
        assert!(e.message.contains("credentials"), "{e}");
        let long = format!("https://hooks.example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(checked_url(&long, &allowed()).is_err());
    }

    #[test]
    fn event_types_are_known_at_least_one_and_deduplicated() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            checked_events(&names(&["turn.failed", "message.created", "turn.failed"])).unwrap(),
            names(&["turn.failed", "message.created"])
        );
        let e = checked_events(&names(&["turn.failed", "message.sent"])).unwrap_err();
        assert!(e.message.contains("message.sent"), "{e}");
        assert!(e.message.contains("conversation.created"), "{e}");
        assert!(checked_events(&[]).is_err());
    }
}
