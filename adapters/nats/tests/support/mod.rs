//! A real `nats-server` for tests: started on a free port with JetStream and its own
//! store directory, killed on `Drop`, restartable on the same port and store (so
//! JetStream data survives a restart, as in production).
//!
//! The binary is the Debian package's `/usr/sbin/nats-server` (or `$NATS_SERVER_BIN`).
//! When it is missing the test FAILS (never skips), pointing at `scripts/test`, which
//! installs it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where the Debian package installs the server.
pub const DEFAULT_BIN: &str = "/usr/sbin/nats-server";

/// How long a start may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running (or stopped) `nats-server`.
pub struct NatsServer {
    /// 0 until the first start picked one.
    port: u16,
    dir: PathBuf,
    jetstream: bool,
    extra_args: Vec<String>,
    child: Option<Child>,
    launches: u32,
}

fn binary() -> PathBuf {
    let bin = std::env::var_os("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BIN));
    assert!(
        bin.exists(),
        "nats-server not found at {}: these tests run a real NATS server. Install it with \
         the project's test script (`scripts/test` installs the Debian package \
         `nats-server`), or `apt-get install nats-server`, or point $NATS_SERVER_BIN at one.",
        bin.display()
    );
    bin
}

fn fresh_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "switchboard-nats-test-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl NatsServer {
    /// A server with JetStream on a free port, accepting connections when this returns.
    pub fn start() -> NatsServer {
        NatsServer::start_with(true, &[])
    }

    /// A server without JetStream (for the "fails loud at boot" test).
    pub fn start_without_jetstream() -> NatsServer {
        NatsServer::start_with(false, &[])
    }

    /// A server with JetStream and extra command-line arguments (e.g. `--user`).
    pub fn start_with_args(args: &[&str]) -> NatsServer {
        NatsServer::start_with(true, args)
    }

    fn start_with(jetstream: bool, args: &[&str]) -> NatsServer {
        let mut server = NatsServer {
            port: 0,
            dir: fresh_dir(),
            jetstream,
            extra_args: args.iter().map(|arg| arg.to_string()).collect(),
            child: None,
            launches: 0,
        };
        server.launch();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `nats://<userinfo>@127.0.0.1:<port>`.
    pub fn url_with(&self, userinfo: &str) -> String {
        format!("nats://{userinfo}@127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (kept across restarts).
    pub fn store_dir(&self) -> &Path {
        &self.dir
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("server-{}.log", self.launches))
    }

    /// Start the server and wait until its log says it is ready. The first start asks
    /// for a random port (`-p -1`) and reads which one it got, so two tests can never
    /// race for one port; restarts reuse it.
    fn launch(&mut self) {
        self.launches += 1;
        let log = std::fs::File::create(self.log_path()).unwrap();
        let mut command = Command::new(binary());
        command.arg("-a").arg("127.0.0.1").arg("-p");
        if self.port == 0 {
            command.arg("-1");
        } else {
            command.arg(self.port.to_string());
        }
        if self.jetstream {
            command.arg("-js").arg("-sd").arg(self.dir.join("store"));
        }
        command.args(&self.extra_args);
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary().display()));
        self.child = Some(child);
        self.wait_until_ready();
    }

    fn wait_until_ready(&mut self) {
        const LISTENING: &str = "Listening for client connections on ";
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                panic!("nats-server exited at start ({status}); its log:\n{log}");
            }
            if log.contains("Server is ready")
                && let Some(port) = log
                    .lines()
                    .find_map(|line| line.split(LISTENING).nth(1))
                    .and_then(|addr| addr.rsplit(':').next())
                    .and_then(|port| port.trim().parse::<u16>().ok())
            {
                self.port = port;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server was not ready within {START_TIMEOUT:?}; its log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kill the server (SIGKILL: no graceful shutdown) and wait until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port and store directory.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A prefix no other backplane of this test process uses.
pub fn unique_prefix(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{label}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
