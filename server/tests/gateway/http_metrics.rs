//! The metric families of issue 22 in `/metrics`, each after one request that feeds
//! it: time to first token, model-call latency, tokens per org, HTTP requests by
//! route template, uptime and configuration reloads.

use std::time::Duration;

use serde_json::json;
use switchboard_testkit::eventually;

use crate::support::http::Api;
use crate::support::upstream::{Reply as UpstreamReply, Upstream};
use crate::support::{Client, Gateway, metric_sum};

const PUBLISHER: &str = "pub_metrics_secret_0123456789abcdef";
const ADMIN: &str = "adm_metrics_secret_0123456789abcdef";

#[tokio::test]
async fn each_new_family_shows_up_with_bounded_labels() {
    let upstream = Upstream::start().await;
    upstream.push(UpstreamReply::text(&["Hel", "lo"]));
    let base_url = upstream.base_url();
    let gw = Gateway::start(&[
        "--model-provider",
        "openai",
        "--model-base-url",
        &base_url,
        "--publisher-keys",
        &format!("backend:{PUBLISHER}"),
        "--admin-keys",
        &format!("ops:{ADMIN}"),
    ]);
    let api = Api::new(&gw);
    let mut client = Client::connect(&gw.ws_url()).await;
    let session = client.create_session().await;
    client.send_message(&session.id, "hello").await;
    client.collect_turns(1).await;
    let history = format!("/v1/sessions/{}/events", session.id);
    api.get(&history, Some(PUBLISHER))
        .await
        .expect(200, "history");
    api.get("/no/such/route", None).await;
    api.post("/v1/admin/reload", Some(ADMIN), &json!({}))
        .await
        .expect(200, "reload");

    let metrics = eventually(Duration::from_secs(5), "the turn counted", || async {
        let metrics = gw.metrics().await;
        match metric_sum(
            &metrics,
            "switchboard_tokens_total",
            Some("org_id=\"default\""),
        ) {
            Some(v) if v > 0.0 => Ok(metrics),
            other => Err(format!("tokens {other:?}")),
        }
    })
    .await;
    let sum = |name: &str, label: Option<&str>| {
        metric_sum(&metrics, name, label)
            .unwrap_or_else(|| panic!("{name} {label:?} missing:\n{metrics}"))
    };
    assert_eq!(
        sum("switchboard_time_to_first_token_seconds_count", None),
        1.0
    );
    assert_eq!(
        sum(
            "switchboard_model_call_seconds_count",
            Some("outcome=\"ok\",provider=\"openai\"")
        ),
        1.0
    );
    assert_eq!(
        sum(
            "switchboard_http_requests_total",
            Some("method=\"GET\",route=\"/v1/sessions/{session_id}/events\",status=\"2xx\"")
        ),
        1.0
    );
    assert_eq!(
        sum(
            "switchboard_http_requests_total",
            Some("method=\"GET\",route=\"unmatched\",status=\"4xx\"")
        ),
        1.0
    );
    assert!(
        sum(
            "switchboard_http_request_seconds_count",
            Some("method=\"POST\",route=\"/v1/admin/reload\"")
        ) >= 1.0
    );
    assert!(
        sum("switchboard_http_requests_total", Some("route=\"/ws\"")) >= 1.0,
        "the WebSocket upgrade is counted"
    );
    assert!(
        !metrics.contains(&session.id) && !metrics.contains("/no/such/route"),
        "a raw path never becomes a label:\n{metrics}"
    );
    assert!(sum("switchboard_uptime_seconds", None) > 0.0);
    assert!(sum("switchboard_start_time_seconds", None) > 1.7e9);
    assert_eq!(
        sum("switchboard_config_reloads_total", Some("result=\"ok\"")),
        1.0
    );
}
