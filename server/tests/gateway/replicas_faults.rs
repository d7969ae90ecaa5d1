//! Faults with several gateways over one real backplane: the backplane server dies and
//! comes back, and a replica is drained (SIGTERM) mid-turn. Acknowledged events are
//! never lost or doubled, and clients resume with `after_seq`
//! (docs/protocol.md §3, §5, §6).
//!
//! Each test runs over Redis and over NATS (`…::redis`, `…::nats`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::support::http::{ADMIN_SECRET, Api, PUBLISHER_SECRET, publish_body};
use crate::support::knowledge::{REFUND_QUESTION, UNMATCHED_QUESTION};
use crate::support::replicas::{
    Backing, Backplane, backed_tests, replica, session_events, wait_ready,
};
use crate::support::{
    Client, Gateway, WAIT, assert_strictly_increasing, is_assistant_message, seq, summary, ty,
};

backed_tests! {
    /// The backplane server killed and restarted while publishes stream in and a turn
    /// runs: `/ready` turns 503 on every gateway and `message.send` gets `unavailable`;
    /// after the restart `/ready` is 200 again without restarting any gateway, sockets
    /// that stayed connected keep receiving (events published after the restart
    /// included, and the interrupted turn's one `turn.end`), every acknowledged event (a
    /// 202 with a seq, a `message.accepted`) is in history (a rejoin with `after_seq`, a
    /// fresh join, `GET /v1/sessions/{id}/events`) in order and exactly once, and new
    /// turns run.
    backplane_restart_loses_no_acknowledged_event => backplane_restart;

    /// SIGTERM to replica A while a turn started on A runs: A's clients get `goaway` then
    /// close 1012, reconnect to replica B, rejoin with `after_seq` and receive the rest of
    /// the turn and its `turn.end` (completed), nothing lost or doubled compared with an
    /// observer on B; A exits 0.
    draining_a_replica_mid_turn_hands_its_clients_to_another => drain_mid_turn;
}

/// How long the gateways may take to notice the backplane is down, or back.
const NOTICE: Duration = Duration::from_secs(20);

/// What one publish of the background publisher got.
#[derive(Debug, Clone)]
struct Outcome {
    /// The publish's index (`data.i`).
    i: u64,
    status: u16,
    /// The `seq` of a 202.
    seq: Option<u64>,
    body: String,
    /// How long the request took.
    took: Duration,
}

/// Publish `tick` events `{"i": 0, 1, …}` into `session_id`, one after the other
/// alternating between the gateways, every 20 ms until `stop` is set. Each outcome goes
/// to the returned channel.
fn spawn_publisher(
    gateways: &[&Gateway],
    session_id: &str,
    stop: Arc<AtomicBool>,
) -> (
    tokio::task::JoinHandle<()>,
    mpsc::UnboundedReceiver<Outcome>,
) {
    let apis: Vec<Api> = gateways.iter().map(|gw| Api::new(gw)).collect();
    let session_id = session_id.to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut pace = tokio::time::interval(Duration::from_millis(20));
        let mut i = 0u64;
        while !stop.load(Ordering::SeqCst) {
            pace.tick().await;
            let api = &apis[i as usize % apis.len()];
            let body = publish_body("session", &session_id, "tick", json!({ "i": i }));
            let started = tokio::time::Instant::now();
            let reply = match api.try_run(api_publish(api, &body)).await {
                Ok(reply) => reply,
                Err(e) => panic!("publish {i}: {e}"),
            };
            let outcome = Outcome {
                i,
                status: reply.status,
                seq: reply.json["seq"].as_u64(),
                body: reply.text,
                took: started.elapsed(),
            };
            if tx.send(outcome).is_err() {
                return;
            }
            i += 1;
        }
    });
    (task, rx)
}

fn api_publish(api: &Api, body: &Value) -> reqwest::RequestBuilder {
    api.builder(reqwest::Method::POST, "/v1/publish")
        .bearer_auth(PUBLISHER_SECRET)
        .json(body)
}

/// Read outcomes into `log` until `enough` holds for the log, under [`NOTICE`].
async fn outcomes_until(
    rx: &mut mpsc::UnboundedReceiver<Outcome>,
    log: &mut Vec<Outcome>,
    what: &str,
    mut enough: impl FnMut(&[Outcome]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + NOTICE;
    while !enough(log) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(outcome)) => log.push(outcome),
            Ok(None) => panic!("the publisher stopped early, waiting for {what}"),
            Err(_) => panic!(
                "{what}: not within {NOTICE:?}; last outcomes: {:?}",
                &log[log.len().saturating_sub(5)..]
            ),
        }
    }
}

fn acked(log: &[Outcome]) -> usize {
    log.iter().filter(|o| o.status == 202).count()
}

/// The `tick` events among `events` as `(i, seq)`.
fn ticks(events: &[Value]) -> Vec<(u64, u64)> {
    events
        .iter()
        .filter(|e| ty(e) == "event" && e["name"] == "tick")
        .map(|e| (e["data"]["i"].as_u64().expect("tick data.i"), seq(e)))
        .collect()
}

/// Panics unless every acknowledged `(i, seq)` of `want` is in `got` (as `(i, seq)`),
/// `got` has no index twice, and its seqs strictly increase.
fn assert_has_every_acked(got: &[(u64, u64)], want: &[(u64, u64)], who: &str) {
    let by_seq: BTreeMap<u64, u64> = got.iter().map(|(i, q)| (*q, *i)).collect();
    let missing: Vec<&(u64, u64)> = want
        .iter()
        .filter(|(i, q)| by_seq.get(q) != Some(i))
        .collect();
    assert!(
        missing.is_empty(),
        "{who}: acknowledged publishes missing (i, seq): {missing:?}\ngot: {got:?}"
    );
    let indexes: BTreeSet<u64> = got.iter().map(|(i, _)| *i).collect();
    assert_eq!(
        indexes.len(),
        got.len(),
        "{who}: an event appears twice: {got:?}"
    );
    assert!(
        got.windows(2).all(|w| w[1].1 > w[0].1),
        "{who}: seqs must strictly increase: {got:?}"
    );
}

async fn backplane_restart(backing: Backing) {
    let mut bp = Backplane::start(backing);
    let gw_a = replica(&bp, "replica-a");
    let gw_b = replica(&bp, "replica-b");
    let mut a = Client::connect(&gw_a.ws_url()).await;
    let mut b = Client::connect(&gw_b.ws_url()).await;
    let mut leaver = Client::connect(&gw_b.ws_url()).await;
    let s = a.create_session().await;
    let key = s.key.as_deref();
    b.join(&s.id, None, key).await;
    leaver.join(&s.id, None, key).await;
    // An acknowledged message, and its turn, well before the outage.
    let early = a.send_message(&s.id, UNMATCHED_QUESTION).await;
    b.collect_turns(1).await;
    a.collect_turns(1).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (publisher, mut rx) = spawn_publisher(&[&gw_a, &gw_b], &s.id, stop.clone());
    let mut log = Vec::new();
    outcomes_until(&mut rx, &mut log, "5 publishes before the outage", |l| {
        acked(l) >= 5
    })
    .await;
    let before: Vec<&Outcome> = log.iter().filter(|o| o.status != 202).collect();
    assert!(
        before.is_empty(),
        "publishes failed before the outage: {before:?}"
    );
    // The leaver saw the first three, then goes away during the outage.
    let third = log
        .iter()
        .filter(|o| o.status == 202)
        .nth(2)
        .unwrap()
        .seq
        .unwrap();
    leaver.collect_until(|f| f["seq"] == third).await;
    // A turn is running on A, among the publishes, when the backplane dies.
    let interrupted = a.send_message(&s.id, REFUND_QUESTION).await;
    let mut deltas = 0;
    let a_before = a
        .collect_until(|f| {
            deltas += usize::from(ty(f) == "turn.delta");
            deltas == 2
        })
        .await;
    let start = a_before
        .iter()
        .find(|f| ty(f) == "turn.start")
        .expect("turn.start");
    assert_eq!(start["reply_to"], interrupted["message_id"], "{start}");
    let turn_id = start["turn_id"].clone();

    bp.stop();
    let stopped_at = log.len();
    for gw in [&gw_a, &gw_b] {
        let body = wait_ready(gw, 503, NOTICE).await;
        assert_eq!(body["error"]["code"], "unavailable", "/ready body: {body}");
    }
    drop(leaver);
    for (client, who) in [(&mut a, "A"), (&mut b, "B")] {
        let reply = client
            .request(
                "message.send",
                json!({"session_id": s.id, "text": "hello during the outage"}),
            )
            .await;
        assert_eq!(
            (ty(&reply), reply["code"].as_str()),
            ("error", Some("unavailable")),
            "message.send on {who} while the backplane is down: {reply}"
        );
    }
    // Stay down long enough (40 refusals at one publish per 20 ms) for the gateways'
    // reconnect attempts to fail a few times and back off.
    outcomes_until(&mut rx, &mut log, "40 refused publishes", |l| {
        l[stopped_at..].iter().filter(|o| o.status != 202).count() >= 40
    })
    .await;

    bp.restart();
    for gw in [&gw_a, &gw_b] {
        let body = wait_ready(gw, 200, NOTICE).await;
        assert_eq!(body["status"], "ready", "/ready body: {body}");
    }
    let restarted_at = log.len();
    outcomes_until(&mut rx, &mut log, "5 publishes after the restart", |l| {
        acked(&l[restarted_at..]) >= 5
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    tokio::time::timeout(WAIT, publisher)
        .await
        .expect("the publisher stops")
        .expect("the publisher did not panic");
    while let Some(outcome) = rx.recv().await {
        log.push(outcome);
    }

    // Refusals are `503 unavailable`; acknowledgements carry increasing seqs.
    for o in log.iter().filter(|o| o.status != 202) {
        assert_eq!(o.status, 503, "a publish during the outage: {o:?}");
        let body: Value = serde_json::from_str(&o.body).unwrap_or(Value::Null);
        assert_eq!(body["error"]["code"], "unavailable", "{o:?}");
    }
    let refused = log.iter().filter(|o| o.status != 202).count();
    let want: Vec<(u64, u64)> = log
        .iter()
        .filter(|o| o.status == 202)
        .map(|o| {
            (
                o.i,
                o.seq.unwrap_or_else(|| panic!("202 without seq: {o:?}")),
            )
        })
        .collect();
    assert!(
        want.windows(2).all(|w| w[1].1 > w[0].1),
        "acknowledged seqs must increase in publish order: {want:?}"
    );
    let slowest = log.iter().map(|o| o.took).max().unwrap_or_default();
    eprintln!(
        "{backing:?}: {} publishes, {} acknowledged, {refused} refused, slowest {slowest:?}",
        log.len(),
        want.len()
    );

    // Sockets that stayed connected through the outage: live delivery resumed by itself,
    // and the interrupted turn reached its end (whatever its status) instead of hanging.
    let last_tick = want.last().unwrap().1;
    let mut ends = Vec::new();
    for (client, mut frames, who) in [
        (&mut a, a_before, "A (stayed)"),
        (&mut b, Vec::new(), "B (stayed)"),
    ] {
        let (mut tick_seen, mut end_seen) = (false, false);
        frames.extend(
            client
                .collect_until(|f| {
                    tick_seen |= f["seq"] == last_tick;
                    end_seen |= ty(f) == "turn.end" && f["turn_id"] == turn_id;
                    tick_seen && end_seen
                })
                .await,
        );
        let events = session_events(&frames, &s.id);
        assert_strictly_increasing(&events);
        let got = ticks(&events);
        assert_has_every_acked(&got, &want, who);
        assert!(
            want[want.len() - 5..].iter().all(|w| got.contains(w)),
            "{who}: events published after the restart must arrive live"
        );
        let end = events
            .iter()
            .find(|e| ty(e) == "turn.end" && e["turn_id"] == turn_id)
            .expect("turn.end")
            .clone();
        ends.push(end);
    }
    assert_eq!(ends[0], ends[1], "A and B saw different ends of the turn");
    let horizon = last_tick.max(seq(&ends[0]));

    // The leaver comes back on B with after_seq.
    let mut back = Client::connect(&gw_b.ws_url()).await;
    let joined = back.join(&s.id, Some(third), key).await;
    assert_eq!(joined["recovered"], true, "{joined}");
    let events = session_events(&back.collect_until(|f| f["seq"] == horizon).await, &s.id);
    assert!(
        events.iter().all(|e| seq(e) > third),
        "{}",
        summary(&events)
    );
    let tail: Vec<(u64, u64)> = want.iter().copied().filter(|(_, q)| *q > third).collect();
    assert_has_every_acked(&ticks(&events), &tail, "rejoin with after_seq");

    // A fresh join (whole history) on A, and the history over HTTP on B.
    let mut fresh = Client::connect(&gw_a.ws_url()).await;
    fresh.join(&s.id, None, key).await;
    let replay = session_events(&fresh.collect_until(|f| f["seq"] == horizon).await, &s.id);
    assert_strictly_increasing(&replay);
    assert_has_every_acked(&ticks(&replay), &want, "fresh join");
    for accepted in [&early, &interrupted] {
        let kept = replay
            .iter()
            .find(|e| ty(e) == "message" && e["message_id"] == accepted["message_id"])
            .unwrap_or_else(|| panic!("an accepted message is not in history: {accepted}"));
        assert_eq!(seq(kept), seq(accepted), "{kept}");
    }
    let of_turn = |t: &str| {
        replay
            .iter()
            .filter(|e| ty(e) == t && e["turn_id"] == turn_id)
            .count()
    };
    assert_eq!(
        (of_turn("turn.start"), of_turn("turn.end")),
        (1, 1),
        "the interrupted turn starts and ends once in history: {}",
        summary(&replay)
    );
    let reply = Api::new(&gw_b)
        .get(&format!("/v1/sessions/{}/events", s.id), Some(ADMIN_SECRET))
        .await;
    let history = reply.expect(200, "GET /v1/sessions/{id}/events");
    let history: Vec<Value> = history["events"].as_array().expect("events").clone();
    assert_has_every_acked(&ticks(&history), &want, "GET /v1/sessions/{id}/events");
    let upto: Vec<Value> = history.into_iter().filter(|e| seq(e) <= horizon).collect();
    assert_eq!(
        upto,
        replay,
        "HTTP history and socket replay differ\nhttp:   {}\nsocket: {}",
        summary(&upto),
        summary(&replay)
    );

    // And turns run again: message.send is accepted and its turn reaches the other replica.
    let accepted = a.send_message(&s.id, UNMATCHED_QUESTION).await;
    let mut next_turn = Value::Null;
    let frames = b
        .collect_until(|f| {
            if ty(f) == "turn.start" && f["reply_to"] == accepted["message_id"] {
                next_turn = f["turn_id"].clone();
            }
            ty(f) == "turn.end" && !next_turn.is_null() && f["turn_id"] == next_turn
        })
        .await;
    let turn = session_events(&frames, &s.id);
    let user = turn
        .iter()
        .find(|e| e["message_id"] == accepted["message_id"])
        .unwrap_or_else(|| panic!("B missed the user message: {}", summary(&turn)));
    assert_eq!(seq(user), seq(&accepted));
    let end = turn.last().unwrap();
    assert_eq!(end["status"], "completed", "{end}");
}

async fn drain_mid_turn(backing: Backing) {
    let bp = Backplane::start(backing);
    let mut gw_a = replica(&bp, "replica-a");
    let gw_b = replica(&bp, "replica-b");
    let mut sender = Client::connect(&gw_a.ws_url()).await;
    let mut member = Client::connect(&gw_a.ws_url()).await;
    let mut observer = Client::connect(&gw_b.ws_url()).await;
    let s = sender.create_session().await;
    let key = s.key.as_deref();
    member.join(&s.id, None, key).await;
    observer.join(&s.id, None, key).await;
    sender.send_message(&s.id, REFUND_QUESTION).await;

    // Both clients on A have seen the turn start and two deltas.
    let mut seen = Vec::new();
    for client in [&mut sender, &mut member] {
        let mut deltas = 0;
        let frames = client
            .collect_until(|f| {
                if ty(f) == "turn.delta" {
                    deltas += 1;
                }
                deltas == 2
            })
            .await;
        seen.push(frames);
    }
    gw_a.sigterm();

    let mut resumed_views = Vec::new();
    for ((mut client, mut frames), who) in [sender, member]
        .into_iter()
        .zip(seen)
        .zip(["sender", "member"])
    {
        let (rest, code, _) = client.frames_until_close().await;
        assert_eq!(
            rest.last(),
            Some(&json!({"type": "goaway", "reason": "draining"})),
            "{who}: the frame before the close must be goaway: {}",
            summary(&rest)
        );
        assert_eq!(code, 1012, "{who}: close code while draining");
        frames.extend(rest);
        let events = session_events(&frames, &s.id);
        assert!(
            events.iter().all(|e| ty(e) != "turn.end"),
            "{who}: the turn ended before the drain started; make it longer"
        );
        let last_seen = seq(events.last().unwrap());

        let mut moved = Client::connect(&gw_b.ws_url()).await;
        assert_eq!(moved.welcome["server_id"], "replica-b");
        let joined = moved.join(&s.id, Some(last_seen), key).await;
        assert_eq!(joined["recovered"], true, "{who}: {joined}");
        let mut view = events;
        view.extend(session_events(&moved.collect_turns(1).await, &s.id));
        resumed_views.push((who, view));
    }

    let observed = session_events(&observer.collect_turns(1).await, &s.id);
    assert_strictly_increasing(&observed);
    let end = observed
        .iter()
        .find(|e| ty(e) == "turn.end")
        .expect("turn.end");
    assert_eq!(end["status"], "completed", "{end}");
    assert!(is_assistant_message(observed.last().unwrap()));
    for (who, view) in resumed_views {
        assert_eq!(
            view,
            observed,
            "{who}: the view across the move differs from the observer's\nmoved:    {}\nobserver: {}",
            summary(&view),
            summary(&observed)
        );
    }

    let status = gw_a.wait_exit(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "replica A's exit status after the drain: {status}"
    );
    // B serves on: a turn started there completes.
    let mut again = Client::connect(&gw_b.ws_url()).await;
    again
        .join(&s.id, Some(seq(observed.last().unwrap())), key)
        .await;
    again.send_message(&s.id, UNMATCHED_QUESTION).await;
    let more = session_events(&again.collect_turns(1).await, &s.id);
    let end = more.iter().find(|e| ty(e) == "turn.end").expect("turn.end");
    assert_eq!(end["status"], "completed", "{end}");
}
