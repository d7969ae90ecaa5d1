//! The processes a run measures or needs: gateways (spawned here, or already running
//! and named by URL and pid), and a `redis-server` / `nats-server` backplane started on
//! a free loopback port with a temporary store. Everything spawned here is killed when
//! its handle drops, so a run that fails or times out leaves nothing behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::stats::{ProcessSample, sample_process};

/// How long a gateway or backplane server may take to start.
const STARTUP: Duration = Duration::from_secs(20);
/// The publisher key the tool configures on gateways it spawns.
pub const BENCH_PUBLISHER_KEY: &str = "bench_publisher_secret_0123456789";

/// A child process killed on drop.
struct Owned {
    child: Child,
}

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gateway under test.
pub struct Gateway {
    /// `127.0.0.1:PORT`
    pub addr: SocketAddr,
    pub pid: u32,
    /// Present when this tool spawned it.
    owned: Option<Owned>,
    pub log: Option<PathBuf>,
}

impl Gateway {
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn sample(&self) -> anyhow::Result<ProcessSample> {
        sample_process(self.pid)
    }

    /// Whether a spawned gateway is still running.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(owned) = &mut self.owned
            && let Ok(Some(status)) = owned.child.try_wait()
        {
            bail!(
                "gateway {} exited with {status}; log {}:\n{}",
                self.addr,
                self.log
                    .as_deref()
                    .map_or_else(String::new, |p| p.display().to_string()),
                self.log.as_deref().map(tail).unwrap_or_default()
            );
        }
        Ok(())
    }

    /// A gateway someone else runs: its address and its pid (for `/proc`).
    pub fn external(url: &str, pid: u32) -> anyhow::Result<Gateway> {
        let host = url
            .trim_start_matches("http://")
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap_or_default();
        let addr: SocketAddr = host
            .parse()
            .with_context(|| format!("--url {url}: expected http://IP:PORT on loopback"))?;
        if !addr.ip().is_loopback() {
            bail!("--url {url}: the load tool only targets loopback addresses (127.0.0.0/8)");
        }
        Ok(Gateway {
            addr,
            pid,
            owned: None,
            log: None,
        })
    }

    /// Spawn `binary serve --bind 127.0.0.1:0 …` and wait for its `listening on` line.
    pub fn spawn(binary: &Path, args: &[String], log: PathBuf) -> anyhow::Result<Gateway> {
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("creating the gateway log {}", log.display()))?;
        let mut child = Command::new(binary)
            .arg("serve")
            .arg("--bind")
            .arg("127.0.0.1:0")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("spawning the gateway {}", binary.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().context("gateway stdout")?;
        let owned = Owned { child };
        let (tx, rx) = std::sync::mpsc::channel();
        // The gateway prints one line; a thread reads it so the wait can time out.
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(STARTUP).unwrap_or_default();
        let Some(addr) = line.trim().strip_prefix("listening on http://") else {
            bail!(
                "gateway did not print `listening on http://ADDR` within {STARTUP:?} (got {line:?}); log {}:\n{}",
                log.display(),
                tail(&log)
            );
        };
        let addr = addr.parse().context("the gateway's listening address")?;
        Ok(Gateway {
            addr,
            pid,
            owned: Some(owned),
            log: Some(log),
        })
    }
}

/// The last lines of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Which backplane the gateways share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackplaneKind {
    /// In-process: every gateway is independent (sessions live on one replica).
    Memory,
    /// A `redis-server` this tool starts.
    Redis,
    /// A `nats-server -js` this tool starts.
    Nats,
}

/// A backplane server started for the run.
pub struct BackplaneServer {
    pub url: String,
    pub pid: u32,
    _owned: Owned,
    dir: PathBuf,
}

impl Drop for BackplaneServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl BackplaneServer {
    pub fn start(kind: BackplaneKind, scratch: &Path) -> anyhow::Result<Option<BackplaneServer>> {
        let port = free_port()?;
        let dir = scratch.join(format!("backplane-{port}"));
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("server.log"))?;
        let (binary, args, scheme): (&str, Vec<String>, &str) = match kind {
            BackplaneKind::Memory => return Ok(None),
            BackplaneKind::Redis => (
                find_binary("redis-server", "/usr/bin/redis-server")?,
                vec![
                    "--port".into(),
                    port.to_string(),
                    "--bind".into(),
                    "127.0.0.1".into(),
                    "--save".into(),
                    String::new(),
                    "--appendonly".into(),
                    "no".into(),
                    "--dir".into(),
                    dir.display().to_string(),
                ],
                "redis",
            ),
            BackplaneKind::Nats => (
                find_binary("nats-server", "/usr/sbin/nats-server")?,
                vec![
                    "-js".into(),
                    "-a".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    port.to_string(),
                    "-sd".into(),
                    dir.display().to_string(),
                ],
                "nats",
            ),
        };
        let child = Command::new(binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("spawning {binary}"))?;
        let pid = child.id();
        let server = BackplaneServer {
            url: format!("{scheme}://127.0.0.1:{port}"),
            pid,
            _owned: Owned { child },
            dir,
        };
        let deadline = Instant::now() + STARTUP;
        while !ready(kind, port) {
            if Instant::now() > deadline {
                bail!("{binary} did not become ready on port {port} within {STARTUP:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Some(server))
    }
}

fn find_binary(name: &str, fixed: &'static str) -> anyhow::Result<&'static str> {
    if Path::new(fixed).exists() {
        return Ok(fixed);
    }
    bail!("{name} is not installed at {fixed}: apt-get install {name} (./scripts/bench does)")
}

/// Redis answers PING with PONG; NATS greets with INFO.
fn ready(kind: BackplaneKind, port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if kind == BackplaneKind::Redis && stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 64];
    match stream.read(&mut reply) {
        Ok(n) => reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"INFO"),
        Err(_) => false,
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The `switchboard` binary next to this one (cargo puts both in the same target
/// directory), or on `PATH`.
pub fn default_gateway_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        candidates.push(dir.join("switchboard"));
        // Integration tests run from target/<profile>/deps.
        if let Some(parent) = dir.parent() {
            candidates.push(parent.join("switchboard"));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("switchboard")));
    }
    candidates.into_iter().find(|p| p.is_file()).with_context(|| {
        format!(
            "no `switchboard` binary next to {} or on PATH: build it first (cargo build --release -p switchboard), or pass --gateway-binary",
            exe.display()
        )
    })
}
