//! What turns may cost (issue 20, M5): caps on concurrent turns bound the model
//! requests one visitor can drive, and an org's daily token budget stops new turns
//! once spent — against a local OpenAI-compatible upstream that counts requests.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::upstream::{Reply, Upstream};
use crate::support::{Client, Gateway, metric_sum, ty};

/// A gateway answering with the fake `upstream`, plus `extra` flags.
fn gateway(upstream: &Upstream, extra: &[&str]) -> Gateway {
    let base = upstream.base_url();
    let mut args = vec![
        "--model-provider",
        "openai",
        "--model-base-url",
        &base,
        "--model",
        "test-model",
        "--model-retries",
        "0",
        "--model-idle-timeout",
        "30s",
    ];
    args.extend_from_slice(extra);
    Gateway::start(&args)
}

const CONNECTIONS: usize = 20;
const SESSIONS_PER_CONNECTION: usize = 16;

/// One anonymous visitor: 20 connections × 16 sessions × 1 message, all at once. Its
/// turns reach the model at most `--max-concurrent-turns-per-principal` (default 4)
/// at a time; the others wait `--turn-slot-wait`, then end `failed` with
/// `code: "rate_limited"`, their messages stored. Before the caps, every one of the
/// 320 messages was an upstream request at the same moment.
#[tokio::test]
async fn one_anonymous_visitor_cannot_drive_unbounded_model_requests() {
    let upstream = Upstream::start().await;
    let total = CONNECTIONS * SESSIONS_PER_CONNECTION;
    for _ in 0..total {
        // Every request that gets through stays open until the turn deadline.
        upstream.push(Reply::hang());
    }
    let gw = gateway(
        &upstream,
        &[
            "--max-frames-per-second",
            "1000",
            "--turn-slot-wait",
            "2s",
            "--turn-deadline",
            "4s",
            // The session quotas would stop this visitor at 30 sessions first; this
            // test is about the turns it could start with the sessions it has.
            "--sessions-per-minute",
            "1000",
            "--max-live-sessions-per-principal",
            "1000",
        ],
    );
    let url = gw.ws_url();
    let visitors = join_all((0..CONNECTIONS).map(|_| {
        let url = url.clone();
        async move {
            let mut client = Client::connect(&url).await;
            let mut sessions = Vec::new();
            for _ in 0..SESSIONS_PER_CONNECTION {
                sessions.push(client.create_session().await.id);
            }
            for session in &sessions {
                let accepted = client.send_message(session, "What does it cost?").await;
                assert_eq!(ty(&accepted), "message.accepted");
            }
            client
        }
    }))
    .await;

    // Give every turn the time to reach the upstream, had nothing held it back.
    let _ = tokio::time::timeout(
        Duration::from_millis(1500),
        upstream.wait_for_requests_quietly(total),
    )
    .await;
    let concurrent = upstream.request_count();
    eprintln!("M5: concurrent upstream requests from one visitor: {concurrent} of {total}");
    assert!(
        concurrent <= 4,
        "one anonymous visitor drove {concurrent} concurrent model requests; the cap is 4"
    );

    let ends = join_all(visitors.into_iter().map(|mut client| async move {
        let mut ends = Vec::new();
        let mut messages = 0;
        while ends.len() < SESSIONS_PER_CONNECTION {
            let frame = client.next_frame().await;
            match ty(&frame) {
                "turn.end" => ends.push(frame),
                "message" if frame["role"] == "user" => messages += 1,
                _ => {}
            }
        }
        assert_eq!(messages, SESSIONS_PER_CONNECTION, "every message is stored");
        ends
    }))
    .await;
    let ends: Vec<Value> = ends.into_iter().flatten().collect();
    let limited: Vec<&Value> = ends
        .iter()
        .filter(|end| end["code"] == "rate_limited")
        .collect();
    assert_eq!(limited.len(), total - concurrent, "{:?}", ends.first());
    let end = limited[0];
    assert_eq!(end["status"], "failed", "{end}");
    let error = end["error"].as_str().unwrap();
    assert!(
        error.contains("for one person") && error.contains("send it again"),
        "{error}"
    );
    let metrics = gw.metrics().await;
    assert_eq!(
        metric_sum(
            &metrics,
            "switchboard_turns_refused_total",
            Some("reason=\"principal_busy\"")
        ),
        Some((total - concurrent) as f64),
        "{metrics}"
    );
}

/// The org's daily token budget: a turn's usage counts; a message queued before the
/// budget was spent gets a `turn.end` with `code: "budget_exhausted"`; afterwards
/// `message.send` is refused with the error `budget_exhausted` and nothing is stored.
/// Token usage per org is in the metrics.
#[tokio::test]
async fn a_spent_token_budget_refuses_new_turns_with_its_own_code() {
    let upstream = Upstream::start().await;
    // 11 prompt + 2 completion tokens, slowly enough to queue a second message.
    upstream.push(Reply::text(&["Fine", "."]).paced(Duration::from_millis(300)));
    let gw = gateway(&upstream, &["--org-daily-token-budget", "10"]);
    let mut client = Client::connect(&gw.ws_url()).await;
    let session = client.create_session().await.id;
    client.send_message(&session, "first").await;
    client.send_message(&session, "second").await;
    let mut ends = Vec::new();
    while ends.len() < 2 {
        let frame = client.next_frame().await;
        if ty(&frame) == "turn.end" {
            ends.push(frame);
        }
    }
    assert_eq!(ends[0]["status"], "completed", "{}", ends[0]);
    assert_eq!(ends[0]["usage"]["total_tokens"], 13);
    assert_eq!(ends[1]["status"], "failed", "{}", ends[1]);
    assert_eq!(ends[1]["code"], "budget_exhausted", "{}", ends[1]);
    assert_eq!(
        upstream.request_count(),
        1,
        "the second turn never reached the model"
    );

    let refused = client
        .request(
            "message.send",
            json!({"session_id": session, "text": "third"}),
        )
        .await;
    assert_eq!(ty(&refused), "error", "{refused}");
    assert_eq!(refused["code"], "budget_exhausted", "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("13 of its 10 tokens") && message.contains("00:00 UTC"),
        "{message}"
    );
    assert!(
        client
            .next_frame_within(Duration::from_millis(300))
            .await
            .is_none(),
        "nothing was appended for the refused message"
    );

    let metrics = gw.metrics().await;
    let tokens = |kind: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("switchboard_tokens_total{")
                    && l.contains(&format!("kind=\"{kind}\""))
                    && l.contains("org_id=\"default\"")
            })
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    };
    assert_eq!(tokens("prompt").as_deref(), Some("11"), "{metrics}");
    assert_eq!(tokens("completion").as_deref(), Some("2"), "{metrics}");
    assert_eq!(
        metric_sum(
            &metrics,
            "switchboard_turns_refused_total",
            Some("reason=\"budget_exhausted\"")
        ),
        Some(2.0),
        "the queued turn and the refused message: {metrics}"
    );
}

/// The budget is one total for all replicas: tokens used through one replica count on
/// the other (over Redis).
#[tokio::test]
async fn replicas_share_one_token_budget() {
    use crate::support::replicas::{Backing, Backplane, replica_with};

    let upstream = Upstream::start().await;
    upstream.push(Reply::text(&["One", "."]));
    upstream.push(Reply::text(&["Two", "."]));
    let backplane = Backplane::start(Backing::Redis);
    let base = upstream.base_url();
    let flags = [
        "--model-provider",
        "openai",
        "--model-base-url",
        &base,
        "--model",
        "test-model",
        "--model-retries",
        "0",
        "--org-daily-token-budget",
        "20",
    ];
    let a = replica_with(&backplane, "replica-a", &flags);
    let b = replica_with(&backplane, "replica-b", &flags);
    let mut on_a = Client::connect(&a.ws_url()).await;
    let mut on_b = Client::connect(&b.ws_url()).await;
    let session_a = on_a.create_session().await.id;
    let session_b = on_b.create_session().await.id;

    // 13 tokens through each replica: under 20 on either alone, 26 together.
    for (client, session) in [(&mut on_a, &session_a), (&mut on_b, &session_b)] {
        client.send_message(session, "hello").await;
        let end = client.next_of_type("turn.end").await;
        assert_eq!(end["status"], "completed", "{end}");
        assert_eq!(end["usage"]["total_tokens"], 13, "{end}");
    }
    for (client, session) in [(&mut on_a, &session_a), (&mut on_b, &session_b)] {
        let refused = client
            .request(
                "message.send",
                json!({"session_id": session, "text": "more"}),
            )
            .await;
        assert_eq!(refused["code"], "budget_exhausted", "{refused}");
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains("26 of its 20"),
            "{refused}"
        );
    }
}
