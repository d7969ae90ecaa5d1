//! The Node.js client shape (`fanout --client node`): one `node` process
//! (`bench/node-client/client.mjs`) holds every socket, parses every frame and
//! publishes over keep-alive HTTP itself. The coordinator starts it, follows its
//! phases on stderr (`{"phase":"ready"|"measuring"|"drained"}`, one JSON line each) to
//! sample the gateways over the measuring window, and reads its one JSON report from
//! stdout when it exits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout};

use crate::ServerKind;
use crate::stats::Recorded;

/// Where `client.mjs` lives in this source tree (the tool runs from its checkout).
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("node-client")
}

/// What the coordinator asks of the Node client.
pub struct Plan<'a> {
    pub node: &'a Path,
    pub dir: &'a Path,
    pub addr: SocketAddr,
    /// Which server `addr` is.
    pub server: ServerKind,
    pub connections: usize,
    pub sessions: usize,
    pub rate: f64,
    pub warmup: Duration,
    pub duration: Duration,
    pub drain: Duration,
    /// Keep-alive sockets of the publishing `http.Agent`.
    pub publish_sockets: usize,
    /// Publish requests in flight at most (beyond the sockets they queue in the Agent).
    pub max_in_flight: usize,
    pub connect_concurrency: usize,
    pub source_addresses: u8,
    pub publisher_key: &'a str,
    pub max_runtime: Duration,
}

/// Install the client's one dependency (`ws`, pinned by package-lock.json) when its
/// `node_modules` is missing.
pub async fn ensure_installed(dir: &Path) -> anyhow::Result<()> {
    if !dir.join("client.mjs").is_file() {
        bail!(
            "{} has no client.mjs (pass --node-client DIR)",
            dir.display()
        );
    }
    if dir.join("node_modules").join("ws").is_dir() {
        return Ok(());
    }
    eprintln!("switchboard-bench: npm ci in {}", dir.display());
    let status = tokio::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        // npm's progress must not reach our stdout (the table).
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .await
        .context("running npm ci (is npm installed?)")?;
    if !status.success() {
        bail!("npm ci in {} failed: {status}", dir.display());
    }
    Ok(())
}

/// The running client.
pub struct NodeClient {
    child: Child,
    stdout: ChildStdout,
    stderr: Lines<BufReader<ChildStderr>>,
}

fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

impl NodeClient {
    pub fn spawn(plan: &Plan<'_>) -> anyhow::Result<NodeClient> {
        let mut child = tokio::process::Command::new(plan.node)
            .arg(plan.dir.join("client.mjs"))
            .args(["--server", plan.server.name()])
            .args(["--addr", &plan.addr.to_string()])
            .args(["--connections", &plan.connections.to_string()])
            .args(["--sessions", &plan.sessions.to_string()])
            .args(["--rate", &plan.rate.to_string()])
            .args(["--warmup", &millis(plan.warmup)])
            .args(["--duration", &millis(plan.duration)])
            .args(["--drain", &millis(plan.drain)])
            .args(["--publish-sockets", &plan.publish_sockets.to_string()])
            .args(["--max-in-flight", &plan.max_in_flight.to_string()])
            .args([
                "--connect-concurrency",
                &plan.connect_concurrency.to_string(),
            ])
            .args(["--source-addresses", &plan.source_addresses.to_string()])
            .args(["--key", plan.publisher_key])
            .args(["--max-runtime", &millis(plan.max_runtime)])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "spawning {} (is Node.js 20 installed?)",
                    plan.node.display()
                )
            })?;
        let stdout = child.stdout.take().context("node stdout")?;
        let stderr = child.stderr.take().context("node stderr")?;
        Ok(NodeClient {
            child,
            stdout,
            stderr: BufReader::new(stderr).lines(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Wait for the phase line `name`, passing the client's other stderr lines on.
    pub async fn phase(&mut self, name: &str, patience: Duration) -> anyhow::Result<()> {
        #[derive(Deserialize)]
        struct Phase {
            phase: String,
        }
        let waiting = async {
            while let Some(line) = self.stderr.next_line().await? {
                match serde_json::from_str::<Phase>(&line) {
                    Ok(p) if p.phase == name => return Ok(()),
                    Ok(_) => {}
                    Err(_) => eprintln!("{line}"),
                }
            }
            bail!("the Node client exited before its {name:?} phase (its stderr is above)")
        };
        tokio::time::timeout(patience, waiting)
            .await
            .with_context(|| format!("the Node client did not reach {name:?} in time"))?
    }

    /// Wait for the client to exit and read its report.
    pub async fn report(mut self, patience: Duration) -> anyhow::Result<NodeReport> {
        let mut stderr = self.stderr;
        // Whatever else it says goes to our stderr while it finishes.
        let forward = tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                eprintln!("{line}");
            }
        });
        let mut out = String::new();
        let reading = async {
            self.stdout.read_to_string(&mut out).await?;
            self.child.wait().await
        };
        let status = tokio::time::timeout(patience, reading)
            .await
            .context("the Node client did not exit in time")??;
        let _ = forward.await;
        let report: NodeReport = serde_json::from_str(out.trim())
            .with_context(|| format!("the Node client ({status}) printed {out:?}"))?;
        if let Some(why) = &report.aborted {
            bail!("the Node client stopped: {why}");
        }
        Ok(report)
    }
}

/// The Node client's report (client.mjs `Run.report`); fields it adds are ignored.
#[derive(Debug, Deserialize)]
pub struct NodeReport {
    pub node_version: String,
    pub aborted: Option<String>,
    pub connections: NodeConnections,
    pub publish: NodePublish,
    pub delivered: u64,
    pub latency_us: NodeLatency,
    pub publish_call_us: NodeLatency,
    pub errors: NodeErrors,
    pub disconnects: u64,
    pub delivery_check: crate::report::DeliveryCheck,
    pub client_process: serde_json::Value,
}

#[derive(Debug, Deserialize)]
pub struct NodeConnections {
    pub connected: u64,
    pub failed: u64,
    pub connected_at_end: u64,
}

#[derive(Debug, Deserialize)]
pub struct NodePublish {
    pub published: u64,
    pub errors: u64,
    pub elapsed_secs: f64,
    pub achieved_rate: f64,
    pub max_lag_ms: f64,
}

/// A histogram as `[value, count]` pairs, laid out as the tool's own HDR histograms.
#[derive(Debug, Deserialize)]
pub struct NodeLatency {
    pub recorded: Recorded,
}

#[derive(Debug, Deserialize)]
pub struct NodeErrors {
    pub connect: u64,
    pub error_frames: u64,
    pub first: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_report_client_mjs_prints() {
        let text = r#"{"client":"node","server":"switchboard","node_version":"v20.20.2","aborted":null,
          "params":{"connections":2},
          "connections":{"target":2,"connected":2,"failed":0,"connected_at_end":2,"sessions":1},
          "publish":{"published":3,"warmup_published":1,"errors":0,"elapsed_secs":1.5,"achieved_rate":2,"max_lag_ms":0.2},
          "window_secs":1.6,"delivered":6,"delivered_per_sec":4,
          "latency_us":{"count":6,"min":100,"p50":120,"p90":130,"p99":130,"p999":130,"max":130,"mean":120,"recorded":[[100,2],[120,3],[130,1]]},
          "publish_call_us":{"count":3,"min":50,"p50":60,"p90":70,"p99":70,"p999":70,"max":70,"mean":60,"recorded":[[50,1],[60,1],[70,1]]},
          "errors":{"connect":0,"error_frames":0,"publish":0,"first":null},"disconnects":0,
          "delivery_check":{"members_checked":2,"members_short":0,"lost":0,"duplicates":0},
          "client_process":{"cpu_secs":0.5}}"#;
        let report: NodeReport = serde_json::from_str(text).unwrap();
        assert_eq!(report.delivered, 6);
        assert_eq!(report.latency_us.recorded.len(), 3);
        assert_eq!(report.publish.published, 3);
        assert_eq!(report.delivery_check.members_checked, 2);
    }
}
