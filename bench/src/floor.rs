//! The machine's floor for fan-out: what one small write to each of many loopback TCP
//! sockets costs the writing process, with no WebSocket, no runtime and no gateway.
//!
//! A gateway delivering an event to a socket makes at least one such write, so no
//! gateway on this machine can deliver for less CPU per event than this reports (short
//! of putting several events in one write). The sender is this process, on one
//! thread, with blocking `write(2)`s; the receiver is a child process (`floor-sink`)
//! that reads every socket, and reports its own CPU.
//!
//! ```text
//!  floor (this process)                    floor-sink (child process)
//!   listen 127.0.0.1:0  ◄──── N connects ── connect N sockets from 127.0.0.1
//!   rounds × (one write to each socket,     one task per socket, reads to EOF
//!             then a pause)                 then prints its CPU as one JSON line
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::stats::{Machine, sample_process};

/// What a `floor` run measured.
#[derive(Debug, Serialize)]
pub struct FloorReport {
    pub scenario: &'static str,
    pub label: String,
    pub machine: Machine,
    pub sockets: usize,
    pub rounds: usize,
    pub bytes_per_write: usize,
    pub pause_ms: u64,
    pub writes: u64,
    pub wall_secs: f64,
    /// The writer's user + system CPU over the rounds.
    pub writer_cpu_secs: f64,
    pub writer_system_secs: f64,
    /// Writer CPU per write, in microseconds: CPU-seconds per million writes.
    pub writer_cpu_us_per_write: f64,
    /// The reader's CPU from its first byte to its last.
    pub reader_cpu_secs: f64,
    pub reader_cpu_us_per_write: f64,
    pub bytes_received: u64,
}

impl FloorReport {
    pub fn table(&self) -> String {
        format!(
            "== switchboard-bench floor {label}\n\
             \x20 machine                      {cpus} × {model}, kernel {kernel}, load {before} → {after}\n\
             \x20 writes                       {writes} of {bytes} B: {rounds} rounds over {sockets} sockets, {pause} ms apart, in {wall:.2} s\n\
             \x20 writer CPU                   {wcpu:.3} s ({wsys:.3} s system) = {wus:.2} CPU-µs per write = {wus:.2} CPU-s per million\n\
             \x20 reader CPU                   {rcpu:.3} s = {rus:.2} CPU-µs per write\n\
             \x20 received                     {received} of {sent} bytes\n",
            label = self.label,
            cpus = self.machine.cpus,
            model = self.machine.cpu_model,
            kernel = self.machine.kernel,
            before = self.machine.loadavg_before,
            after = self.machine.loadavg_after,
            writes = self.writes,
            bytes = self.bytes_per_write,
            rounds = self.rounds,
            sockets = self.sockets,
            pause = self.pause_ms,
            wall = self.wall_secs,
            wcpu = self.writer_cpu_secs,
            wsys = self.writer_system_secs,
            wus = self.writer_cpu_us_per_write,
            rcpu = self.reader_cpu_secs,
            rus = self.reader_cpu_us_per_write,
            received = self.bytes_received,
            sent = self.writes * self.bytes_per_write as u64,
        )
    }
}

/// Parameters of a `floor` run.
pub struct FloorParams<'a> {
    pub sockets: usize,
    pub rounds: usize,
    pub bytes: usize,
    pub pause: Duration,
    pub max_runtime: Duration,
    pub label: &'a str,
    pub json: Option<&'a Path>,
}

/// The reader's one line on stdout.
#[derive(Debug, Serialize, Deserialize)]
struct SinkReport {
    bytes: u64,
    cpu_secs: f64,
}

/// Run the writer side and report.
pub fn run(params: &FloorParams<'_>) -> anyhow::Result<()> {
    if params.sockets == 0 || params.rounds == 0 || params.bytes == 0 {
        bail!("--sockets, --rounds and --bytes must be at least 1");
    }
    let started = Instant::now();
    let mut machine = Machine::describe();
    let listener = TcpListener::bind("127.0.0.1:0").context("listen on 127.0.0.1")?;
    let addr = listener.local_addr()?;
    let mut sink = Command::new(std::env::current_exe()?)
        .args(["floor-sink", "--connect", &addr.to_string()])
        .args(["--sockets", &params.sockets.to_string()])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .context("starting the floor-sink process")?;
    let outcome = write_rounds(&listener, params, started);
    let Ok((writer, wall, writes)) = outcome else {
        let _ = sink.kill();
        let _ = sink.wait();
        return outcome.map(|_| ());
    };
    let stdout = sink.stdout.take().context("floor-sink stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let status = sink.wait()?;
    if !status.success() {
        bail!("floor-sink failed: {status}");
    }
    let reader: SinkReport =
        serde_json::from_str(line.trim()).with_context(|| format!("floor-sink said {line:?}"))?;
    let report = FloorReport {
        scenario: "floor",
        label: params.label.to_string(),
        machine: {
            machine.loadavg_after = crate::stats::loadavg();
            machine
        },
        sockets: params.sockets,
        rounds: params.rounds,
        bytes_per_write: params.bytes,
        pause_ms: params.pause.as_millis() as u64,
        writes,
        wall_secs: wall.as_secs_f64(),
        writer_cpu_secs: writer.0,
        writer_system_secs: writer.1,
        writer_cpu_us_per_write: writer.0 / writes as f64 * 1e6,
        reader_cpu_secs: reader.cpu_secs,
        reader_cpu_us_per_write: reader.cpu_secs / writes as f64 * 1e6,
        bytes_received: reader.bytes,
    };
    print!("{}", report.table());
    if let Some(path) = params.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("  report                       {}", path.display());
    }
    if report.bytes_received != writes * params.bytes as u64 {
        bail!(
            "the reader got {} bytes of {}",
            report.bytes_received,
            writes * params.bytes as u64
        );
    }
    Ok(())
}

/// Accept every socket, then write the rounds; the writer's (CPU, system CPU) over
/// the rounds, the wall time and the writes made.
fn write_rounds(
    listener: &TcpListener,
    params: &FloorParams<'_>,
    started: Instant,
) -> anyhow::Result<((f64, f64), Duration, u64)> {
    listener.set_nonblocking(true)?;
    let mut sockets = Vec::with_capacity(params.sockets);
    while sockets.len() < params.sockets {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                // As the gateway does: each write goes out at once.
                stream.set_nodelay(true)?;
                sockets.push(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if started.elapsed() > params.max_runtime {
                    bail!(
                        "only {} of {} sockets connected",
                        sockets.len(),
                        params.sockets
                    );
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e).context("accept"),
        }
    }
    let payload = vec![b'x'; params.bytes];
    let me = std::process::id();
    let before = sample_process(me)?;
    let start = Instant::now();
    let mut writes = 0u64;
    for _ in 0..params.rounds {
        for socket in &mut sockets {
            socket.write_all(&payload).context("write")?;
            writes += 1;
        }
        if started.elapsed() > params.max_runtime {
            bail!("the run exceeded --max-runtime {:?}", params.max_runtime);
        }
        std::thread::sleep(params.pause);
    }
    let wall = start.elapsed();
    let after = sample_process(me)?;
    drop(sockets);
    Ok((
        (
            after.cpu_secs - before.cpu_secs,
            after.system_secs - before.system_secs,
        ),
        wall,
        writes,
    ))
}

/// The reader: connect `sockets` sockets to `connect`, read each to its end, then print
/// the bytes read and this process's CPU from the first byte on.
pub fn sink(connect: SocketAddr, sockets: usize) -> anyhow::Result<()> {
    if !connect.ip().is_loopback() {
        bail!("floor-sink only connects to loopback addresses");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (bytes, cpu_secs) = runtime.block_on(async move {
        use tokio::io::AsyncReadExt;
        let mut streams = Vec::with_capacity(sockets);
        for _ in 0..sockets {
            streams.push(tokio::net::TcpStream::connect(connect).await?);
        }
        let first_byte = std::sync::Arc::new(tokio::sync::Notify::new());
        let mut readers = tokio::task::JoinSet::new();
        for mut stream in streams {
            let first_byte = first_byte.clone();
            readers.spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut total = 0u64;
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return total,
                        Ok(n) => {
                            if total == 0 {
                                first_byte.notify_one();
                            }
                            total += n as u64;
                        }
                    }
                }
            });
        }
        first_byte.notified().await;
        let before = sample_process(std::process::id())?;
        let mut bytes = 0;
        while let Some(read) = readers.join_next().await {
            bytes += read.unwrap_or(0);
        }
        let after = sample_process(std::process::id())?;
        anyhow::Ok((bytes, after.cpu_secs - before.cpu_secs))
    })?;
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, &SinkReport { bytes, cpu_secs })?;
    writeln!(stdout)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_the_cost_per_write() {
        let report = FloorReport {
            scenario: "floor",
            label: String::new(),
            machine: Machine::describe(),
            sockets: 2,
            rounds: 3,
            bytes_per_write: 120,
            pause_ms: 10,
            writes: 6,
            wall_secs: 0.1,
            writer_cpu_secs: 0.000_06,
            writer_system_secs: 0.000_05,
            writer_cpu_us_per_write: 10.0,
            reader_cpu_secs: 0.000_03,
            reader_cpu_us_per_write: 5.0,
            bytes_received: 720,
        };
        let table = report.table();
        assert!(table.contains("10.00 CPU-µs per write"), "{table}");
        assert!(table.contains("5.00 CPU-µs per write"), "{table}");
        assert!(table.contains("720 of 720 bytes"), "{table}");
    }
}
