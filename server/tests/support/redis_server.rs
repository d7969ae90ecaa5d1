//! A real `redis-server` on a free port, killed on `Drop`, with `stop()` and `restart()`
//! (same port, same data directory) for fault tests (EXAMPLES item 14).
//!
//! Persistence is on and strict: `--appendonly yes --appendfsync always`, RDB snapshots
//! off. Every write Redis acknowledged is on disk before the acknowledgement, so "no
//! acknowledged event is lost" across a `stop()` (SIGKILL) and `restart()` is a claim
//! about the gateway, not about luck.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::gateway::temp_path;

/// Where the Debian package puts the binary (`./scripts/test` installs it).
const BINARY: &str = "/usr/bin/redis-server";
/// How long Redis may take to answer `PING` with `PONG` after a (re)start.
const STARTUP: Duration = Duration::from_secs(15);

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
}

impl RedisServer {
    /// Start `redis-server` on a free port of 127.0.0.1 with a fresh data directory, and
    /// wait until it answers `PING`. Panics (never skips) when the binary is missing.
    pub fn start() -> RedisServer {
        let dir = temp_path("redis-data", "d");
        std::fs::create_dir_all(&dir).expect("create the Redis data directory");
        let log = temp_path("redis", "log");
        let mut server = RedisServer {
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
        panic!("redis-server did not start: {last_error}");
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kill the server (SIGKILL: no shutdown save; the append-only file is all that
    /// survives) and wait for it to be gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the server again on the same port with the same data directory, and wait
    /// until it answers `PING` (after loading its append-only file).
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn_and_wait() {
            panic!("redis-server did not restart on port {}: {e}", self.port);
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
            .expect("open the Redis log file");
        let log_err = log.try_clone().expect("clone the Redis log file");
        let port = self.port.to_string();
        let child = Command::new(&binary)
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        loop {
            if ping(self.port) {
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
                    "no PONG on port {} within {STARTUP:?}; log:\n{}",
                    self.port,
                    self.log_tail(20)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "---- redis-server log ({}) ----\n{}",
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
    on_path("redis-server").unwrap_or_else(|| {
        panic!(
            "redis-server is not installed (looked at {BINARY} and on PATH): run ./scripts/test, \
             which installs it (apt-get install redis-server)"
        )
    })
}

/// `name` in a directory of `PATH`.
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A port of 127.0.0.1 that was free a moment ago, chosen **below** the kernel's
/// ephemeral range: a server that is stopped and restarted leaves its port unbound for a
/// while, and a port from the ephemeral range could meanwhile be handed to a gateway
/// binding port 0 or to an outgoing connection of a test running in parallel.
pub(crate) fn free_port() -> u16 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(12_000));
    for _ in 0..200 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
        hasher.write_u32(std::process::id());
        let port = low + (hasher.finish() % u64::from(high - low)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found in 127.0.0.1:{low}..{high}");
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

pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
