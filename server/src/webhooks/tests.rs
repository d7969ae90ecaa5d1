//! Delivery on Tokio's paused clock with a scripted transport: when attempts happen,
//! what they carry, what the log and the metrics say, and what the bounds drop.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use switchboard_protocol::{Event, EventBody, Role, StreamName, TurnStatus};
use switchboard_store::{DeliveryOutcome, MemoryStore, WebhookDelivery};
use tokio::time::Instant;

use super::schedule::Attempt;
use super::signature::{ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use super::transport::Request;
use super::*;

const ORIGIN: &str = "http://127.0.0.1:9";

/// Answers from a script (then `otherwise`), recording each request and when it came.
struct Scripted {
    started: Instant,
    script: Mutex<VecDeque<Attempt>>,
    otherwise: Option<Attempt>,
    calls: Mutex<Vec<(Duration, Request)>>,
}

#[async_trait]
impl Transport for Scripted {
    async fn send(&self, request: Request) -> Attempt {
        self.calls
            .lock()
            .unwrap()
            .push((self.started.elapsed(), request));
        let next = self.script.lock().unwrap().pop_front();
        match next.or_else(|| self.otherwise.clone()) {
            Some(answer) => answer,
            // No answer ever: the delivery stays in flight.
            None => std::future::pending().await,
        }
    }
}

impl Scripted {
    fn calls(&self) -> Vec<(Duration, Request)> {
        self.calls.lock().unwrap().clone()
    }
}

fn status(code: u16) -> Attempt {
    Attempt::Answered {
        status: code,
        body: format!("status {code}"),
    }
}

/// Every session is in `acme`.
struct AllAcme;

#[async_trait]
impl SessionOrgs for AllAcme {
    async fn org_of(&self, _session_id: &str) -> Result<Option<String>, ClientError> {
        Ok(Some("acme".into()))
    }
}

struct Setup {
    webhooks: Webhooks,
    transport: Arc<Scripted>,
    store: Arc<MemoryStore>,
    metrics: Arc<Metrics>,
}

fn setup(script: &[Attempt], otherwise: Option<Attempt>, limits: WebhookLimits) -> Setup {
    let store = Arc::new(MemoryStore::new());
    let metrics = Arc::new(Metrics::new().unwrap());
    let transport = Arc::new(Scripted {
        started: Instant::now(),
        script: Mutex::new(script.iter().cloned().collect()),
        otherwise,
        calls: Mutex::new(Vec::new()),
    });
    let settings = WebhookSettings {
        allowed_origins: vec![ORIGIN.into()],
        limits,
    };
    let (webhooks, dispatcher) =
        Webhooks::new(store.clone(), metrics.clone(), settings, transport.clone());
    dispatcher.start(Arc::new(AllAcme));
    Setup {
        webhooks,
        transport,
        store,
        metrics,
    }
}

impl Setup {
    async fn register(&self, path: &str, events: &[&str]) -> switchboard_store::WebhookRow {
        let events: Vec<String> = events.iter().map(|e| e.to_string()).collect();
        self.webhooks
            .register("acme", &format!("{ORIGIN}/{path}"), &events)
            .await
            .unwrap()
    }

    fn created(&self, session_id: &str) {
        self.webhooks.notify(
            "acme",
            WebhookEvent::new(
                WebhookEventType::ConversationCreated,
                json!({"session_id": session_id}),
            ),
        );
    }

    /// Waits (on the paused clock) until `n` requests were made; panics after two
    /// virtual minutes.
    async fn calls_reach(&self, n: usize) -> Vec<(Duration, Request)> {
        for _ in 0..1_200 {
            let calls = self.transport.calls();
            if calls.len() >= n {
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{n} requests expected, got {}",
            self.transport.calls().len()
        );
    }

    async fn log(&self, webhook_id: &str) -> Vec<WebhookDelivery> {
        self.webhooks.deliveries("acme", webhook_id).await.unwrap()
    }

    fn counter(&self, family: &prometheus::IntCounterVec, label: &str) -> u64 {
        family.with_label_values(&[label]).get()
    }
}

/// A request's header.
fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request
        .headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test(start_paused = true)]
async fn retries_come_after_1_2_4_8_16_seconds_then_the_delivery_fails() {
    let s = setup(&[], Some(status(500)), WebhookLimits::default());
    let endpoint = s.register("hook", &["conversation.created"]).await;
    s.created("s_1");
    let calls = s.calls_reach(6).await;
    let at: Vec<u64> = calls.iter().map(|(at, _)| at.as_secs()).collect();
    assert_eq!(at, [0, 1, 3, 7, 15, 31]);
    let id = header(&calls[0].1, ID_HEADER).to_string();
    for (_, request) in &calls {
        assert_eq!(header(request, ID_HEADER), id, "one id for every attempt");
        let timestamp: u64 = header(request, TIMESTAMP_HEADER).parse().unwrap();
        assert_eq!(
            header(request, SIGNATURE_HEADER),
            sign(&endpoint.secret, &id, timestamp, &request.body)
        );
        assert_eq!(request.url, format!("{ORIGIN}/hook"));
    }
    let body: Value = serde_json::from_str(&calls[0].1.body).unwrap();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["type"], "conversation.created");
    assert_eq!(body["org_id"], "acme");
    assert_eq!(body["data"]["session_id"], "s_1");

    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(s.transport.calls().len(), 6, "no seventh attempt");
    let log = s.log(&endpoint.webhook_id).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].delivery_id, id);
    assert_eq!(
        (log[0].attempts, log[0].outcome, log[0].last_status),
        (6, DeliveryOutcome::Failed, Some(500))
    );
    assert_eq!(log[0].next_attempt_at, None);
    assert_eq!(s.counter(&s.metrics.webhook_deliveries, "failed"), 1);
    assert_eq!(s.counter(&s.metrics.webhook_attempts, "retryable"), 6);
    assert_eq!(s.metrics.webhook_queue.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_2xx_delivers_and_a_4xx_is_final() {
    let s = setup(
        &[status(503), status(204), status(410)],
        None,
        WebhookLimits::default(),
    );
    let endpoint = s.register("hook", &["conversation.created"]).await;
    s.created("s_1");
    let calls = s.calls_reach(2).await;
    assert_eq!(calls[1].0, Duration::from_secs(1));
    let log = s.log(&endpoint.webhook_id).await;
    assert_eq!(
        (log[0].attempts, log[0].outcome, log[0].last_status),
        (2, DeliveryOutcome::Delivered, Some(204))
    );
    assert_eq!(log[0].last_error, None);

    s.created("s_2");
    let calls = s.calls_reach(3).await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(s.transport.calls().len(), 3, "a 410 is not retried");
    // Both began within the same wall-clock millisecond: find the second by its id.
    let second = header(&calls[2].1, ID_HEADER);
    let log = s.log(&endpoint.webhook_id).await;
    let log: Vec<_> = log
        .into_iter()
        .filter(|d| d.delivery_id == second)
        .collect();
    assert_eq!(
        (log[0].attempts, log[0].outcome, log[0].last_status),
        (1, DeliveryOutcome::Failed, Some(410))
    );
    assert_eq!(log[0].last_error.as_deref(), Some("HTTP 410: status 410"));
    assert_eq!(s.counter(&s.metrics.webhook_deliveries, "delivered"), 1);
    assert_eq!(s.counter(&s.metrics.webhook_deliveries, "failed"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_delivery_waiting_for_its_retry_does_not_hold_back_the_next() {
    let s = setup(
        &[status(500), status(200), status(200)],
        None,
        WebhookLimits::default(),
    );
    s.register("hook", &["conversation.created"]).await;
    s.created("s_1");
    s.calls_reach(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.created("s_2");
    let calls = s.calls_reach(3).await;
    let sessions: Vec<(u128, String)> = calls
        .iter()
        .map(|(at, r)| {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            (at.as_millis(), body["data"]["session_id"].to_string())
        })
        .collect();
    assert_eq!(sessions[0], (0, "\"s_1\"".to_string()));
    assert_eq!(sessions[1].1, "\"s_2\"");
    assert!(sessions[1].0 < 1_000, "{sessions:?}");
    assert_eq!(sessions[2], (1_000, "\"s_1\"".to_string()));
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_holds_at_most_its_bound_and_the_rest_is_dropped() {
    let limits = WebhookLimits {
        pending_per_endpoint: 2,
        ..WebhookLimits::default()
    };
    // Never answers: the first delivery stays in flight, the second queued.
    let s = setup(&[], None, limits);
    s.register("hook", &["conversation.created"]).await;
    for session in ["s_1", "s_2", "s_3", "s_4"] {
        s.created(session);
    }
    s.calls_reach(1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        s.counter(&s.metrics.webhook_dropped, "endpoint_queue_full"),
        2
    );
    assert_eq!(s.metrics.webhook_queue.get(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_process_holds_at_most_its_bound_across_endpoints() {
    let limits = WebhookLimits {
        pending_per_process: 1,
        ..WebhookLimits::default()
    };
    let s = setup(&[], None, limits);
    s.register("a", &["conversation.created"]).await;
    s.register("b", &["conversation.created"]).await;
    s.created("s_1");
    s.calls_reach(1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.transport.calls().len(), 1);
    assert_eq!(
        s.counter(&s.metrics.webhook_dropped, "process_queue_full"),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_intake_drops_without_waiting() {
    let store = Arc::new(MemoryStore::new());
    let metrics = Arc::new(Metrics::new().unwrap());
    let settings = WebhookSettings {
        allowed_origins: Vec::new(),
        limits: WebhookLimits {
            intake: 1,
            ..WebhookLimits::default()
        },
    };
    let transport = Arc::new(Scripted {
        started: Instant::now(),
        script: Mutex::new(VecDeque::new()),
        otherwise: None,
        calls: Mutex::new(Vec::new()),
    });
    // The dispatcher is kept but never started: nothing drains the intake.
    let (webhooks, _dispatcher) = Webhooks::new(store, metrics.clone(), settings, transport);
    let event = WebhookEvent::new(WebhookEventType::TurnFailed, json!({}));
    webhooks.notify("acme", event.clone());
    webhooks.notify("acme", event);
    let dropped = metrics.webhook_dropped.with_label_values(&["intake_full"]);
    assert_eq!(dropped.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn deleting_an_endpoint_drops_its_waiting_retries() {
    let s = setup(&[], Some(status(500)), WebhookLimits::default());
    let endpoint = s.register("hook", &["conversation.created"]).await;
    s.created("s_1");
    s.calls_reach(1).await;
    s.webhooks
        .remove("acme", &endpoint.webhook_id)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(s.transport.calls().len(), 1);
    assert_eq!(s.counter(&s.metrics.webhook_dropped, "endpoint_deleted"), 1);
    assert_eq!(s.metrics.webhook_queue.get(), 0);
    let gone = s
        .webhooks
        .deliveries("acme", &endpoint.webhook_id)
        .await
        .unwrap_err();
    assert_eq!(gone.code, switchboard_protocol::ErrorCode::NotFound);
    let others = s.store.webhooks("acme").await.unwrap();
    assert!(others.is_empty());
}

#[tokio::test(start_paused = true)]
async fn session_events_reach_only_endpoints_subscribed_to_their_type() {
    let s = setup(&[], Some(status(200)), WebhookLimits::default());
    let messages = s.register("messages", &["message.created"]).await;
    let failures = s.register("failures", &["turn.failed"]).await;
    let stream = StreamName::session("s_1").unwrap();
    let appended = |seq, body| {
        Arc::new(Event {
            seq,
            ts: 1_000,
            traceparent: None,
            body,
        })
    };
    let message = EventBody::Message {
        message_id: "m_1".into(),
        role: Role::User,
        text: "hello".into(),
        author: None,
    };
    let end = |status| EventBody::TurnEnd {
        turn_id: "t_1".into(),
        status,
        text: String::new(),
        usage: None,
        sources: None,
        error: Some("the model failed".into()),
        code: None,
        retrying: None,
        assistant: None,
    };
    s.webhooks.observe(&stream, &appended(1, message));
    s.webhooks
        .observe(&stream, &appended(2, end(TurnStatus::Completed)));
    s.webhooks
        .observe(&stream, &appended(3, end(TurnStatus::Failed)));
    let user = StreamName::user("u1").unwrap();
    s.webhooks
        .observe(&user, &appended(4, end(TurnStatus::Failed)));
    let calls = s.calls_reach(2).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(s.transport.calls().len(), 2);
    let body_to = |path: &str| -> Value {
        let url = format!("{ORIGIN}/{path}");
        let (_, request) = calls.iter().find(|(_, r)| r.url == url).unwrap();
        serde_json::from_str(&request.body).unwrap()
    };
    let message = body_to("messages");
    assert_eq!(message["type"], "message.created");
    assert_eq!(message["data"]["event"]["text"], "hello");
    assert_eq!(message["data"]["event"]["seq"], 1);
    let failure = body_to("failures");
    assert_eq!(failure["type"], "turn.failed");
    assert_eq!(failure["data"]["session_id"], "s_1");
    assert_eq!(failure["data"]["event"]["status"], "failed");
    assert_eq!(s.log(&messages.webhook_id).await.len(), 1);
    assert_eq!(s.log(&failures.webhook_id).await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_org_registers_at_most_its_cap() {
    let limits = WebhookLimits {
        max_endpoints_per_org: 2,
        ..WebhookLimits::default()
    };
    let s = setup(&[], None, limits);
    s.register("a", &["turn.failed"]).await;
    s.register("b", &["turn.failed"]).await;
    let refused = s
        .webhooks
        .register("acme", &format!("{ORIGIN}/c"), &["turn.failed".into()])
        .await
        .unwrap_err();
    assert_eq!(refused.code, switchboard_protocol::ErrorCode::Conflict);
    assert!(refused.message.contains("at most") || refused.message.contains("most it may"));
    assert_eq!(s.webhooks.list("acme").await.unwrap().len(), 2);
}
