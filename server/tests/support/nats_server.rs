//! A real `nats-server` with JetStream on a free port, killed on `Drop`, with `stop()`
//! and `restart()` (same port, same store directory) for fault tests (EXAMPLES item 14;
//! anchor: nats.rs `nats-server/src/lib.rs`).
//!
//! JetStream keeps its streams and buckets in a file store under a fresh directory, so a
//! `stop()` (SIGKILL) and `restart()` keeps every message the server acknowledged (the
//! file store writes each message to its block file before the acknowledgement).

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::gateway::temp_path;
use super::redis_server::{free_port, on_path, tail};

/// Where the Debian package puts the binary (`./scripts/test` installs it).
const BINARY: &str = "/usr/sbin/nats-server";
/// How long the server may take to accept clients after a (re)start.
const STARTUP: Duration = Duration::from_secs(15);

pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
}

impl NatsServer {
    /// Start `nats-server -js` on a free port of 127.0.0.1 with a fresh store directory,
    /// and wait until it greets a client with `INFO`. Panics (never skips) when the
    /// binary is missing.
    pub fn start() -> NatsServer {
        let dir = temp_path("nats-store", "d");
        std::fs::create_dir_all(&dir).expect("create the NATS store directory");
        let log = temp_path("nats", "log");
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            dir,
            log,
        };
        // A port picked free can be taken before the server binds it: try a few.
        let mut last_error = String::new();
        for _ in 0..3 {
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
            server.port = free_port();
        }
        panic!("nats-server did not start: {last_error}");
    }

    /// `nats://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kill the server (SIGKILL) and wait for it to be gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the server again on the same port with the same store directory, and wait
    /// until it accepts clients.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn_and_wait() {
            panic!("nats-server did not restart on port {}: {e}", self.port);
        }
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let binary = binary();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the NATS log file");
        let log_err = log.try_clone().expect("clone the NATS log file");
        let port = self.port.to_string();
        let child = Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port, "-sd"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        loop {
            if greets(self.port) {
                return Ok(());
            }
            let child = self.child.as_mut().expect("the child just spawned");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!(
                    "exited with {status} on port {}; log:\n{}",
                    self.port,
                    self.log_tail(20)
                ));
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "no INFO on port {} within {STARTUP:?}; log:\n{}",
                    self.port,
                    self.log_tail(20)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "---- nats-server log ({}) ----\n{}",
                self.log.display(),
                self.log_tail(30)
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// The binary, or a panic that says how to get it: a missing server is a failure.
fn binary() -> PathBuf {
    let fixed = PathBuf::from(BINARY);
    if fixed.exists() {
        return fixed;
    }
    on_path("nats-server").unwrap_or_else(|| {
        panic!(
            "nats-server is not installed (looked at {BINARY} and on PATH): run ./scripts/test, \
             which installs it (apt-get install nats-server)"
        )
    })
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
