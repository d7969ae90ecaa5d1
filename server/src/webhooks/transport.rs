//! One HTTP attempt: a signed POST that never follows a redirect, gives up after
//! [`TIMEOUT`], and reads at most [`MAX_ANSWER_BYTES`] of the answer.

use std::time::Duration;

use async_trait::async_trait;

use super::schedule::Attempt;

/// Longest one attempt may take, connecting and answering included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of an endpoint's answer read (for the delivery log); the rest is dropped.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024;

/// A signed request, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub url: String,
    /// Header names (lowercase) and values besides `content-type`.
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// Sends one attempt. The gateway's is [`HttpTransport`]; tests script their own.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    async fn send(&self, request: Request) -> Attempt;
}

/// Attempts over HTTP(S) with reqwest (rustls), as the tool runner calls tools.
pub struct HttpTransport {
    http: reqwest::Client,
}

impl HttpTransport {
    pub fn new() -> anyhow::Result<HttpTransport> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Switchboard-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpTransport { http })
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn send(&self, request: Request) -> Attempt {
        let mut builder = self
            .http
            .post(&request.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let mut response = match builder.body(request.body).send().await {
            Ok(response) => response,
            Err(e) => {
                return Attempt::NoAnswer {
                    error: describe(&e),
                };
            }
        };
        let status = response.status().as_u16();
        let mut answer = Vec::new();
        // An error or a timeout while reading the answer does not change the status.
        while answer.len() < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_ANSWER_BYTES - answer.len();
                    answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        Attempt::Answered {
            status,
            body: String::from_utf8_lossy(&answer).into_owned(),
        }
    }
}

/// Why no answer came, without the URL (the log names the endpoint already).
fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        format!("no answer within {}s", TIMEOUT.as_secs())
    } else if error.is_connect() {
        "could not connect".to_string()
    } else {
        "the request failed".to_string()
    };
    let mut cause = std::error::Error::source(error);
    let mut detail = None;
    while let Some(inner) = cause {
        detail = Some(inner.to_string());
        cause = inner.source();
    }
    match detail {
        Some(detail) => format!("{what}: {detail}"),
        None => what,
    }
}
