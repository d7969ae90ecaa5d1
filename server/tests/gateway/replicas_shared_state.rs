//! Shared state lives in the backplane: what one replica stores, every other replica
//! sees at once: a document ingested through replica A is searchable through replica B
//! at once, and a session created on A can be joined on B.
//!
//! Each test runs over Redis and over NATS (`…::redis`, `…::nats`).

use serde_json::{Value, json};

use crate::support::http::{ADMIN_SECRET, Api};
use crate::support::replicas::{Backing, Backplane, backed_tests, replica};
use crate::support::{Client, ty};

backed_tests! {
    /// A document ingested through replica A's admin API is cited at once by a turn on
    /// replica B (in a session created on A and joined on B), and once deleted through
    /// B it is no longer cited by a turn on A.
    a_document_ingested_on_one_replica_is_searchable_on_another_at_once => knowledge_is_shared;
}

const QUESTION: &str = "How should I care for a zeppelin in spring storms?";

fn cited(frames: &[Value]) -> Vec<String> {
    let end = frames
        .iter()
        .rev()
        .find(|f| ty(f) == "turn.end")
        .expect("a turn.end");
    end["sources"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|d| d["doc_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn knowledge_is_shared(backing: Backing) {
    let bp = Backplane::start(backing);
    let gw_a = replica(&bp, "replica-a");
    let gw_b = replica(&bp, "replica-b");

    Api::new(&gw_a)
        .ingest(&json!({
            "doc_id": "zeppelin-care",
            "org_id": "default",
            "title": "Zeppelin care",
            "text": "Zeppelins need a helium check every spring. Hangar the zeppelin before storms.",
            "acl": {"public": true}
        }))
        .await;

    let mut a = Client::connect(&gw_a.ws_url()).await;
    let session = a.create_session().await;
    let mut b = Client::connect(&gw_b.ws_url()).await;
    b.join(&session.id, None, session.key.as_deref()).await;

    b.send_message(&session.id, QUESTION).await;
    let first = b.collect_turns(1).await;
    assert!(
        cited(&first).contains(&"zeppelin-care".to_string()),
        "replica B did not cite the document ingested on A: {:?}",
        cited(&first)
    );

    let deleted = Api::new(&gw_b)
        .delete(
            "/v1/admin/documents/zeppelin-care?org_id=default",
            Some(ADMIN_SECRET),
        )
        .await;
    deleted.expect(204, "delete through replica B");

    a.send_message(&session.id, QUESTION).await;
    let both = a.collect_turns(2).await;
    assert!(
        !cited(&both).contains(&"zeppelin-care".to_string()),
        "replica A still cites the document deleted on B: {:?}",
        cited(&both)
    );
}
