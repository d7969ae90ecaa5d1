//! Several principals in one session: the owner (the customer) and staff of its org
//! who joined it. Staff messages are `operator` messages that start no AI turn, so
//! nothing retrieved with staff access reaches the customer; a turn id names a turn of
//! its own session only (docs/protocol.md §3.7, §3.8, §7).

use serde_json::{Value, json};

use crate::support::http::{Api, keyed_gateway};
use crate::support::jwt::{Claims, HS_ARGS, connect};
use crate::support::{Client, Gateway, ty};

/// Readable by group `hr` of acme only.
const HR_DOC: &str = "hr-salary-bands";
const HR_SECRET: &str = "98765";
const QUESTION: &str = "What are the zebracorn salary bands?";

fn customer(sub: &str, groups: &[&str]) -> String {
    Claims::user(sub, "acme").groups(groups).hs256()
}

fn operator(sub: &str, name: &str, groups: &[&str]) -> String {
    Claims::user(sub, "acme")
        .groups(groups)
        .roles(&["operator"])
        .set("name", json!(name))
        .hs256()
}

/// Every frame up to and including the next `turn.end`.
async fn until_turn_end(client: &mut Client) -> Vec<Value> {
    client.collect_until(|f| ty(f) == "turn.end").await
}

fn mentions(frames: &[Value], needle: &str) -> bool {
    frames.iter().any(|f| f.to_string().contains(needle))
}

/// An operator who joins a customer's session and writes is heard as `operator`, by
/// name, and no AI turn answers them; the customer's next message is answered.
#[tokio::test]
async fn an_operator_message_is_an_operator_message_and_starts_no_turn() {
    let gw = keyed_gateway(&[]);
    let mut ann = connect(&gw, &customer("ann", &[])).await;
    let s = ann.create_session().await;
    let mut dana = connect(&gw, &operator("olga", "Dana", &[])).await;
    dana.join(&s.id, None, None).await;

    let accepted = dana
        .send_message(&s.id, "Hello, I am Dana from support.")
        .await;
    let operator_message_id = accepted["message_id"].as_str().unwrap().to_string();
    let heard = ann
        .collect_until(|f| ty(f) == "message" && f["message_id"] == operator_message_id)
        .await;
    let message = heard.last().unwrap();
    assert_eq!(message["role"], "operator", "{message}");
    assert_eq!(message["author"], "Dana", "{message}");

    let asked = ann
        .send_message(&s.id, "Thanks! What are your opening hours?")
        .await;
    let frames = until_turn_end(&mut ann).await;
    let starts: Vec<&Value> = frames.iter().filter(|f| ty(f) == "turn.start").collect();
    assert_eq!(
        starts.len(),
        1,
        "one turn, for the customer's message: {frames:?}"
    );
    assert_eq!(starts[0]["reply_to"], asked["message_id"]);
    assert!(
        frames
            .iter()
            .all(|f| f["reply_to"] != operator_message_id.as_str()),
        "a turn answered the operator: {frames:?}"
    );
}

/// The attack of issue 19: a document only group `hr` may read. The customer (no
/// `hr`) asks and gets nothing of it; an `hr` operator joins the customer's session
/// and asks the same — no turn runs with the operator's access, so the document never
/// reaches the customer, live or in the replayed history. A customer who is in `hr`
/// gets it in their own session (the question does find it).
#[tokio::test]
async fn a_document_the_customer_may_not_read_never_reaches_them_through_an_operator() {
    let gw = keyed_gateway(&[]);
    Api::new(&gw)
        .ingest(&json!({
            "doc_id": HR_DOC, "org_id": "acme", "title": "Salary bands",
            "text": format!("The zebracorn salary bands: level three earns {HR_SECRET} a year."),
            "acl": {"groups": ["hr"]}
        }))
        .await;

    let mut ann = connect(&gw, &customer("ann", &[])).await;
    let s = ann.create_session().await;
    ann.send_message(&s.id, QUESTION).await;
    let first = until_turn_end(&mut ann).await;
    assert!(
        !mentions(&first, HR_SECRET) && !mentions(&first, HR_DOC),
        "{first:?}"
    );

    let mut hr_operator = connect(&gw, &operator("olga", "Dana", &["hr"])).await;
    hr_operator.join(&s.id, None, None).await;
    let accepted = hr_operator.send_message(&s.id, QUESTION).await;
    let operator_message_id = accepted["message_id"].as_str().unwrap().to_string();
    ann.collect_until(|f| f["message_id"] == operator_message_id)
        .await;
    // The customer asks once more; whatever runs now runs for the customer.
    ann.send_message(&s.id, QUESTION).await;
    let second = until_turn_end(&mut ann).await;
    assert!(
        !mentions(&second, HR_SECRET) && !mentions(&second, HR_DOC),
        "{second:?}"
    );

    let mut again = connect(&gw, &customer("ann", &[])).await;
    let joined = again.join(&s.id, Some(0), None).await;
    let last_seq = joined["last_seq"].clone();
    let history = again.collect_until(|f| f["seq"] == last_seq).await;
    assert!(
        !mentions(&history, HR_SECRET),
        "the history holds the HR document: {history:?}"
    );

    // Control: the same question from a customer in `hr`, in their own session.
    let mut hank = connect(&gw, &customer("hank", &["hr"])).await;
    let own = hank.create_session().await;
    hank.send_message(&own.id, QUESTION).await;
    let answer = until_turn_end(&mut hank).await;
    assert!(
        mentions(&answer, HR_SECRET),
        "the question finds the document: {answer:?}"
    );
}

/// `turn.cancel` naming a turn of another session (here of another org) cancels
/// nothing and says so, whether or not a turn runs in the caller's own session; the
/// turn it named completes.
#[tokio::test]
async fn a_turn_id_of_another_session_cancels_nothing() {
    // A slow offline agent, so the named turn still runs while it is named.
    let gw = Gateway::start(&[HS_ARGS[0], HS_ARGS[1], "--offline-agent-delay", "30ms"]);
    let mut ann = connect(&gw, &customer("ann", &[])).await;
    let a = ann.create_session().await;
    ann.send_message(&a.id, "Tell me about your opening hours and holidays.")
        .await;
    let start = ann.next_of_type("turn.start").await;
    let victim = start["turn_id"].as_str().unwrap().to_string();

    let mut eve = connect(&gw, &Claims::user("eve", "globex").hs256()).await;
    let b = eve.create_session().await;
    let cancel = json!({"session_id": b.id, "turn_id": victim});
    let refused = eve.request("turn.cancel", cancel.clone()).await;
    assert_eq!(refused["code"], "not_found", "{refused}");
    eve.send_message(&b.id, "And yours?").await;
    eve.next_of_type("turn.start").await;
    let refused = eve.request("turn.cancel", cancel).await;
    assert_eq!(refused["code"], "not_found", "{refused}");

    let end = ann.next_of_type("turn.end").await;
    assert_eq!(end["turn_id"], victim.as_str());
    assert_eq!(end["status"], "completed", "{end}");
}
