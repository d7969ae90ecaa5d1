//! A backend publishing into the sessions under chaos: `POST /v1/publish` of
//! `chaos.tick {"p": i}` events with idempotency keys, each to a random live replica,
//! retried with the same key (possibly on another replica) until a `202`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::cluster::Roster;
use crate::support::gateway::http_client;
use crate::support::http::PUBLISHER_SECRET;

/// The events' name.
pub const TICK: &str = "chaos.tick";
/// How long one publish may take before it is tried again.
const REPLY_PATIENCE: Duration = Duration::from_secs(5);
/// How long one publish is retried before the publisher gives up on it.
const ABANDON: Duration = Duration::from_secs(40);

/// What the publisher did.
#[derive(Debug, Default)]
pub struct PublishLog {
    /// `p` → the session it went to and the `seq` of its `202`.
    pub acked: BTreeMap<u64, (String, u64)>,
    /// Publishes given up on.
    pub abandoned: Vec<u64>,
    /// Requests made, retries included.
    pub requests: usize,
    pub problems: Vec<String>,
}

/// Publish until `stop`; the publish in progress then still ends.
pub async fn run(
    sessions: Vec<String>,
    roster: Arc<Roster>,
    stop: Arc<AtomicBool>,
    mut rng: StdRng,
    round: usize,
) -> PublishLog {
    let http = http_client();
    let mut log = PublishLog::default();
    let mut p = 0u64;
    while !stop.load(Ordering::SeqCst) {
        p += 1;
        let session = sessions.choose(&mut rng).unwrap().clone();
        let body = json!({
            "target": {"session": session}, "name": TICK, "data": {"p": p},
            "idempotency_key": format!("round-{round}-p{p}"),
        });
        let since = Instant::now();
        loop {
            if since.elapsed() > ABANDON {
                log.abandoned.push(p);
                break;
            }
            let Some(urls) = roster.pick(&mut rng) else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            log.requests += 1;
            let request = http
                .post(format!("{}/v1/publish", urls.http))
                .bearer_auth(PUBLISHER_SECRET)
                .json(&body)
                .send();
            let reply = tokio::time::timeout(REPLY_PATIENCE, async {
                let response = request.await.ok()?;
                let status = response.status().as_u16();
                let text = response.text().await.ok()?;
                Some((status, text))
            })
            .await
            .ok()
            .flatten();
            match reply {
                Some((202, text)) => {
                    let seq = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["seq"].as_u64());
                    match seq {
                        Some(seq) => {
                            log.acked.insert(p, (session.clone(), seq));
                        }
                        None => log.problems.push(format!("publish {p}: 202 {text}")),
                    }
                    break;
                }
                // Busy with the same key elsewhere, or the backplane unreachable.
                Some((409 | 503, _)) | None => {}
                Some((status, text)) => {
                    log.problems
                        .push(format!("publish {p}: unexpected {status} {text}"));
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(50..150))).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(40..120))).await;
    }
    log
}
