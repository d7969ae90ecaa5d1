//! The one dispatching task: from a notice to a delivery queued per subscribed
//! endpoint. Sessions' orgs are cached here (a session never changes org), so a busy
//! conversation costs one lookup per replica.

use std::collections::HashMap;
use std::sync::Arc;

use switchboard_backplane::now_ms;
use switchboard_protocol::Event;
use tokio::sync::mpsc;

use super::delivery::{Delivery, Target};
use super::event::{WebhookEvent, WebhookEventType, payload};
use super::{SessionOrgs, Shared};
use crate::ids::new_id;

/// Sessions whose org is kept; past it the cache starts over.
const MAX_CACHED_SESSIONS: usize = 10_000;

/// What the intake queue holds.
pub(crate) enum Notice {
    /// An event of an org, its data ready.
    Org { org_id: String, event: WebhookEvent },
    /// A session event; its org is looked up, its data built only if an endpoint
    /// wants it.
    Session {
        session_id: String,
        kind: WebhookEventType,
        event: Arc<Event>,
    },
}

pub(crate) async fn run(
    mut receiver: mpsc::Receiver<Notice>,
    shared: Arc<Shared>,
    orgs: Arc<dyn SessionOrgs>,
) {
    let mut session_orgs: HashMap<String, String> = HashMap::new();
    while let Some(notice) = receiver.recv().await {
        let (org_id, kind) = match &notice {
            Notice::Org { org_id, event } => (org_id.clone(), event.kind),
            Notice::Session {
                session_id, kind, ..
            } => match org_of(&mut session_orgs, orgs.as_ref(), session_id).await {
                Some(org_id) => (org_id, *kind),
                None => {
                    shared.drops.dropped("session_unknown");
                    continue;
                }
            },
        };
        let current = match shared.endpoints.current(&org_id).await {
            Ok(current) => current,
            Err(e) => {
                tracing::warn!(org_id, error = %e, "webhook endpoints unreadable");
                shared.drops.dropped("store_unavailable");
                continue;
            }
        };
        for gone in &current.vanished {
            shared.queues.stop(gone);
        }
        let targets: Vec<Target> = current
            .rows
            .iter()
            .filter(|row| row.events.iter().any(|name| name == kind.as_str()))
            .map(|row| Target {
                webhook_id: row.webhook_id.clone(),
                url: row.url.clone(),
                secret: row.secret.clone(),
            })
            .collect();
        if targets.is_empty() {
            continue;
        }
        let event = match notice {
            Notice::Org { event, .. } => event,
            Notice::Session {
                session_id,
                kind,
                event,
            } => WebhookEvent::session_event(kind, &session_id, &event),
        };
        let id = new_id("evt");
        let delivery = Delivery {
            body: Arc::from(payload(&id, now_ms(), &org_id, &event)),
            id: Arc::from(id),
            kind,
        };
        for target in &targets {
            shared.queues.enqueue(target, delivery.clone());
        }
    }
}

/// The org of `session_id`: cached, else asked (and cached). `None` when the session
/// is gone or the lookup failed (logged).
async fn org_of(
    cache: &mut HashMap<String, String>,
    orgs: &dyn SessionOrgs,
    session_id: &str,
) -> Option<String> {
    if let Some(org) = cache.get(session_id) {
        return Some(org.clone());
    }
    match orgs.org_of(session_id).await {
        Ok(Some(org)) => {
            if cache.len() >= MAX_CACHED_SESSIONS {
                cache.clear();
            }
            cache.insert(session_id.to_string(), org.clone());
            Some(org)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(session_id, error = %e.message, "webhooks: the session's org is unknown");
            None
        }
    }
}
