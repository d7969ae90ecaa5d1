//! The publisher: `POST /v1/publish` at a target rate, open loop (event `k` is due at
//! `start + k / rate`, whether or not earlier ones were answered), with the send time
//! in the event's `data.sent_ns` so receivers can measure publish → socket. Against
//! the socketioxide peer the same `data` goes to `POST /publish` with the room.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use crate::processes::ServerKind;
use crate::stats::{self, LatencySummary, now_ns};

/// One session to publish into, and the gateway to publish through.
#[derive(Debug, Clone)]
pub struct Target {
    pub session_id: String,
    pub base_url: String,
}

pub struct Plan {
    pub targets: Vec<Target>,
    /// Publishes per second, all targets together.
    pub rate: f64,
    pub duration: Duration,
    /// Requests in flight at most.
    pub concurrency: usize,
    pub key: String,
    /// Which publish API the targets have.
    pub server: ServerKind,
}

#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    pub published: u64,
    pub errors: u64,
    pub elapsed_secs: f64,
    pub achieved_rate: f64,
    /// How far behind schedule a request went out at worst (the publisher's own
    /// limit, not the gateway's latency).
    pub max_lag_ms: f64,
    pub first_error: Option<String>,
    /// Request sent → `202` read (µs), accepted publishes only: what a publish call
    /// costs its caller.
    pub call_latency_us: LatencySummary,
    /// Accepted publishes per session (what every member must receive).
    #[serde(skip)]
    pub per_session: HashMap<String, u64>,
}

pub async fn run(plan: Plan) -> anyhow::Result<Outcome> {
    if plan.targets.is_empty() || plan.rate <= 0.0 {
        return Ok(Outcome::default());
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.concurrency)
        .timeout(Duration::from_secs(10))
        .build()?;
    let total = (plan.rate * plan.duration.as_secs_f64()).round() as u64;
    let next = Arc::new(AtomicU64::new(0));
    let accepted: Arc<Vec<AtomicU64>> =
        Arc::new(plan.targets.iter().map(|_| AtomicU64::new(0)).collect());
    let errors = Arc::new(AtomicU64::new(0));
    let max_lag_us = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let call_latency = Arc::new(Mutex::new(stats::new_histogram()));
    let targets = Arc::new(plan.targets);
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / plan.rate);
    let mut tasks = Vec::new();
    for _ in 0..plan.concurrency.max(1) {
        let client = client.clone();
        let next = next.clone();
        let accepted = accepted.clone();
        let errors = errors.clone();
        let max_lag_us = max_lag_us.clone();
        let first_error = first_error.clone();
        let call_latency = call_latency.clone();
        let targets = targets.clone();
        let key = plan.key.clone();
        let server = plan.server;
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::AcqRel);
                if k >= total {
                    return;
                }
                let due = started + interval.mul_f64(k as f64);
                tokio::time::sleep_until(due).await;
                let lag = Instant::now().saturating_duration_since(due);
                max_lag_us.fetch_max(lag.as_micros() as u64, Ordering::AcqRel);
                let index = (k % targets.len() as u64) as usize;
                let target = &targets[index];
                let data = json!({"sent_ns": now_ns(), "k": k});
                let request = match server {
                    ServerKind::Switchboard => client
                        .post(format!("{}/v1/publish", target.base_url))
                        .bearer_auth(&key)
                        .json(&json!({
                            "target": {"session": target.session_id},
                            "name": "bench",
                            "data": data,
                        })),
                    ServerKind::Socketioxide => client
                        .post(format!("{}/publish", target.base_url))
                        .json(&json!({"room": target.session_id, "data": data})),
                };
                let called = Instant::now();
                let sent = request.send().await;
                let failure = match sent {
                    Ok(response) if response.status().as_u16() == 202 => {
                        let call_us = called.elapsed().as_micros() as u64;
                        stats::record(
                            &mut call_latency.lock().unwrap_or_else(|e| e.into_inner()),
                            call_us,
                        );
                        accepted[index].fetch_add(1, Ordering::AcqRel);
                        None
                    }
                    Ok(response) => Some(format!(
                        "HTTP {}: {}",
                        response.status(),
                        response.text().await.unwrap_or_default()
                    )),
                    Err(e) => Some(e.to_string()),
                };
                if let Some(failure) = failure {
                    errors.fetch_add(1, Ordering::AcqRel);
                    first_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(failure);
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_session: HashMap<String, u64> = targets
        .iter()
        .zip(accepted.iter())
        .map(|(t, n)| (t.session_id.clone(), n.load(Ordering::Acquire)))
        .collect();
    let published = per_session.values().sum();
    let first_error = first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(Outcome {
        published,
        errors: errors.load(Ordering::Acquire),
        elapsed_secs: elapsed,
        achieved_rate: published as f64 / elapsed.max(1e-9),
        max_lag_ms: max_lag_us.load(Ordering::Acquire) as f64 / 1000.0,
        first_error,
        call_latency_us: LatencySummary::of(
            &call_latency.lock().unwrap_or_else(|e| e.into_inner()),
        ),
        per_session,
    })
}
