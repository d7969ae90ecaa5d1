//! Connections from the internet (issue 20, M4): idle and trickling sockets are closed
//! after the header and idle timeouts, and each visitor address gets a bounded share of
//! connections, its refusals answered 429 (its own limits) or 503 (the process's) with
//! `Retry-After` and the protocol's JSON error.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard_testkit::{Gateway, GatewayCommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::gateway::binary;
use crate::support::{jwt, metric_sum};

/// Sockets the attacker holds: half silent, half a partial request line.
const ATTACK_SOCKETS: usize = 300;

/// A gateway whose open-files limit is `nofile`, started through `sh -c 'ulimit -n'`.
fn start_with_open_files(nofile: u32, args: &[&str]) -> Gateway {
    let script = std::env::temp_dir().join(format!(
        "switchboard-nofile-{}-{nofile}-{}.sh",
        std::process::id(),
        args.len()
    ));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nulimit -n {nofile} || exit 1\nexec '{}' \"$@\"\n",
            binary().display()
        ),
    )
    .unwrap();
    set_executable(&script);
    GatewayCommand::new(script).args(args).start()
}

fn set_executable(path: &PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A TCP connection to the gateway from the loopback address `from` (127.0.0.0/8 is
/// all local, so each address is another visitor).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    tokio::time::timeout(Duration::from_secs(10), socket.connect(to))
        .await
        .expect("connect timed out")
        .expect("connect")
}

/// `GET path` from `from`, with the time it took; `None` when it did not answer
/// within `patience`.
async fn get_from(
    gw: &Gateway,
    from: [u8; 4],
    path: &str,
    patience: Duration,
) -> Option<(reqwest::Response, Duration)> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::from(from))
        .timeout(patience)
        .build()
        .unwrap();
    let started = Instant::now();
    let response = client
        .get(format!("{}{path}", gw.http_url()))
        .send()
        .await
        .ok()?;
    Some((response, started.elapsed()))
}

/// Send `request` on a fresh connection from `from` and read until the server closes.
async fn exchange(gw: &Gateway, from: [u8; 4], request: &str) -> String {
    let mut stream = connect_from(from, gw.socket_addr()).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server neither answered nor closed")
        .ok();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Status code, `Retry-After` and JSON body of a raw HTTP/1.1 answer.
fn parse_answer(raw: &str) -> (u16, Option<u64>, Value) {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    let retry_after = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("retry-after")
            .then(|| value.trim().parse().ok())?
    });
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, retry_after, body)
}

/// `GET /metrics`, from an address no test attacks from.
async fn metrics(gw: &Gateway) -> String {
    let client = reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::from([127, 0, 0, 250]))
        .build()
        .unwrap();
    client
        .get(format!("{}/metrics", gw.http_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Whether the server closed `stream` (end of stream or reset), looking for `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// The attack of M4, on a gateway with 256 open files: 300 sockets from one address,
/// half silent and half stuck in a request line. Before: `/health` from anyone else
/// timed out while they were held (the accept loop out of descriptors). Now: the
/// address gets its 64, the rest are refused, `/health` answers at once, and the
/// attacker's sockets are closed when the header timeout passes.
#[tokio::test]
async fn idle_sockets_from_one_address_neither_starve_health_nor_stay_open() {
    let gw = start_with_open_files(
        256,
        &["--http-header-timeout", "3s", "--http-idle-timeout", "5s"],
    );
    let attacker = [127, 0, 0, 1];
    let mut sockets = Vec::new();
    for n in 0..ATTACK_SOCKETS {
        let mut stream = connect_from(attacker, gw.socket_addr()).await;
        if n % 2 == 1 {
            stream.write_all(b"GET /hea").await.unwrap();
        }
        sockets.push(stream);
    }
    let opened = Instant::now();
    // While they are held: another visitor's /health answers promptly.
    let mut latencies = Vec::new();
    for _ in 0..5 {
        let (response, took) = get_from(&gw, [127, 0, 0, 2], "/health", Duration::from_secs(2))
            .await
            .expect("/health did not answer within 2s while idle sockets were held");
        assert_eq!(response.status(), 200);
        latencies.push(took);
    }
    eprintln!("/health latency while {ATTACK_SOCKETS} idle sockets are held: {latencies:?}");
    // Every attacker socket is closed — refused at once, or at the header timeout.
    for (n, stream) in sockets.iter_mut().enumerate() {
        let left = Duration::from_secs(10).saturating_sub(opened.elapsed());
        assert!(
            closed_within(stream, left).await,
            "attacker socket {n} still open {:?} after it was opened",
            opened.elapsed()
        );
    }
    eprintln!("all attacker sockets closed after {:?}", opened.elapsed());
    drop(sockets);
    let text = metrics(&gw).await;
    let timeouts = metric_sum(
        &text,
        "switchboard_http_timeouts_total",
        Some("phase=\"header\""),
    );
    assert!(timeouts.unwrap_or(0.0) >= 1.0, "{text}");
    let refused = metric_sum(
        &text,
        "switchboard_connections_refused_total",
        Some("limit=\"ip_open\""),
    );
    assert!(refused.unwrap_or(0.0) >= 1.0, "{text}");
}

/// A kept-alive connection that sends nothing more is closed after the idle timeout.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let gw = GatewayCommand::new(binary())
        .args(["--http-header-timeout", "1s", "--http-idle-timeout", "2s"])
        .start();
    let mut stream = connect_from([127, 0, 0, 1], gw.socket_addr()).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    assert!(
        closed_within(&mut stream, Duration::from_secs(6)).await,
        "an idle keep-alive connection stayed open past --http-idle-timeout"
    );
    let text = metrics(&gw).await;
    assert!(
        metric_sum(
            &text,
            "switchboard_http_timeouts_total",
            Some("phase=\"idle\"")
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{text}"
    );
}

/// Past `--max-connections-per-ip`, one more connection from that address is answered
/// 429 `rate_limited` with `Retry-After`; another address is served.
#[tokio::test]
async fn open_connections_per_address_are_capped_with_429() {
    let gw = GatewayCommand::new(binary())
        .args(["--max-connections-per-ip", "3"])
        .start();
    let visitor = [127, 0, 0, 3];
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(visitor, gw.socket_addr()).await);
    }
    let answer = exchange(
        &gw,
        visitor,
        "GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n",
    )
    .await;
    let (status, retry_after, body) = parse_answer(&answer);
    assert_eq!(status, 429, "{answer}");
    assert!(retry_after.is_some_and(|s| s >= 1), "{answer}");
    assert_eq!(body["error"]["code"], "rate_limited", "{answer}");
    let (response, _) = get_from(&gw, [127, 0, 0, 4], "/health", Duration::from_secs(5))
        .await
        .expect("another address was not served");
    assert_eq!(response.status(), 200);
    // One closes: the address may connect again.
    drop(held.pop());
    switchboard_testkit::eventually(Duration::from_secs(10), "a place freed", || async {
        let request = "GET /health HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n";
        parse_answer(&exchange(&gw, visitor, request).await).0 == 200
    })
    .await;
}

/// Past `--connections-per-minute-per-ip`, the next connection is answered 429 with
/// the seconds until one is allowed again.
#[tokio::test]
async fn new_connections_per_address_are_rate_limited_with_429() {
    let gw = GatewayCommand::new(binary())
        .args(["--connections-per-minute-per-ip", "5"])
        .start();
    let visitor = [127, 0, 0, 5];
    let request = "GET /health HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n";
    for n in 0..5 {
        let (status, _, _) = parse_answer(&exchange(&gw, visitor, request).await);
        assert_eq!(status, 200, "connection {n} of the minute");
    }
    let answer = exchange(&gw, visitor, request).await;
    let (status, retry_after, body) = parse_answer(&answer);
    assert_eq!(status, 429, "{answer}");
    assert_eq!(body["error"]["code"], "rate_limited", "{answer}");
    // One connection per 12 s refills; the sixth came within a few seconds of the first.
    assert!(
        retry_after.is_some_and(|s| (1..=12).contains(&s)),
        "{answer}"
    );
    let text = metrics(&gw).await;
    assert_eq!(
        metric_sum(
            &text,
            "switchboard_connections_refused_total",
            Some("limit=\"ip_rate\"")
        ),
        Some(1.0),
        "{text}"
    );
}

/// Past `--max-tcp-connections`, any address is answered 503 `unavailable`.
#[tokio::test]
async fn the_process_wide_cap_answers_503() {
    let gw = GatewayCommand::new(binary())
        .args(["--max-tcp-connections", "4"])
        .start();
    let mut held = Vec::new();
    for n in 0..4u8 {
        held.push(connect_from([127, 0, 1, n], gw.socket_addr()).await);
    }
    let answer = exchange(
        &gw,
        [127, 0, 1, 9],
        "GET /health HTTP/1.1\r\nHost: g\r\n\r\n",
    )
    .await;
    let (status, retry_after, body) = parse_answer(&answer);
    assert_eq!(status, 503, "{answer}");
    assert!(retry_after.is_some(), "{answer}");
    assert_eq!(body["error"]["code"], "unavailable", "{answer}");
}

/// WebSocket upgrade request bytes, with `X-Forwarded-For` when given.
fn upgrade_request(forwarded_for: Option<&str>) -> String {
    let forwarded = forwarded_for
        .map(|ip| format!("X-Forwarded-For: {ip}\r\n"))
        .unwrap_or_default();
    format!(
        "GET /ws HTTP/1.1\r\nHost: gateway\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: switchboard.v1\r\n{forwarded}\r\n"
    )
}

/// Open WebSockets are capped per client address, read through `--trusted-proxies`:
/// behind a trusted proxy each forwarded client has its own count.
#[tokio::test]
async fn open_websockets_are_capped_per_client_behind_a_trusted_proxy() {
    let gw = GatewayCommand::new(binary())
        .args([
            "--trusted-proxies",
            "127.0.0.1",
            "--max-websockets-per-client",
            "1",
        ])
        .start();
    let proxy = [127, 0, 0, 1];
    let open = |client: &'static str| {
        let addr = gw.socket_addr();
        async move {
            let mut stream = connect_from(proxy, addr).await;
            stream
                .write_all(upgrade_request(Some(client)).as_bytes())
                .await
                .unwrap();
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
                .await
                .expect("no answer to the upgrade")
                .unwrap();
            (String::from_utf8_lossy(&buf[..n]).into_owned(), stream)
        }
    };
    let (first, _first_socket) = open("198.51.100.1").await;
    assert!(first.starts_with("HTTP/1.1 101"), "{first}");
    let (second, _) = open("198.51.100.1").await;
    assert!(second.starts_with("HTTP/1.1 429"), "{second}");
    assert!(second.contains("rate_limited"), "{second}");
    assert!(
        second.to_ascii_lowercase().contains("retry-after"),
        "{second}"
    );
    let (other, _other_socket) = open("198.51.100.2").await;
    assert!(other.starts_with("HTTP/1.1 101"), "{other}");
}

/// `switchboard serve` refuses timeouts that cannot work.
#[tokio::test]
async fn timeouts_that_cannot_work_are_refused_at_boot() {
    for args in [
        &["--http-header-timeout", "0s"][..],
        &["--http-header-timeout", "40s", "--http-idle-timeout", "30s"][..],
    ] {
        let result = GatewayCommand::new(binary()).args(args).try_start();
        let Err(e) = result else {
            panic!("started with {args:?}");
        };
        assert!(e.to_string().contains("--http-header-timeout"), "{e}");
    }
}

/// A JWKS URL that answers its first fetch (at boot) and then never again.
async fn jwks_that_hangs_after_boot() -> String {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let document = jwt::jwks(vec![jwt::rsa_jwk(jwt::RSA_PUBLIC, "k1")]);
    let served = Arc::new(AtomicBool::new(false));
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (document, served) = (document.clone(), served.clone());
            async move {
                if served.swap(true, Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                ([("content-type", "application/json")], document)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Checking credentials gets `--ws-handshake-timeout`: a token whose key must be
/// fetched from a JWKS URL that does not answer is refused 503 when it passes, not
/// after the fetch's own 10 s. (Two workers: starting the gateway blocks one while the
/// JWKS server answers its boot fetch.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_whose_credentials_take_too_long_is_refused_503() {
    let jwks = jwks_that_hangs_after_boot().await;
    let gw = GatewayCommand::new(binary())
        .args([
            "--jwks-url",
            &jwks,
            "--insecure-jwks-http-for-tests",
            "--jwks-min-refresh",
            "1s",
            "--ws-handshake-timeout",
            "1s",
        ])
        .start();
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the min refresh interval
    let token = jwt::Claims::user("u-slow", "acme").rs256(Some("k-unknown"));
    let request = upgrade_request(None).replace(
        "\r\n\r\n",
        &format!("\r\nAuthorization: Bearer {token}\r\n\r\n"),
    );
    let started = Instant::now();
    let mut stream = connect_from([127, 0, 0, 7], gw.socket_addr()).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(8), stream.read(&mut buf))
        .await
        .expect("no answer within 8 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("ws-handshake-timeout"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let text = metrics(&gw).await;
    assert_eq!(
        metric_sum(
            &text,
            "switchboard_http_timeouts_total",
            Some("phase=\"ws_handshake\"")
        ),
        Some(1.0),
        "{text}"
    );
}
