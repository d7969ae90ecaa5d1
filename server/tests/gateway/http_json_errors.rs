//! Every HTTP error is JSON of the protocol's shape, whoever refused the request: a
//! route, the framework (unknown path, wrong method, a query that does not parse, a
//! `/ws` that is not an upgrade) — and credentials are checked before the query.

use reqwest::Method;
use serde_json::json;

use crate::support::http::{ADMIN_SECRET, Api, Reply, keyed_gateway};
use crate::support::jwt::{Claims, connect_bearer};

fn assert_json_error(reply: &Reply, status: u16, code: &str, what: &str) {
    reply.assert_error(status, code, what);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{what}: content type {:?}",
        reply.header("content-type")
    );
}

#[tokio::test]
async fn refusals_no_route_chose_are_json_errors() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);

    let unknown = api.get("/no/such/route", None).await;
    assert_json_error(&unknown, 404, "not_found", "unknown path");
    assert!(
        unknown.json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("/no/such/route")),
        "{}",
        unknown.text
    );

    let wrong_method = api.call(Method::DELETE, "/health", None, None).await;
    assert_json_error(&wrong_method, 405, "unsupported", "DELETE /health");
    assert!(wrong_method.header("allow").is_some(), "405 keeps Allow");

    let not_an_upgrade = api.get("/ws", None).await;
    assert!(
        not_an_upgrade.status >= 400 && not_an_upgrade.json["error"]["code"].is_string(),
        "GET /ws without an upgrade: {} {}",
        not_an_upgrade.status,
        not_an_upgrade.text
    );
}

/// A query that does not parse is `401` without credentials (they are checked first)
/// and `400 bad_request` with them — JSON both times.
#[tokio::test]
async fn credentials_come_before_the_query_and_a_bad_query_is_json() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let path = "/v1/sessions/s_00000000000000000000000000000000/events?after_seq=x";
    assert_json_error(
        &api.get(path, None).await,
        401,
        "unauthorized",
        "no credentials",
    );
    assert_json_error(
        &api.get(path, Some("not-a-key-and-not-a-token")).await,
        401,
        "unauthorized",
        "a bad credential",
    );
    assert_json_error(
        &api.get(path, Some(ADMIN_SECRET)).await,
        400,
        "bad_request",
        "after_seq=x with an admin key",
    );
    let list = "/v1/sessions?limit=many";
    assert_json_error(
        &api.get(list, None).await,
        401,
        "unauthorized",
        "no credentials",
    );
}

/// A body must be a JSON object: an array is refused even where every field is
/// optional (serde would read it field by field).
#[tokio::test]
async fn a_body_that_is_not_an_object_is_refused() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let reply = api
        .call(
            Method::PUT,
            "/v1/admin/model-settings?org_id=acme",
            Some(ADMIN_SECRET),
            Some(&json!([null, null])),
        )
        .await;
    assert_json_error(&reply, 400, "bad_request", "an array body");
    // Nor inside one: serde would read a struct from an array of its fields.
    for (method, path, body, what) in [
        (
            Method::POST,
            "/v1/admin/documents",
            json!({"doc_id": "d1", "org_id": "acme", "title": "T", "text": "x", "acl": [true, [], []]}),
            "an ACL as an array",
        ),
        (
            Method::PUT,
            "/v1/admin/model-settings?org_id=acme",
            json!({"tools": [["t", "d", {}, "https://tools.example/t", false]]}),
            "a tool as an array",
        ),
        (
            Method::PUT,
            "/v1/admin/assistants/a1?org_id=acme",
            json!({"settings": [null, null]}),
            "an assistant's settings as an array",
        ),
    ] {
        let reply = api
            .call(method, path, Some(ADMIN_SECRET), Some(&body))
            .await;
        assert_json_error(&reply, 400, "bad_request", what);
    }
    let listed = api
        .get("/v1/admin/documents?org_id=acme", Some(ADMIN_SECRET))
        .await;
    assert_eq!(
        listed.expect(200, "documents")["documents"],
        json!([]),
        "nothing stored"
    );
}

/// `bearer <key>` (lower case) is the same credential on `/v1` as on `/ws`; another
/// scheme is `401`.
#[tokio::test]
async fn the_http_bearer_scheme_is_case_insensitive() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let lower = api
        .run(
            api.builder(Method::GET, "/v1/admin/retention?org_id=acme")
                .header("Authorization", format!("bearer {ADMIN_SECRET}")),
        )
        .await;
    lower.expect(200, "bearer, lower case");
    let basic = api
        .run(
            api.builder(Method::GET, "/v1/admin/retention?org_id=acme")
                .header("Authorization", format!("Basic {ADMIN_SECRET}")),
        )
        .await;
    assert_json_error(&basic, 401, "unauthorized", "Basic");
    // And the WebSocket accepts the usual header.
    let client = connect_bearer(&gw, &Claims::user("u1", "acme").hs256()).await;
    assert_eq!(client.welcome["principal"]["user_id"], "u1");
}

/// What the OpenAPI document promises about numbers holds: an integer may be written
/// `149.0` (JSON Schema counts it as one), a fraction or an out-of-range value is a
/// `400` naming the field's range.
#[tokio::test]
async fn whole_floats_are_integers_and_ranges_are_enforced() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let retention = "/v1/admin/retention?org_id=acme";
    let put = |path: &'static str, body: serde_json::Value| {
        let api = &api;
        async move {
            api.call(Method::PUT, path, Some(ADMIN_SECRET), Some(&body))
                .await
        }
    };

    let whole = put(retention, json!({"retention_days": 149.0})).await;
    assert_eq!(whole.status, 200, "{}", whole.text);
    let read = api.get(retention, Some(ADMIN_SECRET)).await;
    assert_eq!(read.json["retention_days"], 149, "{}", read.text);
    let fraction = put(retention, json!({"retention_days": 7.5})).await;
    assert_json_error(&fraction, 400, "bad_request", "7.5 days");

    let settings = "/v1/admin/model-settings?org_id=acme";
    let tokens = put(settings, json!({"max_tokens": 2048.0})).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let too_many = put(settings, json!({"max_tokens": 3_000_000_000u64})).await;
    assert_json_error(&too_many, 400, "bad_request", "3e9 tokens");
    assert!(
        too_many.text.contains("max_tokens must be 1 to 1000000"),
        "{}",
        too_many.text
    );
}
