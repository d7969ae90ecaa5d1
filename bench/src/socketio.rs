//! The client side of Socket.IO v5 over Engine.IO v4, WebSocket transport only, as far
//! as the fan-out scenario needs it against the socketioxide peer: open (`0{…}`),
//! connect to `/` (`40`), join a room with an ack (`421["join","room"]` → `431["ok"]`),
//! answer the server's pings (`2` → `3`), and read events (`42["event",data]`).

use std::borrow::Cow;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::SinkExt;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, EventData, Ws};

/// The Engine.IO endpoint at the default path, WebSocket from the start (no polling).
pub fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")
}

/// An Engine.IO packet from the server, with the Socket.IO packet it carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Engine.IO `0{…}`: the handshake.
    Open,
    /// Engine.IO `2`: to be answered with `3`.
    Ping,
    /// Engine.IO `1`, or Socket.IO `41`: the server is done with this socket.
    Close,
    /// Socket.IO `40{…}`: connected to the namespace.
    Connected,
    /// Socket.IO `44{…}`: the namespace refused.
    ConnectError(&'a str),
    /// Socket.IO `42[name, data]`; `sent_ns` when `data` is the publisher's.
    Event {
        name: Cow<'a, str>,
        sent_ns: Option<u64>,
    },
    /// Socket.IO `43<id>[args…]`.
    Ack { id: u64, args: &'a str },
    /// A Socket.IO event that is not `[name, data]`.
    Malformed,
    /// Anything else (pong, noop, other namespaces).
    Other,
}

/// An event's arguments as our events have them: a name and one datum.
#[derive(Deserialize)]
struct NameAndData<'a>(#[serde(borrow)] Cow<'a, str>, EventData);

pub fn parse(text: &str) -> Packet<'_> {
    let mut chars = text.chars();
    match chars.next() {
        Some('0') => Packet::Open,
        Some('1') => Packet::Close,
        Some('2') => Packet::Ping,
        Some('4') => parse_socketio(chars.as_str()),
        _ => Packet::Other,
    }
}

/// A Socket.IO packet of namespace `/`: type digit, ack id digits, JSON.
fn parse_socketio(text: &str) -> Packet<'_> {
    let Some(kind) = text.chars().next() else {
        return Packet::Other;
    };
    let rest = &text[kind.len_utf8()..];
    let json_at = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (id, json) = rest.split_at(json_at);
    match kind {
        '0' => Packet::Connected,
        '1' => Packet::Close,
        '4' => Packet::ConnectError(json),
        '2' => match serde_json::from_str::<NameAndData>(json) {
            Ok(NameAndData(name, data)) => Packet::Event {
                name,
                sent_ns: match data {
                    EventData::Bench { sent_ns } => Some(sent_ns),
                    EventData::Other(_) => None,
                },
            },
            Err(_) => Packet::Malformed,
        },
        '3' => match id.parse() {
            Ok(id) => Packet::Ack { id, args: json },
            Err(_) => Packet::Malformed,
        },
        _ => Packet::Other,
    }
}

pub async fn send(ws: &mut Ws, text: &str) -> anyhow::Result<()> {
    ws.send(Message::Text(text.into()))
        .await
        .context("sending a frame")
}

/// The next packet's text, answering pings on the way.
async fn next_packet(ws: &mut Ws, patience: Duration) -> anyhow::Result<String> {
    loop {
        let text = client::next_text(ws, patience).await?;
        if parse(&text) == Packet::Ping {
            send(ws, "3").await?;
            continue;
        }
        return Ok(text);
    }
}

/// Open a Socket.IO connection to `/` from `source`, joined to `room` when given.
pub async fn connect(
    addr: SocketAddr,
    source: Ipv4Addr,
    room: Option<&str>,
    patience: Duration,
) -> anyhow::Result<Ws> {
    let mut ws = client::connect(addr, &url(addr), source).await?;
    let open = next_packet(&mut ws, patience).await?;
    if parse(&open) != Packet::Open {
        bail!("expected the Engine.IO open packet, got {open:?}");
    }
    send(&mut ws, "40").await?;
    loop {
        let text = next_packet(&mut ws, patience).await?;
        match parse(&text) {
            Packet::Connected => break,
            Packet::ConnectError(why) => bail!("the server refused namespace /: {why}"),
            Packet::Close => bail!("the server closed the socket while connecting"),
            _ => {}
        }
    }
    if let Some(room) = room {
        send(
            &mut ws,
            &format!("421[\"join\",{}]", serde_json::to_string(room)?),
        )
        .await?;
        loop {
            let text = next_packet(&mut ws, patience).await?;
            match parse(&text) {
                Packet::Ack { id: 1, args } => {
                    if args != r#"["ok"]"# {
                        bail!("join {room:?} acked with {args}, not [\"ok\"]");
                    }
                    break;
                }
                Packet::Close => bail!("the server closed the socket while joining"),
                _ => {}
            }
        }
    }
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_packets_of_a_join_and_a_publish() {
        assert_eq!(
            parse(r#"0{"sid":"x","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#),
            Packet::Open
        );
        assert_eq!(parse("2"), Packet::Ping);
        assert_eq!(parse(r#"40{"sid":"y"}"#), Packet::Connected);
        assert_eq!(
            parse(r#"431["ok"]"#),
            Packet::Ack {
                id: 1,
                args: r#"["ok"]"#
            }
        );
        assert_eq!(
            parse(r#"42["event",{"sent_ns":42,"k":7}]"#),
            Packet::Event {
                name: "event".into(),
                sent_ns: Some(42)
            }
        );
        assert_eq!(
            parse(r#"42["ev\"t",[1,2]]"#),
            Packet::Event {
                name: "ev\"t".into(),
                sent_ns: None
            }
        );
        assert_eq!(parse(r#"42["event",1,2]"#), Packet::Malformed);
        assert_eq!(
            parse(r#"44{"message":"no"}"#),
            Packet::ConnectError(r#"{"message":"no"}"#)
        );
        assert_eq!(parse("41"), Packet::Close);
        assert_eq!(parse("1"), Packet::Close);
        assert_eq!(parse("3"), Packet::Other);
    }
}
