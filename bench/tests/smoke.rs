//! Smoke test of the load tool: short runs (seconds) against gateways it spawns. They
//! prove the tool works end to end and that its numbers are sane — no timing
//! assertions: the figures themselves are for docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The `switchboard` binary cargo built next to the bench binary
/// (`cargo test --workspace` builds both).
fn gateway_binary() -> PathBuf {
    let bench = Path::new(env!("CARGO_BIN_EXE_switchboard-bench"));
    let gateway = bench.with_file_name("switchboard");
    assert!(
        gateway.is_file(),
        "{} is missing: build the gateway first (cargo build -p switchboard, or run \
         cargo test --workspace, which builds it)",
        gateway.display()
    );
    gateway
}

/// Run a gateway scenario with `args`, return its JSON report.
fn bench(name: &str, args: &[&str]) -> Value {
    let gateway = gateway_binary();
    let gateway = gateway.to_str().expect("a UTF-8 path");
    let args: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--gateway-binary", gateway])
        .collect();
    run_tool(name, &args)
}

/// Run the tool with `args`, return its JSON report.
fn run_tool(name: &str, args: &[&str]) -> Value {
    let json = std::env::temp_dir().join(format!(
        "switchboard-bench-smoke-{name}-{}.json",
        std::process::id()
    ));
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard-bench"))
        .args(args)
        .arg("--max-runtime")
        .arg("60s")
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run switchboard-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "switchboard-bench {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("== switchboard-bench"),
        "the table is printed: {stdout}"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(&json).expect("the JSON report is written"))
            .expect("the report is JSON");
    let _ = std::fs::remove_file(&json);
    report
}

fn number(report: &Value, pointer: &str) -> f64 {
    report
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} missing from the report: {report:#}"))
}

/// What every short fan-out run (40 connections in 4 sessions of 10) must show: all
/// connected, each of the `published` events delivered to its 10 members once, with a
/// latency each, and no error of any kind.
fn assert_every_event_reached_every_member(report: &Value, published: f64) {
    assert_eq!(number(report, "/connections/connected"), 40.0);
    assert_eq!(number(report, "/publish/errors"), 0.0);
    assert_eq!(number(report, "/delivered"), published * 10.0);
    assert_eq!(number(report, "/latency_us/count"), published * 10.0);
    assert_eq!(number(report, "/delivery_check/members_checked"), 40.0);
    assert_eq!(number(report, "/delivery_check/lost"), 0.0);
    assert_eq!(number(report, "/delivery_check/duplicates"), 0.0);
    assert_eq!(number(report, "/errors/connect"), 0.0);
    assert_eq!(number(report, "/errors/error_frames"), 0.0);
    assert_eq!(number(report, "/disconnects"), 0.0);
}

/// Fan-out: every published event reaches every member once, with a latency, and the
/// gateway's memory and CPU are read.
#[test]
fn a_short_fanout_run_delivers_every_event_and_reports_sane_figures() {
    let report = bench(
        "fanout",
        &[
            "fanout",
            "--connections",
            "40",
            "--sessions",
            "4",
            "--rate",
            "40",
            "--duration",
            "2s",
            "--warmup",
            "200ms",
            "--drain",
            "1s",
        ],
    );
    assert_eq!(number(&report, "/connections/failed"), 0.0);
    let published = number(&report, "/publish/published");
    assert!(published > 0.0, "events were published");
    assert_every_event_reached_every_member(&report, published);
    let p50 = number(&report, "/latency_us/p50");
    let p99 = number(&report, "/latency_us/p99");
    assert!(
        p50 > 0.0 && p99 >= p50,
        "latency percentiles: {p50} ≤ {p99}"
    );
    assert!(number(&report, "/gateways/0/rss_kib") > 0.0);
    assert!(number(&report, "/gateway_cpu_secs") > 0.0);
    assert!(number(&report, "/cpu_secs_per_million_events") > 0.0);
}

/// The Node.js client shape: one `node` process holds the sockets and publishes; its
/// report is folded into the same figures.
#[test]
fn a_short_node_fanout_run_delivers_every_event() {
    assert!(
        Command::new("node").arg("--version").output().is_ok(),
        "the Node.js client shape needs `node` on PATH (the README's test command installs it)"
    );
    let report = bench(
        "fanout-node",
        &[
            "fanout",
            "--client",
            "node",
            "--connections",
            "40",
            "--sessions",
            "4",
            "--rate",
            "40",
            "--duration",
            "2s",
            "--warmup",
            "500ms",
            "--drain",
            "2s",
        ],
    );
    assert_eq!(report["client"], "node");
    assert_eq!(number(&report, "/publish/published"), 80.0);
    assert_every_event_reached_every_member(&report, 80.0);
    assert_eq!(number(&report, "/publish/call_latency_us/count"), 80.0);
    assert!(number(&report, "/gateway_cpu_secs") > 0.0);
    assert!(number(&report, "/load_tool_cpu_secs") > 0.0);
}

/// Reconnect storm: every connection is dropped and resumed, and nothing published
/// meanwhile is lost or repeated.
#[test]
fn a_short_storm_resumes_every_connection_without_loss() {
    let report = bench(
        "storm",
        &[
            "storm",
            "--connections",
            "60",
            "--sessions",
            "6",
            "--rate",
            "60",
            "--before",
            "1s",
            "--after",
            "2s",
        ],
    );
    assert_eq!(number(&report, "/storm/resumed"), 60.0);
    assert_eq!(number(&report, "/storm/failed"), 0.0);
    assert!(number(&report, "/storm/resume_us/count") == 60.0);
    assert!(number(&report, "/publish/published") > 0.0);
    assert_eq!(number(&report, "/delivery_check/members_checked"), 60.0);
    assert_eq!(number(&report, "/delivery_check/lost"), 0.0);
    assert_eq!(number(&report, "/delivery_check/duplicates"), 0.0);
    assert_eq!(number(&report, "/connections/connected_at_end"), 60.0);
}

/// Idle connections: memory per connection is measured.
#[test]
fn a_short_idle_run_reports_memory_per_connection() {
    let report = bench(
        "idle",
        &["idle", "--connections", "200", "--settle", "500ms"],
    );
    assert_eq!(number(&report, "/connections/connected"), 200.0);
    assert_eq!(number(&report, "/gateways/0/connections"), 200.0);
    assert!(number(&report, "/gateways/0/rss_kib") > 0.0);
    assert!(number(&report, "/rss_per_connection_bytes") > 0.0);
}

/// The floor: every byte written reaches the reader, and both sides' CPU is read.
#[test]
fn a_short_floor_run_delivers_every_byte_and_reports_cpu_per_write() {
    let report = run_tool(
        "floor",
        &[
            "floor",
            "--sockets",
            "50",
            "--rounds",
            "20",
            "--bytes",
            "100",
            "--pause",
            "1ms",
        ],
    );
    assert_eq!(number(&report, "/writes"), 1000.0);
    assert_eq!(number(&report, "/bytes_received"), 100_000.0);
    assert!(number(&report, "/writer_cpu_secs") >= 0.0);
    assert!(number(&report, "/reader_cpu_secs") >= 0.0);
    let per_write = number(&report, "/writer_cpu_us_per_write");
    assert!(
        per_write.is_finite() && per_write >= 0.0,
        "CPU per write {per_write}"
    );
}

/// Control between replicas: cancels are timed, and the Redis operations of idle
/// replicas and of turns are counted (a turn appends at least its message, start, end
/// and answer).
#[test]
fn a_short_control_run_cancels_every_turn_and_counts_redis_operations() {
    let report = bench(
        "control",
        &[
            "control",
            "--samples",
            "3",
            "--turns",
            "2",
            "--idle",
            "1s",
            "--cancel-spread",
            "0ms",
        ],
    );
    // A turn that finished before its cancel arrived (a very slow machine) is counted
    // as missed, not timed.
    let timed = number(&report, "/cancel_ms/samples");
    assert_eq!(timed + number(&report, "/cancel_ms/missed"), 3.0);
    assert!(timed >= 1.0, "no cancel was timed: {report:#}");
    assert!(number(&report, "/cancel_ms/max") >= number(&report, "/cancel_ms/p50"));
    assert!(
        number(
            &report,
            "/redis/per_turn/by_operation/append stream:session"
        ) >= 4.0
    );
    assert!(number(&report, "/redis/idle_one_replica_per_sec/round_trips") > 0.0);
}

/// Soak: visitors churn over two replicas on Redis; every quiet checkpoint is read
/// (RSS, descriptors, live tasks from `/metrics`) and judged, and the run passes.
#[test]
fn a_short_soak_judges_every_gateway_and_finds_no_growth() {
    let report = bench(
        "soak",
        &[
            "soak",
            "--duration",
            "14s",
            // Past the first seconds, when the store's pool opens its connections.
            "--warmup",
            "4s",
            "--checkpoint-every",
            "2s",
            "--sample-every",
            "1s",
            "--settle",
            "500ms",
            "--visitors",
            "4",
            "--rate",
            "10",
        ],
    );
    assert!(number(&report, "/traffic/visits") > 0.0, "{report:#}");
    assert_eq!(number(&report, "/traffic/errors"), 0.0);
    assert!(number(&report, "/traffic/lobby_events_received") > 0.0);
    assert_eq!(report["verdict"]["passed"], true, "{report:#}");
    let judgements = report["verdict"]["judgements"].as_array().unwrap();
    // 2 gateways × RSS, fds, tasks, subscriptions, connections.
    assert_eq!(judgements.len(), 10, "{report:#}");
    let quiet: Vec<&Value> = report["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["phase"] == "quiet")
        .collect();
    assert!(quiet.len() >= 5, "{report:#}");
    for sample in quiet {
        assert!(sample["tasks_alive"].as_u64().unwrap() > 0, "{sample}");
        assert!(sample["fds"].as_u64().unwrap() > 0, "{sample}");
        assert_eq!(sample["connections"], 0, "{sample}");
    }
}
