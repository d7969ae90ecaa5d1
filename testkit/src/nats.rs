//! A real `nats-server` (see [`crate::process`]), with JetStream by default.
//!
//! JetStream keeps its streams and buckets in a file store in the data directory, so a
//! `stop()` (SIGKILL) and `restart()` keeps every message the server acknowledged (the
//! file store writes each message to its block file before the acknowledgement), as in
//! production.
//!
//! The binary is `$SWITCHBOARD_NATS_SERVER`, else `/usr/sbin/nats-server` (Debian's
//! `nats-server` package), else the first on `PATH`.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::time::Duration;

use crate::StartError;
use crate::process::{Arg, ServerProcess, Spec};

static NATS: Spec = Spec {
    name: "nats-server",
    fixed_path: "/usr/sbin/nats-server",
    env: "SWITCHBOARD_NATS_SERVER",
    scheme: "nats",
    probe: greets,
    ready_line: "Server is ready",
    run_as: None,
};

/// How a [`NatsServer`] runs.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// `-js`, with the store in the data directory.
    pub jetstream: bool,
    /// More `nats-server` arguments, e.g. `--user alice --pass pw`.
    pub args: Vec<String>,
    /// The data directory, created if needed and left in place; a fresh one, removed
    /// after a passing test, when `None`.
    pub dir: Option<PathBuf>,
}

impl Default for NatsOptions {
    fn default() -> NatsOptions {
        NatsOptions {
            jetstream: true,
            args: Vec::new(),
            dir: None,
        }
    }
}

/// A running (or stopped) `nats-server`; the [`ServerProcess`] methods (`url`, `stop`,
/// `restart`, `freeze`, …) apply.
pub struct NatsServer(ServerProcess);

impl NatsServer {
    /// A server with JetStream. Panics when it does not start.
    pub fn start() -> NatsServer {
        NatsServer::start_with(&NatsOptions::default())
    }

    /// A server without JetStream.
    pub fn start_without_jetstream() -> NatsServer {
        NatsServer::start_with(&NatsOptions {
            jetstream: false,
            ..NatsOptions::default()
        })
    }

    /// A server with JetStream and more arguments (e.g. `--user`).
    pub fn start_with_args(args: &[&str]) -> NatsServer {
        NatsServer::start_with(&NatsOptions {
            args: args.iter().map(|a| a.to_string()).collect(),
            ..NatsOptions::default()
        })
    }

    /// A server run as `options` say. Panics when it does not start.
    pub fn start_with(options: &NatsOptions) -> NatsServer {
        NatsServer::try_start(options).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A server run as `options` say, or why it did not start.
    pub fn try_start(options: &NatsOptions) -> Result<NatsServer, StartError> {
        let mut args: Vec<Arg> = vec!["-a".into(), "127.0.0.1".into(), "-p".into(), Arg::Port];
        if options.jetstream {
            args.extend(["-js".into(), "-sd".into(), Arg::Dir]);
        }
        args.extend(options.args.iter().map(|a| Arg::from(a.as_str())));
        ServerProcess::start(&NATS, args, options.dir.clone()).map(NatsServer)
    }

    /// `nats://<userinfo>@127.0.0.1:PORT`
    pub fn url_with(&self, userinfo: &str) -> String {
        format!("nats://{userinfo}@127.0.0.1:{}", self.port())
    }
}

impl Deref for NatsServer {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.0
    }
}

impl DerefMut for NatsServer {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.0
    }
}

impl From<NatsServer> for ServerProcess {
    fn from(server: NatsServer) -> ServerProcess {
        server.0
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_restarts_on_its_port_and_store() {
        let mut server = NatsServer::start();
        let port = server.port();
        assert_eq!(server.url(), format!("nats://127.0.0.1:{port}"));
        assert!(
            server.log_tail(100).contains("JetStream"),
            "{}",
            server.log_tail(100)
        );
        server.stop();
        assert!(!greets(port), "a stopped server does not greet");
        server.restart();
        assert_eq!(server.port(), port);
        assert!(greets(port));
    }

    #[test]
    fn a_frozen_server_does_not_greet_until_thawed() {
        let server = NatsServer::start_without_jetstream();
        server.freeze();
        assert!(!greets(server.port()), "a frozen server greets nobody");
        server.thaw();
        assert!(greets(server.port()));
    }
}
