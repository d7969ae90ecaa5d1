//! `soak`: a long run of ordinary traffic over Redis, watching whether the gateways'
//! resident memory, open file descriptors, live tokio tasks or backplane subscriptions
//! grow. It fails (non-zero exit) when any of them does after warm-up.
//!
//! - **Traffic.** `--visitors` loops of [`visit::visit`] — connect (to each replica in
//!   turn), create a session, join a shared lobby, one agent turn, one HTTP publish,
//!   go — with `--think` between visits, while a publisher posts `--rate` events per
//!   second into the lobbies over HTTP. The replicas share a `redis-server` the tool
//!   starts; every session is created on one replica and published into through another.
//! - **Samples.** Every `--sample-every`, under load, for the chart. Every
//!   `--checkpoint-every` the load pauses (visits in flight finish, no new ones start),
//!   `--settle` passes, and a quiet checkpoint is taken: what the gateway holds with
//!   nothing to do. The verdict reads only those ([`growth`]).
//! - **Output.** A table on stdout, and with `--json` every sample, the traffic's
//!   totals and the verdict; `bench/charts.py` draws it.

mod growth;
mod run;
mod sample;
mod visit;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

pub use self::growth::Tolerance;

pub struct Params<'a> {
    pub gateway_binary: Option<&'a Path>,
    pub replicas: usize,
    pub gateway_args: &'a [String],
    pub visitors: usize,
    pub think: Duration,
    pub rate: f64,
    pub lobbies: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub sample_every: Duration,
    pub checkpoint_every: Duration,
    pub settle: Duration,
    pub agent_delay: Duration,
    pub source_addresses: u8,
    pub max_errors: u64,
    pub rss_tolerance: Tolerance,
    pub max_runtime: Duration,
    pub json: Option<&'a Path>,
    pub label: &'a str,
}

/// How much each checked figure may differ between the first and last third of the
/// quiet checkpoints. Memory: allocator pools and caches settle in steps, so 8 MiB or
/// 10% (`--rss-tolerance-mib`, `--rss-tolerance-percent`). Descriptors, tasks and
/// subscriptions are counts that return exactly to their level when nothing is going
/// on; the small allowance is for a background job (a sweep, a heartbeat) caught
/// running at a checkpoint.
const FDS: Tolerance = Tolerance {
    absolute: 2.0,
    relative: 0.0,
};
const TASKS: Tolerance = Tolerance {
    absolute: 4.0,
    relative: 0.0,
};
const STREAMS: Tolerance = Tolerance {
    absolute: 1.0,
    relative: 0.0,
};

pub fn run(params: &Params) -> anyhow::Result<()> {
    if params.replicas == 0 || params.visitors == 0 || params.lobbies == 0 {
        anyhow::bail!("--replicas, --visitors and --lobbies must be at least 1");
    }
    if params.warmup >= params.duration {
        anyhow::bail!("--warmup must be shorter than --duration");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let scratch = std::env::temp_dir().join(format!(
        "switchboard-bench-soak-{}-{}",
        std::process::id(),
        crate::stats::now_ns() % 1_000_000_000
    ));
    std::fs::create_dir_all(&scratch)?;
    let outcome = runtime.block_on(async {
        tokio::time::timeout(params.max_runtime, run::soak(params, &scratch))
            .await
            .unwrap_or_else(|_| {
                anyhow::bail!("the run exceeded --max-runtime {:?}", params.max_runtime)
            })
    });
    let report = outcome.map_err(|e| e.context(format!("logs kept in {}", scratch.display())))?;
    let _ = std::fs::remove_dir_all(&scratch);
    print!("{}", table(&report));
    if let Some(path) = params.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("  report                       {}", path.display());
    }
    verdict(&report, params.max_errors)
}

/// Fail on growth, on more traffic errors than allowed, or on no verdict at all.
fn verdict(report: &Value, max_errors: u64) -> anyhow::Result<()> {
    let errors = report["traffic"]["errors"].as_u64().unwrap_or(0);
    let grown: Vec<String> = report["verdict"]["judgements"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| j["grew"] == true)
        .map(|j| {
            format!(
                "gateway {} {}: {} → {} (+{}, allowed +{})",
                j["gateway"],
                j["metric"].as_str().unwrap_or("?"),
                j["first_third_median"],
                j["last_third_median"],
                j["growth"],
                j["allowed"]
            )
        })
        .collect();
    if !grown.is_empty() {
        anyhow::bail!(
            "growth after warm-up (median of the last third of quiet checkpoints against the first):\n  {}",
            grown.join("\n  ")
        );
    }
    if errors > max_errors {
        anyhow::bail!(
            "{errors} visits or publishes failed (--max-errors {max_errors}); first: {}",
            report["traffic"]["first_errors"]
        );
    }
    if report["verdict"]["judgements"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        anyhow::bail!(
            "too few quiet checkpoints after warm-up for a verdict (3 needed): lengthen --duration or shorten --checkpoint-every"
        );
    }
    Ok(())
}

fn table(report: &Value) -> String {
    let traffic = &report["traffic"];
    let mut out = format!(
        "== switchboard-bench soak {}\n  duration                     {:.0} s (warm-up {:.0} s), {} replicas over Redis\n  \
         visits                       {} ({:.1}/s), turns {}, publishes {}, lobby events received {}\n  \
         errors                       {}\n  load average                 {} → {}\n",
        report["label"].as_str().unwrap_or(""),
        report["params"]["duration_secs"].as_f64().unwrap_or(0.0),
        report["params"]["warmup_secs"].as_f64().unwrap_or(0.0),
        report["params"]["replicas"],
        traffic["visits"],
        traffic["visits_per_sec"].as_f64().unwrap_or(0.0),
        traffic["turns"],
        traffic["publishes"],
        traffic["lobby_events_received"],
        traffic["errors"],
        report["loadavg_before"].as_str().unwrap_or(""),
        report["loadavg_after"].as_str().unwrap_or(""),
    );
    out.push_str("  quiet checkpoints, median of the first third → last third after warm-up:\n");
    for j in report["verdict"]["judgements"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "    gateway {} {:<20} {:>10} → {:>10}  (allowed +{}) {}\n",
            j["gateway"],
            j["metric"].as_str().unwrap_or("?"),
            j["first_third_median"],
            j["last_third_median"],
            j["allowed"],
            if j["grew"] == true { "GREW" } else { "flat" }
        ));
    }
    if let Some(notes) = report["verdict"]["notes"].as_array() {
        for note in notes {
            out.push_str(&format!("    note: {}\n", note.as_str().unwrap_or("")));
        }
    }
    out
}

/// The parameters as the report records them.
fn params_json(params: &Params) -> Value {
    json!({
        "replicas": params.replicas, "visitors": params.visitors,
        "think_ms": params.think.as_millis() as u64, "rate": params.rate,
        "lobbies": params.lobbies, "duration_secs": params.duration.as_secs_f64(),
        "warmup_secs": params.warmup.as_secs_f64(),
        "sample_every_secs": params.sample_every.as_secs_f64(),
        "checkpoint_every_secs": params.checkpoint_every.as_secs_f64(),
        "settle_secs": params.settle.as_secs_f64(),
        "agent_delay_ms": params.agent_delay.as_millis() as u64,
        "source_addresses": params.source_addresses,
        "gateway_args": params.gateway_args,
        "tolerances": {
            "rss_kib": params.rss_tolerance, "fds": FDS, "tasks_alive": TASKS,
            "streams_subscribed": STREAMS,
        },
    })
}

/// Where the gateway binary is.
fn gateway_binary(params: &Params) -> anyhow::Result<PathBuf> {
    match params.gateway_binary {
        Some(path) => Ok(path.to_path_buf()),
        None => crate::processes::default_gateway_binary(),
    }
}
