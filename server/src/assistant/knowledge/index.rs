//! The local search index: one in-memory tantivy index per org on each replica.
//!
//! An index holds only its org's documents, so no other tenant's text is in it. Each
//! document is indexed with its ACL as terms (`public`, `org` for org-wide documents,
//! `group:<g>`, `user:<u>`); a search must match the asker's org and one of the ACL
//! terms the asker holds, and the words are matched as plain terms (no query syntax).
//!
//! BM25 needs corpus statistics (how many documents contain a word, how long documents
//! are on average). Tantivy would take them from the whole index, including documents
//! the asker may not read, so the mere existence of a restricted document mentioning a
//! word would move the scores of the documents the asker does see. [`VisibleStats`]
//! computes them over the asker's visible documents instead: scores, and so the order
//! of hits, depend on nothing the asker may not read.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;
use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::query::{
    Bm25StatisticsProvider, BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, RegexQuery,
    TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    StopWordFilter, TextAnalyzer, TokenStream,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term,
};

use super::{Acl, Document, KnowledgeError, STOP_WORDS};
use crate::access::AccessContext;

/// Most hits one search returns.
pub const MAX_HITS: usize = 100;
/// Only the first this many bytes of a query are read.
const MAX_QUERY_BYTES: usize = 4096;
/// Only the first this many distinct words of a query are searched.
const MAX_QUERY_TERMS: usize = 32;
/// Longer words are not indexed nor searched (in bytes).
const MAX_TOKEN_BYTES: usize = 64;
/// A word found in the title counts this much more than one found in the text.
const TITLE_BOOST: f32 = 2.0;
/// Memory budget of the short-lived index writer (tantivy's minimum).
const WRITER_MEMORY_BYTES: usize = 15_000_000;
/// Name of the text analyzer in each index's tokenizer manager.
const ANALYZER: &str = "switchboard";

/// Short words that say nothing about relevance, besides [`STOP_WORDS`].
const SHORT_STOP_WORDS: &[&str] = &[
    "a", "an", "as", "at", "be", "by", "do", "i", "if", "in", "is", "it", "me", "my", "no", "of",
    "on", "or", "so", "to", "up", "us", "we",
];

/// Lower-cased, ASCII-folded, stop words removed, English stemming: the same for
/// documents and queries. Built once: a copy shares the stop-word set.
fn analyzer() -> TextAnalyzer {
    static ANALYZER: LazyLock<TextAnalyzer> = LazyLock::new(build_analyzer);
    ANALYZER.clone()
}

fn build_analyzer() -> TextAnalyzer {
    let stop_words = STOP_WORDS
        .iter()
        .chain(SHORT_STOP_WORDS)
        .map(|w| w.to_string());
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(StopWordFilter::remove(stop_words))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The distinct searchable terms of a user's query, in order. Everything is a word:
/// `"`, `:`, `*`, `AND` and the like carry no meaning.
pub fn query_terms(query: &str) -> Vec<String> {
    let mut end = query.len().min(MAX_QUERY_BYTES);
    while !query.is_char_boundary(end) {
        end -= 1;
    }
    if end < query.len() {
        // Do not search the cut-off start of a word.
        end = query[..end]
            .rfind(|c: char| !c.is_alphanumeric())
            .unwrap_or(0);
    }
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(&query[..end]);
    let mut terms: Vec<String> = Vec::new();
    while stream.advance() && terms.len() < MAX_QUERY_TERMS {
        let text = &stream.token().text;
        if !terms.contains(text) {
            terms.push(text.clone());
        }
    }
    terms
}

/// The ACL terms a document is indexed with.
fn document_acl_terms(acl: &Acl) -> Vec<String> {
    let mut terms = Vec::new();
    if acl.public {
        terms.push("public".to_string());
    }
    if !acl.public && acl.users.is_empty() && acl.groups.is_empty() {
        terms.push("org".to_string());
    }
    terms.extend(acl.groups.iter().map(|g| format!("group:{g}")));
    terms.extend(acl.users.iter().map(|u| format!("user:{u}")));
    terms
}

/// The ACL terms an asker holds: anonymous askers hold only `public`.
fn asker_acl_terms(access: &AccessContext) -> Vec<String> {
    let mut terms = vec!["public".to_string()];
    if !access.anonymous {
        terms.push("org".to_string());
        terms.extend(access.groups.iter().map(|g| format!("group:{g}")));
        if let Some(user) = &access.user_id {
            terms.push(format!("user:{user}"));
        }
    }
    terms
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    doc_id: Field,
    org_id: Field,
    acl: Field,
    title: Field,
    text: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let words = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        doc_id: builder.add_text_field("doc_id", STRING | STORED),
        org_id: builder.add_text_field("org_id", STRING),
        acl: builder.add_text_field("acl", STRING),
        title: builder.add_text_field("title", words.clone()),
        text: builder.add_text_field("text", words),
    };
    (builder.build(), fields)
}

fn tantivy_document(fields: Fields, document: &Document) -> TantivyDocument {
    let mut indexed = TantivyDocument::default();
    indexed.add_text(fields.doc_id, &document.doc_id);
    indexed.add_text(fields.org_id, &document.org_id);
    for term in document_acl_terms(&document.acl) {
        indexed.add_text(fields.acl, term);
    }
    indexed.add_text(fields.title, &document.title);
    indexed.add_text(fields.text, &document.text);
    indexed
}

/// The org indexes of this replica.
pub struct Indexes {
    orgs: Mutex<HashMap<String, Arc<tokio::sync::Mutex<OrgIndex>>>>,
}

impl Indexes {
    pub fn new() -> Indexes {
        Indexes {
            orgs: Mutex::new(HashMap::new()),
        }
    }

    /// The org's index; lock it to read or update it (one refresh at a time per org).
    pub fn org(&self, org_id: &str) -> Arc<tokio::sync::Mutex<OrgIndex>> {
        let mut orgs = self.orgs.lock().unwrap_or_else(|e| e.into_inner());
        orgs.entry(org_id.to_string())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(OrgIndex {
                    org_id: org_id.to_string(),
                    at: None,
                    built: None,
                }))
            })
            .clone()
    }
}

/// One org's index and the change id it reflects.
pub struct OrgIndex {
    org_id: String,
    /// The org's change id when the documents indexed were listed (`Some(None)`: the
    /// org had never been written). `None`: must be loaded.
    at: Option<Option<Bytes>>,
    built: Option<Built>,
}

struct Built {
    fields: Fields,
    index: Index,
    reader: IndexReader,
    /// The change id of each document indexed, by `doc_id`. The documents themselves
    /// stay in the shared records: a search reads its hits from there.
    changes: HashMap<String, String>,
}

impl Built {
    fn new() -> Result<Built, KnowledgeError> {
        let (schema, fields) = schema();
        let index = Index::create_in_ram(schema);
        index.tokenizers().register(ANALYZER, analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Built {
            fields,
            index,
            reader,
            changes: HashMap::new(),
        })
    }
}

/// What a refresh must do to bring an index up to an org's manifest.
pub struct Plan {
    /// Indexed documents the manifest no longer lists.
    pub removed: Vec<String>,
    /// Listed documents not indexed at the change id the manifest names.
    pub stale: Vec<String>,
}

impl OrgIndex {
    /// Whether the index reflects the org at change id `version`.
    pub fn is_at(&self, version: &Option<Bytes>) -> bool {
        self.built.is_some() && self.at.as_ref() == Some(version)
    }

    /// Record that the index now reflects change id `version`.
    pub fn mark(&mut self, version: Option<Bytes>) {
        self.at = Some(version);
    }

    /// Forget everything: the next search rebuilds from the shared records.
    pub fn reset(&mut self) {
        self.at = None;
        self.built = None;
    }

    /// Which documents differ between the index and `listed` (`doc_id` → change id).
    pub fn plan<'a>(&self, listed: impl Iterator<Item = (&'a String, &'a String)> + Clone) -> Plan {
        let empty = HashMap::new();
        let indexed = self.built.as_ref().map_or(&empty, |b| &b.changes);
        let wanted: HashSet<&String> = listed.clone().map(|(id, _)| id).collect();
        Plan {
            removed: indexed
                .keys()
                .filter(|id| !wanted.contains(id))
                .cloned()
                .collect(),
            stale: listed
                .filter(|(id, change)| indexed.get(*id) != Some(*change))
                .map(|(id, _)| id.clone())
                .collect(),
        }
    }

    /// Remove `removed` from the index and (re)index `upserts`, each a document of
    /// this org with the change id of its record.
    pub async fn apply(
        &mut self,
        removed: Vec<String>,
        upserts: Vec<(Document, String)>,
    ) -> Result<(), KnowledgeError> {
        let mut built = match self.built.take() {
            Some(built) => built,
            None => Built::new()?,
        };
        let upserts: Vec<(Document, String)> = upserts
            .into_iter()
            .filter(|(d, _)| d.org_id == self.org_id)
            .collect();
        if !removed.is_empty() || !upserts.is_empty() {
            let index = built.index.clone();
            let fields = built.fields;
            let changes: Vec<(String, String)> = upserts
                .iter()
                .map(|(d, c)| (d.doc_id.clone(), c.clone()))
                .collect();
            let gone = removed.clone();
            tokio::task::spawn_blocking(move || {
                let documents: Vec<&Document> = upserts.iter().map(|(d, _)| d).collect();
                apply(&index, fields, &gone, &documents)
            })
            .await
            .map_err(|e| KnowledgeError::Index(format!("indexing task failed: {e}")))??;
            built.reader.reload()?;
            for doc_id in &removed {
                built.changes.remove(doc_id);
            }
            built.changes.extend(changes);
        }
        self.built = Some(built);
        Ok(())
    }

    /// What a search needs, detached from the lock.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            built: self.built.as_ref().map(|b| SnapshotParts {
                fields: b.fields,
                searcher: b.reader.searcher(),
            }),
        }
    }
}

/// Delete `removed` and the old versions of `upserts`, add `upserts`, commit.
fn apply(
    index: &Index,
    fields: Fields,
    removed: &[String],
    upserts: &[&Document],
) -> tantivy::Result<()> {
    let mut writer: IndexWriter<TantivyDocument> =
        index.writer_with_num_threads(1, WRITER_MEMORY_BYTES)?;
    for doc_id in removed.iter().chain(upserts.iter().map(|d| &d.doc_id)) {
        writer.delete_term(Term::from_field_text(fields.doc_id, doc_id));
    }
    for document in upserts {
        writer.add_document(tantivy_document(fields, document))?;
    }
    writer.commit()?;
    writer.wait_merging_threads()
}

/// A consistent view of one org's index: the searcher and the documents it indexes.
pub struct Snapshot {
    built: Option<SnapshotParts>,
}

struct SnapshotParts {
    fields: Fields,
    searcher: Searcher,
}

impl Snapshot {
    /// The `doc_id`s and scores of the best `limit` documents visible to `access` that
    /// match any of `terms` (the output of [`query_terms`]), best first; ties go by
    /// `doc_id`.
    pub fn search(
        &self,
        terms: &[String],
        access: &AccessContext,
        scope: Option<&[String]>,
        limit: usize,
    ) -> Result<Vec<(String, f64)>, KnowledgeError> {
        let Some(parts) = &self.built else {
            return Ok(Vec::new());
        };
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let fields = parts.fields;
        let searcher = &parts.searcher;
        let filter = visibility_filter(fields, access, scope)?;
        let visible = searcher.search(&filter, &DocSetCollector)?;
        if visible.is_empty() {
            return Ok(Vec::new());
        }
        let stats = VisibleStats::new(searcher, &filter, &visible, &[fields.title, fields.text])?;
        let mut words: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(terms.len() * 2);
        for term in terms {
            let in_title = TermQuery::new(
                Term::from_field_text(fields.title, term),
                IndexRecordOption::WithFreqs,
            );
            let in_text = TermQuery::new(
                Term::from_field_text(fields.text, term),
                IndexRecordOption::WithFreqs,
            );
            words.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(in_title), TITLE_BOOST)),
            ));
            words.push((Occur::Should, Box::new(in_text)));
        }
        let query = BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(ConstScoreQuery::new(Box::new(filter.clone()), 0.0)),
            ),
            (Occur::Must, Box::new(BooleanQuery::new(words))),
        ]);
        // A few more than asked, so ties at the cut are broken by doc_id, not by
        // where a document happens to sit in the index.
        let collector = TopDocs::with_limit(limit * 2 + 8).order_by_score();
        let top = searcher.search_with_statistics_provider(&query, &collector, &stats)?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let stored: TantivyDocument = searcher.doc(address)?;
            let Some(doc_id) = stored.get_first(fields.doc_id).and_then(|v| v.as_str()) else {
                continue;
            };
            hits.push((doc_id.to_string(), f64::from(score)));
        }
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        hits.truncate(limit);
        Ok(hits)
    }
}

/// Documents of the asker's org whose ACL terms include one the asker holds.
fn visibility_filter(
    fields: Fields,
    access: &AccessContext,
    scope: Option<&[String]>,
) -> Result<BooleanQuery, KnowledgeError> {
    let org = TermQuery::new(
        Term::from_field_text(fields.org_id, &access.org_id),
        IndexRecordOption::Basic,
    );
    let any_acl: Vec<(Occur, Box<dyn Query>)> = asker_acl_terms(access)
        .into_iter()
        .map(|t| {
            let q: Box<dyn Query> = Box::new(TermQuery::new(
                Term::from_field_text(fields.acl, &t),
                IndexRecordOption::Basic,
            ));
            (Occur::Should, q)
        })
        .collect();
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
        (Occur::Must, Box::new(org)),
        (Occur::Must, Box::new(BooleanQuery::new(any_acl))),
    ];
    if let Some(prefixes) = scope {
        clauses.push((Occur::Must, Box::new(scope_query(fields, prefixes)?)));
    }
    Ok(BooleanQuery::new(clauses))
}

/// Documents whose `doc_id` starts with one of `prefixes` (an empty list matches
/// none). A prefix outside the `doc_id` alphabet matches nothing rather than being
/// read as a pattern.
fn scope_query(fields: Fields, prefixes: &[String]) -> Result<BooleanQuery, KnowledgeError> {
    let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(prefixes.len());
    for prefix in prefixes {
        let literal = !prefix.is_empty()
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if !literal {
            continue;
        }
        // '.' is the only character of the alphabet a pattern reads as more than itself.
        let pattern = format!("{}.*", prefix.replace('.', "\\."));
        let query = RegexQuery::from_pattern(&pattern, fields.doc_id)
            .map_err(|e| KnowledgeError::Index(format!("document scope {prefix:?}: {e}")))?;
        any.push((Occur::Should, Box::new(query)));
    }
    if any.is_empty() {
        // Nothing may match: a clause no document satisfies.
        any.push((
            Occur::Must,
            Box::new(TermQuery::new(
                Term::from_field_text(fields.doc_id, ""),
                IndexRecordOption::Basic,
            )),
        ));
    }
    Ok(BooleanQuery::new(any))
}

/// BM25 statistics over the documents the asker may read, and nothing else.
struct VisibleStats<'a> {
    searcher: &'a Searcher,
    filter: &'a dyn Query,
    num_docs: u64,
    /// Total tokens per text field over the visible documents (from field norms).
    tokens: HashMap<Field, u64>,
}

impl<'a> VisibleStats<'a> {
    fn new(
        searcher: &'a Searcher,
        filter: &'a dyn Query,
        visible: &HashSet<DocAddress>,
        text_fields: &[Field],
    ) -> tantivy::Result<VisibleStats<'a>> {
        let mut tokens = HashMap::new();
        for &field in text_fields {
            let norms = searcher
                .segment_readers()
                .iter()
                .map(|segment| segment.get_fieldnorms_reader(field))
                .collect::<tantivy::Result<Vec<_>>>()?;
            let total: u64 = visible
                .iter()
                .filter_map(|a| {
                    norms
                        .get(a.segment_ord as usize)
                        .map(|n| n.fieldnorm(a.doc_id))
                })
                .map(u64::from)
                .sum();
            tokens.insert(field, total);
        }
        Ok(VisibleStats {
            searcher,
            filter,
            num_docs: visible.len() as u64,
            tokens,
        })
    }
}

impl Bm25StatisticsProvider for VisibleStats<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        // Never 0: the average length divides by it.
        Ok(self
            .tokens
            .get(&field)
            .copied()
            .unwrap_or(self.num_docs)
            .max(1))
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.num_docs)
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        let visible_with_term = BooleanQuery::new(vec![
            (Occur::Must, self.filter.box_clone()),
            (
                Occur::Must,
                Box::new(TermQuery::new(term.clone(), IndexRecordOption::Basic)),
            ),
        ]);
        Ok(self.searcher.search(&visible_with_term, &Count)? as u64)
    }
}
