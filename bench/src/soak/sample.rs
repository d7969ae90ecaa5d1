//! One reading of a gateway: resident memory and CPU (`/proc/<pid>/status`, `stat`),
//! open file descriptors (the entries of `/proc/<pid>/fd`), and, from its `/metrics`,
//! live tokio tasks, open WebSocket connections and backplane subscriptions.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::stats::sample_process;

/// Whether the load was running when a sample was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Under load: for the chart.
    Load,
    /// A quiet checkpoint (load paused, in-flight work settled): for the verdict.
    Quiet,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the load started.
    pub t: f64,
    pub phase: Phase,
    pub gateway: usize,
    pub rss_kib: u64,
    pub fds: u64,
    /// `switchboard_tokio_tasks_alive`; absent from a gateway that predates it.
    pub tasks_alive: Option<u64>,
    pub connections: Option<u64>,
    pub streams_subscribed: Option<u64>,
    pub cpu_secs: f64,
}

/// Read gateway `index` (pid `pid`, metrics at `metrics_url`).
pub async fn take(
    http: &reqwest::Client,
    index: usize,
    pid: u32,
    metrics_url: &str,
    t: f64,
    phase: Phase,
) -> anyhow::Result<Sample> {
    // Descriptors first: the scrape below opens a connection of its own.
    let fds = open_fds(pid)?;
    let process = sample_process(pid)?;
    let text = http
        .get(metrics_url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("GET {metrics_url}"))?
        .text()
        .await?;
    Ok(Sample {
        t,
        phase,
        gateway: index,
        rss_kib: process.rss_kib,
        fds,
        tasks_alive: gauge(&text, "switchboard_tokio_tasks_alive"),
        connections: gauge(&text, "switchboard_connections"),
        streams_subscribed: gauge(&text, "switchboard_streams_subscribed"),
        cpu_secs: process.cpu_secs,
    })
}

/// Open descriptors of `pid`: sockets, files, pipes, epoll and event fds.
pub fn open_fds(pid: u32) -> anyhow::Result<u64> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("reading /proc/{pid}/fd"))?;
    Ok(entries.count() as u64)
}

/// The value of an unlabelled gauge in Prometheus text (`name value` on one line).
fn gauge(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse::<f64>().ok())
        .map(|value| value.max(0.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_unlabelled_gauges_and_skips_comments_and_longer_names() {
        let text = "# HELP switchboard_connections Open WebSocket connections\n\
                    # TYPE switchboard_connections gauge\n\
                    switchboard_connections_total 9\n\
                    switchboard_connections 3\n\
                    switchboard_tokio_tasks_alive 57\n";
        assert_eq!(gauge(text, "switchboard_connections"), Some(3));
        assert_eq!(gauge(text, "switchboard_tokio_tasks_alive"), Some(57));
        assert_eq!(gauge(text, "switchboard_streams_subscribed"), None);
    }

    #[test]
    fn this_process_has_open_descriptors() {
        assert!(open_fds(std::process::id()).unwrap() >= 3);
    }
}
