//! A real `redis-server` (see [`crate::process`]).
//!
//! In memory by default (`--save "" --appendonly no`): a restart loses every key.
//! Persistent ([`RedisServer::start_persistent`]) is strict: `--appendonly yes
//! --appendfsync always`, RDB snapshots off. Every write Redis acknowledged is on disk
//! before the acknowledgement, so "no acknowledged event is lost" across a `stop()`
//! (SIGKILL) and `restart()` is a claim about the code under test, not about luck.
//!
//! The binary is `$SWITCHBOARD_REDIS_SERVER`, else `/usr/bin/redis-server` (Debian's
//! `redis-server` package), else the first on `PATH`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::time::Duration;

use crate::StartError;
use crate::process::{Arg, ServerProcess, Spec};

static REDIS: Spec = Spec {
    name: "redis-server",
    fixed_path: "/usr/bin/redis-server",
    env: "SWITCHBOARD_REDIS_SERVER",
    scheme: "redis",
    probe: ping,
    ready_line: "Ready to accept connections",
    run_as: None,
};

/// How a [`RedisServer`] runs.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// Write every command to the append-only file before answering it; see the module
    /// docs.
    pub persistent: bool,
    /// More `redis-server` arguments, e.g. `--requirepass pw` or the `--tls-*` ones.
    pub args: Vec<String>,
    /// The data directory, created if needed and left in place; a fresh one, removed
    /// after a passing test, when `None`.
    pub dir: Option<PathBuf>,
}

/// A running (or stopped) `redis-server`; the [`ServerProcess`] methods (`url`, `stop`,
/// `restart`, `freeze`, …) apply.
pub struct RedisServer(ServerProcess);

impl RedisServer {
    /// An in-memory server. Panics when it does not start.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&RedisOptions::default())
    }

    /// An in-memory server with more arguments, e.g. `["--requirepass", "pw"]`.
    pub fn start_with_args(args: &[&str]) -> RedisServer {
        RedisServer::start_with(&RedisOptions {
            args: args.iter().map(|a| a.to_string()).collect(),
            ..RedisOptions::default()
        })
    }

    /// A persistent server: a restart keeps every acknowledged write.
    pub fn start_persistent() -> RedisServer {
        RedisServer::start_with(&RedisOptions {
            persistent: true,
            ..RedisOptions::default()
        })
    }

    /// A server run as `options` say. Panics when it does not start.
    pub fn start_with(options: &RedisOptions) -> RedisServer {
        RedisServer::try_start(options).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A server run as `options` say, or why it did not start.
    pub fn try_start(options: &RedisOptions) -> Result<RedisServer, StartError> {
        let mut args: Vec<Arg> = vec![
            "--port".into(),
            Arg::Port,
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            "".into(),
            "--dir".into(),
            Arg::Dir,
            "--daemonize".into(),
            "no".into(),
        ];
        let persistence: &[&str] = if options.persistent {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        args.extend(persistence.iter().map(|&a| Arg::from(a)));
        args.extend(options.args.iter().map(|a| Arg::from(a.as_str())));
        ServerProcess::start(&REDIS, args, options.dir.clone()).map(RedisServer)
    }
}

impl Deref for RedisServer {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.0
    }
}

impl DerefMut for RedisServer {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.0
    }
}

impl From<RedisServer> for ServerProcess {
    fn from(server: RedisServer) -> ServerProcess {
        server.0
    }
}

/// Whether Redis on `port` answers `PING` with `+PONG`, or `-NOAUTH` (a server with a
/// password is up too); `-LOADING` (still reading its data) is not ready.
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
        Ok(n) => reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends one inline command and returns the first line of the reply.
    fn command(port: u16, line: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect to redis on {port}: {e}"));
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("send {line}: {e}"));
        let mut reply = [0u8; 256];
        let n = stream
            .read(&mut reply)
            .unwrap_or_else(|e| panic!("reply to {line}: {e}"));
        String::from_utf8_lossy(&reply[..n]).trim_end().to_string()
    }

    #[test]
    fn a_persistent_server_restarts_on_its_port_with_its_data() {
        let mut server = RedisServer::start_persistent();
        let port = server.port();
        assert_eq!(server.url(), format!("redis://127.0.0.1:{port}"));
        assert_eq!(command(port, "SET k kept"), "+OK");
        server.stop();
        assert!(!server.is_running());
        assert!(!ping(port), "a stopped server does not answer");
        server.restart();
        assert_eq!(server.port(), port);
        assert_eq!(command(port, "GET k"), "$4\r\nkept");
    }

    #[test]
    fn an_in_memory_server_forgets_on_restart() {
        let mut server = RedisServer::start();
        assert_eq!(command(server.port(), "SET k gone"), "+OK");
        server.restart();
        assert_eq!(command(server.port(), "GET k"), "$-1");
    }

    #[test]
    fn extra_arguments_reach_the_server() {
        let server = RedisServer::start_with_args(&["--requirepass", "pw"]);
        assert!(command(server.port(), "GET k").starts_with("-NOAUTH"));
    }
}
