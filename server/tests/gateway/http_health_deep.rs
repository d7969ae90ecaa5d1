//! `GET /health/deep` (docs/protocol.md §6): each dependency with its status, latency
//! and a message; 200 only when all are ok; the model check cached; no secret, URL
//! or host in the body.

use serde_json::Value;
use switchboard_testkit::{RedisServer, free_port};

use crate::support::Gateway;
use crate::support::jwt::{self, JwksServer, RSA_PUBLIC};
use crate::support::upstream::{Reply as UpstreamReply, Upstream};

const MODEL_KEY: &str = "sk-model-secret-0123456789abcdef";
const URL_PASSWORD: &str = "url-password-0123456789";
const HS_SECRET: &str = "deep-health-hs256-secret-0123456789abcdefgh";
const ADMIN_SECRET: &str = "adm_deep_secret_0123456789abcdef";

async fn deep(gw: &Gateway) -> (u16, Value, String) {
    let resp = gw.get("/health/deep").await;
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, json, text)
}

/// With a real Redis backplane and the SQLite store everything is `ok` (200); with
/// Redis killed the answer is 503 and names the backplane as `down`, while the store
/// and the offline model stay `ok`.
#[tokio::test]
async fn every_dependency_ok_then_the_backplane_down() {
    const REDIS_PASSWORD: &str = "redis-password-0123456789";
    let mut redis = RedisServer::start_with_args(&["--requirepass", REDIS_PASSWORD]);
    let url = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}", redis.port());
    let gw = Gateway::start(&["--backplane", &url]);
    let (status, body, text) = deep(&gw).await;
    assert!(!text.contains(REDIS_PASSWORD), "{text}");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok", "{body}");
    let checks = &body["checks"];
    assert_eq!(checks["backplane"]["kind"], "redis", "{body}");
    assert_eq!(checks["backplane"]["status"], "ok", "{body}");
    assert!(checks["backplane"]["latency_ms"].is_u64(), "{body}");
    assert_eq!(checks["store"]["kind"], "sqlite", "{body}");
    assert_eq!(checks["store"]["status"], "ok", "{body}");
    assert_eq!(checks["model"]["kind"], "offline", "{body}");
    assert_eq!(checks["model"]["status"], "ok", "{body}");
    assert!(
        checks.get("jwks").is_none(),
        "no JWKS URL, no check: {body}"
    );
    assert_eq!(gw.get("/ready").await.status(), 200);

    redis.stop();
    let (status, body, text) = deep(&gw).await;
    assert!(!text.contains(REDIS_PASSWORD), "{text}");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "down", "{body}");
    assert_eq!(body["checks"]["backplane"]["status"], "down", "{body}");
    assert!(
        body["checks"]["backplane"]["message"]
            .as_str()
            .unwrap()
            .contains("backplane"),
        "{body}"
    );
    assert_eq!(body["checks"]["store"]["status"], "ok", "{body}");
    let latency = body["checks"]["backplane"]["latency_ms"].as_u64().unwrap();
    assert!(latency <= 3000, "each check has a timeout: {latency} ms");
}

/// A model endpoint that does not answer (a closed port) is `down` and the answer 503;
/// the check is cached (a second call does not try again). Nothing in the body is a
/// secret, a URL or a host, though the configuration is full of them.
#[tokio::test]
async fn a_model_endpoint_down_is_reported_cached_and_without_secrets() {
    let port = free_port();
    let base_url = format!("http://modeluser:{URL_PASSWORD}@127.0.0.1:{port}/v1");
    let gw = Gateway::start_with_env(
        &[
            "--model-provider",
            "openai",
            "--model-base-url",
            &base_url,
            "--jwt-hs256-secret",
            HS_SECRET,
            "--admin-keys",
            &format!("ops:{ADMIN_SECRET}"),
        ],
        &[("SWITCHBOARD_MODEL_API_KEY", MODEL_KEY)],
    );
    let (status, body, text) = deep(&gw).await;
    assert_eq!(status, 503, "{body}");
    let model = &body["checks"]["model"];
    assert_eq!(model["kind"], "openai", "{body}");
    assert_eq!(model["status"], "down", "{body}");
    assert_eq!(model["cached"], false, "{body}");
    assert_eq!(body["checks"]["backplane"]["status"], "ok", "{body}");

    let (status, again, again_text) = deep(&gw).await;
    assert_eq!(status, 503);
    assert_eq!(again["checks"]["model"]["cached"], true, "{again}");
    assert_eq!(again["checks"]["model"]["message"], model["message"]);

    for shown in [&text, &again_text] {
        for secret in [
            MODEL_KEY,
            URL_PASSWORD,
            "modeluser",
            HS_SECRET,
            ADMIN_SECRET,
            "127.0.0.1",
            &port.to_string(),
            "http",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}

/// A reachable model endpoint is `ok`: the check is `GET {base}/models` with the API
/// key, made once for several calls within the cache's 10 s.
#[tokio::test]
async fn a_reachable_model_endpoint_is_checked_once_per_interval() {
    let upstream = Upstream::start().await;
    upstream.push(UpstreamReply::status_text(
        200,
        "{\"object\":\"list\",\"data\":[]}",
    ));
    let base_url = upstream.base_url();
    let gw = Gateway::start_with_env(
        &["--model-provider", "openai", "--model-base-url", &base_url],
        &[("SWITCHBOARD_MODEL_API_KEY", MODEL_KEY)],
    );
    for _ in 0..3 {
        let (status, body, _) = deep(&gw).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["checks"]["model"]["status"], "ok", "{body}");
    }
    let requests = upstream.requests();
    assert_eq!(requests.len(), 1, "one check for three calls: {requests:?}");
    assert_eq!(requests[0].path, "/v1/models");
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {MODEL_KEY}").as_str())
    );
}

/// With `--jwks-url` the URL is checked too (fetched again, cached like the model
/// check), and shown by kind only.
#[tokio::test]
async fn a_jwks_url_is_checked_and_cached() {
    let server = JwksServer::start(jwt::jwks(vec![jwt::rsa_jwk(RSA_PUBLIC, "k1")]));
    let gw = Gateway::start(&["--jwks-url", &server.url, "--insecure-jwks-http-for-tests"]);
    let fetched_at_boot = server.fetches();
    let (status, body, text) = deep(&gw).await;
    assert_eq!(status, 200, "{body}");
    let jwks = &body["checks"]["jwks"];
    assert_eq!(jwks["kind"], "jwks_url", "{body}");
    assert_eq!(jwks["status"], "ok", "{body}");
    assert_eq!(jwks["cached"], false, "{body}");
    assert_eq!(server.fetches(), fetched_at_boot + 1);
    let (_, again, _) = deep(&gw).await;
    assert_eq!(again["checks"]["jwks"]["cached"], true, "{again}");
    assert_eq!(server.fetches(), fetched_at_boot + 1, "cached for 10 s");
    assert!(
        !text.contains("jwks.json") && !text.contains("127.0.0.1"),
        "{text}"
    );
}
