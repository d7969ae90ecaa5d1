//! A real `redis-server` for tests: started on a free port, killed on drop, restartable
//! on the same port for fault tests.
//!
//! The binary is `/usr/bin/redis-server` (Debian's `redis-server` package), or the one
//! named by `SWITCHBOARD_REDIS_SERVER`, or the first on `PATH`. When there is none,
//! starting a server fails the test with a message saying how to get one: a missing
//! server never turns into a silently skipped test.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to answer PING after it was started.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running (or stopped, after [`RedisServer::stop`]) `redis-server`.
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    /// Its working directory (AOF, log); removed on drop.
    dir: PathBuf,
    persistent: bool,
    /// Extra `redis-server` arguments (e.g. `--requirepass`).
    extra: Vec<String>,
    child: Option<Child>,
}

fn find_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SWITCHBOARD_REDIS_SERVER") {
        return PathBuf::from(path);
    }
    let default = Path::new("/usr/bin/redis-server");
    if default.exists() {
        return default.to_owned();
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("redis-server");
            if candidate.exists() {
                return candidate;
            }
        }
    }
    panic!(
        "redis-server is not installed (looked at /usr/bin/redis-server, $SWITCHBOARD_REDIS_SERVER \
         and $PATH). These tests run against a real Redis: run ./scripts/test, which installs it \
         (apt-get install redis-server), or install it yourself."
    );
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

fn scratch_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "switchboard-redis-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

impl RedisServer {
    /// An in-memory server (`--save "" --appendonly no`): a restart loses every key.
    pub fn start() -> RedisServer {
        RedisServer::launch(false, &[])
    }

    /// An in-memory server with extra arguments, e.g. `["--requirepass", "pw"]`.
    pub fn start_with_args(extra: &[&str]) -> RedisServer {
        RedisServer::launch(false, extra)
    }

    /// A server that writes every command to its append-only file before answering
    /// (`--appendonly yes --appendfsync always`): a restart keeps every acknowledged
    /// write.
    pub fn start_persistent() -> RedisServer {
        RedisServer::launch(true, &[])
    }

    fn launch(persistent: bool, extra: &[&str]) -> RedisServer {
        let binary = find_binary();
        // A free port can be taken between probing and binding; try a few.
        let mut last_error = String::new();
        for _ in 0..5 {
            let mut server = RedisServer {
                binary: binary.clone(),
                port: free_port(),
                dir: scratch_dir(),
                persistent,
                extra: extra.iter().map(|a| a.to_string()).collect(),
                child: None,
            };
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(error) => last_error = error,
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let dir = self.dir.to_string_lossy().into_owned();
        let log = self.dir.join("redis.log").to_string_lossy().into_owned();
        let mut command = Command::new(&self.binary);
        command
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--dir", &dir, "--logfile", &log, "--daemonize", "no"]);
        if self.persistent {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        command.args(&self.extra);
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if ping(self.port) {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "redis-server exited with {status} on port {}; its log:\n{}",
                    self.port,
                    self.log()
                ));
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "redis-server on port {} did not answer PING within {READY_WITHIN:?}; its log:\n{}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL: no shutdown save, connections reset) and waits for
    /// it to exit.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts the server again on the same port (and directory, so a persistent server
    /// reloads its append-only file), and waits until it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(error) = self.spawn_and_wait() {
            panic!("redis-server did not restart: {error}");
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers, as in
    /// a network partition or a paused VM.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server is running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL also ends a frozen (SIGSTOPped) server.
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a Redis on `port` answers `PING` with `PONG` (not `-LOADING`).
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    // `-NOAUTH` (a server with a password) is up too; `-LOADING` is not yet.
    stream.read_exact(&mut reply).is_ok()
        && (&reply == b"+PONG\r\n" || reply.starts_with(b"-NOAUTH"))
}

/// A key prefix no other backplane in this test run uses.
pub fn unique_prefix(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}-{}-{label}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `probe` every 20 ms until it returns `Some`, failing the test after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let polling = async {
        loop {
            if let Some(found) = probe().await {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    match tokio::time::timeout(within, polling).await {
        Ok(found) => found,
        Err(_) => panic!("{what}: not within {within:?}"),
    }
}
