//! Session quotas (issue 20, H1): many short anonymous connections each creating
//! sessions get as far as the visitor's quota, then `rate_limited` with a retry hint;
//! other visitors are not affected, and what was created can still be joined.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::client::Client;
use crate::support::gateway::Gateway;
use crate::support::{metric_sum, ty};

/// `--sessions-per-minute`'s default.
const PER_MINUTE: u64 = 30;
/// Connections of the attack, each creating `SESSIONS_PER_CONNECTION` then leaving.
const CONNECTIONS: usize = 50;
const SESSIONS_PER_CONNECTION: usize = 16;

/// A visitor at `address`, as the proxy in front of the gateway says.
async fn visitor(gw: &Gateway, address: &str) -> Client {
    let mut request = gw.ws_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-forwarded-for", address.parse().unwrap());
    let (mut client, _) = Client::connect_request(request).await.unwrap();
    client.welcome = client.next_frame().await;
    assert_eq!(ty(&client.welcome), "welcome", "{}", client.welcome);
    client
}

/// Send `n` `session.create`s at once (each with 4 KiB of metadata, the most allowed)
/// and return the replies.
async fn create_burst(client: &mut Client, n: usize) -> Vec<Value> {
    let metadata = json!({"pad": "x".repeat(4000)});
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = client.new_id();
        client
            .send_json(json!({"type": "session.create", "id": id, "metadata": metadata}))
            .await;
        ids.push(id);
    }
    let mut replies = Vec::new();
    for id in ids {
        replies.push(client.reply_to(&id).await);
    }
    replies
}

#[tokio::test]
async fn many_short_anonymous_connections_create_no_more_sessions_than_the_visitors_quota() {
    let gw = Gateway::start(&["--trusted-proxies", "127.0.0.1", "--store", "memory"]);
    let rss_before = gw.rss_kib();
    let started = Instant::now();
    let mut created: Vec<(String, String)> = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut attacker = visitor(&gw, "203.0.113.7").await;
        for reply in create_burst(&mut attacker, SESSIONS_PER_CONNECTION).await {
            match ty(&reply) {
                "session.created" => created.push((
                    reply["session_id"].as_str().unwrap().to_string(),
                    reply["session_key"].as_str().unwrap().to_string(),
                )),
                "error" => refused.push(reply),
                other => panic!("unexpected reply {other}: {reply}"),
            }
        }
        drop(attacker);
    }
    let elapsed = started.elapsed();
    let attempts = CONNECTIONS * SESSIONS_PER_CONNECTION;
    eprintln!(
        "H1: {attempts} session.create over {CONNECTIONS} connections in {elapsed:?}: {} created, {} refused; RSS {} → {} KiB",
        created.len(),
        refused.len(),
        rss_before,
        gw.rss_kib()
    );

    // The quota: a minute's worth (more only if this test took minutes).
    let allowed = PER_MINUTE * (1 + elapsed.as_secs() / 60);
    assert!(
        created.len() as u64 >= PER_MINUTE && created.len() as u64 <= allowed,
        "{} sessions created by one visitor in {elapsed:?}; the quota is {PER_MINUTE} a minute",
        created.len()
    );
    assert_eq!(created.len() + refused.len(), attempts);
    for error in &refused {
        assert_eq!(error["code"], "rate_limited", "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("this visitor created")
                && message.contains("sessions in the last minute")
                && message.contains("retry in"),
            "{error}"
        );
        let retry = error["retry_after_ms"].as_u64().unwrap_or(0);
        assert!((1..=60_000).contains(&retry), "{error}");
    }

    // Metrics say what happened.
    let metrics = gw.metrics().await;
    assert_eq!(
        metric_sum(&metrics, "switchboard_sessions_live", None),
        Some(created.len() as f64),
        "{metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "switchboard_session_creations_refused_total",
            Some("limit=\"per_minute\"")
        ),
        Some(refused.len() as f64),
        "{metrics}"
    );

    // Another visitor is not affected, and the refused one can still use what it has.
    let mut neighbour = visitor(&gw, "198.51.100.20").await;
    neighbour.create_session().await;
    let mut attacker = visitor(&gw, "203.0.113.7").await;
    let (session_id, session_key) = &created[0];
    let joined = attacker
        .request(
            "session.join",
            json!({"session_id": session_id, "session_key": session_key}),
        )
        .await;
    assert_eq!(ty(&joined), "session.joined", "{joined}");
}

/// `--sessions-per-minute` sets the quota; past it the answer says when to retry and
/// the connection stays open.
#[tokio::test]
async fn the_per_minute_quota_is_configurable_and_its_answer_says_when_to_retry() {
    let gw = Gateway::start(&["--sessions-per-minute", "2", "--store", "memory"]);
    let mut client = Client::connect(&gw.ws_url()).await;
    let replies = create_burst(&mut client, 3).await;
    assert_eq!(ty(&replies[0]), "session.created", "{}", replies[0]);
    assert_eq!(ty(&replies[1]), "session.created", "{}", replies[1]);
    let error = &replies[2];
    assert_eq!(error["code"], "rate_limited", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("created 2 sessions in the last minute"),
        "{error}"
    );
    let retry = Duration::from_millis(error["retry_after_ms"].as_u64().unwrap());
    assert!(retry > Duration::ZERO && retry <= Duration::from_secs(60));
    // The connection stays open and usable.
    client.ping_pong().await;
}
