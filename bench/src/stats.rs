//! Latency histograms (HDR) and what the gateway processes cost (RSS, CPU seconds),
//! read from `/proc`.

use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest value a histogram records, in its unit (µs: ten minutes). Larger values
/// are clamped, so a stuck event still shows up as the maximum.
const HISTOGRAM_MAX: u64 = 600_000_000;

/// A histogram of microseconds with 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, HISTOGRAM_MAX, 3) {
        Ok(histogram) => histogram,
        // Constant, valid bounds: this cannot happen at run time.
        Err(e) => panic!("histogram bounds: {e:?}"),
    }
}

/// Record `value`, clamped into the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, value: u64) {
    let _ = histogram.record(value.clamp(1, HISTOGRAM_MAX));
}

/// A histogram as it travels from a worker to the coordinator: `(value, count)` pairs.
pub type Recorded = Vec<(u64, u64)>;

pub fn export(histogram: &Histogram<u64>) -> Recorded {
    histogram
        .iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

pub fn import(histogram: &mut Histogram<u64>, recorded: &Recorded) {
    for &(value, count) in recorded {
        let _ = histogram.record_n(value.clamp(1, HISTOGRAM_MAX), count);
    }
}

/// The quantiles a report lists for charts (a percentile spectrum).
const SPECTRUM: [f64; 16] = [
    0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999, 0.99999,
    1.0,
];

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    /// `[quantile, value]` pairs for charts.
    pub spectrum: Vec<(f64, u64)>,
}

impl LatencySummary {
    pub fn of(histogram: &Histogram<u64>) -> LatencySummary {
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: histogram.len(),
            min: histogram.min(),
            p50: histogram.value_at_quantile(0.5),
            p90: histogram.value_at_quantile(0.9),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: histogram.mean(),
            spectrum: SPECTRUM
                .iter()
                .map(|&q| (q, histogram.value_at_quantile(q)))
                .collect(),
        }
    }
}

/// One reading of a process's resident memory and CPU time.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ProcessSample {
    pub rss_kib: u64,
    /// User + system CPU seconds since the process started.
    pub cpu_secs: f64,
    /// Of those, in the kernel (on loopback this includes the TCP receive path of
    /// the peer: a socket write runs it in the writer's context).
    pub system_secs: f64,
}

/// Read `/proc/<pid>/status` (VmRSS) and `/proc/<pid>/stat` (utime + stime).
pub fn sample_process(pid: u32) -> anyhow::Result<ProcessSample> {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let status = std::fs::read_to_string(proc_dir.join("status"))
        .with_context(|| format!("process {pid} is gone (reading /proc/{pid}/status)"))?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))?;
    let stat = std::fs::read_to_string(proc_dir.join("stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its ')' are fixed:
    // state is field 3, utime field 14, stime field 15.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index - 3)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("field {index} of /proc/{pid}/stat"))
    };
    let system_ticks = ticks(15)?;
    let total_ticks = ticks(14)? + system_ticks;
    let per_second = rustix::param::clock_ticks_per_second() as f64;
    Ok(ProcessSample {
        rss_kib,
        cpu_secs: total_ticks as f64 / per_second,
        system_secs: system_ticks as f64 / per_second,
    })
}

/// The machine, for the report: where the figures came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_total_kib: u64,
    pub open_files_limit: String,
    pub loadavg_before: String,
    pub loadavg_after: String,
}

impl Machine {
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_total_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let open_files_limit = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .map(|l| {
                let parts: Vec<&str> = l.split_whitespace().collect();
                // "Max open files  <soft>  <hard>  files"
                format!(
                    "soft {} / hard {}",
                    parts.get(3).unwrap_or(&"?"),
                    parts.get(4).unwrap_or(&"?")
                )
            })
            .unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            memory_total_kib,
            open_files_limit,
            loadavg_before: loadavg(),
            loadavg_after: String::new(),
        }
    }
}

/// `/proc/loadavg`'s three load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Nanoseconds since the Unix epoch (the wall clock every process on this machine
/// shares, so a publisher's and a receiver's readings compare).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_survives_export_and_import() {
        let mut original = new_histogram();
        for v in [10, 20, 30, 1000, 250_000] {
            record(&mut original, v);
        }
        let mut copy = new_histogram();
        import(&mut copy, &export(&original));
        assert_eq!(copy.len(), 5);
        assert_eq!(copy.value_at_quantile(0.5), original.value_at_quantile(0.5));
        assert_eq!(copy.max(), original.max());
    }

    #[test]
    fn this_process_has_memory_and_cpu() {
        let sample = sample_process(std::process::id()).unwrap();
        assert!(sample.rss_kib > 0);
        assert!(sample.cpu_secs >= 0.0);
    }
}
