//! Several gateways over one real backplane (Redis or NATS), for the `replicas_*` tests.
//!
//! - [`Backing`] names the backplane; [`backed_tests!`] turns one `async fn body(Backing)`
//!   into a `redis` and a `nats` test, so both backplanes run the same test body.
//! - [`Backplane`] is the running server (killed on `Drop`, `stop()` / `restart()`).
//! - [`replica`] starts a gateway on it with a distinct `--server-id`, the offline agent
//!   at a 30 ms pace over a long document, and the publisher and admin keys.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_testkit::{NatsServer, RedisServer, ServerProcess, eventually};

use super::http::{ADMIN_KEYS, PUBLISHER_KEYS};
use super::{Gateway, is_event, knowledge, run_to_exit};

/// Which backplane a test runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    Redis,
    Nats,
}

/// A running backplane server: Redis with strict persistence, or NATS with JetStream's
/// file store, so a `stop()` (SIGKILL) and `restart()` keeps every write the server
/// acknowledged.
pub struct Backplane(ServerProcess);

impl Backplane {
    pub fn start(backing: Backing) -> Backplane {
        Backplane(match backing {
            Backing::Redis => RedisServer::start_persistent().into(),
            Backing::Nats => NatsServer::start().into(),
        })
    }

    /// The URL for `--backplane`.
    pub fn url(&self) -> String {
        self.0.url()
    }

    /// Kill the server (SIGKILL).
    pub fn stop(&mut self) {
        self.0.stop()
    }

    /// Start it again on the same port with the same data; returns once it serves.
    pub fn restart(&mut self) {
        self.0.restart()
    }

    /// Pause the server (SIGSTOP): connections stay open, nothing answers.
    pub fn freeze(&self) {
        self.0.freeze()
    }

    /// Let a frozen server run again (SIGCONT).
    pub fn thaw(&self) {
        self.0.thaw()
    }
}

/// Short turn-lease timings, so a dead replica's turns are taken over within about a
/// second: `--turn-lease-beat 250ms --turn-lease-lapse 1s`.
pub const SHORT_LEASE: [&str; 4] = ["--turn-lease-beat", "250ms", "--turn-lease-lapse", "1s"];

/// The lapse of [`SHORT_LEASE`].
pub const SHORT_LAPSE: Duration = Duration::from_secs(1);

/// The offline agent's pause between deltas: the reply to [`knowledge::REFUND_QUESTION`]
/// (80 words, 3 per delta) then streams for about a second.
pub const AGENT_DELAY: &str = "30ms";

/// Start a gateway named `server_id` on `backplane`.
pub fn replica(backplane: &Backplane, server_id: &str) -> Gateway {
    replica_with(backplane, server_id, &[])
}

/// Like [`replica`], with extra arguments.
pub fn replica_with(backplane: &Backplane, server_id: &str, extra: &[&str]) -> Gateway {
    replica_paced(backplane, server_id, AGENT_DELAY, extra)
}

/// Like [`replica_with`], with the offline agent's pause between deltas `agent_delay`.
pub fn replica_paced(
    backplane: &Backplane,
    server_id: &str,
    agent_delay: &str,
    extra: &[&str],
) -> Gateway {
    let url = backplane.url();
    let kb = knowledge::standard_file();
    let mut args = vec![
        "--backplane",
        url.as_str(),
        "--server-id",
        server_id,
        "--offline-agent-delay",
        agent_delay,
        "--knowledge-file",
        kb.as_str(),
        "--publisher-keys",
        PUBLISHER_KEYS,
        "--admin-keys",
        ADMIN_KEYS,
    ];
    args.extend_from_slice(extra);
    Gateway::start(&args)
}

/// Poll `GET /ready` until it answers `status`, at most `within`; return the body.
/// Panics with the last answer when the deadline passes.
pub async fn wait_ready(gw: &Gateway, status: u16, within: Duration) -> Value {
    let what = format!("/ready of {} answering {status}", gw.addr());
    eventually(within, &what, || async {
        let resp = gw.get("/ready").await;
        let got = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if got == status {
            Ok(body)
        } else {
            Err(format!("{got} {body}"))
        }
    })
    .await
}

/// `switchboard publish --backplane URL --session ID --name NAME --data JSON` as a
/// subprocess (no gateway in the path). Panics unless it exits 0; returns its output
/// line, `{"stream","seq","ts"}`.
pub async fn publish_cli(backplane_url: &str, session_id: &str, name: &str, data: &Value) -> Value {
    let data = data.to_string();
    let args = [
        "publish",
        "--backplane",
        backplane_url,
        "--session",
        session_id,
        "--name",
        name,
        "--data",
        data.as_str(),
    ];
    let out = run_to_exit(&args, &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "switchboard {args:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().next().unwrap_or_default();
    let printed: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("switchboard publish printed {stdout:?}, not JSON: {e}"));
    assert_eq!(
        printed["stream"],
        json!(format!("session:{session_id}")),
        "{printed}"
    );
    assert!(printed["seq"].is_u64(), "no numeric seq: {printed}");
    assert!(printed["ts"].is_u64(), "no numeric ts: {printed}");
    printed
}

/// The session events of `session_id` among `frames`, cloned, in order.
pub fn session_events(frames: &[Value], session_id: &str) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| is_event(f) && f["session_id"] == session_id)
        .cloned()
        .collect()
}

/// Declare tests that run one body over Redis and over NATS:
///
/// ```ignore
/// backed_tests! {
///     /// What the test proves.
///     sockets_on_two_replicas_agree => sockets_on_two_replicas_agree_body;
/// }
/// ```
///
/// makes a module `sockets_on_two_replicas_agree` with the tests `redis` and `nats`,
/// each calling `sockets_on_two_replicas_agree_body(Backing::…)` on a multi-threaded
/// runtime (harness calls such as starting a process block their thread briefly).
#[allow(unused_macros)]
macro_rules! backed_tests {
    ($( $(#[$doc:meta])* $name:ident => $body:ident; )*) => {
        $(
            $(#[$doc])*
            mod $name {
                $(#[$doc])*
                ///
                /// Over Redis.
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis() {
                    super::$body($crate::support::replicas::Backing::Redis).await
                }

                $(#[$doc])*
                ///
                /// Over NATS (JetStream).
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn nats() {
                    super::$body($crate::support::replicas::Backing::Nats).await
                }
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use backed_tests;
