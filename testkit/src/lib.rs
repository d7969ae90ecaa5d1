//! The processes and waits the workspace's tests (and the load tool) share.
//!
//! - [`redis`]: a real `redis-server` ([`RedisServer`]), in memory or persistent.
//! - [`nats`]: a real `nats-server`, with JetStream by default ([`NatsServer`]).
//! - [`postgres`]: a real PostgreSQL server with a fresh cluster ([`PostgresServer`]),
//!   and fresh databases in it.
//! - [`process`]: what both servers are, a [`ServerProcess`] on a free port of 127.0.0.1:
//!   `stop()` is SIGKILL, `restart()` comes back on the same port and data directory,
//!   `freeze()` / `thaw()` pause it; its log tail is printed when a test panics.
//! - [`gateway`]: a `switchboard serve` process on port 0 ([`Gateway`], started through
//!   [`GatewayCommand`]); the caller names the binary (integration tests of the server
//!   crate pass `env!("CARGO_BIN_EXE_switchboard")`, tools use
//!   [`gateway::find_binary`]).
//! - [`wait`]: [`eventually`] (poll a probe until it holds, bounded) and [`POLL`], the
//!   interval tests poll at.
//! - [`port`]: free ports, chosen below the kernel's ephemeral range.
//! - [`scratch`]: fresh paths for data directories, logs and test files.
//!
//! A missing `redis-server`, `nats-server` or PostgreSQL fails with a message telling to run
//! `./scripts/test` (which installs both): it never turns into a skipped test. Each
//! process is killed when its handle drops. Starting functions panic, for tests; the
//! `try_` variants return a [`StartError`], for tools.
//!
//! This crate depends on no production crate of the workspace, so any of them (the
//! backplane's conformance suite among them) can use it.

mod binary;
pub mod error;
pub mod gateway;
pub mod nats;
pub mod port;
pub mod postgres;
mod proc_tree;
pub mod process;
pub mod redis;
pub mod scratch;
mod system_user;
pub mod wait;

pub use error::StartError;
pub use gateway::{Gateway, GatewayCommand};
pub use nats::{NatsOptions, NatsServer};
pub use port::free_port;
pub use postgres::PostgresServer;
pub use process::ServerProcess;
pub use redis::{RedisOptions, RedisServer};
pub use scratch::temp_path;
pub use wait::{Attempt, POLL, eventually};
