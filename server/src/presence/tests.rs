//! Two replicas' presence over one memory backplane, on a paused clock: joins and
//! leaves reach members on both, a dead replica's members leave at the next beat after
//! its heartbeat is gone, typing crosses replicas at most once per interval, and the
//! limits hold.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use switchboard_backplane::{Backplane, MemoryBackplane, RecordKey, Retention};
use switchboard_protocol::{PresenceMember, PresenceRole};

use super::typing::TYPING_INTERVAL;
use super::*;
use crate::fanout::outbound::{OutboundReceiver, Outgoing, TryRecvError};

const TIMING: PresenceTiming = PresenceTiming {
    beat: Duration::from_millis(250),
    lapse: Duration::from_secs(1),
};

async fn replica(backplane: &Arc<MemoryBackplane>, limits: PresenceLimits) -> Arc<Presence> {
    let presence = Presence::new(
        backplane.clone(),
        Arc::new(Metrics::new().unwrap()),
        TIMING,
        limits,
    );
    presence.start().await;
    presence
}

/// Two replicas with the default limits on one memory backplane.
async fn two_replicas() -> (Arc<MemoryBackplane>, Arc<Presence>, Arc<Presence>) {
    let backplane = Arc::new(MemoryBackplane::new(Retention::default()));
    let a = replica(&backplane, PresenceLimits::default()).await;
    let b = replica(&backplane, PresenceLimits::default()).await;
    (backplane, a, b)
}

/// `replica`'s heartbeat is gone, as its expiry would remove it after a crash.
async fn heartbeat_lapses(backplane: &MemoryBackplane, replica: &Presence) {
    backplane
        .record_delete(&RecordKey::new(PRESENCE_REPLICAS, replica.id()))
        .await
        .unwrap();
}

fn member(user: Option<&str>, name: Option<&str>, role: PresenceRole) -> PresenceMember {
    PresenceMember {
        user_id: user.map(str::to_string),
        name: name.map(str::to_string),
        role,
    }
}

fn owner() -> PresenceMember {
    member(Some("u1"), Some("Ann"), PresenceRole::Owner)
}

fn dana() -> PresenceMember {
    member(Some("dana"), Some("Dana"), PresenceRole::Operator)
}

fn visitor() -> PresenceMember {
    member(None, None, PresenceRole::Other)
}

struct Socket {
    id: ConnectionId,
    outbound: Arc<Outbound>,
    rx: OutboundReceiver,
}

fn socket(id: ConnectionId) -> Socket {
    let (outbound, rx) = Outbound::new(1 << 20);
    Socket { id, outbound, rx }
}

impl Socket {
    /// The next frame, or `None` if none comes within 10 s (of the paused clock).
    async fn next(&mut self) -> Option<Value> {
        match tokio::time::timeout(Duration::from_secs(10), self.rx.rx.recv()).await {
            Ok(Some(Outgoing::Text(text))) => Some(serde_json::from_str(text.as_str()).unwrap()),
            _ => None,
        }
    }

    async fn expect(&mut self, ty: &str) -> Value {
        let frame = self
            .next()
            .await
            .unwrap_or_else(|| panic!("no {ty} frame came"));
        assert_eq!(frame["type"], ty, "{frame}");
        frame
    }

    /// Frames until one satisfies `done`; panics if none does within the wait.
    async fn until(&mut self, done: impl Fn(&Value) -> bool) -> Value {
        loop {
            let frame = self.next().await.expect("the awaited frame never came");
            if done(&frame) {
                return frame;
            }
        }
    }

    /// Whether no frame waits (consumes one if there is).
    fn nothing_queued(&self) -> bool {
        matches!(self.rx.rx.try_recv(), Err(TryRecvError::Empty))
    }
}

fn user_ids(members: &Value) -> Vec<String> {
    members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The owner on A and an operator on B see each other arrive and leave; the
/// operator's second connection changes nothing; a visitor is counted, not named.
#[tokio::test(start_paused = true)]
async fn members_on_two_replicas_see_each_other_arrive_and_leave() {
    let (_backplane, a, b) = two_replicas().await;

    let mut ann = socket(1);
    a.join("s_1", ann.id, &ann.outbound, owner()).await;
    let snapshot = ann.expect("presence").await;
    assert_eq!(user_ids(&snapshot["members"]), ["u1"]);
    assert_eq!(snapshot["others"], 0);
    assert_eq!(snapshot["members"][0]["name"], "Ann");

    // Let A's write land before B reads.
    let mut dana_b = socket(10);
    tokio::time::sleep(Duration::from_millis(10)).await;
    b.join("s_1", dana_b.id, &dana_b.outbound, dana()).await;
    let snapshot = dana_b.expect("presence").await;
    assert_eq!(user_ids(&snapshot["members"]), ["u1", "dana"]);

    let joined = ann.expect("presence.changed").await;
    assert_eq!(joined["joined"][0]["name"], "Dana");
    assert_eq!(joined["joined"][0]["role"], "operator");
    assert_eq!(joined["left"], serde_json::json!([]));

    // Dana's second tab on A: still one Dana, nothing to tell.
    let mut dana_a = socket(2);
    a.join("s_1", dana_a.id, &dana_a.outbound, dana()).await;
    let snapshot = dana_a.expect("presence").await;
    assert_eq!(user_ids(&snapshot["members"]), ["u1", "dana"]);

    // An anonymous visitor on B is counted.
    let mut guest = socket(11);
    b.join("s_1", guest.id, &guest.outbound, visitor()).await;
    assert_eq!(guest.expect("presence").await["others"], 1);
    let counted = ann.until(|f| f["type"] == "presence.changed").await;
    assert_eq!(counted["others"], 1, "{counted}");
    assert!(counted["joined"].as_array().unwrap().is_empty());

    // Dana leaves B; her tab on A keeps her present.
    b.leave("s_1", dana_b.id);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(ann.nothing_queued(), "Dana is still here (on A)");
    a.leave("s_1", dana_a.id);
    let left = ann.expect("presence.changed").await;
    assert_eq!(user_ids(&left["left"]), ["dana"]);
    let left = guest.until(|f| f["type"] == "presence.changed").await;
    assert_eq!(user_ids(&left["left"]), ["dana"], "{left}");
}

/// B dies (its heartbeat is gone and it writes nothing more): A's members see B's
/// members leave at A's next beat, and A's next write drops B's entry.
#[tokio::test(start_paused = true)]
async fn a_dead_replicas_members_leave() {
    let (backplane, a, b) = two_replicas().await;
    let mut ann = socket(1);
    a.join("s_1", ann.id, &ann.outbound, owner()).await;
    ann.expect("presence").await;
    let dana_b = socket(10);
    b.join("s_1", dana_b.id, &dana_b.outbound, dana()).await;
    ann.expect("presence.changed").await;

    // The crash: B's tasks stop, its heartbeat lapses (removed here, as its expiry
    // would), its entry stays in the record.
    b.stop.cancel();
    b.tasks.close();
    b.tasks.wait().await;
    heartbeat_lapses(&backplane, &b).await;
    let started = Instant::now();
    let left = ann.expect("presence.changed").await;
    assert_eq!(user_ids(&left["left"]), ["dana"]);
    assert!(
        started.elapsed() <= TIMING.beat * 2,
        "gone within a beat or two: {:?}",
        started.elapsed()
    );

    // A newcomer on A sees no ghost, and A's write drops B's entry.
    let mut late = socket(2);
    a.join("s_1", late.id, &late.outbound, visitor()).await;
    let snapshot = late.expect("presence").await;
    assert_eq!(user_ids(&snapshot["members"]), ["u1"]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let record = record::read(backplane.as_ref(), &a.metrics, "s_1")
        .await
        .unwrap();
    assert_eq!(
        record.replicas.keys().collect::<Vec<_>>(),
        [a.id()],
        "the dead replica's entry is dropped"
    );
    drop(dana_b);
}

/// A first join on a replica that finds a dead replica's entry in the record does not
/// show its members, even before the next beat.
#[tokio::test(start_paused = true)]
async fn a_first_snapshot_never_shows_a_dead_replicas_members() {
    let (backplane, a, b) = two_replicas().await;
    let mut dana_b = socket(10);
    b.join("s_1", dana_b.id, &dana_b.outbound, dana()).await;
    dana_b.expect("presence").await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    b.stop.cancel();
    heartbeat_lapses(&backplane, &b).await;

    let mut ann = socket(1);
    a.join("s_1", ann.id, &ann.outbound, owner()).await;
    let snapshot = ann.expect("presence").await;
    assert_eq!(user_ids(&snapshot["members"]), ["u1"], "{snapshot}");
}

/// Typing reaches the other members on both replicas (not the typist), a burst of 50
/// is forwarded once per interval, and a stop clears it.
#[tokio::test(start_paused = true)]
async fn typing_crosses_replicas_at_most_once_per_interval() {
    let (_backplane, a, b) = two_replicas().await;
    let mut ann = socket(1);
    a.join("s_1", ann.id, &ann.outbound, owner()).await;
    ann.expect("presence").await;
    let mut dana_b = socket(10);
    b.join("s_1", dana_b.id, &dana_b.outbound, dana()).await;
    dana_b.expect("presence").await;
    ann.expect("presence.changed").await;
    let mut guest = socket(2);
    a.join("s_1", guest.id, &guest.outbound, visitor()).await;
    guest.expect("presence").await;
    ann.expect("presence.changed").await;
    dana_b.until(|f| f["others"] == 1).await;

    for _ in 0..50 {
        b.typing("s_1", dana_b.id, true);
    }
    for socket in [&mut ann, &mut guest] {
        let typing = socket.expect("typing").await;
        assert_eq!(typing["member"]["name"], "Dana");
        assert_eq!(typing["typing"], true);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(ann.nothing_queued() && guest.nothing_queued(), "one of 50");
    assert!(
        dana_b.nothing_queued(),
        "the typist hears nothing of itself"
    );

    // An anonymous member types: others see an unnamed member.
    a.typing("s_1", guest.id, true);
    let typing = ann.expect("typing").await;
    assert_eq!(typing["member"], serde_json::json!({"role": "other"}));
    dana_b.expect("typing").await;

    tokio::time::sleep(TYPING_INTERVAL).await;
    b.typing("s_1", dana_b.id, true);
    assert_eq!(ann.expect("typing").await["typing"], true);
    b.typing("s_1", dana_b.id, false);
    assert_eq!(ann.expect("typing").await["typing"], false);

    // A connection that is not in the session's presence types: nothing happens.
    a.typing("s_1", 99, true);
    a.typing("s_2", ann.id, true);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(ann.nothing_queued() && dana_b.nothing_queued());
}

/// A member who leaves while shown as typing is cleared at once.
#[tokio::test(start_paused = true)]
async fn leaving_while_typing_clears_the_indicator() {
    let (_backplane, a, b) = two_replicas().await;
    let mut ann = socket(1);
    a.join("s_1", ann.id, &ann.outbound, owner()).await;
    ann.expect("presence").await;
    let dana_b = socket(10);
    b.join("s_1", dana_b.id, &dana_b.outbound, dana()).await;
    ann.expect("presence.changed").await;
    b.typing("s_1", dana_b.id, true);
    assert_eq!(ann.expect("typing").await["typing"], true);
    b.leave("s_1", dana_b.id);
    let stopped = ann.expect("typing").await;
    assert_eq!(stopped["typing"], false);
    assert_eq!(stopped["member"]["user_id"], "dana");
    let left = ann.expect("presence.changed").await;
    assert_eq!(user_ids(&left["left"]), ["dana"]);
}

/// Beyond the per-session limit a join is not tracked (no snapshot, not counted); the
/// gauge and the refusal counter say so; leaving frees the place.
#[tokio::test(start_paused = true)]
async fn presence_is_bounded_per_session_and_per_process() {
    let backplane = Arc::new(MemoryBackplane::new(Retention::default()));
    let a = replica(
        &backplane,
        PresenceLimits {
            per_session: 2,
            per_process: 3,
        },
    )
    .await;
    let mut sockets: Vec<Socket> = (1..=4).map(socket).collect();
    for s in &sockets[..3] {
        a.join("s_1", s.id, &s.outbound, visitor()).await;
    }
    assert!(
        sockets[2].nothing_queued(),
        "the third is over the session's limit"
    );
    assert_eq!(a.metrics.presence_members.get(), 2);
    assert_eq!(
        a.metrics
            .presence_refused
            .with_label_values(&["session"])
            .get(),
        1
    );
    a.join("s_2", sockets[3].id, &sockets[3].outbound, visitor())
        .await;
    sockets[3].expect("presence").await;
    a.join("s_3", sockets[2].id, &sockets[2].outbound, visitor())
        .await;
    assert!(sockets[2].nothing_queued(), "over the process's limit");
    assert_eq!(
        a.metrics
            .presence_refused
            .with_label_values(&["process"])
            .get(),
        1
    );
    a.leave("s_1", sockets[0].id);
    a.join("s_3", sockets[2].id, &sockets[2].outbound, visitor())
        .await;
    sockets[2].expect("presence").await;
    assert_eq!(a.metrics.presence_members.get(), 3);
    assert_eq!(a.metrics.presence_sessions.get(), 3);

    // Everyone leaves: the records and the local sessions are gone.
    a.leave("s_1", sockets[1].id);
    a.leave("s_2", sockets[3].id);
    a.leave("s_3", sockets[2].id);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(a.metrics.presence_members.get(), 0);
    assert_eq!(a.metrics.presence_sessions.get(), 0);
    for session in ["s_1", "s_2", "s_3"] {
        let raw = backplane
            .record_get(&RecordKey::new(
                crate::records::namespace::PRESENCE,
                session,
            ))
            .await
            .unwrap();
        assert_eq!(raw, None, "{session}'s record is removed");
    }
}

/// A removed conversation's presence goes everywhere: the record (user ids) is
/// deleted, and the members on both replicas are no longer tracked or told anything.
#[tokio::test(start_paused = true)]
async fn a_removed_sessions_presence_is_erased_on_every_replica() {
    use crate::conversations::PresenceEraser;

    let (backplane, a, b) = two_replicas().await;
    let mut ann = socket(1);
    a.join("s_1", ann.id, &ann.outbound, owner()).await;
    ann.expect("presence").await;
    let mut dana_b = socket(10);
    b.join("s_1", dana_b.id, &dana_b.outbound, dana()).await;
    dana_b.expect("presence").await;
    ann.expect("presence.changed").await;

    a.erase_presence("s_1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let key = RecordKey::new(crate::records::namespace::PRESENCE, "s_1");
    assert_eq!(backplane.record_get(&key).await.unwrap(), None);
    assert_eq!(a.metrics.presence_members.get(), 0);
    assert_eq!(b.metrics.presence_members.get(), 0, "forgotten on B too");

    // (What was on its way before the erase settled may still come.)
    while !ann.nothing_queued() {}
    while !dana_b.nothing_queued() {}
    // Nothing more reaches them, and nothing brings the record back.
    b.typing("s_1", dana_b.id, true);
    b.leave("s_1", dana_b.id);
    a.leave("s_1", ann.id);
    tokio::time::sleep(TIMING.lapse * 3).await;
    assert!(ann.nothing_queued() && dana_b.nothing_queued());
    assert_eq!(backplane.record_get(&key).await.unwrap(), None);
}
