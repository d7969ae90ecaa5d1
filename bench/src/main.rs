//! `switchboard-bench`: the load tool. It starts gateways (or measures running ones),
//! opens N WebSocket connections from worker processes, joins M sessions, drives
//! publishes or agent turns at a target rate, and reports delivered events per second,
//! publish → socket latency (HDR histogram: p50/p90/p99/p99.9), errors and
//! disconnects, and the gateways' resident memory and CPU seconds — as a table and as
//! JSON. Every run is bounded in count and time and stops by itself; it only ever
//! connects to loopback addresses.
//!
//! ```text
//!  coordinator (this process) ── spawns ──► gateways (switchboard serve), redis/nats
//!      │                                      (or peers: fanout --server socketioxide)
//!      │  creates sessions, publishes over HTTP, samples /proc/<pid> of the gateways
//!      └─ spawns ──► workers (this binary, `worker`): ≤ ~16k client sockets each,
//!                    commands on stdin, JSON events (ready, report) on stdout
//! ```

mod client;
mod control;
mod coordinator;
mod floor;
mod node_client;
mod peer;
mod processes;
mod publisher;
mod report;
mod soak;
mod socketio;
mod stats;
mod worker;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::processes::{BackplaneKind, ServerKind};

/// Load tool for Switchboard: connections, fan-out, token streaming, cross-replica and
/// reconnect storms, with latency, throughput, memory and CPU figures.
#[derive(Debug, Parser)]
#[command(name = "switchboard-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Idle connections: gateway resident memory per connection.
    Idle(IdleArgs),
    /// Fan-out: publish into sessions over HTTP; delivered events/s, publish → socket
    /// latency, gateway CPU per million deliveries. With `--replicas 2 --backplane
    /// redis|nats`: across replicas.
    Fanout(FanoutArgs),
    /// Token streaming: concurrent agent turns (the offline agent), first-delta time
    /// and delta latency.
    Turns(TurnsArgs),
    /// Reconnect storm: every connection dropped at once and resumed with
    /// `after_seq` while publishing goes on; time to resume all, and losses.
    Storm(StormArgs),
    /// Control between replicas over Redis: backplane operations per turn and per
    /// idle second (every command watched with MONITOR), and cross-replica
    /// `turn.cancel` latency. Compare gateway builds with `--gateway-binary`.
    Control(ControlArgs),
    /// Soak: minutes of churning visitors (connect, create a session, join a lobby,
    /// one agent turn, one HTTP publish, leave or vanish) over Redis, sampling each
    /// gateway's RSS, open fds and live tokio tasks. Fails when any grows after warm-up.
    Soak(SoakArgs),
    /// The machine's floor: CPU per small write to each of many loopback TCP sockets,
    /// with no gateway. No gateway here can deliver an event for less.
    Floor(FloorArgs),
    /// (internal) the reading side of `floor`.
    #[command(hide = true)]
    FloorSink {
        #[arg(long)]
        connect: std::net::SocketAddr,
        #[arg(long)]
        sockets: usize,
    },
    /// (internal) hold a share of the client connections.
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        spec: PathBuf,
    },
}

/// What every scenario shares: the gateways, the clients, the output.
#[derive(Debug, Clone, Args)]
struct Setup {
    /// The `switchboard` binary to spawn (default: next to this binary, then PATH).
    #[arg(long)]
    gateway_binary: Option<PathBuf>,
    /// Gateway processes to spawn.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Backplane of the spawned gateways; redis and nats servers are started by the
    /// tool on free loopback ports with a temporary store.
    #[arg(long, value_enum, default_value = "memory")]
    backplane: BackplaneKind,
    /// Extra flag for every spawned gateway (repeat), e.g. `--gateway-arg=--outbound-queue-bytes=65536`.
    #[arg(long = "gateway-arg", allow_hyphen_values = true)]
    gateway_args: Vec<String>,
    /// Measure running gateways instead (repeat; loopback only). Needs `--pid` for each
    /// and `--publisher-key` for publishing scenarios.
    #[arg(long = "url")]
    urls: Vec<String>,
    /// Pids of the `--url` gateways, in the same order (memory and CPU from /proc).
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// Publisher key of the `--url` gateways (name:secret or secret).
    #[arg(long)]
    publisher_key: Option<String>,
    /// Client worker processes (default: one per 15,000 connections, at least 2).
    #[arg(long)]
    workers: Option<usize>,
    /// Source addresses 127.0.0.2 … 127.0.0.(1+N) the clients bind, so that more
    /// connections than one address has ephemeral ports can be opened.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..=250))]
    source_addresses: u8,
    /// Connections each worker opens at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Hard bound on the whole run: past it everything is stopped and the run fails.
    #[arg(long, default_value = "300s", value_parser = humantime_duration)]
    max_runtime: Duration,
    /// Write the report as JSON here (the table goes to stdout either way).
    #[arg(long)]
    json: Option<PathBuf>,
    /// A label for the report (e.g. `before: 4 KiB read buffer`).
    #[arg(long, default_value = "")]
    label: String,
}

/// Which server the gateways' places hold.
#[derive(Debug, Clone, Args)]
struct MeasuredServer {
    /// The server measured: Switchboard's gateway, or the socketioxide peer
    /// (bench/peers/socketioxide) in its place — rooms for sessions, Socket.IO for the
    /// clients, `POST /publish`; `--replicas 2 --backplane redis` shares rooms over the
    /// tool's redis-server (socketioxide-redis).
    #[arg(long, value_enum, default_value = "switchboard")]
    server: ServerKind,
    /// The peer binary for `--server socketioxide` (default: next to this binary, then
    /// bench/peers/socketioxide/target/release/socketioxide-peer in the repository).
    #[arg(long)]
    peer_binary: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
struct IdleArgs {
    #[command(flatten)]
    setup: Setup,
    #[command(flatten)]
    measured: MeasuredServer,
    /// Connections to open (spread over the replicas).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Wait after the last connection before reading memory.
    #[arg(long, default_value = "3s", value_parser = humantime_duration)]
    settle: Duration,
}

#[derive(Debug, Clone, Args)]
struct FanoutArgs {
    #[command(flatten)]
    setup: Setup,
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Sessions; connection i joins session i mod M. M = connections: each connection
    /// creates its own session (one member each).
    #[arg(long, default_value_t = 1)]
    sessions: usize,
    /// Publishes per second, all sessions together (round robin).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    #[arg(long, default_value = "10s", value_parser = humantime_duration)]
    duration: Duration,
    /// HTTP publish requests in flight at most.
    #[arg(long, default_value_t = 32)]
    publishers: usize,
    /// Pause between connecting and measuring.
    #[arg(long, default_value = "1s", value_parser = humantime_duration)]
    warmup: Duration,
    /// Wait after the last publish for deliveries in flight.
    #[arg(long, default_value = "2s", value_parser = humantime_duration)]
    drain: Duration,
    #[command(flatten)]
    measured: MeasuredServer,
    /// Who holds the sockets and publishes: `rust` (worker processes and this process's
    /// publisher) or `node` (one Node.js process, bench/node-client/client.mjs, that
    /// holds every socket and publishes over keep-alive HTTP with `--publishers`
    /// sockets and up to 256 requests in flight; it publishes during `--warmup` too,
    /// unmeasured, and stops draining as soon as every event arrived).
    #[arg(long, value_enum, default_value = "rust")]
    client: ClientShape,
    /// The `node` binary for `--client node`.
    #[arg(long, default_value = "node")]
    node: PathBuf,
    /// The directory of client.mjs for `--client node` (default: bench/node-client of
    /// this source tree); `npm ci` runs there when its node_modules is missing.
    #[arg(long)]
    node_client: Option<PathBuf>,
}

/// The client shape of a fan-out run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ClientShape {
    Rust,
    Node,
}

#[derive(Debug, Clone, Args)]
struct TurnsArgs {
    #[command(flatten)]
    setup: Setup,
    /// Concurrent turns: one connection and one session each.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    #[arg(long, default_value = "10s", value_parser = humantime_duration)]
    duration: Duration,
    /// `--offline-agent-delay` of the spawned gateways (pause between deltas).
    #[arg(long, default_value = "40ms", value_parser = humantime_duration)]
    agent_delay: Duration,
}

#[derive(Debug, Clone, Args)]
struct StormArgs {
    #[command(flatten)]
    setup: Setup,
    #[arg(long, default_value_t = 2000)]
    connections: usize,
    #[arg(long, default_value_t = 100)]
    sessions: usize,
    /// Publishes per second during the whole run.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Publishing before the storm.
    #[arg(long, default_value = "2s", value_parser = humantime_duration)]
    before: Duration,
    /// Publishing after the storm started.
    #[arg(long, default_value = "5s", value_parser = humantime_duration)]
    after: Duration,
    /// Longest a storm may take to resume every connection.
    #[arg(long, default_value = "60s", value_parser = humantime_duration)]
    resume_timeout: Duration,
    #[arg(long, default_value_t = 32)]
    publishers: usize,
}

#[derive(Debug, Clone, Args)]
struct ControlArgs {
    /// The `switchboard` binary to spawn (default: next to this binary, then PATH).
    #[arg(long)]
    gateway_binary: Option<PathBuf>,
    /// Cross-replica cancels to time.
    #[arg(long, default_value_t = 40)]
    samples: usize,
    /// Turns run one after another to count backplane operations per turn.
    #[arg(long, default_value_t = 50)]
    turns: usize,
    /// How long the replicas idle to measure their background operations.
    #[arg(long, default_value = "10s", value_parser = humantime_duration)]
    idle: Duration,
    /// `--offline-agent-delay` of the spawned gateways (pause between deltas).
    #[arg(long, default_value = "30ms", value_parser = humantime_duration)]
    agent_delay: Duration,
    /// Each cancel is sent a random time up to this after `turn.start` arrives, so it
    /// meets a polling replica at a random point of its interval.
    #[arg(long, default_value = "300ms", value_parser = humantime_duration)]
    cancel_spread: Duration,
    #[arg(long, default_value = "300s", value_parser = humantime_duration)]
    max_runtime: Duration,
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Debug, Clone, Args)]
struct SoakArgs {
    /// The `switchboard` binary to spawn (default: next to this binary, then PATH).
    #[arg(long)]
    gateway_binary: Option<PathBuf>,
    /// Gateway processes sharing a `redis-server` the tool starts.
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    /// Extra flag for every spawned gateway (repeat), e.g. to lift a per-visitor quota.
    #[arg(long = "gateway-arg", allow_hyphen_values = true)]
    gateway_args: Vec<String>,
    /// Concurrent visitors, each visiting again and again.
    #[arg(long, default_value_t = 16)]
    visitors: usize,
    /// Pause between a visitor's visits.
    #[arg(long, default_value = "200ms", value_parser = humantime_duration)]
    think: Duration,
    /// Publishes per second into the lobbies over HTTP (besides one per visit).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Shared sessions the visitors join and leave.
    #[arg(long, default_value_t = 4)]
    lobbies: usize,
    /// How long the traffic runs (10m for the figures in docs/benchmarks.md).
    #[arg(long, default_value = "10m", value_parser = humantime_duration)]
    duration: Duration,
    /// Checkpoints before this are not judged: caches, pools and the allocator fill up.
    #[arg(long, default_value = "2m", value_parser = humantime_duration)]
    warmup: Duration,
    /// Samples under load (for the chart).
    #[arg(long, default_value = "5s", value_parser = humantime_duration)]
    sample_every: Duration,
    /// Quiet checkpoints (load paused; these decide the verdict).
    #[arg(long, default_value = "30s", value_parser = humantime_duration)]
    checkpoint_every: Duration,
    /// Wait at a checkpoint after the last visit ended (closing sockets linger up to 2 s).
    #[arg(long, default_value = "3s", value_parser = humantime_duration)]
    settle: Duration,
    /// `--offline-agent-delay` of the spawned gateways (pause between deltas).
    #[arg(long, default_value = "20ms", value_parser = humantime_duration)]
    agent_delay: Duration,
    /// Source addresses 127.0.0.2 … 127.0.0.(1+N) the visitors connect from (visitor
    /// i uses address i mod N): N anonymous visitors as per-address limits see them.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..=250))]
    source_addresses: u8,
    /// Failed visits or publishes tolerated before the run fails.
    #[arg(long, default_value_t = 0)]
    max_errors: u64,
    /// Resident memory growth tolerated, in MiB (or the percentage below, if larger).
    #[arg(long, default_value_t = 8.0)]
    rss_tolerance_mib: f64,
    /// Resident memory growth tolerated, in percent of the first third's median.
    #[arg(long, default_value_t = 10.0)]
    rss_tolerance_percent: f64,
    /// Hard bound on the whole run.
    #[arg(long, default_value = "20m", value_parser = humantime_duration)]
    max_runtime: Duration,
    /// Write the report (every sample, totals, verdict) as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Debug, Clone, Args)]
struct FloorArgs {
    /// Sockets written to in turn.
    #[arg(long, default_value_t = 5000)]
    sockets: usize,
    /// Rounds: one write to every socket each.
    #[arg(long, default_value_t = 100)]
    rounds: usize,
    /// Bytes per write (a small event frame is about 120).
    #[arg(long, default_value_t = 120)]
    bytes: usize,
    /// Pause after each round, so each write finds its reader idle, as a fan-out does.
    #[arg(long, default_value = "10ms", value_parser = humantime_duration)]
    pause: Duration,
    #[arg(long, default_value = "120s", value_parser = humantime_duration)]
    max_runtime: Duration,
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long, default_value = "")]
    label: String,
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e} (e.g. 500ms, 10s, 2m)"))
}

fn main() -> std::process::ExitCode {
    raise_open_files_limit();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Worker { spec } => worker::run(&spec),
        Command::Floor(args) => floor::run(&floor::FloorParams {
            sockets: args.sockets,
            rounds: args.rounds,
            bytes: args.bytes,
            pause: args.pause,
            max_runtime: args.max_runtime,
            label: &args.label,
            json: args.json.as_deref(),
        }),
        Command::FloorSink { connect, sockets } => floor::sink(connect, sockets),
        Command::Control(args) => control::run(&control::Params {
            gateway_binary: args.gateway_binary.as_deref(),
            samples: args.samples,
            turns: args.turns,
            idle: args.idle,
            agent_delay: args.agent_delay,
            cancel_spread: args.cancel_spread,
            max_runtime: args.max_runtime,
            json: args.json.as_deref(),
            label: &args.label,
        }),
        Command::Soak(args) => soak::run(&soak::Params {
            gateway_binary: args.gateway_binary.as_deref(),
            replicas: args.replicas,
            gateway_args: &args.gateway_args,
            visitors: args.visitors,
            think: args.think,
            rate: args.rate,
            lobbies: args.lobbies,
            duration: args.duration,
            warmup: args.warmup,
            sample_every: args.sample_every,
            checkpoint_every: args.checkpoint_every,
            settle: args.settle,
            agent_delay: args.agent_delay,
            source_addresses: args.source_addresses,
            max_errors: args.max_errors,
            rss_tolerance: soak::Tolerance {
                absolute: args.rss_tolerance_mib * 1024.0,
                relative: args.rss_tolerance_percent / 100.0,
            },
            max_runtime: args.max_runtime,
            json: args.json.as_deref(),
            label: &args.label,
        }),
        command => coordinator::run(command),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Lift the soft open-files limit to the hard one (here 20,000: one process holds at
/// most that many sockets, which is why clients live in several workers). Gateways
/// spawned by the tool inherit it.
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_gateways() {
        assert_eq!(
            humantime_duration("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(humantime_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(humantime_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(humantime_duration("soon").is_err());
    }
}
