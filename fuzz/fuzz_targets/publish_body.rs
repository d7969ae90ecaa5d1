//! A `POST /v1/publish` body, through the gateway's real router (memory backplane and
//! store, a publisher key): the body limit, the JSON extractor, the request's checks,
//! the permission decision, the stream name and the append
//! (server/src/http/api/publish.rs).
//!
//! Input: one byte picking the `Content-Type` (JSON, JSON with a charset, text, none),
//! then the body.
//!
//! Properties: no input panics or gets a 5xx; every answer is JSON: `202 {"seq":n}`,
//! or `{"error":{"code","message"}}` whose protocol code has exactly the answer's
//! status, with a message.

#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use clap::Parser;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchboard::AppState;
use switchboard::config::{BackplaneChoice, ServeConfig};
use switchboard_protocol::ErrorCode;
use tower::ServiceExt as _;

const PUBLISHER_KEY: &str = "fuzz-publisher-key-0123456789";

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    serve: ServeConfig,
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: Router,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let keys = format!("fuzz:{PUBLISHER_KEY}");
        let flags = Flags::try_parse_from([
            "switchboard",
            "--store",
            "memory",
            "--publisher-keys",
            keys.as_str(),
            // One event of history per stream: the fuzzer publishes to many.
            "--history-max-events",
            "1",
        ])
        .expect("the flags parse");
        let router = runtime.block_on(async {
            let state = AppState::build(flags.serve, BackplaneChoice::Memory)
                .await
                .expect("the state builds");
            switchboard::app(state).expect("the router builds")
        });
        Fixture { runtime, router }
    })
}

const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("text/plain"),
    None,
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let fixture = fixture();
    let mut request = Request::post("/v1/publish")
        .header(header::AUTHORIZATION, format!("Bearer {PUBLISHER_KEY}"));
    if let Some(content_type) = CONTENT_TYPES[usize::from(mode) % CONTENT_TYPES.len()] {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    let mut request = request.body(Body::from(body.to_vec())).expect("a request");
    // What `axum::serve` gives every request: the peer's address.
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let (status, answer) = fixture.runtime.block_on(async {
        let response = fixture
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("the answer body reads");
        (status, bytes)
    });
    assert!(
        !status.is_server_error(),
        "{status} for {:?}: {}",
        String::from_utf8_lossy(body),
        String::from_utf8_lossy(&answer)
    );
    let answer: Value = serde_json::from_slice(&answer).unwrap_or_else(|e| {
        panic!(
            "{status} answered with a body that is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&answer)
        )
    });
    if status == StatusCode::ACCEPTED {
        assert!(answer["seq"].is_u64(), "202 without a seq: {answer}");
        return;
    }
    let code: ErrorCode = serde_json::from_value(answer["error"]["code"].clone())
        .unwrap_or_else(|e| panic!("{status} without a protocol error code ({e}): {answer}"));
    assert_eq!(
        code.http_status(),
        status.as_u16(),
        "code {code:?} answered with status {status}: {answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{status} without a message: {answer}"
    );
});
