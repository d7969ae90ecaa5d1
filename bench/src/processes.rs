//! The processes a run measures or needs: gateways (spawned through the test kit, or
//! already running and named by URL and pid) or peer servers standing in for them
//! (`--server socketioxide`), and a `redis-server` / `nats-server`
//! backplane the kit starts on a free loopback port, its data and log in the run's
//! scratch directory. Everything spawned here is killed when its handle drops, so a run
//! that fails or times out leaves nothing behind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use switchboard_testkit::{
    GatewayCommand, NatsOptions, NatsServer, RedisOptions, RedisServer, ServerProcess,
};

use crate::peer::PeerProcess;
use crate::stats::{ProcessSample, sample_process};

/// The publisher key the tool configures on gateways it spawns.
pub const BENCH_PUBLISHER_KEY: &str = "bench_publisher_secret_0123456789";

/// Which server the clients and the publisher talk to.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// Switchboard's gateway: its WebSocket protocol, `POST /v1/publish`.
    #[default]
    Switchboard,
    /// The socketioxide peer (bench/peers/socketioxide): Socket.IO rooms,
    /// `POST /publish`.
    Socketioxide,
}

impl ServerKind {
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Switchboard => "switchboard",
            ServerKind::Socketioxide => "socketioxide",
        }
    }
}

/// A gateway (or a peer server in its place) under test.
pub struct Gateway {
    /// `127.0.0.1:PORT`
    pub addr: SocketAddr,
    pub pid: u32,
    /// Present when this tool spawned it.
    owned: Option<Owned>,
}

/// A server process this tool spawned.
enum Owned {
    Switchboard(switchboard_testkit::Gateway),
    Peer(PeerProcess),
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
        let exited = match &mut self.owned {
            None => None,
            Some(Owned::Switchboard(owned)) => owned
                .exit_status()
                .map(|status| (status, owned.log_path().to_owned(), owned.log_tail(20))),
            Some(Owned::Peer(owned)) => owned
                .exit_status()
                .map(|status| (status, owned.log_path().to_owned(), owned.log_tail(20))),
        };
        if let Some((status, log, tail)) = exited {
            bail!(
                "server {} exited with {status}; log {}:\n{tail}",
                self.addr,
                log.display(),
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
        })
    }

    /// Spawn `binary serve --bind 127.0.0.1:0 …` (logging at `warn`, to `log`) and wait
    /// for its `listening on` line. The `SWITCHBOARD_*` variables of the tool's
    /// environment reach the gateway.
    pub fn spawn(binary: &Path, args: &[String], log: PathBuf) -> anyhow::Result<Gateway> {
        // GatewayCommand gives each gateway a fresh data directory of its own.
        let gateway = GatewayCommand::new(binary)
            .args(args)
            .env("RUST_LOG", "warn")
            .log(log)
            .keep_switchboard_env()
            .try_start()?;
        Ok(Gateway {
            addr: gateway.socket_addr(),
            pid: gateway.pid(),
            owned: Some(Owned::Switchboard(gateway)),
        })
    }

    /// Spawn a peer server (`binary --bind 127.0.0.1:0 ARGS…`) in a gateway's place.
    pub fn spawn_peer(binary: &Path, args: &[String], log: PathBuf) -> anyhow::Result<Gateway> {
        let peer = PeerProcess::spawn(binary, args, log)?;
        Ok(Gateway {
            addr: peer.addr,
            pid: peer.pid(),
            owned: Some(Owned::Peer(peer)),
        })
    }
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

/// A backplane server started for the run (in memory for Redis, JetStream's file store
/// for NATS).
pub struct BackplaneServer {
    pub url: String,
    pub pid: u32,
    _server: ServerProcess,
}

impl BackplaneServer {
    pub fn start(kind: BackplaneKind, scratch: &Path) -> anyhow::Result<Option<BackplaneServer>> {
        let dir = Some(scratch.join("backplane"));
        let server: ServerProcess = match kind {
            BackplaneKind::Memory => return Ok(None),
            BackplaneKind::Redis => RedisServer::try_start(&RedisOptions {
                dir,
                ..RedisOptions::default()
            })?
            .into(),
            BackplaneKind::Nats => NatsServer::try_start(&NatsOptions {
                dir,
                ..NatsOptions::default()
            })?
            .into(),
        };
        Ok(Some(BackplaneServer {
            url: server.url(),
            pid: server.pid().context("the backplane server just started")?,
            _server: server,
        }))
    }
}

/// The `switchboard` binary next to this one (cargo puts both in the same target
/// directory), or on `PATH`.
pub fn default_gateway_binary() -> anyhow::Result<PathBuf> {
    switchboard_testkit::gateway::find_binary()
        .map_err(|e| anyhow::anyhow!("{e}, or pass --gateway-binary"))
}
