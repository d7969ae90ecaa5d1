//! The soak itself: Redis and the gateways, the lobbies, the visitors and the
//! publisher, the samples and the quiet checkpoints, and the report.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::sync::RwLock;
use tokio::time::Instant;

use super::growth::{self, Judgement, Tolerance};
use super::sample::{self, Phase, Sample};
use super::visit::{self, Lobby, PATIENCE, World};
use super::{FDS, Params, STREAMS, TASKS, gateway_binary, params_json};
use crate::client;
use crate::processes::{BENCH_PUBLISHER_KEY, BackplaneKind, BackplaneServer, Gateway};
use crate::stats::{self, Machine};

/// Failures kept word for word in the report (the rest are only counted).
const ERRORS_KEPT: usize = 5;

#[derive(Default)]
struct Totals {
    visits: AtomicU64,
    publishes: AtomicU64,
    lobby_events: AtomicU64,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

impl Totals {
    fn failed(&self, what: &str, error: &anyhow::Error) {
        self.errors.fetch_add(1, Ordering::AcqRel);
        let mut kept = self.first_errors.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < ERRORS_KEPT {
            kept.push(format!("{what}: {error:#}"));
        }
    }
}

pub async fn soak(params: &Params<'_>, scratch: &Path) -> anyhow::Result<Value> {
    let mut machine = Machine::describe();
    let binary = gateway_binary(params)?;
    let redis = BackplaneServer::start(BackplaneKind::Redis, scratch)?
        .context("a Redis server for the run")?;
    let mut gateways = Vec::new();
    for replica in 0..params.replicas {
        let mut args: Vec<String> = [
            "--server-id",
            &format!("soak-{replica}"),
            "--backplane",
            &redis.url,
            "--publisher-keys",
            &format!("bench:{BENCH_PUBLISHER_KEY}"),
            "--offline-agent-delay",
            &format!("{}ms", params.agent_delay.as_millis()),
            // 16 source addresses stand in for thousands of visitors: the per-visitor
            // limits of a public gateway would refuse most of their sessions and
            // connections, which is not what a leak check is about.
            "--sessions-per-minute",
            "1000000",
            "--max-live-sessions-per-principal",
            "1000000",
            "--max-live-sessions",
            "100000000",
            "--max-connections-per-ip",
            "1000000",
            "--connections-per-minute-per-ip",
            "1000000",
            "--max-websockets-per-client",
            "1000000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(params.gateway_args.iter().cloned());
        let log = scratch.join(format!("gateway-{replica}.log"));
        gateways.push(Gateway::spawn(&binary, &args, log)?);
    }
    // No keep-alive: between visits no HTTP connection is left open, so a quiet
    // checkpoint sees none of the tool's sockets.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let addrs: Vec<_> = gateways.iter().map(|g| g.addr).collect();
    let world = Arc::new(World {
        lobbies: create_lobbies(addrs[0], params.lobbies).await?,
        gateways: addrs,
        http: http.clone(),
        publisher_key: BENCH_PUBLISHER_KEY.into(),
        source_addresses: params.source_addresses,
    });
    let gate = Arc::new(RwLock::new(()));
    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Totals::default());
    let mut tasks = Vec::new();
    for visitor in 0..params.visitors {
        tasks.push(tokio::spawn(visitor_loop(
            world.clone(),
            gate.clone(),
            stop.clone(),
            totals.clone(),
            visitor,
            params.think,
        )));
    }
    if params.rate > 0.0 {
        tasks.push(tokio::spawn(publisher_loop(
            world.clone(),
            gate.clone(),
            stop.clone(),
            totals.clone(),
            params.rate,
        )));
    }

    let started = Instant::now();
    let deadline = started + params.duration;
    let mut next_sample = started;
    let mut next_checkpoint = started + params.checkpoint_every;
    let mut samples: Vec<Sample> = Vec::new();
    let mut redis_rss = Vec::new();
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if now >= next_checkpoint {
            let quiet = gate.write().await;
            tokio::time::sleep(params.settle).await;
            let t = started.elapsed().as_secs_f64();
            samples.extend(sample_all(&http, &mut gateways, t, Phase::Quiet).await?);
            redis_rss.push(json!([t, stats::sample_process(redis.pid)?.rss_kib]));
            drop(quiet);
            while next_checkpoint <= Instant::now() {
                next_checkpoint += params.checkpoint_every;
            }
            // The next sample under load waits for the load to resume.
            next_sample = next_sample.max(Instant::now() + params.sample_every / 2);
        } else if now >= next_sample {
            let t = started.elapsed().as_secs_f64();
            samples.extend(sample_all(&http, &mut gateways, t, Phase::Load).await?);
            while next_sample <= Instant::now() {
                next_sample += params.sample_every;
            }
        } else {
            tokio::time::sleep_until(next_sample.min(next_checkpoint).min(deadline)).await;
        }
    }
    // The last checkpoint: every visit finished, nothing new. (The visitors and the
    // publisher see `stop` once they pass the gate, so it must not be held here.)
    stop.store(true, Ordering::Release);
    for task in tasks {
        task.await?;
    }
    let load_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(params.settle).await;
    let t = started.elapsed().as_secs_f64();
    samples.extend(sample_all(&http, &mut gateways, t, Phase::Quiet).await?);
    redis_rss.push(json!([t, stats::sample_process(redis.pid)?.rss_kib]));

    let (judgements, notes) = judge(params, &samples);
    machine.loadavg_after = stats::loadavg();
    let visits = totals.visits.load(Ordering::Acquire);
    let first_errors = totals
        .first_errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(json!({
        "scenario": "soak",
        "label": params.label,
        "gateway_binary": binary.display().to_string(),
        "loadavg_before": machine.loadavg_before,
        "loadavg_after": machine.loadavg_after,
        "machine": machine,
        "params": params_json(params),
        "traffic": {
            "load_secs": load_secs,
            "visits": visits,
            "visits_per_sec": visits as f64 / load_secs.max(1e-9),
            // Every visit is one session created, one turn, one publish into it.
            "sessions_created": visits,
            "turns": visits,
            "publishes": totals.publishes.load(Ordering::Acquire) + visits,
            "lobby_events_received": totals.lobby_events.load(Ordering::Acquire),
            "errors": totals.errors.load(Ordering::Acquire),
            "first_errors": first_errors,
        },
        "verdict": {
            "passed": judgements.iter().all(|j| !j.grew),
            "judgements": judgements,
            "notes": notes,
        },
        "samples": samples,
        "redis_rss_kib": redis_rss,
    }))
}

async fn sample_all(
    http: &reqwest::Client,
    gateways: &mut [Gateway],
    t: f64,
    phase: Phase,
) -> anyhow::Result<Vec<Sample>> {
    let mut out = Vec::new();
    for (index, gateway) in gateways.iter_mut().enumerate() {
        gateway.check_alive()?;
        let url = format!("{}/metrics", gateway.http_url());
        out.push(sample::take(http, index, gateway.pid, &url, t, phase).await?);
    }
    Ok(out)
}

/// Judge every checked figure of every gateway on the quiet checkpoints after
/// warm-up; notes say what could not be judged.
fn judge(params: &Params, samples: &[Sample]) -> (Vec<Judgement>, Vec<String>) {
    type Read = fn(&Sample) -> Option<f64>;
    let checked: [(&'static str, Read, Tolerance); 5] = [
        ("rss_kib", |s| Some(s.rss_kib as f64), params.rss_tolerance),
        ("fds", |s| Some(s.fds as f64), FDS),
        ("tasks_alive", |s| s.tasks_alive.map(|v| v as f64), TASKS),
        (
            "streams_subscribed",
            |s| s.streams_subscribed.map(|v| v as f64),
            STREAMS,
        ),
        // Nobody is connected at a quiet checkpoint: the gauge must come back down.
        ("connections", |s| s.connections.map(|v| v as f64), STREAMS),
    ];
    let warmup = params.warmup.as_secs_f64();
    let mut judgements = Vec::new();
    let mut notes = Vec::new();
    for gateway in 0..params.replicas {
        let quiet: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.gateway == gateway && s.phase == Phase::Quiet && s.t >= warmup)
            .collect();
        for (metric, read, tolerance) in checked {
            let values: Option<Vec<f64>> = quiet.iter().map(|s| read(s)).collect();
            let Some(values) = values else {
                notes.push(format!(
                    "gateway {gateway}: its /metrics has no {metric} (an older build?): not judged"
                ));
                continue;
            };
            match growth::judge(gateway, metric, &values, tolerance) {
                Some(judgement) => judgements.push(judgement),
                None => notes.push(format!(
                    "gateway {gateway} {metric}: {} quiet checkpoints after warm-up, 3 needed",
                    values.len()
                )),
            }
        }
    }
    (judgements, notes)
}

async fn visitor_loop(
    world: Arc<World>,
    gate: Arc<RwLock<()>>,
    stop: Arc<AtomicBool>,
    totals: Arc<Totals>,
    visitor: usize,
    think: Duration,
) {
    let mut n: u64 = 0;
    while !stop.load(Ordering::Acquire) {
        let pass = gate.read().await;
        if stop.load(Ordering::Acquire) {
            break;
        }
        let outcome = tokio::time::timeout(PATIENCE * 3, visit::visit(&world, visitor, n))
            .await
            .unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "the visit took longer than {:?}",
                    PATIENCE * 3
                ))
            });
        match outcome {
            Ok(seen) => {
                totals.visits.fetch_add(1, Ordering::AcqRel);
                totals
                    .lobby_events
                    .fetch_add(seen.lobby_events, Ordering::AcqRel);
            }
            Err(e) => totals.failed(&format!("visitor {visitor}, visit {n}"), &e),
        }
        drop(pass);
        n += 1;
        tokio::time::sleep(think).await;
    }
}

/// `--rate` publishes per second into the lobbies, through each replica in turn.
async fn publisher_loop(
    world: Arc<World>,
    gate: Arc<RwLock<()>>,
    stop: Arc<AtomicBool>,
    totals: Arc<Totals>,
    rate: f64,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut k: u64 = 0;
    while !stop.load(Ordering::Acquire) {
        ticker.tick().await;
        let _pass = gate.read().await;
        if stop.load(Ordering::Acquire) {
            break;
        }
        let lobby = &world.lobbies[(k % world.lobbies.len() as u64) as usize];
        let via = world.gateways[(k % world.gateways.len() as u64) as usize];
        match visit::publish(&world, via, &lobby.session_id, k).await {
            Ok(seq) => {
                lobby.last_seq.fetch_max(seq, Ordering::AcqRel);
                totals.publishes.fetch_add(1, Ordering::AcqRel);
            }
            Err(e) => totals.failed("lobby publish", &e),
        }
        k += 1;
    }
}

/// The lobbies: anonymous sessions created on one socket, which then leaves them.
async fn create_lobbies(addr: std::net::SocketAddr, count: usize) -> anyhow::Result<Vec<Lobby>> {
    let url = format!("ws://{addr}/ws");
    let mut ws = client::connect(addr, &url, std::net::Ipv4Addr::LOCALHOST).await?;
    client::wait_for(&mut ws, "welcome", PATIENCE).await?;
    let mut lobbies = Vec::new();
    for _ in 0..count {
        client::send_json(&mut ws, &json!({"type": "session.create", "id": "c"})).await?;
        let created: Value =
            serde_json::from_str(&client::wait_for(&mut ws, "session.created", PATIENCE).await?)?;
        let session_id = created["session_id"]
            .as_str()
            .context("session.created without session_id")?
            .to_string();
        let session_key = created["session_key"]
            .as_str()
            .context("an anonymous session.created without session_key")?
            .to_string();
        client::send_json(
            &mut ws,
            &json!({"type": "session.leave", "id": "l", "session_id": session_id}),
        )
        .await?;
        client::wait_for(&mut ws, "session.left", PATIENCE).await?;
        lobbies.push(Lobby {
            session_id,
            session_key,
            last_seq: AtomicU64::new(0),
        });
    }
    ws.close(None).await.ok();
    Ok(lobbies)
}
