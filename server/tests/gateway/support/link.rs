//! A WebSocket connection that reports failures instead of panicking, for clients
//! that must outlive the replica they talk to: a replica killed with SIGKILL ends the
//! connection without a close frame, and the client reconnects elsewhere.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::client::Ws;
use super::ty;

/// What a read got.
#[derive(Debug)]
pub enum Read {
    Frame(Value),
    /// Nothing before the deadline.
    Quiet,
    /// The connection ended (close frame, error, or none at all).
    Gone,
}

pub struct Link {
    ws: Ws,
}

impl Link {
    /// Connect and read `welcome`, all within `within`.
    pub async fn connect(url: &str, within: Duration) -> Result<Link, String> {
        let deadline = Instant::now() + within;
        let (ws, _) = tokio::time::timeout_at(deadline, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| format!("connect to {url} timed out"))?
            .map_err(|e| format!("connect to {url}: {e}"))?;
        let mut link = Link { ws };
        match link.read_until(deadline).await {
            Read::Frame(welcome) if ty(&welcome) == "welcome" => Ok(link),
            other => Err(format!("{url}: expected welcome, got {other:?}")),
        }
    }

    pub async fn send(&mut self, frame: &Value) -> Result<(), String> {
        match tokio::time::timeout(
            Duration::from_secs(5),
            self.ws.send(Message::text(frame.to_string())),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("send timed out".into()),
        }
    }

    /// The next text frame, unless the deadline passes or the connection ends first.
    /// Cancel-safe (a frame is never half read).
    pub async fn read_until(&mut self, deadline: Instant) -> Read {
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Read::Quiet,
                Ok(Some(Ok(Message::Text(text)))) => {
                    return match serde_json::from_str(text.as_str()) {
                        Ok(frame) => Read::Frame(frame),
                        Err(e) => panic!("server sent a non-JSON text frame ({e}): {text}"),
                    };
                }
                Ok(Some(Ok(Message::Binary(b)))) => {
                    panic!("server sent a binary frame ({} bytes)", b.len())
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => {
                    return Read::Gone;
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}
