//! A customer's webhook receiver on 127.0.0.1: answers each POST with the next status of
//! its script (then 200), and checks each request's signature itself — HMAC-SHA256 of
//! `"{id}.{timestamp}.{body}"` keyed with the endpoint's secret, as docs/webhooks.md
//! tells receivers to — recording whether it held.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use switchboard_testkit::eventually;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub id: String,
    pub timestamp: u64,
    pub body: Value,
    /// Whether `Switchboard-Webhook-Signature` was right for the secret set then.
    pub signature_valid: bool,
    /// What the receiver answered.
    pub answered: u16,
}

#[derive(Default)]
struct Shared {
    script: VecDeque<u16>,
    secrets: Vec<String>,
    hits: Vec<Hit>,
}

pub struct WebhookReceiver {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    /// Listen on `127.0.0.1:0`; the first requests get `script`'s statuses, the rest 200.
    pub async fn start(script: &[u16]) -> WebhookReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook receiver");
        let addr = listener.local_addr().expect("receiver address");
        let shared = Arc::new(Mutex::new(Shared {
            script: script.iter().copied().collect(),
            ..Shared::default()
        }));
        let app = Router::new().fallback(receive).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WebhookReceiver {
            addr,
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:<port>`, for `--webhook-endpoint-origins`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// Accept signatures made with `secret` (an endpoint's, once registered).
    pub fn trust(&self, secret: &str) {
        self.shared.lock().unwrap().secrets.push(secret.to_string());
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.lock().unwrap().hits.clone()
    }

    /// The requests on `path`.
    pub fn hits_on(&self, path: &str) -> Vec<Hit> {
        let wanted = format!("/{path}");
        self.hits()
            .into_iter()
            .filter(|h| h.path == wanted)
            .collect()
    }

    /// Waits (bounded) until `path` got `n` requests matching `wanted`; returns them.
    pub async fn wait_for(
        &self,
        path: &str,
        n: usize,
        within: Duration,
        wanted: impl Fn(&Hit) -> bool,
    ) -> Vec<Hit> {
        let what = format!("{n} webhook requests on /{path}");
        eventually(within, &what, || {
            let hits: Vec<Hit> = self.hits_on(path).into_iter().filter(&wanted).collect();
            let got = hits.len();
            async move {
                if got >= n {
                    Ok(hits)
                } else {
                    Err(format!("{got} so far"))
                }
            }
        })
        .await
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `v1=<hex HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`, computed here.
pub fn expected_signature(secret: &str, id: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("v1={hex}")
}

async fn receive(
    State(shared): State<Arc<Mutex<Shared>>>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let id = header("switchboard-webhook-id");
    let timestamp = header("switchboard-webhook-timestamp");
    let signature = header("switchboard-webhook-signature");
    let mut shared = shared.lock().unwrap();
    let signature_valid = shared
        .secrets
        .iter()
        .any(|secret| expected_signature(secret, &id, &timestamp, &body) == signature);
    let answered = shared.script.pop_front().unwrap_or(200);
    shared.hits.push(Hit {
        path: uri.path().to_string(),
        id,
        timestamp: timestamp.parse().unwrap_or(0),
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        signature_valid,
        answered,
    });
    StatusCode::from_u16(answered).unwrap()
}
