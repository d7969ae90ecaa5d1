//! A real PostgreSQL server (see [`crate::process`]), from a fresh cluster.
//!
//! Each server gets its own cluster: a copy of a template cluster that `initdb` made
//! once (kept under the kit's scratch directory and reused by later runs), so a start
//! costs a directory copy and the server's boot, not an `initdb`. The cluster trusts
//! every local connection (user `postgres`, no password) and runs for tests: no fsync,
//! no full-page writes, minimal WAL. Commits are still synchronous: what a commit
//! acknowledged is in the operating system's hands and survives `stop()` (SIGKILL),
//! only not a crash of the machine. Its default collation is ICU's `en` (as on a
//! production server, where text does not sort bytewise), so code that relies on an
//! ordering says so in its SQL.
//!
//! PostgreSQL refuses to run as root: when the kit runs as root (CI), `initdb` and the
//! server run as the `postgres` system user, which Debian's package creates.
//!
//! The binaries are in `$SWITCHBOARD_POSTGRES_BIN_DIR`, else in the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql` package), else next to
//! the `initdb` on `PATH`.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::StartError;
use crate::process::{Arg, ServerProcess, Spec, as_user};
use crate::scratch::{root, temp_path};
use crate::system_user::SystemUser;

static POSTGRES: Spec = Spec {
    name: "postgres",
    fixed_path: "/usr/lib/postgresql",
    env: BIN_DIR_ENV,
    scheme: "postgres",
    probe: answers,
    ready_line: "database system is ready to accept connections",
    run_as: Some("postgres"),
};

/// The variable naming the directory of `initdb`, `postgres` and `psql`.
const BIN_DIR_ENV: &str = "SWITCHBOARD_POSTGRES_BIN_DIR";

/// How every cluster is made: see the module docs.
const INITDB_ARGS: &[&str] = &[
    "--auth=trust",
    "--username=postgres",
    "--encoding=UTF8",
    "--locale=C.UTF-8",
    "--locale-provider=icu",
    "--icu-locale=en",
    "--no-sync",
    "--no-instructions",
    // 1 MB WAL segments instead of 16: every server starts from a copy.
    "--wal-segsize=1",
];

/// The cluster's directory in the server's data directory.
const CLUSTER: &str = "cluster";

/// A running (or stopped) PostgreSQL server; the [`ServerProcess`] methods (`stop`,
/// `restart`, `freeze`, …) apply.
pub struct PostgresServer {
    process: ServerProcess,
    bin_dir: PathBuf,
}

impl PostgresServer {
    /// A server with a fresh cluster. Panics when it does not start.
    pub fn start() -> PostgresServer {
        PostgresServer::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// A server with a fresh cluster, or why it did not start.
    pub fn try_start() -> Result<PostgresServer, StartError> {
        let bin_dir = bin_dir()?;
        let args: Vec<Arg> = vec![
            "-D".into(),
            Arg::InDir(CLUSTER),
            "-p".into(),
            Arg::Port,
            "-h".into(),
            "127.0.0.1".into(),
            // The Unix socket (and its lock file) in the data directory, not /run.
            "-k".into(),
            Arg::Dir,
            "-F".into(),
            "-c".into(),
            "full_page_writes=off".into(),
            "-c".into(),
            "wal_level=minimal".into(),
            "-c".into(),
            "max_wal_senders=0".into(),
            "-c".into(),
            "shared_buffers=32MB".into(),
            "-c".into(),
            "max_connections=50".into(),
            "-c".into(),
            "huge_pages=off".into(),
        ];
        let template_bin = bin_dir.clone();
        let process = ServerProcess::start_prepared(
            &POSTGRES,
            bin_dir.join("postgres"),
            args,
            None,
            move |dir, user| {
                let template = template(&template_bin, user)?;
                copy_cluster(&template, &dir.join(CLUSTER))
            },
        )?;
        Ok(PostgresServer { process, bin_dir })
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of `database` on this server.
    pub fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port())
    }

    /// Create the empty database `name` (lowercase letters, digits, `_`); its URL.
    /// Many tests can share one server this way, each with its own database. Panics
    /// when the name is not plain or the server refuses.
    pub fn create_database(&self, name: &str) -> String {
        assert!(
            is_plain(name),
            "database name {name:?}: use lowercase letters, digits and _"
        );
        self.psql(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        self.url_of(name)
    }

    /// Run `statement` with `psql` on the `postgres` database; its output, or why it
    /// failed.
    pub fn psql(&self, statement: &str) -> Result<String, String> {
        let output = Command::new(self.bin_dir.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url())
            .args(["-c", statement])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run psql: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
        } else {
            Err(failure(&output))
        }
    }
}

impl Deref for PostgresServer {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.process
    }
}

impl DerefMut for PostgresServer {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.process
    }
}

impl From<PostgresServer> for ServerProcess {
    fn from(server: PostgresServer) -> ServerProcess {
        server.process
    }
}

/// Whether `name` needs no quoting in SQL: lowercase letters, digits and `_`.
fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Where `initdb`, `postgres` and `psql` are: see the module docs.
fn bin_dir() -> Result<PathBuf, StartError> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let newest = std::fs::read_dir(POSTGRES.fixed_path)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    if let Some((_, bin)) = newest {
        return Ok(bin);
    }
    crate::binary::on_path("initdb")
        .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
        .ok_or_else(|| StartError::Missing {
            name: "postgres",
            looked: format!(
                "${BIN_DIR_ENV}, {}/<version>/bin and $PATH",
                POSTGRES.fixed_path
            ),
            hint: "these tests run a real PostgreSQL: run ./scripts/test, which installs it \
                   (apt-get install postgresql)"
                .into(),
        })
}

/// The template cluster of the binaries in `bin_dir`, made by `initdb` (run as `user`)
/// the first time and kept for later servers and test runs.
fn template(bin_dir: &Path, user: Option<SystemUser>) -> Result<PathBuf, StartError> {
    // One initdb at a time in this process; other processes race harmlessly (the
    // loser's copy is dropped).
    static MAKING: Mutex<()> = Mutex::new(());
    let _making = MAKING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut key = DefaultHasher::new();
    (bin_dir, INITDB_ARGS, user).hash(&mut key);
    let template = root().join(format!("postgres-template-{:016x}", key.finish()));
    if template.join("PG_VERSION").is_file() {
        return Ok(template);
    }
    let making = temp_path("postgres-template", "making");
    std::fs::create_dir_all(&making)
        .map_err(|e| StartError::io_at("create the template cluster", &making, e))?;
    if let Some(user) = user {
        std::os::unix::fs::chown(&making, Some(user.uid), Some(user.gid))
            .map_err(|e| StartError::io_at("hand the template to postgres", &making, e))?;
    }
    let mut initdb = Command::new(bin_dir.join("initdb"));
    initdb
        .args(INITDB_ARGS)
        .arg("--pgdata")
        .arg(&making)
        .current_dir(root())
        .stdin(Stdio::null());
    if let Some(user) = user {
        as_user(&mut initdb, user);
    }
    let output = initdb
        .output()
        .map_err(|e| StartError::io(format!("run {}", bin_dir.join("initdb").display()), e))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&making);
        return Err(StartError::NotReady {
            name: "initdb".into(),
            detail: failure(&output),
        });
    }
    if std::fs::rename(&making, &template).is_err() {
        // Another test process made it first.
        let _ = std::fs::remove_dir_all(&making);
    }
    if template.join("PG_VERSION").is_file() {
        Ok(template)
    } else {
        Err(StartError::NotReady {
            name: "initdb".into(),
            detail: format!("no template cluster at {}", template.display()),
        })
    }
}

/// Copies the cluster at `from` to `to`, with its owner and modes (PostgreSQL checks
/// both).
fn copy_cluster(from: &Path, to: &Path) -> Result<(), StartError> {
    let output = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| StartError::io("run cp", e))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(StartError::io(
            format!("copy the template cluster to {}", to.display()),
            std::io::Error::other(failure(&output)),
        ))
    }
}

/// What a failed command said.
fn failure(output: &Output) -> String {
    format!(
        "{}: {}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim(),
        String::from_utf8_lossy(&output.stdout).trim()
    )
}

/// Whether a PostgreSQL server answers on `port`: it replies to an `SSLRequest` with
/// one byte (`N`, or `S` where it has TLS).
fn answers(port: u16) -> bool {
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(&SSL_REQUEST).is_err() {
        return false;
    }
    let mut reply = [0u8; 1];
    matches!(stream.read(&mut reply), Ok(1) if matches!(reply[0], b'N' | b'S'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_keeps_its_data_across_a_kill_and_restart() {
        let mut server = PostgresServer::start();
        let port = server.port();
        assert_eq!(
            server.url(),
            format!("postgres://postgres@127.0.0.1:{port}/postgres")
        );
        server
            .psql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('yes')")
            .unwrap();
        server.stop();
        assert!(!answers(port), "a stopped server does not answer");
        server.restart();
        assert_eq!(server.port(), port);
        assert_eq!(server.psql("SELECT v FROM kept").unwrap(), "yes");
    }

    #[test]
    fn databases_are_created_fresh_and_collate_by_icu() {
        let server = PostgresServer::start();
        let url = server.create_database("kit_test");
        assert!(url.ends_with("/kit_test"), "{url}");
        assert!(
            server.psql("CREATE DATABASE kit_test").is_err(),
            "exists already"
        );
        // ICU's `en` puts `a` before `B`; bytewise order would not.
        assert_eq!(server.psql("SELECT 'a' < 'B'").unwrap(), "t");
    }

    #[test]
    fn a_frozen_server_answers_nobody_until_thawed() {
        let server = PostgresServer::start();
        // A connection made before the freeze: its worker is frozen too.
        server.psql("SELECT 1").unwrap();
        server.freeze();
        assert!(!answers(server.port()), "a frozen server answers nobody");
        server.thaw();
        assert!(answers(server.port()));
        assert_eq!(server.psql("SELECT 2").unwrap(), "2");
    }

    #[test]
    fn a_database_name_must_be_plain() {
        assert!(is_plain("conformance_7"));
        assert!(!is_plain(""));
        assert!(!is_plain("Robert'); DROP"));
    }
}
