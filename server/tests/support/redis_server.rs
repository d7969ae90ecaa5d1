//! A real `redis-server` (see [`super::server_process`]).
//!
//! Persistence is on and strict: `--appendonly yes --appendfsync always`, RDB snapshots
//! off. Every write Redis acknowledged is on disk before the acknowledgement, so "no
//! acknowledged event is lost" across a `stop()` (SIGKILL) and `restart()` is a claim
//! about the gateway, not about luck.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use super::server_process::{ServerProcess, ServerSpec};

pub type RedisServer = ServerProcess;

static REDIS: ServerSpec = ServerSpec {
    name: "redis-server",
    binary: "/usr/bin/redis-server",
    scheme: "redis",
    args,
    ready: ping,
    ready_sign: "PONG",
};

/// Start `redis-server` with strict persistence; see the module docs.
pub fn start() -> RedisServer {
    ServerProcess::start(&REDIS)
}

fn args(port: u16, dir: &Path) -> Vec<OsString> {
    let port = port.to_string();
    let mut args: Vec<OsString> = ["--port", port.as_str(), "--bind", "127.0.0.1", "--save", ""]
        .iter()
        .map(OsString::from)
        .collect();
    args.extend(["--appendonly", "yes", "--appendfsync", "always", "--dir"].map(OsString::from));
    args.push(dir.as_os_str().to_owned());
    args
}

/// Whether Redis on `port` answers `PING` with `+PONG` (not `-LOADING`).
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 64];
    match stream.read(&mut reply) {
        Ok(n) => reply[..n].starts_with(b"+PONG"),
        Err(_) => false,
    }
}
