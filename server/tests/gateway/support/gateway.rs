//! The gateway under test: the kit's [`switchboard_testkit::Gateway`] process, started
//! from the binary cargo built for these tests, plus the HTTP calls tests make on it.
//! Every other method (`ws_url`, `sigterm`, `wait_exit`, `log_tail`, …) is the kit's.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use switchboard_testkit::GatewayCommand;

use super::WAIT;

/// How long a one-shot `switchboard` command may run.
const RUN_TO_EXIT: Duration = Duration::from_secs(20);

/// The `switchboard` binary cargo built for this test target.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_switchboard"))
}

/// A running gateway, killed on `Drop` (its log is printed when a test panics).
pub struct Gateway(switchboard_testkit::Gateway);

impl Gateway {
    /// Start `switchboard serve --bind 127.0.0.1:0 <args>` and wait for its address.
    pub fn start(args: &[&str]) -> Gateway {
        Gateway::start_with_env(args, &[])
    }

    /// Like [`Gateway::start`], with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let command = env
            .iter()
            .fold(GatewayCommand::new(binary()).args(args), |c, (k, v)| {
                c.env(k, v)
            });
        Gateway(command.start())
    }

    /// `GET path` over HTTP, under [`WAIT`].
    pub async fn get(&self, path: &str) -> reqwest::Response {
        let url = format!("{}{path}", self.http_url());
        tokio::time::timeout(WAIT, http_client().get(&url).send())
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

impl Deref for Gateway {
    type Target = switchboard_testkit::Gateway;

    fn deref(&self) -> &switchboard_testkit::Gateway {
        &self.0
    }
}

impl DerefMut for Gateway {
    fn deref_mut(&mut self) -> &mut switchboard_testkit::Gateway {
        &mut self.0
    }
}

/// A reqwest client that ignores any proxy configured in the environment.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("build reqwest client")
}

/// Run `switchboard <args>` (not necessarily `serve`) to its exit and return its status,
/// stdout and stderr. For configuration errors and `--help`.
pub async fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> Output {
    switchboard_testkit::gateway::run_to_exit(binary(), args, env, RUN_TO_EXIT).await
}
