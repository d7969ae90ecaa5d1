//! Live reload (docs/operations.md): SIGHUP and `POST /v1/admin/reload` re-read the
//! command line, the environment and `--settings-file`, validate everything, and swap
//! in the settings that can change live — without dropping a connection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use switchboard_testkit::{eventually, temp_path};

use crate::support::http::{Api, publish_body};
use crate::support::jwt;
use crate::support::upstream::{Reply as UpstreamReply, Upstream};
use crate::support::{Client, Gateway, events_of, metric_sum, seq, ty};

const OLD_PUBLISHER: &str = "pub_old_secret_0123456789abcdef";
const NEW_PUBLISHER: &str = "pub_new_secret_0123456789abcdef";
const ADMIN: &str = "adm_reload_secret_0123456789abcdef";
const RELOAD: &str = "/v1/admin/reload";

/// A settings file, removed when dropped.
struct SettingsFile(PathBuf);

impl SettingsFile {
    fn new(lines: &[String]) -> SettingsFile {
        let file = SettingsFile(temp_path("settings", "env"));
        file.write(lines);
        file
    }

    fn write(&self, lines: &[String]) {
        // Written whole, then renamed over the old file, as a ConfigMap update is.
        let next = self.0.with_extension("next");
        std::fs::write(&next, lines.join("\n")).expect("write the settings file");
        std::fs::rename(&next, &self.0).expect("replace the settings file");
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SettingsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn keys(publisher: &str) -> Vec<String> {
    vec![
        format!("SWITCHBOARD_PUBLISHER_KEYS=backend:{publisher}"),
        format!("SWITCHBOARD_ADMIN_KEYS=ops:{ADMIN}"),
    ]
}

/// Wait until the gateway counted `n` reloads with `result` (`ok`, `rejected`).
async fn reloads_counted(gw: &Gateway, result: &str, n: f64) {
    let label = format!("result=\"{result}\"");
    eventually(Duration::from_secs(10), "the reload counted", || async {
        let metrics = gw.metrics().await;
        let count =
            metric_sum(&metrics, "switchboard_config_reloads_total", Some(&label)).unwrap_or(0.0);
        if count >= n {
            Ok(())
        } else {
            Err(format!("{result} reloads: {count}"))
        }
    })
    .await;
}

async fn publish_status(api: &Api, key: &str) -> u16 {
    let body = publish_body("user", "u1", "note", json!({"n": 1}));
    api.publish(Some(key), &body).await.status
}

/// A new publisher key in the settings file, then SIGHUP: the old key is refused, the
/// new one works, and a WebSocket opened before the reload stays open and usable.
#[tokio::test]
async fn sighup_swaps_api_keys_and_open_connections_stay() {
    let file = SettingsFile::new(&keys(OLD_PUBLISHER));
    let settings = file.path().to_str().unwrap();
    let gw = Gateway::start(&["--settings-file", settings, "--offline-agent-delay", "1ms"]);
    let api = Api::new(&gw);
    let mut client = Client::connect(&gw.ws_url()).await;
    let session = client.create_session().await;
    assert_eq!(publish_status(&api, OLD_PUBLISHER).await, 202);
    assert_eq!(publish_status(&api, NEW_PUBLISHER).await, 401);

    file.write(&keys(NEW_PUBLISHER));
    gw.sighup();
    reloads_counted(&gw, "ok", 1.0).await;

    assert_eq!(
        publish_status(&api, OLD_PUBLISHER).await,
        401,
        "the old key is refused after the reload"
    );
    assert_eq!(publish_status(&api, NEW_PUBLISHER).await, 202);
    client.ping_pong().await;
    client.send_message(&session.id, "still here?").await;
    client.collect_turns(1).await;
    assert!(
        gw.log_tail(200).contains("configuration reloaded"),
        "the reload is logged"
    );
    assert!(
        !gw.log_tail(400).contains(NEW_PUBLISHER) && !gw.log_tail(400).contains(OLD_PUBLISHER),
        "no key reaches the log"
    );
}

/// A settings file with a bad value is rejected whole: the old keys stay in force,
/// the rejection is counted, and the admin route says why with 400. The route needs
/// an admin; once the file is fixed it answers what it applied and what waits for a
/// restart.
#[tokio::test]
async fn a_bad_configuration_is_rejected_and_the_running_one_stays() {
    let file = SettingsFile::new(&keys(OLD_PUBLISHER));
    let settings = file.path().to_str().unwrap();
    let gw = Gateway::start(&["--settings-file", settings]);
    let api = Api::new(&gw);

    let mut bad = keys(NEW_PUBLISHER);
    bad.push("SWITCHBOARD_MAX_TEXT_CHARS=lots".into());
    file.write(&bad);
    gw.sighup();
    reloads_counted(&gw, "rejected", 1.0).await;
    assert_eq!(
        publish_status(&api, OLD_PUBLISHER).await,
        202,
        "the old key still works"
    );
    assert_eq!(publish_status(&api, NEW_PUBLISHER).await, 401);

    let rejected = api.post(RELOAD, Some(ADMIN), &json!({})).await;
    rejected.assert_error(400, "bad_request", "a bad configuration");
    let reason = rejected.json["error"]["message"].as_str().unwrap();
    assert!(reason.contains("--max-text-chars"), "{reason}");
    reloads_counted(&gw, "rejected", 2.0).await;

    api.post(RELOAD, None, &json!({}))
        .await
        .assert_error(401, "unauthorized", "no credentials");
    api.post(RELOAD, Some(OLD_PUBLISHER), &json!({}))
        .await
        .assert_error(403, "forbidden", "a publisher key");

    let mut good = keys(NEW_PUBLISHER);
    good.push("SWITCHBOARD_MAX_TEXT_CHARS=100".into());
    good.push("SWITCHBOARD_HISTORY_MAX_EVENTS=50".into());
    file.write(&good);
    let applied = api.post(RELOAD, Some(ADMIN), &json!({})).await;
    let body = applied.expect(200, "a good configuration");
    assert_eq!(body["result"], "ok");
    let names = |field: &str| -> Vec<String> {
        body[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names("applied"),
        ["--max-text-chars", "--publisher-keys"],
        "{body}"
    );
    assert_eq!(
        names("restart_required"),
        ["--history-max-events"],
        "{body}"
    );
    assert_eq!(publish_status(&api, NEW_PUBLISHER).await, 202);
    let again = api.post(RELOAD, Some(ADMIN), &json!({})).await;
    let again = again.expect(200, "the same configuration again");
    assert_eq!(again["applied"], json!([]), "{again}");
    assert_eq!(
        again["restart_required"],
        json!(["--history-max-events"]),
        "still waiting for a restart: {again}"
    );

    // The new limit applies to the next message and to the next welcome.
    let mut client = Client::connect(&gw.ws_url()).await;
    assert_eq!(client.welcome["limits"]["max_text_chars"], 100);
    let session = client.create_session().await;
    let refused = client
        .request(
            "message.send",
            json!({"session_id": session.id, "text": "x".repeat(101)}),
        )
        .await;
    assert_eq!(refused["code"], "too_large", "{refused}");
}

/// Done-when of issue 22: a SIGHUP under load — 1,000 connected WebSocket clients and
/// a turn streaming — drops nothing: every client is still connected afterwards, and
/// each member of the streaming session receives every delta (seq contiguous) and
/// the turn's end.
#[tokio::test]
async fn sighup_under_load_drops_nothing() {
    const IDLE_CLIENTS: usize = 1000;
    const DELTAS: usize = 40;
    let file = SettingsFile::new(&keys(OLD_PUBLISHER));
    let settings = file.path().to_str().unwrap();
    let upstream = Upstream::start().await;
    let words: Vec<String> = (0..DELTAS).map(|i| format!("w{i} ")).collect();
    let word_refs: Vec<&str> = words.iter().map(String::as_str).collect();
    upstream.push(UpstreamReply::text(&word_refs).paced(Duration::from_millis(50)));
    let base_url = upstream.base_url();
    let gw = Gateway::start(&[
        "--settings-file",
        settings,
        "--model-provider",
        "openai",
        "--model-base-url",
        &base_url,
        "--max-connections-per-ip",
        "5000",
        "--connections-per-minute-per-ip",
        "5000",
        "--max-websockets-per-client",
        "5000",
        "--heartbeat",
        "30s",
        "--heartbeat-timeout",
        "600s",
    ]);
    let api = Api::new(&gw);

    // The streaming session: its creator and two more members (joined with its key).
    let mut asker = Client::connect(&gw.ws_url()).await;
    let session = asker.create_session().await;
    let mut members = Vec::new();
    for _ in 0..2 {
        let mut member = Client::connect(&gw.ws_url()).await;
        member.join(&session.id, None, session.key.as_deref()).await;
        members.push(member);
    }

    let url = gw.ws_url();
    let mut idle: Vec<Client> = futures_util::stream::iter(0..IDLE_CLIENTS)
        .map(|_| {
            let url = url.clone();
            async move { Client::connect(&url).await }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    assert_eq!(idle.len(), IDLE_CLIENTS);

    asker.send_message(&session.id, "stream something").await;
    // The turn is streaming: the first delta has arrived.
    let mut asker_frames = asker.collect_until(|f| ty(f) == "turn.delta").await;

    file.write(&keys(NEW_PUBLISHER));
    gw.sighup();
    reloads_counted(&gw, "ok", 1.0).await;
    assert_eq!(publish_status(&api, NEW_PUBLISHER).await, 202, "reloaded");

    let rest = asker.collect_until(|f| ty(f) == "turn.end").await;
    assert!(
        rest.iter().filter(|f| ty(f) == "turn.delta").count() > 1,
        "the turn was still streaming when the reload applied: {}",
        crate::support::summary(&rest)
    );
    asker_frames.extend(rest);
    let mut all = vec![asker_frames];
    for member in &mut members {
        all.push(member.collect_until(|f| ty(f) == "turn.end").await);
    }
    for frames in &all {
        let events: Vec<Value> = events_of(frames, &session.id)
            .into_iter()
            .cloned()
            .collect();
        for pair in events.windows(2) {
            assert_eq!(
                seq(&pair[1]),
                seq(&pair[0]) + 1,
                "seq must be contiguous: {} then {}",
                pair[0],
                pair[1]
            );
        }
        let text: String = events
            .iter()
            .filter(|e| ty(e) == "turn.delta")
            .map(|e| e["text"].as_str().unwrap())
            .collect();
        assert_eq!(text, words.concat(), "every delta arrives");
        let end = events.last().unwrap();
        assert_eq!(ty(end), "turn.end");
        assert_eq!(end["status"], "completed", "{end}");
    }

    // Every idle client is still connected and answered.
    futures_util::stream::iter(idle.iter_mut())
        .for_each_concurrent(50, |client| async move { client.ping_pong().await })
        .await;
    let metrics = gw.metrics().await;
    assert_eq!(
        metric_sum(&metrics, "switchboard_connections", None),
        Some((IDLE_CLIENTS + 3) as f64),
        "no connection was dropped"
    );
    assert_eq!(
        metric_sum(&metrics, "switchboard_disconnects_total", None).unwrap_or(0.0),
        0.0,
        "the server closed nothing"
    );
}

/// A new HS256 secret in the settings file, then SIGHUP: a connection verified with the
/// old secret stays open (it keeps its access context), a new handshake with an old
/// token is refused with 4401, and a token signed with the new secret is welcomed.
#[tokio::test]
async fn sighup_swaps_the_jwt_secret_and_verified_connections_stay() {
    const OLD_SECRET: &str = "reload-old-hs256-secret-0123456789abcdefgh";
    const NEW_SECRET: &str = "reload-new-hs256-secret-0123456789abcdefgh";
    let secret = |s: &str| vec![format!("SWITCHBOARD_JWT_HS256_SECRET={s}")];
    let file = SettingsFile::new(&secret(OLD_SECRET));
    let settings = file.path().to_str().unwrap();
    let gw = Gateway::start(&["--settings-file", settings, "--allow-anonymous", "false"]);
    let claims = jwt::Claims::user("u-reload", "acme");
    let old_token = claims.hs256_with(OLD_SECRET.as_bytes());
    let mut verified = jwt::connect(&gw, &old_token).await;

    file.write(&secret(NEW_SECRET));
    gw.sighup();
    reloads_counted(&gw, "ok", 1.0).await;

    jwt::assert_token_refused(&gw, &old_token, "a token signed with the old secret").await;
    let mut renewed = jwt::connect(&gw, &claims.hs256_with(NEW_SECRET.as_bytes())).await;
    renewed.ping_pong().await;
    verified.ping_pong().await;
    let session = verified.create_session().await;
    assert!(!session.id.is_empty(), "the old connection still works");
}

/// The system prompt (in the settings file) and the tools file are read again by a
/// reload: the next turn's model request carries the new prompt and the new tool.
#[tokio::test]
async fn sighup_applies_a_new_system_prompt_and_tools_file_to_the_next_turn() {
    const TOOL_KEY: &str = "reload-tool-signing-key-0123456789abcdefgh";
    let tools = |name: &str| {
        json!([{
            "name": name,
            "description": format!("The {name} tool"),
            "parameters": {"type": "object", "properties": {}},
            "endpoint": "http://127.0.0.1:9/tool",
        }])
        .to_string()
    };
    let tools_file = SettingsFile(temp_path("tools", "json"));
    std::fs::write(tools_file.path(), tools("lookup_order")).unwrap();
    let prompt = |p: &str| vec![format!("SWITCHBOARD_SYSTEM_PROMPT=\"{p}\"")];
    let file = SettingsFile::new(&prompt("You are the first assistant."));
    let upstream = Upstream::start().await;
    upstream.push(UpstreamReply::text(&["one"]));
    upstream.push(UpstreamReply::text(&["two"]));
    let base_url = upstream.base_url();
    let gw = Gateway::start(&[
        "--settings-file",
        file.path().to_str().unwrap(),
        "--model-provider",
        "openai",
        "--model-base-url",
        &base_url,
        "--tools-file",
        tools_file.path().to_str().unwrap(),
        "--tool-signing-key",
        TOOL_KEY,
    ]);
    let mut client = Client::connect(&gw.ws_url()).await;
    let session = client.create_session().await;
    client.send_message(&session.id, "first").await;
    client.collect_turns(1).await;

    file.write(&prompt("You are the second assistant."));
    std::fs::write(tools_file.path(), tools("cancel_order")).unwrap();
    gw.sighup();
    reloads_counted(&gw, "ok", 1.0).await;
    client.send_message(&session.id, "second").await;
    client.collect_turns(1).await;

    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    let seen = |i: usize| {
        let body = &requests[i].body;
        (
            body["messages"][0]["content"].as_str().unwrap().to_string(),
            body["tools"][0]["function"]["name"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    };
    let (prompt_1, tool_1) = seen(0);
    let (prompt_2, tool_2) = seen(1);
    assert!(prompt_1.contains("first assistant"), "{prompt_1}");
    assert_eq!(tool_1, "lookup_order");
    assert!(prompt_2.contains("second assistant"), "{prompt_2}");
    assert_eq!(tool_2, "cancel_order");
}
