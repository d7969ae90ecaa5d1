//! The WebSocket client side: connecting from a chosen loopback source address, and
//! reading the few fields of a server frame the measurements need.

use std::borrow::Cow;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type Ws = WebSocketStream<TcpStream>;

/// Bytes each client socket reads at once. Tens of thousands of clients share this
/// machine with the gateway; the library's default (128 KiB each) would cost gigabytes.
const CLIENT_READ_BUFFER: usize = 4 * 1024;

/// Open a WebSocket to `url` (at `addr`) from `source`:0. Binding several source
/// addresses of 127.0.0.0/8 gives each its own ephemeral port range, so tens of
/// thousands of connections to one gateway port do not run out of ports.
pub async fn connect(addr: SocketAddr, url: &str, source: Ipv4Addr) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4().context("socket")?;
    socket
        .bind(SocketAddr::new(source.into(), 0))
        .with_context(|| format!("bind {source}:0"))?;
    let stream = socket
        .connect(addr)
        .await
        .with_context(|| format!("connect {addr} from {source}"))?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(CLIENT_READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20);
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .with_context(|| format!("WebSocket handshake with {url}"))?;
    Ok(ws)
}

/// The fields of a server frame the load tool looks at; everything else is skipped.
#[derive(Debug, Deserialize)]
pub struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub session_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub session_key: Option<Cow<'a, str>>,
    #[serde(default)]
    pub seq: Option<u64>,
    /// Milliseconds since the epoch when the backplane appended the event.
    #[serde(default)]
    pub ts: Option<u64>,
    #[serde(default)]
    pub last_seq: Option<u64>,
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub message: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub status: Option<Cow<'a, str>>,
    #[serde(default)]
    pub data: Option<EventData>,
}

/// The `data` of an event: the publisher's timestamp when it is one of ours.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EventData {
    Bench { sent_ns: u64 },
    Other(serde::de::IgnoredAny),
}

impl Incoming<'_> {
    pub fn sent_ns(&self) -> Option<u64> {
        match self.data {
            Some(EventData::Bench { sent_ns }) => Some(sent_ns),
            _ => None,
        }
    }

    pub fn error_text(&self) -> String {
        format!(
            "{}: {}",
            self.code.as_deref().unwrap_or("?"),
            self.message.as_deref().unwrap_or("")
        )
    }
}

pub async fn send_json(ws: &mut Ws, value: &serde_json::Value) -> anyhow::Result<()> {
    ws.send(Message::Text(value.to_string().into()))
        .await
        .context("sending a frame")
}

/// The next text frame, as owned JSON text (control frames are skipped; the library
/// answers pings itself).
pub async fn next_text(ws: &mut Ws, patience: Duration) -> anyhow::Result<String> {
    loop {
        let message = tokio::time::timeout(patience, ws.next())
            .await
            .context("no frame from the gateway in time")?;
        match message {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(frame))) => bail!("the gateway closed the socket: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("reading from the gateway: {e}"),
            None => bail!("the gateway closed the socket"),
        }
    }
}

/// Read frames until one of type `kind` (or an `error`) arrives.
pub async fn wait_for(ws: &mut Ws, kind: &str, patience: Duration) -> anyhow::Result<String> {
    loop {
        let text = next_text(ws, patience).await?;
        let frame: Incoming = serde_json::from_str(&text).context("a frame that is not JSON")?;
        if frame.kind == kind {
            return Ok(text);
        }
        if frame.kind == "error" {
            bail!("the gateway answered an error: {}", frame.error_text());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_publish_timestamp_and_ignores_other_data() {
        let ours = r#"{"session_id":"s_1","seq":4,"ts":1,"type":"event","name":"bench","data":{"sent_ns":42,"k":1},"publisher":"bench"}"#;
        let frame: Incoming = serde_json::from_str(ours).unwrap();
        assert_eq!(frame.sent_ns(), Some(42));
        assert_eq!(frame.seq, Some(4));
        let theirs = r#"{"session_id":"s_1","seq":5,"ts":1,"type":"event","name":"x","data":[1,2,{"a":"\"q\""}]}"#;
        let frame: Incoming = serde_json::from_str(theirs).unwrap();
        assert_eq!(frame.sent_ns(), None);
        assert_eq!(frame.session_id.as_deref(), Some("s_1"));
    }
}
