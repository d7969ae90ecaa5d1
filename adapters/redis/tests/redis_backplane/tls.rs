//! `rediss://` URLs: a TLS connection to a real `redis-server --tls-port`, with a test
//! CA made on the spot.
//!
//! The client trusts the system's roots (rustls-native-certs), which honour
//! `SSL_CERT_FILE`. Setting an environment variable inside a running test binary is
//! `unsafe` in edition 2024 (and this workspace forbids `unsafe`), so the TLS client
//! runs in a child process of this same test binary, started with `SSL_CERT_FILE`
//! pointing at the test CA.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use switchboard_backplane::{Backplane, EventBody, Retention, StreamName};
use switchboard_redis::{ConnectError, RedisBackplane};
use switchboard_testkit::RedisServer;

const URL_VAR: &str = "SWITCHBOARD_TLS_TEST_URL";

/// The name of [`tls_client`] in this test binary, for `--exact`.
const TLS_CLIENT: &str = "tls::tls_client";

/// A CA and a server certificate for 127.0.0.1 / localhost, as PEM files in `dir`:
/// `ca.pem`, `server.pem`, `server.key`.
fn make_certificates(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "switchboard test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
}

/// A `rediss://` URL reaches a TLS Redis (rustls, with the ring provider this crate
/// installs), and a server whose certificate is not trusted is refused at connect.
#[tokio::test]
async fn rediss_urls_connect_over_tls() {
    let dir = std::env::temp_dir().join(format!("switchboard-redis-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    make_certificates(&dir);
    let tls_port = switchboard_testkit::free_port().to_string();
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let server = RedisServer::start_with_args(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &path("server.pem"),
        "--tls-key-file",
        &path("server.key"),
        "--tls-ca-cert-file",
        &path("ca.pem"),
        "--tls-auth-clients",
        "no",
    ]);
    let url = format!("rediss://127.0.0.1:{tls_port}/0");

    // Without the test CA the certificate is unknown: refused, fast, at connect.
    let error = tokio::time::timeout(
        Duration::from_secs(10),
        RedisBackplane::connect(&url, "tls:", Retention::default()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        matches!(
            error,
            ConnectError::Unreachable { .. } | ConnectError::Rejected { .. }
        ),
        "{error:?}"
    );

    // With it (in a child process, see the module docs) everything works over TLS.
    let output = Command::new(std::env::current_exe().unwrap())
        .args([TLS_CLIENT, "--exact", "--ignored", "--nocapture"])
        .env("SSL_CERT_FILE", path("ca.pem"))
        .env(URL_VAR, &url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the TLS client failed:\n{stdout}\n{stderr}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The TLS client half of `rediss_urls_connect_over_tls`, run in a child process.
#[tokio::test]
#[ignore = "run by rediss_urls_connect_over_tls, in a child process with SSL_CERT_FILE set"]
async fn tls_client() {
    let Ok(url) = std::env::var(URL_VAR) else {
        eprintln!(
            "{URL_VAR} is not set: this test only runs as a child of rediss_urls_connect_over_tls"
        );
        return;
    };
    let bp = RedisBackplane::connect(&url, "tls:", Retention::default())
        .await
        .unwrap_or_else(|e| panic!("connect over TLS: {e}"));
    assert!(
        bp.target().starts_with("rediss://127.0.0.1:"),
        "{}",
        bp.target()
    );
    let s = StreamName::session("tls").unwrap();
    let mut sub = bp.subscribe(&s).await.unwrap();
    let event = bp
        .append(
            &s,
            EventBody::TurnDelta {
                turn_id: "t".into(),
                text: "over tls".into(),
            },
        )
        .await
        .unwrap();
    let live = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live, event);
    assert_eq!(bp.read(&s, None, 10).await.unwrap().events, vec![event]);
}
