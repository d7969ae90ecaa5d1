//! A real `nats-server` with JetStream (see [`super::server_process`]).
//!
//! JetStream keeps its streams and buckets in a file store under a fresh directory, so a
//! `stop()` (SIGKILL) and `restart()` keeps every message the server acknowledged (the
//! file store writes each message to its block file before the acknowledgement).

use std::ffi::OsString;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use super::server_process::{ServerProcess, ServerSpec};

pub type NatsServer = ServerProcess;

static NATS: ServerSpec = ServerSpec {
    name: "nats-server",
    binary: "/usr/sbin/nats-server",
    scheme: "nats",
    args,
    ready: greets,
    ready_sign: "INFO greeting",
};

/// Start `nats-server -js` with a file store; see the module docs.
pub fn start() -> NatsServer {
    ServerProcess::start(&NATS)
}

fn args(port: u16, dir: &Path) -> Vec<OsString> {
    let port = port.to_string();
    let mut args: Vec<OsString> = ["-js", "-a", "127.0.0.1", "-p", port.as_str(), "-sd"]
        .iter()
        .map(OsString::from)
        .collect();
    args.push(dir.as_os_str().to_owned());
    args
}

/// Whether the port accepts a connection and the server greets it with `INFO {…}`.
fn greets(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut greeting = [0u8; 8];
    match stream.read(&mut greeting) {
        Ok(n) => greeting[..n].starts_with(b"INFO"),
        Err(_) => false,
    }
}
