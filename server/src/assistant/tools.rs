//! Tools the model may call: their definitions (from `--tools-file` or an org's model
//! settings), and the client that runs a call on the customer's backend.
//!
//! A tool endpoint gets the caller's identity as a short-lived HS256 token signed with
//! `--tool-signing-key` in `X-Switchboard-Identity`, never the user's own JWT: the
//! user's token is a bearer credential for the gateway and must not travel further.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::AccessContext;
use crate::assistant::model::ToolDefinition;
use crate::config::Secret;

/// The header that carries the signed identity.
pub const IDENTITY_HEADER: &str = "x-switchboard-identity";
/// How long the identity token is valid: long enough for one call.
const IDENTITY_TTL: Duration = Duration::from_secs(60);
/// Largest tool output kept (bytes); more is cut, so a chatty backend cannot bloat
/// history or the prompt.
const MAX_OUTPUT_BYTES: usize = 16 * 1024;

/// A configured tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    /// 1 to 64 characters of a-z, A-Z, 0-9, `_`, `-` (what OpenAI-compatible APIs accept).
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    /// At most 1,024 characters.
    #[schema(max_length = 1024)]
    pub description: String,
    /// JSON Schema of the arguments object.
    #[serde(default = "empty_object_schema")]
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// `http(s)://…` URL the gateway POSTs a call to.
    #[schema(
        pattern = r"^https?://([A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*(:[1-9][0-9]{0,3})?(/[^\s]*)?$"
    )]
    pub endpoint: String,
    /// Whether a member must approve each call (`tool.decide`) before it runs.
    /// Defaults to true: a tool runs unasked only when its configuration says so.
    #[serde(default = "default_true")]
    pub requires_approval: bool,
}

fn default_true() -> bool {
    true
}

fn empty_object_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

impl ToolSpec {
    /// What the model sees.
    pub fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: self.name.clone(),
            description: self.description.clone(),
            parameters: self.parameters.clone(),
        }
    }

    /// The endpoint's origin, `scheme://host:port`.
    pub fn origin(&self) -> Option<String> {
        let url = reqwest::Url::parse(&self.endpoint).ok()?;
        Some(url.origin().ascii_serialization())
    }
}

/// Check a list of tools: names valid and unique, parameters an object schema,
/// endpoints http(s).
pub fn validate(tools: &[ToolSpec]) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for tool in tools {
        let name_ok = !tool.name.is_empty()
            && tool.name.len() <= 64
            && tool
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(format!(
                "tool name '{}' must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '-'",
                tool.name
            ));
        }
        if !names.insert(tool.name.as_str()) {
            return Err(format!("tool '{}' is defined twice", tool.name));
        }
        if tool.description.chars().count() > 1024 {
            return Err(format!(
                "tool '{}': description is longer than 1024 characters",
                tool.name
            ));
        }
        if !tool.parameters.is_object() {
            return Err(format!(
                "tool '{}': parameters must be a JSON Schema object",
                tool.name
            ));
        }
        let scheme_ok = reqwest::Url::parse(&tool.endpoint)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !scheme_ok {
            return Err(format!(
                "tool '{}': endpoint '{}' is not an http(s) URL",
                tool.name, tool.endpoint
            ));
        }
    }
    Ok(())
}

/// Why one of `tools` may not be called, if its endpoint is not on an origin in
/// `allowed` (an operator's decision, not a malformed request).
pub fn origin_refused(tools: &[ToolSpec], allowed: &[String]) -> Option<String> {
    tools.iter().find_map(|tool| {
        let origin = tool.origin().unwrap_or_default();
        (!allowed.iter().any(|a| a.trim_end_matches('/') == origin)).then(|| {
            format!(
                "tool '{}': endpoint origin {origin} is not allowed; the operator lists allowed origins in --tool-endpoint-origins",
                tool.name
            )
        })
    })
}

/// Why the org tool `tool` may not be declared next to the gateway's `deployment`
/// tools (`--tools-file`), if it may not: it would shadow one, taking its name or its
/// endpoint (perhaps without its approval). An org keeps a gateway tool by listing it
/// unchanged.
pub fn shadows(tool: &ToolSpec, deployment: &[ToolSpec]) -> Option<String> {
    let endpoint = same_endpoint_key(&tool.endpoint);
    let shadowed = deployment.iter().find(|d| {
        d.name == tool.name || (endpoint.is_some() && same_endpoint_key(&d.endpoint) == endpoint)
    })?;
    if shadowed == tool {
        return None;
    }
    Some(if shadowed.name == tool.name {
        format!(
            "tool '{}' is a tool of this gateway (--tools-file); an org tool may not take its name: list it unchanged to keep it, or name yours differently",
            tool.name
        )
    } else {
        format!(
            "tool '{}': endpoint {} is the gateway's tool '{}' (--tools-file); an org tool may not call it under another definition: list '{}' unchanged to keep it",
            tool.name, tool.endpoint, shadowed.name, shadowed.name
        )
    })
}

/// An endpoint as compared for shadowing: scheme, host, port and path (without a
/// trailing `/`), so spelling variants of one URL are one endpoint.
fn same_endpoint_key(endpoint: &str) -> Option<String> {
    let url = reqwest::Url::parse(endpoint).ok()?;
    Some(format!(
        "{}{}",
        url.origin().ascii_serialization(),
        url.path().trim_end_matches('/')
    ))
}

/// Read and check `--tools-file`.
pub fn load_file(path: &Path) -> anyhow::Result<Vec<ToolSpec>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("--tools-file {}: {e}", path.display()))?;
    let tools: Vec<ToolSpec> = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("--tools-file {}: {e}", path.display()))?;
    validate(&tools).map_err(|e| anyhow::anyhow!("--tools-file {}: {e}", path.display()))?;
    Ok(tools)
}

/// What a tool call came to: `ok` and an output that goes to the model and into
/// `tool.result`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutcome {
    pub ok: bool,
    pub output: Value,
}

impl ToolOutcome {
    pub fn failed(message: impl Into<String>) -> ToolOutcome {
        ToolOutcome {
            ok: false,
            output: json!({"error": message.into()}),
        }
    }
}

/// Claims of the identity token sent to tool endpoints.
#[derive(Debug, Serialize, Deserialize)]
pub struct IdentityClaims {
    pub iss: String,
    /// The tool's name: a token for one tool is no good for another.
    pub aud: String,
    pub sub: Option<String>,
    pub org_id: String,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub anonymous: bool,
    pub session_id: String,
    pub call_id: String,
    /// Whether a person approved this call (`tool.decide`) before it ran. False for a
    /// tool configured with `requires_approval: false`: an endpoint whose action needs
    /// a person's consent refuses a call without it.
    pub approved: bool,
    /// Who approved it (`tool.result.decided_by`), when a person did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    pub iat: u64,
    pub exp: u64,
}

/// Runs tool calls on their endpoints.
pub struct ToolRunner {
    http: reqwest::Client,
    signing_key: Option<Secret>,
}

/// Everything one call needs besides the tool.
pub struct CallContext<'a> {
    pub access: &'a AccessContext,
    pub session_id: &'a str,
    pub turn_id: &'a str,
    /// The gateway's id of the call (`tool.request.call_id`), not the model's.
    pub call_id: &'a str,
    /// Whether a person approved the call, and who (`tool.result.decided_by`).
    pub approved: bool,
    pub approved_by: Option<&'a str>,
}

impl ToolRunner {
    pub fn new(signing_key: Option<Secret>, timeout: Duration) -> anyhow::Result<ToolRunner> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(ToolRunner { http, signing_key })
    }

    fn identity(&self, tool: &ToolSpec, ctx: &CallContext<'_>) -> Option<String> {
        let key = self.signing_key.as_ref()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = IdentityClaims {
            iss: "switchboard".into(),
            aud: tool.name.clone(),
            sub: ctx.access.user_id.clone(),
            org_id: ctx.access.org_id.clone(),
            groups: ctx.access.groups.clone(),
            roles: ctx.access.roles.clone(),
            anonymous: ctx.access.anonymous,
            session_id: ctx.session_id.to_string(),
            call_id: ctx.call_id.to_string(),
            approved: ctx.approved,
            approved_by: ctx.approved_by.map(str::to_string),
            iat: now,
            exp: now + IDENTITY_TTL.as_secs(),
        };
        jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(key.expose().as_bytes()),
        )
        .ok()
    }

    /// POST the call to the tool's endpoint. Every failure becomes an outcome with
    /// `ok: false` that the model can read; none ends the turn.
    pub async fn run(
        &self,
        tool: &ToolSpec,
        arguments: &Value,
        ctx: &CallContext<'_>,
    ) -> ToolOutcome {
        let Some(identity) = self.identity(tool, ctx) else {
            return ToolOutcome::failed(
                "the gateway has no --tool-signing-key, so it calls no tools",
            );
        };
        let body = json!({
            "tool": tool.name,
            "call_id": ctx.call_id,
            "session_id": ctx.session_id,
            "turn_id": ctx.turn_id,
            "arguments": arguments,
        });
        let response = match self
            .http
            .post(&tool.endpoint)
            .header(IDENTITY_HEADER, identity)
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return ToolOutcome::failed(format!(
                    "the tool {} did not answer in time",
                    tool.name
                ));
            }
            Err(e) => {
                tracing::warn!(tool = %tool.name, error = %e, "tool endpoint unreachable");
                return ToolOutcome::failed(format!("the tool {} could not be reached", tool.name));
            }
        };
        let status = response.status();
        let (bytes, cut) = match read_capped(response, MAX_OUTPUT_BYTES).await {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(tool = %tool.name, error = %e, "tool endpoint answer unreadable");
                return ToolOutcome::failed(format!(
                    "the tool {}'s answer could not be read",
                    tool.name
                ));
            }
        };
        let output = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(|_| !cut)
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status.is_success() {
            ToolOutcome { ok: true, output }
        } else {
            ToolOutcome {
                ok: false,
                output: json!({"error": format!("the tool answered HTTP {}", status.as_u16()), "body": output}),
            }
        }
    }
}

/// The first `cap` bytes of a body, and whether it had more. Reading stops at the
/// cap: the rest is never read (dropping the response closes its connection), so a
/// huge answer costs no more than `cap` and one chunk.
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = cap.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, endpoint: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: "d".into(),
            parameters: empty_object_schema(),
            endpoint: endpoint.into(),
            requires_approval: true,
        }
    }

    fn asker() -> AccessContext {
        AccessContext {
            user_id: Some("ann".into()),
            org_id: "acme".into(),
            groups: vec![],
            roles: vec![],
            anonymous: false,
            name: None,
        }
    }

    fn runner() -> ToolRunner {
        let key: Secret = "tool-signing-key-0123456789abcdefghij".parse().unwrap();
        ToolRunner::new(Some(key), Duration::from_secs(10)).unwrap()
    }

    /// A tool endpoint whose answer is 256 MiB: the gateway reads about the 16 KiB it
    /// keeps and hangs up (issue 20, L3: a 300 MiB answer was read whole, and the
    /// gateway's memory grew by as much).
    #[tokio::test]
    async fn a_huge_answer_is_cut_without_being_read_whole() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        use futures_util::StreamExt;

        const CHUNK: usize = 64 * 1024;
        const TOTAL: usize = 256 * 1024 * 1024;
        static FILLER: [u8; CHUNK] = [b'x'; CHUNK];
        let produced = Arc::new(AtomicUsize::new(0));
        let counter = produced.clone();
        let app = axum::Router::new().fallback(move || {
            let counter = counter.clone();
            async move {
                let chunks = futures_util::stream::iter(0..TOTAL / CHUNK).map(move |_| {
                    counter.fetch_add(CHUNK, Ordering::Relaxed);
                    Ok::<_, std::io::Error>(bytes::Bytes::from_static(&FILLER))
                });
                axum::body::Body::from_stream(chunks)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let access = asker();
        let ctx = CallContext {
            access: &access,
            session_id: "s_1",
            turn_id: "t_1",
            call_id: "tc_1",
            approved: false,
            approved_by: None,
        };
        let outcome = runner()
            .run(
                &tool("big", &format!("http://{addr}/big")),
                &json!({}),
                &ctx,
            )
            .await;
        assert!(outcome.ok, "{:?}", outcome.output.as_str().map(str::len));
        let kept = outcome.output.as_str().expect("cut output is text");
        assert_eq!(kept.len(), MAX_OUTPUT_BYTES);
        // What the server could still push into the sockets' buffers after the cut.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let produced = produced.load(Ordering::Relaxed);
        eprintln!("L3: the endpoint produced {produced} of {TOTAL} bytes");
        assert!(
            produced < 32 * 1024 * 1024,
            "the gateway read {produced} bytes of a {TOTAL}-byte answer it keeps 16 KiB of"
        );
        server.abort();
    }

    /// The identity token says whether a person approved the call, and who.
    #[test]
    fn the_identity_says_whether_a_person_approved() {
        let access = asker();
        let spec = tool("refund", "https://shop.example/tools/refund");
        let decode = |approved: bool, approved_by: Option<&str>| {
            let ctx = CallContext {
                access: &access,
                session_id: "s_1",
                turn_id: "t_1",
                call_id: "tc_1",
                approved,
                approved_by,
            };
            let token = runner().identity(&spec, &ctx).unwrap();
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
            validation.set_audience(&["refund"]);
            jsonwebtoken::decode::<Value>(
                &token,
                &jsonwebtoken::DecodingKey::from_secret(b"tool-signing-key-0123456789abcdefghij"),
                &validation,
            )
            .unwrap()
            .claims
        };
        let approved = decode(true, Some("ann"));
        assert_eq!(approved["approved"], true);
        assert_eq!(approved["approved_by"], "ann");
        let unasked = decode(false, None);
        assert_eq!(unasked["approved"], false);
        assert!(unasked.get("approved_by").is_none(), "{unasked}");
    }

    #[test]
    fn approval_is_required_unless_the_configuration_says_otherwise() {
        let parsed: ToolSpec = serde_json::from_value(json!({
            "name": "refund", "description": "Refund an order", "endpoint": "https://shop.example/tools/refund"
        }))
        .unwrap();
        assert!(parsed.requires_approval);
        assert_eq!(parsed.parameters, empty_object_schema());
    }

    #[test]
    fn bad_tools_are_refused_with_the_reason() {
        assert!(validate(&[tool("ok_name", "https://a.example/x")]).is_ok());
        let cases = [
            (
                vec![tool("bad name", "https://a.example/x")],
                "must be 1 to 64",
            ),
            (vec![tool("t", "ftp://a.example/x")], "not an http(s) URL"),
            (
                vec![
                    tool("t", "https://a.example/x"),
                    tool("t", "https://a.example/y"),
                ],
                "defined twice",
            ),
        ];
        for (tools, expected) in cases {
            let err = validate(&tools).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }

    /// Issue 20, L5: an org admin declared the gateway's approval-gated tool again,
    /// same name and endpoint, with `requires_approval: false`, and it ran unasked.
    #[test]
    fn org_tools_cannot_shadow_the_gateways_tools() {
        let gated = tool("refund", "https://shop.example/tools/refund");
        let deployment = vec![gated.clone()];
        assert_eq!(shadows(&gated, &deployment), None, "kept unchanged");
        let mut unasked = gated.clone();
        unasked.requires_approval = false;
        let refusal = shadows(&unasked, &deployment).unwrap();
        assert!(refusal.contains("may not take its name"), "{refusal}");
        for endpoint in [
            "https://shop.example/tools/refund",
            "https://SHOP.example:443/tools/refund/",
            "https://shop.example/tools/refund?x=1",
        ] {
            let mut renamed = tool("refund_now", endpoint);
            renamed.requires_approval = false;
            let refusal = shadows(&renamed, &deployment).unwrap();
            assert!(
                refusal.contains("is the gateway's tool 'refund'"),
                "{refusal}"
            );
        }
        assert_eq!(
            shadows(
                &tool("lookup", "https://shop.example/tools/lookup"),
                &deployment
            ),
            None
        );
    }

    #[test]
    fn org_tools_may_only_call_allowed_origins() {
        let allowed = vec!["https://shop.example".to_string()];
        let refused =
            |endpoint: &str, allowed: &[String]| origin_refused(&[tool("t", endpoint)], allowed);
        assert_eq!(refused("https://shop.example/tools/t", &allowed), None);
        let err = refused("http://169.254.169.254/latest", &allowed).unwrap();
        assert!(err.contains("not allowed"), "{err}");
        assert!(refused("https://shop.example/x", &[]).is_some());
    }
}
