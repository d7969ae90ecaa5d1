//! An OTLP/HTTP trace collector on 127.0.0.1: accepts `POST /v1/traces` with
//! `application/x-protobuf` bodies (decoded with the `opentelemetry-proto` types), and
//! keeps every span it was sent, with its service's instance id (the replica).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use switchboard_testkit::eventually;

/// One span as the receiver got it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub name: String,
    /// Hex, as trace viewers show them.
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// The resource's `service.name`.
    pub service: String,
    /// The resource's `service.instance.id`: the replica's server id.
    pub replica: String,
    pub attributes: BTreeMap<String, String>,
    pub start_ns: u64,
    pub end_ns: u64,
}

impl ReceivedSpan {
    /// An attribute, as text (`None`: the span does not have it).
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_ns.saturating_sub(self.start_ns))
    }
}

#[derive(Default)]
struct Shared {
    spans: Vec<ReceivedSpan>,
    /// Requests refused: not protobuf, or not an export request.
    refused: usize,
}

pub struct OtlpReceiver {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    /// Listen on a free port of 127.0.0.1.
    pub async fn start() -> OtlpReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP receiver");
        let addr = listener.local_addr().expect("receiver address");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        OtlpReceiver {
            addr,
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:<port>`, for `--otlp-endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.shared.lock().unwrap().spans.clone()
    }

    /// Requests that were not OTLP protobuf export requests.
    pub fn refused(&self) -> usize {
        self.shared.lock().unwrap().refused
    }

    /// The first span `wanted` accepts, waiting up to `within` for it to arrive.
    pub async fn wait_for(
        &self,
        within: Duration,
        what: &str,
        wanted: impl Fn(&ReceivedSpan) -> bool,
    ) -> ReceivedSpan {
        eventually(within, what, || {
            let found = self.spans().into_iter().find(|s| wanted(s));
            async move { found }
        })
        .await
    }

    /// The spans of `trace_id` as an indented tree (children under their parent, in
    /// start order): name, duration, replica and attributes.
    pub fn tree(&self, trace_id: &str) -> String {
        let mut spans: Vec<ReceivedSpan> = self
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect();
        spans.sort_by_key(|s| s.start_ns);
        let mut out = format!("trace {trace_id}\n");
        let ids: Vec<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
        for root in spans
            .iter()
            .filter(|s| !ids.contains(&s.parent_span_id.as_str()))
        {
            write_subtree(&mut out, &spans, root, 1);
        }
        out
    }
}

fn write_subtree(out: &mut String, spans: &[ReceivedSpan], span: &ReceivedSpan, depth: usize) {
    let attributes: Vec<String> = span
        .attributes
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("otel.") && !k.starts_with("busy_") && !k.starts_with("idle_")
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(
        out,
        "{}{} {:.1?} [{}] {}",
        "  ".repeat(depth),
        span.name,
        span.duration(),
        span.replica,
        attributes.join(" ")
    );
    for child in spans.iter().filter(|s| s.parent_span_id == span.span_id) {
        write_subtree(out, spans, child, depth + 1);
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let protobuf = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/x-protobuf");
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(request) if protobuf => request,
        _ => {
            shared.lock().unwrap().refused += 1;
            return (StatusCode::BAD_REQUEST, HeaderMap::new(), Vec::new());
        }
    };
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        let replica = resource
            .get("service.instance.id")
            .cloned()
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.push(ReceivedSpan {
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    service: service.clone(),
                    replica: replica.clone(),
                    attributes: attributes(&span.attributes),
                    start_ns: span.start_time_unix_nano,
                    end_ns: span.end_time_unix_nano,
                });
            }
        }
    }
    shared.lock().unwrap().spans.extend(received);
    let mut answer = HeaderMap::new();
    answer.insert(
        header::CONTENT_TYPE,
        "application/x-protobuf".parse().unwrap(),
    );
    (
        StatusCode::OK,
        answer,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(text).unwrap_or_default(),
            )
        })
        .collect()
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
