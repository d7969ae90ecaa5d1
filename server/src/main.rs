//! The `switchboard` binary.

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches};
use switchboard::cli::{Cli, Command};
use switchboard::config::{
    BackplaneChoice, CommandLineError, Fingerprint, ServeConfig, parse_command_line,
};
use switchboard::http::lingering_close::LingeringListener;
use switchboard::shutdown::TerminationSignal;
use switchboard::{AppState, app, telemetry};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How long `main` waits for sockets to send their close frames after closing.
const SOCKETS_EXIT_PATIENCE: Duration = Duration::from_secs(10);

fn main() -> std::process::ExitCode {
    match run_command() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line (with its causes), not a Debug dump with a backtrace.
            eprintln!("switchboard: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_command() -> anyhow::Result<()> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let line = match parse_command_line(Cli::command(), &args) {
        Ok(line) => line,
        Err(CommandLineError::Clap(e)) => e.exit(),
        Err(CommandLineError::SettingsFile(e)) => {
            eprintln!("switchboard: {e}");
            std::process::exit(2);
        }
    };
    let cli = Cli::from_arg_matches(&line.matches).unwrap_or_else(|e| e.exit());
    match cli.into_command() {
        Command::Serve(config) => {
            let fingerprint = match line.serve() {
                Some(Ok((_, fingerprint))) => fingerprint,
                _ => Fingerprint::default(),
            };
            serve(*config, Booted { args, fingerprint })
        }
        Command::Publish(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(switchboard::cli::publish::run(*args)),
    }
}

fn log_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

fn init_logging(format: &str) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// What a reload re-reads: the argv the gateway booted from, and the fingerprint of
/// the configuration it runs.
struct Booted {
    args: Vec<OsString>,
    fingerprint: Fingerprint,
}

/// Logs as [`init_logging`], plus the layer that exports spans; the spans meant for
/// export stay out of the logs.
fn init_logging_and_traces(
    format: &str,
    traces: impl Layer<Registry> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let filter = log_filter().add_directive(
        format!("{}=off", telemetry::TARGET)
            .parse()
            .context("cannot build the log filter")?,
    );
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = if format == "json" {
        logs.json().with_filter(filter).boxed()
    } else {
        logs.with_filter(filter).boxed()
    };
    tracing_subscriber::registry()
        .with(vec![logs, traces.boxed()])
        .try_init()
        .context("cannot install the log and trace subscriber")
}

fn serve(config: ServeConfig, booted: Booted) -> anyhow::Result<()> {
    let backplane = match config.validate() {
        Ok(choice) => choice,
        Err(e) => {
            eprintln!("switchboard: {e}");
            std::process::exit(2);
        }
    };
    let mut config = config;
    // One name for the replica in its spans' resource and everywhere else.
    let server_id = config.resolved_server_id();
    config.server_id = Some(server_id.clone());
    let exporter = match telemetry::install::<Registry>(&config.traces, &server_id)? {
        Some((layer, exporter)) => {
            init_logging_and_traces(&config.log_format, layer)?;
            Some(exporter)
        }
        None => {
            init_logging(&config.log_format);
            None
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(run(config, backplane, booted));
    // After the drain: the spans of the last turns and connections go out too.
    if let Some(exporter) = exporter {
        exporter.shutdown();
    }
    outcome
}

async fn run(
    config: ServeConfig,
    backplane: BackplaneChoice,
    booted: Booted,
) -> anyhow::Result<()> {
    let bind = config.bind;
    let drain_grace = config.drain_grace;
    let mut fingerprint = booted.fingerprint;
    switchboard::reload::add_file_contents(&config, &mut fingerprint);
    let state = AppState::build(config, backplane).await?;
    state
        .reloading
        .install(Cli::command, booted.args, fingerprint);
    let reloads = switchboard::reload::signal::spawn_reload_on_sighup(state.clone());
    // Before the port is announced: from then on SIGTERM means drain.
    let termination =
        TerminationSignal::listen().context("cannot listen for SIGTERM and Ctrl-C")?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("--bind (SWITCHBOARD_BIND): cannot listen on {bind}"))?;
    let local = listener
        .local_addr()
        .context("cannot read the bound address")?;
    tracing::info!(
        address = %local,
        server_id = %state.server_id,
        backplane = state.backplane.name(),
        "switchboard listening"
    );
    // The one line on stdout: tools and tests read the chosen port from it.
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{local}").context("cannot write to stdout")?;
        stdout.flush().context("cannot write to stdout")?;
    }

    let sweeper = tokio::spawn(switchboard::connection::heartbeat::sweep(state.clone()));
    let shutdown = state.shutdown.clone();
    let server = {
        let router = app(state.clone())?;
        let listener = LingeringListener::new(listener);
        tokio::spawn(switchboard::http::listener::serve(
            listener,
            router,
            state.clone(),
        ))
    };

    termination.received().await;
    // Draining: /ready 503, goaway + 1012 to every open socket, no new work.
    shutdown.start_drain();
    tracing::info!(
        turns = state.turns.busy_sessions(),
        "draining: finishing turns in flight"
    );
    state.turns.drain(drain_grace).await;
    // Let the turns' last events reach sockets before `goaway` is queued behind them.
    state.registry.settle(Duration::from_secs(2)).await;
    // Everything the turns appended is in the transcript before the process ends.
    if !state.transcripts.flush(Duration::from_secs(5)).await {
        tracing::warn!("some transcript entries were not written in time");
    }
    // Closing: the stragglers that connected during the drain leave too.
    shutdown.close();
    state.tracker.close();
    if tokio::time::timeout(SOCKETS_EXIT_PATIENCE, state.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some sockets did not close in time");
    }
    sweeper.abort();
    reloads.abort();
    // The others stop counting this replica's members at their next beat.
    state.presence.stop().await;
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed"),
        Err(_) => tracing::warn!("HTTP server did not stop in time"),
    }
    tracing::info!("drained; bye");
    Ok(())
}
