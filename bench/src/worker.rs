//! A worker process: holds a share of the client connections (one process holds at
//! most ~19.9k sockets: the open-files limit), records what arrives, and talks to the
//! coordinator with one JSON object per line (commands on stdin, events on stdout).
//!
//! Each connection is a *slot* that survives reconnects: it remembers the last `seq`
//! it saw, so after a drop (a storm, or an unexpected close) it resumes with
//! `after_seq` and the report can say whether anything was lost or repeated.
//!
//! Against the socketioxide peer (`server: socketioxide`) a slot speaks Socket.IO
//! instead: it joins its room and counts `event`s; there is no `seq`, so losses are
//! counted (received < published) but repeats and resumes are not.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Notify, Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Incoming, Ws};
use crate::processes::ServerKind;
use crate::socketio;
use crate::stats::{self, Recorded};

/// How long one connect + handshake + join may take.
const CONNECT_PATIENCE: Duration = Duration::from_secs(20);
/// Reconnect attempts after an unexpected close before a slot gives up.
const MAX_RECONNECTS: u32 = 5;
/// What a turn asks the offline agent (it answers from the demo documents in ~20 deltas).
const TURN_QUESTION: &str = "What happens to a slow consumer?";

/// What the coordinator hands a worker (as a JSON file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub gateways: Vec<SocketAddr>,
    pub slots: Vec<SlotSpec>,
    pub mode: Mode,
    /// Connections being opened at once.
    pub connect_concurrency: usize,
    /// The protocol the slots speak.
    #[serde(default)]
    pub server: ServerKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlotSpec {
    pub gateway: usize,
    pub source: Ipv4Addr,
    pub session: SlotSession,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SlotSession {
    /// Connect only (idle connections).
    None,
    /// Join a session the coordinator created (a peer's room: `session_id` names it).
    Join {
        session_id: String,
        session_key: Option<String>,
    },
    /// Create a session of its own (one member per session).
    Create,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Receive and record.
    Listen,
    /// Ask the agent, one turn after another, until told to stop.
    Turns,
}

/// Coordinator → worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum WorkerCommand {
    /// Start counting and recording from zero.
    Measure,
    /// Drop every connection at once and resume them all.
    Storm,
    /// Start no new turn.
    StopTurns,
    /// Report (with the events published per session, to check for losses), then exit.
    Report { expected: HashMap<String, u64> },
}

/// Worker → coordinator.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerEvent {
    Ready {
        connected: u64,
        failed: u64,
        /// `(slot, session_id)` of the sessions slots created.
        created: Vec<(usize, String)>,
        first_error: Option<String>,
    },
    Measuring,
    Stormed {
        resumed: u64,
        failed: u64,
        elapsed_ms: u64,
    },
    Report(Box<WorkerReport>),
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct WorkerReport {
    /// Session events received while measuring.
    pub delivered: u64,
    /// Publish → socket, µs (live events).
    pub latency_us: Recorded,
    /// `message.send` → first `turn.delta`, µs.
    pub first_delta_us: Recorded,
    /// Backplane append (`ts`, ms resolution) → socket, µs, for `turn.delta`.
    pub delta_latency_us: Recorded,
    /// Storm: drop → resumed (joined and replay caught up), µs, per connection.
    pub resume_us: Recorded,
    pub connect_errors: u64,
    pub error_frames: u64,
    pub disconnects: u64,
    pub turns_started: u64,
    pub turns_completed: u64,
    pub turns_failed: u64,
    /// Events published to a member's session that it never received.
    pub lost: u64,
    /// Events received twice (or out of order).
    pub duplicates: u64,
    /// Members whose session had an expectation.
    pub members_checked: u64,
    /// Of those, members that missed at least one event.
    pub members_short: u64,
    pub connected_at_end: u64,
    pub first_error: Option<String>,
}

struct SlotState {
    session_id: Mutex<Option<String>>,
    /// The key of an anonymous session this slot created (to rejoin it).
    session_key: Mutex<Option<String>>,
    /// Newest seq received (0: none).
    last_seq: AtomicU64,
    received: AtomicU64,
    duplicates: AtomicU64,
    connected: AtomicBool,
}

#[derive(Default)]
struct Histograms {
    latency_us: Option<Histogram<u64>>,
    first_delta_us: Option<Histogram<u64>>,
    delta_latency_us: Option<Histogram<u64>>,
    resume_us: Option<Histogram<u64>>,
}

fn record_into(slot: &mut Option<Histogram<u64>>, value: u64) {
    stats::record(slot.get_or_insert_with(stats::new_histogram), value);
}

fn export(slot: &Option<Histogram<u64>>) -> Recorded {
    slot.as_ref().map(stats::export).unwrap_or_default()
}

struct Shared {
    spec: WorkerSpec,
    connect_limit: Semaphore,
    measuring: AtomicBool,
    histograms: Mutex<Histograms>,
    delivered: AtomicU64,
    connect_errors: AtomicU64,
    error_frames: AtomicU64,
    disconnects: AtomicU64,
    turns_started: AtomicU64,
    turns_completed: AtomicU64,
    turns_failed: AtomicU64,
    settled: AtomicU64,
    failed: AtomicU64,
    progress: Notify,
    storm: watch::Sender<u64>,
    storm_started: Mutex<Option<Instant>>,
    resumed: AtomicU64,
    storm_failed: AtomicU64,
    stop_turns: watch::Sender<bool>,
    first_error: Mutex<Option<String>>,
    slots: Vec<SlotState>,
}

impl Shared {
    fn histograms(&self) -> std::sync::MutexGuard<'_, Histograms> {
        self.histograms.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note_error(&self, error: &anyhow::Error) {
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(format!("{error:#}"));
        }
    }

    fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }
}

fn emit(event: &WorkerEvent) {
    // stdout is the pipe to the coordinator: one JSON object per line.
    if let Ok(line) = serde_json::to_string(event) {
        println!("{line}");
    }
}

/// The worker process's main: `switchboard-bench worker --spec FILE`.
pub fn run(spec_path: &std::path::Path) -> anyhow::Result<()> {
    let spec: WorkerSpec = serde_json::from_slice(
        &std::fs::read(spec_path).with_context(|| format!("reading {}", spec_path.display()))?,
    )
    .context("parsing the worker spec")?;
    // One thread per worker: the coordinator starts several workers when it needs
    // more than one core's worth of clients.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(spec))
}

async fn serve(spec: WorkerSpec) -> anyhow::Result<()> {
    let slot_count = spec.slots.len();
    let shared = Arc::new(Shared {
        connect_limit: Semaphore::new(spec.connect_concurrency.max(1)),
        measuring: AtomicBool::new(false),
        histograms: Mutex::new(Histograms::default()),
        delivered: AtomicU64::new(0),
        connect_errors: AtomicU64::new(0),
        error_frames: AtomicU64::new(0),
        disconnects: AtomicU64::new(0),
        turns_started: AtomicU64::new(0),
        turns_completed: AtomicU64::new(0),
        turns_failed: AtomicU64::new(0),
        settled: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        progress: Notify::new(),
        storm: watch::channel(0).0,
        storm_started: Mutex::new(None),
        resumed: AtomicU64::new(0),
        storm_failed: AtomicU64::new(0),
        stop_turns: watch::channel(false).0,
        first_error: Mutex::new(None),
        slots: (0..slot_count)
            .map(|_| SlotState {
                session_id: Mutex::new(None),
                session_key: Mutex::new(None),
                last_seq: AtomicU64::new(0),
                received: AtomicU64::new(0),
                duplicates: AtomicU64::new(0),
                connected: AtomicBool::new(false),
            })
            .collect(),
        spec,
    });
    for index in 0..slot_count {
        tokio::spawn(run_slot(shared.clone(), index));
    }
    // Ready once every slot connected (and joined) or gave up.
    loop {
        let progress = shared.progress.notified();
        if shared.settled.load(Ordering::Acquire) >= slot_count as u64 {
            break;
        }
        progress.await;
    }
    let created = shared
        .spec
        .slots
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.session, SlotSession::Create))
        .filter_map(|(i, _)| {
            let id = shared.slots[i]
                .session_id
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()?;
            Some((i, id))
        })
        .collect();
    let failed = shared.failed.load(Ordering::Acquire);
    emit(&WorkerEvent::Ready {
        connected: slot_count as u64 - failed,
        failed,
        created,
        first_error: shared
            .first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    });

    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = commands.next_line().await? {
        let command: WorkerCommand =
            serde_json::from_str(&line).with_context(|| format!("bad command {line:?}"))?;
        match command {
            WorkerCommand::Measure => {
                shared.delivered.store(0, Ordering::Release);
                *shared.histograms() = Histograms::default();
                shared.measuring.store(true, Ordering::Release);
                emit(&WorkerEvent::Measuring);
            }
            WorkerCommand::Storm => {
                tokio::spawn(storm(shared.clone()));
            }
            WorkerCommand::StopTurns => {
                shared.stop_turns.send_replace(true);
            }
            WorkerCommand::Report { expected } => {
                emit(&WorkerEvent::Report(Box::new(report(&shared, &expected))));
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Drop every connection at once, then wait until every slot resumed or gave up.
async fn storm(shared: Arc<Shared>) {
    let started = Instant::now();
    *shared
        .storm_started
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(started);
    shared.resumed.store(0, Ordering::Release);
    shared.storm_failed.store(0, Ordering::Release);
    shared.storm.send_modify(|generation| *generation += 1);
    let slots = shared.slots.len() as u64;
    loop {
        let progress = shared.progress.notified();
        let done =
            shared.resumed.load(Ordering::Acquire) + shared.storm_failed.load(Ordering::Acquire);
        if done >= slots {
            break;
        }
        progress.await;
    }
    emit(&WorkerEvent::Stormed {
        resumed: shared.resumed.load(Ordering::Acquire),
        failed: shared.storm_failed.load(Ordering::Acquire),
        elapsed_ms: started.elapsed().as_millis() as u64,
    });
}

fn report(shared: &Shared, expected: &HashMap<String, u64>) -> WorkerReport {
    let mut lost = 0;
    let mut members_checked = 0;
    let mut members_short = 0;
    let mut duplicates = 0;
    let mut connected_at_end = 0;
    for slot in &shared.slots {
        duplicates += slot.duplicates.load(Ordering::Acquire);
        if slot.connected.load(Ordering::Acquire) {
            connected_at_end += 1;
        }
        let session = slot
            .session_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(want) = session.and_then(|s| expected.get(&s).copied()) {
            members_checked += 1;
            let got = slot.received.load(Ordering::Acquire);
            if got < want {
                lost += want - got;
                members_short += 1;
            }
        }
    }
    let histograms = shared.histograms();
    WorkerReport {
        delivered: shared.delivered.load(Ordering::Acquire),
        latency_us: export(&histograms.latency_us),
        first_delta_us: export(&histograms.first_delta_us),
        delta_latency_us: export(&histograms.delta_latency_us),
        resume_us: export(&histograms.resume_us),
        connect_errors: shared.connect_errors.load(Ordering::Acquire),
        error_frames: shared.error_frames.load(Ordering::Acquire),
        disconnects: shared.disconnects.load(Ordering::Acquire),
        turns_started: shared.turns_started.load(Ordering::Acquire),
        turns_completed: shared.turns_completed.load(Ordering::Acquire),
        turns_failed: shared.turns_failed.load(Ordering::Acquire),
        lost,
        duplicates,
        members_checked,
        members_short,
        connected_at_end,
        first_error: shared
            .first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    }
}

/// How a slot's connection ended.
enum Ended {
    /// A storm: reconnect at once.
    Storm,
    /// The gateway closed or the socket failed.
    Closed,
}

/// One client connection, reconnecting (with `after_seq`) when dropped.
async fn run_slot(shared: Arc<Shared>, index: usize) {
    let mut storm_generation = shared.storm.subscribe();
    let mut first = true;
    let mut failures = 0;
    let mut resuming: Option<Instant> = None;
    loop {
        let joined = {
            let _permit = shared.connect_limit.acquire().await;
            tokio::time::timeout(CONNECT_PATIENCE, open(&shared, index))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("connect and join timed out")))
        };
        let (mut ws, head) = match joined {
            Ok(joined) => joined,
            Err(e) => {
                shared.connect_errors.fetch_add(1, Ordering::AcqRel);
                shared.note_error(&e);
                failures += 1;
                if first || failures > MAX_RECONNECTS {
                    if first {
                        shared.failed.fetch_add(1, Ordering::AcqRel);
                        shared.settled.fetch_add(1, Ordering::AcqRel);
                    } else if resuming.is_some() {
                        shared.storm_failed.fetch_add(1, Ordering::AcqRel);
                    }
                    shared.progress.notify_waiters();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100 * u64::from(failures))).await;
                continue;
            }
        };
        failures = 0;
        let state = &shared.slots[index];
        state.connected.store(true, Ordering::Release);
        if first {
            first = false;
            shared.settled.fetch_add(1, Ordering::AcqRel);
            shared.progress.notify_waiters();
        }
        // Storm: resumed once the replay reached the head the join reported.
        let mut replay_target = resuming.map(|_| head);
        check_resumed(&shared, &mut resuming, &mut replay_target, index);
        storm_generation.mark_unchanged();
        let ended = match shared.spec.server {
            ServerKind::Switchboard => {
                read_until_dropped(
                    &shared,
                    index,
                    &mut ws,
                    &mut storm_generation,
                    &mut resuming,
                    &mut replay_target,
                )
                .await
            }
            ServerKind::Socketioxide => {
                read_socketio_until_dropped(&shared, index, &mut ws, &mut storm_generation).await
            }
        };
        state.connected.store(false, Ordering::Release);
        match ended {
            Ended::Storm => {
                // Dropping the socket without a close handshake: the gateway sees the
                // peer vanish, as when a network path or a load balancer dies.
                drop(ws);
                resuming = Some(Instant::now());
            }
            Ended::Closed => {
                shared.disconnects.fetch_add(1, Ordering::AcqRel);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn check_resumed(
    shared: &Shared,
    resuming: &mut Option<Instant>,
    replay_target: &mut Option<u64>,
    index: usize,
) {
    let (Some(_), Some(target)) = (*resuming, *replay_target) else {
        return;
    };
    if shared.slots[index].last_seq.load(Ordering::Acquire) >= target {
        let started = shared
            .storm_started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_else(Instant::now);
        record_into(
            &mut shared.histograms().resume_us,
            started.elapsed().as_micros() as u64,
        );
        *resuming = None;
        *replay_target = None;
        shared.resumed.fetch_add(1, Ordering::AcqRel);
        shared.progress.notify_waiters();
    }
}

/// Connect, read `welcome`, and join (or create) the slot's session. Returns the
/// socket and the stream head the join reported.
async fn open(shared: &Shared, index: usize) -> anyhow::Result<(Ws, u64)> {
    let slot = &shared.spec.slots[index];
    let addr = shared.spec.gateways[slot.gateway];
    if shared.spec.server == ServerKind::Socketioxide {
        return open_socketio(shared, index, addr).await;
    }
    let url = format!("ws://{addr}/ws");
    let mut ws = client::connect(addr, &url, slot.source).await?;
    client::wait_for(&mut ws, "welcome", CONNECT_PATIENCE).await?;
    let state = &shared.slots[index];
    let known = state
        .session_id
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let last_seq = state.last_seq.load(Ordering::Acquire);
    let after_seq = (last_seq > 0).then_some(last_seq);
    let head = match (&slot.session, known) {
        (SlotSession::None, _) => 0,
        (SlotSession::Create, None) => {
            client::send_json(&mut ws, &json!({"type":"session.create","id":"c"})).await?;
            let text = client::wait_for(&mut ws, "session.created", CONNECT_PATIENCE).await?;
            let created: Incoming = serde_json::from_str(&text)?;
            let session_id = created
                .session_id
                .context("session.created without session_id")?
                .into_owned();
            *state.session_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(session_id);
            *state.session_key.lock().unwrap_or_else(|e| e.into_inner()) =
                created.session_key.map(|k| k.into_owned());
            created.seq.unwrap_or(0)
        }
        (
            SlotSession::Join {
                session_id,
                session_key,
            },
            _,
        ) => {
            *state.session_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(session_id.clone());
            join(&mut ws, session_id, session_key.as_deref(), after_seq).await?
        }
        (SlotSession::Create, Some(session_id)) => {
            let key = state
                .session_key
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            join(&mut ws, &session_id, key.as_deref(), after_seq).await?
        }
    };
    Ok((ws, head))
}

/// Connect to a Socket.IO peer and join the slot's room. There is no stream head.
async fn open_socketio(
    shared: &Shared,
    index: usize,
    addr: SocketAddr,
) -> anyhow::Result<(Ws, u64)> {
    let slot = &shared.spec.slots[index];
    let room = match &slot.session {
        SlotSession::None => None,
        SlotSession::Join { session_id, .. } => Some(session_id.as_str()),
        SlotSession::Create => anyhow::bail!("a Socket.IO peer has no sessions to create"),
    };
    if let Some(room) = room {
        *shared.slots[index]
            .session_id
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(room.to_owned());
    }
    let ws = socketio::connect(addr, slot.source, room, CONNECT_PATIENCE).await?;
    Ok((ws, 0))
}

async fn join(
    ws: &mut Ws,
    session_id: &str,
    session_key: Option<&str>,
    after_seq: Option<u64>,
) -> anyhow::Result<u64> {
    let mut frame = json!({"type":"session.join","id":"j","session_id":session_id});
    if let Some(key) = session_key {
        frame["session_key"] = json!(key);
    }
    if let Some(after) = after_seq {
        frame["after_seq"] = json!(after);
    }
    client::send_json(ws, &frame).await?;
    let text = client::wait_for(ws, "session.joined", CONNECT_PATIENCE).await?;
    let joined: Incoming = serde_json::from_str(&text)?;
    Ok(joined.last_seq.unwrap_or(0))
}

/// Per-connection turn bookkeeping.
#[derive(Default)]
struct Turn {
    sent: Option<Instant>,
    saw_delta: bool,
}

async fn ask(ws: &mut Ws, shared: &Shared, index: usize, turn: &mut Turn) -> anyhow::Result<()> {
    let session_id = shared.slots[index]
        .session_id
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .context("no session to ask in")?;
    client::send_json(
        ws,
        &json!({"type":"message.send","session_id":session_id,"text":TURN_QUESTION}),
    )
    .await?;
    shared.turns_started.fetch_add(1, Ordering::AcqRel);
    *turn = Turn {
        sent: Some(Instant::now()),
        saw_delta: false,
    };
    Ok(())
}

async fn read_until_dropped(
    shared: &Shared,
    index: usize,
    ws: &mut Ws,
    storm_generation: &mut watch::Receiver<u64>,
    resuming: &mut Option<Instant>,
    replay_target: &mut Option<u64>,
) -> Ended {
    let state = &shared.slots[index];
    let turns = shared.spec.mode == Mode::Turns;
    let mut stop_turns = shared.stop_turns.subscribe();
    let mut turn = Turn::default();
    if turns && !*stop_turns.borrow() && ask(ws, shared, index, &mut turn).await.is_err() {
        return Ended::Closed;
    }
    loop {
        let message = tokio::select! {
            changed = storm_generation.changed() => {
                if changed.is_ok() {
                    return Ended::Storm;
                }
                // The worker is exiting.
                std::future::pending::<()>().await;
                continue;
            }
            message = ws.next() => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ended::Closed,
            Some(Ok(_)) => continue,
        };
        let Ok(frame) = serde_json::from_str::<Incoming>(text.as_str()) else {
            shared.error_frames.fetch_add(1, Ordering::AcqRel);
            continue;
        };
        if frame.kind == "error" {
            shared.error_frames.fetch_add(1, Ordering::AcqRel);
            shared.note_error(&anyhow::anyhow!(
                "error frame from the gateway: {}",
                frame.error_text()
            ));
            continue;
        }
        // Session events carry `ts`; replies such as `message.accepted` carry a `seq`
        // but are not events.
        let (Some(seq), Some(_), Some(_)) = (frame.seq, frame.session_id.as_ref(), frame.ts) else {
            continue;
        };
        if seq <= state.last_seq.load(Ordering::Acquire) {
            state.duplicates.fetch_add(1, Ordering::AcqRel);
            continue;
        }
        state.last_seq.store(seq, Ordering::Release);
        state.received.fetch_add(1, Ordering::AcqRel);
        let replayed = resuming.is_some();
        if shared.measuring() {
            shared.delivered.fetch_add(1, Ordering::AcqRel);
            // Replayed events waited out the disconnect; they are the resume's cost,
            // not the live path's latency.
            if !replayed && let Some(sent_ns) = frame.sent_ns() {
                let latency_us = stats::now_ns().saturating_sub(sent_ns) / 1000;
                record_into(&mut shared.histograms().latency_us, latency_us);
            }
        }
        if replayed {
            check_resumed(shared, resuming, replay_target, index);
        }
        if turns {
            match frame.kind.as_ref() {
                "turn.delta" => {
                    if shared.measuring() {
                        let mut histograms = shared.histograms();
                        if let Some(ts) = frame.ts {
                            let now_us = stats::now_ns() / 1000;
                            record_into(
                                &mut histograms.delta_latency_us,
                                now_us.saturating_sub(ts * 1000),
                            );
                        }
                        if !turn.saw_delta
                            && let Some(sent) = turn.sent
                        {
                            record_into(
                                &mut histograms.first_delta_us,
                                sent.elapsed().as_micros() as u64,
                            );
                        }
                    }
                    turn.saw_delta = true;
                }
                "turn.end" => {
                    if frame.status.as_deref() == Some("completed") {
                        shared.turns_completed.fetch_add(1, Ordering::AcqRel);
                    } else {
                        shared.turns_failed.fetch_add(1, Ordering::AcqRel);
                    }
                    turn = Turn::default();
                    if !*stop_turns.borrow_and_update()
                        && ask(ws, shared, index, &mut turn).await.is_err()
                    {
                        return Ended::Closed;
                    }
                }
                _ => {}
            }
        }
    }
}

/// The Socket.IO read loop: answer pings, count and time `event`s.
async fn read_socketio_until_dropped(
    shared: &Shared,
    index: usize,
    ws: &mut Ws,
    storm_generation: &mut watch::Receiver<u64>,
) -> Ended {
    let state = &shared.slots[index];
    loop {
        let message = tokio::select! {
            changed = storm_generation.changed() => {
                if changed.is_ok() {
                    return Ended::Storm;
                }
                std::future::pending::<()>().await;
                continue;
            }
            message = ws.next() => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ended::Closed,
            Some(Ok(_)) => continue,
        };
        let sent_ns = match socketio::parse(text.as_str()) {
            socketio::Packet::Ping => {
                if socketio::send(ws, "3").await.is_err() {
                    return Ended::Closed;
                }
                continue;
            }
            socketio::Packet::Close => return Ended::Closed,
            socketio::Packet::Malformed => {
                shared.error_frames.fetch_add(1, Ordering::AcqRel);
                continue;
            }
            socketio::Packet::Event { name, sent_ns } if name == "event" => sent_ns,
            _ => continue,
        };
        state.received.fetch_add(1, Ordering::AcqRel);
        if shared.measuring() {
            shared.delivered.fetch_add(1, Ordering::AcqRel);
            if let Some(sent_ns) = sent_ns {
                let latency_us = stats::now_ns().saturating_sub(sent_ns) / 1000;
                record_into(&mut shared.histograms().latency_us, latency_us);
            }
        }
    }
}
