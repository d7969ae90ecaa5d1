//! A real backing server (`redis-server`, `nats-server`) on a free port, killed on
//! `Drop`, with `stop()` and `restart()` (same port, same data directory) for fault tests
//! (EXAMPLES item 14; anchor: nats.rs `nats-server/src/lib.rs`). What differs per server
//! — its binary, arguments and readiness probe — is a [`ServerSpec`].

use std::collections::hash_map::RandomState;
use std::ffi::OsString;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::gateway::temp_path;

/// How long a server may take to become ready after a (re)start.
const STARTUP: Duration = Duration::from_secs(15);

/// One kind of backing server.
pub struct ServerSpec {
    /// The binary's name, e.g. `redis-server` (also its Debian package's name).
    pub name: &'static str,
    /// Where the Debian package puts it (`./scripts/test` installs it).
    pub binary: &'static str,
    /// URL scheme clients use: `redis`, `nats`.
    pub scheme: &'static str,
    /// Command-line arguments for a port and a data directory.
    pub args: fn(port: u16, dir: &Path) -> Vec<OsString>,
    /// Whether the server on the port serves clients yet.
    pub ready: fn(port: u16) -> bool,
    /// What readiness means, for failure messages (e.g. "PONG").
    pub ready_sign: &'static str,
}

pub struct ServerProcess {
    spec: &'static ServerSpec,
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
}

impl ServerProcess {
    /// Start the server on a free port of 127.0.0.1 with a fresh data directory, and
    /// wait until it is ready. Panics (never skips) when the binary is missing.
    pub fn start(spec: &'static ServerSpec) -> ServerProcess {
        let dir = temp_path(&format!("{}-data", spec.name), "d");
        std::fs::create_dir_all(&dir).expect("create the server's data directory");
        let log = temp_path(spec.name, "log");
        let mut server = ServerProcess {
            spec,
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
        panic!("{} did not start: {last_error}", spec.name);
    }

    /// `<scheme>://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.spec.scheme, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kill the server (SIGKILL: only what it already persisted survives) and wait for
    /// it to be gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the server again on the same port with the same data directory, and wait
    /// until it is ready.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn_and_wait() {
            panic!(
                "{} did not restart on port {}: {e}",
                self.spec.name, self.port
            );
        }
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let binary = binary(self.spec);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the server log file");
        let log_err = log.try_clone().expect("clone the server log file");
        let child = Command::new(&binary)
            .args((self.spec.args)(self.port, &self.dir))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        loop {
            if (self.spec.ready)(self.port) {
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
                    "no {} on port {} within {STARTUP:?}; log:\n{}",
                    self.spec.ready_sign,
                    self.port,
                    self.log_tail(20)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "---- {} log ({}) ----\n{}",
                self.spec.name,
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
fn binary(spec: &ServerSpec) -> PathBuf {
    let fixed = PathBuf::from(spec.binary);
    if fixed.exists() {
        return fixed;
    }
    on_path(spec.name).unwrap_or_else(|| {
        panic!(
            "{name} is not installed (looked at {} and on PATH): run ./scripts/test, \
             which installs it (apt-get install {name})",
            spec.binary,
            name = spec.name
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

pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
