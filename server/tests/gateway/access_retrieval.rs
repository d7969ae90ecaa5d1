//! Who may read what: documents ingested through the admin API reach a reply or its
//! `sources` only when the asker may read them (docs/protocol.md §7), and the admin API
//! keeps each org's documents to itself (docs/http-api.md).

use serde_json::{Value, json};

use crate::support;
use crate::support::http::{ADMIN_KEYS, ADMIN_SECRET, Api, doc_ids};
use crate::support::jwt::{Claims, HS_ARGS, connect};
use crate::support::{Client, Gateway, is_assistant_message, ty};

/// HS256 JWTs, the admin key, and a fast offline agent; no knowledge file.
fn gateway() -> Gateway {
    Gateway::start(&[
        HS_ARGS[0],
        HS_ARGS[1],
        "--admin-keys",
        ADMIN_KEYS,
        "--offline-agent-delay",
        "1ms",
    ])
}

const QUESTION: &str = "When is the zebracorn payroll day?";

/// Group `finance` only, org acme.
const RESTRICTED_ID: &str = "fin-payroll";
const RESTRICTED_TITLE: &str = "Payroll calendar";
const RESTRICTED_SECRET: &str = "987654";

fn restricted_doc() -> Value {
    json!({
        "doc_id": RESTRICTED_ID,
        "org_id": "acme",
        "title": RESTRICTED_TITLE,
        "text": format!("The zebracorn payroll day is the twenty-fifth. Zebracorn salaries total {RESTRICTED_SECRET} this year."),
        "acl": {"groups": ["finance"]}
    })
}

fn public_doc() -> Value {
    json!({
        "doc_id": "pub-holidays",
        "org_id": "acme",
        "title": "Office holidays",
        "text": "The office closes on public holidays. Opening hours are nine to five on a normal day.",
        "uri": "https://acme.example/holidays",
        "acl": {"public": true}
    })
}

/// A public document of another org that matches the same question.
const GLOBEX_ID: &str = "globex-payroll";
const GLOBEX_SECRET: &str = "555111";

fn globex_doc() -> Value {
    json!({
        "doc_id": GLOBEX_ID,
        "org_id": "globex",
        "title": "Globex zebracorn payroll",
        "text": format!("The globex zebracorn payroll day is the first. Globex payroll code {GLOBEX_SECRET}."),
        "acl": {"public": true}
    })
}

fn token(sub: &str, org: &str, groups: &[&str], roles: &[&str]) -> String {
    Claims::user(sub, org).groups(groups).roles(roles).hs256()
}

/// A completed turn's `turn.end` and the whole text the asker saw (deltas, the end and
/// the assistant message).
struct Answer {
    end: Value,
    seen_text: String,
}

impl Answer {
    fn cited(&self) -> Vec<String> {
        self.end["sources"]
            .as_array()
            .unwrap_or_else(|| panic!("turn.end without sources: {}", self.end))
            .iter()
            .map(|s| s["doc_id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Panics if the document `doc_id` (or its title or secret) shows anywhere.
    fn assert_no_trace(&self, doc_id: &str, title: &str, secret: &str, who: &str) {
        assert!(
            !self.cited().iter().any(|d| d == doc_id),
            "{who}: {doc_id} cited: {}",
            self.end["sources"]
        );
        let sources = self.end["sources"].to_string();
        for needle in [doc_id, title, secret] {
            assert!(
                !self.seen_text.contains(needle) && !sources.contains(needle),
                "{who}: {needle:?} (of {doc_id}) leaked: {}",
                self.seen_text
            );
        }
    }
}

/// Ask `question` in `session` and read the turn to its assistant message.
async fn ask(client: &mut Client, session: &str, question: &str) -> Answer {
    client.send_message(session, question).await;
    let frames = client.collect_until(is_assistant_message).await;
    let end = frames
        .iter()
        .find(|f| ty(f) == "turn.end")
        .cloned()
        .unwrap_or_else(|| panic!("no turn.end: {}", support::summary(&frames)));
    assert_eq!(end["status"], "completed", "{end}");
    let seen_text = frames
        .iter()
        .filter(|f| matches!(ty(f), "turn.delta" | "turn.end" | "message" | "tool.result"))
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    Answer { end, seen_text }
}

/// A user connected with `token`, in a fresh session of its own.
async fn asker(gw: &Gateway, token: &str) -> (Client, String) {
    let mut client = connect(gw, token).await;
    let s = client.create_session().await;
    (client, s.id)
}

/// A document restricted to group `finance` never reaches a `support` user — not in
/// `sources`, not in the reply (title, id, text) — while a `finance` user asking the
/// same gets it cited; once deleted through the API it is cited to nobody, and a
/// second delete is 404.
#[tokio::test]
async fn group_restricted_document_reaches_only_its_group_and_disappears_on_delete() {
    let gw = gateway();
    let api = Api::new(&gw);
    api.ingest(&restricted_doc()).await;
    api.ingest(&public_doc()).await;
    api.ingest(&globex_doc()).await;

    let (mut support_user, s1) = asker(&gw, &token("u-sup", "acme", &["support"], &[])).await;
    let answer = ask(&mut support_user, &s1, QUESTION).await;
    answer.assert_no_trace(
        RESTRICTED_ID,
        RESTRICTED_TITLE,
        RESTRICTED_SECRET,
        "support user",
    );
    answer.assert_no_trace(GLOBEX_ID, "Globex", GLOBEX_SECRET, "support user");

    // An operator/admin role does not grant a group.
    let (mut op, s_op) = asker(
        &gw,
        &token("u-op", "acme", &["support"], &["operator", "admin"]),
    )
    .await;
    ask(&mut op, &s_op, QUESTION).await.assert_no_trace(
        RESTRICTED_ID,
        RESTRICTED_TITLE,
        RESTRICTED_SECRET,
        "operator/admin without the group",
    );

    let (mut fin, s2) = asker(&gw, &token("u-fin", "acme", &["finance"], &[])).await;
    let answer = ask(&mut fin, &s2, QUESTION).await;
    assert!(
        answer.end["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["doc_id"] == RESTRICTED_ID && s["title"] == RESTRICTED_TITLE),
        "the finance user must get the restricted doc cited: {}",
        answer.end
    );
    assert!(
        answer.seen_text.contains(RESTRICTED_SECRET),
        "the answer quotes the doc"
    );
    answer.assert_no_trace(GLOBEX_ID, "Globex", GLOBEX_SECRET, "finance user of acme");

    let path = format!("/v1/admin/documents/{RESTRICTED_ID}?org_id=acme");
    api.delete(&path, Some(ADMIN_SECRET))
        .await
        .expect(204, "delete the restricted doc");
    let answer = ask(&mut fin, &s2, QUESTION).await;
    answer.assert_no_trace(
        RESTRICTED_ID,
        RESTRICTED_TITLE,
        RESTRICTED_SECRET,
        "finance user after the delete",
    );
    api.delete(&path, Some(ADMIN_SECRET))
        .await
        .assert_error(404, "not_found", "second delete");
    assert!(
        !api.admin_doc_ids("acme")
            .await
            .contains(&RESTRICTED_ID.to_string())
    );
}

/// A public document of org B is never used for org A's users (whatever their groups
/// and roles) nor for anonymous connections, and is cited for org B's users.
#[tokio::test]
async fn another_orgs_public_document_is_never_used() {
    let gw = gateway();
    let api = Api::new(&gw);
    api.ingest(&globex_doc()).await;
    for (tok, who) in [
        (
            Some(token("u1", "acme", &["finance", "support"], &["admin"])),
            "acme admin",
        ),
        (
            Some(token("u1", "default", &["finance"], &[])),
            "default org user",
        ),
        (None, "anonymous"),
    ] {
        let mut client = match &tok {
            Some(t) => connect(&gw, t).await,
            None => Client::connect(&gw.ws_url()).await,
        };
        let s = client.create_session().await;
        ask(&mut client, &s.id, QUESTION).await.assert_no_trace(
            GLOBEX_ID,
            "Globex",
            GLOBEX_SECRET,
            who,
        );
    }
    let (mut g, s) = asker(&gw, &token("u1", "globex", &[], &[])).await;
    let answer = ask(&mut g, &s, QUESTION).await;
    assert!(
        answer.cited().contains(&GLOBEX_ID.to_string()),
        "{}",
        answer.end
    );
}

/// A document whose ACL names users is cited for a named user only, not for another
/// user of the org, nor for the same user id in another org.
#[tokio::test]
async fn user_acl_document_is_cited_only_for_the_named_user() {
    let gw = gateway();
    let api = Api::new(&gw);
    api.ingest(&json!({
        "doc_id": "note-special",
        "org_id": "acme",
        "title": "Special note",
        "text": "The quokkaflux launch code is 24680.",
        "acl": {"users": ["u-special"]}
    }))
    .await;
    let q = "What is the quokkaflux launch code?";
    for (tok, who) in [
        (
            token("u-other", "acme", &["u-special"], &[]),
            "another user (group named like the user)",
        ),
        (
            token("u-special", "globex", &[], &[]),
            "same id, another org",
        ),
    ] {
        let (mut c, s) = asker(&gw, &tok).await;
        ask(&mut c, &s, q)
            .await
            .assert_no_trace("note-special", "Special note", "24680", who);
    }
    let (mut c, s) = asker(&gw, &token("u-special", "acme", &[], &[])).await;
    let answer = ask(&mut c, &s, q).await;
    assert!(
        answer.cited().contains(&"note-special".to_string()),
        "{}",
        answer.end
    );
}

/// `auth.refresh` to a token without the `finance` group revokes retrieval of the
/// finance document on that connection at once.
#[tokio::test]
async fn refresh_that_drops_a_group_stops_retrieval_of_its_documents() {
    let gw = gateway();
    let api = Api::new(&gw);
    api.ingest(&restricted_doc()).await;
    let (mut c, s) = asker(&gw, &token("u-fin", "acme", &["finance"], &[])).await;
    let answer = ask(&mut c, &s, QUESTION).await;
    assert!(
        answer.cited().contains(&RESTRICTED_ID.to_string()),
        "{}",
        answer.end
    );
    let reply = c
        .request(
            "auth.refresh",
            json!({"token": Claims::user("u-fin", "acme").groups(&["support"]).exp_in(900).hs256()}),
        )
        .await;
    assert_eq!(ty(&reply), "auth.refreshed", "{reply}");
    ask(&mut c, &s, QUESTION).await.assert_no_trace(
        RESTRICTED_ID,
        RESTRICTED_TITLE,
        RESTRICTED_SECRET,
        "after the group was dropped",
    );
}

/// A turn runs only for the customer, with their access: in a finance user's
/// session, a `support` operator's question is an operator message that starts no
/// turn (so nothing is retrieved with the operator's access), while the owner asking
/// the same gets the finance document cited.
#[tokio::test]
async fn only_the_customer_starts_turns_and_with_their_own_access() {
    let gw = gateway();
    let api = Api::new(&gw);
    api.ingest(&restricted_doc()).await;
    let (mut owner, s) = asker(&gw, &token("u-fin", "acme", &["finance"], &[])).await;
    let mut op = connect(&gw, &token("u-op", "acme", &["support"], &["operator"])).await;
    op.join(&s, None, None).await;
    let sent = op.send_message(&s, QUESTION).await;
    let heard = owner
        .collect_until(|f| f["message_id"] == sent["message_id"])
        .await;
    assert_eq!(heard.last().unwrap()["role"], "operator");
    assert!(
        heard.iter().all(|f| ty(f) != "turn.start"),
        "a turn started for the operator: {heard:?}"
    );
    let answer = ask(&mut owner, &s, QUESTION).await;
    assert!(
        answer.cited().contains(&RESTRICTED_ID.to_string()),
        "{}",
        answer.end
    );
}

// ---- the admin API

/// Ingest (admin key) two acme documents and two globex documents.
async fn seed_two_orgs(api: &Api) {
    for (org, id, word) in [
        ("acme", "a-1", "anvil"),
        ("acme", "a-2", "rocket"),
        ("globex", "g-1", "hammock"),
        ("globex", "g-2", "volcano"),
    ] {
        api.ingest(&json!({
            "doc_id": id, "org_id": org, "title": format!("{org} {word}"),
            "text": format!("The {word} manual of {org}."), "acl": {"public": true}
        }))
        .await;
    }
}

/// A JWT admin of acme lists acme's documents only (sorted by doc_id), with or
/// without `org_id=acme`; `org_id=globex` is 403; a JWT without the admin role is
/// 403; no credential is 401; the admin key must name the org (400 otherwise).
#[tokio::test]
async fn jwt_admin_lists_only_its_own_orgs_documents() {
    let gw = gateway();
    let api = Api::new(&gw);
    seed_two_orgs(&api).await;
    let admin = token("u-adm", "acme", &[], &["admin"]);
    for path in ["/v1/admin/documents", "/v1/admin/documents?org_id=acme"] {
        let reply = api.get(path, Some(&admin)).await;
        let body = reply.expect(200, path);
        assert_eq!(body["org_id"], "acme", "{body}");
        assert_eq!(doc_ids(body), ["a-1", "a-2"], "{body}");
        for doc in body["documents"].as_array().unwrap() {
            if let Some(org) = doc.get("org_id") {
                assert_eq!(org, "acme", "{doc}");
            }
        }
        for leak in ["g-1", "g-2", "hammock", "volcano", "globex"] {
            assert!(
                !reply.text.contains(leak),
                "{path}: {leak} leaked: {}",
                reply.text
            );
        }
    }
    let reply = api
        .get("/v1/admin/documents?org_id=globex", Some(&admin))
        .await;
    reply.assert_error(403, "forbidden", "JWT admin asking for another org");
    assert!(!reply.text.contains("hammock"), "{}", reply.text);
    for (tok, why) in [
        (token("u1", "acme", &["finance"], &[]), "no roles"),
        (
            token("u1", "acme", &[], &["operator", "publisher"]),
            "operator and publisher",
        ),
    ] {
        api.get("/v1/admin/documents", Some(&tok))
            .await
            .assert_error(403, "forbidden", why);
    }
    api.get("/v1/admin/documents?org_id=acme", None)
        .await
        .assert_error(401, "unauthorized", "no credential");
    api.get("/v1/admin/documents", Some(ADMIN_SECRET))
        .await
        .assert_error(400, "bad_request", "admin key without org_id");
    api.delete("/v1/admin/documents/g-1", Some(ADMIN_SECRET))
        .await
        .assert_error(400, "bad_request", "admin key deleting without org_id");
    assert_eq!(api.admin_doc_ids("globex").await, ["g-1", "g-2"]);
}

/// A JWT admin of acme cannot touch globex's documents: deleting globex's doc id is
/// 404 (acme has none) and 403 when naming `org_id=globex`, and the doc still exists;
/// posting a doc with `org_id` globex is 403 and creates nothing; writing its own org
/// under a colliding doc id leaves globex's document as it was.
#[tokio::test]
async fn jwt_admin_cannot_delete_or_write_another_orgs_documents() {
    let gw = gateway();
    let api = Api::new(&gw);
    seed_two_orgs(&api).await;
    let admin = token("u-adm", "acme", &[], &["admin"]);

    api.delete("/v1/admin/documents/g-1", Some(&admin))
        .await
        .assert_error(404, "not_found", "JWT admin deleting another org's doc id");
    api.delete("/v1/admin/documents/g-1?org_id=globex", Some(&admin))
        .await
        .assert_error(
            403,
            "forbidden",
            "JWT admin deleting with org_id of another org",
        );
    assert_eq!(api.admin_doc_ids("globex").await, ["g-1", "g-2"]);

    let foreign = json!({"doc_id": "g-new", "org_id": "globex", "title": "planted",
                         "text": "planted by acme", "acl": {"public": true}});
    api.post("/v1/admin/documents", Some(&admin), &foreign)
        .await
        .assert_error(403, "forbidden", "JWT admin writing another org");
    assert_eq!(api.admin_doc_ids("globex").await, ["g-1", "g-2"]);

    let non_admin = token("u1", "acme", &[], &["publisher", "operator"]);
    let own = json!({"doc_id": "a-3", "org_id": "acme", "title": "acme tent",
                     "text": "The tent manual of acme.", "acl": {"public": true}});
    api.post("/v1/admin/documents", Some(&non_admin), &own)
        .await
        .assert_error(403, "forbidden", "JWT without admin writing");
    let reply = api.post("/v1/admin/documents", Some(&admin), &own).await;
    let body = reply.expect(200, "JWT admin writing its own org");
    assert_eq!(body["doc_id"], "a-3");
    assert_eq!(body["org_id"], "acme");

    let collide = json!({"doc_id": "g-1", "org_id": "acme", "title": "acme hammock overwrite",
                         "text": "The hammock manual, overwritten by acme.", "acl": {"public": true}});
    api.post("/v1/admin/documents", Some(&admin), &collide)
        .await
        .expect(
            200,
            "JWT admin writing its own org under a colliding doc id",
        );
    assert_eq!(
        api.admin_doc_ids("acme").await,
        ["a-1", "a-2", "a-3", "g-1"]
    );
    assert_eq!(api.admin_doc_ids("globex").await, ["g-1", "g-2"]);
    // globex's g-1 is still globex's own text.
    let (mut g, s) = asker(&gw, &token("u-g", "globex", &[], &[])).await;
    let answer = ask(&mut g, &s, "Where is the hammock manual?").await;
    let sources = answer.end["sources"].as_array().unwrap();
    assert!(
        sources
            .iter()
            .any(|s| s["doc_id"] == "g-1" && s["title"] == "globex hammock"),
        "{}",
        answer.end
    );
    assert!(
        !answer.seen_text.contains("overwritten by acme"),
        "{}",
        answer.seen_text
    );
    // And acme's admin deleting its own g-1 leaves globex's.
    api.delete("/v1/admin/documents/g-1", Some(&admin))
        .await
        .expect(204, "JWT admin deleting its own doc");
    assert_eq!(api.admin_doc_ids("globex").await, ["g-1", "g-2"]);
}
