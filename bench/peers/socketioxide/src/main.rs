//! `socketioxide-peer`: the Socket.IO server the load tool measures beside Switchboard
//! (docs/benchmarks.md, "Peers: socketioxide"). It does what the fan-out scenario asks
//! of the gateway and nothing more:
//!
//! - Socket.IO (Engine.IO v4) at `/socket.io/`, namespace `/`: event `join` with one
//!   string (the room) and an ack joins the socket to the room and acks `"ok"`;
//! - `POST /publish` `{"room": "...", "data": <any JSON>}` emits `event` with `data` to
//!   every socket in the room, answers `202 {"ok":true}` (bad JSON: 400);
//! - `GET /health` answers 200.
//!
//! With `--redis URL` the rooms span every peer on that Redis (socketioxide-redis).
//! It prints `listening on http://ADDR` on stdout once it accepts connections, as the
//! gateway does; everything else goes to stderr.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::handler::ConnectHandler;
use socketioxide_redis::{RedisAdapter, RedisAdapterCtr};

const USAGE: &str =
    "usage: socketioxide-peer [--bind 127.0.0.1:0] [--redis redis://127.0.0.1:PORT]";

struct Flags {
    bind: SocketAddr,
    redis: Option<String>,
}

fn parse_flags() -> anyhow::Result<Flags> {
    let mut flags = Flags {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        redis: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .with_context(|| format!("{name} needs a value; {USAGE}"))
        };
        match name.as_str() {
            "--bind" => flags.bind = value()?.parse().context("--bind: expected IP:PORT")?,
            "--redis" => flags.redis = Some(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}; {USAGE}"),
        }
    }
    Ok(flags)
}

#[derive(serde::Deserialize)]
struct PublishBody {
    room: String,
    data: serde_json::Value,
}

// The `join` handler is registered in a connect middleware, which socketioxide awaits
// before it sends the connect packet (`40`). The connect handler proper runs on a task
// of its own after `40` is out: a client quick to send `join` could find no handler
// there yet, and never get its ack.
async fn register_join<A: Adapter>(socket: SocketRef<A>) -> Result<(), Infallible> {
    socket.on("join", on_join::<A>);
    Ok(())
}

async fn on_connect<A: Adapter>(_socket: SocketRef<A>) {}

async fn on_join<A: Adapter>(socket: SocketRef<A>, Data(room): Data<String>, ack: AckSender<A>) {
    socket.join(room);
    if let Err(e) = ack.send("ok") {
        eprintln!("join ack to {}: {e}", socket.id);
    }
}

async fn publish<A: Adapter>(State(io): State<SocketIo<A>>, body: Bytes) -> Response {
    let body: PublishBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("bad publish body: {e}\n")).into_response();
        }
    };
    match io.to(body.room).emit("event", &body.data).await {
        Ok(()) => (
            StatusCode::ACCEPTED,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            r#"{"ok":true}"#,
        )
            .into_response(),
        Err(e) => {
            eprintln!("publish: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("publish failed: {e}\n"),
            )
                .into_response()
        }
    }
}

async fn health() -> StatusCode {
    StatusCode::OK
}

async fn serve<A: Adapter>(
    listener: tokio::net::TcpListener,
    layer: socketioxide::layer::SocketIoLayer<A>,
    io: SocketIo<A>,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/publish", post(publish::<A>))
        .route("/health", get(health))
        .with_state(io)
        .layer(layer);
    let addr = listener.local_addr()?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{addr}")?;
    stdout.flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = parse_flags()?;
    let listener = tokio::net::TcpListener::bind(flags.bind)
        .await
        .with_context(|| format!("bind {}", flags.bind))?;
    match flags.redis {
        None => {
            let (layer, io) = SocketIo::new_layer();
            io.ns("/", on_connect.with(register_join));
            serve(listener, layer, io).await
        }
        Some(url) => {
            // The adapter speaks RESP3 (Redis 7 and later).
            let url = if url.contains("protocol=") {
                url
            } else if url.contains('?') {
                format!("{url}&protocol=resp3")
            } else {
                format!("{url}?protocol=resp3")
            };
            let client =
                redis::Client::open(url.as_str()).with_context(|| format!("--redis {url}"))?;
            let adapter = RedisAdapterCtr::new_with_redis(&client)
                .await
                .with_context(|| format!("connect to {url}"))?;
            let (layer, io) = SocketIo::builder()
                .with_adapter::<RedisAdapter<_>>(adapter)
                .build_layer();
            io.ns("/", on_connect.with(register_join))
                .await
                .map_err(|e| anyhow::anyhow!("socket.io namespace over redis: {e}"))?;
            eprintln!("rooms shared over {url}");
            serve(listener, layer, io).await
        }
    }
}
