//! `ensure_seq_above` on NATS: it cannot raise (the seq is JetStream's stream sequence,
//! shared by every subject), so it answers `Ok` exactly when that shared sequence is
//! already at the floor, and `Rejected` otherwise.

use std::time::Duration;

use switchboard_backplane::{Backplane, ErrorKind, EventBody, Retention, StreamName};
use switchboard_nats::NatsBackplane;
use switchboard_testkit::NatsServer;

use crate::support::unique_prefix;

fn delta(i: usize) -> EventBody {
    EventBody::TurnDelta {
        turn_id: "t_lifecycle".into(),
        text: i.to_string(),
    }
}

/// A floor the shared sequence passed, though this stream never reached it, is kept
/// without raising anything: the next append is above it. A floor beyond the shared
/// sequence is refused and changes nothing.
#[tokio::test]
async fn ensure_seq_above_checks_the_shared_sequence() {
    let server = NatsServer::start();
    let retention = Retention {
        max_events: 1000,
        max_age: Duration::from_secs(3600),
    };
    let bp = NatsBackplane::connect(&server.url(), &unique_prefix("ensure"), retention)
        .await
        .unwrap();
    let (busy, quiet) = (
        StreamName::session("busy").unwrap(),
        StreamName::session("quiet").unwrap(),
    );
    let mut last = 0;
    for i in 0..10 {
        last = bp.append(&busy, delta(i)).await.unwrap().seq;
    }
    bp.ensure_seq_above(&quiet, last).await.unwrap();
    let replay = bp.read(&quiet, None, 100).await.unwrap();
    assert_eq!(
        replay.last_seq, 0,
        "nothing was written for the quiet stream"
    );
    assert!(!replay.trimmed, "nothing is marked trimmed");
    assert!(bp.append(&quiet, delta(0)).await.unwrap().seq > last);

    let error = bp.ensure_seq_above(&quiet, last + 1000).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Rejected, "{error}");
    let next = bp.append(&quiet, delta(1)).await.unwrap();
    assert!(next.seq < last + 1000, "the refusal changed nothing");
}
