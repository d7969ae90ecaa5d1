//! A customer's tool backend: answers every POST with a fixed JSON body and records
//! what it received (headers and body), so tests see whether a tool ran and as whom.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::Value;

/// One call the backend received.
#[derive(Debug, Clone)]
pub struct ToolHit {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Clone)]
struct Shared {
    answer: Value,
    hits: Arc<Mutex<Vec<ToolHit>>>,
}

pub struct ToolBackend {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<ToolHit>>>,
    server: tokio::task::JoinHandle<()>,
}

impl ToolBackend {
    /// Listen on `127.0.0.1:0`; every call is answered 200 with `answer`.
    pub async fn start(answer: Value) -> ToolBackend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the tool backend");
        let addr = listener.local_addr().expect("tool backend address");
        let hits = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            answer,
            hits: hits.clone(),
        };
        let app = Router::new().fallback(record).with_state(shared);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ToolBackend { addr, hits, server }
    }

    /// The URL of the tool `name` on this backend.
    pub fn endpoint(&self, name: &str) -> String {
        format!("http://{}/tools/{name}", self.addr)
    }

    pub fn hits(&self) -> Vec<ToolHit> {
        self.hits.lock().unwrap().clone()
    }
}

impl Drop for ToolBackend {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(
    State(shared): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    shared.hits.lock().unwrap().push(ToolHit {
        path: uri.path().to_string(),
        headers,
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
    });
    axum::Json(shared.answer.clone())
}
