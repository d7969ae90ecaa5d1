//! A NATS outage at run time: the server is killed (SIGKILL) while events flow and
//! restarted on the same port and store directory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use switchboard_backplane::{
    Backplane, ErrorKind, EventBody, RecordKey, Retention, Seq, StreamName, SubscriptionEnded,
};
use switchboard_nats::{NatsBackplane, NatsOptions};
use switchboard_testkit::{NatsServer, eventually};

use crate::support::unique_prefix;

/// Bound on the whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

fn delta(i: usize) -> EventBody {
    EventBody::TurnDelta {
        turn_id: "t_outage".into(),
        text: i.to_string(),
    }
}

fn roomy() -> Retention {
    Retention {
        max_events: 100_000,
        max_age: Duration::from_secs(3600),
    }
}

/// While the server is down every operation fails fast as `Unavailable`, live
/// subscriptions end `Disconnected`, and once it is back the backplane recovers by
/// itself; every append that returned `Ok` before the kill is still in history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_fast_ends_live_subscriptions_and_recovers_by_itself() {
    tokio::time::timeout(TEST_TIMEOUT, outage())
        .await
        .expect("the outage test hung");
}

async fn outage() {
    let mut server = NatsServer::start();
    let mut options = NatsOptions::new(server.url(), unique_prefix("outage"), roomy());
    options.op_timeout = Duration::from_secs(2);
    let bp = Arc::new(NatsBackplane::connect_with(options).await.unwrap());
    let s = StreamName::session("outage").unwrap();
    let mut sub = bp.subscribe(&s).await.unwrap();

    // A writer appends until told to stop, keeping every seq whose append returned Ok.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (bp, s, stop) = (bp.clone(), s.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acked: Vec<Seq> = Vec::new();
            let mut failures = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                match bp.append(&s, delta(i)).await {
                    Ok(event) => acked.push(event.seq),
                    Err(err) => failures.push(err),
                }
                i += 1;
                tokio::task::yield_now().await;
            }
            (acked, failures)
        })
    };

    // Events flow live before the kill.
    for _ in 0..200 {
        tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("no live event before the kill")
            .expect("the subscription ended before the kill");
    }

    server.stop();

    // The live subscription ends as Disconnected (after what was already queued).
    let reason = loop {
        match tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("the subscription neither ended nor got events after the kill")
        {
            Ok(_) => continue,
            Err(reason) => break reason,
        }
    };
    assert_eq!(reason, SubscriptionEnded::Disconnected);

    // While down, every operation fails at once with Unavailable.
    let started = Instant::now();
    let err = bp.append(&s, delta(0)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    let err = bp.read(&s, None, 10).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    let err = bp.subscribe(&s).await.err().expect("subscribe while down");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    let err = bp.record_get(&RecordKey::new("ns", "k")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert_eq!(
        bp.ping().await.unwrap_err().kind,
        ErrorKind::Unavailable,
        "ping says not ready"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "failing took {:?}: operations must fail fast while disconnected",
        started.elapsed()
    );

    // Keep the server down a moment so the writer sees failures too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();
    let restarted = Instant::now();

    // It recovers by itself: appends succeed again, with no call to reconnect.
    let after_restart = eventually(Duration::from_secs(20), "appends after restart", || {
        let (bp, s) = (bp.clone(), s.clone());
        async move { bp.append(&s, delta(999_999)).await }
    })
    .await;
    let recovered_in = restarted.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (acked, failures) = writer.await.unwrap();
    // The writer's append in flight at the kill either failed (Timeout/Unavailable) or,
    // when the client re-sent it after reconnecting, succeeded: both are fine, and an
    // Ok one must be in history like any other.
    for err in &failures {
        assert!(
            err.kind.is_transient(),
            "outage failures are transient, got {err}"
        );
    }

    // Every append that returned Ok (before the kill, or after the restart) is in
    // history, in order.
    let replay = bp.read(&s, None, 1_000_000).await.unwrap();
    let history: Vec<Seq> = replay.events.iter().map(|e| e.seq).collect();
    for seq in &acked {
        assert!(
            history.binary_search(seq).is_ok(),
            "acked seq {seq} is missing from history after the restart"
        );
    }
    assert!(history.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(replay.last_seq, *history.last().unwrap());
    assert!(history.binary_search(&after_restart.seq).is_ok());

    // Live delivery works again for a new subscription.
    let mut sub = bp.subscribe(&s).await.unwrap();
    let next = bp.append(&s, delta(1)).await.unwrap();
    let live = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("no live event after the restart")
        .expect("subscription ended");
    assert_eq!(live, next);
    bp.ping().await.unwrap();
    eprintln!(
        "outage: {} appends acked, {} failed, recovered {recovered_in:?} after the restart",
        acked.len(),
        failures.len(),
    );
}
