//! The gateway as a process: `switchboard serve --bind 127.0.0.1:0 …`, its address read
//! from the `listening on http://ADDR` line it prints first, killed on `Drop`.
//!
//! Unless the arguments or environment name `--data-dir`, each gateway keeps its SQLite
//! conversation store in a fresh data directory of its own, removed after a passing
//! test; a test that restarts a gateway on the same data passes `--data-dir` itself.
//!
//! The caller names the binary: integration tests of the server crate pass
//! `env!("CARGO_BIN_EXE_switchboard")` (cargo builds it for them); a tool finds it with
//! [`find_binary`], next to its own executable.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};

use crate::StartError;
use crate::scratch::{tail, temp_path};
use crate::wait::POLL;

/// How long the gateway may take to print its `listening on` line.
const STARTUP: Duration = Duration::from_secs(30);

/// The binary's name.
const NAME: &str = "switchboard";

/// How to start a gateway: the binary, its arguments after `serve --bind 127.0.0.1:0`,
/// its environment and where its log (stderr) goes.
#[derive(Debug, Clone)]
pub struct GatewayCommand {
    binary: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    log: Option<PathBuf>,
    keep_switchboard_env: bool,
    current_dir: Option<PathBuf>,
}

impl GatewayCommand {
    /// The gateway at `binary`, with no arguments yet.
    pub fn new(binary: impl Into<PathBuf>) -> GatewayCommand {
        GatewayCommand {
            binary: binary.into(),
            args: Vec::new(),
            env: Vec::new(),
            log: None,
            keep_switchboard_env: false,
            current_dir: None,
        }
    }

    /// Run in `dir`, as a person would from a checkout: relative paths (the default
    /// `./data`) are under it, and no data directory is made for the gateway.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> GatewayCommand {
        self.current_dir = Some(dir.into());
        self
    }

    /// More arguments.
    pub fn args<I, S>(mut self, args: I) -> GatewayCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// An environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> GatewayCommand {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Write the log to `path` and leave it there. Without this the log goes to a fresh
    /// file, removed after a passing test.
    pub fn log(mut self, path: impl Into<PathBuf>) -> GatewayCommand {
        self.log = Some(path.into());
        self
    }

    /// Pass on the `SWITCHBOARD_*` variables of the caller's environment. By default
    /// they are removed, so a gateway sees its defaults plus what [`Self::args`] and
    /// [`Self::env`] say, whatever the shell running the tests has set.
    pub fn keep_switchboard_env(mut self) -> GatewayCommand {
        self.keep_switchboard_env = true;
        self
    }

    /// Start the gateway and wait for its address. Panics when it does not start.
    pub fn start(self) -> Gateway {
        self.try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start the gateway and wait for its address, or say why it did not start.
    pub fn try_start(self) -> Result<Gateway, StartError> {
        let owns_log = self.log.is_none();
        let log = self
            .log
            .clone()
            .unwrap_or_else(|| temp_path("gateway", "log"));
        let log_file = std::fs::File::create(&log)
            .map_err(|e| StartError::io_at("create the gateway log", &log, e))?;
        let names_data_dir = self.args.iter().any(|a| {
            let a = a.to_string_lossy();
            a == "--data-dir" || a.starts_with("--data-dir=")
        }) || self.env.iter().any(|(k, _)| k == "SWITCHBOARD_DATA_DIR")
            || self.current_dir.is_some();
        let own_data = (!names_data_dir).then(|| temp_path("gateway-data", "d"));
        let mut command = command(&self.binary, self.keep_switchboard_env);
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        let mut child = command
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(
                own_data
                    .iter()
                    .flat_map(|dir| [OsStr::new("--data-dir"), dir.as_os_str()]),
            )
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| StartError::io(format!("spawn {}", self.binary.display()), e))?;
        let not_ready = |child: &mut Child, detail: String| {
            let status = child.try_wait().ok().flatten();
            let _ = child.kill();
            let _ = child.wait();
            StartError::NotReady {
                name: NAME.into(),
                detail: format!(
                    "{detail} (exit status {status:?}, args {:?}); log {}:\n{}",
                    self.args,
                    log.display(),
                    tail(&log, 60)
                ),
            }
        };
        let Some(stdout) = child.stdout.take() else {
            return Err(not_ready(&mut child, "no stdout pipe".into()));
        };
        // Read the first line on a thread (std pipes block, and the wait is bounded),
        // then keep draining stdout so a later write by the gateway never hits a closed
        // pipe.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let first = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(first);
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let line = match rx.recv_timeout(STARTUP) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => {
                return Err(not_ready(
                    &mut child,
                    format!("reading its stdout failed: {e}"),
                ));
            }
            Err(_) => {
                return Err(not_ready(
                    &mut child,
                    format!("no `listening on …` line within {STARTUP:?}"),
                ));
            }
        };
        let listening = line.trim();
        let Some(addr) = listening
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse::<SocketAddr>().ok())
        else {
            return Err(not_ready(
                &mut child,
                format!(
                    "expected the first stdout line to be `listening on http://ADDR`, \
                     got {listening:?}"
                ),
            ));
        };
        Ok(Gateway {
            addr,
            addr_text: addr.to_string(),
            child: Some(child),
            log,
            owns_log,
            own_data,
            exit: None,
        })
    }
}

/// A running gateway, killed on `Drop`. The last lines of its log are printed when a
/// test panics while it is alive.
pub struct Gateway {
    addr: SocketAddr,
    /// `addr` as text, for callers that take `&str`.
    addr_text: String,
    child: Option<Child>,
    log: PathBuf,
    owns_log: bool,
    /// The data directory made for this gateway, removed after a passing test.
    own_data: Option<PathBuf>,
    exit: Option<ExitStatus>,
}

impl Gateway {
    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> &str {
        &self.addr_text
    }

    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/ws`
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// `http://127.0.0.1:PORT`
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The gateway's resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib_of(self.pid())
    }

    /// Send SIGTERM (the gateway then drains). Panics when the signal cannot be sent.
    pub fn sigterm(&self) {
        let Some(child) = self.child.as_ref() else {
            panic!("the gateway is gone");
        };
        kill_process(Pid::from_child(child), Signal::TERM)
            .unwrap_or_else(|e| panic!("SIGTERM to the gateway ({}): {e}", child.id()));
    }

    /// Send SIGHUP (the gateway then reloads its configuration). Panics when the
    /// signal cannot be sent.
    pub fn sighup(&self) {
        let Some(child) = self.child.as_ref() else {
            panic!("the gateway is gone");
        };
        kill_process(Pid::from_child(child), Signal::HUP)
            .unwrap_or_else(|e| panic!("SIGHUP to the gateway ({}): {e}", child.id()));
    }

    /// Kill the process with SIGKILL (what the OOM killer or a node failure does) and
    /// reap it; the log stays readable. Does nothing when it already exited.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut()
            && self.exit.is_none()
        {
            let _ = child.kill();
            self.exit = child.wait().ok();
        }
    }

    /// How the process exited, if it did (without waiting).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
        }
        self.exit
    }

    /// Wait until the process exits, at most `timeout`; panics if it does not.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let waited = tokio::time::timeout(timeout, async {
            loop {
                if let Some(status) = self.exit_status() {
                    return status;
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            panic!(
                "the gateway did not exit within {timeout:?}; log:\n{}",
                self.log_tail(40)
            )
        })
    }

    /// Where the log is.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the gateway's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- gateway log ({}) ----\n{}",
                self.log.display(),
                tail(&self.log, 60)
            );
        } else {
            if self.owns_log {
                let _ = std::fs::remove_file(&self.log);
            }
            if let Some(dir) = &self.own_data {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// A `Command` for `binary`, without the caller's `SWITCHBOARD_*` variables unless
/// `keep_switchboard_env`.
fn command(binary: &Path, keep_switchboard_env: bool) -> Command {
    let mut cmd = Command::new(binary);
    if !keep_switchboard_env {
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWITCHBOARD_") {
                cmd.env_remove(key);
            }
        }
    }
    cmd
}

/// Run `binary <args>` (not necessarily `serve`) to its exit, with `env` and without the
/// caller's `SWITCHBOARD_*` variables, under `timeout`; its status, stdout and stderr.
/// For configuration errors, `--help` and one-shot commands. Panics when it cannot run
/// or does not exit in time.
pub async fn run_to_exit(
    binary: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Output {
    let mut cmd = tokio::process::Command::from(command(binary, false));
    // A run that gets as far as opening the default store keeps it in a temporary
    // directory, never in the test's working directory.
    let names_data_dir = args.iter().any(|a| a.starts_with("--data-dir"))
        || env.iter().any(|(k, _)| *k == "SWITCHBOARD_DATA_DIR");
    if !names_data_dir {
        cmd.env("SWITCHBOARD_DATA_DIR", temp_path("gateway-data", "d"));
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(timeout, cmd.output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "`{} {args:?}` (env {env:?}) did not exit within {timeout:?}",
                binary.display()
            )
        })
        .unwrap_or_else(|e| panic!("run {} {args:?}: {e}", binary.display()))
}

/// `VmRSS` of a process in KiB, from `/proc/PID/status`. Panics when it cannot be read.
pub fn rss_kib_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// The `switchboard` binary next to the running executable (cargo puts binaries of one
/// profile in one directory; integration tests run from its `deps/`), or on `PATH`.
pub fn find_binary() -> Result<PathBuf, StartError> {
    let exe =
        std::env::current_exe().map_err(|e| StartError::io("locate the running executable", e))?;
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        candidates.push(dir.join(NAME));
        if let Some(parent) = dir.parent() {
            candidates.push(parent.join(NAME));
        }
    }
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    crate::binary::on_path(NAME).ok_or_else(|| StartError::Missing {
        name: NAME,
        looked: format!(
            "{}, $PATH",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        hint: "build it first (cargo build --release -p switchboard)".into(),
    })
}
