use std::sync::Arc;

use bytes::Bytes;
use switchboard_backplane::{Backplane, MemoryBackplane, RecordKey, Retention};

use super::*;

fn backplane() -> Arc<dyn Backplane> {
    Arc::new(MemoryBackplane::new(Retention::default()))
}

fn kb() -> KnowledgeBase {
    KnowledgeBase::new(backplane())
}

fn access(org: &str, user: Option<&str>, groups: &[&str]) -> AccessContext {
    AccessContext {
        user_id: user.map(str::to_string),
        org_id: org.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        roles: vec![],
        anonymous: user.is_none(),
        name: None,
    }
}

fn doc(id: &str, org: &str, acl: Acl, text: &str) -> Document {
    Document {
        doc_id: id.into(),
        org_id: org.into(),
        title: id.into(),
        text: text.into(),
        uri: None,
        acl,
    }
}

fn public() -> Acl {
    Acl {
        public: true,
        ..Acl::default()
    }
}

fn groups(names: &[&str]) -> Acl {
    Acl {
        groups: names.iter().map(|g| g.to_string()).collect(),
        ..Acl::default()
    }
}

fn users(names: &[&str]) -> Acl {
    Acl {
        users: names.iter().map(|u| u.to_string()).collect(),
        ..Acl::default()
    }
}

async fn ids(kb: &KnowledgeBase, query: &str, who: &AccessContext) -> Vec<String> {
    let mut ids: Vec<String> = kb
        .search(query, who, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.document.doc_id)
        .collect();
    ids.sort();
    ids
}

#[test]
fn visibility_follows_section_seven() {
    let public = doc("p", "acme", public(), "");
    let org_wide = doc("o", "acme", Acl::default(), "");
    let group = doc("g", "acme", groups(&["support"]), "");
    let user = doc("u", "acme", users(&["u1"]), "");
    let member = access("acme", Some("u1"), &[]);
    let supporter = access("acme", Some("u2"), &["support"]);
    let anonymous = access("acme", None, &[]);
    let stranger = access("other", Some("u1"), &["support"]);
    assert!(public.visible_to(&anonymous) && public.visible_to(&member));
    assert!(!public.visible_to(&stranger), "public is still per org");
    assert!(org_wide.visible_to(&member) && !org_wide.visible_to(&anonymous));
    assert!(group.visible_to(&supporter) && !group.visible_to(&member));
    assert!(user.visible_to(&member) && !user.visible_to(&supporter));
}

/// The visibility matrix of docs/protocol.md §7.1, through `search`: every document mentions "handbook".
#[tokio::test]
async fn search_follows_the_acl_matrix() {
    let kb = kb();
    kb.ingest_all(vec![
        doc("public", "acme", public(), "the handbook"),
        doc("orgwide", "acme", Acl::default(), "the handbook"),
        doc("support", "acme", groups(&["support"]), "the handbook"),
        doc("alice", "acme", users(&["alice"]), "the handbook"),
        doc(
            "both",
            "acme",
            Acl {
                public: false,
                groups: vec!["finance".into()],
                users: vec!["bob".into()],
            },
            "the handbook",
        ),
        doc("other-public", "other", public(), "the handbook"),
        doc("other-orgwide", "other", Acl::default(), "the handbook"),
    ])
    .await
    .unwrap();
    let q = "handbook";
    assert_eq!(ids(&kb, q, &access("acme", None, &[])).await, ["public"]);
    assert_eq!(
        ids(&kb, q, &access("acme", Some("carol"), &[])).await,
        ["orgwide", "public"]
    );
    assert_eq!(
        ids(&kb, q, &access("acme", Some("carol"), &["support"])).await,
        ["orgwide", "public", "support"]
    );
    assert_eq!(
        ids(&kb, q, &access("acme", Some("alice"), &[])).await,
        ["alice", "orgwide", "public"]
    );
    assert_eq!(
        ids(&kb, q, &access("acme", Some("bob"), &[])).await,
        ["both", "orgwide", "public"]
    );
    assert_eq!(
        ids(&kb, q, &access("acme", Some("carol"), &["finance"])).await,
        ["both", "orgwide", "public"]
    );
    // Another org's member, even named in the ACLs, sees only their own org.
    assert_eq!(
        ids(
            &kb,
            q,
            &access("other", Some("alice"), &["support", "finance"])
        )
        .await,
        ["other-orgwide", "other-public"]
    );
    assert_eq!(
        ids(&kb, q, &access("other", None, &[])).await,
        ["other-public"]
    );
    assert!(
        ids(&kb, q, &access("nobody", Some("alice"), &[]))
            .await
            .is_empty()
    );
    // An anonymous context never matches org-wide or named documents, whatever it claims.
    let mut sneaky = access("acme", Some("alice"), &["support"]);
    sneaky.anonymous = true;
    assert_eq!(ids(&kb, q, &sneaky).await, ["public"]);
}

#[tokio::test]
async fn another_group_never_sees_a_restricted_document_even_as_the_only_match() {
    let kb = kb();
    kb.ingest_all(vec![
        doc(
            "payroll",
            "acme",
            groups(&["finance"]),
            "zebracorn payroll salaries",
        ),
        doc(
            "tickets",
            "acme",
            groups(&["support"]),
            "ticket escalation rota",
        ),
    ])
    .await
    .unwrap();
    let supporter = access("acme", Some("u1"), &["support"]);
    assert!(
        kb.search("zebracorn", &supporter, 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        kb.search("zebracorn payroll salaries", &supporter, 5)
            .await
            .unwrap()
            .is_empty()
    );
    let finance = access("acme", Some("u2"), &["finance"]);
    assert!(
        kb.search("ticket escalation", &finance, 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(ids(&kb, "zebracorn", &finance).await, ["payroll"]);
    // A broad query over both documents' words shows only one's own group.
    assert_eq!(
        ids(&kb, "zebracorn payroll ticket escalation", &supporter).await,
        ["tickets"]
    );
}

#[tokio::test]
async fn stronger_matches_rank_first() {
    let kb = kb();
    kb.ingest_all(vec![
        Document {
            title: "Refund policy".into(),
            ..doc(
                "refunds",
                "acme",
                public(),
                "How to ask for money back on an invoice.",
            )
        },
        doc(
            "billing",
            "acme",
            public(),
            "Billing questions: invoices, a refund now and then, and taxes.",
        ),
        doc(
            "shipping",
            "acme",
            public(),
            "Parcels leave the warehouse daily; a refund policy for lost parcels exists.",
        ),
        doc(
            "unrelated",
            "acme",
            public(),
            "Couriers deliver parcels within three days.",
        ),
    ])
    .await
    .unwrap();
    let anyone = access("acme", None, &[]);
    let hits = kb.search("refund policy", &anyone, 10).await.unwrap();
    let order: Vec<_> = hits.iter().map(|h| h.document.doc_id.as_str()).collect();
    // Both words in the title beat both words in the text, which beat one word.
    assert_eq!(order, ["refunds", "shipping", "billing"]);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    // Stemming: "refunds" finds "refund".
    assert!(
        ids(&kb, "refunds", &anyone)
            .await
            .contains(&"billing".to_string())
    );
    assert_eq!(
        kb.search("refund policy", &anyone, 1).await.unwrap().len(),
        1
    );
    assert!(
        kb.search("refund policy", &anyone, 0)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A document the asker may not read changes no score of the ones they can.
#[tokio::test]
async fn restricted_documents_do_not_change_scores() {
    let visible = vec![
        doc("a", "acme", public(), "payroll questions go to HR"),
        doc(
            "b",
            "acme",
            Acl::default(),
            "the office has a kitchen and payroll desk",
        ),
    ];
    let with_secret = kb();
    with_secret.ingest_all(visible.clone()).await.unwrap();
    with_secret
        .ingest_all(
            (0..20)
                .map(|i| {
                    doc(
                        &format!("secret-{i}"),
                        "acme",
                        groups(&["finance"]),
                        "payroll payroll salaries payroll bonus figures for everyone this year",
                    )
                })
                .collect(),
        )
        .await
        .unwrap();
    let without = kb();
    without.ingest_all(visible).await.unwrap();
    let member = access("acme", Some("u1"), &["support"]);
    let a = with_secret
        .search("payroll desk", &member, 5)
        .await
        .unwrap();
    let b = without.search("payroll desk", &member, 5).await.unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.document.doc_id, y.document.doc_id);
        assert!(
            (x.score - y.score).abs() < 1e-6,
            "{} vs {}",
            x.score,
            y.score
        );
    }
}

#[tokio::test]
async fn ingest_update_and_delete_show_at_once_on_this_and_another_replica() {
    let shared = backplane();
    let one = KnowledgeBase::new(shared.clone());
    let two = KnowledgeBase::new(shared.clone());
    let member = access("acme", Some("u1"), &[]);
    // Both replicas have searched (and so built) the org before anything changes.
    assert!(one.search("quokka", &member, 5).await.unwrap().is_empty());
    assert!(two.search("quokka", &member, 5).await.unwrap().is_empty());

    one.ingest(doc("d1", "acme", Acl::default(), "the quokka handbook"))
        .await
        .unwrap();
    assert_eq!(ids(&one, "quokka", &member).await, ["d1"]);
    assert_eq!(ids(&two, "quokka", &member).await, ["d1"]);

    one.ingest(doc("d1", "acme", Acl::default(), "the wombat handbook"))
        .await
        .unwrap();
    for replica in [&one, &two] {
        assert!(ids(replica, "quokka", &member).await.is_empty());
        assert_eq!(ids(replica, "wombat", &member).await, ["d1"]);
        let hit = &replica.search("wombat", &member, 5).await.unwrap()[0];
        assert_eq!(hit.document.text, "the wombat handbook");
    }

    // An ACL change is an update too: the document leaves the member's view.
    one.ingest(doc(
        "d1",
        "acme",
        groups(&["finance"]),
        "the wombat handbook",
    ))
    .await
    .unwrap();
    assert!(ids(&two, "wombat", &member).await.is_empty());

    assert!(one.delete("acme", "d1").await.unwrap());
    assert!(!one.delete("acme", "d1").await.unwrap());
    let finance = access("acme", Some("u2"), &["finance"]);
    assert!(ids(&one, "wombat", &finance).await.is_empty());
    assert!(ids(&two, "wombat", &finance).await.is_empty());

    // And the other way round, from the second replica.
    two.ingest(doc("d2", "acme", public(), "platypus notes"))
        .await
        .unwrap();
    assert_eq!(ids(&one, "platypus", &member).await, ["d2"]);
    // Writes from both replicas are all visible to both.
    one.ingest(doc("d3", "acme", public(), "platypus extra"))
        .await
        .unwrap();
    two.ingest(doc("d4", "acme", public(), "platypus more"))
        .await
        .unwrap();
    assert_eq!(ids(&one, "platypus", &member).await, ["d2", "d3", "d4"]);
    assert_eq!(ids(&two, "platypus", &member).await, ["d2", "d3", "d4"]);
}

#[tokio::test]
async fn a_replica_that_never_searched_loads_from_the_shared_records() {
    let shared = backplane();
    let one = KnowledgeBase::new(shared.clone());
    one.ingest_all(demo_documents("acme")).await.unwrap();
    let late = KnowledgeBase::new(shared);
    let hits = late
        .search(
            "how do I resume after a reconnect?",
            &access("acme", None, &[]),
            3,
        )
        .await
        .unwrap();
    assert_eq!(hits[0].document.doc_id, "resume");
}

#[tokio::test]
async fn hostile_queries_never_fail_nor_widen_visibility() {
    let kb = kb();
    kb.ingest_all(vec![
        Document {
            title: "secret".into(),
            ..doc(
                "secret",
                "acme",
                groups(&["finance"]),
                "secret title org_id other public finance",
            )
        },
        doc("open", "acme", public(), "an open document about titles"),
        doc("theirs", "other", public(), "secret of another org"),
    ])
    .await
    .unwrap();
    let long = "secret ".repeat(100_000);
    let many_words: String = (0..5000).map(|i| format!("w{i} ")).collect();
    let queries = [
        "\"",
        "\"secret",
        "AND OR (",
        "title:secret",
        "org_id:other",
        "org_id:other OR acl:public",
        "acl:group:finance",
        "doc_id:secret",
        "*",
        "secret*",
        "sec?et~2",
        "+secret -open",
        "[a TO z]",
        "(((((",
        "\\",
        "\u{0}",
        "",
        "   ",
        "秘密 секрет 🔒 ﷽ e\u{301}",
        long.as_str(),
        many_words.as_str(),
    ];
    for who in [
        access("acme", None, &[]),
        access("acme", Some("u1"), &["support"]),
    ] {
        for q in queries {
            let hits = kb.search(q, &who, 10).await.unwrap();
            assert!(
                hits.iter().all(|h| h.document.doc_id == "open"),
                "query {:?} leaked {:?}",
                q.chars().take(40).collect::<String>(),
                hits.iter().map(|h| &h.document.doc_id).collect::<Vec<_>>()
            );
        }
    }
    // Queries with no searchable word find nothing.
    let anyone = access("acme", None, &[]);
    for q in ["", "   ", "\"", "*", "the and of", "AND OR ("] {
        let hits = kb.search(q, &anyone, 10).await.unwrap();
        assert!(hits.iter().all(|h| h.document.doc_id == "open"), "{q:?}");
    }
    assert!(kb.search("", &anyone, 10).await.unwrap().is_empty());
    // A finance member does find it, through the same lenient parsing.
    let finance = access("acme", Some("u2"), &["finance"]);
    let hits = kb.search("title:secret", &finance, 10).await.unwrap();
    assert_eq!(hits[0].document.doc_id, "secret");
    // An invalid org in the access context finds nothing rather than failing.
    assert!(
        ids(&kb, "secret", &access("acme/secret", Some("u1"), &[]))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn validation_errors_are_messages_for_the_admin() {
    let kb = kb();
    let ok = doc("ok", "acme", public(), "text");
    let cases: Vec<(Document, &str)> = vec![
        (
            Document {
                doc_id: "".into(),
                ..ok.clone()
            },
            "doc_id",
        ),
        (
            Document {
                doc_id: "a/b".into(),
                ..ok.clone()
            },
            "doc_id",
        ),
        (
            Document {
                doc_id: "a b".into(),
                ..ok.clone()
            },
            "doc_id",
        ),
        (
            Document {
                doc_id: "x".repeat(129),
                ..ok.clone()
            },
            "doc_id",
        ),
        (
            Document {
                org_id: "".into(),
                ..ok.clone()
            },
            "org_id",
        ),
        (
            Document {
                org_id: "acme/x".into(),
                ..ok.clone()
            },
            "org_id",
        ),
        (
            Document {
                org_id: "ac.me".into(),
                ..ok.clone()
            },
            "org_id",
        ),
        (
            Document {
                title: "".into(),
                ..ok.clone()
            },
            "title",
        ),
        (
            Document {
                title: "  ".into(),
                ..ok.clone()
            },
            "title",
        ),
        (
            Document {
                title: "é".repeat(501),
                ..ok.clone()
            },
            "title",
        ),
        (
            Document {
                text: "x".repeat(MAX_TEXT_BYTES + 1),
                ..ok.clone()
            },
            "text",
        ),
        (
            Document {
                acl: groups(&[""]),
                ..ok.clone()
            },
            "acl.groups",
        ),
        (
            Document {
                acl: users(&[&"u".repeat(257)]),
                ..ok.clone()
            },
            "acl.users",
        ),
    ];
    for (bad, field) in cases {
        match kb.ingest(bad.clone()).await {
            Err(KnowledgeError::Invalid(message)) => {
                assert!(message.contains(field), "{message:?} should name {field}")
            }
            other => panic!("{:?} was accepted: {other:?}", bad.doc_id),
        }
    }
    // Limits are inclusive.
    kb.ingest(Document {
        doc_id: "A-z_0.9:x".repeat(14).chars().take(128).collect(),
        title: "é".repeat(500),
        text: "x".repeat(MAX_TEXT_BYTES),
        ..ok.clone()
    })
    .await
    .unwrap();
    // A batch with one bad document stores none.
    let batch = vec![
        doc("good", "acme", public(), "fine"),
        Document {
            title: "".into(),
            ..doc("bad", "acme", public(), "")
        },
    ];
    assert!(matches!(
        kb.ingest_all(batch).await,
        Err(KnowledgeError::Invalid(_))
    ));
    assert!(kb.get("acme", "good").await.unwrap().is_none());
    // Ids are checked on every entry point.
    assert!(matches!(
        kb.delete("acme", "a/b").await,
        Err(KnowledgeError::Invalid(_))
    ));
    assert!(matches!(
        kb.get("a/b", "x").await,
        Err(KnowledgeError::Invalid(_))
    ));
    assert!(matches!(kb.list("").await, Err(KnowledgeError::Invalid(_))));
}

#[tokio::test]
async fn list_and_get_read_the_shared_records() {
    let shared = backplane();
    let one = KnowledgeBase::new(shared.clone());
    let two = KnowledgeBase::new(shared.clone());
    one.ingest_all(vec![
        doc("c", "acme", public(), "three"),
        doc("a", "acme", public(), "one"),
        doc("b", "acme", Acl::default(), "two"),
        doc("a", "other", public(), "elsewhere"),
    ])
    .await
    .unwrap();
    let listed: Vec<_> = two
        .list("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.doc_id)
        .collect();
    assert_eq!(listed, ["a", "b", "c"]);
    assert_eq!(two.get("acme", "a").await.unwrap().unwrap().text, "one");
    assert_eq!(
        two.get("other", "a").await.unwrap().unwrap().text,
        "elsewhere"
    );
    assert!(two.get("acme", "zzz").await.unwrap().is_none());
    assert!(two.list("empty").await.unwrap().is_empty());
    // The storage layout other replicas (and adapters) rely on.
    let raw = shared
        .record_get(&RecordKey::new("documents", "acme/b"))
        .await
        .unwrap()
        .unwrap();
    let stored: Document = serde_json::from_slice(&raw).unwrap();
    assert_eq!(stored, doc("b", "acme", Acl::default(), "two"));
    assert!(
        shared
            .record_get(&RecordKey::new("documents-version", "acme"))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn unreadable_records_are_skipped() {
    let shared = backplane();
    let kb = KnowledgeBase::new(shared.clone());
    kb.ingest(doc("good", "acme", public(), "kiwi"))
        .await
        .unwrap();
    for (key, value) in [
        ("acme/garbage", "not json".to_string()),
        // Says it belongs to another org than its key.
        (
            "acme/mismatch",
            serde_json::to_string(&doc("mismatch", "other", public(), "kiwi")).unwrap(),
        ),
    ] {
        shared
            .record_put(&RecordKey::new("documents", key), Bytes::from(value), None)
            .await
            .unwrap();
    }
    shared
        .record_put(
            &RecordKey::new("documents-version", "acme"),
            Bytes::from("changed"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(ids(&kb, "kiwi", &access("acme", None, &[])).await, ["good"]);
    assert!(
        ids(&kb, "kiwi", &access("other", None, &[]))
            .await
            .is_empty()
    );
    let listed: Vec<_> = kb
        .list("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.doc_id)
        .collect();
    assert_eq!(listed, ["good"]);
}

#[test]
fn query_terms_are_plain_words() {
    assert_eq!(
        index::query_terms("title:Secret AND org_id"),
        ["titl", "secret", "org", "id"]
    );
    assert!(index::query_terms("\" * ( ) : ~ ^").is_empty());
    assert!(index::query_terms("the and of is").is_empty());
    assert_eq!(index::query_terms("Café CAFE cafe"), ["cafe"]);
    assert_eq!(index::query_terms(&"word ".repeat(10_000)), ["word"]);
    let distinct: String = (0..1000).map(|i| format!("w{i} ")).collect();
    assert!(index::query_terms(&distinct).len() <= 32);
}
