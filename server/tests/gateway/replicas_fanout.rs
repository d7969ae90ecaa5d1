//! Several gateways over one real backplane: every socket of a session sees the same
//! events whichever replica it is on, wherever the events come from
//! (docs/protocol.md §1 "Replica", §4, §8), and a client can move between replicas
//! mid-turn.
//!
//! Each test runs over Redis and over NATS (`…::redis`, `…::nats`).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support;
use crate::support::http::{Api, PUBLISHER_NAME, publish_body};
use crate::support::jwt::{Claims, HS_ARGS, connect};
use crate::support::knowledge::REFUND_QUESTION;
use crate::support::replicas::{
    Backing, Backplane, backed_tests, publish_cli, replica, replica_with, session_events,
};
use crate::support::{Client, assert_strictly_increasing, is_assistant_message, seq, summary, ty};

backed_tests! {
    /// A socket on replica A and one on replica B of the same session receive identical
    /// event sequences (types, seqs, texts, timestamps) for a turn that runs on A, with
    /// `seq` strictly increasing and the turn complete (user message, start, deltas,
    /// end, assistant message).
    a_turn_on_one_replica_reaches_both_replicas_identically => turn_seen_identically;

    /// Events published with `switchboard publish` (straight onto the backplane, no
    /// gateway) and with `POST /v1/publish` on replica B, interleaved one by one and then
    /// concurrently, reach the sockets on replicas A, B and C in the same order with the
    /// `seq` the publisher was given.
    cli_and_http_publishes_reach_every_replica_in_order => publishes_reach_every_replica;

    /// A client that drops off replica A mid-turn and rejoins on replica B with
    /// `after_seq` = the last seq it saw receives exactly the rest of the turn, its
    /// `turn.end` included: nothing lost, nothing twice, the same as an observer on C
    /// that stayed connected.
    a_client_moving_between_replicas_mid_turn_misses_nothing => client_moves_mid_turn;

    /// A user stream has no replay, so a client must be subscribed to it by the time it
    /// is welcomed: an event published to a user on replica B straight after the user
    /// connected to replica A (each time a new user, so each time a new subscription)
    /// reaches the socket every time.
    a_user_event_published_right_after_the_welcome_arrives => user_event_right_after_welcome;
}

async fn turn_seen_identically(backing: Backing) {
    let bp = Backplane::start(backing);
    let gw_a = replica(&bp, "replica-a");
    let gw_b = replica(&bp, "replica-b");
    let mut a = Client::connect(&gw_a.ws_url()).await;
    let mut b = Client::connect(&gw_b.ws_url()).await;
    assert_eq!(a.welcome["server_id"], "replica-a", "{}", a.welcome);
    assert_eq!(b.welcome["server_id"], "replica-b", "{}", b.welcome);

    let s = a.create_session().await;
    let joined = b.join(&s.id, None, s.key.as_deref()).await;
    assert_eq!(joined["recovered"], true, "{joined}");
    let accepted = a.send_message(&s.id, REFUND_QUESTION).await;

    let on_a = session_events(&a.collect_turns(1).await, &s.id);
    let on_b = session_events(&b.collect_turns(1).await, &s.id);
    assert_eq!(
        on_a,
        on_b,
        "the two replicas disagree\nA: {}\nB: {}",
        summary(&on_a),
        summary(&on_b)
    );
    assert_strictly_increasing(&on_a);

    // The whole turn, in order: message(user), turn.start, turn.delta…, turn.end, message(assistant).
    let types: Vec<&str> = on_a.iter().map(ty).collect();
    assert_eq!(types[0], "message", "{}", summary(&on_a));
    assert_eq!(on_a[0]["role"], "user");
    assert_eq!(on_a[0]["text"], REFUND_QUESTION);
    assert_eq!(on_a[0]["message_id"], accepted["message_id"]);
    assert_eq!(seq(&on_a[0]), seq(&accepted), "message.accepted.seq");
    assert_eq!(types[1], "turn.start", "{}", summary(&on_a));
    let n = on_a.len();
    assert_eq!(types[n - 2], "turn.end", "{}", summary(&on_a));
    assert!(is_assistant_message(&on_a[n - 1]));
    let deltas: Vec<&Value> = on_a.iter().filter(|e| ty(e) == "turn.delta").collect();
    assert!(
        deltas.len() >= 10,
        "expected a long turn (many deltas), got {}",
        deltas.len()
    );
    assert_eq!(
        types[2..n - 2]
            .iter()
            .filter(|t| **t != "turn.delta")
            .count(),
        0
    );
    let end = &on_a[n - 2];
    assert_eq!(end["status"], "completed", "{end}");
    let streamed: String = deltas.iter().map(|d| d["text"].as_str().unwrap()).collect();
    assert_eq!(end["text"], json!(streamed), "turn.end.text = the deltas");
    assert_eq!(on_a[n - 1]["text"], end["text"]);
}

/// One expected `event`: name, data, publisher, seq.
#[derive(Debug, Clone, PartialEq)]
struct Published {
    name: String,
    data: Value,
    publisher: String,
    seq: u64,
}

fn published_of(events: &[Value]) -> Vec<Published> {
    events
        .iter()
        .filter(|e| ty(e) == "event")
        .map(|e| Published {
            name: e["name"].as_str().expect("event.name").to_string(),
            data: e["data"].clone(),
            publisher: e["publisher"].as_str().unwrap_or("").to_string(),
            seq: seq(e),
        })
        .collect()
}

async fn publishes_reach_every_replica(backing: Backing) {
    let bp = Backplane::start(backing);
    let url = bp.url();
    let gws = [
        replica(&bp, "replica-a"),
        replica(&bp, "replica-b"),
        replica(&bp, "replica-c"),
    ];
    let mut sockets = Vec::new();
    for gw in &gws {
        sockets.push(Client::connect(&gw.ws_url()).await);
    }
    let s = sockets[0].create_session().await;
    for socket in &mut sockets[1..] {
        socket.join(&s.id, None, s.key.as_deref()).await;
    }
    let api_b = Api::new(&gws[1]);

    // One at a time, alternating: the order is the publish order.
    let mut expected = Vec::new();
    for i in 0..8u64 {
        let data = json!({"i": i, "via": if i % 2 == 0 { "cli" } else { "http" }});
        let name = format!("step.{i}");
        let (publisher, seq) = if i % 2 == 0 {
            let printed = publish_cli(&url, &s.id, &name, &data).await;
            ("cli", printed["seq"].as_u64().unwrap())
        } else {
            let reply = api_b
                .publish_ok(&publish_body("session", &s.id, &name, data.clone()))
                .await;
            let seq = reply["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("202 without a seq: {reply}"));
            (PUBLISHER_NAME, seq)
        };
        expected.push(Published {
            name,
            data,
            publisher: publisher.to_string(),
            seq,
        });
    }
    let seqs: Vec<u64> = expected.iter().map(|p| p.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "publishes one after another must get increasing seqs: {seqs:?}"
    );

    // Then all at once: 4 of each concurrently. Their order is whatever the backplane
    // decided, and every socket must agree on it.
    let burst = (0..8u64).map(|i| {
        let (url, id, api) = (url.clone(), s.id.clone(), &api_b);
        async move {
            let name = format!("burst.{i}");
            let data = json!({"burst": i});
            if i % 2 == 0 {
                let printed = publish_cli(&url, &id, &name, &data).await;
                (i, printed["seq"].as_u64().unwrap())
            } else {
                let reply = api
                    .publish_ok(&publish_body("session", &id, &name, data))
                    .await;
                (i, reply["seq"].as_u64().expect("seq"))
            }
        }
    });
    let burst: Vec<(u64, u64)> = futures_util::future::join_all(burst).await;
    let burst_seqs: BTreeSet<u64> = burst.iter().map(|(_, q)| *q).collect();
    assert_eq!(
        burst_seqs.len(),
        8,
        "each publish gets its own seq: {burst:?}"
    );
    assert!(
        burst_seqs.first().unwrap() > seqs.last().unwrap(),
        "the burst was published after the one-by-one part"
    );
    let last = *burst_seqs.last().unwrap();

    let mut views = Vec::new();
    for (socket, gw) in sockets.iter_mut().zip(&gws) {
        let frames = socket.collect_until(|f| f["seq"] == last).await;
        let events = session_events(&frames, &s.id);
        assert_strictly_increasing(&events);
        let got = published_of(&events);
        assert_eq!(
            got[..8],
            expected[..],
            "the one-by-one publishes on {} (seen: {})",
            gw.addr(),
            summary(&events)
        );
        let got_burst: Vec<(u64, u64)> = got[8..]
            .iter()
            .map(|p| (p.data["burst"].as_u64().expect("burst index"), p.seq))
            .collect();
        let mut want_burst = burst.clone();
        want_burst.sort_by_key(|(_, q)| *q);
        assert_eq!(got_burst, want_burst, "the burst on {}", gw.addr());
        for p in &got[8..] {
            let i = p.data["burst"].as_u64().unwrap();
            let want = if i % 2 == 0 { "cli" } else { PUBLISHER_NAME };
            assert_eq!(p.publisher, want, "{p:?}");
            assert_eq!(p.name, format!("burst.{i}"));
        }
        views.push(events);
    }
    assert_eq!(views[0], views[1], "replicas A and B disagree");
    assert_eq!(views[0], views[2], "replicas A and C disagree");
}

async fn client_moves_mid_turn(backing: Backing) {
    let bp = Backplane::start(backing);
    let gw_a = replica(&bp, "replica-a");
    let gw_b = replica(&bp, "replica-b");
    let gw_c = replica(&bp, "replica-c");
    let mut mover = Client::connect(&gw_a.ws_url()).await;
    let mut observer = Client::connect(&gw_c.ws_url()).await;
    let s = mover.create_session().await;
    observer.join(&s.id, None, s.key.as_deref()).await;
    mover.send_message(&s.id, REFUND_QUESTION).await;

    let mut deltas = 0;
    let seen = session_events(
        &mover
            .collect_until(|f| {
                if ty(f) == "turn.delta" {
                    deltas += 1;
                }
                deltas == 3
            })
            .await,
        &s.id,
    );
    let last_seen = seq(seen.last().unwrap());
    drop(mover); // gone from A without a goodbye, mid-turn

    // The turn goes on while the client is away: the observer sees 3 more events.
    let mut observed = observer.collect_until(|f| f["seq"] == last_seen).await;
    let mut more = 0;
    observed.extend(
        observer
            .collect_until(|f| {
                if support::is_event(f) {
                    more += 1;
                }
                more == 3
            })
            .await,
    );
    assert!(
        observed.iter().all(|f| ty(f) != "turn.end"),
        "the turn ended before the client came back; make it longer"
    );

    let mut back = Client::connect(&gw_b.ws_url()).await;
    assert_eq!(back.welcome["server_id"], "replica-b");
    let joined = back.join(&s.id, Some(last_seen), s.key.as_deref()).await;
    assert_eq!(joined["recovered"], true, "{joined}");
    assert!(
        joined["last_seq"].as_u64().expect("last_seq") > last_seen,
        "events happened while the client was away: {joined}"
    );
    let after = session_events(&back.collect_turns(1).await, &s.id);
    observed.extend(observer.collect_turns(1).await);
    let observed = session_events(&observed, &s.id);

    let mut resumed = seen;
    resumed.extend(after);
    assert_eq!(
        resumed,
        observed,
        "the moved client's view differs from the connected observer's\nmoved:    {}\nobserver: {}",
        summary(&resumed),
        summary(&observed)
    );
    assert_strictly_increasing(&resumed);
    let end = resumed
        .iter()
        .find(|e| ty(e) == "turn.end")
        .expect("turn.end");
    assert_eq!(end["status"], "completed", "{end}");
    assert!(is_assistant_message(resumed.last().unwrap()));
}

async fn user_event_right_after_welcome(backing: Backing) {
    let bp = Backplane::start(backing);
    let gw_a = replica_with(&bp, "replica-a", &HS_ARGS);
    let gw_b = replica_with(&bp, "replica-b", &HS_ARGS);
    let api_b = Api::new(&gw_b);
    for i in 0..20 {
        let user = format!("fresh-{i}");
        let mut client = connect(&gw_a, &Claims::user(&user, "acme").hs256()).await;
        api_b
            .publish_ok(&json!({"target": {"user": user}, "org_id": "acme",
                                "name": "right.away", "data": {"i": i}}))
            .await;
        let event = client.next_of_type("event").await;
        assert_eq!(event["stream"], format!("user:{user}"), "{event}");
        assert_eq!(event["data"]["i"], i, "{event}");
    }
}
