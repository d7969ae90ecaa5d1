//! Peer servers: other implementations of the fan-out scenario's server side, measured
//! the same way as the gateway (docs/benchmarks.md, "Peers: socketioxide"). A peer is
//! spawned as `BINARY --bind 127.0.0.1:0 [--redis URL]`, prints `listening on
//! http://ADDR` first on stdout as the gateway does, logs to stderr (a file in the
//! run's scratch directory) and is killed when its handle drops.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};

/// How long a peer may take to print its `listening on` line.
const STARTUP: Duration = Duration::from_secs(30);

/// The socketioxide peer's binary name.
pub const SOCKETIOXIDE_PEER: &str = "socketioxide-peer";

/// Where `cargo build --release --manifest-path bench/peers/socketioxide/Cargo.toml`
/// puts the peer, relative to the repository.
const SOCKETIOXIDE_PEER_BUILT: &str = "bench/peers/socketioxide/target/release/socketioxide-peer";

/// A running peer server.
pub struct PeerProcess {
    pub addr: SocketAddr,
    child: Child,
    log: PathBuf,
    exit: Option<ExitStatus>,
}

impl PeerProcess {
    /// Spawn `binary --bind 127.0.0.1:0 ARGS…`, its stderr to `log`, and wait for its
    /// address.
    pub fn spawn(binary: &Path, args: &[String], log: PathBuf) -> anyhow::Result<PeerProcess> {
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("create the peer log {}", log.display()))?;
        let mut child = Command::new(binary)
            .args(["--bind", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("spawn {}", binary.display()))?;
        let stdout = child.stdout.take().context("the peer's stdout pipe")?;
        // The first line on a thread (std pipes block; the wait is bounded), then keep
        // draining so a later write by the peer never meets a closed pipe.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let first = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(first);
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let line = rx.recv_timeout(STARTUP);
        let addr = match &line {
            Ok(Ok(line)) => line
                .trim()
                .strip_prefix("listening on http://")
                .and_then(|a| a.parse::<SocketAddr>().ok()),
            _ => None,
        };
        let mut peer = PeerProcess {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            log,
            exit: None,
        };
        match addr {
            Some(addr) => {
                peer.addr = addr;
                Ok(peer)
            }
            None => {
                let _ = peer.child.kill();
                let status = peer.child.wait().ok();
                bail!(
                    "{} did not start (first stdout line {line:?}, exit status {status:?}); log {}:\n{}",
                    binary.display(),
                    peer.log.display(),
                    peer.log_tail(40)
                )
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the process exited, if it did (without waiting).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The socketioxide peer: next to this binary, then as built in the repository (from
/// the working directory, then from where this tool was compiled).
pub fn default_socketioxide_peer() -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()?.parent() {
        candidates.push(dir.join(SOCKETIOXIDE_PEER));
    }
    candidates.push(PathBuf::from(SOCKETIOXIDE_PEER_BUILT));
    if let Some(repo) = Path::new(env!("CARGO_MANIFEST_DIR")).parent() {
        candidates.push(repo.join(SOCKETIOXIDE_PEER_BUILT));
    }
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    bail!(
        "no {SOCKETIOXIDE_PEER} at {}: build it with `cargo build --release --manifest-path \
         bench/peers/socketioxide/Cargo.toml`, or pass --peer-binary",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}
