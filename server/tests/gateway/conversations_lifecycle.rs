//! Conversations as records, as their people see them (docs/protocol.md §3.13, §6.12):
//! a signed-in user lists, pages, renames, archives, exports and deletes their
//! conversations over the WebSocket and over HTTP; everybody else is refused exactly as
//! the access table says, and what they may not read looks like nothing at all.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::conversations::{
    chat, durable, error_message, export_json_with, ids, list, list_until, shortened, summary_in,
    without_session_id,
};
use crate::support::http::{ADMIN_SECRET, Api, PUBLISHER_SECRET, keyed_gateway};
use crate::support::jwt::{connect, token};
use crate::support::{Client, MISSING_SESSION, is_assistant_message, ty};

/// The text of the assistant's answer among `events`.
fn answer_text(events: &[Value]) -> String {
    events
        .iter()
        .rfind(|e| is_assistant_message(e))
        .and_then(|e| e["text"].as_str())
        .unwrap_or_else(|| panic!("no answer among {events:?}"))
        .to_string()
}

/// The newest `seq` a transcript keeps among `events`.
fn last_durable_seq(events: &[Value]) -> u64 {
    durable(events)
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .max()
        .expect("a durable event")
}

/// `session.update` → the reply (`session.updated` or an `error`).
async fn update(client: &mut Client, fields: Value) -> Value {
    client.request("session.update", fields).await
}

/// `session.export` → the reply.
async fn export(client: &mut Client, session_id: &str, format: &str) -> Value {
    client
        .request(
            "session.export",
            json!({"session_id": session_id, "format": format}),
        )
        .await
}

/// `session.delete` → the reply.
async fn delete(client: &mut Client, session_id: &str) -> Value {
    client
        .request("session.delete", json!({"session_id": session_id}))
        .await
}

/// A signed-in user's three conversations list newest activity first, each titled by
/// its first question and previewing its last message; a later question moves one to
/// the top without changing its title. Pages of 2 hold all three once each; a cursor
/// the server did not give and limits 0 and 101 are `bad_request`. HTTP lists the same.
#[tokio::test]
async fn a_users_conversations_list_newest_first_titled_previewed_and_paged() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let u1 = token("u1", "acme", &[]);
    let mut client = connect(&gw, &u1).await;
    let questions = [
        "How do refunds work for annual plans?",
        "What happens to a slow consumer?",
        "Can I resume a conversation on another device?",
    ];
    let mut sessions = Vec::new();
    let mut answers = Vec::new();
    let mut last_seqs = Vec::new();
    for question in questions {
        let s = client.create_session().await;
        let events = chat(&mut client, &s.id, question).await;
        answers.push(answer_text(&events));
        last_seqs.push(last_durable_seq(&events));
        sessions.push(s.id);
    }

    let newest_first: Vec<String> = sessions.iter().rev().cloned().collect();
    let listing = list_until(&mut client, json!({}), "three listed, previewed", |l| {
        ids(l) == newest_first
            && (0..3)
                .all(|i| summary_in(l, &sessions[i]).is_some_and(|s| s["last_seq"] == last_seqs[i]))
    })
    .await;
    assert!(listing.get("next_cursor").is_none(), "one page: {listing}");
    for i in 0..3 {
        let s = summary_in(&listing, &sessions[i]).unwrap();
        assert_eq!(s["title"], questions[i], "{s}");
        assert_eq!(s["preview"], shortened(&answers[i], 160), "{s}");
        assert_eq!(s["owner"], "u1", "{s}");
        assert_eq!(s["org_id"], "acme", "{s}");
        assert_eq!(s["state"], "active", "{s}");
        let (created, active) = (s["created_at"].as_u64(), s["last_activity_at"].as_u64());
        assert!(created.unwrap() <= active.unwrap(), "{s}");
    }

    // A new question in the oldest conversation makes it the newest; its title stays.
    let more = chat(&mut client, &sessions[0], "And for monthly plans?").await;
    let preview = shortened(&answer_text(&more), 160);
    let order = vec![
        sessions[0].clone(),
        sessions[2].clone(),
        sessions[1].clone(),
    ];
    let listing = list_until(&mut client, json!({}), "the oldest moved up", |l| {
        ids(l) == order && summary_in(l, &sessions[0]).unwrap()["preview"] == preview
    })
    .await;
    assert_eq!(
        summary_in(&listing, &sessions[0]).unwrap()["title"],
        questions[0],
        "the title is the first question: {listing}"
    );

    // Pages of two: every conversation once, in the listing's order.
    let first = list(&mut client, json!({"limit": 2})).await;
    assert_eq!(ids(&first), order[..2], "{first}");
    let cursor = first["next_cursor"]
        .as_str()
        .unwrap_or_else(|| panic!("a first page of 2 out of 3 has a next_cursor: {first}"));
    let second = list(&mut client, json!({"limit": 2, "cursor": cursor})).await;
    assert_eq!(ids(&second), order[2..], "{second}");
    assert!(second.get("next_cursor").is_none(), "last page: {second}");

    // Bad cursors and limits.
    for (fields, what) in [
        (json!({"cursor": "not-a-cursor"}), "a made-up cursor"),
        (json!({"cursor": format!("{cursor}x")}), "a tampered cursor"),
        (json!({"limit": 0}), "limit 0"),
        (json!({"limit": 101}), "limit 101"),
    ] {
        let reply = client.request("session.list", fields).await;
        error_message(&reply, "bad_request", what);
    }
    let reply = list(&mut client, json!({"limit": 100})).await;
    assert_eq!(ids(&reply), order, "limit 100 is allowed");

    // HTTP lists the same, and pages the same.
    let http = api.get("/v1/sessions", Some(&u1)).await;
    assert_eq!(ids(http.expect(200, "list over HTTP")), order);
    let http = api
        .get(&format!("/v1/sessions?limit=2&cursor={cursor}"), Some(&u1))
        .await;
    assert_eq!(ids(http.expect(200, "page 2 over HTTP")), order[2..]);
    api.get("/v1/sessions?limit=0", Some(&u1))
        .await
        .assert_error(400, "bad_request", "limit 0 over HTTP");

    // Another user of the org has none of them.
    let mut u2 = connect(&gw, &token("u2", "acme", &[])).await;
    assert_eq!(ids(&list(&mut u2, json!({})).await), Vec::<String>::new());
}

/// A rename (whitespace collapsed) shows in the list; an archived conversation is
/// listed under `state: archived` only, and a new message makes it active again; a
/// rename keeps its title after new messages. Empty titles and empty updates are
/// `bad_request`.
#[tokio::test]
async fn rename_and_archive_show_in_the_list_and_a_new_message_unarchives() {
    let gw = keyed_gateway(&[]);
    let mut client = connect(&gw, &token("u1", "acme", &[])).await;
    let a = client.create_session().await;
    chat(&mut client, &a.id, "How do refunds work?").await;
    let b = client.create_session().await;
    chat(&mut client, &b.id, "What is a turn?").await;

    let renamed = update(
        &mut client,
        json!({"session_id": a.id, "title": "  Refund\n  questions  "}),
    )
    .await;
    assert_eq!(ty(&renamed), "session.updated", "{renamed}");
    assert_eq!(renamed["session"]["title"], "Refund questions", "{renamed}");
    assert_eq!(renamed["session"]["session_id"], a.id.as_str());

    let archived = update(
        &mut client,
        json!({"session_id": b.id, "state": "archived"}),
    )
    .await;
    assert_eq!(ty(&archived), "session.updated", "{archived}");
    assert_eq!(archived["session"]["state"], "archived", "{archived}");
    assert_eq!(archived["session"]["title"], "What is a turn?");

    let only_archived = list(&mut client, json!({"state": "archived"})).await;
    assert_eq!(ids(&only_archived), vec![b.id.clone()], "{only_archived}");
    let only_active = list(&mut client, json!({"state": "active"})).await;
    assert_eq!(ids(&only_active), vec![a.id.clone()], "{only_active}");
    let all = list(&mut client, json!({})).await;
    assert_eq!(
        summary_in(&all, &a.id).unwrap()["title"],
        "Refund questions"
    );
    assert_eq!(summary_in(&all, &b.id).unwrap()["state"], "archived");

    // An archived conversation keeps working; a new message makes it active again.
    chat(&mut client, &b.id, "And what is a delta?").await;
    list_until(
        &mut client,
        json!({"state": "archived"}),
        "no longer archived",
        |l| ids(l).is_empty(),
    )
    .await;
    let all = list(&mut client, json!({"state": "active"})).await;
    assert_eq!(ids(&all), vec![b.id.clone(), a.id.clone()], "{all}");

    // A renamed conversation keeps its name after more messages.
    chat(&mut client, &a.id, "A second question").await;
    let all = list_until(&mut client, json!({}), "a is newest", |l| {
        ids(l).first() == Some(&a.id)
    })
    .await;
    assert_eq!(
        summary_in(&all, &a.id).unwrap()["title"],
        "Refund questions"
    );

    for (fields, what) in [
        (json!({"session_id": a.id, "title": "   "}), "a blank title"),
        (
            json!({"session_id": a.id, "title": "x".repeat(201)}),
            "201 chars",
        ),
        (json!({"session_id": a.id}), "nothing to change"),
    ] {
        error_message(&update(&mut client, fields).await, "bad_request", what);
    }
    let ok = update(
        &mut client,
        json!({"session_id": a.id, "title": "y".repeat(200)}),
    )
    .await;
    assert_eq!(
        ty(&ok),
        "session.updated",
        "200 characters is allowed: {ok}"
    );
}

/// The JSON export holds the summary and every event the transcript keeps exactly as
/// the members saw them (messages, turn ends, a durable published event; not deltas,
/// not a non-durable event); the Markdown export is titled and holds every message's
/// text. HTTP serves both as attachments, identical to the WebSocket's.
#[tokio::test]
async fn exports_hold_the_conversation_as_replayed_over_ws_and_http() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let u1 = token("u1", "acme", &[]);
    let mut client = connect(&gw, &u1).await;
    let s = client.create_session().await;
    let mut live = chat(&mut client, &s.id, "How do refunds work?").await;
    for (name, durable_flag) in [("order.kept", true), ("order.passing", false)] {
        let body = json!({
            "target": {"session": s.id}, "name": name,
            "data": {"order": 42}, "durable": durable_flag,
        });
        api.publish_ok(&body).await;
        live.push(client.next_of_type("event").await);
    }
    live.extend(chat(&mut client, &s.id, "# Not a heading\nSecond question").await);

    let kept: Vec<Value> = durable(&live)
        .into_iter()
        .filter(|e| e["name"] != "order.passing")
        .map(|e| without_session_id(&e))
        .collect();
    assert!(kept.iter().any(|e| e["name"] == "order.kept"), "{kept:?}");
    let exported = export_json_with(&mut client, &s.id, kept.len()).await;
    assert_eq!(
        exported["events"],
        json!(kept),
        "events exactly as seen live"
    );
    let listing = list(&mut client, json!({})).await;
    assert_eq!(&exported["session"], summary_in(&listing, &s.id).unwrap());

    let reply = export(&mut client, &s.id, "markdown").await;
    assert_eq!(ty(&reply), "session.exported", "{reply}");
    assert_eq!(reply["format"], "markdown");
    let markdown = reply["content"].as_str().expect("content").to_string();
    assert!(
        markdown.starts_with("# How do refunds work?\n"),
        "{markdown}"
    );
    for message in kept.iter().filter(|e| ty(e) == "message") {
        for line in message["text"].as_str().unwrap().lines() {
            let line = line.trim_start_matches('#').trim();
            assert!(markdown.contains(line), "{line:?} not in\n{markdown}");
        }
    }
    assert!(
        !markdown.contains("\n# Not a heading"),
        "a message cannot forge a heading:\n{markdown}"
    );

    let path = format!("/v1/sessions/{}/export?format=markdown", s.id);
    let http = api.get(&path, Some(&u1)).await;
    http.expect(200, "markdown export over HTTP");
    assert_eq!(
        http.header("content-type"),
        Some("text/markdown; charset=utf-8")
    );
    assert_eq!(
        http.header("content-disposition"),
        Some(format!("attachment; filename=\"{}.md\"", s.id).as_str())
    );
    assert_eq!(http.text, markdown);

    let http = api
        .get(&format!("/v1/sessions/{}/export", s.id), Some(&u1))
        .await;
    assert_eq!(http.expect(200, "JSON export over HTTP"), &exported);
    assert_eq!(http.header("content-type"), Some("application/json"));
    assert_eq!(
        http.header("content-disposition"),
        Some(format!("attachment; filename=\"{}.json\"", s.id).as_str())
    );
}

/// After `session.delete` the conversation is gone for its owner and for the other
/// member: joins, sends, exports, renames and HTTP reads are `not_found` with the
/// same message as a session that never existed, and the list no longer shows it.
#[tokio::test]
async fn a_deleted_conversation_is_gone_everywhere() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let u1 = token("u1", "acme", &[]);
    let mut owner = connect(&gw, &u1).await;
    let kept = owner.create_session().await;
    chat(&mut owner, &kept.id, "Keep this one").await;
    let s = owner.create_session().await;
    chat(&mut owner, &s.id, "Delete this one").await;
    // Another device of the same user, in the conversation.
    let mut device = connect(&gw, &u1).await;
    device.join(&s.id, Some(0), None).await;
    list_until(&mut owner, json!({}), "both listed", |l| ids(l).len() == 2).await;

    let missing = error_message(
        &owner.join_reply(MISSING_SESSION, None, None).await,
        "not_found",
        "missing",
    );
    let deleted = delete(&mut owner, &s.id).await;
    assert_eq!(ty(&deleted), "session.deleted", "{deleted}");
    assert_eq!(deleted["session_id"], s.id.as_str());

    // The deleting connection left it: a send is refused as for any session it has
    // not joined (§3.5). The other member finds it gone, and brings nothing back.
    let send = owner
        .request(
            "message.send",
            json!({"session_id": s.id, "text": "hello?"}),
        )
        .await;
    error_message(&send, "forbidden", "send after leaving by deleting");
    let send = device
        .request(
            "message.send",
            json!({"session_id": s.id, "text": "hello?"}),
        )
        .await;
    error_message(&send, "not_found", "a member sends into a deleted session");
    for client in [&mut owner, &mut device] {
        let join = client.join_reply(&s.id, Some(0), None).await;
        assert_eq!(error_message(&join, "not_found", "join"), missing);
        let exp = export(client, &s.id, "json").await;
        assert_eq!(error_message(&exp, "not_found", "export"), missing);
        let upd = update(client, json!({"session_id": s.id, "title": "x"})).await;
        assert_eq!(error_message(&upd, "not_found", "rename"), missing);
        let del = delete(client, &s.id).await;
        assert_eq!(error_message(&del, "not_found", "delete twice"), missing);
    }
    let listing = list(&mut owner, json!({})).await;
    assert_eq!(ids(&listing), vec![kept.id.clone()], "{listing}");

    // Backends cannot write into it either.
    let publish = json!({"target": {"session": s.id}, "name": "late", "durable": true});
    api.publish(Some(PUBLISHER_SECRET), &publish)
        .await
        .assert_error(404, "not_found", "publish into a deleted session");
    api.post(
        &format!("/v1/sessions/{}/messages", s.id),
        Some(PUBLISHER_SECRET),
        &json!({"text": "Hello from support"}),
    )
    .await
    .assert_error(
        404,
        "not_found",
        "an operator message into a deleted session",
    );
    let join = device.join_reply(&s.id, Some(0), None).await;
    assert_eq!(error_message(&join, "not_found", "still gone"), missing);

    for path in [
        format!("/v1/sessions/{}", s.id),
        format!("/v1/sessions/{}/export", s.id),
        format!("/v1/sessions/{}/events", s.id),
    ] {
        api.get(&path, Some(&u1))
            .await
            .assert_error(404, "not_found", &path);
        api.get(&path, Some(ADMIN_SECRET))
            .await
            .assert_error(404, "not_found", &path);
    }
    // The other conversation is untouched.
    let summary = api
        .get(&format!("/v1/sessions/{}", kept.id), Some(&u1))
        .await;
    assert_eq!(
        summary.expect(200, "the kept one")["title"],
        "Keep this one"
    );
}

/// Trying to break isolation, with several people in one conversation: another user
/// of the org gets `not_found` (as for a missing session) for everything; an operator
/// who joined the conversation may read and export it (and list the org's) but not
/// rename or delete it; an admin of the org may; anyone from another org, admin or
/// not, finds nothing; only admins erase users.
#[tokio::test]
async fn only_the_owner_and_the_orgs_admins_manage_a_conversation() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let u1 = token("u1", "acme", &[]);
    let mut owner = connect(&gw, &u1).await;
    let s = owner.create_session().await;
    chat(&mut owner, &s.id, "Owner's private question").await;
    let spare = owner.create_session().await;
    chat(&mut owner, &spare.id, "Another question").await;
    let u2 = token("u2", "acme", &[]);
    let mut peer = connect(&gw, &u2).await;
    let theirs = peer.create_session().await;
    chat(&mut peer, &theirs.id, "Peer's question").await;
    list_until(&mut owner, json!({}), "owner's two", |l| ids(l).len() == 2).await;
    let missing = error_message(
        &peer.join_reply(MISSING_SESSION, None, None).await,
        "not_found",
        "missing",
    );

    // Same org, no role: nothing of u1's exists.
    let mine = list(&mut peer, json!({})).await;
    assert_eq!(ids(&mine), vec![theirs.id.clone()], "{mine}");
    let mine_as_u1 = list(&mut peer, json!({"owner": "u1"})).await;
    assert_eq!(ids(&mine_as_u1), Vec::<String>::new(), "{mine_as_u1}");
    let mine_as_me = list(&mut peer, json!({"scope": "mine", "owner": "u2"})).await;
    assert_eq!(ids(&mine_as_me), vec![theirs.id.clone()], "{mine_as_me}");
    let org = peer.request("session.list", json!({"scope": "org"})).await;
    error_message(&org, "forbidden", "a plain user lists the org");
    let trying = [
        update(&mut peer, json!({"session_id": s.id, "title": "mine now"})).await,
        update(&mut peer, json!({"session_id": s.id, "state": "archived"})).await,
        delete(&mut peer, &s.id).await,
        export(&mut peer, &s.id, "json").await,
        export(&mut peer, &s.id, "markdown").await,
        peer.join_reply(&s.id, Some(0), None).await,
    ];
    for reply in &trying {
        assert_eq!(
            error_message(reply, "not_found", "peer"),
            missing,
            "{reply}"
        );
    }
    for (method, path) in [
        (Method::GET, format!("/v1/sessions/{}", s.id)),
        (Method::GET, format!("/v1/sessions/{}/export", s.id)),
        (Method::DELETE, format!("/v1/sessions/{}", s.id)),
    ] {
        api.call(method, &path, Some(&u2), None)
            .await
            .assert_error(404, "not_found", &path);
    }
    let patch = json!({"title": "mine now"});
    api.call(
        Method::PATCH,
        &format!("/v1/sessions/{}", s.id),
        Some(&u2),
        Some(&patch),
    )
    .await
    .assert_error(404, "not_found", "peer PATCH");

    // An operator in the conversation (joined, even sending into it).
    let op = token("op", "acme", &["operator"]);
    let mut operator = connect(&gw, &op).await;
    operator.join(&s.id, Some(0), None).await;
    let org = list(&mut operator, json!({"scope": "org", "owner": "u1"})).await;
    assert_eq!(ids(&org).len(), 2, "{org}");
    assert!(
        summary_in(&org, &theirs.id).is_none(),
        "owner filter: {org}"
    );
    let whole = list(&mut operator, json!({"scope": "org"})).await;
    assert_eq!(ids(&whole).len(), 3, "{whole}");
    let read = export(&mut operator, &s.id, "json").await;
    assert_eq!(ty(&read), "session.exported", "{read}");
    for reply in [
        update(&mut operator, json!({"session_id": s.id, "title": "ops"})).await,
        update(
            &mut operator,
            json!({"session_id": s.id, "state": "archived"}),
        )
        .await,
        delete(&mut operator, &s.id).await,
    ] {
        error_message(&reply, "forbidden", "an operator changes");
    }
    api.get(&format!("/v1/sessions/{}/export", s.id), Some(&op))
        .await
        .expect(200, "an operator exports over HTTP");
    api.call(
        Method::PATCH,
        &format!("/v1/sessions/{}", s.id),
        Some(&op),
        Some(&patch),
    )
    .await
    .assert_error(403, "forbidden", "operator PATCH");
    api.delete(&format!("/v1/sessions/{}", s.id), Some(&op))
        .await
        .assert_error(403, "forbidden", "operator DELETE");
    let erase = operator
        .request("user.erase", json!({"user_id": "u1"}))
        .await;
    error_message(&erase, "forbidden", "an operator erases");
    let erase = peer.request("user.erase", json!({"user_id": "u1"})).await;
    error_message(&erase, "forbidden", "a user erases");
    api.post("/v1/admin/users/u1/erase", Some(&op), &json!({}))
        .await
        .assert_error(403, "forbidden", "operator erase over HTTP");

    // Another org, even as admin and operator: nothing there.
    let stranger = token("x", "globex", &["admin", "operator"]);
    let mut outsider = connect(&gw, &stranger).await;
    let theirs_org = list(&mut outsider, json!({"scope": "org"})).await;
    assert_eq!(ids(&theirs_org), Vec::<String>::new(), "{theirs_org}");
    for reply in [
        update(&mut outsider, json!({"session_id": s.id, "title": "x"})).await,
        delete(&mut outsider, &s.id).await,
        export(&mut outsider, &s.id, "json").await,
    ] {
        assert_eq!(error_message(&reply, "not_found", "outsider"), missing);
    }
    let wrong_org = list(&mut outsider, json!({"scope": "org", "owner": "u1"})).await;
    assert_eq!(ids(&wrong_org), Vec::<String>::new(), "{wrong_org}");
    api.get(&format!("/v1/sessions/{}", s.id), Some(&stranger))
        .await
        .assert_error(404, "not_found", "outsider GET");
    api.delete(&format!("/v1/sessions/{}", s.id), Some(&stranger))
        .await
        .assert_error(404, "not_found", "outsider DELETE");
    api.get("/v1/sessions?scope=org&org_id=acme", Some(&stranger))
        .await
        .assert_error(403, "forbidden", "naming another org");

    // Nothing changed, and the owner still has it as it was.
    let summary = api.get(&format!("/v1/sessions/{}", s.id), Some(&u1)).await;
    let summary = summary.expect(200, "the owner reads it");
    assert_eq!(summary["title"], "Owner's private question");
    assert_eq!(summary["state"], "active");

    // An admin of the org renames and deletes.
    let mut admin = connect(&gw, &token("boss", "acme", &["admin"])).await;
    let renamed = update(
        &mut admin,
        json!({"session_id": spare.id, "title": "By admin"}),
    )
    .await;
    assert_eq!(renamed["session"]["title"], "By admin", "{renamed}");
    let deleted = delete(&mut admin, &spare.id).await;
    assert_eq!(ty(&deleted), "session.deleted", "{deleted}");
    let left = list(&mut owner, json!({})).await;
    assert_eq!(ids(&left), vec![s.id.clone()], "{left}");
}

/// An anonymous visitor has no list, but manages the conversation it holds the key
/// of: the creator and a second visitor who joined with the key may rename, export
/// and delete it; a visitor who did not join (or tried a wrong key) finds nothing.
#[tokio::test]
async fn an_anonymous_visitor_manages_only_the_conversation_it_joined_with_its_key() {
    let gw = keyed_gateway(&[]);
    let mut creator = Client::connect(&gw.ws_url()).await;
    assert_eq!(creator.welcome["principal"]["anonymous"], true);
    let s = creator.create_session().await;
    let key = s.key.clone().expect("an anonymous session has a key");
    chat(&mut creator, &s.id, "Anonymous question").await;

    let listed = creator.request("session.list", json!({})).await;
    error_message(&listed, "forbidden", "an anonymous list");

    let mut intruder = Client::connect(&gw.ws_url()).await;
    let missing = error_message(
        &intruder.join_reply(MISSING_SESSION, None, None).await,
        "not_found",
        "missing",
    );
    let wrong = intruder
        .join_reply(&s.id, Some(0), Some("not-the-key"))
        .await;
    assert_eq!(error_message(&wrong, "not_found", "wrong key"), missing);
    for reply in [
        update(&mut intruder, json!({"session_id": s.id, "title": "x"})).await,
        export(&mut intruder, &s.id, "json").await,
        delete(&mut intruder, &s.id).await,
    ] {
        assert_eq!(error_message(&reply, "not_found", "intruder"), missing);
    }
    // A signed-in user of the same (default) org without the key finds nothing either.
    let mut member = connect(&gw, &token("u9", "default", &[])).await;
    let reply = export(&mut member, &s.id, "json").await;
    assert_eq!(error_message(&reply, "not_found", "member"), missing);

    // The creator renames; a second visitor who joined with the key exports it.
    let renamed = update(&mut creator, json!({"session_id": s.id, "title": "Mine"})).await;
    assert_eq!(renamed["session"]["title"], "Mine", "{renamed}");
    assert_eq!(renamed["session"]["owner"], Value::Null, "{renamed}");
    let mut friend = Client::connect(&gw.ws_url()).await;
    friend.join(&s.id, Some(0), Some(&key)).await;
    let md = export(&mut friend, &s.id, "markdown").await;
    assert_eq!(ty(&md), "session.exported", "{md}");
    assert!(
        md["content"].as_str().unwrap().starts_with("# Mine\n"),
        "{md}"
    );
    let json_export = export(&mut creator, &s.id, "json").await;
    assert_eq!(ty(&json_export), "session.exported", "{json_export}");

    // Still nothing for the intruder; the creator deletes it for everyone.
    let reply = update(
        &mut intruder,
        json!({"session_id": s.id, "state": "archived"}),
    )
    .await;
    assert_eq!(
        error_message(&reply, "not_found", "intruder again"),
        missing
    );
    let deleted = delete(&mut creator, &s.id).await;
    assert_eq!(ty(&deleted), "session.deleted", "{deleted}");
    let reply = export(&mut friend, &s.id, "json").await;
    assert_eq!(error_message(&reply, "not_found", "after delete"), missing);
    let join = intruder.join_reply(&s.id, Some(0), Some(&key)).await;
    assert_eq!(
        error_message(&join, "not_found", "join after delete"),
        missing
    );
}

/// The `/v1` conversation routes with API keys (§6.3): a publisher key reads and
/// exports any conversation but may not rename, delete or list; an admin key lists an
/// org only when it names it, and renames and deletes.
#[tokio::test]
async fn api_keys_read_and_administer_conversations_as_the_table_says() {
    let gw = keyed_gateway(&[]);
    let api = Api::new(&gw);
    let mut owner = connect(&gw, &token("u1", "acme", &[])).await;
    let s = owner.create_session().await;
    chat(&mut owner, &s.id, "Keys question").await;
    list_until(&mut owner, json!({}), "titled", |l| {
        summary_in(l, &s.id).is_some_and(|s| s["title"] == "Keys question")
    })
    .await;
    let one = format!("/v1/sessions/{}", s.id);
    let patch = json!({"title": "Renamed by key"});

    let summary = api.get(&one, Some(PUBLISHER_SECRET)).await;
    assert_eq!(
        summary.expect(200, "publisher GET")["title"],
        "Keys question"
    );
    let md = api
        .get(
            &format!("{one}/export?format=markdown"),
            Some(PUBLISHER_SECRET),
        )
        .await;
    md.expect(200, "publisher export");
    assert!(md.text.contains("Keys question"), "{}", md.text);
    api.call(Method::PATCH, &one, Some(PUBLISHER_SECRET), Some(&patch))
        .await
        .assert_error(403, "forbidden", "publisher PATCH");
    api.delete(&one, Some(PUBLISHER_SECRET)).await.assert_error(
        403,
        "forbidden",
        "publisher DELETE",
    );
    api.get("/v1/sessions?scope=org&org_id=acme", Some(PUBLISHER_SECRET))
        .await
        .assert_error(403, "forbidden", "publisher list");
    api.post(
        "/v1/admin/users/u1/erase?org_id=acme",
        Some(PUBLISHER_SECRET),
        &json!({}),
    )
    .await
    .assert_error(403, "forbidden", "publisher erase");
    api.get(
        &format!("/v1/sessions/{MISSING_SESSION}"),
        Some(PUBLISHER_SECRET),
    )
    .await
    .assert_error(404, "not_found", "publisher GET missing");

    let without_org = api.get("/v1/sessions?scope=org", Some(ADMIN_SECRET)).await;
    assert!(
        matches!(without_org.status, 400 | 403),
        "an admin key must name the org: {} {}",
        without_org.status,
        without_org.text
    );
    let listed = api
        .get("/v1/sessions?scope=org&org_id=acme", Some(ADMIN_SECRET))
        .await;
    assert_eq!(ids(listed.expect(200, "admin list")), vec![s.id.clone()]);
    let other = api
        .get("/v1/sessions?scope=org&org_id=globex", Some(ADMIN_SECRET))
        .await;
    assert_eq!(
        ids(other.expect(200, "admin list globex")),
        Vec::<String>::new()
    );
    api.get("/v1/sessions", Some(ADMIN_SECRET))
        .await
        .assert_error(403, "forbidden", "an admin key owns no conversations");
    let renamed = api
        .call(Method::PATCH, &one, Some(ADMIN_SECRET), Some(&patch))
        .await;
    assert_eq!(
        renamed.expect(200, "admin PATCH")["title"],
        "Renamed by key"
    );
    let bad = api
        .call(
            Method::PATCH,
            &one,
            Some(ADMIN_SECRET),
            Some(&json!({"title": "x", "colour": "red"})),
        )
        .await;
    assert_eq!(bad.status, 400, "unknown field: {}", bad.text);
    let deleted = api.delete(&one, Some(ADMIN_SECRET)).await;
    assert_eq!(
        deleted.expect(200, "admin DELETE")["session_id"],
        s.id.as_str()
    );
    api.get(&one, Some(PUBLISHER_SECRET))
        .await
        .assert_error(404, "not_found", "after delete");
    let join = owner.join_reply(&s.id, Some(0), None).await;
    error_message(&join, "not_found", "owner join after delete");
}
