//! The chaos audit of crash-safe turns (issue 17, step 5), over Redis and over NATS.
//!
//! Three replicas with short lease timings. Per round: a few dozen sessions whose
//! clients ([`session`]) send messages with `client_message_id`s at random intervals
//! and resume on a random live replica whenever their socket drops; a backend
//! ([`publisher`]) publishing idempotent events into them; and a driver that SIGKILLs a
//! random replica every few seconds and starts it again, and once freezes the
//! backplane server (SIGSTOP) for 2 s. Then traffic stops, the system settles (every
//! acknowledged message answered, no turn running), and [`audit`] checks the history of
//! each session and what each client received.
//!
//! Size, from the environment: `SWITCHBOARD_CHAOS_ROUNDS` (default 1),
//! `SWITCHBOARD_CHAOS_SECS` (traffic per round, default 30), `SWITCHBOARD_CHAOS_SESSIONS`
//! (default 24), `SWITCHBOARD_CHAOS_SEED` (default random; printed).

mod audit;
mod cluster;
mod publisher;
mod session;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use switchboard_testkit::eventually;
use tokio::time::Instant;

use crate::support::gateway::http_client;
use crate::support::http::ADMIN_SECRET;
use crate::support::replicas::{Backing, SHORT_LAPSE, backed_tests};
use crate::support::turns::{Verdict, ledger};
use crate::support::{Client, seq};
use audit::{Audit, Freeze, Kill};
use cluster::{Cluster, now_ms};
use session::{Control, SessionLog};

backed_tests! {
    /// Replicas killed (SIGKILL) and restarted every few seconds and a frozen backplane
    /// under steady traffic: every acknowledged message is answered exactly once, every
    /// client resuming on any replica receives each event exactly once, every
    /// acknowledged publish is in history once, and dead turns are taken over within the
    /// lease lapse + 2 s.
    turns_survive_killed_replicas_and_a_frozen_backplane => chaos;
}

const REPLICAS: usize = 3;
/// Time between kills, and how long a killed replica stays down, in ms.
const KILL_EVERY_MS: std::ops::Range<u64> = 2000..4000;
const DOWN_FOR_MS: std::ops::Range<u64> = 300..1500;
const FREEZE: Duration = Duration::from_secs(2);
/// How long the system may take to settle once traffic stops.
const SETTLE: Duration = Duration::from_secs(60);

struct Settings {
    rounds: usize,
    traffic: Duration,
    sessions: usize,
    seed: u64,
}

impl Settings {
    fn from_env() -> Settings {
        fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
            let value = std::env::var(name).ok()?;
            Some(
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
            )
        }
        Settings {
            rounds: var("SWITCHBOARD_CHAOS_ROUNDS").unwrap_or(1),
            traffic: Duration::from_secs(var("SWITCHBOARD_CHAOS_SECS").unwrap_or(30)),
            sessions: var("SWITCHBOARD_CHAOS_SESSIONS").unwrap_or(24),
            seed: var("SWITCHBOARD_CHAOS_SEED").unwrap_or_else(rand::random),
        }
    }
}

/// What a round did, besides the audit.
struct Round {
    kills: usize,
    audit: Audit,
}

async fn chaos(backing: Backing) {
    let settings = Settings::from_env();
    eprintln!(
        "{backing:?} chaos: seed {} (SWITCHBOARD_CHAOS_SEED), {} round(s) of {:?}, {} sessions",
        settings.seed, settings.rounds, settings.traffic, settings.sessions
    );
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let mut cluster = Cluster::start(backing, REPLICAS);
    let mut rounds = Vec::new();
    for round in 1..=settings.rounds {
        let outcome = run_round(&mut cluster, &settings, round, &mut rng).await;
        report(&format!("{backing:?} round {round}"), &[&outcome]);
        assert!(
            outcome.audit.problems.is_empty(),
            "{backing:?} round {round} (seed {}): {} problem(s):\n{}",
            settings.seed,
            outcome.audit.problems.len(),
            outcome.audit.problems.join("\n")
        );
        rounds.push(outcome);
    }
    let all: Vec<&Round> = rounds.iter().collect();
    report(
        &format!("{backing:?} chaos total ({:?})", started.elapsed()),
        &all,
    );
}

async fn run_round(
    cluster: &mut Cluster,
    settings: &Settings,
    round: usize,
    rng: &mut StdRng,
) -> Round {
    let control = Control::new();
    let mut clients = Vec::new();
    let mut session_ids = Vec::new();
    for i in 0..settings.sessions {
        let urls = cluster.roster.pick(rng).expect("a live replica");
        let mut creator = Client::connect(&urls.ws).await;
        let created = creator.create_session().await;
        session_ids.push(created.id.clone());
        let log = SessionLog::new(created.id, created.key);
        let seed = rng.random::<u64>() ^ i as u64;
        clients.push(tokio::spawn(session::run(
            log,
            cluster.roster.clone(),
            control.clone(),
            StdRng::seed_from_u64(seed),
        )));
    }
    let stop_publishing = Arc::new(AtomicBool::new(false));
    let publisher = tokio::spawn(publisher::run(
        session_ids.clone(),
        cluster.roster.clone(),
        stop_publishing.clone(),
        StdRng::seed_from_u64(rng.random()),
        round,
    ));

    let (kills, freezes) = drive_faults(cluster, settings.traffic, rng).await;

    // Settle: no new messages or publishes, every replica up, every send answered.
    control.sending.store(false, Ordering::SeqCst);
    stop_publishing.store(true, Ordering::SeqCst);
    cluster.restart_all();
    let publishes = publisher.await.expect("the publisher did not panic");
    eventually(SETTLE, "every send acknowledged or given up", || async {
        control.in_flight.load(Ordering::SeqCst) == 0
    })
    .await;
    let acked = control.acked.lock().unwrap().clone();
    let heads = settle(cluster, &session_ids, &acked).await;
    control.finish.send_replace(Some(Arc::new(heads.clone())));
    let mut logs = Vec::new();
    for client in clients {
        logs.push(client.await.expect("a session client did not panic"));
    }
    let mut histories = HashMap::new();
    for log in &logs {
        let history = replay(cluster, log, heads[&log.session_id]).await;
        histories.insert(log.session_id.clone(), history);
    }
    let audit = audit::audit(&logs, &histories, &publishes, &kills, &freezes, SHORT_LAPSE);
    let resends: usize = logs.iter().map(|l| l.resends).sum();
    let connections: usize = logs.iter().map(|l| l.connections).sum();
    let abandoned: Vec<_> = logs.iter().flat_map(|l| l.abandoned.iter()).collect();
    eprintln!(
        "round {round}: {connections} connections, {resends} sends repeated, {} sends and {} publishes given up {abandoned:?}, {} publish requests",
        abandoned.len(),
        publishes.abandoned.len(),
        publishes.requests
    );
    Round {
        kills: kills.len(),
        audit,
    }
}

/// Kill a random replica every few seconds and start it again; freeze the backplane
/// once, in the middle, away from kills. Returns when `traffic` is over.
async fn drive_faults(
    cluster: &mut Cluster,
    traffic: Duration,
    rng: &mut StdRng,
) -> (Vec<Kill>, Vec<Freeze>) {
    let start = Instant::now();
    let end = start + traffic;
    let mut freeze_at = Some(start + traffic.mul_f64(rng.random_range(0.35..0.65)));
    let mut next_kill = start + Duration::from_millis(rng.random_range(KILL_EVERY_MS));
    let (mut kills, mut freezes) = (Vec::new(), Vec::new());
    while Instant::now() < end {
        let now = Instant::now();
        if freeze_at.is_some_and(|at| now >= at) {
            freeze_at = None;
            let from = now_ms();
            cluster.freeze();
            tokio::time::sleep(FREEZE).await;
            cluster.thaw();
            freezes.push(Freeze { from, to: now_ms() });
            // Let the replicas recover before the next kill, so each loss has one cause.
            next_kill = next_kill.max(Instant::now() + Duration::from_secs(4));
        } else if now >= next_kill {
            let slot = *cluster.live().choose(rng).expect("a live replica");
            let ms = cluster.kill(slot);
            kills.push(Kill { ms });
            tokio::time::sleep(Duration::from_millis(rng.random_range(DOWN_FOR_MS))).await;
            cluster.restart(slot);
            next_kill = Instant::now() + Duration::from_millis(rng.random_range(KILL_EVERY_MS));
            if let Some(at) = freeze_at {
                // No kill just before the freeze either.
                if next_kill + Duration::from_secs(2) > at && next_kill < at + FREEZE {
                    next_kill = at + FREEZE + Duration::from_secs(4);
                }
            }
        }
        let mut wake = next_kill.min(end);
        if let Some(at) = freeze_at {
            wake = wake.min(at);
        }
        tokio::time::sleep_until(wake).await;
    }
    (kills, freezes)
}

/// Wait until every acknowledged message has its final answer and no turn runs; return
/// each session's last `seq` then. A session that does not settle in time is left to
/// the audit, which says what is missing.
async fn settle(
    cluster: &Cluster,
    sessions: &[String],
    acked: &[(String, String)],
) -> HashMap<String, u64> {
    let http = cluster.any().http_url();
    let deadline = Instant::now() + SETTLE;
    let mut heads = HashMap::new();
    for session in sessions {
        let asked: Vec<&str> = acked
            .iter()
            .filter(|(s, _)| s == session)
            .map(|(_, m)| m.as_str())
            .collect();
        loop {
            let last = match history_http(&http, session).await {
                Ok((events, last_seq)) => {
                    let book = ledger(&events);
                    let settled = book.open.is_empty()
                        && asked.iter().all(|m| book.verdict(m) != Verdict::Pending);
                    if settled || Instant::now() >= deadline {
                        Some(last_seq)
                    } else {
                        None
                    }
                }
                Err(e) if Instant::now() >= deadline => panic!("history of {session}: {e}"),
                Err(_) => None,
            };
            if let Some(last) = last {
                heads.insert(session.clone(), last);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    heads
}

/// A session's whole history over `GET /v1/sessions/{id}/events`, paged; and its last
/// `seq`.
async fn history_http(http: &str, session: &str) -> Result<(Vec<Value>, u64), String> {
    let client = http_client();
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let url = format!("{http}/v1/sessions/{session}/events?after_seq={after}&limit=1000");
        let body: Value = client
            .get(&url)
            .bearer_auth(ADMIN_SECRET)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let page = body["events"]
            .as_array()
            .ok_or_else(|| format!("GET {url}: {body}"))?;
        let Some(last) = page.last() else {
            return Ok((events, body["last_seq"].as_u64().unwrap_or(0)));
        };
        after = seq(last);
        events.extend(page.iter().cloned());
    }
}

/// The history of `log`'s session as a fresh connection replays it from the start, up
/// to `head`.
async fn replay(cluster: &Cluster, log: &SessionLog, head: u64) -> Vec<Value> {
    let mut fresh = Client::connect(&cluster.any().ws_url()).await;
    let joined = fresh.join(&log.session_id, None, log.key.as_deref()).await;
    assert_eq!(joined["recovered"], true, "{joined}");
    if head == 0 {
        return Vec::new();
    }
    let frames = fresh.collect_until(|f| f["seq"] == head).await;
    crate::support::replicas::session_events(&frames, &log.session_id)
}

/// Print a summary line of `rounds`.
fn report(what: &str, rounds: &[&Round]) {
    let mut takeovers: Vec<u64> = rounds
        .iter()
        .flat_map(|r| r.audit.takeovers_ms.iter().copied())
        .collect();
    takeovers.sort_unstable();
    let pct = |p: f64| -> String {
        if takeovers.is_empty() {
            return "-".into();
        }
        let i = ((takeovers.len() as f64 * p).ceil() as usize).clamp(1, takeovers.len()) - 1;
        format!("{}ms", takeovers[i])
    };
    let sum = |f: fn(&Audit) -> usize| -> usize { rounds.iter().map(|r| f(&r.audit)).sum() };
    let mut retried: std::collections::BTreeMap<usize, usize> = Default::default();
    for r in rounds {
        for (k, v) in &r.audit.retried {
            *retried.entry(*k).or_default() += v;
        }
    }
    eprintln!(
        "{what}: rounds {}, kills {}, messages audited {}, retried {} {retried:?}, \
         unacknowledged in history {}, events {}, publishes {}, takeovers {} \
         (p50 {} p99 {} max {}), losses after the freeze {}, unexplained losses {}",
        rounds.len(),
        rounds.iter().map(|r| r.kills).sum::<usize>(),
        sum(|a| a.messages),
        retried.values().sum::<usize>(),
        sum(|a| a.unacknowledged),
        sum(|a| a.events),
        sum(|a| a.publishes),
        takeovers.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0),
        sum(|a| a.freeze_losses),
        sum(|a| a.unexplained_losses),
    );
}
