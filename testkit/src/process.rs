//! A real backing server (`redis-server`, `nats-server`, `postgres`) on a free port of
//! 127.0.0.1, killed on `Drop`, with `stop()` and `restart()` (same port, same data
//! directory) for fault tests. What differs per server (its binary, arguments and
//! readiness) is a `Spec`, given by [`crate::redis`], [`crate::nats`] and
//! [`crate::postgres`]. Signals reach the server's worker processes too (PostgreSQL
//! forks one per connection).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::proc_tree::{descendants, is_stopped, wait_gone};
use crate::scratch::{tail, temp_path};
use crate::system_user::{SystemUser, is_root, lookup};
use crate::wait::POLL;
use crate::{StartError, free_port};

/// How long a server may take to become ready after a (re)start.
const STARTUP: Duration = Duration::from_secs(15);

/// How many ports a start tries: a port picked free can be taken before the server
/// binds it.
const PORT_TRIES: usize = 3;

/// One argument of a server's command line.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(OsString),
    /// The port the server listens on.
    Port,
    /// The data directory.
    Dir,
    /// A path in the data directory.
    InDir(&'static str),
}

impl From<&str> for Arg {
    fn from(text: &str) -> Arg {
        Arg::Text(text.into())
    }
}

/// One kind of backing server.
pub(crate) struct Spec {
    /// The binary's name, e.g. `redis-server` (also its Debian package's name).
    pub name: &'static str,
    /// Where the Debian package puts it (`./scripts/test` installs it).
    pub fixed_path: &'static str,
    /// The environment variable naming another binary.
    pub env: &'static str,
    /// URL scheme clients use: `redis`, `nats`.
    pub scheme: &'static str,
    /// Whether the server on the port serves clients yet.
    pub probe: fn(port: u16) -> bool,
    /// A line the server logs once it is ready: with the probe, it proves that the
    /// server answering is this one and not a stranger on the same port.
    pub ready_line: &'static str,
    /// The system user to run the server as when the kit runs as root (PostgreSQL
    /// refuses root); `None`: as the kit's user.
    pub run_as: Option<&'static str>,
}

/// A backing server, running or (after [`ServerProcess::stop`]) stopped.
pub struct ServerProcess {
    spec: &'static Spec,
    binary: PathBuf,
    args: Vec<Arg>,
    child: Option<Child>,
    /// Who the server runs as, when not as the kit's user.
    user: Option<SystemUser>,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    /// Whether `dir` (with the log in it) is the kit's to remove.
    owns_dir: bool,
}

impl ServerProcess {
    /// Start on a free port with the data directory `dir` (a fresh one when `None`) and
    /// wait until the server is ready.
    pub(crate) fn start(
        spec: &'static Spec,
        args: Vec<Arg>,
        dir: Option<PathBuf>,
    ) -> Result<ServerProcess, StartError> {
        let binary = crate::binary::find_binary(spec.name, spec.env, spec.fixed_path, spec.name)?;
        ServerProcess::start_prepared(spec, binary, args, dir, |_, _| Ok(()))
    }

    /// [`ServerProcess::start`] with the binary found by the caller, and `prepare`
    /// called once before the first spawn with the data directory (created, owned by
    /// the server's user) and that user (`None`: the kit's).
    pub(crate) fn start_prepared(
        spec: &'static Spec,
        binary: PathBuf,
        args: Vec<Arg>,
        dir: Option<PathBuf>,
        prepare: impl FnOnce(&Path, Option<SystemUser>) -> Result<(), StartError>,
    ) -> Result<ServerProcess, StartError> {
        let user = server_user(spec)?;
        let owns_dir = dir.is_none();
        let dir = dir.unwrap_or_else(|| temp_path(spec.name, "d"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| StartError::io_at("create the data directory", &dir, e))?;
        if let Some(user) = user {
            std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid)).map_err(|e| {
                StartError::io_at("hand the data directory to the server's user", &dir, e)
            })?;
        }
        prepare(&dir, user)?;
        let log = dir.join(format!("{}.log", spec.name));
        let mut server = ServerProcess {
            spec,
            binary,
            args,
            child: None,
            user,
            port: free_port(),
            dir,
            log,
            owns_dir,
        };
        let mut last_error = None;
        for _ in 0..PORT_TRIES {
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
            server.port = free_port();
        }
        Err(last_error.unwrap_or_else(|| StartError::NotReady {
            name: spec.name.into(),
            detail: "never tried".into(),
        }))
    }

    /// `<scheme>://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.spec.scheme, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process runs (it may be frozen).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The data directory, kept across restarts.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kill the server and its workers (SIGKILL: only what it already persisted
    /// survives) and wait for them to be gone. A frozen server is killed too.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Stopped first, the server forks no worker the kill would miss.
            let _ = kill_process(Pid::from_child(&child), Signal::STOP);
            let workers = descendants(child.id());
            for &worker in &workers {
                signal_pid(worker, Signal::KILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            // A restart must not meet them (PostgreSQL refuses to start while an old
            // worker still holds its shared memory).
            wait_gone(&workers, Duration::from_secs(5));
        }
    }

    /// Start the server again on the same port with the same data directory, and wait
    /// until it is ready. Panics when it does not come back.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn_and_wait() {
            panic!(
                "{} did not restart on port {}: {e}",
                self.spec.name, self.port
            );
        }
    }

    /// Freeze the server (SIGSTOP): connections stay open but nothing answers, as in a
    /// network partition or a paused VM. Returns once the kernel shows it stopped: a
    /// signal is delivered asynchronously, and a server still running for a moment
    /// could answer one more request. Panics when it is not running or does not stop.
    pub fn freeze(&self) {
        self.signal(Signal::STOP);
        let Some(pid) = self.child.as_ref().map(std::process::Child::id) else {
            return;
        };
        for worker in descendants(pid) {
            signal_pid(worker, Signal::STOP);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !is_stopped(pid) {
            assert!(
                Instant::now() < deadline,
                "{} did not stop on SIGSTOP",
                self.spec.name
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Let a frozen server (and its workers) run again (SIGCONT).
    pub fn thaw(&self) {
        if let Some(pid) = self.child.as_ref().map(std::process::Child::id) {
            for worker in descendants(pid) {
                signal_pid(worker, Signal::CONT);
            }
        }
        self.signal(Signal::CONT);
    }

    fn signal(&self, signal: Signal) {
        let child = self
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.spec.name));
        kill_process(Pid::from_child(child), signal)
            .unwrap_or_else(|e| panic!("signal {signal:?} to {}: {e}", self.spec.name));
    }

    /// The last `lines` lines of the server's log (every start appends to it).
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    fn command_line(&self) -> Vec<OsString> {
        self.args
            .iter()
            .map(|arg| match arg {
                Arg::Text(text) => text.clone(),
                Arg::Port => self.port.to_string().into(),
                Arg::Dir => self.dir.clone().into_os_string(),
                Arg::InDir(name) => self.dir.join(name).into_os_string(),
            })
            .collect()
    }

    fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        let name = self.spec.name;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| StartError::io_at("open the server log", &self.log, e))?;
        // Only what this start logs counts for readiness.
        let logged_before = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log_err = log
            .try_clone()
            .map_err(|e| StartError::io_at("open the server log", &self.log, e))?;
        let mut command = Command::new(&self.binary);
        command
            .args(self.command_line())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        if let Some(user) = self.user {
            as_user(&mut command, user);
        }
        let child = command
            .spawn()
            .map_err(|e| StartError::io(format!("spawn {}", self.binary.display()), e))?;
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        loop {
            if self.logged_since(logged_before) && (self.spec.probe)(self.port) {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(StartError::NotReady {
                    name: name.into(),
                    detail: format!(
                        "exited with {status} on port {}; log:\n{}",
                        self.port,
                        self.log_tail(20)
                    ),
                });
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(StartError::NotReady {
                    name: name.into(),
                    detail: format!(
                        "not ready on port {} within {STARTUP:?} (waiting for {:?} in its \
                         log and an answer on the port); log:\n{}",
                        self.port,
                        self.spec.ready_line,
                        self.log_tail(20)
                    ),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether the log, past its first `offset` bytes, has the ready line.
    fn logged_since(&self, offset: u64) -> bool {
        let Ok(text) = std::fs::read(&self.log) else {
            return false;
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(text.len());
        String::from_utf8_lossy(&text[start..]).contains(self.spec.ready_line)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "---- {} log ({}) ----\n{}",
                self.spec.name,
                self.log.display(),
                self.log_tail(30)
            );
        } else if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The user `spec`'s server runs as: its `run_as` user when the kit runs as root.
fn server_user(spec: &Spec) -> Result<Option<SystemUser>, StartError> {
    let Some(name) = spec.run_as.filter(|_| is_root()) else {
        return Ok(None);
    };
    lookup(name).map(Some).ok_or_else(|| StartError::NotReady {
        name: spec.name.into(),
        detail: format!(
            "it must not run as root, and there is no system user {name} to run it as \
             (its Debian package creates one)"
        ),
    })
}

/// Runs `command` as `user` (without root's supplementary groups: std drops them when
/// it changes the user).
pub(crate) fn as_user(command: &mut Command, user: SystemUser) {
    use std::os::unix::process::CommandExt;
    command.uid(user.uid).gid(user.gid);
}

/// Sends `signal` to `pid`, which may be gone already.
fn signal_pid(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, signal);
    }
}
