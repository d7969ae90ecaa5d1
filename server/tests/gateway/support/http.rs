//! The `/v1` HTTP API from a test: every call under [`WAIT`], the reply read whole.

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::gateway::http_client;
use super::{Gateway, WAIT};

/// The publisher key of the access tests' gateways (`--publisher-keys backend:…`). The
/// gateway refuses secrets shorter than 16 characters.
pub const PUBLISHER_KEYS: &str = "backend:pub_secret_0123456789abcdef";
pub const PUBLISHER_SECRET: &str = "pub_secret_0123456789abcdef";
pub const PUBLISHER_NAME: &str = "backend";
/// The admin key (`--admin-keys ops:…`).
pub const ADMIN_KEYS: &str = "ops:adm_secret_0123456789abcdef";
pub const ADMIN_SECRET: &str = "adm_secret_0123456789abcdef";

/// A gateway with HS256 JWTs, a publisher key, an admin key and a fast offline agent
/// (memory backplane, default SQLite store), plus `extra` flags.
pub fn keyed_gateway(extra: &[&str]) -> Gateway {
    let mut args = vec![
        super::jwt::HS_ARGS[0],
        super::jwt::HS_ARGS[1],
        "--publisher-keys",
        PUBLISHER_KEYS,
        "--admin-keys",
        ADMIN_KEYS,
        "--offline-agent-delay",
        "1ms",
    ];
    args.extend_from_slice(extra);
    Gateway::start(&args)
}

/// A reply: status, headers, body text and the body parsed as JSON (`Null` if it is not).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Panics unless the status is `status` and the body is
    /// `{"error":{"code": code, "message": <string>}}`.
    pub fn assert_error(&self, status: u16, code: &str, what: &str) {
        assert_eq!(
            self.status, status,
            "{what}: expected {status} {code}, got {} {}",
            self.status, self.text
        );
        assert_eq!(
            self.json["error"]["code"], code,
            "{what}: error body must be {{\"error\":{{\"code\":\"{code}\",…}}}}, got {}",
            self.text
        );
        assert!(
            self.json["error"]["message"].is_string(),
            "{what}: error.message must be a string: {}",
            self.text
        );
    }

    /// Panics unless the status is `status`; returns the JSON body.
    pub fn expect(&self, status: u16, what: &str) -> &Value {
        assert_eq!(
            self.status, status,
            "{what}: expected {status}, got {} {}",
            self.status, self.text
        );
        &self.json
    }
}

/// The HTTP API of one gateway.
pub struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(gw: &Gateway) -> Api {
        Api {
            base: gw.http_url(),
            client: http_client(),
        }
    }

    /// A request builder for `method path` (no credentials).
    pub fn builder(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// Send `request` under [`WAIT`] and read the whole reply.
    pub async fn run(&self, request: reqwest::RequestBuilder) -> Reply {
        self.try_run(request)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Api::run`], but a failed request (e.g. the server closed the connection
    /// while the body was still being sent) is an `Err` instead of a panic.
    pub async fn try_run(&self, request: reqwest::RequestBuilder) -> Result<Reply, String> {
        let request = request.build().expect("build the request");
        let what = format!("{} {}", request.method(), request.url());
        let response = tokio::time::timeout(WAIT, self.client.execute(request))
            .await
            .unwrap_or_else(|_| panic!("{what} timed out after {WAIT:?}"))
            .map_err(|e| format!("{what} failed: {e:?}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = tokio::time::timeout(WAIT, response.text())
            .await
            .unwrap_or_else(|_| panic!("{what}: reading the body timed out"))
            .unwrap_or_else(|e| panic!("{what}: reading the body failed: {e}"));
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            headers,
            text,
            json,
        })
    }

    /// `method path` with `Authorization: Bearer <credential>` (when given) and a JSON
    /// body (when given).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        credential: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self.builder(method, path);
        if let Some(credential) = credential {
            request = request.bearer_auth(credential);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.run(request).await
    }

    pub async fn get(&self, path: &str, credential: Option<&str>) -> Reply {
        self.call(Method::GET, path, credential, None).await
    }

    pub async fn post(&self, path: &str, credential: Option<&str>, body: &Value) -> Reply {
        self.call(Method::POST, path, credential, Some(body)).await
    }

    pub async fn delete(&self, path: &str, credential: Option<&str>) -> Reply {
        self.call(Method::DELETE, path, credential, None).await
    }

    /// `POST /v1/publish`.
    pub async fn publish(&self, credential: Option<&str>, body: &Value) -> Reply {
        self.post("/v1/publish", credential, body).await
    }

    /// `POST /v1/publish` with the publisher key; panics unless 202. Returns the body.
    pub async fn publish_ok(&self, body: &Value) -> Value {
        let reply = self.publish(Some(PUBLISHER_SECRET), body).await;
        reply.expect(202, &format!("publish {body}")).clone()
    }

    /// `POST /v1/admin/documents` with the admin key; panics unless 200.
    pub async fn ingest(&self, doc: &Value) {
        let reply = self
            .post("/v1/admin/documents", Some(ADMIN_SECRET), doc)
            .await;
        reply.expect(200, &format!("ingest {doc}"));
    }

    /// `GET /v1/admin/documents?org_id=…` with the admin key: the listed doc ids.
    pub async fn admin_doc_ids(&self, org: &str) -> Vec<String> {
        let reply = self
            .get(
                &format!("/v1/admin/documents?org_id={org}"),
                Some(ADMIN_SECRET),
            )
            .await;
        doc_ids(reply.expect(200, &format!("list documents of {org}")))
    }
}

/// The `doc_id`s of a `{"documents":[…]}` body, in order.
pub fn doc_ids(body: &Value) -> Vec<String> {
    body["documents"]
        .as_array()
        .unwrap_or_else(|| panic!("no documents array: {body}"))
        .iter()
        .map(|d| d["doc_id"].as_str().expect("doc_id").to_string())
        .collect()
}

/// A `{"target":{kind: id},"name","data"}` publish body.
pub fn publish_body(kind: &str, id: &str, name: &str, data: Value) -> Value {
    json!({"target": {kind: id}, "name": name, "data": data})
}
