//! Replicas in one process sharing a memory backplane: the turn queue is the session's
//! history, one turn runs at a time across replicas, and a replica that stops is
//! replaced.

use std::collections::HashMap;

use switchboard_backplane::{MemoryBackplane, RecordError, RecordKey, Retention};
use switchboard_protocol::{EventBody, Role, TurnEndCode, TurnStatus};

use super::*;
use crate::assistant::model::OfflineAgent;
use crate::assistant::settings::ModelDefaults;
use crate::ids::new_id;
use crate::test_backplane::{Hooks, Watched};

const TIMING: LeaseTiming = LeaseTiming {
    beat: Duration::from_millis(50),
    lapse: Duration::from_millis(250),
};

/// The safety-net polls for cancels and tool decisions never fire within a test: a
/// cancel or a decision made on another replica can only arrive by its hint.
const NO_POLL: Duration = Duration::from_secs(3600);

async fn replica(backplane: &Arc<dyn Backplane>, delay: Duration) -> Arc<Turns> {
    let metrics = Arc::new(Metrics::new().unwrap());
    let store: Arc<dyn switchboard_store::ConversationStore> =
        Arc::new(switchboard_store::MemoryStore::new());
    let events = Events::new(
        backplane.clone(),
        crate::conversations::TranscriptWriter::start(store.clone(), metrics.clone()),
        crate::webhooks::testing::inert(store.clone(), metrics.clone()),
        metrics.clone(),
    );
    let settings = Arc::new(ModelSettingsStore::new(
        backplane.clone(),
        ModelDefaults::new(None, Default::default(), vec![], &[]),
    ));
    let services = TurnServices {
        assistants: Arc::new(crate::assistant::named::NamedAssistants::new(
            store.clone(),
            settings.clone(),
        )),
        handoff: Arc::new(crate::assistant::handoff::Handoffs::new(
            store.clone(),
            events.clone(),
            crate::assistant::handoff::cache::HandoffCache::new(
                backplane.clone(),
                Duration::from_secs(60),
            ),
        )),
        settings,
        tools: Arc::new(ToolRunner::new(None, Duration::from_secs(1)).unwrap()),
        approvals: Arc::new(Approvals::new(
            backplane.clone(),
            Duration::from_secs(60),
            NO_POLL,
        )),
        sessions: Arc::new(SessionStore::new(
            backplane.clone(),
            store.clone(),
            Duration::from_secs(60),
            crate::webhooks::testing::inert(store.clone(), metrics.clone()),
            Arc::new(crate::records::session_quota::SessionQuota::new(
                backplane.clone(),
                crate::config::SessionQuotas::default(),
                metrics.clone(),
            )),
        )),
        cost: crate::assistant::cost::CostControl::new(
            &crate::config::CostLimits::default(),
            backplane.clone(),
            metrics.clone(),
        ),
    };
    let turns = Turns::new(
        Arc::new(Replica::new(backplane.clone(), metrics.clone(), TIMING)),
        backplane.clone(),
        events,
        Arc::new(KnowledgeBase::new(backplane.clone())),
        Arc::new(OfflineAgent::new(delay)),
        services,
        metrics,
        TurnLimits {
            max_queued: 8,
            deadline: Duration::from_secs(30),
            prompt_documents: 3,
            transcript_budget: 1000,
            max_rounds: 4,
            cancel_safety_net: NO_POLL,
        },
        Duration::from_secs(60),
    );
    turns.start_background().await;
    turns
}

fn asker() -> AccessContext {
    AccessContext {
        user_id: None,
        org_id: "default".into(),
        groups: vec![],
        roles: vec![],
        anonymous: true,
        name: None,
    }
}

/// What `Intake::accept` does once a message is checked: remember the asker, append,
/// wake the queue, start the worker when this replica claimed it.
async fn accept(turns: &Arc<Turns>, stream: &StreamName) -> String {
    let (message_id, seq) = ask(turns, stream).await;
    if let Claim::Owned(lease) = turns.enqueue(stream.id(), &message_id, seq).await.unwrap() {
        turns.start(*lease);
    }
    message_id
}

/// The first half of accepting a message: remember the asker and append the message
/// (not queued yet). Its id and `seq`.
async fn ask(turns: &Arc<Turns>, stream: &StreamName) -> (String, u64) {
    let message_id = new_id("m");
    turns
        .remember_job(&message_id, &asker(), "anonymous".into())
        .await
        .unwrap();
    let appended = turns
        .events
        .append(
            stream,
            EventBody::Message {
                message_id: message_id.clone(),
                role: Role::User,
                text: "anything at all".into(),
                author: None,
            },
        )
        .await
        .unwrap();
    (message_id, appended.seq)
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

/// Every turn of `history` in order: (turn_id, reply_to, its end if any).
fn turns_of(
    history: &[Arc<switchboard_backplane::Event>],
) -> Vec<(String, String, Option<EventBody>)> {
    let mut turns: Vec<(String, String, Option<EventBody>)> = Vec::new();
    for event in history {
        match &event.body {
            EventBody::TurnStart {
                turn_id, reply_to, ..
            } => {
                turns.push((turn_id.clone(), reply_to.clone(), None));
            }
            EventBody::TurnEnd { turn_id, .. } => {
                if let Some(turn) = turns.iter_mut().find(|t| &t.0 == turn_id) {
                    turn.2 = Some(event.body.clone());
                }
            }
            _ => {}
        }
    }
    turns
}

fn completed(end: &Option<EventBody>) -> bool {
    matches!(
        end,
        Some(EventBody::TurnEnd {
            status: TurnStatus::Completed,
            ..
        })
    )
}

/// Two replicas accepting messages for one session run its turns one at a time, in
/// order, and answer each message exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_never_run_two_turns_of_one_session_at_once() {
    let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention::default()));
    let a = replica(&backplane, Duration::from_millis(2)).await;
    let b = replica(&backplane, Duration::from_millis(2)).await;
    let stream = StreamName::session("s_lease").unwrap();
    let mut asked = Vec::new();
    for _ in 0..3 {
        asked.push(accept(&a, &stream).await);
        asked.push(accept(&b, &stream).await);
    }
    until("every message is answered", async || {
        let history = backplane.read(&stream, None, 10_000).await.unwrap();
        turns_of(&history.events)
            .iter()
            .filter(|t| completed(&t.2))
            .count()
            == asked.len()
            && a.busy_sessions() + b.busy_sessions() == 0
    })
    .await;
    let history = backplane.read(&stream, None, 10_000).await.unwrap();
    let mut running: Option<String> = None;
    for event in &history.events {
        match &event.body {
            EventBody::TurnStart { turn_id, .. } => {
                assert!(
                    running.is_none(),
                    "turn {turn_id} started while {running:?} ran"
                );
                running = Some(turn_id.clone());
            }
            EventBody::TurnDelta { turn_id, .. } => {
                assert_eq!(running.as_ref(), Some(turn_id), "a delta outside its turn");
            }
            EventBody::TurnEnd { turn_id, .. } => {
                assert_eq!(running.take().as_ref(), Some(turn_id));
            }
            _ => {}
        }
    }
    let answered: Vec<String> = turns_of(&history.events).into_iter().map(|t| t.1).collect();
    let mut sorted_answered = answered.clone();
    sorted_answered.sort();
    let mut sorted_asked = asked.clone();
    sorted_asked.sort();
    assert_eq!(sorted_answered, sorted_asked, "each message answered once");
    let leases = backplane
        .record_list(crate::records::namespace::TURN_LEASES)
        .await
        .unwrap();
    assert!(
        leases.is_empty(),
        "an idle session holds no lease: {leases:?}"
    );
}

/// A replica that stops mid-answer: another ends its turn `replica_lost` (retrying),
/// answers the interrupted message again and then the one queued behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_stops_mid_answer_is_replaced() {
    let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention::default()));
    let a = replica(&backplane, Duration::from_millis(200)).await;
    let b = replica(&backplane, Duration::from_millis(2)).await;
    let stream = StreamName::session("s_takeover").unwrap();
    let first = accept(&a, &stream).await;
    until("the first turn streams", async || {
        let history = backplane.read(&stream, None, 10_000).await.unwrap();
        history
            .events
            .iter()
            .any(|e| matches!(e.body, EventBody::TurnDelta { .. }))
    })
    .await;
    let second = accept(&b, &stream).await;
    // A stops: no more heartbeats, its turns stop writing (what SIGKILL leaves).
    a.stopped.cancel();
    a.replica.identity().1.cancel();
    until("both messages are answered", async || {
        let history = backplane.read(&stream, None, 10_000).await.unwrap();
        turns_of(&history.events)
            .iter()
            .filter(|t| completed(&t.2))
            .count()
            == 2
    })
    .await;
    let history = backplane.read(&stream, None, 10_000).await.unwrap();
    let turns = turns_of(&history.events);
    assert_eq!(turns.len(), 3, "{turns:?}");
    assert_eq!(turns[0].1, first);
    assert!(
        matches!(
            &turns[0].2,
            Some(EventBody::TurnEnd {
                status: TurnStatus::Failed,
                code: Some(TurnEndCode::ReplicaLost),
                retrying: Some(true),
                ..
            })
        ),
        "{:?}",
        turns[0].2
    );
    assert_eq!(
        (turns[1].1.as_str(), completed(&turns[1].2)),
        (first.as_str(), true)
    );
    assert_eq!(
        (turns[2].1.as_str(), completed(&turns[2].2)),
        (second.as_str(), true)
    );
    assert_eq!(b.metrics.turn_takeovers.get(), 1);
    let per_message: HashMap<&str, usize> = turns.iter().fold(HashMap::new(), |mut counts, t| {
        *counts.entry(t.1.as_str()).or_default() += usize::from(completed(&t.2));
        counts
    });
    assert_eq!(
        per_message
            .values()
            .copied()
            .collect::<Vec<_>>()
            .iter()
            .sum::<usize>(),
        2
    );
}

/// A backplane whose next heartbeat renewal, once armed, hangs for a while before it
/// goes through (a slow backplane); everything else passes straight through.
struct SlowHeartbeat {
    stall: std::sync::Mutex<Option<Duration>>,
}

#[async_trait::async_trait]
impl Hooks for SlowHeartbeat {
    async fn record_put(
        &self,
        inner: &dyn Backplane,
        key: &RecordKey,
        value: bytes::Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), RecordError> {
        let stall = if key.namespace == crate::records::namespace::REPLICAS {
            self.stall.lock().unwrap().take()
        } else {
            None
        };
        if let Some(stall) = stall {
            tokio::time::sleep(stall).await;
        }
        inner.record_put(key, value, ttl).await
    }
}

/// A replica whose heartbeat renewal hangs past the lapse while its turn streams counts
/// itself dead before the renewal returns: it stops the turn and leaves it marked
/// running, so whoever takes the queue over (here itself, under a new id) ends it
/// `replica_lost` and answers the message again. The turn never stays without its end
/// and the message is never dropped from the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_heartbeat_hangs_leaves_its_turn_to_the_next_owner() {
    let shared: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention::default()));
    let slow = Arc::new(Watched::over(
        shared.clone(),
        SlowHeartbeat {
            stall: std::sync::Mutex::new(None),
        },
    ));
    let backplane: Arc<dyn Backplane> = slow.clone();
    // Seven deltas, 60 ms apart: the turn outlives the lapse (250 ms), not the stall.
    let a = replica(&backplane, Duration::from_millis(60)).await;
    let stream = StreamName::session("s_slow_heartbeat").unwrap();
    let message = accept(&a, &stream).await;
    until("the turn streams", async || {
        let history = shared.read(&stream, None, 10_000).await.unwrap();
        history
            .events
            .iter()
            .any(|e| matches!(e.body, EventBody::TurnDelta { .. }))
    })
    .await;
    *slow.stall.lock().unwrap() = Some(Duration::from_millis(1500));
    until("the message is answered", async || {
        let history = shared.read(&stream, None, 10_000).await.unwrap();
        turns_of(&history.events).iter().any(|t| completed(&t.2))
    })
    .await;
    let history = shared.read(&stream, None, 10_000).await.unwrap();
    let turns = turns_of(&history.events);
    assert_eq!(turns.len(), 2, "{turns:?}");
    assert!(turns.iter().all(|t| t.1 == message), "{turns:?}");
    assert!(
        matches!(
            &turns[0].2,
            Some(EventBody::TurnEnd {
                status: TurnStatus::Failed,
                code: Some(TurnEndCode::ReplicaLost),
                retrying: Some(true),
                ..
            })
        ),
        "{:?}",
        turns[0].2
    );
}

/// A draining replica finishes its running turn and hands the queued message to
/// another replica at once, without waiting for a lapse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_replica_hands_its_queue_over() {
    let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention::default()));
    let a = replica(&backplane, Duration::from_millis(30)).await;
    let b = replica(&backplane, Duration::from_millis(2)).await;
    let stream = StreamName::session("s_drain").unwrap();
    let first = accept(&a, &stream).await;
    let second = accept(&a, &stream).await;
    until("the first turn starts", async || {
        let history = backplane.read(&stream, None, 10_000).await.unwrap();
        !turns_of(&history.events).is_empty()
    })
    .await;
    a.drain(Duration::from_secs(10)).await;
    until("both messages are answered", async || {
        let history = backplane.read(&stream, None, 10_000).await.unwrap();
        turns_of(&history.events)
            .iter()
            .filter(|t| completed(&t.2))
            .count()
            == 2
    })
    .await;
    let history = backplane.read(&stream, None, 10_000).await.unwrap();
    let turns = turns_of(&history.events);
    assert_eq!(turns.len(), 2, "no turn was interrupted: {turns:?}");
    assert_eq!(
        (turns[0].1.as_str(), turns[1].1.as_str()),
        (first.as_str(), second.as_str())
    );
    assert_eq!(b.metrics.turn_takeovers.get(), 1, "b took the rest over");
}

/// A retried send whose first attempt stopped between the append and the queue is
/// answered once; a retry of a message already answered queues nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_queues_a_message_only_when_it_was_neither_queued_nor_answered() {
    let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention::default()));
    let a = replica(&backplane, Duration::from_millis(2)).await;
    let stream = StreamName::session("s_retry").unwrap();
    // The first attempt: remembered and appended, then its replica stopped.
    let (orphan, seq) = ask(&a, &stream).await;
    for _ in 0..2 {
        if let Claim::Owned(lease) = a
            .enqueue_again(stream.id(), &stream, &orphan, seq)
            .await
            .unwrap()
        {
            a.start(*lease);
        }
    }
    until("the orphan is answered", async || {
        let history = backplane.read(&stream, None, 10_000).await.unwrap();
        turns_of(&history.events).iter().any(|t| completed(&t.2)) && a.busy_sessions() == 0
    })
    .await;
    assert!(matches!(
        a.enqueue_again(stream.id(), &stream, &orphan, seq)
            .await
            .unwrap(),
        Claim::Poked
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let history = backplane.read(&stream, None, 10_000).await.unwrap();
    assert_eq!(turns_of(&history.events).len(), 1, "answered exactly once");
}

/// A message that retention removed before its turn began is not met with silence: its
/// turn ends `failed` and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_trimmed_before_its_turn_gets_an_end_that_says_why() {
    let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention {
        max_events: 5,
        max_age: Duration::from_secs(60),
    }));
    let a = replica(&backplane, Duration::from_millis(2)).await;
    let stream = StreamName::session("s_short").unwrap();
    let mut live = backplane.subscribe(&stream).await.unwrap();
    let first = accept(&a, &stream).await;
    let second = accept(&a, &stream).await;
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            seen.push(live.next().await.unwrap());
            if turns_of(&seen)
                .iter()
                .any(|t| t.1 == second && t.2.is_some())
            {
                break;
            }
        }
    })
    .await
    .expect("the second message's turn ends");
    let turns = turns_of(&seen);
    assert!(completed(&turns[0].2) && turns[0].1 == first, "{turns:?}");
    match &turns[1].2 {
        Some(EventBody::TurnEnd {
            status: TurnStatus::Failed,
            error: Some(error),
            ..
        }) => assert!(error.contains("--history-max-events"), "{error}"),
        other => panic!("expected a failed end that says why, got {other:?}"),
    }
}

/// A queue this replica owns but no worker of it drains (the worker gave up through a
/// long outage) is adopted again by the replica's own watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unattended_queue_of_this_replica_is_adopted_again() {
    let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention::default()));
    let a = replica(&backplane, Duration::from_millis(2)).await;
    let stream = StreamName::session("s_unattended").unwrap();
    let (message_id, seq) = ask(&a, &stream).await;
    // Claimed, and then no worker is started for it.
    let claim = a.enqueue(stream.id(), &message_id, seq).await.unwrap();
    assert!(matches!(claim, Claim::Owned(_)));
    drop(claim);
    until("the message is answered", async || {
        let history = backplane.read(&stream, None, 10_000).await.unwrap();
        turns_of(&history.events).iter().any(|t| completed(&t.2))
    })
    .await;
    assert_eq!(a.metrics.turn_takeovers.get(), 1);
}

/// A dead replica's turn that had asked for a tool call is ended `replica_lost`
/// without a retry (the tool may have run); one that had not is answered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_turn_is_retried_only_when_it_called_no_tool() {
    for called_tool in [true, false] {
        let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention::default()));
        let stream = StreamName::session("s_tool").unwrap();
        let message_id = new_id("m");
        let b = replica(&backplane, Duration::from_millis(2)).await;
        b.remember_job(&message_id, &asker(), "anonymous".into())
            .await
            .unwrap();
        let mut bodies = vec![
            EventBody::Message {
                message_id: message_id.clone(),
                role: Role::User,
                text: "anything at all".into(),
                author: None,
            },
            EventBody::TurnStart {
                turn_id: "t_dead".into(),
                reply_to: message_id.clone(),
                assistant: None,
            },
        ];
        if called_tool {
            bodies.push(EventBody::ToolRequest {
                turn_id: "t_dead".into(),
                call_id: "tc_dead".into(),
                tool: "refund".into(),
                arguments: serde_json::json!({}),
                requires_approval: false,
            });
        }
        for body in bodies {
            backplane.append(&stream, body).await.unwrap();
        }
        // The queue of a replica that died while running t_dead.
        let dead = lease::Lease {
            replica: "r_dead".into(),
            token: "lease_dead".into(),
            waiting: vec![],
            running: Some(lease::Running {
                turn_id: "t_dead".into(),
                message: lease::Queued {
                    message_id: message_id.clone(),
                    seq: 1,
                    losses: 0,
                },
            }),
            released: false,
        };
        backplane
            .record_create(
                &switchboard_backplane::RecordKey::new(
                    crate::records::namespace::TURN_LEASES,
                    stream.id(),
                ),
                bytes::Bytes::from(serde_json::to_vec(&dead).unwrap()),
                None,
            )
            .await
            .unwrap();
        until("the queue is settled", async || {
            let history = backplane.read(&stream, None, 10_000).await.unwrap();
            let turns = turns_of(&history.events);
            turns[0].2.is_some()
                && (called_tool || turns.iter().any(|t| completed(&t.2)))
                && b.busy_sessions() == 0
        })
        .await;
        let history = backplane.read(&stream, None, 10_000).await.unwrap();
        let turns = turns_of(&history.events);
        match &turns[0].2 {
            Some(EventBody::TurnEnd {
                status: TurnStatus::Failed,
                code: Some(TurnEndCode::ReplicaLost),
                retrying: Some(retrying),
                error: Some(error),
                ..
            }) => {
                assert_eq!(*retrying, !called_tool);
                if called_tool {
                    assert!(error.contains("tool"), "{error}");
                }
            }
            other => panic!("expected a replica_lost end, got {other:?}"),
        }
        assert_eq!(turns.len(), if called_tool { 1 } else { 2 }, "{turns:?}");
    }
}

/// The id of the first turn of `stream`, once it started.
async fn first_turn(backplane: &Arc<dyn Backplane>, stream: &StreamName) -> String {
    let mut turn_id = None;
    until("a turn starts", async || {
        let history = backplane.read(stream, None, 10_000).await.unwrap();
        turn_id = turns_of(&history.events).first().map(|t| t.0.clone());
        turn_id.is_some()
    })
    .await;
    turn_id.unwrap()
}

/// The `turn.end` of `turn_id`, once written.
async fn end_of(backplane: &Arc<dyn Backplane>, stream: &StreamName, turn_id: &str) -> EventBody {
    let mut end = None;
    until("the turn ends", async || {
        let history = backplane.read(stream, None, 10_000).await.unwrap();
        end = turns_of(&history.events)
            .into_iter()
            .find(|t| t.0 == turn_id)
            .and_then(|t| t.2);
        end.is_some()
    })
    .await;
    end.unwrap()
}

/// Start a turn on `a` that would stream for seconds, cancel it through `b`, and
/// return how it ended. The safety-net poll never fires here, so a `cancelled` end
/// came by the hint on `a`'s control stream.
async fn cancel_through(
    backplane: &Arc<dyn Backplane>,
    a: &Arc<Turns>,
    b: &Arc<Turns>,
    session_id: &str,
) -> EventBody {
    let stream = StreamName::session(session_id).unwrap();
    accept(a, &stream).await;
    let turn_id = first_turn(backplane, &stream).await;
    assert!(b.cancel_anywhere(session_id, &turn_id).await.unwrap());
    end_of(backplane, &stream, &turn_id).await
}

fn cancelled(end: &EventBody) -> bool {
    matches!(
        end,
        EventBody::TurnEnd {
            status: TurnStatus::Cancelled,
            ..
        }
    )
}

/// About six deltas a second apart: a turn that would run for seconds.
const SLOW: Duration = Duration::from_secs(1);

/// `turn.cancel` on a replica that does not run the turn wakes the one that does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_another_replica_arrives_by_hint() {
    let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention::default()));
    let a = replica(&backplane, SLOW).await;
    let b = replica(&backplane, Duration::from_millis(2)).await;
    let end = cancel_through(&backplane, &a, &b, "s_cancel_hint").await;
    assert!(cancelled(&end), "{end:?}");
}

/// A decision on a replica where the turn does not wait wakes the turn's replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_on_another_replica_arrives_by_hint() {
    use crate::assistant::approvals::{Decision, PendingCall};

    let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention::default()));
    let a = replica(&backplane, Duration::from_millis(2)).await;
    let b = replica(&backplane, Duration::from_millis(2)).await;
    let call = PendingCall {
        session_id: "s_tool_hint".into(),
        turn_id: "t_1".into(),
        org_id: asker().org_id,
        tool: "refund".into(),
        owner: None,
        asker: Some(asker()),
        replica: Some(a.replica_id()),
    };
    let approvals = a.services.approvals.clone();
    approvals.open("tc_hint", &call).await.unwrap();
    let waiting = tokio::spawn({
        let approvals = approvals.clone();
        async move { approvals.wait("tc_hint").await }
    });
    // Decide only once the turn waits, so the decision cannot be read on its first look.
    until("the turn waits", async || approvals.is_waiting("tc_hint")).await;
    b.services
        .approvals
        .decide(&asker(), "s_tool_hint", "tc_hint", true)
        .await
        .unwrap();
    let decision = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the waiting turn is woken")
        .unwrap();
    assert_eq!(decision.0, Decision::Approved);
}

/// A replica that lapsed and starts over under a new id listens on its new control
/// stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_stream_follows_a_new_replica_id() {
    let severable = Arc::new(Watched::new(Severable::default()));
    let backplane: Arc<dyn Backplane> = severable.clone();
    let a = replica(&backplane, SLOW).await;
    let b = replica(&backplane, Duration::from_millis(2)).await;
    // Both listen under their first ids before a's changes.
    until("both replicas listen", async || {
        severable.control_subscribes() >= 2
    })
    .await;
    let old = a.replica_id();
    a.replica.backdate_renewal();
    until("a runs under a new id", async || {
        a.replica_id() != old && a.replica.is_alive()
    })
    .await;
    let end = cancel_through(&backplane, &a, &b, "s_new_id").await;
    assert!(cancelled(&end), "{end:?}");
}

/// A control stream subscription that ends (a lost connection to the backplane) is
/// made again, and hints reach the replica through the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_stream_subscription_that_ends_is_made_again() {
    let severable = Arc::new(Watched::new(Severable::default()));
    let backplane: Arc<dyn Backplane> = severable.clone();
    let a = replica(&backplane, SLOW).await;
    let b = replica(&backplane, Duration::from_millis(2)).await;
    until("both replicas listen", async || {
        severable.control_subscribes() >= 2
    })
    .await;
    severable.sever();
    until("both replicas listen again", async || {
        severable.control_subscribes() >= 4
    })
    .await;
    let end = cancel_through(&backplane, &a, &b, "s_severed").await;
    assert!(cancelled(&end), "{end:?}");
}

/// A memory backplane that counts control-stream subscriptions and can end them as a
/// lost connection to a backplane server ends them.
#[derive(Default)]
struct Severable {
    cut: Mutex<CancellationToken>,
    control_subscribes: std::sync::atomic::AtomicUsize,
}

impl Severable {
    /// End every control-stream subscription made so far (`Disconnected`).
    fn sever(&self) {
        let mut cut = self.cut.lock().unwrap();
        std::mem::take(&mut *cut).cancel();
    }

    fn control_subscribes(&self) -> usize {
        self.control_subscribes
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Hooks for Severable {
    async fn subscribe(
        &self,
        inner: &dyn Backplane,
        s: &StreamName,
    ) -> Result<switchboard_backplane::Subscription, switchboard_backplane::SubscribeError> {
        use switchboard_backplane::{Offered, Subscription, SubscriptionEnded};

        let mut inner = inner.subscribe(s).await?;
        if s.kind() != switchboard_protocol::StreamKind::Control {
            return Ok(inner);
        }
        let cut = self.cut.lock().unwrap().clone();
        let (subscription, mut feed) = Subscription::channel(64, None);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = cut.cancelled() => {
                        feed.end(SubscriptionEnded::Disconnected);
                        return;
                    }
                    next = inner.next() => match next {
                        Ok(event) => {
                            if feed.offer(event) != Offered::Delivered {
                                return;
                            }
                        }
                        Err(ended) => {
                            feed.end(ended);
                            return;
                        }
                    }
                }
            }
        });
        self.control_subscribes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(subscription)
    }
}

/// A `turn.cancel` that names a running turn of another session, through a session
/// that has a turn of its own, cancels nothing and answers so (the policy lets a
/// member cancel only in sessions it joined; the turn id must be that session's
/// running turn).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_through_another_session_cancels_nothing() {
    let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention::default()));
    let a = replica(&backplane, SLOW).await;
    let b = replica(&backplane, SLOW).await;
    let victim = StreamName::session("s_victim").unwrap();
    let own = StreamName::session("s_own").unwrap();
    accept(&a, &victim).await;
    accept(&b, &own).await;
    let victims_turn = first_turn(&backplane, &victim).await;
    first_turn(&backplane, &own).await;
    assert!(!b.cancel_anywhere(own.id(), &victims_turn).await.unwrap());
    assert!(!a.cancel(own.id(), &victims_turn));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let history = backplane.read(&victim, None, 10_000).await.unwrap();
    assert!(
        turns_of(&history.events)[0].2.is_none(),
        "the other session's turn still runs"
    );
    assert_eq!(
        backplane
            .record_get(&switchboard_backplane::RecordKey::new(
                crate::records::namespace::TURN_CANCELS,
                &victims_turn
            ))
            .await
            .unwrap(),
        None,
        "no cancel request was left for it"
    );
}

/// A turn reads the history up to its message, the latest events of it, and nothing
/// after the message.
#[test]
fn a_turn_reads_the_latest_history_up_to_its_message() {
    use super::worker::{HISTORY_EVENTS, history_window};
    let window = HISTORY_EVENTS as u64;
    // Seqs 1..=5: from the oldest, the five events up to the message.
    assert_eq!(history_window(5), (None, 5));
    assert_eq!(history_window(window), (None, HISTORY_EVENTS));
    // Past the window: its last HISTORY_EVENTS events end at the message.
    assert_eq!(history_window(window + 1), (Some(1), HISTORY_EVENTS));
    assert_eq!(
        history_window(3 * window),
        (Some(2 * window), HISTORY_EVENTS)
    );
    // An unknown seq reads from the oldest event.
    assert_eq!(history_window(0), (None, HISTORY_EVENTS));
}

/// A long history (more events than one read returns) does not hide a new message
/// from its turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_after_a_long_history_is_answered() {
    let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention {
        max_events: 20_000,
        max_age: Duration::from_secs(600),
    }));
    let a = replica(&backplane, Duration::from_millis(2)).await;
    let stream = StreamName::session("s_long").unwrap();
    for n in 0..super::worker::HISTORY_EVENTS + 50 {
        let filler = EventBody::Custom {
            name: "filler".into(),
            data: serde_json::json!(n),
            publisher: None,
            durable: false,
        };
        backplane.append(&stream, filler).await.unwrap();
    }
    let asked = accept(&a, &stream).await;
    let mut end = None;
    until("the message is answered", async || {
        let tail = backplane
            .read(&stream, Some(super::worker::HISTORY_EVENTS as u64), 10_000)
            .await
            .unwrap();
        end = turns_of(&tail.events)
            .into_iter()
            .find(|t| t.1 == asked)
            .and_then(|t| t.2);
        end.is_some()
    })
    .await;
    assert!(completed(&end), "{end:?}");
}
