//! The per-org document quota and refreshes that read only the org that changed
//! (issue 20, M6).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use switchboard_backplane::{Backplane, MemoryBackplane, RecordError, RecordKey, Retention};

use super::*;
use crate::records::namespace::DOCUMENTS;
use crate::test_backplane::{Hooks, Watched};

fn access(org: &str) -> AccessContext {
    AccessContext {
        user_id: Some("u1".into()),
        org_id: org.into(),
        groups: vec![],
        roles: vec![],
        anonymous: false,
        name: None,
    }
}

fn doc(id: &str, org: &str, text: String) -> Document {
    Document {
        doc_id: id.into(),
        org_id: org.into(),
        title: id.into(),
        text,
        uri: None,
        acl: Acl::default(),
    }
}

/// 1 MiB of searchable text.
fn mebibyte(word: &str) -> String {
    let mut text = String::with_capacity(MAX_TEXT_BYTES);
    while text.len() + word.len() < MAX_TEXT_BYTES {
        text.push_str(word);
        text.push(' ');
    }
    text
}

fn limited(max_documents: u32, max_bytes: u64) -> KnowledgeBase {
    let quota = DocumentQuota {
        max_documents_per_org: max_documents,
        max_document_bytes_per_org: max_bytes,
    };
    KnowledgeBase::configured(
        Arc::new(MemoryBackplane::new(Retention::default())),
        &quota,
        None,
    )
}

#[tokio::test]
async fn an_org_storing_many_large_documents_is_refused_past_its_byte_quota() {
    let kb = limited(1000, 4 * 1024 * 1024);
    let mut stored = 0;
    let refused = loop {
        match kb
            .ingest(doc(&format!("big{stored}"), "acme", mebibyte("quokka")))
            .await
        {
            Ok(()) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 60, "60 documents of 1 MiB stored: no quota");
    };
    assert_eq!(
        stored, 3,
        "three 1 MiB documents fit in 4 MiB, a fourth does not"
    );
    let KnowledgeError::Quota { exceeded, message } = &refused else {
        panic!("{refused:?}")
    };
    assert_eq!(*exceeded, Exceeded::Bytes);
    assert!(
        message.contains("--max-document-bytes-per-org") && message.contains("acme"),
        "{message}"
    );
    assert_eq!(
        kb.list("acme").await.unwrap().len(),
        3,
        "nothing of it stored"
    );
    // Replacing a stored document with one no larger, another org, and a delete that
    // makes room all still work.
    kb.ingest(doc("big0", "acme", mebibyte("wombat")))
        .await
        .unwrap();
    kb.ingest(doc("big0", "globex", mebibyte("wombat")))
        .await
        .unwrap();
    assert!(kb.delete("acme", "big1").await.unwrap());
    kb.ingest(doc("big9", "acme", mebibyte("kiwi")))
        .await
        .unwrap();
    assert_eq!(
        kb.search("kiwi", &access("acme"), 5).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn an_org_is_refused_past_its_document_count_whatever_their_size() {
    let kb = limited(3, 1024 * 1024);
    for i in 0..3 {
        kb.ingest(doc(&format!("d{i}"), "acme", "tiny".into()))
            .await
            .unwrap();
    }
    let refused = kb
        .ingest(doc("d3", "acme", "tiny".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, KnowledgeError::Quota { exceeded: Exceeded::Documents, message } if message.contains("at most 3")),
        "{refused:?}"
    );
    // A batch is all or nothing.
    let batch = vec![
        doc("x1", "globex", "a".into()),
        doc("x2", "globex", "b".into()),
        doc("x3", "globex", "c".into()),
        doc("x4", "globex", "d".into()),
    ];
    assert!(kb.ingest_all(batch).await.is_err());
    assert!(kb.list("globex").await.unwrap().is_empty());
    kb.ingest(doc("d0", "acme", "replaced".into()))
        .await
        .unwrap();
}

/// Counts which document records a replica reads.
#[derive(Default)]
struct Counting {
    lists: Mutex<Vec<String>>,
    gets: Mutex<Vec<String>>,
}

impl Counting {
    fn take(&self) -> (Vec<String>, Vec<String>) {
        (
            std::mem::take(&mut *self.lists.lock().unwrap()),
            std::mem::take(&mut *self.gets.lock().unwrap()),
        )
    }
}

#[async_trait::async_trait]
impl Hooks for Counting {
    async fn record_get(
        &self,
        inner: &dyn Backplane,
        k: &RecordKey,
    ) -> Result<Option<Bytes>, RecordError> {
        if k.namespace == DOCUMENTS {
            self.gets.lock().unwrap().push(k.key.clone());
        }
        inner.record_get(k).await
    }
    async fn record_list(
        &self,
        inner: &dyn Backplane,
        n: &str,
    ) -> Result<Vec<(String, Bytes)>, RecordError> {
        self.lists.lock().unwrap().push(n.to_string());
        inner.record_list(n).await
    }
}

#[tokio::test]
async fn a_refresh_reads_only_the_changed_documents_of_the_org_that_changed() {
    let shared: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention::default()));
    let writer = KnowledgeBase::new(shared.clone());
    let mut big = Vec::new();
    for i in 0..20 {
        big.push(doc(&format!("b{i}"), "bigcorp", format!("kiwi number {i}")));
    }
    writer.ingest_all(big).await.unwrap();
    writer
        .ingest(doc("a0", "acme", "kiwi at acme".into()))
        .await
        .unwrap();
    let counting = Arc::new(Watched::over(shared, Counting::default()));
    let reader = KnowledgeBase::new(counting.clone());
    assert_eq!(
        reader
            .search("kiwi", &access("acme"), 5)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        reader
            .search("kiwi", &access("bigcorp"), 5)
            .await
            .unwrap()
            .len(),
        5
    );
    counting.take();

    writer
        .ingest(doc("a1", "acme", "more kiwi at acme".into()))
        .await
        .unwrap();
    assert_eq!(
        reader
            .search("kiwi", &access("acme"), 5)
            .await
            .unwrap()
            .len(),
        2
    );
    let (lists, gets) = counting.take();
    assert!(
        !lists.iter().any(|n| n == DOCUMENTS),
        "a refresh listed every org's documents: {lists:?}"
    );
    let refreshed: Vec<&String> = gets.iter().filter(|k| !k.starts_with("acme/")).collect();
    assert!(
        refreshed.is_empty(),
        "read another org's documents: {refreshed:?}"
    );
    // The new document for the refresh, then the two hits for the answer.
    assert_eq!(gets, ["acme/a1", "acme/a0", "acme/a1"], "{gets:?}");
    // The other org did not change: its search reads its hits, nothing more.
    assert_eq!(
        reader
            .search("kiwi", &access("bigcorp"), 2)
            .await
            .unwrap()
            .len(),
        2
    );
    let (lists, gets) = counting.take();
    assert!(lists.is_empty() && gets.len() == 2, "{lists:?} {gets:?}");
}
