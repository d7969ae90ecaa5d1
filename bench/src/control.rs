//! `control`: what control between replicas costs, over a Redis backplane this tool
//! starts. Two measurements, for comparing gateway builds (`--gateway-binary`):
//!
//! - **Backplane operations.** Every command the gateways send Redis is watched with
//!   `MONITOR` and sorted by what it does (the adapter's script, or the command) and on
//!   what (a stream kind, a records namespace). First one replica idles (what its
//!   background work costs per second), then one client runs `--turns` turns one after
//!   another (what a turn costs, less the idle rate over the same time).
//! - **Cross-replica cancel latency.** A second replica starts. For each sample a
//!   client on replica A asks (so A runs the turn), a client on replica B waits for
//!   `turn.start`, waits a random part of `--cancel-spread`, sends `turn.cancel`, and
//!   times it to the `turn.end` (`cancelled`) it receives.
//!
//! Everything runs on 127.0.0.1 and is killed when the run ends or fails.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::client::{self, Ws};
use crate::processes::{BackplaneKind, BackplaneServer, Gateway, default_gateway_binary};
use crate::stats;

/// The adapter's scripts, to name the `EVALSHA`s seen (`SCRIPT LOAD` gives their SHAs).
const SCRIPTS: &[(&str, &str)] = &[
    (
        "append",
        include_str!("../../adapters/redis/src/lua/append.lua"),
    ),
    (
        "read",
        include_str!("../../adapters/redis/src/lua/read.lua"),
    ),
    (
        "record_put",
        include_str!("../../adapters/redis/src/lua/record_put.lua"),
    ),
    (
        "record_replace",
        include_str!("../../adapters/redis/src/lua/record_replace.lua"),
    ),
    (
        "record_list",
        include_str!("../../adapters/redis/src/lua/record_list.lua"),
    ),
];

/// The question every turn asks: it matches the long document of [`knowledge`], so
/// each answer streams for a while (about 27 deltas).
const QUESTION: &str = "What is the refund policy for refunds?";
const PATIENCE: Duration = Duration::from_secs(20);

pub struct Params<'a> {
    pub gateway_binary: Option<&'a Path>,
    pub samples: usize,
    pub turns: usize,
    pub idle: Duration,
    pub agent_delay: Duration,
    pub cancel_spread: Duration,
    pub max_runtime: Duration,
    pub json: Option<&'a Path>,
    pub label: &'a str,
}

pub fn run(params: &Params) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let scratch = std::env::temp_dir().join(format!(
        "switchboard-bench-control-{}-{}",
        std::process::id(),
        stats::now_ns() % 1_000_000_000
    ));
    std::fs::create_dir_all(&scratch)?;
    let outcome = runtime.block_on(async {
        tokio::time::timeout(params.max_runtime, measure(params, &scratch))
            .await
            .unwrap_or_else(|_| bail!("the run exceeded --max-runtime {:?}", params.max_runtime))
    });
    let report = match outcome {
        Ok(report) => {
            let _ = std::fs::remove_dir_all(&scratch);
            report
        }
        Err(e) => {
            return Err(e.context(format!("logs kept in {}", scratch.display())));
        }
    };
    print!("{}", table(&report));
    if let Some(path) = params.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("  report                       {}", path.display());
    }
    Ok(())
}

async fn measure(params: &Params<'_>, scratch: &Path) -> anyhow::Result<Value> {
    let loadavg_before = stats::loadavg();
    let binary = match params.gateway_binary {
        Some(path) => path.to_path_buf(),
        None => default_gateway_binary()?,
    };
    let redis = BackplaneServer::start(BackplaneKind::Redis, scratch)?
        .context("a Redis server for the run")?;
    let redis_addr: SocketAddr = redis
        .url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("the Redis URL {}", redis.url))?;
    let knowledge = scratch.join("knowledge.json");
    std::fs::write(&knowledge, knowledge_file().to_string())?;
    let spawn = |replica: usize| {
        let args: Vec<String> = [
            "--server-id",
            &format!("bench-{replica}"),
            "--backplane",
            &redis.url,
            "--offline-agent-delay",
            &format!("{}ms", params.agent_delay.as_millis()),
            "--knowledge-file",
            &knowledge.to_string_lossy(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Gateway::spawn(
            &binary,
            &args,
            scratch.join(format!("gateway-{replica}.log")),
        )
    };

    let a = spawn(0)?;
    let monitor = Monitor::start(redis_addr).await?;
    // Boot writes (documents, first heartbeat) are not what is measured.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut asker = open(a.addr).await?;
    let (session_id, _) = create_session(&mut asker).await?;

    let idle_from = monitor.snapshot().await;
    let idle_started = Instant::now();
    tokio::time::sleep(params.idle).await;
    let idle_to = monitor.snapshot().await;
    let idle_secs = idle_started.elapsed().as_secs_f64();
    let idle = idle_to.minus(&idle_from).scaled(1.0 / idle_secs);

    let turns_started = Instant::now();
    for _ in 0..params.turns {
        ask(&mut asker, &session_id).await?;
        let end = wait_for_turn_end(&mut asker, None).await?;
        if end["status"] != "completed" {
            bail!("a turn ended {end}");
        }
        wait_for(&mut asker, |f| {
            f["type"] == "message" && f["role"] == "assistant"
        })
        .await?;
    }
    let turns_to = monitor.snapshot().await;
    let turns_secs = turns_started.elapsed().as_secs_f64();
    let per_turn = turns_to
        .minus(&idle_to)
        .minus(&idle.scaled(turns_secs))
        .scaled(1.0 / params.turns.max(1) as f64);
    drop(asker);

    let b = spawn(1)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle2_from = monitor.snapshot().await;
    let idle2_started = Instant::now();
    tokio::time::sleep(params.idle).await;
    let idle2 = monitor
        .snapshot()
        .await
        .minus(&idle2_from)
        .scaled(1.0 / idle2_started.elapsed().as_secs_f64());

    let mut latencies = Vec::new();
    let mut missed = 0;
    let mut random = stats::now_ns() | 1;
    for _ in 0..params.samples {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let wait = params
            .cancel_spread
            .mul_f64((random % 1000) as f64 / 1000.0);
        match cancel_once(a.addr, b.addr, wait).await? {
            Some(latency) => latencies.push(latency),
            None => missed += 1,
        }
    }
    latencies.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .map(|d| ms(*d))
    };
    let mean = latencies.iter().map(|d| ms(*d)).sum::<f64>() / latencies.len().max(1) as f64;
    drop((a, b));
    Ok(json!({
        "scenario": "control",
        "label": params.label,
        "gateway_binary": binary.display().to_string(),
        "loadavg_before": loadavg_before,
        "loadavg_after": stats::loadavg(),
        "params": {
            "samples": params.samples, "turns": params.turns,
            "idle_secs": params.idle.as_secs_f64(),
            "agent_delay_ms": params.agent_delay.as_millis() as u64,
            "cancel_spread_ms": params.cancel_spread.as_millis() as u64,
        },
        "cancel_ms": {
            "samples": latencies.len(), "missed": missed,
            "min": latencies.first().map(|d| ms(*d)), "p50": at(0.50), "p90": at(0.90),
            "p99": at(0.99), "max": latencies.last().map(|d| ms(*d)), "mean": mean,
        },
        "redis": {
            "idle_one_replica_per_sec": idle.to_json(),
            "idle_two_replicas_per_sec": idle2.to_json(),
            "per_turn": per_turn.to_json(),
            "turns_secs": turns_secs,
        },
    }))
}

/// One cancel sample: the time from sending `turn.cancel` on `b` to its `turn.end`
/// there, or `None` when the turn completed before the cancel reached it.
async fn cancel_once(
    a: SocketAddr,
    b: SocketAddr,
    wait: Duration,
) -> anyhow::Result<Option<Duration>> {
    let mut asker = open(a).await?;
    let mut canceller = open(b).await?;
    let (session_id, key) = create_session(&mut asker).await?;
    let mut join = json!({"type": "session.join", "id": "j", "session_id": session_id});
    if let Some(key) = key {
        join["session_key"] = json!(key);
    }
    client::send_json(&mut canceller, &join).await?;
    client::wait_for(&mut canceller, "session.joined", PATIENCE).await?;
    ask(&mut asker, &session_id).await?;
    let start = wait_for(&mut canceller, |f| f["type"] == "turn.start").await?;
    let turn_id = start["turn_id"]
        .as_str()
        .context("turn.start without turn_id")?;
    tokio::time::sleep(wait).await;
    let sent = Instant::now();
    client::send_json(
        &mut canceller,
        &json!({"type": "turn.cancel", "session_id": session_id, "turn_id": turn_id}),
    )
    .await?;
    let end = wait_for_turn_end(&mut canceller, Some(turn_id)).await?;
    let latency = sent.elapsed();
    // The asker's replica finished the turn before the next sample starts.
    wait_for_turn_end(&mut asker, Some(turn_id)).await?;
    Ok((end["status"] == "cancelled").then_some(latency))
}

async fn open(addr: SocketAddr) -> anyhow::Result<Ws> {
    let url = format!("ws://{addr}/ws");
    let mut ws = client::connect(addr, &url, Ipv4Addr::LOCALHOST).await?;
    client::wait_for(&mut ws, "welcome", PATIENCE).await?;
    Ok(ws)
}

async fn create_session(ws: &mut Ws) -> anyhow::Result<(String, Option<String>)> {
    client::send_json(ws, &json!({"type": "session.create", "id": "c"})).await?;
    let created: Value =
        serde_json::from_str(&client::wait_for(ws, "session.created", PATIENCE).await?)?;
    let session_id = created["session_id"]
        .as_str()
        .context("session.created without session_id")?;
    Ok((
        session_id.to_string(),
        created["session_key"].as_str().map(str::to_string),
    ))
}

async fn ask(ws: &mut Ws, session_id: &str) -> anyhow::Result<()> {
    client::send_json(
        ws,
        &json!({"type": "message.send", "id": "m", "session_id": session_id, "text": QUESTION}),
    )
    .await?;
    client::wait_for(ws, "message.accepted", PATIENCE).await?;
    Ok(())
}

/// Read frames until one `done` accepts (an `error` fails).
async fn wait_for(ws: &mut Ws, done: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    loop {
        let frame: Value = serde_json::from_str(&client::next_text(ws, PATIENCE).await?)?;
        if frame["type"] == "error" {
            bail!("the gateway answered an error: {frame}");
        }
        if done(&frame) {
            return Ok(frame);
        }
    }
}

async fn wait_for_turn_end(ws: &mut Ws, turn_id: Option<&str>) -> anyhow::Result<Value> {
    wait_for(ws, |f| {
        f["type"] == "turn.end" && turn_id.is_none_or(|id| f["turn_id"] == id)
    })
    .await
}

/// A long public document (the gateway tests' refund policy).
fn knowledge_file() -> Value {
    let text = [
        "Our refund policy is simple.",
        "Refunds are available within thirty days of purchase for every annual plan and every monthly plan.",
        "To request refunds, open the billing page, choose the invoice, and press the refund button;",
        "the refund request then goes to the billing team, who review each refund within two business days.",
        "Approved refunds return to the original card, and a refund usually appears on the statement within five to ten days.",
        "Partial refunds apply when a plan was upgraded in the middle of a cycle, and the refund covers the unused part only.",
        "Refunds are not available for usage overages, domain registrations, or gift cards, and a refund never includes taxes already remitted.",
        "If a refund is late, contact support with the invoice number and the date of the refund request.",
    ]
    .join(" ");
    json!([{
        "doc_id": "kb-refunds", "title": "Refund policy",
        "uri": "https://help.example.test/refunds", "text": text, "acl": {"public": true}
    }])
}

/// Commands Redis ran, by what they did: `(inside a script, label) → count`.
#[derive(Debug, Clone, Default)]
struct Counts(BTreeMap<(bool, String), f64>);

impl Counts {
    fn minus(&self, other: &Counts) -> Counts {
        let mut out = self.0.clone();
        for (key, n) in &other.0 {
            *out.entry(key.clone()).or_default() -= n;
        }
        Counts(out)
    }

    fn scaled(&self, factor: f64) -> Counts {
        Counts(
            self.0
                .iter()
                .map(|(k, n)| (k.clone(), n * factor))
                .collect(),
        )
    }

    /// What the gateways sent (one entry per round trip; a pipelined `MULTI … EXEC`
    /// counts once, as `record_delete`), and how many commands Redis ran inside the
    /// scripts those called.
    fn to_json(&self) -> Value {
        let mut sent = serde_json::Map::new();
        let mut round_trips = 0.0;
        let mut in_scripts = 0.0;
        for ((scripted, label), n) in &self.0 {
            // Idle-rate subtraction leaves noise of a fraction around zero.
            let n = (n * 100.0).round() / 100.0;
            if *scripted {
                in_scripts += n;
            } else if n != 0.0 {
                round_trips += n;
                sent.insert(label.clone(), json!(n));
            }
        }
        json!({
            "round_trips": (round_trips * 100.0).round() / 100.0,
            "commands_inside_scripts": (in_scripts * 100.0).round() / 100.0,
            "by_operation": sent,
        })
    }
}

/// `MONITOR` on its own connection, counting every command by [`label`].
struct Monitor {
    counts: Arc<Mutex<Counts>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Monitor {
    async fn start(addr: SocketAddr) -> anyhow::Result<Monitor> {
        let mut stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to Redis at {addr}"))?;
        let mut scripts = BTreeMap::new();
        for (name, text) in SCRIPTS {
            let sha = command(&mut stream, &["SCRIPT", "LOAD", text]).await?;
            scripts.insert(sha, name.to_string());
        }
        stream.write_all(b"MONITOR\r\n").await?;
        let counts = Arc::new(Mutex::new(Counts::default()));
        let shared = counts.clone();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(key) = label(&line, &scripts) {
                    let mut counts = shared.lock().unwrap_or_else(|e| e.into_inner());
                    *counts.0.entry(key).or_default() += 1.0;
                }
            }
        });
        Ok(Monitor { counts, reader })
    }

    /// The counts so far. MONITOR reports a command after it ran; a short pause lets
    /// the ones just run arrive first.
    async fn snapshot(&self) -> Counts {
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Send one command and read a one-line or bulk-string reply as text.
async fn command(stream: &mut TcpStream, args: &[&str]) -> anyhow::Result<String> {
    let mut out = format!("*{}\r\n", args.len());
    for arg in args {
        out.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(out.as_bytes()).await?;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        stream.read_exact(&mut byte).await?;
        reply.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&reply).trim_end().to_string();
    match head.chars().next() {
        Some('+') => Ok(head[1..].to_string()),
        Some('$') => {
            let len: usize = head[1..].parse().context("a bulk reply length")?;
            let mut body = vec![0u8; len + 2];
            stream.read_exact(&mut body).await?;
            body.truncate(len);
            Ok(String::from_utf8_lossy(&body).into_owned())
        }
        _ => bail!("Redis answered {args:?} with {head}"),
    }
}

/// The counting key of one MONITOR line: whether it ran inside a script, and
/// `operation target`, e.g. `append stream:session`, `record_replace turn-leases`,
/// `GET turn-cancels`, `SUBSCRIBE stream:control`.
fn label(line: &str, scripts: &BTreeMap<String, String>) -> Option<(bool, String)> {
    let line = line.strip_prefix('+')?;
    let open = line.find('[')?;
    let close = open + line[open..].find(']')?;
    let scripted = line[open..close].ends_with(" lua");
    let args = quoted(&line[close + 1..]);
    let name = args.first()?.to_ascii_uppercase();
    let operation = match name.as_str() {
        "EVALSHA" | "EVAL" => {
            let sha = args.get(1).cloned().unwrap_or_default();
            scripts
                .get(&sha)
                .cloned()
                .unwrap_or_else(|| format!("{name} {}", &sha[..sha.len().min(8)]))
        }
        // `record_delete` is one pipelined `MULTI DEL ZREM EXEC`: counted by its DEL.
        "DEL" if !scripted => "record_delete".to_string(),
        "MULTI" | "ZREM" | "EXEC" if !scripted => return None,
        _ => name,
    };
    let target = args.iter().skip(1).find_map(|arg| target_of(arg));
    Some((
        scripted,
        match target {
            Some(target) => format!("{operation} {target}"),
            None => operation,
        },
    ))
}

/// What a key or channel names: `stream:<kind>` or a records namespace.
fn target_of(arg: &str) -> Option<String> {
    let inner = &arg[arg.find('{')? + 1..];
    let inner = &inner[..inner.find('}')?];
    Some(match inner.split_once(':') {
        Some((kind, _)) => format!("stream:{kind}"),
        None => inner.to_string(),
    })
}

/// The `"…"` arguments of a MONITOR line, unescaped enough to read keys.
fn quoted(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut arg = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(next) = chars.next() {
                        arg.push(next);
                    }
                }
                '"' => break,
                c => arg.push(c),
            }
        }
        out.push(arg);
    }
    out
}

fn table(report: &Value) -> String {
    let cancel = &report["cancel_ms"];
    let redis = &report["redis"];
    let mut out = String::new();
    out.push_str(&format!(
        "== switchboard-bench control {} ==\n  gateway                      {}\n  load average before/after    {} / {}\n",
        report["label"].as_str().unwrap_or(""),
        report["gateway_binary"].as_str().unwrap_or(""),
        report["loadavg_before"].as_str().unwrap_or(""),
        report["loadavg_after"].as_str().unwrap_or(""),
    ));
    let number = |v: &Value| v.as_f64().map_or("-".to_string(), |n| format!("{n:.1}"));
    out.push_str(&format!(
        "  cross-replica cancel (ms)    p50 {}  p90 {}  p99 {}  max {}  mean {}  ({} samples, {} missed)\n",
        number(&cancel["p50"]),
        number(&cancel["p90"]),
        number(&cancel["p99"]),
        number(&cancel["max"]),
        number(&cancel["mean"]),
        cancel["samples"],
        cancel["missed"],
    ));
    for (what, key) in [
        (
            "Redis, one replica idle, per second",
            "idle_one_replica_per_sec",
        ),
        (
            "Redis, two replicas idle, per second",
            "idle_two_replicas_per_sec",
        ),
        ("Redis per turn (idle rate taken off)", "per_turn"),
    ] {
        let figures = &redis[key];
        out.push_str(&format!(
            "  {what}: {} round trips (+{} commands inside scripts)\n",
            figures["round_trips"], figures["commands_inside_scripts"]
        ));
        if let Some(by) = figures["by_operation"].as_object() {
            for (operation, n) in by {
                out.push_str(&format!("      {operation:<34} {n}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_lines_are_labelled_by_operation_and_target() {
        let scripts = BTreeMap::from([("abc".to_string(), "append".to_string())]);
        let line = r#"+1700000000.123456 [0 127.0.0.1:50000] "EVALSHA" "abc" "2" "sb:stream:{session:s_1}:meta" "sb:stream:{session:s_1}:log" "{\"type\":\"x\"}""#;
        assert_eq!(
            label(line, &scripts),
            Some((false, "append stream:session".to_string()))
        );
        let line = r#"+1700000000.2 [0 lua] "GET" "sb:rec:{turn-cancels}:t_1""#;
        assert_eq!(
            label(line, &scripts),
            Some((true, "GET turn-cancels".to_string()))
        );
        let line = r#"+1700000000.3 [0 127.0.0.1:5] "MULTI""#;
        assert_eq!(label(line, &scripts), None);
        let line = r#"+1700000000.3 [0 127.0.0.1:5] "DEL" "sb:rec:{replicas}:r_1""#;
        assert_eq!(
            label(line, &scripts),
            Some((false, "record_delete replicas".to_string()))
        );
        assert_eq!(label("+OK", &scripts), None);
    }
}
