//! The HTTP operations surface and the command line (docs/protocol.md §6).

use std::process::Output;
use std::time::Duration;

use switchboard_testkit::eventually;

use crate::support::{Client, Gateway, metric_sum, run_to_exit};

const FLAGS: &[&str] = &[
    "--bind",
    "--server-id",
    "--backplane",
    "--history-max-events",
    "--history-max-age",
    "--max-frame-bytes",
    "--max-text-chars",
    "--max-frames-per-second",
    "--max-bad-frames",
    "--outbound-queue-bytes",
    "--heartbeat",
    "--heartbeat-timeout",
    "--default-org",
    "--allow-anonymous",
    "--demo-seed",
    "--knowledge-file",
    "--max-sessions-per-connection",
    "--max-connections",
    "--max-queued-turns",
    "--turn-deadline",
    "--drain-grace",
    "--offline-agent-delay",
];

/// `/health` and `/ready` answer 200 on a running, idle gateway.
#[tokio::test]
async fn health_and_ready_answer_200() {
    let gw = Gateway::start(&[]);
    assert_eq!(gw.get("/health").await.status(), 200);
    assert_eq!(gw.get("/ready").await.status(), 200);
}

/// After some traffic `/metrics` is Prometheus text with the connection gauge and the
/// frame, event, delivery, turn and disconnect counters, with plausible values.
#[tokio::test]
async fn metrics_expose_connections_frames_events_turns_and_disconnects() {
    let gw = Gateway::start(&["--offline-agent-delay", "1ms"]);
    let mut client = Client::connect(&gw.ws_url()).await;
    let s = client.create_session().await;
    client.send_message(&s.id, "hello metrics").await;
    client.collect_turns(1).await;
    // A connection the server closes (bad token: 4401) is a counted disconnect.
    let mut refused = Client::connect_raw(&format!("{}?token=bad", gw.ws_url())).await;
    assert_eq!(refused.expect_close().await.0, 4401);

    // The refused connection is counted (and gone from the gauge) once the gateway has
    // finished with it, and the turn once its task is past its last append (the client
    // may read the answer first): poll for both.
    let settled = "the 4401 close and the turn counted, and one connection left";
    let metrics = eventually(Duration::from_secs(5), settled, || async {
        let metrics = gw.metrics().await;
        let refused = metric_sum(
            &metrics,
            "switchboard_disconnects_total",
            Some("code=\"4401\""),
        );
        let connections = metric_sum(&metrics, "switchboard_connections", None);
        let turns = metric_sum(&metrics, "switchboard_turns_total", None);
        if refused.is_some_and(|v| v >= 1.0)
            && connections == Some(1.0)
            && turns.is_some_and(|v| v >= 1.0)
        {
            Ok(metrics)
        } else {
            Err(format!(
                "4401 closes {refused:?}, connections {connections:?}, turns {turns:?}"
            ))
        }
    })
    .await;
    let resp = gw.get("/metrics").await;
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "content-type {content_type}"
    );
    let value = |name: &str| {
        metric_sum(&metrics, name, None)
            .unwrap_or_else(|| panic!("metric {name} missing:\n{metrics}"))
    };
    assert!(
        metrics.contains("# TYPE switchboard_connections gauge"),
        "{metrics}"
    );
    assert_eq!(
        value("switchboard_connections"),
        1.0,
        "one client is still connected"
    );
    assert!(value("switchboard_frames_received_total") >= 2.0);
    assert!(
        value("switchboard_events_appended_total") >= 5.0,
        "a message and a whole turn"
    );
    assert!(value("switchboard_events_delivered_total") >= 5.0);
    assert!(value("switchboard_turns_total") >= 1.0);
    assert!(
        metric_sum(
            &metrics,
            "switchboard_disconnects_total",
            Some("code=\"4401\"")
        )
        .is_some_and(|v| v >= 1.0),
        "the 4401 close is counted under its code:\n{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("switchboard_disconnects_total{") && l.contains("code=")),
        "disconnects carry a code label:\n{metrics}"
    );
}

fn stderr_names(output: &Output, setting: &str) -> bool {
    String::from_utf8_lossy(&output.stderr)
        .to_lowercase()
        .replace('_', "-")
        .contains(setting)
}

async fn assert_config_rejected(args: &[&str], env: &[(&str, &str)], setting: &str) {
    let mut full = vec!["serve", "--bind", "127.0.0.1:0"];
    full.extend_from_slice(args);
    let output = run_to_exit(&full, env).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "{args:?} {env:?} must fail, exited {}",
        output.status
    );
    assert!(
        stderr_names(&output, setting),
        "stderr must name `{setting}` for {args:?} {env:?}:\n{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("listening on"),
        "it started listening anyway"
    );
}

/// `switchboard --help` mentions every configuration flag.
#[tokio::test]
async fn help_mentions_every_flag() {
    let output = run_to_exit(&["--help"], &[]).await;
    assert!(
        output.status.success(),
        "--help exit status {}",
        output.status
    );
    let help = String::from_utf8_lossy(&output.stdout);
    let missing: Vec<&&str> = FLAGS.iter().filter(|f| !help.contains(**f)).collect();
    assert!(
        missing.is_empty(),
        "`switchboard --help` lacks {missing:?}:\n{help}"
    );
}

/// `switchboard serve --help` mentions every configuration flag and its env variable.
#[tokio::test]
async fn serve_help_mentions_every_flag_and_env_var() {
    let output = run_to_exit(&["serve", "--help"], &[]).await;
    assert!(
        output.status.success(),
        "serve --help exit status {}",
        output.status
    );
    let help = String::from_utf8_lossy(&output.stdout);
    let missing: Vec<&&str> = FLAGS.iter().filter(|f| !help.contains(**f)).collect();
    assert!(
        missing.is_empty(),
        "`switchboard serve --help` lacks {missing:?}:\n{help}"
    );
    for flag in [
        "--history-max-events",
        "--max-frame-bytes",
        "--allow-anonymous",
    ] {
        let env = format!("SWITCHBOARD_{}", flag[2..].to_uppercase().replace('-', "_"));
        assert!(help.contains(&env), "serve --help lacks {env}:\n{help}");
    }
}

/// `--history-max-events 0` is refused: non-zero exit naming the setting.
#[tokio::test]
async fn zero_history_max_events_is_rejected_naming_the_setting() {
    assert_config_rejected(&["--history-max-events", "0"], &[], "history-max-events").await;
}

/// A non-numeric `SWITCHBOARD_MAX_FRAME_BYTES` is refused naming the setting.
#[tokio::test]
async fn non_numeric_max_frame_bytes_env_is_rejected_naming_the_setting() {
    assert_config_rejected(
        &[],
        &[("SWITCHBOARD_MAX_FRAME_BYTES", "abc")],
        "max-frame-bytes",
    )
    .await;
}

/// An unknown backplane URL scheme is refused naming the backplane setting.
#[tokio::test]
async fn unknown_backplane_is_rejected_naming_the_setting() {
    assert_config_rejected(&["--backplane", "bogus://x"], &[], "backplane").await;
}

/// A Redis or NATS backplane nobody answers on stops the gateway at boot: it exits
/// non-zero naming the backplane setting, never listens, and never prints the URL's
/// password.
#[tokio::test]
async fn unreachable_backplane_fails_at_boot_without_leaking_the_password() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    for scheme in ["redis", "nats"] {
        let url = format!("{scheme}://user:hunter2-secret@127.0.0.1:{port}");
        let started = std::time::Instant::now();
        assert_config_rejected(&["--backplane", &url], &[], "backplane").await;
        let output = run_to_exit(
            &["serve", "--bind", "127.0.0.1:0", "--backplane", &url],
            &[],
        )
        .await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("hunter2"),
            "{scheme}: the password leaked:\n{stderr}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(19),
            "{scheme}: boot failure took {:?}",
            started.elapsed()
        );
    }
}

/// Other bad settings are refused, each naming its setting: a bad duration, a
/// missing knowledge file, a non-boolean `--allow-anonymous`.
#[tokio::test]
async fn other_invalid_settings_are_rejected_naming_the_setting() {
    assert_config_rejected(&["--history-max-age", "forever"], &[], "history-max-age").await;
    assert_config_rejected(&["--heartbeat", "soon"], &[], "heartbeat").await;
    assert_config_rejected(
        &[
            "--knowledge-file",
            "/nonexistent/switchboard/knowledge.json",
        ],
        &[],
        "knowledge-file",
    )
    .await;
    let bad_json = switchboard_testkit::temp_path("bad-knowledge", "json");
    std::fs::write(&bad_json, "{not json").unwrap();
    assert_config_rejected(
        &["--knowledge-file", bad_json.to_str().unwrap()],
        &[],
        "knowledge-file",
    )
    .await;
    assert_config_rejected(&["--allow-anonymous", "maybe"], &[], "allow-anonymous").await;
}

/// Settings given as `SWITCHBOARD_*` environment variables take effect.
#[tokio::test]
async fn settings_from_environment_variables_take_effect() {
    let gw = Gateway::start_with_env(
        &[],
        &[
            ("SWITCHBOARD_MAX_TEXT_CHARS", "123"),
            ("SWITCHBOARD_SERVER_ID", "env-replica"),
        ],
    );
    let client = Client::connect(&gw.ws_url()).await;
    assert_eq!(
        client.welcome["limits"]["max_text_chars"], 123,
        "{}",
        client.welcome
    );
    assert_eq!(client.welcome["server_id"], "env-replica");
}
