//! A real `switchboard serve` process on a free port, killed on `Drop`.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use super::WAIT;

/// How long the gateway may take to print its `listening on` line.
const STARTUP: Duration = Duration::from_secs(30);

static NEXT_LOG: AtomicUsize = AtomicUsize::new(0);

/// A running gateway. Its stderr (the logs) goes to a file under the target's tmp
/// directory; the last lines are printed when a test panics while it is alive.
pub struct Gateway {
    child: Option<Child>,
    /// `127.0.0.1:PORT`
    addr: String,
    log: PathBuf,
    exit: Option<ExitStatus>,
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_switchboard")
}

/// A fresh path under the target's tmp directory, unique within this test run.
pub fn temp_path(stem: &str, ext: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("switchboard-tests");
    std::fs::create_dir_all(&dir).expect("create the test tmp dir");
    let n = NEXT_LOG.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{stem}-{}-{n}.{ext}", std::process::id()))
}

/// A `Command` for the binary with no `SWITCHBOARD_*` variable inherited from the
/// environment that runs the tests, so every test sees the defaults.
fn command() -> Command {
    let mut cmd = Command::new(binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SWITCHBOARD_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

impl Gateway {
    /// Start `switchboard serve --bind 127.0.0.1:0 <args>` and wait for its address.
    pub fn start(args: &[&str]) -> Gateway {
        Gateway::start_with_env(args, &[])
    }

    /// Like [`Gateway::start`], with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let log = temp_path("gateway", "log");
        let log_file = std::fs::File::create(&log).expect("create the gateway log file");
        let mut cmd = command();
        cmd.args(["serve", "--bind", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary()));
        let stdout = child.stdout.take().expect("piped stdout");
        // Read the first line on a thread (std pipes block), then keep draining stdout
        // so a later write by the gateway never hits a closed pipe.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let first = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(first);
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let first = match rx.recv_timeout(STARTUP) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => {
                let _ = child.kill();
                panic!("reading the gateway's stdout failed: {e}");
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the gateway did not print `listening on …` within {STARTUP:?} \
                     (args {args:?}); log:\n{}",
                    tail(&log, 60)
                );
            }
        };
        let line = first.trim();
        let Some(addr) = line.strip_prefix("listening on http://") else {
            let status = child.try_wait().ok().flatten();
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "expected the first stdout line to be `listening on http://ADDR`, got {line:?} \
                 (exit status {status:?}, args {args:?}); log:\n{}",
                tail(&log, 60)
            );
        };
        Gateway {
            addr: addr.to_string(),
            child: Some(child),
            log,
            exit: None,
        }
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> &str {
        &self.addr
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
        self.child.as_ref().expect("gateway child").id()
    }

    /// The gateway's resident set size in KiB, from `/proc/PID/status` (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        rss_kib_of(self.pid())
    }

    /// Send SIGTERM (via `kill(1)`: the workspace forbids `unsafe`, so no `libc::kill`).
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(
            status.success(),
            "kill -TERM {} failed: {status}",
            self.pid()
        );
    }

    /// Wait until the process exits, at most `timeout`; panics if it does not.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let child = self.child.as_mut().expect("gateway child");
        let waited = tokio::time::timeout(timeout, async {
            loop {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        match waited {
            Ok(status) => {
                self.exit = Some(status);
                status
            }
            Err(_) => panic!(
                "the gateway did not exit within {timeout:?}; log:\n{}",
                tail(&self.log, 40)
            ),
        }
    }

    /// The last `lines` lines of the gateway's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// `GET path` over HTTP, under [`WAIT`].
    pub async fn get(&self, path: &str) -> reqwest::Response {
        let url = format!("{}{path}", self.http_url());
        let client = http_client();
        tokio::time::timeout(WAIT, client.get(&url).send())
            .await
            .unwrap_or_else(|_| panic!("GET {url} timed out"))
            .unwrap_or_else(|e| panic!("GET {url} failed: {e}"))
    }

    /// The body of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let resp = self.get("/metrics").await;
        assert_eq!(resp.status(), 200, "GET /metrics");
        resp.text().await.expect("metrics body")
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
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A reqwest client that ignores any proxy configured in the environment.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("build reqwest client")
}

/// `VmRSS` of a process in KiB.
pub fn rss_kib_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

fn tail(path: &PathBuf, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Run `switchboard <args>` (not necessarily `serve`) to its exit, under a timeout,
/// and return its status, stdout and stderr. For configuration errors and `--help`.
pub async fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::from(command());
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("`switchboard {args:?}` (env {env:?}) did not exit within 20s"))
        .unwrap_or_else(|e| panic!("run switchboard {args:?}: {e}"))
}
