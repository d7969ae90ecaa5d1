//! One visit of a soak visitor: connect, create a session, join a shared lobby, ask the
//! offline agent and wait for the whole answer, publish into the own session over HTTP
//! (through another replica) and wait for the event, then go — three ways in turn:
//! leave both sessions and close cleanly; leave both and drop the socket; or drop the
//! socket without leaving (the gateway must clean up after a vanished client).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::client::{self, Ws};

/// The question every turn asks (the offline agent answers from its built-in notes).
const QUESTION: &str = "How do replicas share sessions?";
/// Longest wait for any one answer; past it the visit fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A session every visitor may join: created once, anonymous, with its key.
pub struct Lobby {
    pub session_id: String,
    pub session_key: String,
    /// The newest `seq` a publish into it was answered with: joins resume after it.
    pub last_seq: AtomicU64,
}

/// What visits share.
pub struct World {
    pub gateways: Vec<SocketAddr>,
    pub lobbies: Vec<Lobby>,
    pub http: reqwest::Client,
    pub publisher_key: String,
    pub source_addresses: u8,
}

/// What one visit saw.
#[derive(Debug, Default)]
pub struct Visited {
    pub lobby_events: u64,
}

/// How a visit ends.
#[derive(Debug, Clone, Copy)]
enum Departure {
    LeaveAndClose,
    LeaveAndDrop,
    Drop,
}

pub async fn visit(world: &World, visitor: usize, n: u64) -> anyhow::Result<Visited> {
    let replicas = world.gateways.len();
    let home = (visitor + n as usize) % replicas;
    let addr = world.gateways[home];
    let source = Ipv4Addr::new(
        127,
        0,
        0,
        2 + (visitor % usize::from(world.source_addresses)) as u8,
    );
    let mut ws = client::connect(addr, &format!("ws://{addr}/ws"), source).await?;
    let mut seen = Visited::default();
    let lobby_index = (visitor + n as usize * 7) % world.lobbies.len();
    let lobby = &world.lobbies[lobby_index];
    let mut on = Frames {
        ws: &mut ws,
        lobby: &lobby.session_id,
        seen: &mut seen,
    };
    on.wait(|f| f["type"] == "welcome").await?;

    on.send(json!({"type": "session.create", "id": "c"}))
        .await?;
    let created = on.wait(|f| f["type"] == "session.created").await?;
    let own = created["session_id"]
        .as_str()
        .context("session.created without session_id")?
        .to_string();

    on.send(json!({
        "type": "session.join", "id": "j", "session_id": lobby.session_id,
        "session_key": lobby.session_key, "after_seq": lobby.last_seq.load(Ordering::Acquire),
    }))
    .await?;
    on.wait(|f| f["type"] == "session.joined").await?;

    on.send(json!({"type": "message.send", "id": "m", "session_id": own, "text": QUESTION}))
        .await?;
    on.wait(|f| f["type"] == "message.accepted").await?;
    let end = on
        .wait(|f| f["type"] == "turn.end" && f["session_id"] == own.as_str())
        .await?;
    if end["status"] != "completed" {
        bail!("a turn ended {}", end["status"]);
    }
    on.wait(|f| {
        f["type"] == "message" && f["role"] == "assistant" && f["session_id"] == own.as_str()
    })
    .await?;

    // Through another replica, so the event crosses the backplane.
    let via = world.gateways[(home + 1) % replicas];
    let seq = publish(world, via, &own, n).await?;
    on.wait(|f| f["type"] == "event" && f["session_id"] == own.as_str() && f["seq"] == seq)
        .await?;

    let departure = match n % 3 {
        0 => Departure::LeaveAndClose,
        1 => Departure::LeaveAndDrop,
        _ => Departure::Drop,
    };
    if !matches!(departure, Departure::Drop) {
        for session in [own.as_str(), lobby.session_id.as_str()] {
            on.send(json!({"type": "session.leave", "id": "l", "session_id": session}))
                .await?;
            on.wait(|f| f["type"] == "session.left" && f["session_id"] == session)
                .await?;
        }
    }
    if matches!(departure, Departure::LeaveAndClose) {
        ws.close(None).await.context("closing")?;
        // Read to the server's close frame, so the close handshake completes.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }
    Ok(seen)
}

/// `POST /v1/publish` into `session` through `via`; the accepted event's `seq`.
pub async fn publish(world: &World, via: SocketAddr, session: &str, k: u64) -> anyhow::Result<u64> {
    let response = world
        .http
        .post(format!("http://{via}/v1/publish"))
        .bearer_auth(&world.publisher_key)
        .json(&json!({"target": {"session": session}, "name": "soak", "data": {"k": k}}))
        .timeout(PATIENCE)
        .send()
        .await
        .with_context(|| format!("publishing through {via}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.as_u16() != 202 {
        bail!("publish through {via}: HTTP {status}: {body}");
    }
    body["seq"]
        .as_u64()
        .with_context(|| format!("publish answered 202 without a seq: {body}"))
}

/// The frames of one connection, counting the lobby's events as they pass.
struct Frames<'a> {
    ws: &'a mut Ws,
    lobby: &'a str,
    seen: &'a mut Visited,
}

impl Frames<'_> {
    async fn send(&mut self, frame: Value) -> anyhow::Result<()> {
        client::send_json(self.ws, &frame).await
    }

    /// Read frames until `done` accepts one (an `error` fails the visit).
    async fn wait(&mut self, done: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        loop {
            let frame: Value = serde_json::from_str(&client::next_text(self.ws, PATIENCE).await?)
                .context("a frame that is not JSON")?;
            if frame["type"] == "error" {
                bail!("the gateway answered an error: {frame}");
            }
            if frame["type"] == "event" && frame["session_id"] == self.lobby {
                self.seen.lobby_events += 1;
            }
            if done(&frame) {
                return Ok(frame);
            }
        }
    }
}
