//! The coordinator: sets up gateways and backplane, creates sessions, spreads client
//! connections over worker processes, runs a scenario's phases, and assembles the
//! report.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::node_client::{self, NodeClient};
use crate::peer::default_socketioxide_peer;
use crate::processes::{
    BENCH_PUBLISHER_KEY, BackplaneKind, BackplaneServer, Gateway, ServerKind,
    default_gateway_binary,
};
use crate::publisher::{self, Target};
use crate::report::{Connections, DeliveryCheck, Errors, GatewayFigures, Report, Storm, Turns};
use crate::stats::{self, LatencySummary, Machine, ProcessSample, sample_process};
use crate::worker::{
    Mode, SlotSession, SlotSpec, WorkerCommand, WorkerEvent, WorkerReport, WorkerSpec,
};
use crate::{ClientShape, Command, MeasuredServer, Setup};

/// Connections one worker process holds at most by default (under the 20,000
/// open-files limit, with room for the process's own files).
const CONNECTIONS_PER_WORKER: usize = 15_000;
/// Sessions one control connection creates (creates + leaves stay under the default
/// per-connection frame burst of 20).
const SESSIONS_PER_CONTROL_CONNECTION: usize = 8;
/// How long workers may take to open all their connections.
const READY_PATIENCE: Duration = Duration::from_secs(240);

pub fn run(command: Command) -> anyhow::Result<()> {
    let setup = match &command {
        Command::Idle(a) => a.setup.clone(),
        Command::Fanout(a) => a.setup.clone(),
        Command::Turns(a) => a.setup.clone(),
        Command::Storm(a) => a.setup.clone(),
        Command::Worker { .. }
        | Command::Floor(_)
        | Command::FloorSink { .. }
        | Command::Control(_)
        | Command::Soak(_) => {
            bail!("not a gateway scenario")
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        match tokio::time::timeout(setup.max_runtime, scenario(command)).await {
            Ok(report) => report,
            Err(_) => bail!(
                "the run exceeded --max-runtime {:?}; everything it started was stopped",
                setup.max_runtime
            ),
        }
    })?;
    print!("{}", report.table());
    if let Some(path) = &setup.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("  report                       {}", path.display());
    }
    Ok(())
}

async fn scenario(command: Command) -> anyhow::Result<Report> {
    match command {
        Command::Idle(args) => idle(args).await,
        Command::Fanout(args) => fanout(args).await,
        Command::Turns(args) => turns(args).await,
        Command::Storm(args) => storm(args).await,
        Command::Worker { .. }
        | Command::Floor(_)
        | Command::FloorSink { .. }
        | Command::Control(_)
        | Command::Soak(_) => {
            bail!("not a gateway scenario")
        }
    }
}

/// Gateways, the backplane server, and a scratch directory, all cleaned up on drop.
struct Env {
    setup: Setup,
    /// What the gateways are: Switchboard, or a peer server in their place.
    server: ServerKind,
    gateways: Vec<Gateway>,
    backplane: Option<BackplaneServer>,
    publisher_key: String,
    scratch: PathBuf,
    machine: Machine,
    started_cpu: f64,
}

impl Drop for Env {
    fn drop(&mut self) {
        // Gateways and servers are killed by their own drops; the logs go with the
        // scratch directory unless something failed (then they are kept for reading).
        if !std::thread::panicking() {
            self.gateways.clear();
            self.backplane = None;
            let _ = std::fs::remove_dir_all(&self.scratch);
        }
    }
}

impl Env {
    async fn start(setup: &Setup, scenario_args: &[&str]) -> anyhow::Result<Env> {
        let machine = Machine::describe();
        let started_cpu = sample_process(std::process::id())?.cpu_secs;
        let scratch = new_scratch()?;
        if !setup.urls.is_empty() {
            if setup.urls.len() != setup.pids.len() {
                bail!("give one --pid per --url (memory and CPU are read from /proc/<pid>)");
            }
            let gateways = setup
                .urls
                .iter()
                .zip(&setup.pids)
                .map(|(url, pid)| Gateway::external(url, *pid))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let key = setup
                .publisher_key
                .clone()
                .unwrap_or_else(|| BENCH_PUBLISHER_KEY.into());
            let key = key
                .split_once(':')
                .map_or(key.clone(), |(_, s)| s.to_string());
            return Ok(Env {
                setup: setup.clone(),
                server: ServerKind::Switchboard,
                gateways,
                backplane: None,
                publisher_key: key,
                scratch,
                machine,
                started_cpu,
            });
        }
        if setup.replicas == 0 {
            bail!("--replicas must be at least 1");
        }
        let binary = match &setup.gateway_binary {
            Some(path) => path.clone(),
            None => default_gateway_binary()?,
        };
        let backplane = BackplaneServer::start(setup.backplane, &scratch)?;
        let backplane_url = backplane
            .as_ref()
            .map_or_else(|| "memory".to_string(), |b| b.url.clone());
        let mut gateways = Vec::new();
        for replica in 0..setup.replicas {
            let mut args: Vec<String> = vec![
                "--server-id".into(),
                format!("bench-{replica}"),
                "--backplane".into(),
                backplane_url.clone(),
                "--publisher-keys".into(),
                format!("bench:{BENCH_PUBLISHER_KEY}"),
                // Everything a run publishes stays in history, so the delivery check
                // can expect every event, replays included.
                "--history-max-events".into(),
                "1000000".into(),
                // Every simulated visitor comes from this machine's one address: the
                // session quotas would count them all as one.
                "--sessions-per-minute".into(),
                "1000000".into(),
                "--max-live-sessions-per-principal".into(),
                "1000000".into(),
                "--max-live-sessions".into(),
                "100000000".into(),
                // The tool is one visitor address (loopback) with many connections:
                // the per-visitor limits of a public gateway would refuse most of them.
                "--max-connections-per-ip".into(),
                "1000000".into(),
                "--connections-per-minute-per-ip".into(),
                "1000000".into(),
                "--max-websockets-per-client".into(),
                "1000000".into(),
            ];
            args.extend(scenario_args.iter().map(|s| s.to_string()));
            args.extend(setup.gateway_args.iter().cloned());
            let log = scratch.join(format!("gateway-{replica}.log"));
            gateways.push(Gateway::spawn(&binary, &args, log)?);
        }
        Ok(Env {
            setup: setup.clone(),
            server: ServerKind::Switchboard,
            gateways,
            backplane,
            publisher_key: BENCH_PUBLISHER_KEY.into(),
            scratch,
            machine,
            started_cpu,
        })
    }

    /// Like [`Env::start`], with `server` in the gateways' place: `--replicas` peers,
    /// sharing the tool's redis-server with `--backplane redis`, or `--url`/`--pid`
    /// peers already running.
    async fn start_server(setup: &Setup, measured: &MeasuredServer) -> anyhow::Result<Env> {
        let server = measured.server;
        if server == ServerKind::Switchboard {
            return Env::start(setup, &[]).await;
        }
        if !setup.gateway_args.is_empty() || setup.gateway_binary.is_some() {
            bail!("--gateway-binary and --gateway-arg are for --server switchboard");
        }
        if !setup.urls.is_empty() {
            // Peers someone else runs, named as gateways are by --url and --pid.
            let mut env = Env::start(setup, &[]).await?;
            env.server = server;
            return Ok(env);
        }
        if setup.replicas == 0 {
            bail!("--replicas must be at least 1");
        }
        if setup.backplane == BackplaneKind::Nats {
            bail!("the {} peer shares rooms over redis only", server.name());
        }
        let binary = match &measured.peer_binary {
            Some(path) => path.clone(),
            None => default_socketioxide_peer()?,
        };
        let mut env = Env {
            setup: setup.clone(),
            server,
            gateways: Vec::new(),
            backplane: None,
            publisher_key: String::new(),
            machine: Machine::describe(),
            started_cpu: sample_process(std::process::id())?.cpu_secs,
            scratch: new_scratch()?,
        };
        env.backplane = BackplaneServer::start(setup.backplane, &env.scratch)?;
        let args: Vec<String> = match &env.backplane {
            Some(backplane) => vec!["--redis".into(), backplane.url.clone()],
            None => Vec::new(),
        };
        for replica in 0..setup.replicas {
            let log = env.scratch.join(format!("{}-{replica}.log", server.name()));
            env.gateways.push(Gateway::spawn_peer(&binary, &args, log)?);
        }
        Ok(env)
    }

    fn shared_backplane(&self) -> bool {
        self.setup.backplane != BackplaneKind::Memory || !self.setup.urls.is_empty()
    }

    fn sample(&mut self) -> anyhow::Result<Vec<ProcessSample>> {
        for gateway in &mut self.gateways {
            gateway.check_alive()?;
        }
        self.gateways.iter().map(Gateway::sample).collect()
    }

    fn source(&self, index: usize) -> Ipv4Addr {
        Ipv4Addr::new(
            127,
            0,
            0,
            2 + (index % usize::from(self.setup.source_addresses)) as u8,
        )
    }
}

/// A fresh scratch directory for the run's logs, specs and backplane store.
fn new_scratch() -> anyhow::Result<PathBuf> {
    let scratch = std::env::temp_dir().join(format!(
        "switchboard-bench-{}-{}",
        std::process::id(),
        stats::now_ns() % 1_000_000_000
    ));
    std::fs::create_dir_all(&scratch)?;
    Ok(scratch)
}

/// A session the coordinator created, and the replica it lives on.
#[derive(Debug, Clone)]
struct CreatedSession {
    id: String,
    key: Option<String>,
    home: usize,
}

/// Create `count` sessions, `home` = index mod replicas, on short-lived control
/// connections that leave them again (so they are not members).
async fn create_sessions(env: &Env, count: usize) -> anyhow::Result<Vec<CreatedSession>> {
    let replicas = env.gateways.len();
    let mut batches: Vec<(usize, Vec<usize>)> = Vec::new();
    for home in 0..replicas {
        let indices: Vec<usize> = (0..count).filter(|j| j % replicas == home).collect();
        for chunk in indices.chunks(SESSIONS_PER_CONTROL_CONNECTION) {
            batches.push((home, chunk.to_vec()));
        }
    }
    let addrs: Vec<_> = env.gateways.iter().map(|g| g.addr).collect();
    let mut created: Vec<Option<CreatedSession>> = vec![None; count];
    let mut pending = futures_util::stream::iter(batches.into_iter().map(|(home, indices)| {
        let addr = addrs[home];
        async move {
            let url = format!("ws://{addr}/ws");
            let mut ws = crate::client::connect(addr, &url, Ipv4Addr::LOCALHOST).await?;
            let patience = Duration::from_secs(20);
            crate::client::wait_for(&mut ws, "welcome", patience).await?;
            let mut sessions = Vec::new();
            for &index in &indices {
                crate::client::send_json(&mut ws, &json!({"type":"session.create","id":"c"}))
                    .await?;
                let text = crate::client::wait_for(&mut ws, "session.created", patience).await?;
                let frame: crate::client::Incoming = serde_json::from_str(&text)?;
                let id = frame
                    .session_id
                    .context("session.created without session_id")?
                    .into_owned();
                sessions.push((
                    index,
                    CreatedSession {
                        id,
                        key: frame.session_key.map(|k| k.into_owned()),
                        home,
                    },
                ));
            }
            for (_, session) in &sessions {
                crate::client::send_json(
                    &mut ws,
                    &json!({"type":"session.leave","session_id":session.id}),
                )
                .await?;
                crate::client::wait_for(&mut ws, "session.left", patience).await?;
            }
            let _ = futures_util::SinkExt::close(&mut ws).await;
            anyhow::Ok(sessions)
        }
    }))
    .buffer_unordered(32);
    use futures_util::StreamExt;
    while let Some(batch) = pending.next().await {
        for (index, session) in batch.context("creating sessions")? {
            created[index] = Some(session);
        }
    }
    created
        .into_iter()
        .map(|s| s.context("a session was not created"))
        .collect()
}

/// How connections relate to sessions.
enum Layout {
    /// Connected only.
    None,
    /// Each connection creates its own session.
    Own,
    /// Connection i joins session i mod M.
    Shared(Vec<CreatedSession>),
}

fn slots(env: &Env, connections: usize, layout: &Layout) -> Vec<SlotSpec> {
    let replicas = env.gateways.len();
    (0..connections)
        .map(|i| {
            let (gateway, session) = match layout {
                Layout::None => (i % replicas, SlotSession::None),
                Layout::Own => (i % replicas, SlotSession::Create),
                Layout::Shared(sessions) => {
                    let m = sessions.len();
                    let session = &sessions[i % m];
                    // A memory backplane keeps a session on its replica; a shared one
                    // spreads each session's members over every replica.
                    let gateway = if env.shared_backplane() {
                        (i / m) % replicas
                    } else {
                        session.home
                    };
                    (
                        gateway,
                        SlotSession::Join {
                            session_id: session.id.clone(),
                            session_key: session.key.clone(),
                        },
                    )
                }
            };
            SlotSpec {
                gateway,
                source: env.source(i),
                session,
            }
        })
        .collect()
}

struct WorkerProcess {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl WorkerProcess {
    async fn send(&mut self, command: &WorkerCommand) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(command)?;
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn next_event(&mut self, patience: Duration) -> anyhow::Result<WorkerEvent> {
        let line = tokio::time::timeout(patience, self.lines.next_line())
            .await
            .context("a worker did not answer in time")??
            .context("a worker exited early (its stderr is above)")?;
        serde_json::from_str(&line).with_context(|| format!("a worker said {line:?}"))
    }
}

/// What the workers said when ready.
struct Ready {
    connected: u64,
    failed: u64,
    /// Session id created by each `Create` slot, by global slot index.
    created: HashMap<usize, String>,
    first_error: Option<String>,
}

struct Workers {
    processes: Vec<WorkerProcess>,
    slot_gateways: Vec<usize>,
}

impl Workers {
    async fn spawn(
        env: &Env,
        slots: Vec<SlotSpec>,
        mode: Mode,
    ) -> anyhow::Result<(Workers, Ready)> {
        let count = env
            .setup
            .workers
            .unwrap_or_else(|| slots.len().div_ceil(CONNECTIONS_PER_WORKER).max(2))
            .clamp(1, slots.len().max(1));
        let exe = std::env::current_exe()?;
        let gateways: Vec<_> = env.gateways.iter().map(|g| g.addr).collect();
        let slot_gateways: Vec<usize> = slots.iter().map(|s| s.gateway).collect();
        let per = slots.len().div_ceil(count);
        let mut processes = Vec::new();
        let mut offsets = Vec::new();
        for (w, chunk) in slots.chunks(per.max(1)).enumerate() {
            let spec = WorkerSpec {
                gateways: gateways.clone(),
                slots: chunk.to_vec(),
                mode,
                connect_concurrency: env.setup.connect_concurrency,
                server: env.server,
            };
            let path = env.scratch.join(format!("worker-{w}.json"));
            std::fs::write(&path, serde_json::to_vec(&spec)?)?;
            let mut child = tokio::process::Command::new(&exe)
                .arg("worker")
                .arg("--spec")
                .arg(&path)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .context("spawning a worker")?;
            let stdin = child.stdin.take().context("worker stdin")?;
            let stdout = child.stdout.take().context("worker stdout")?;
            offsets.push(w * per);
            processes.push(WorkerProcess {
                child,
                stdin,
                lines: BufReader::new(stdout).lines(),
            });
        }
        let mut ready = Ready {
            connected: 0,
            failed: 0,
            created: HashMap::new(),
            first_error: None,
        };
        for (process, offset) in processes.iter_mut().zip(offsets) {
            match process.next_event(READY_PATIENCE).await? {
                WorkerEvent::Ready {
                    connected,
                    failed,
                    created,
                    first_error,
                } => {
                    ready.connected += connected;
                    ready.failed += failed;
                    ready
                        .created
                        .extend(created.into_iter().map(|(i, id)| (offset + i, id)));
                    if ready.first_error.is_none() {
                        ready.first_error = first_error;
                    }
                }
                other => bail!("a worker said {other:?} instead of ready"),
            }
        }
        Ok((
            Workers {
                processes,
                slot_gateways,
            },
            ready,
        ))
    }

    async fn broadcast(&mut self, command: &WorkerCommand) -> anyhow::Result<()> {
        for process in &mut self.processes {
            process.send(command).await?;
        }
        Ok(())
    }

    async fn measure(&mut self) -> anyhow::Result<()> {
        self.broadcast(&WorkerCommand::Measure).await?;
        for process in &mut self.processes {
            match process.next_event(Duration::from_secs(30)).await? {
                WorkerEvent::Measuring => {}
                other => bail!("a worker said {other:?} instead of measuring"),
            }
        }
        Ok(())
    }

    /// Storm every worker at once; the slowest worker's resume time.
    async fn storm(&mut self, patience: Duration) -> anyhow::Result<(u64, u64, u64)> {
        self.broadcast(&WorkerCommand::Storm).await?;
        let (mut resumed, mut failed, mut slowest) = (0, 0, 0);
        for process in &mut self.processes {
            match process.next_event(patience).await? {
                WorkerEvent::Stormed {
                    resumed: r,
                    failed: f,
                    elapsed_ms,
                } => {
                    resumed += r;
                    failed += f;
                    slowest = slowest.max(elapsed_ms);
                }
                other => bail!("a worker said {other:?} instead of stormed"),
            }
        }
        Ok((resumed, failed, slowest))
    }

    async fn report(
        &mut self,
        expected: &HashMap<String, u64>,
    ) -> anyhow::Result<Vec<WorkerReport>> {
        let command = WorkerCommand::Report {
            expected: expected.clone(),
        };
        self.broadcast(&command).await?;
        let mut reports = Vec::new();
        for process in &mut self.processes {
            match process.next_event(Duration::from_secs(60)).await? {
                WorkerEvent::Report(report) => reports.push(*report),
                other => bail!("a worker said {other:?} instead of its report"),
            }
        }
        Ok(reports)
    }

    /// CPU seconds the worker processes used so far (the client side's cost).
    fn cpu_secs(&self) -> f64 {
        self.processes
            .iter()
            .filter_map(|p| p.child.id())
            .filter_map(|pid| sample_process(pid).ok())
            .map(|s| s.cpu_secs)
            .sum()
    }

    fn connections_per_gateway(&self, gateways: usize) -> Vec<u64> {
        let mut counts = vec![0u64; gateways];
        for &g in &self.slot_gateways {
            counts[g] += 1;
        }
        counts
    }
}

/// Worker reports merged.
#[derive(Default)]
struct Merged {
    delivered: u64,
    latency: Option<Histogram<u64>>,
    first_delta: Option<Histogram<u64>>,
    delta_latency: Option<Histogram<u64>>,
    resume: Option<Histogram<u64>>,
    connect_errors: u64,
    error_frames: u64,
    disconnects: u64,
    turns_started: u64,
    turns_completed: u64,
    turns_failed: u64,
    check: DeliveryCheck,
    connected_at_end: u64,
    first_error: Option<String>,
}

fn summary(histogram: &Option<Histogram<u64>>) -> LatencySummary {
    histogram
        .as_ref()
        .map(LatencySummary::of)
        .unwrap_or_default()
}

fn merge(reports: Vec<WorkerReport>) -> Merged {
    let mut merged = Merged::default();
    let add = |into: &mut Option<Histogram<u64>>, recorded: &stats::Recorded| {
        if !recorded.is_empty() {
            stats::import(into.get_or_insert_with(stats::new_histogram), recorded);
        }
    };
    for r in reports {
        merged.delivered += r.delivered;
        add(&mut merged.latency, &r.latency_us);
        add(&mut merged.first_delta, &r.first_delta_us);
        add(&mut merged.delta_latency, &r.delta_latency_us);
        add(&mut merged.resume, &r.resume_us);
        merged.connect_errors += r.connect_errors;
        merged.error_frames += r.error_frames;
        merged.disconnects += r.disconnects;
        merged.turns_started += r.turns_started;
        merged.turns_completed += r.turns_completed;
        merged.turns_failed += r.turns_failed;
        merged.check.lost += r.lost;
        merged.check.duplicates += r.duplicates;
        merged.check.members_checked += r.members_checked;
        merged.check.members_short += r.members_short;
        merged.connected_at_end += r.connected_at_end;
        if merged.first_error.is_none() {
            merged.first_error = r.first_error;
        }
    }
    merged
}

/// Everything a scenario measured, for [`assemble`].
struct Measured {
    scenario: &'static str,
    params: serde_json::Value,
    target: usize,
    sessions: usize,
    ready: Ready,
    workers: usize,
    per_gateway: Vec<u64>,
    before: Vec<ProcessSample>,
    after: Vec<ProcessSample>,
    window: Duration,
    publish: Option<publisher::Outcome>,
    merged: Merged,
    /// Memory per connection is meaningful (idle).
    memory_per_connection: bool,
    storm: Option<(u64, u64, u64)>,
    turns_window: Option<Duration>,
    /// CPU seconds of the worker processes during the window.
    workers_cpu_secs: f64,
}

fn assemble(env: &mut Env, m: Measured) -> anyhow::Result<Report> {
    let mut machine = env.machine.clone();
    machine.loadavg_after = stats::loadavg();
    let gateways: Vec<GatewayFigures> = env
        .gateways
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let connections = m.per_gateway.get(i).copied().unwrap_or(0);
            let (before, after) = (m.before[i], m.after[i]);
            GatewayFigures {
                addr: g.addr.to_string(),
                pid: g.pid,
                connections,
                rss_before_kib: before.rss_kib,
                rss_kib: after.rss_kib,
                rss_per_connection_bytes: (m.memory_per_connection && connections > 0).then(|| {
                    (after.rss_kib.saturating_sub(before.rss_kib) * 1024) as f64
                        / connections as f64
                }),
                cpu_secs: after.cpu_secs - before.cpu_secs,
                system_secs: after.system_secs - before.system_secs,
            }
        })
        .collect();
    let gateway_cpu_secs: f64 = gateways.iter().map(|g| g.cpu_secs).sum();
    let rss_per_connection_bytes = if m.memory_per_connection {
        let values: Vec<f64> = gateways
            .iter()
            .filter_map(|g| g.rss_per_connection_bytes)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    } else {
        None
    };
    let delivered = m.merged.delivered;
    let delivery_secs = m
        .publish
        .as_ref()
        .map_or(m.window.as_secs_f64(), |p| p.elapsed_secs.max(1e-9));
    let backplane_server = env
        .backplane
        .as_ref()
        .and_then(|b| sample_process(b.pid).ok());
    let errors = Errors {
        connect: m.merged.connect_errors,
        error_frames: m.merged.error_frames,
        publish: m.publish.as_ref().map_or(0, |p| p.errors),
        first: m
            .ready
            .first_error
            .clone()
            .or(m.merged.first_error.clone())
            .or(m.publish.as_ref().and_then(|p| p.first_error.clone())),
    };
    Ok(Report {
        scenario: m.scenario.into(),
        server: env.server.name().into(),
        label: env.setup.label.clone(),
        client: "rust".into(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine,
        backplane: if env.setup.urls.is_empty() {
            format!("{:?}", env.setup.backplane).to_lowercase()
        } else {
            "external".into()
        },
        replicas: env.gateways.len(),
        params: m.params,
        connections: Connections {
            target: m.target,
            connected: m.ready.connected,
            failed: m.ready.failed,
            workers: m.workers,
            source_addresses: env.setup.source_addresses,
            sessions: m.sessions,
            connected_at_end: m.merged.connected_at_end,
        },
        window_secs: m.window.as_secs_f64(),
        delivered,
        delivered_per_sec: delivered as f64 / delivery_secs,
        latency_us: summary(&m.merged.latency),
        turns: m.turns_window.map(|window| Turns {
            started: m.merged.turns_started,
            completed: m.merged.turns_completed,
            failed: m.merged.turns_failed,
            completed_per_sec: m.merged.turns_completed as f64 / window.as_secs_f64(),
            first_delta_us: summary(&m.merged.first_delta),
            delta_latency_us: summary(&m.merged.delta_latency),
            store_entries_per_sec: None,
        }),
        storm: m.storm.map(|(resumed, failed, all_resumed_ms)| Storm {
            resumed,
            failed,
            all_resumed_ms,
            resume_us: summary(&m.merged.resume),
        }),
        errors,
        disconnects: m.merged.disconnects,
        delivery_check: m.merged.check,
        cpu_secs_per_million_events: (delivered > 0 && !m.memory_per_connection)
            .then(|| gateway_cpu_secs / delivered as f64 * 1e6),
        gateways,
        gateway_cpu_secs,
        rss_per_connection_bytes,
        backplane_server,
        load_tool_cpu_secs: sample_process(std::process::id())?.cpu_secs - env.started_cpu
            + m.workers_cpu_secs,
        publish: m.publish,
        client_process: None,
    })
}

async fn idle(args: crate::IdleArgs) -> anyhow::Result<Report> {
    let mut env = Env::start_server(&args.setup, &args.measured).await?;
    // Let the fresh gateways finish starting before the baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = env.sample()?;
    // The workers start now: all their CPU time is the run's.
    let workers_cpu_before = 0.0;
    let started = Instant::now();
    let slots = slots(&env, args.connections, &Layout::None);
    let (mut workers, ready) = Workers::spawn(&env, slots, Mode::Listen).await?;
    tokio::time::sleep(args.settle).await;
    let after = env.sample()?;
    let window = started.elapsed();
    let workers_cpu_secs = workers.cpu_secs() - workers_cpu_before;
    let merged = merge(workers.report(&HashMap::new()).await?);
    let per_gateway = workers.connections_per_gateway(env.gateways.len());
    let worker_count = workers.processes.len();
    assemble(
        &mut env,
        Measured {
            scenario: "idle",
            params: json!({"connections": args.connections, "settle_secs": args.settle.as_secs_f64()}),
            target: args.connections,
            sessions: 0,
            ready,
            workers: worker_count,
            per_gateway,
            before,
            after,
            window,
            publish: None,
            merged,
            memory_per_connection: true,
            storm: None,
            turns_window: None,
            workers_cpu_secs,
        },
    )
}

/// The publish targets of a layout: each session through its home replica.
fn targets(env: &Env, layout: &Layout, ready: &Ready, slot_gateways: &[usize]) -> Vec<Target> {
    match layout {
        Layout::None => Vec::new(),
        Layout::Shared(sessions) => sessions
            .iter()
            .map(|s| Target {
                session_id: s.id.clone(),
                base_url: env.gateways[s.home].http_url(),
            })
            .collect(),
        Layout::Own => {
            let mut created: Vec<_> = ready.created.iter().collect();
            created.sort();
            created
                .into_iter()
                .map(|(&slot, id)| Target {
                    session_id: id.clone(),
                    base_url: env.gateways[slot_gateways[slot]].http_url(),
                })
                .collect()
        }
    }
}

async fn layout_for(env: &Env, connections: usize, sessions: usize) -> anyhow::Result<Layout> {
    if sessions == 0 {
        bail!("--sessions must be at least 1");
    }
    Ok(if sessions >= connections {
        Layout::Own
    } else {
        Layout::Shared(create_sessions(env, sessions).await?)
    })
}

/// A peer's sessions are rooms: named, never created, `home` spread over the replicas
/// as [`create_sessions`] spreads Switchboard's (a memory backplane keeps a room's
/// members and its publishes on that replica).
fn rooms(env: &Env, connections: usize, sessions: usize) -> anyhow::Result<Layout> {
    if sessions == 0 {
        bail!("--sessions must be at least 1");
    }
    let replicas = env.gateways.len();
    Ok(Layout::Shared(
        (0..sessions.min(connections))
            .map(|j| CreatedSession {
                id: format!("room-{j}"),
                key: None,
                home: j % replicas,
            })
            .collect(),
    ))
}

async fn fanout(args: crate::FanoutArgs) -> anyhow::Result<Report> {
    if args.client == ClientShape::Node {
        return fanout_node(args).await;
    }
    let mut env = Env::start_server(&args.setup, &args.measured).await?;
    let layout = match env.server {
        ServerKind::Switchboard => layout_for(&env, args.connections, args.sessions).await?,
        ServerKind::Socketioxide => rooms(&env, args.connections, args.sessions)?,
    };
    let slots = slots(&env, args.connections, &layout);
    let (mut workers, ready) = Workers::spawn(&env, slots, Mode::Listen).await?;
    let targets = targets(&env, &layout, &ready, &workers.slot_gateways);
    tokio::time::sleep(args.warmup).await;
    workers.measure().await?;
    let before = env.sample()?;
    let workers_cpu_before = workers.cpu_secs();
    let started = Instant::now();
    let publish = publisher::run(publisher::Plan {
        targets,
        rate: args.rate,
        duration: args.duration,
        concurrency: args.publishers,
        key: env.publisher_key.clone(),
        server: env.server,
    })
    .await?;
    tokio::time::sleep(args.drain).await;
    let after = env.sample()?;
    let window = started.elapsed();
    let workers_cpu_secs = workers.cpu_secs() - workers_cpu_before;
    let merged = merge(workers.report(&publish.per_session).await?);
    let per_gateway = workers.connections_per_gateway(env.gateways.len());
    let worker_count = workers.processes.len();
    assemble(
        &mut env,
        Measured {
            scenario: "fanout",
            params: fanout_params(&args),
            target: args.connections,
            sessions: args.sessions.min(args.connections),
            ready,
            workers: worker_count,
            per_gateway,
            before,
            after,
            window,
            publish: Some(publish),
            merged,
            memory_per_connection: false,
            storm: None,
            turns_window: None,
            workers_cpu_secs,
        },
    )
}

/// A fan-out run's parameters, as its report states them (both client shapes).
fn fanout_params(args: &crate::FanoutArgs) -> serde_json::Value {
    json!({
        "connections": args.connections, "sessions": args.sessions, "rate": args.rate,
        "duration_secs": args.duration.as_secs_f64(), "publishers": args.publishers,
        "members_per_session": args.connections as f64 / args.sessions.min(args.connections) as f64,
    })
}

/// Publish requests the Node client keeps in flight at most (beyond its keep-alive
/// sockets they queue in its `http.Agent`).
const NODE_MAX_IN_FLIGHT: usize = 256;

/// Fan-out driven by one Node.js process (bench/node-client/client.mjs) that creates
/// the sessions, holds every socket and publishes; the gateways are sampled over the
/// window between its `measuring` and `drained` phases.
async fn fanout_node(args: crate::FanoutArgs) -> anyhow::Result<Report> {
    let dir = args
        .node_client
        .clone()
        .unwrap_or_else(node_client::default_dir);
    node_client::ensure_installed(&dir).await?;
    if args.sessions == 0 || args.sessions > args.connections {
        bail!("--client node: --sessions from 1 to --connections");
    }
    let mut env = Env::start_server(&args.setup, &args.measured).await?;
    if env.gateways.len() != 1 {
        bail!("--client node drives one gateway (--replicas 1, or one --url)");
    }
    let mut client = NodeClient::spawn(&node_client::Plan {
        node: &args.node,
        dir: &dir,
        addr: env.gateways[0].addr,
        server: env.server,
        connections: args.connections,
        sessions: args.sessions,
        rate: args.rate,
        warmup: args.warmup,
        duration: args.duration,
        drain: args.drain,
        publish_sockets: args.publishers,
        max_in_flight: NODE_MAX_IN_FLIGHT,
        connect_concurrency: env.setup.connect_concurrency,
        source_addresses: env.setup.source_addresses,
        publisher_key: &env.publisher_key,
        max_runtime: env.setup.max_runtime,
    })?;
    let pid = client.pid().context("the Node client exited at once")?;
    client.phase("ready", READY_PATIENCE).await?;
    client
        .phase("measuring", args.warmup + Duration::from_secs(30))
        .await?;
    let before = env.sample()?;
    let client_before = sample_process(pid)?.cpu_secs;
    let started = Instant::now();
    client
        .phase(
            "drained",
            args.duration + args.drain + Duration::from_secs(60),
        )
        .await?;
    let after = env.sample()?;
    let window = started.elapsed();
    let client_cpu_secs = sample_process(pid)?.cpu_secs - client_before;
    let node = client.report(Duration::from_secs(60)).await?;

    let histogram = |recorded: &stats::Recorded| {
        (!recorded.is_empty()).then(|| {
            let mut h = stats::new_histogram();
            stats::import(&mut h, recorded);
            h
        })
    };
    let merged = Merged {
        delivered: node.delivered,
        latency: histogram(&node.latency_us.recorded),
        connect_errors: node.errors.connect,
        error_frames: node.errors.error_frames,
        disconnects: node.disconnects,
        check: node.delivery_check,
        connected_at_end: node.connections.connected_at_end,
        first_error: node.errors.first.clone(),
        ..Merged::default()
    };
    let publish = publisher::Outcome {
        call_latency_us: summary(&histogram(&node.publish_call_us.recorded)),
        published: node.publish.published,
        errors: node.publish.errors,
        elapsed_secs: node.publish.elapsed_secs,
        achieved_rate: node.publish.achieved_rate,
        max_lag_ms: node.publish.max_lag_ms,
        first_error: None,
        per_session: HashMap::new(),
    };
    let ready = Ready {
        connected: node.connections.connected,
        failed: node.connections.failed,
        created: HashMap::new(),
        first_error: None,
    };
    let mut params = fanout_params(&args);
    params["warmup_secs"] = json!(args.warmup.as_secs_f64());
    params["max_in_flight"] = json!(NODE_MAX_IN_FLIGHT);
    params["node_version"] = json!(node.node_version);
    let mut report = assemble(
        &mut env,
        Measured {
            scenario: "fanout",
            params,
            target: args.connections,
            sessions: args.sessions,
            ready,
            workers: 1,
            per_gateway: vec![args.connections as u64],
            before,
            after,
            window,
            publish: Some(publish),
            merged,
            memory_per_connection: false,
            storm: None,
            turns_window: None,
            workers_cpu_secs: client_cpu_secs,
        },
    )?;
    report.client = "node".into();
    report.client_process = Some(node.client_process);
    Ok(report)
}

async fn turns(args: crate::TurnsArgs) -> anyhow::Result<Report> {
    let delay = format!("{}ms", args.agent_delay.as_millis());
    let gateway_args = [
        "--demo-seed",
        "--offline-agent-delay",
        delay.as_str(),
        "--max-sessions-per-connection",
        "16",
        // The scenario is 1,000 turns at once from one org and address: the cost caps
        // of a public gateway (--max-concurrent-turns*) would queue most of them.
        "--max-concurrent-turns",
        "1000000",
        "--max-concurrent-turns-per-org",
        "1000000",
        "--max-concurrent-turns-per-principal",
        "1000000",
    ];
    let mut env = Env::start(&args.setup, &gateway_args).await?;
    let slots = slots(&env, args.connections, &Layout::Own);
    let (mut workers, ready) = Workers::spawn(&env, slots, Mode::Turns).await?;
    workers.measure().await?;
    let before = env.sample()?;
    let written_before = transcript_entries_written(&env).await;
    let workers_cpu_before = workers.cpu_secs();
    let started = Instant::now();
    tokio::time::sleep(args.duration).await;
    workers.broadcast(&WorkerCommand::StopTurns).await?;
    // Turns in flight finish: a reply is ~20 deltas apart by the agent delay.
    tokio::time::sleep(Duration::from_secs(2) + args.agent_delay * 40).await;
    let after = env.sample()?;
    let written_after = transcript_entries_written(&env).await;
    let window = started.elapsed();
    let workers_cpu_secs = workers.cpu_secs() - workers_cpu_before;
    let merged = merge(workers.report(&HashMap::new()).await?);
    let per_gateway = workers.connections_per_gateway(env.gateways.len());
    let worker_count = workers.processes.len();
    assemble(
        &mut env,
        Measured {
            scenario: "turns",
            params: json!({
                "connections": args.connections, "duration_secs": args.duration.as_secs_f64(),
                "agent_delay_ms": args.agent_delay.as_millis() as u64,
            }),
            target: args.connections,
            sessions: args.connections,
            ready,
            workers: worker_count,
            per_gateway,
            before,
            after,
            window,
            publish: None,
            merged,
            memory_per_connection: false,
            storm: None,
            turns_window: Some(window),
            workers_cpu_secs,
        },
    )
    .map(|mut report| {
        if let (Some(turns), Some(before), Some(after)) =
            (report.turns.as_mut(), written_before, written_after)
        {
            turns.store_entries_per_sec =
                Some(after.saturating_sub(before) as f64 / window.as_secs_f64());
        }
        report
    })
}

/// Transcript entries the gateways wrote to their store so far, from `/metrics`;
/// `None` when a gateway does not report it.
async fn transcript_entries_written(env: &Env) -> Option<u64> {
    const METRIC: &str = "switchboard_transcript_entries_total{outcome=\"written\"}";
    let client = reqwest::Client::new();
    let mut total = 0;
    for gateway in &env.gateways {
        let text = client
            .get(format!("http://{}/metrics", gateway.addr))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let value: f64 = text
            .lines()
            .find_map(|line| line.strip_prefix(METRIC))?
            .trim()
            .parse()
            .ok()?;
        total += value as u64;
    }
    Some(total)
}

async fn storm(args: crate::StormArgs) -> anyhow::Result<Report> {
    let mut env = Env::start(&args.setup, &[]).await?;
    let layout = layout_for(&env, args.connections, args.sessions).await?;
    let slots = slots(&env, args.connections, &layout);
    let (mut workers, ready) = Workers::spawn(&env, slots, Mode::Listen).await?;
    let targets = targets(&env, &layout, &ready, &workers.slot_gateways);
    workers.measure().await?;
    let before = env.sample()?;
    let workers_cpu_before = workers.cpu_secs();
    let started = Instant::now();
    let publishing = tokio::spawn(publisher::run(publisher::Plan {
        targets,
        rate: args.rate,
        duration: args.before + args.after,
        concurrency: args.publishers,
        key: env.publisher_key.clone(),
        server: env.server,
    }));
    tokio::time::sleep(args.before).await;
    let stormed = workers.storm(args.resume_timeout).await?;
    let publish = publishing.await??;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = env.sample()?;
    let window = started.elapsed();
    let workers_cpu_secs = workers.cpu_secs() - workers_cpu_before;
    let merged = merge(workers.report(&publish.per_session).await?);
    let per_gateway = workers.connections_per_gateway(env.gateways.len());
    let worker_count = workers.processes.len();
    assemble(
        &mut env,
        Measured {
            scenario: "storm",
            params: json!({
                "connections": args.connections, "sessions": args.sessions, "rate": args.rate,
                "before_secs": args.before.as_secs_f64(), "after_secs": args.after.as_secs_f64(),
            }),
            target: args.connections,
            sessions: args.sessions.min(args.connections),
            ready,
            workers: worker_count,
            per_gateway,
            before,
            after,
            window,
            publish: Some(publish),
            merged,
            memory_per_connection: false,
            storm: Some(stormed),
            turns_window: None,
            workers_cpu_secs,
        },
    )
}
