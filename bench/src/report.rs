//! What a run reports: one JSON document (for charts and for the record) and the same
//! figures as a table on stdout.

use std::fmt::Write as _;

use serde::Serialize;

use crate::publisher;
use crate::stats::{LatencySummary, Machine, ProcessSample};

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    /// `switchboard`, or the peer server measured in its place (`socketioxide`).
    pub server: String,
    pub label: String,
    /// The client shape that drove the load: `rust` (worker processes and the
    /// coordinator's publisher) or `node` (one Node.js process, bench/node-client).
    pub client: String,
    /// The command line that produced this report.
    pub command: String,
    pub machine: Machine,
    pub backplane: String,
    pub replicas: usize,
    pub params: serde_json::Value,
    pub connections: Connections,
    /// Seconds between the start of measuring and the final gateway sample.
    pub window_secs: f64,
    pub publish: Option<publisher::Outcome>,
    /// Session events that reached client sockets while measuring.
    pub delivered: u64,
    pub delivered_per_sec: f64,
    /// Publish → socket (µs), live events only.
    pub latency_us: LatencySummary,
    pub turns: Option<Turns>,
    pub storm: Option<Storm>,
    pub errors: Errors,
    /// Connections the gateway closed (or that failed) unexpectedly.
    pub disconnects: u64,
    pub delivery_check: DeliveryCheck,
    pub gateways: Vec<GatewayFigures>,
    pub gateway_cpu_secs: f64,
    /// Gateway CPU seconds (all replicas) per million delivered events.
    pub cpu_secs_per_million_events: Option<f64>,
    /// Gateway resident memory per connection, averaged over the replicas (bytes).
    pub rss_per_connection_bytes: Option<f64>,
    pub backplane_server: Option<ProcessSample>,
    pub load_tool_cpu_secs: f64,
    /// What the Node client says of its own process (CPU, RSS, event-loop delay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_process: Option<serde_json::Value>,
}

#[derive(Debug, Default, Serialize)]
pub struct Connections {
    pub target: usize,
    pub connected: u64,
    pub failed: u64,
    pub workers: usize,
    pub source_addresses: u8,
    pub sessions: usize,
    pub connected_at_end: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Errors {
    pub connect: u64,
    pub error_frames: u64,
    pub publish: u64,
    pub first: Option<String>,
}

/// Whether every member received every event published to its session, once.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct DeliveryCheck {
    pub members_checked: u64,
    pub members_short: u64,
    pub lost: u64,
    pub duplicates: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Turns {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub completed_per_sec: f64,
    /// `message.send` → first `turn.delta` on the asker's socket.
    pub first_delta_us: LatencySummary,
    /// Append (`ts`, whole milliseconds) → socket for `turn.delta`: ±1 ms.
    pub delta_latency_us: LatencySummary,
    /// Transcript entries the gateways wrote to their conversation store per second
    /// of the window (`switchboard_transcript_entries_total{outcome="written"}`);
    /// `None` for a gateway without the metric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_entries_per_sec: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Storm {
    pub resumed: u64,
    pub failed: u64,
    /// From the drop until the last connection was joined again with its replay
    /// caught up.
    pub all_resumed_ms: u64,
    pub resume_us: LatencySummary,
}

#[derive(Debug, Default, Serialize)]
pub struct GatewayFigures {
    pub addr: String,
    pub pid: u32,
    pub connections: u64,
    pub rss_before_kib: u64,
    pub rss_kib: u64,
    pub rss_per_connection_bytes: Option<f64>,
    pub cpu_secs: f64,
    /// Of `cpu_secs`, in the kernel.
    pub system_secs: f64,
}

fn micros(value: u64) -> String {
    if value >= 10_000 {
        format!("{:.1} ms", value as f64 / 1000.0)
    } else {
        format!("{value} µs")
    }
}

fn latency_row(out: &mut String, name: &str, l: &LatencySummary) {
    if l.count == 0 {
        let _ = writeln!(out, "  {name:<28} (none recorded)");
        return;
    }
    let _ = writeln!(
        out,
        "  {name:<28} p50 {:>9}  p90 {:>9}  p99 {:>9}  p99.9 {:>9}  max {:>9}  (n={})",
        micros(l.p50),
        micros(l.p90),
        micros(l.p99),
        micros(l.p999),
        micros(l.max),
        l.count
    );
}

impl Report {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "== switchboard-bench {}{} {} ==",
            self.scenario,
            if self.client == "rust" {
                String::new()
            } else {
                format!(" --client {}", self.client)
            },
            if self.label.is_empty() {
                String::new()
            } else {
                format!("({})", self.label)
            }
        );
        let _ = writeln!(
            out,
            "  machine                      {} × {}, kernel {}, load {} → {}",
            self.machine.cpus,
            self.machine.cpu_model,
            self.machine.kernel,
            self.machine.loadavg_before,
            self.machine.loadavg_after
        );
        let c = &self.connections;
        let _ = writeln!(
            out,
            "  gateways                     {} × {} on {} backplane",
            self.replicas, self.server, self.backplane
        );
        let _ = writeln!(
            out,
            "  connections                  {} of {} connected ({} failed) in {} sessions, {} workers, {} source addresses",
            c.connected, c.target, c.failed, c.sessions, c.workers, c.source_addresses
        );
        let _ = writeln!(
            out,
            "  window                       {:.2} s",
            self.window_secs
        );
        if let Some(p) = &self.publish {
            let _ = writeln!(
                out,
                "  published                    {} ({:.0}/s, {} errors, worst lag {:.1} ms)",
                p.published, p.achieved_rate, p.errors, p.max_lag_ms
            );
        }
        let _ = writeln!(
            out,
            "  delivered                    {} ({:.0}/s)",
            self.delivered, self.delivered_per_sec
        );
        latency_row(&mut out, "publish → socket", &self.latency_us);
        if let Some(p) = &self.publish {
            latency_row(&mut out, "publish call (HTTP 202)", &p.call_latency_us);
        }
        if let Some(t) = &self.turns {
            let _ = writeln!(
                out,
                "  turns                        {} started, {} completed ({:.1}/s), {} failed",
                t.started, t.completed, t.completed_per_sec, t.failed
            );
            latency_row(&mut out, "send → first delta", &t.first_delta_us);
            latency_row(
                &mut out,
                "delta append → socket (±1ms)",
                &t.delta_latency_us,
            );
            if let Some(rate) = t.store_entries_per_sec {
                let _ = writeln!(
                    out,
                    "  store writes                 {rate:.0} transcript entries/s"
                );
            }
        }
        if let Some(s) = &self.storm {
            let _ = writeln!(
                out,
                "  storm                        {} resumed, {} failed, all resumed in {} ms",
                s.resumed, s.failed, s.all_resumed_ms
            );
            latency_row(&mut out, "drop → resumed", &s.resume_us);
        }
        let d = &self.delivery_check;
        let _ = writeln!(
            out,
            "  delivery check               {} members checked: {} lost, {} duplicates ({} members short)",
            d.members_checked, d.lost, d.duplicates, d.members_short
        );
        let _ = writeln!(
            out,
            "  errors                       {} connect, {} error frames, {} publish; {} disconnects{}",
            self.errors.connect,
            self.errors.error_frames,
            self.errors.publish,
            self.disconnects,
            self.errors
                .first
                .as_ref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
        for g in &self.gateways {
            let _ = writeln!(
                out,
                "  gateway {:<20} pid {:<7} {:>6} conns  RSS {:>8} KiB (from {} KiB){}  CPU {:.2} s ({:.2} s system)",
                g.addr,
                g.pid,
                g.connections,
                g.rss_kib,
                g.rss_before_kib,
                g.rss_per_connection_bytes
                    .map(|b| format!(", {:.0} B/conn", b))
                    .unwrap_or_default(),
                g.cpu_secs,
                g.system_secs
            );
        }
        if let Some(b) = &self.backplane_server {
            let _ = writeln!(
                out,
                "  backplane server             RSS {} KiB, CPU {:.2} s",
                b.rss_kib, b.cpu_secs
            );
        }
        let _ = writeln!(
            out,
            "  gateway CPU                  {:.2} s{}",
            self.gateway_cpu_secs,
            self.cpu_secs_per_million_events
                .map(|c| format!(" = {c:.2} CPU-s per million delivered events"))
                .unwrap_or_default()
        );
        if let Some(b) = self.rss_per_connection_bytes {
            let _ = writeln!(
                out,
                "  memory per connection        {:.0} B ({:.2} KiB)",
                b,
                b / 1024.0
            );
        }
        let _ = writeln!(
            out,
            "  load tool CPU                {:.2} s",
            self.load_tool_cpu_secs
        );
        out
    }
}
